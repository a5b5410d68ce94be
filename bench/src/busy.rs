//! The busy-writer step (issue #16): one connection writes a row every few milliseconds
//! (as an app's UI would) while the extension's connection calls `oversqlite_sync()` back
//! to back, until the writer stops. Two roles:
//!
//! * **pushing device** (the run): device A starts with a backlog of dirty rows,
//!   so its syncs freeze, upload and replay that backlog while the app writes;
//! * **pulling device**: device B was attached before another device pushed the backlog
//!   as one bundle, so its first sync applies that bundle while B's app writes.
//!
//! Measured: sync calls that returned normally out of all, rows the server committed
//! from the device during the phase per second, the writer's statement latency and
//! longest wait for the write lock, and the sync's own write transactions (from the
//! host, by tracing the extension's connection). Afterwards a few syncs must drain
//! everything (checked: no row lost).
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::trace::{TraceEvent, TraceEventCodes};
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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Push,
    Pull,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Push, Role::Pull];

    pub fn label(self) -> &'static str {
        match self {
            Role::Push => "pushing device",
            Role::Pull => "pulling device",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BusySpec {
    pub journal: Journal,
    #[serde(default)]
    pub role: Role,
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
    /// The longest statement minus its lock wait: the write's own work (a WAL
    /// checkpoint run by its commit, for instance).
    max_own_ms: f64,
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

/// A write transaction of the sync connection: how long it held the write lock (from the
/// end of its `BEGIN`, when the lock is taken, to the end of its `COMMIT`/`ROLLBACK`) and
/// the statements that took most of that time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TxHold {
    pub hold_ms: f64,
    /// The `COMMIT` itself (with a rollback journal it waits for readers to finish).
    pub commit_ms: f64,
    pub statements: usize,
    /// Up to three `(sql head, executions, total ms)`, most time first.
    pub top: Vec<(String, usize, f64)>,
}

/// How many of the longest transactions are kept.
const TOP_HOLDS: usize = 3;

#[derive(Default)]
struct TxTrace {
    begun: Option<Instant>,
    statements: HashMap<String, (usize, Duration)>,
    longest: Vec<TxHold>,
    transactions: usize,
    /// Transactions holding the lock longer than 10 ms and 100 ms.
    over_10ms: usize,
    over_100ms: usize,
    /// The longest statement outside an explicit transaction (with a rollback journal a
    /// long read also keeps a writer from committing).
    longest_autocommit: Option<(f64, String)>,
}

thread_local! {
    /// Filled by `trace_sync` on the sync connection's thread.
    static TX_TRACE: RefCell<TxTrace> = RefCell::new(TxTrace::default());
}

fn sql_head(sql: &str) -> String {
    let flat: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(90) {
        Some((at, _)) => format!("{}…", &flat[..at]),
        None => flat,
    }
}

/// `SQLITE_TRACE_PROFILE` callback on the sync connection: the extension runs its SQL on
/// the host's connection, so every engine statement passes here with its duration.
fn trace_sync(event: TraceEvent<'_>) {
    let TraceEvent::Profile(stmt, took) = event else {
        return;
    };
    let now = Instant::now();
    let sql = stmt.sql();
    let word = sql
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    TX_TRACE.with(|t| {
        let mut t = t.borrow_mut();
        match word.as_str() {
            "BEGIN" => {
                t.begun = Some(now);
                t.statements.clear();
            }
            "COMMIT" | "END" | "ROLLBACK" if !sql.to_ascii_uppercase().contains(" TO ") => {
                let Some(begun) = t.begun.take() else { return };
                t.transactions += 1;
                let hold_ms = (now - begun).as_secs_f64() * 1e3;
                t.over_10ms += usize::from(hold_ms > 10.0);
                t.over_100ms += usize::from(hold_ms > 100.0);
                let min_kept = t.longest.last().map_or(0.0, |h| h.hold_ms);
                if t.longest.len() < TOP_HOLDS || hold_ms > min_kept {
                    let mut top: Vec<(String, usize, f64)> = t
                        .statements
                        .iter()
                        .map(|(sql, (n, d))| (sql_head(sql), *n, d.as_secs_f64() * 1e3))
                        .collect();
                    top.sort_by(|a, b| b.2.total_cmp(&a.2));
                    top.truncate(3);
                    let statements = t.statements.values().map(|(n, _)| n).sum();
                    t.longest.push(TxHold {
                        hold_ms,
                        commit_ms: took.as_secs_f64() * 1e3,
                        statements,
                        top,
                    });
                    t.longest.sort_by(|a, b| b.hold_ms.total_cmp(&a.hold_ms));
                    t.longest.truncate(TOP_HOLDS);
                }
            }
            _ if t.begun.is_some() => {
                let e = t.statements.entry(sql.into_owned()).or_default();
                e.0 += 1;
                e.1 += took;
            }
            // The host's own call (`SELECT oversqlite_sync()`) spans the whole sync.
            "SELECT" if sql.contains("oversqlite_") => {}
            _ => {
                let ms = took.as_secs_f64() * 1e3;
                if t.longest_autocommit.as_ref().is_none_or(|(m, _)| ms > *m) {
                    t.longest_autocommit = Some((ms, sql_head(&sql)));
                }
            }
        }
    });
}

/// One write every `gap` until `deadline`: three inserts of new rows for each update (of
/// a backlog row when `backlog` rows are local, else of one of its own rows), each
/// statement in autocommit on its own plain connection (no extension loaded: the
/// capture triggers are plain SQL).
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
        let result = if i % 4 == 3 && (backlog > 0 || w.inserts > 0) {
            let target = if backlog > 0 {
                workload::row(tag, (i * 7919) % backlog)
            } else {
                workload::row(&writer_tag, (i * 7919) % w.inserts)
            };
            conn.execute(
                "UPDATE users SET name = ?2, updated_at = ?3 WHERE id = ?1",
                params![target.id, format!("Busy Update {i:07}"), target.updated_at],
            )
            .map(|n| (n, false))
        } else {
            let r = workload::row(&writer_tag, w.inserts);
            conn.execute(
                "INSERT INTO users(id, name, email, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![r.id, r.name, r.email, r.created_at, r.updated_at],
            )
            .map(|n| (n, true))
        };
        let latency = started.elapsed().as_secs_f64() * 1e3;
        w.latencies_ms.push(latency);
        let wait = BUSY_SINCE
            .with(Cell::take)
            .map_or(0.0, |since| since.elapsed().as_secs_f64() * 1e3);
        if wait > 0.0 {
            w.waits_ms.push(wait);
        }
        w.max_own_ms = w.max_own_ms.max(latency - wait);
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

/// A device of the busy step: the journal mode, a `busy_timeout` (as an app sets one),
/// configured and attached.
fn busy_device(
    db: &Path,
    spec: &crate::steps::Spec,
    busy: &BusySpec,
    token: &str,
) -> Result<Device> {
    let d = Device::open(db, &spec.extension)?;
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
    Ok(d)
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
    let d = busy_device(&spec.db, spec, busy, token)?;
    let pending = |d: &Device| -> Result<i64> {
        d.conn
            .query_row("SELECT count(*) FROM oversqlite_pending", [], |r| r.get(0))
            .map_err(|e| format!("count oversqlite_pending: {e}"))
    };
    let bundle_rows = |what: &str| -> Result<Option<i64>> {
        busy.server_store
            .as_deref()
            .map(|store| {
                server_rows(
                    store,
                    "SELECT count(*) FROM _oversync_bundle_rows WHERE user_id = ?1",
                    &spec.user,
                )
                .map_err(|e| format!("{what}: {e}"))
            })
            .transpose()
    };
    // The backlog, on this device (push) or pushed by another one as one bundle (pull).
    let local_backlog = match busy.role {
        Role::Push => {
            workload::insert_all(&d.conn, &spec.tag, spec.n)
                .map_err(|e| format!("backlog: {e}"))?;
            let backlog = pending(&d)?;
            if backlog != spec.n as i64 {
                return Err(format!(
                    "{backlog} pending rows after a backlog of {}",
                    spec.n
                ));
            }
            spec.n
        }
        Role::Pull => {
            let source = busy_device(
                &spec.db.with_file_name("device-source.db"),
                spec,
                busy,
                token,
            )?;
            workload::insert_all(&source.conn, &spec.tag, spec.n)
                .map_err(|e| format!("backlog: {e}"))?;
            let r = source.call("oversqlite_sync()", &[])?;
            if r["push_outcome"] != "committed" || pending(&source)? != 0 {
                return Err(format!("the source device did not push the backlog: {r}"));
            }
            0
        }
    };
    let rows_before = bundle_rows("rows before the phase")?;

    let deadline = Instant::now() + Duration::from_secs_f64(busy.seconds);
    let (db, tag, gap) = (
        spec.db.clone(),
        spec.tag.clone(),
        Duration::from_millis(busy.gap_ms),
    );
    let writer = std::thread::spawn(move || write_until(&db, &tag, local_backlog, gap, deadline));
    d.conn
        .trace_v2(TraceEventCodes::SQLITE_TRACE_PROFILE, Some(trace_sync));
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
    d.conn.trace_v2(TraceEventCodes::empty(), None);
    let trace = TX_TRACE.with(RefCell::take);
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
    let rows_pushed = bundle_rows("rows after the phase")?
        .zip(rows_before)
        .map(|(after, before)| after - before);

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
        "role": busy.role,
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
        "writer_max_own_ms": w.max_own_ms,
        "writes_over_10ms": w.latencies_ms.iter().filter(|l| **l > 10.0).count(),
        "transactions_over_10ms": trace.over_10ms,
        "transactions_over_100ms": trace.over_100ms,
        "drain_syncs": drain_syncs,
        "sync_transactions": trace.transactions,
        "longest_transactions": trace.longest,
        "longest_autocommit_ms": trace.longest_autocommit.as_ref().map(|(ms, _)| *ms),
        "longest_autocommit_sql": trace.longest_autocommit.map(|(_, sql)| sql),
    });
    Ok((detail, busy_wall, busy_cpu))
}

/// The figures of one busy run, as the report reads them back from the step's detail
/// (a member a step did not report reads as zero / none).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BusyFigures {
    pub journal: Option<Journal>,
    pub role: Role,
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
    pub writer_max_own_ms: f64,
    pub writes_over_10ms: usize,
    pub sync_transactions: usize,
    pub transactions_over_10ms: usize,
    pub transactions_over_100ms: usize,
    pub longest_transactions: Vec<TxHold>,
    pub longest_autocommit_ms: Option<f64>,
    pub longest_autocommit_sql: Option<String>,
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
    fn transactions_are_timed_from_the_trace() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(workload::CREATE_USERS).unwrap();
        conn.trace_v2(TraceEventCodes::SQLITE_TRACE_PROFILE, Some(trace_sync));
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        for i in 0..3 {
            let r = workload::row("t", i);
            conn.execute(
                "INSERT INTO users VALUES (?1, ?2, ?3, ?4, ?5)",
                params![r.id, r.name, r.email, r.created_at, r.updated_at],
            )
            .unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
        conn.execute_batch("COMMIT").unwrap();
        conn.query_row("SELECT count(*) FROM users", [], |r| r.get::<_, i64>(0))
            .unwrap();
        conn.trace_v2(TraceEventCodes::empty(), None);
        let t = TX_TRACE.with(RefCell::take);
        assert_eq!(t.transactions, 1);
        let hold = &t.longest[0];
        assert!(hold.hold_ms >= 20.0, "{hold:?}");
        assert_eq!(
            hold.top[0].0,
            "INSERT INTO users VALUES (?1, ?2, ?3, ?4, ?5)"
        );
        assert_eq!(hold.top[0].1, 3);
        let (_, sql) = t.longest_autocommit.unwrap();
        assert_eq!(sql, "SELECT count(*) FROM users");
        assert_eq!((t.over_10ms, t.over_100ms), (1, 0));
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
