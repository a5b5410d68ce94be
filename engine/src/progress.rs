//! Live progress of the operation running on a database file, readable from any thread
//! (any connection of the process): a process-wide registry keyed by the file's
//! canonical path, one entry per running operation.
//!
//! The operation's own thread holds its entry in a thread-local slot (set by
//! [`crate::journal`]'s wrapper), so the loops deep inside push, pull and snapshot update
//! it with a thread-local read and an atomic add: no lock, no allocation. They update
//! once per chunk, bundle or page, never per row.
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rusqlite::Connection;
use serde::Serialize;

/// What the running operation is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Phase {
    Starting = 0,
    Uploading = 1,
    Downloading = 2,
    StagingSnapshot = 3,
    ApplyingSnapshot = 4,
    Finishing = 5,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            1 => Phase::Uploading,
            2 => Phase::Downloading,
            3 => Phase::StagingSnapshot,
            4 => Phase::ApplyingSnapshot,
            5 => Phase::Finishing,
            _ => Phase::Starting,
        }
    }
}

/// One running operation's counters. Totals are -1 while unknown.
pub struct OpProgress {
    pub operation: &'static str,
    pub trigger: &'static str,
    pub started_at: String,
    phase: AtomicU8,
    rows_up: AtomicI64,
    rows_up_total: AtomicI64,
    rows_down: AtomicI64,
    rows_down_total: AtomicI64,
    bytes_up: AtomicI64,
    bytes_down: AtomicI64,
}

/// A copy of an entry's counters, as `oversqlite_progress()` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgressSnapshot {
    pub operation: String,
    pub trigger: String,
    pub phase: Phase,
    pub started_at: String,
    pub rows_up: i64,
    pub rows_up_total: Option<i64>,
    pub rows_down: i64,
    pub rows_down_total: Option<i64>,
    pub bytes_up: i64,
    pub bytes_down: i64,
}

/// Final counters, for the journal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub rows_up: i64,
    pub rows_down: i64,
    pub bytes_up: i64,
    pub bytes_down: i64,
}

impl OpProgress {
    fn new(operation: &'static str, trigger: &'static str, started_at: String) -> Self {
        OpProgress {
            operation,
            trigger,
            started_at,
            phase: AtomicU8::new(Phase::Starting as u8),
            rows_up: AtomicI64::new(0),
            rows_up_total: AtomicI64::new(-1),
            rows_down: AtomicI64::new(0),
            rows_down_total: AtomicI64::new(-1),
            bytes_up: AtomicI64::new(0),
            bytes_down: AtomicI64::new(0),
        }
    }

    pub fn snapshot(&self) -> ProgressSnapshot {
        let total = |a: &AtomicI64| Some(a.load(Ordering::Relaxed)).filter(|v| *v >= 0);
        ProgressSnapshot {
            operation: self.operation.to_string(),
            trigger: self.trigger.to_string(),
            phase: Phase::from_u8(self.phase.load(Ordering::Relaxed)),
            started_at: self.started_at.clone(),
            rows_up: self.rows_up.load(Ordering::Relaxed),
            rows_up_total: total(&self.rows_up_total),
            rows_down: self.rows_down.load(Ordering::Relaxed),
            rows_down_total: total(&self.rows_down_total),
            bytes_up: self.bytes_up.load(Ordering::Relaxed),
            bytes_down: self.bytes_down.load(Ordering::Relaxed),
        }
    }

    pub fn totals(&self) -> Totals {
        Totals {
            rows_up: self.rows_up.load(Ordering::Relaxed),
            rows_down: self.rows_down.load(Ordering::Relaxed),
            bytes_up: self.bytes_up.load(Ordering::Relaxed),
            bytes_down: self.bytes_down.load(Ordering::Relaxed),
        }
    }
}

type Registry = Mutex<HashMap<String, Arc<OpProgress>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<OpProgress>>> = const { RefCell::new(None) };
}

/// The registry key of `conn`'s main database: its canonical path; an in-memory or
/// temporary database (no path) is keyed by the connection's address, as nobody else
/// can open it.
pub fn db_key(conn: &Connection) -> String {
    match conn.path().filter(|p| !p.is_empty()) {
        Some(p) => std::fs::canonicalize(p)
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_else(|_| p.to_string()),
        None => format!("memory:{:p}", conn as *const Connection),
    }
}

/// Registration of one operation; dropping it removes the entry and clears the thread's
/// slot. A nested operation (one public call running another) keeps the outer entry.
pub struct Tracking {
    key: String,
    entry: Arc<OpProgress>,
    owner: bool,
}

impl Tracking {
    pub fn begin(conn: &Connection, operation: &'static str, trigger: &'static str) -> Tracking {
        if let Some(outer) = CURRENT.with(|c| c.borrow().clone()) {
            return Tracking {
                key: String::new(),
                entry: outer,
                owner: false,
            };
        }
        let key = db_key(conn);
        let started = oversqlite_protocol::values::rfc3339::format_millis(now_millis());
        let entry = Arc::new(OpProgress::new(operation, trigger, started));
        // A second operation on the same file (another connection) waits for or fails
        // on the operation lock; the first one's entry stays the one shown.
        let mut map = registry().lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key.clone()).or_insert_with(|| entry.clone());
        drop(map);
        CURRENT.with(|c| *c.borrow_mut() = Some(entry.clone()));
        Tracking {
            key,
            entry,
            owner: true,
        }
    }

    pub fn entry(&self) -> &OpProgress {
        &self.entry
    }
}

impl Drop for Tracking {
    fn drop(&mut self) {
        if !self.owner {
            return;
        }
        CURRENT.with(|c| *c.borrow_mut() = None);
        let mut map = registry().lock().unwrap_or_else(|p| p.into_inner());
        if map
            .get(&self.key)
            .is_some_and(|e| Arc::ptr_eq(e, &self.entry))
        {
            map.remove(&self.key);
        }
    }
}

/// The operation running on `conn`'s database file in this process, if any.
pub fn current_for(conn: &Connection) -> Option<ProgressSnapshot> {
    let key = db_key(conn);
    let map = registry().lock().unwrap_or_else(|p| p.into_inner());
    map.get(&key).map(|e| e.snapshot())
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn with_current(f: impl FnOnce(&OpProgress)) {
    CURRENT.with(|c| {
        if let Some(e) = c.borrow().as_ref() {
            f(e)
        }
    });
}

pub(crate) fn set_phase(phase: Phase) {
    with_current(|e| e.phase.store(phase as u8, Ordering::Relaxed));
}

/// Rows uploaded so far in this push: adds `n`; `total` (when known) replaces the total.
pub(crate) fn rows_up(n: i64, total: Option<i64>) {
    with_current(|e| {
        if let Some(t) = total {
            e.rows_up_total.store(t, Ordering::Relaxed);
        }
        e.rows_up.fetch_add(n, Ordering::Relaxed);
    });
}

/// A push's total is at least `total` rows (a push of several bundles: what was pending
/// when it started, raised when rows written meanwhile ride along). Never lowered.
pub(crate) fn rows_up_total_at_least(total: i64) {
    with_current(|e| {
        e.rows_up_total.fetch_max(total, Ordering::Relaxed);
    });
}

/// A bundle of `rows` starts uploading: the total covers the rows already uploaded by
/// this operation's earlier bundles plus this one's.
pub(crate) fn rows_up_bundle(rows: i64) {
    with_current(|e| {
        let done = e.rows_up.load(Ordering::Relaxed);
        e.rows_up_total.fetch_max(done + rows, Ordering::Relaxed);
    });
}

pub(crate) fn rows_down(n: i64, total: Option<i64>) {
    with_current(|e| {
        if let Some(t) = total {
            e.rows_down_total.store(t, Ordering::Relaxed);
        }
        e.rows_down.fetch_add(n, Ordering::Relaxed);
    });
}

pub(crate) fn bytes(up: usize, down: usize) {
    with_current(|e| {
        e.bytes_up.fetch_add(up as i64, Ordering::Relaxed);
        e.bytes_down.fetch_add(down as i64, Ordering::Relaxed);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_is_visible_from_another_thread_until_it_ends() {
        let dir = std::env::temp_dir().join(format!("ovs-progress-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.db");
        let conn = Connection::open(&path).unwrap();
        assert!(current_for(&conn).is_none());
        let t = Tracking::begin(&conn, "push", "sql");
        set_phase(Phase::Uploading);
        rows_up(200, Some(1000));
        rows_up(200, None);
        bytes(10, 5);
        let other = path.clone();
        let seen = std::thread::spawn(move || current_for(&Connection::open(other).unwrap()))
            .join()
            .unwrap()
            .unwrap();
        assert_eq!(seen.operation, "push");
        assert_eq!(seen.phase, Phase::Uploading);
        assert_eq!((seen.rows_up, seen.rows_up_total), (400, Some(1000)));
        assert_eq!((seen.rows_down_total, seen.bytes_up), (None, 10));
        // A nested begin keeps the outer entry.
        drop(Tracking::begin(&conn, "pull", "sql"));
        assert_eq!(current_for(&conn).unwrap().operation, "push");
        assert_eq!(t.entry().totals().rows_up, 400);
        drop(t);
        assert!(current_for(&conn).is_none());
        rows_up(1, None); // no entry: ignored
    }
}
