//! Reading a child's pipes: stdout up to a cap, the tail of stderr.

use std::collections::VecDeque;
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Why reading a pipe stopped early.
pub(crate) enum ReadFailure {
    /// stdout went past its cap.
    TooLarge,
    /// The pipe could not be read.
    Io(io::Error),
}

/// Read `pipe` to its end into `out`; fail as soon as `out` would grow past `limit`.
pub(crate) async fn read_capped(
    pipe: impl AsyncRead + Unpin,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), ReadFailure> {
    read_all(pipe, |data| {
        if out.len() + data.len() > limit {
            return Err(ReadFailure::TooLarge);
        }
        out.extend_from_slice(data);
        Ok(())
    })
    .await
}

/// Read `pipe` to its end, keeping its last bytes in `tail`.
pub(crate) async fn read_tail(
    pipe: impl AsyncRead + Unpin,
    tail: &mut TailBuffer,
) -> Result<(), ReadFailure> {
    read_all(pipe, |data| {
        tail.push(data);
        Ok(())
    })
    .await
}

/// Read `pipe` to its end, handing each chunk to `take` until it fails.
async fn read_all(
    mut pipe: impl AsyncRead + Unpin,
    mut take: impl FnMut(&[u8]) -> Result<(), ReadFailure>,
) -> Result<(), ReadFailure> {
    let mut chunk = [0u8; 8192];
    loop {
        let n = pipe.read(&mut chunk).await.map_err(ReadFailure::Io)?;
        if n == 0 {
            return Ok(());
        }
        take(&chunk[..n])?;
    }
}

/// The last `cap` bytes written to a stream.
#[derive(Debug)]
pub(crate) struct TailBuffer {
    bytes: VecDeque<u8>,
    cap: usize,
    dropped: bool,
}

impl TailBuffer {
    pub(crate) fn new(cap: usize) -> Self {
        TailBuffer {
            bytes: VecDeque::new(),
            cap,
            dropped: false,
        }
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        let data = if data.len() > self.cap {
            self.dropped = true;
            self.bytes.clear();
            &data[data.len() - self.cap..]
        } else {
            data
        };
        let overflow = (self.bytes.len() + data.len()).saturating_sub(self.cap);
        if overflow > 0 {
            self.dropped = true;
            self.bytes.drain(..overflow);
        }
        self.bytes.extend(data);
    }

    /// The kept bytes as text; when the start was cut off, from the first whole line on, after a `…`.
    pub(crate) fn render(&self) -> String {
        let (a, b) = self.bytes.as_slices();
        let mut bytes = Vec::with_capacity(a.len() + b.len());
        bytes.extend_from_slice(a);
        bytes.extend_from_slice(b);
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        if self.dropped {
            if let Some(newline) = text.find('\n').filter(|&i| i + 1 < text.len()) {
                text.drain(..=newline);
            }
            text.insert(0, '…');
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_buffer_keeps_the_end_from_a_whole_line() {
        let mut tail = TailBuffer::new(16);
        tail.push(b"first line\nsecond\n");
        tail.push(b"third\n");
        assert_eq!(tail.render(), "…second\nthird\n");
        let mut short = TailBuffer::new(100);
        short.push(b"all of it\n");
        assert_eq!(short.render(), "all of it\n");
        let mut one_long_line = TailBuffer::new(4);
        one_long_line.push(b"abcdefgh");
        assert_eq!(one_long_line.render(), "…efgh");
    }
}
