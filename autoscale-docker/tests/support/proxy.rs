//! A unix-socket proxy between a Docker client and the daemon's socket, whose event streams can be cut: the
//! stand-in for a network or daemon hiccup in the event-stream tests.
//!
//! While cut, every connection it carries is closed at once, and a new connection is closed as soon as it asks
//! for `/events`; other requests pass, so reads (and the polling that replaces the stream) still work.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::{AbortHandle, JoinHandle};

#[derive(Debug, Default)]
struct State {
    cut: AtomicBool,
    connections: Mutex<Vec<AbortHandle>>,
    /// Requests for `/events` refused while cut.
    refused: AtomicU64,
}

/// The proxy; it stops (and closes what it carries) when dropped.
#[derive(Debug)]
pub struct Proxy {
    path: PathBuf,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// A proxy listening at `dir/proxy.sock`, forwarding to the socket at `upstream`.
    pub fn start(upstream: &Path, dir: &Path) -> Proxy {
        let path = dir.join("proxy.sock");
        let listener = UnixListener::bind(&path).expect("the proxy binds its socket");
        let state = Arc::new(State::default());
        let shared = Arc::clone(&state);
        let upstream = upstream.to_owned();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let connection = tokio::spawn(carry(client, upstream.clone(), Arc::clone(&shared)));
                let mut open = shared.connections.lock().unwrap();
                open.retain(|c| !c.is_finished());
                open.push(connection.abort_handle());
            }
        });
        Proxy { path, state, task }
    }

    /// The `DOCKER_HOST` of the proxy.
    pub fn host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Close every connection, and refuse event streams until [`restore`](Self::restore).
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        for connection in self.state.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    /// Let event streams through again.
    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }

    /// How many event streams were refused while cut.
    pub fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// Carry one connection both ways, closing it when it asks for `/events` while cut.
async fn carry(client: UnixStream, upstream: PathBuf, state: Arc<State>) {
    let Ok(server) = UnixStream::connect(&upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = async {
        let mut buffer = vec![0_u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let chunk = &buffer[..n];
            if state.cut.load(Ordering::SeqCst) && chunk.windows(7).any(|w| w == b"/events") {
                state.refused.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if server_write.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    let answers = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    };
    // Whichever side ends first ends the connection: both halves are dropped here.
    tokio::select! {
        () = requests => {}
        () = answers => {}
    }
}
