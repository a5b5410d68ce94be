//! The busy-writer step (issue #16): device A starts with a backlog of dirty rows; one
//! connection writes a row every few milliseconds (as an app's UI would) while the
//! extension's connection calls `oversqlite_sync()` back to back, until the writer stops.
//! Measured: sync calls that returned normally out of all, rows the server committed
//! during the phase per second, and the writer's statement latency and longest wait for
//! the write lock. Afterwards a few syncs must drain everything (checked: no row lost).
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::device::{Device, Result};
use crate::proc_stats;
use crate::workload;

/// The writer gives up on a write after waiting this long for the lock (a failed write).
const WRITER_LOCK_BUDGET: Duration = Duration::from_secs(10);
/// The sync connection's `busy_timeout`: an app sets one, or every write the app makes
/// during a sync transaction would fail the sync with `database is locked`.
const SYNC_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Syncs allowed to send what the busy phase left pending once the writer stopped.
const DRAIN_SYNCS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Journal {
    Wal,
    Rollback,
}

impl Journal {
    pub const ALL: [Journal; 2] = [Journal::Wal, Journal::Rollback];

    pub fn label(self) -> &'static str {
        match self {
            Journal::Wal => "WAL",
            Journal::Rollback => "rollback journal",
        }
    }

    /// WAL with `synchronous = NORMAL` (the benchmark's usual app setting); a rollback
    /// journal with SQLite's defaults (`DELETE`, `synchronous = FULL`).
    fn pragmas(self) -> &'static str {
        match self {
            Journal::Wal => "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
            Journal::Rollback => "PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL;",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BusySpec {
    pub journal: Journal,
    pub seconds: f64,
    pub gap_ms: u64,
    /// The server's store when the benchmark started the server: rows committed during
    /// the phase are counted there (an external server: not measured).
    pub server_store: Option<PathBuf>,
}

/// What the writer thread saw.
#[derive(Debug, Default)]
struct Writes {
    inserts: usize,
    updates: usize,
    errors: Vec<String>,
    latencies_ms: Vec<f64>,
    /// Per statement that met a held lock: from the first busy callback to success.
    waits_ms: Vec<f64>,
}

thread_local! {
    /// When the current statement first found the lock taken.
    static BUSY_SINCE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Retries every millisecond, so a statement's wait is the time the lock was really
/// held (± 1 ms). SQLite's own `busy_timeout` sleeps 1, 2, 5, 10, … up to 100 ms between
/// retries and would add that back-off to what is measured.
fn poll_busy(count: i32) -> bool {
    let since = BUSY_SINCE.with(|s| {
        if count == 0 || s.get().is_none() {
            s.set(Some(Instant::now()));
        }
        s.get().expect("set above")
    });
    if since.elapsed() > WRITER_LOCK_BUDGET {
        return false;
    }
    std::thread::sleep(Duration::from_millis(1));
    true
}

/// One write every `gap` until `deadline`: three inserts of new rows for each update of
/// a backlog row, each statement in autocommit on its own plain connection (no extension
/// loaded: the capture triggers are plain SQL).
fn write_until(db: &Path, tag: &str, backlog: usize, gap: Duration, deadline: Instant) -> Writes {
    let mut w = Writes::default();
    let conn = match Connection::open(db).and_then(|c| c.busy_handler(Some(poll_busy)).map(|_| c)) {
        Ok(c) => c,
        Err(e) => {
            w.errors.push(format!("writer open: {e}"));
            return w;
        }
    };
    let writer_tag = format!("w{tag}");
    let mut i = 0usize;
    while Instant::now() < deadline {
        std::thread::sleep(gap);
        BUSY_SINCE.with(|s| s.set(None));
        let started = Instant::now();
        let result = if i % 4 == 3 && backlog > 0 {
            let target = workload::row(tag, (i * 7919) % backlog);
            conn.execute(
                "UPDATE users SET name = ?2, updated_at = ?3 WHERE id = ?1",
                params![target.id, format!("Busy Update {i:07}"), target.updated_at],
            )
            .map(|n| (n, false))
        } else {
            let r = workload::row(&writer_tag, i);
            conn.execute(
                "INSERT INTO users(id, name, email, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![r.id, r.name, r.email, r.created_at, r.updated_at],
            )
            .map(|n| (n, true))
        };
        w.latencies_ms.push(started.elapsed().as_secs_f64() * 1e3);
        if let Some(since) = BUSY_SINCE.with(Cell::take) {
            w.waits_ms.push(since.elapsed().as_secs_f64() * 1e3);
        }
        match result {
            Ok((1, true)) => w.inserts += 1,
            Ok((1, false)) => w.updates += 1,
            Ok((n, _)) => w.errors.push(format!("write {i} changed {n} rows")),
            Err(e) => w.errors.push(format!("write {i}: {e}")),
        }
        i += 1;
    }
    w
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// `oversqlite_<fn>: <code>: <message>` → `<code>` (the message may be prefixed, e.g.
/// by the statement text).
fn error_code(message: &str) -> String {
    let parts: Vec<&str> = message.split(": ").collect();
    parts
        .windows(2)
        .find(|w| {
            w[0].starts_with("oversqlite_")
                && w[0].chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .map(|w| w[1].to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

fn server_rows(store: &Path, sql: &str, user: &str) -> Result<i64> {
    let conn = Connection::open_with_flags(store, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("open server store {}: {e}", store.display()))?;
    conn.query_row(sql, [user], |r| r.get(0))
        .map_err(|e| format!("server store: {sql}: {e}"))
}

/// Runs the step: prepare A (configure, attach, backlog of `n` rows), the busy phase,
/// then the drain and its checks. Returns the step's detail JSON and the busy phase's
/// wall time and CPU time (the process's: sync and writer).
pub fn run(
    spec: &crate::steps::Spec,
    busy: &BusySpec,
    token: &str,
) -> Result<(Value, Duration, Duration)> {
    let d = Device::open(&spec.db, &spec.extension)?;
    d.conn
        .execute_batch(busy.journal.pragmas())
        .map_err(|e| format!("journal pragmas: {e}"))?;
    d.conn
        .busy_timeout(SYNC_BUSY_TIMEOUT)
        .map_err(|e| format!("busy_timeout: {e}"))?;
    d.configure(&spec.server_url, &spec.schema)?;
    d.set_token(token)?;
    let attach = d.call("oversqlite_attach(?1)", &[&spec.user])?;
    if attach["status"] != "connected" {
        return Err(format!("attach: {attach}"));
    }
    workload::insert_all(&d.conn, &spec.tag, spec.n).map_err(|e| format!("backlog: {e}"))?;
    let pending = |d: &Device| -> Result<i64> {
        d.conn
            .query_row("SELECT count(*) FROM oversqlite_pending", [], |r| r.get(0))
            .map_err(|e| format!("count oversqlite_pending: {e}"))
    };
    let backlog = pending(&d)?;
    if backlog != spec.n as i64 {
        return Err(format!(
            "{backlog} pending rows after a backlog of {}",
            spec.n
        ));
    }

    let deadline = Instant::now() + Duration::from_secs_f64(busy.seconds);
    let (db, tag, n, gap) = (
        spec.db.clone(),
        spec.tag.clone(),
        spec.n,
        Duration::from_millis(busy.gap_ms),
    );
    let writer = std::thread::spawn(move || write_until(&db, &tag, n, gap, deadline));
    let started = Instant::now();
    let cpu0 = proc_stats::cpu_time("self").unwrap_or_default();
    let (mut ok, mut total, mut incomplete) = (0usize, 0usize, 0usize);
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut first_error: Option<String> = None;
    let mut longest_sync = Duration::ZERO;
    // At least one sync, then back to back until the writer stops.
    while total == 0 || !writer.is_finished() {
        let t = Instant::now();
        let result = d.call("oversqlite_sync()", &[]);
        longest_sync = longest_sync.max(t.elapsed());
        total += 1;
        match result {
            Ok(report) => {
                ok += 1;
                incomplete += usize::from(report["complete"] == false);
            }
            Err(e) => {
                *errors.entry(error_code(&e)).or_default() += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    let busy_wall = started.elapsed();
    let busy_cpu = proc_stats::cpu_time("self")
        .unwrap_or_default()
        .saturating_sub(cpu0);
    let mut w = writer
        .join()
        .map_err(|_| "writer thread panicked".to_string())?;
    let user_rows_sql = format!(
        "SELECT count(*) FROM \"{}.users\" WHERE _sync_scope_id = ?1",
        spec.schema.replace('"', "\"\"")
    );
    let rows_pushed = match &busy.server_store {
        Some(store) => Some(server_rows(
            store,
            "SELECT count(*) FROM _oversync_bundle_rows WHERE user_id = ?1",
            &spec.user,
        )?),
        None => None,
    };

    // The writer stopped: a few syncs must send the rest, losing nothing.
    let mut drain_syncs = 0;
    while pending(&d)? > 0 && drain_syncs < DRAIN_SYNCS {
        drain_syncs += 1;
        d.call("oversqlite_sync()", &[])
            .map_err(|e| format!("drain sync {drain_syncs}: {e}"))?;
    }
    let left = pending(&d)?;
    let expected = (spec.n + w.inserts) as i64;
    let local = d.count()? as i64;
    if left != 0 || local != expected {
        return Err(format!(
            "after {drain_syncs} drain syncs: {left} rows pending, {local} rows (expected {expected})"
        ));
    }
    if let Some(store) = &busy.server_store {
        let remote = server_rows(store, &user_rows_sql, &spec.user)?;
        if remote != expected {
            return Err(format!(
                "the server holds {remote} rows, expected {expected}"
            ));
        }
    }

    w.latencies_ms.sort_by(f64::total_cmp);
    let max_wait = w.waits_ms.iter().copied().fold(0.0, f64::max);
    let detail = json!({
        "journal": busy.journal,
        "backlog": spec.n,
        "seconds": busy.seconds,
        "gap_ms": busy.gap_ms,
        "syncs_ok": ok,
        "syncs_total": total,
        "syncs_incomplete": incomplete,
        "sync_errors": errors,
        "first_error": first_error,
        "longest_sync_ms": longest_sync.as_secs_f64() * 1e3,
        "busy_wall_ms": busy_wall.as_secs_f64() * 1e3,
        "rows_pushed": rows_pushed,
        "writes": w.latencies_ms.len(),
        "inserts": w.inserts,
        "updates": w.updates,
        "write_errors": w.errors.len(),
        "first_write_error": w.errors.first(),
        "writer_p50_ms": percentile(&w.latencies_ms, 0.50),
        "writer_p99_ms": percentile(&w.latencies_ms, 0.99),
        "writer_max_ms": w.latencies_ms.last().copied().unwrap_or(0.0),
        "lock_waits": w.waits_ms.len(),
        "max_lock_wait_ms": max_wait,
        "drain_syncs": drain_syncs,
    });
    Ok((detail, busy_wall, busy_cpu))
}

/// The figures of one busy run, as the report reads them back from the step's detail.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BusyFigures {
    pub journal: Option<Journal>,
    pub backlog: usize,
    pub seconds: f64,
    pub gap_ms: u64,
    pub syncs_ok: usize,
    pub syncs_total: usize,
    pub syncs_incomplete: usize,
    pub sync_errors: BTreeMap<String, usize>,
    pub first_error: Option<String>,
    pub longest_sync_ms: f64,
    pub busy_wall_ms: f64,
    pub rows_pushed: Option<i64>,
    pub writes: usize,
    pub write_errors: usize,
    pub first_write_error: Option<String>,
    pub writer_p50_ms: f64,
    pub writer_p99_ms: f64,
    pub writer_max_ms: f64,
    pub lock_waits: usize,
    pub max_lock_wait_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 100.0);
        assert_eq!(percentile(&v, 0.99), 198.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn error_codes_from_messages() {
        assert_eq!(
            error_code(
                "SELECT oversqlite_sync(): oversqlite_sync: pending_local_changes: cannot pull"
            ),
            "pending_local_changes"
        );
        assert_eq!(error_code("database is locked"), "unknown");
    }

    #[test]
    fn the_writer_measures_a_held_lock() {
        // A second connection holds the write lock for 60 ms: the writer's first
        // statement waits about that long and still succeeds.
        let dir =
            std::env::temp_dir().join(format!("oversqlite-bench-busy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("w.db");
        let _ = std::fs::remove_file(&db);
        let holder = Connection::open(&db).unwrap();
        holder.execute_batch(workload::CREATE_USERS).unwrap();
        holder.execute_batch(Journal::Wal.pragmas()).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let path = db.clone();
        let writer = std::thread::spawn(move || {
            write_until(
                &path,
                "t",
                0,
                Duration::from_millis(1),
                Instant::now() + Duration::from_millis(30),
            )
        });
        std::thread::sleep(Duration::from_millis(60));
        holder.execute_batch("COMMIT").unwrap();
        let w = writer.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(w.errors.is_empty(), "{:?}", w.errors);
        assert!(w.inserts >= 1);
        let max_wait = w.waits_ms.iter().copied().fold(0.0, f64::max);
        assert!((40.0..2000.0).contains(&max_wait), "waited {max_wait} ms");
        assert!(w.latencies_ms.iter().copied().fold(0.0, f64::max) >= max_wait);
    }
}
