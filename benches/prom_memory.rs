//! `prom_memory`: the memory one Prometheus answer costs the decoder, measured per process.
//!
//! For answers of about 1 KB, 1 MB and 8 MiB (the largest `max_response_bytes` allows by default), the
//! parent writes the body to a file and runs itself once per size as a child, so each measurement starts
//! from a fresh heap. The child notes its idle RSS, resets its peak (`/proc/self/clear_refs`), reads the body
//! and decodes and reads it with `reduce = "avg"` on a thread of its own (as a daemon's worker does), drops
//! everything, and prints:
//!
//! - peak: the highest RSS while the answer was alive, over idle, and as a multiple of the answer's size
//!   (goal: at most 8×);
//! - settled: RSS over idle after the answer is dropped and the thread has ended (goal: within 1 MiB of
//!   idle, for every answer: what is not given back to the system after one answer stays with the daemon).
//!
//! Two shapes per size: many short series (`{"pod":"p123"}`, the worst case, about 60 bytes a series) and
//! node-exporter-like ones (five labels, about 170 bytes). `cargo bench --bench prom_memory`; a plain
//! `cargo test --all-targets` runs it too, as a smoke test.

use std::io::Write;
use std::process::Command;

use autoscale_prom::response::{Envelope, evaluate, parse};
use autoscale_prom::{OnEmpty, QueryOptions, Reduce};

const SIZES: [(&str, usize); 3] = [("1 KB", 1 << 10), ("1 MB", 1 << 20), ("8 MiB", 8 << 20)];
/// The most a peak may be over idle, as a multiple of the answer's size.
const GOAL: f64 = 8.0;
/// The most RSS may stay over idle once the answer is gone.
const SETTLED_GOAL: u64 = 1 << 20;

fn short_series(i: usize) -> String {
    format!(
        r#"{{"metric":{{"pod":"p{i}"}},"value":[1795813947.25,"{}.5"]}}"#,
        i % 97
    )
}

fn node_series(i: usize) -> String {
    format!(
        r#"{{"metric":{{"__name__":"http_requests_total","instance":"10.0.{}.{}:9100","job":"webapp","method":"GET","pod":"webapp-{i}"}},"value":[1795813947.250,"{}.25"]}}"#,
        i / 256 % 256,
        i % 256,
        i * 7
    )
}

/// A vector answer of at most `size` bytes, of as many series as fit.
fn body(size: usize, series: fn(usize) -> String) -> Vec<u8> {
    let head = br#"{"status":"success","data":{"resultType":"vector","result":["#;
    let tail = b"]}}";
    let mut out = head.to_vec();
    for i in 0.. {
        let s = series(i);
        if out.len() + s.len() + 1 + tail.len() > size {
            break;
        }
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(tail);
    out
}

/// A field of `/proc/self/status`, in bytes.
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The child: decode the answer in `path` once, print `idle peak settled series` in bytes.
fn child(path: &str) {
    let idle = status_kb("VmRSS:");
    // Reset the peak to the current RSS.
    std::fs::write("/proc/self/clear_refs", "5").expect("clear_refs");
    let path = path.to_owned();
    let series = std::thread::spawn(move || {
        let body = std::fs::read(&path).expect("the answer");
        let Ok(Envelope::Success(answer)) = parse(&body) else {
            panic!("the answer does not decode")
        };
        let options = QueryOptions::new().reduce(Reduce::Avg);
        let value = evaluate(&answer.data, &options, OnEmpty::Error).expect("a value");
        std::hint::black_box(value);
        match &answer.data {
            autoscale_prom::response::QueryData::Vector(v) => v.len(),
            _ => 0,
        }
    })
    .join()
    .expect("the decoding thread");
    let peak = status_kb("VmHWM:");
    let settled = status_kb("VmRSS:");
    println!("{idle} {peak} {settled} {series}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1]);
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let me = std::env::current_exe().expect("this benchmark's path");
    println!(
        "prom_memory: RSS over idle for one answer decoded and read with reduce = \"avg\" (goals: peak <= \
         {GOAL}x, settled within {:.0} MiB of idle)",
        mib(SETTLED_GOAL)
    );
    let mut worst: f64 = 0.0;
    let mut worst_settled: u64 = 0;
    for (shape, series) in [
        ("short series", short_series as fn(usize) -> String),
        ("node series", node_series),
    ] {
        for (name, size) in SIZES {
            let body = body(size, series);
            let path = dir.path().join("answer.json");
            std::fs::File::create(&path)
                .and_then(|mut f| f.write_all(&body))
                .expect("the answer file");
            let out = Command::new(&me)
                .arg("--child")
                .arg(&path)
                .output()
                .expect("the child");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout);
            let v: Vec<u64> = text
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            let [idle, peak, settled, count] = v[..] else {
                panic!("the child said {text:?}")
            };
            let over = peak.saturating_sub(idle);
            let ratio = over as f64 / body.len() as f64;
            if size == 8 << 20 {
                worst = worst.max(ratio);
            }
            let kept = settled.saturating_sub(idle);
            worst_settled = worst_settled.max(kept);
            println!(
                "prom_memory/{shape}/{name}: {} bytes, {count} series: idle {:.1} MiB, peak +{:.2} MiB \
                 ({ratio:.1}x the answer), settled +{:.2} MiB",
                body.len(),
                mib(idle),
                mib(over),
                mib(kept),
            );
        }
    }
    println!(
        "prom_memory: worst peak at 8 MiB: {worst:.1}x the answer ({})",
        verdict(worst <= GOAL)
    );
    println!(
        "prom_memory: worst settled: +{:.2} MiB over idle ({})",
        mib(worst_settled),
        verdict(worst_settled <= SETTLED_GOAL)
    );
}

fn verdict(met: bool) -> &'static str {
    if met {
        "within the goal"
    } else {
        "OVER THE GOAL"
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
