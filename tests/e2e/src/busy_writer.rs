//! An app that keeps writing (issue #16): one plain SQLite connection (the extension is
//! *not* loaded: the capture triggers are plain SQL, so every write is still captured)
//! that inserts and updates `users` rows every few milliseconds for a fixed time, each
//! statement in autocommit with a busy timeout, as an app's UI thread would. Used by the
//! busy-writer suite both as a thread and, through the `busy_writer` binary, as another
//! process writing the same database file.
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

/// Key of backlog row `i`; the writers update these, so every writer of one file knows
/// rows that exist from the start.
pub fn backlog_key(i: usize) -> String {
    format!("bl-{i:06}")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriterSpec {
    /// Prefix of the keys this writer inserts and of every value it writes, so no two
    /// writes anywhere store the same payload (a duplicated bundle row then means a
    /// change uploaded twice, never a coincidence).
    pub prefix: String,
    pub seconds: f64,
    /// Pause between writes, drawn uniformly from this range (ms).
    pub min_gap_ms: u64,
    pub max_gap_ms: u64,
    /// Backlog rows `0..backlog` are update targets.
    pub backlog: usize,
    /// On the device that wrote the backlog an update of a backlog row must change one
    /// row; on another device the row may not have been pulled yet, so a miss is only
    /// counted (`skipped_updates`).
    pub backlog_is_local: bool,
    /// How long a write may wait for the lock before it fails (`busy_timeout`).
    pub busy_timeout_ms: u64,
    pub seed: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WriterReport {
    pub inserts: usize,
    pub updates: usize,
    pub skipped_updates: usize,
    /// Every failed statement, with SQLite's message.
    pub errors: Vec<String>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// xorshift64*: deterministic per seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Writes for `spec.seconds`: two inserts for every update (half of the updates hit a
/// backlog row, which other devices edit too, half one of this writer's own rows).
pub fn run(db: &Path, spec: &WriterSpec) -> WriterReport {
    let mut report = WriterReport::default();
    let conn = match Connection::open(db) {
        Ok(c) => c,
        Err(e) => {
            report.errors.push(format!("open {}: {e}", db.display()));
            return report;
        }
    };
    if let Err(e) = conn.busy_timeout(Duration::from_millis(spec.busy_timeout_ms)) {
        report.errors.push(format!("busy_timeout: {e}"));
        return report;
    }
    let mut rng = Rng(spec.seed | 1);
    let mut latencies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs_f64(spec.seconds);
    let mut seq = 0usize;
    while Instant::now() < deadline {
        let gap = spec.min_gap_ms + rng.below(spec.max_gap_ms - spec.min_gap_ms + 1);
        std::thread::sleep(Duration::from_millis(gap));
        seq += 1;
        let value = format!("{}-w{seq}", spec.prefix);
        let kind = rng.below(6);
        let started = Instant::now();
        let outcome = if kind < 4 || report.inserts == 0 {
            let key = format!("{}-{:06}", spec.prefix, report.inserts);
            conn.execute(
                "INSERT INTO users (id, name, email) VALUES (?1, ?2, ?3)",
                params![key, value, format!("{value}@example.com")],
            )
            .map(|n| ("insert", n, true))
        } else {
            let (key, must_hit) = if kind == 4 && spec.backlog > 0 {
                (
                    backlog_key(rng.below(spec.backlog as u64) as usize),
                    spec.backlog_is_local,
                )
            } else {
                let own = rng.below(report.inserts as u64) as usize;
                (format!("{}-{own:06}", spec.prefix), true)
            };
            conn.execute(
                "UPDATE users SET name = ?2 WHERE id = ?1",
                params![key, value],
            )
            .map(|n| ("update", n, must_hit))
        };
        latencies.push(started.elapsed().as_secs_f64() * 1e3);
        match outcome {
            Ok(("insert", 1, _)) => report.inserts += 1,
            Ok(("update", 1, _)) => report.updates += 1,
            Ok(("update", 0, false)) => report.skipped_updates += 1,
            Ok((what, n, _)) => report
                .errors
                .push(format!("{what} #{seq} changed {n} rows, expected 1")),
            Err(e) => report.errors.push(format!("write #{seq}: {e}")),
        }
    }
    latencies.sort_by(f64::total_cmp);
    report.p50_ms = percentile(&latencies, 0.50);
    report.p99_ms = percentile(&latencies, 0.99);
    report.max_ms = latencies.last().copied().unwrap_or(0.0);
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
