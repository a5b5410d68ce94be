//! Background sync (`oversqlite_auto_sync_start`, the CLI's `run`): one worker thread per
//! database file, on its own connection, that
//!
//! * syncs every `interval` (push then pull, as `sync()`),
//! * pushes `debounce` after local writes settle, noticed through `PRAGMA data_version`
//!   on its own connection (any connection or process; no table is polled),
//! * holds `GET /sync/watch` when the server advertises it and pulls on every bundle
//!   event,
//! * retries failures with capped exponential backoff and jitter, and after an
//!   authentication failure (or no token at all) waits for a different token instead
//!   of retrying (`waiting_for_token`),
//! * honours the caller's pause flags per direction.
//!
//! Every run is an ordinary engine operation (short transactions, no write
//! transaction across network I/O, the cross-process operation lock), journaled with
//! the caller's trigger. The worker never calls back into the host: its token provider
//! must be usable from any thread (see the SQL layer's `auto_sync.rs`).
mod backoff;
mod runs;
mod watch_feed;
mod worker;

use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde::Serialize;

use crate::error::Result;
use crate::journal::Trigger;
use crate::sync_client::SyncClient;

pub use backoff::delay as backoff_delay;
use worker::Wake;

/// The worker's tunables (defaults as the SQLiteNow docs suggest).
#[derive(Debug, Clone)]
pub struct AutoSyncSettings {
    /// Periodic sync.
    pub interval: Duration,
    /// Push this long after the last local write.
    pub debounce: Duration,
    /// Hold the watch stream: `None` = when the server advertises it.
    pub watch: Option<bool>,
    /// First and largest wait after failures.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// How often `PRAGMA data_version` is read (one cheap read on an idle connection).
    pub poll: Duration,
    /// Journal rows kept.
    pub journal_keep: i64,
    /// Recorded in the journal (`auto` from SQL, `cli` from the command-line tool).
    pub trigger: Trigger,
}

impl Default for AutoSyncSettings {
    fn default() -> Self {
        AutoSyncSettings {
            interval: Duration::from_millis(30_000),
            debounce: Duration::from_millis(2_000),
            watch: None,
            min_backoff: Duration::from_millis(1_000),
            max_backoff: Duration::from_millis(60_000),
            poll: Duration::from_millis(250),
            journal_keep: oversqlite_core::store::sync_log::DEFAULT_KEEP,
            trigger: Trigger::Auto,
        }
    }
}

impl AutoSyncSettings {
    /// The data_version poll period for a debounce: a quarter of it, within 25..=250 ms,
    /// so a write is noticed well inside its debounce while an idle worker wakes at
    /// most 4 times a second.
    pub fn poll_for(debounce: Duration) -> Duration {
        (debounce / 4).clamp(Duration::from_millis(25), Duration::from_millis(250))
    }
}

/// Pause flags shared with the caller (the SQL connection's pause functions).
#[derive(Clone, Default)]
pub struct Controls {
    pub uploads_paused: Arc<AtomicBool>,
    pub downloads_paused: Arc<AtomicBool>,
}

/// What the worker is doing, as `oversqlite_status()` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AutoStatus {
    pub running: bool,
    /// `starting`, `idle`, `syncing`, `backing_off`, `waiting_for_token`,
    /// `waiting_for_attach`, `stopping`, `stopped`, `failed`.
    pub state: String,
    pub runs: u64,
    pub last_run_at: Option<String>,
    pub last_operation: Option<String>,
    pub last_outcome: Option<String>,
    pub last_error_code: Option<String>,
    pub last_error: Option<String>,
    pub next_run_at: Option<String>,
    pub consecutive_failures: u32,
    pub watching: bool,
    pub advice: Option<String>,
    pub interval_ms: u64,
    pub debounce_ms: u64,
    pub max_backoff_ms: u64,
    pub watch: Option<bool>,
}

impl AutoStatus {
    fn new(s: &AutoSyncSettings) -> Self {
        AutoStatus {
            running: true,
            state: "starting".into(),
            runs: 0,
            last_run_at: None,
            last_operation: None,
            last_outcome: None,
            last_error_code: None,
            last_error: None,
            next_run_at: None,
            consecutive_failures: 0,
            watching: false,
            advice: None,
            interval_ms: s.interval.as_millis() as u64,
            debounce_ms: s.debounce.as_millis() as u64,
            max_backoff_ms: s.max_backoff.as_millis() as u64,
            watch: s.watch,
        }
    }
}

/// A running worker. Dropping it stops the worker and joins its thread.
pub struct AutoSync {
    wake: Sender<Wake>,
    stopped: Arc<AtomicBool>,
    status: Arc<Mutex<AutoStatus>>,
    thread: Option<JoinHandle<()>>,
}

impl AutoSync {
    /// Starts the worker. `open` runs on the worker thread and returns its own
    /// connection to the database file; `client` carries the token provider (usable
    /// from any thread), the resolver and the engine settings.
    pub fn start<F>(
        open: F,
        client: SyncClient,
        settings: AutoSyncSettings,
        controls: Controls,
    ) -> Result<AutoSync>
    where
        F: FnOnce() -> Result<Connection> + Send + 'static,
    {
        let (wake, inbox) = channel();
        let stopped = Arc::new(AtomicBool::new(false));
        let status = Arc::new(Mutex::new(AutoStatus::new(&settings)));
        let worker = worker::Worker {
            client,
            settings,
            controls,
            inbox,
            wake: wake.clone(),
            stopped: stopped.clone(),
            status: status.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("oversqlite-auto-sync".into())
            .spawn(move || worker.run(open))
            .map_err(|e| {
                crate::error::SyncError::new(
                    crate::error::ErrorKind::Internal,
                    format!("cannot start the sync worker thread: {e}"),
                )
            })?;
        Ok(AutoSync {
            wake,
            stopped,
            status,
            thread: Some(thread),
        })
    }

    pub fn status(&self) -> AutoStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether the worker thread has ended (stopped, or failed to open its connection).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Asks the worker to stop and waits up to `wait` for it (a run in progress
    /// finishes first). Returns true when the thread has ended and was joined; false
    /// leaves it stopping (dropping this handle joins it).
    pub fn stop(&mut self, wait: Duration) -> bool {
        self.request_stop();
        let Some(thread) = self.thread.take() else {
            return true;
        };
        // `checked_add`: a wait of Duration::MAX means "until it ends".
        let until = Instant::now().checked_add(wait);
        while !thread.is_finished() && until.is_none_or(|u| Instant::now() < u) {
            std::thread::sleep(Duration::from_millis(5));
        }
        if thread.is_finished() {
            let _ = thread.join();
            true
        } else {
            self.thread = Some(thread);
            false
        }
    }

    fn request_stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.wake.send(Wake::Stop);
        let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if st.running {
            st.state = "stopping".into();
        }
    }
}

impl Drop for AutoSync {
    fn drop(&mut self) {
        self.request_stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
