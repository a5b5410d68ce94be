//! The auto-sync step (issue #11): two devices of one user in this process, both running
//! the background worker (`oversqlite_auto_sync_start`, `debounce_ms` 50, watch on).
//!
//! * Idle cost (measured first): both workers with the default options (periodic sync
//!   every 30 s, debounce 2 s, watch on), then nothing happens for `idle_seconds`; the
//!   CPU time and context switches (voluntary + involuntary = wakeups) of the workers'
//!   threads (`oversqlite-auto-sync`, `oversqlite-watch`) are read from /proc/self/task and given per worker
//!   and minute.
//! * Latency: a row committed on A, then B's connection is polled every millisecond
//!   until the row is there; one write at a time (each its own debounce), `writes` times.
//!   Nobody calls a sync function.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::device::{Device, Result};
use crate::steps::Spec;
use crate::workload;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AutoSpec {
    pub writes: usize,
    pub idle_seconds: f64,
}

const LATENCY_OPTIONS: &str = r#"{"debounce_ms": 50}"#;
/// A write not on B after this long fails the step.
const WRITE_LIMIT: Duration = Duration::from_secs(30);

fn device(spec: &Spec, name: &str, token: &str) -> Result<Device> {
    let db = spec.db.with_file_name(format!("{name}.db"));
    let d = Device::open(&db, &spec.extension)?;
    d.configure(&spec.server_url, &spec.schema)?;
    d.set_token(token)?;
    let report = d.call("oversqlite_attach(?1)", &[&spec.user])?;
    if report["status"] != "connected" {
        return Err(format!("attach {name}: {report}"));
    }
    Ok(d)
}

fn start(d: &Device, options: &str) -> Result<()> {
    let st = d.call("oversqlite_auto_sync_start(?1)", &[options])?;
    if st["running"] != true {
        return Err(format!("auto sync did not start: {st}"));
    }
    let t = Instant::now();
    while d.call("oversqlite_auto_sync_status()", &[])?["watching"] != true {
        if t.elapsed() > Duration::from_secs(20) {
            return Err("the worker never opened the watch stream".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn stop(d: &Device) -> Result<()> {
    let st = d.call("oversqlite_auto_sync_stop()", &[])?;
    if st["stopped"] != true {
        return Err(format!("auto sync did not stop: {st}"));
    }
    Ok(())
}

/// (CPU ticks, context switches, thread names) of this process's `oversqlite-*` threads.
fn worker_threads() -> (u64, u64, Vec<String>) {
    let mut ticks = 0;
    let mut switches = 0;
    let mut threads = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return (0, 0, Vec::new());
    };
    for task in dir.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        // The worker ("oversqlite-auto-sync") and its watch reader ("oversqlite-watch"),
        // as the kernel shortens them to 15 bytes; not this program ("oversqlite-bench").
        if !(comm.starts_with("oversqlite-auto") || comm.starts_with("oversqlite-watc")) {
            continue;
        }
        threads.push(comm.trim().to_string());
        if let Ok(stat) = std::fs::read_to_string(path.join("stat")) {
            if let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) {
                let f: Vec<&str> = after.split_whitespace().collect();
                ticks += f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                    + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            }
        }
        if let Ok(status) = std::fs::read_to_string(path.join("status")) {
            for line in status.lines() {
                if let Some(v) = line
                    .strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
                {
                    switches += v.trim().parse::<u64>().unwrap_or(0);
                }
            }
        }
    }
    (ticks, switches, threads)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn run(spec: &Spec, auto: &AutoSpec, token: &str) -> Result<Value> {
    let a = device(spec, "auto-a", token)?;
    let b = device(spec, "auto-b", token)?;
    // Idle first: default options, nothing to do. (First, because a stopped worker's
    // watch reader ends only at the server's next heartbeat; it must not be counted.)
    start(&a, "{}")?;
    start(&b, "{}")?;
    std::thread::sleep(Duration::from_millis(500));
    let (t0, s0, threads) = worker_threads();
    let began = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(auto.idle_seconds));
    let (t1, s1, _) = worker_threads();
    let measured = began.elapsed().as_secs_f64();
    let minutes = measured / 60.0;
    stop(&a)?;
    stop(&b)?;
    start(&a, LATENCY_OPTIONS)?;
    start(&b, LATENCY_OPTIONS)?;
    let mut latencies = Vec::with_capacity(auto.writes);
    let mut probe = b
        .conn
        .prepare("SELECT COUNT(*) FROM users WHERE id = ?1")
        .map_err(|e| format!("prepare probe: {e}"))?;
    for i in 0..auto.writes {
        let r = workload::row(&spec.tag, i);
        let t = Instant::now();
        a.conn
            .execute(
                "INSERT INTO users(id, name, email, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![r.id, r.name, r.email, r.created_at, r.updated_at],
            )
            .map_err(|e| format!("insert on A: {e}"))?;
        loop {
            let n: i64 = probe
                .query_row([&r.id], |row| row.get(0))
                .map_err(|e| format!("probe B: {e}"))?;
            if n == 1 {
                break;
            }
            if t.elapsed() > WRITE_LIMIT {
                return Err(format!("write {i} not on B after {WRITE_LIMIT:?}"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
        // Let both workers settle (A's pull after its push) before the next write.
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(probe);
    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
    stop(&a)?;
    stop(&b)?;

    let hz = 100.0; // USER_HZ
    let cpu_ms = (t1.saturating_sub(t0)) as f64 / hz * 1e3;
    Ok(json!({
        "writes": auto.writes,
        "latency_ms": {
            "p50": percentile(&sorted, 50.0),
            "p95": percentile(&sorted, 95.0),
            "max": sorted.last().copied().unwrap_or(0.0),
        },
        "idle": {
            "seconds": measured,
            "workers": 2,
            "threads": threads.len(),
            "thread_names": threads,
            "cpu_ms_per_min_per_worker": cpu_ms / minutes / 2.0,
            "wakeups_per_min_per_worker": (s1.saturating_sub(s0)) as f64 / minutes / 2.0,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 10.0);
        assert_eq!(percentile(&v, 95.0), 19.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
