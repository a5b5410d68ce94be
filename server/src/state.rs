//! Shared server state: the store, tunables, per-user operation locks, the watch hub and
//! operational counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oversqlite_protocol::WatchEvent;
use tokio::sync::watch;

use crate::config::Registry;
use crate::error::{Fail, ServiceResult};
use crate::store::Store;

/// Tunables (CLI flags); defaults are the reference server's.
#[derive(Clone, Debug)]
pub struct Settings {
    pub retained_window: i64,
    pub prune_batch: i64,
    pub push_session_ttl_secs: i64,
    pub snapshot_session_ttl_secs: i64,
    pub lease_ttl_secs: i64,
    pub heartbeat: Duration,
    pub watch_enabled: bool,
    pub test_endpoints: bool,
    pub max_rows_per_snapshot_session: i64,
    pub max_bytes_per_snapshot_session: i64,
    pub jwt_secret: String,
    pub foreign_key_errors: ForeignKeyErrors,
}

/// How a push commit that violates a foreign key is answered (`--foreign-key-errors`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ForeignKeyErrors {
    /// `400 push_commit_invalid`: the client can tell the bundle will never commit as is.
    #[default]
    Ours,
    /// `500 push_session_commit_failed` with PostgreSQL's SQLSTATE 23503 in the message,
    /// as go-oversync answers (HandleCommitPushSession maps every PostgreSQL error that
    /// way). A test aid: clients must cope with servers that cannot be told from a
    /// transient fault.
    Reference,
}

pub const MAX_BUNDLES_PER_PULL: i64 = 5000;
pub const DEFAULT_BUNDLES_PER_PULL: i64 = 1000;
pub const DEFAULT_ROWS_PER_CHUNK: i64 = 1000;
pub const MAX_ROWS_PER_CHUNK: i64 = 5000;

#[derive(Default)]
pub struct Counters {
    pub history_pruned: AtomicI64,
    pub accepted_push_replay: AtomicI64,
}

impl Counters {
    pub fn bump(counter: &AtomicI64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Latest committed bundle per user, for `GET /sync/watch`. A `watch` channel keeps only
/// the newest value, which is exactly the reference's one-slot "newer replaces older" buffer.
#[derive(Default)]
pub struct WatchHub {
    channels: Mutex<HashMap<String, watch::Sender<Option<WatchEvent>>>>,
}

impl WatchHub {
    pub fn subscribe(&self, user: &str) -> watch::Receiver<Option<WatchEvent>> {
        let mut channels = self.channels.lock().expect("watch hub lock");
        channels
            .entry(user.to_string())
            .or_insert_with(|| watch::channel(None).0)
            .subscribe()
    }

    pub fn publish(&self, user: &str, event: WatchEvent) {
        let channels = self.channels.lock().expect("watch hub lock");
        if let Some(sender) = channels.get(user) {
            sender.send_replace(Some(event));
        }
    }

    pub fn subscriber_count(&self, user: &str) -> usize {
        let channels = self.channels.lock().expect("watch hub lock");
        channels.get(user).map(|s| s.receiver_count()).unwrap_or(0)
    }
}

pub struct AppState {
    pub store: Store,
    pub registry: Arc<Registry>,
    pub settings: Settings,
    user_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub watch: WatchHub,
    pub counters: Counters,
    pub shutting_down: AtomicBool,
    /// Store operations currently running (reported by /syncx/status).
    pub inflight: AtomicI64,
}

/// Decrements the in-flight counter however the operation ends.
struct InflightGuard<'a>(&'a AtomicI64);

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub type SharedState = Arc<AppState>;

impl AppState {
    pub fn new(store: Store, registry: Arc<Registry>, settings: Settings) -> AppState {
        AppState {
            store,
            registry,
            settings,
            user_locks: Mutex::new(HashMap::new()),
            watch: WatchHub::default(),
            counters: Counters::default(),
            shutting_down: AtomicBool::new(false),
            inflight: AtomicI64::new(0),
        }
    }

    fn user_lock(&self, user: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.user_locks.lock().expect("user lock map");
        locks.entry(user.to_string()).or_default().clone()
    }

    /// Runs a store operation off the async runtime.
    pub async fn run<R: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&AppState, &mut rusqlite::Connection) -> ServiceResult<R> + Send + 'static,
    ) -> ServiceResult<R> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            state.inflight.fetch_add(1, Ordering::Relaxed);
            let _guard = InflightGuard(&state.inflight);
            state.store.with_conn(|conn| work(&state, conn))
        })
        .await
        .map_err(|e| Fail::Internal(format!("store task failed: {e}")))?
    }

    /// Like [`AppState::run`], but serialised with every other mutating operation of `user`
    /// (the reference takes a per-user advisory lock); different users run in parallel.
    pub async fn run_for_user<R: Send + 'static>(
        self: &Arc<Self>,
        user: &str,
        work: impl FnOnce(&AppState, &mut rusqlite::Connection) -> ServiceResult<R> + Send + 'static,
    ) -> ServiceResult<R> {
        let lock = self.user_lock(user);
        let _guard = lock.lock().await;
        self.run(work).await
    }
}
