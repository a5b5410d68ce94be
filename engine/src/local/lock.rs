//! Cross-process "operation in progress" guard.
//!
//! Two processes (or two connections) syncing one database file must never run a
//! push/pull/rebuild concurrently: both could upload the same frozen bundle, and the
//! loser's commit would be refused with `source_sequence_changed`, forcing a needless
//! source recovery. The guard is an exclusive advisory lock (`flock`) on a sidecar
//! file `<database>-oversqlite.lock`: the OS releases it when the holder exits or
//! crashes, so no stale lock can survive. A concurrent operation fails at once with
//! `sync_in_progress` (never queues). In-memory and temporary databases cannot be
//! shared across connections and take no lock. If the sidecar cannot be created
//! (read-only directory) the operation runs unguarded: the durable state checks
//! inside `BEGIN IMMEDIATE` still prevent corruption, only the wasted recovery
//! above remains possible.

use std::fs::{File, OpenOptions, TryLockError};

use rusqlite::Connection;

use crate::error::{ErrorKind, Result, SyncError};

pub struct OperationLock {
    _file: Option<File>,
}

impl OperationLock {
    pub fn none() -> Self {
        OperationLock { _file: None }
    }

    /// Takes the lock, polling for up to `wait` while another holder has it; past that,
    /// for as long as `wait_longer` says (it also stops the wait with an error, e.g. an
    /// interrupt).
    pub fn acquire_waiting(
        conn: &Connection,
        wait: std::time::Duration,
        wait_longer: impl Fn() -> Result<bool>,
    ) -> Result<Self> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            match Self::acquire(conn) {
                Err(e) if e.kind == ErrorKind::SyncInProgress => {
                    if std::time::Instant::now() >= deadline && !wait_longer()? {
                        return Err(e);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    pub fn acquire(conn: &Connection) -> Result<Self> {
        let path = match conn.path() {
            Some(p) if !p.is_empty() && p != ":memory:" => p.to_string(),
            _ => return Ok(OperationLock { _file: None }),
        };
        let file = match OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(format!("{path}-oversqlite.lock"))
        {
            Ok(f) => f,
            Err(_) => return Ok(OperationLock { _file: None }),
        };
        match file.try_lock() {
            Ok(()) => Ok(OperationLock { _file: Some(file) }),
            Err(TryLockError::WouldBlock) => Err(SyncError::new(
                ErrorKind::SyncInProgress,
                "another sync operation is running on this database (this or another process); retry when it finishes",
            )),
            Err(TryLockError::Error(_)) => Ok(OperationLock { _file: None }),
        }
    }
}

impl Drop for OperationLock {
    /// Unlocks explicitly instead of relying on `close`: a `flock` belongs to the open
    /// file description, and a process forked by another thread of the host (between its
    /// `fork` and `exec`) holds a duplicate of our descriptor, which would keep the lock
    /// alive after our `close` and bounce the next operation with `sync_in_progress`.
    fn drop(&mut self) {
        if let Some(file) = self._file.take() {
            let _ = file.unlock();
        }
    }
}
