//! Stopping a call that waits on the network: the host's `sqlite3_interrupt()` on the
//! caller's connection, and an overall per-call deadline.
//!
//! A blocking HTTP exchange cannot be cut short from outside (ureq reads with long
//! socket timeouts), so every exchange runs on a detached thread while the waiting
//! thread polls every [`POLL`]: on the caller's thread it checks the connection for an
//! interrupt and the deadline, on a helper thread the shared [`CallStop`] flag that the
//! caller's thread raises. A call that gives up returns at once; the abandoned exchange
//! finishes (or times out) on its own thread, and its answer is dropped unread. Nothing
//! local is written while an exchange is in flight (no transaction spans I/O), so an
//! interrupted call leaves local state as it was, or resumable exactly as after a crash.
//!
//! How an interrupt is seen: `sqlite3_interrupt` sets a flag on the connection that
//! SQLite keeps set while any statement runs (here: the host's `SELECT oversqlite_…()`)
//! and that makes preparing or stepping any further statement fail with
//! `SQLITE_INTERRUPT`. Preparing a trivial statement is therefore a probe that works on
//! every SQLite version (`sqlite3_is_interrupted` needs 3.41 and is not in the
//! extension API table this crate is built against). Without a running statement (a
//! Rust host calling the engine directly) there is nothing to interrupt, as in SQLite.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::error::{ErrorKind, Result, SyncError};

/// How often a waiting thread looks at the interrupt flag and the deadline.
pub const POLL: Duration = Duration::from_millis(100);

const RUNNING: u8 = 0;
const INTERRUPTED: u8 = 1;
const TIMED_OUT: u8 = 2;

/// Why a call stopped, shared by the caller's thread and its helper threads.
#[derive(Debug)]
pub struct CallStop {
    state: AtomicU8,
    deadline: Option<Instant>,
    /// The configured timeout, for the message.
    timeout: Option<Duration>,
}

impl CallStop {
    /// A call that stops only when interrupted (`timeout` None) or also after `timeout`.
    pub fn new(timeout: Option<Duration>) -> Arc<CallStop> {
        Arc::new(CallStop {
            state: AtomicU8::new(RUNNING),
            deadline: timeout.map(|t| Instant::now() + t),
            timeout,
        })
    }

    /// Records an interrupt seen by the caller's thread.
    pub fn interrupt(&self) {
        let _ =
            self.state
                .compare_exchange(RUNNING, INTERRUPTED, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The deadline, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether the deadline has passed (and records it).
    pub fn timed_out(&self) -> bool {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            let _ =
                self.state
                    .compare_exchange(RUNNING, TIMED_OUT, Ordering::SeqCst, Ordering::SeqCst);
            return self.state.load(Ordering::SeqCst) == TIMED_OUT;
        }
        false
    }

    /// `Err(interrupted | timeout)` once the call must stop; `what` names the step.
    pub fn check(&self, what: &str) -> Result<()> {
        self.timed_out();
        match self.state.load(Ordering::SeqCst) {
            INTERRUPTED => Err(interrupted_error(what)),
            TIMED_OUT => Err(timeout_error(what, self.timeout)),
            _ => Ok(()),
        }
    }
}

pub fn interrupted_error(what: &str) -> SyncError {
    SyncError::new(
        ErrorKind::Interrupted,
        format!("{what} was interrupted (sqlite3_interrupt) while waiting for the server; nothing unsaved was lost and local state is as before or resumable: call the function again to continue"),
    )
}

fn timeout_error(what: &str, timeout: Option<Duration>) -> SyncError {
    let ms = timeout.map(|t| t.as_millis()).unwrap_or_default();
    SyncError::new(
        ErrorKind::Timeout,
        format!("{what} did not finish within the call timeout of {ms} ms (oversqlite_set_call_timeout); the server is slow or unreachable: check the server and the network, then call again (local state is kept and resumes), or raise the timeout"),
    )
}

/// What the caller's thread checks while it waits: its connection (for an interrupt)
/// and the call's [`CallStop`].
#[derive(Clone)]
pub struct Limits<'a> {
    pub conn: Option<&'a Connection>,
    pub stop: Arc<CallStop>,
}

impl<'a> Limits<'a> {
    /// No connection to watch and no deadline: waits run inline, as before.
    pub fn none() -> Limits<'a> {
        Limits {
            conn: None,
            stop: CallStop::new(None),
        }
    }

    pub fn new(conn: &'a Connection, stop: Arc<CallStop>) -> Limits<'a> {
        Limits {
            conn: Some(conn),
            stop,
        }
    }

    /// Whether waits must be watched at all (otherwise they run inline).
    fn watched(&self) -> bool {
        self.conn.is_some() || self.stop.deadline.is_some()
    }

    /// Looks for an interrupt on the connection (see the module note), then at the
    /// shared state and the deadline.
    pub fn check(&self, what: &str) -> Result<()> {
        if let Some(conn) = self.conn {
            if is_interrupted(conn) {
                self.stop.interrupt();
            }
        }
        self.stop.check(what)
    }

    /// Runs `work` (a blocking exchange) so that this thread can give up on it: inline
    /// when nothing is watched, else on a detached thread polled every [`POLL`].
    pub fn wait<T: Send + 'static>(
        &self,
        what: &str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        if !self.watched() {
            return Ok(work());
        }
        self.check(what)?;
        detached(work, || self.check(what))
    }
}

/// True when the connection carries a pending `sqlite3_interrupt`.
fn is_interrupted(conn: &Connection) -> bool {
    match conn.prepare("SELECT 1") {
        Err(e) => e
            .sqlite_error()
            .is_some_and(|f| f.code == rusqlite::ErrorCode::OperationInterrupted),
        Ok(_) => false,
    }
}

/// Runs `work` on a detached thread; every [`POLL`] calls `check`, returning its error
/// (the thread is abandoned, its result dropped) or `work`'s result once it arrives.
pub fn detached<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
    check: impl Fn() -> Result<()>,
) -> Result<T> {
    let (tx, rx) = sync_channel::<T>(1);
    std::thread::Builder::new()
        .name("oversqlite-request".into())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|e| {
            SyncError::new(
                ErrorKind::Internal,
                format!("starting a request thread failed: {e}"),
            )
        })?;
    loop {
        match rx.recv_timeout(POLL) {
            Ok(v) => return Ok(v),
            Err(RecvTimeoutError::Timeout) => check()?,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(SyncError::new(
                    ErrorKind::Internal,
                    "a request thread ended without an answer (it panicked)",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_stops_a_wait_and_an_interrupt_wins_over_it() {
        let stop = CallStop::new(Some(Duration::from_millis(150)));
        let limits = Limits {
            conn: None,
            stop: stop.clone(),
        };
        let started = Instant::now();
        let e = limits
            .wait("pull request", || {
                std::thread::sleep(Duration::from_secs(5))
            })
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout);
        assert!(e.message.contains("150 ms"), "{}", e.message);
        assert!(started.elapsed() < Duration::from_secs(2));
        // Once timed out, a later interrupt does not change the reason.
        stop.interrupt();
        assert_eq!(stop.check("x").unwrap_err().kind, ErrorKind::Timeout);

        let stop = CallStop::new(None);
        stop.interrupt();
        assert_eq!(stop.check("x").unwrap_err().kind, ErrorKind::Interrupted);
    }

    #[test]
    fn unwatched_waits_run_inline_and_answers_come_back() {
        assert_eq!(Limits::none().wait("x", || 7).unwrap(), 7);
        let conn = Connection::open_in_memory().unwrap();
        let limits = Limits::new(&conn, CallStop::new(None));
        assert_eq!(limits.wait("x", || 8).unwrap(), 8);
        // No statement is running here, so there is nothing to interrupt.
        conn.get_interrupt_handle().interrupt();
        assert!(limits.check("x").is_ok());
    }
}
