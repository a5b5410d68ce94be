//! `oversqlite_auto_sync_start([options_json])`, `oversqlite_auto_sync_stop()` and
//! `oversqlite_auto_sync_status()`: the engine's background worker
//! (`oversqlite_engine::auto`) for this connection's database file, on a connection of
//! its own. One worker per file in the process; it stops when this connection closes
//! (the per-connection state holding it is dropped, which joins the thread).
//!
//! Tokens. The worker runs on its own thread and never calls into the host's
//! connection: a host-registered `oversqlite_auth_token()` lives there, and the host may
//! keep that connection busy (a serialized-mode host holds its mutex for a whole
//! statement), so calling it from the worker could deadlock. The worker therefore reads,
//! in order: the token set by `oversqlite_set_token()` (a shared slot), the last token
//! the host function returned on this connection (refreshed at start, by
//! `oversqlite_auto_sync_status()` and by every sync call that asked for a token), then
//! `OVERSQLITE_TOKEN` / `OVERSQLITE_TOKEN_FILE`. When the server refuses the token, or
//! there is none, the worker waits (`waiting_for_token`) until one of those yields a
//! different token; it never hammers the server.
//!
//! Conflicts: the worker resolves with this connection's `server_wins` / `client_wins`
//! policies as they are at start. A `custom` policy is a host SQL function on this
//! connection, which the worker cannot call safely, so start refuses while one is set.
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use oversqlite_engine::auto::{AutoSync, AutoSyncSettings, Controls};
use oversqlite_engine::remote::auth::{
    EnvToken, SharedToken, TokenProvider, TOKEN_ENV, TOKEN_FILE_ENV,
};
use oversqlite_engine::{
    ClientWins, ConflictContext, ConflictResolver, ErrorKind, Resolution, Result, ServerWins,
    SyncClient, SyncError,
};
use rusqlite::Connection;
use serde_json::{json, Value};

use super::ops_fns::{text, to_json};
use super::resolver::{Policies, Policy};
use super::state::{ConnSync, LOCK_WAIT};
use crate::sql::args::Args;

/// How long `oversqlite_auto_sync_stop()` waits for a run in progress to finish.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// Files with a running worker in this process.
fn running_files() -> &'static Mutex<HashSet<String>> {
    static FILES: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    FILES.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A worker and the file it claims; dropping it stops the worker, joins the thread and
/// releases the file.
pub struct Running {
    key: String,
    worker: AutoSync,
}

impl Drop for Running {
    fn drop(&mut self) {
        // Join before releasing the file, so a new worker never overlaps this one.
        self.worker.stop(Duration::MAX);
        debug_assert!(self.worker.is_finished());
        running_files()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

/// The worker's token chain (see the module docs); safe on any thread.
struct WorkerTokens {
    explicit: SharedToken,
    host_cache: SharedToken,
    from_env: Mutex<bool>,
}

impl TokenProvider for WorkerTokens {
    fn token(&self) -> Result<Option<String>> {
        *self.from_env.lock().unwrap_or_else(|p| p.into_inner()) = false;
        for slot in [&self.explicit, &self.host_cache] {
            if let Some(t) = slot.get().filter(|t| !t.trim().is_empty()) {
                return Ok(Some(t));
            }
        }
        if let Some(t) = EnvToken.token()? {
            *self.from_env.lock().unwrap_or_else(|p| p.into_inner()) = true;
            return Ok(Some(t));
        }
        Err(SyncError::new(
            ErrorKind::TokenUnavailable,
            format!("the sync worker has no bearer token: call oversqlite_set_token(token), set {TOKEN_ENV} or {TOKEN_FILE_ENV}, or let oversqlite_auth_token() answer on the connection that started it"),
        ))
    }

    fn token_after_unauthorized(&self) -> Result<Option<String>> {
        // Only a token file can change by itself between two requests.
        if *self.from_env.lock().unwrap_or_else(|p| p.into_inner()) {
            EnvToken.token_after_unauthorized()
        } else {
            Ok(None)
        }
    }
}

/// The connection's built-in policies as they were at start.
struct FixedPolicies(Policies);

impl FixedPolicies {
    fn of(&self, table: &str) -> &Policy {
        self.0
            .tables
            .get(&table.to_ascii_lowercase())
            .unwrap_or(&self.0.default)
    }
}

impl ConflictResolver for FixedPolicies {
    fn resolve(&self, c: &ConflictContext) -> Resolution {
        match self.of(&c.table) {
            Policy::ClientWins => ClientWins.resolve(c),
            _ => ServerWins.resolve(c),
        }
    }

    fn policy(&self, table: &str) -> String {
        match self.of(table) {
            Policy::ClientWins => "client_wins".into(),
            _ => "server_wins".into(),
        }
    }
}

fn invalid(message: String) -> SyncError {
    SyncError::new(ErrorKind::InvalidArgument, message)
}

/// Parses the options object; nothing is started or changed when it is wrong.
fn settings_from(options: Option<String>) -> Result<AutoSyncSettings> {
    let mut s = AutoSyncSettings::default();
    let Some(text) = options else {
        s.poll = AutoSyncSettings::poll_for(s.debounce);
        return Ok(s);
    };
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| invalid(format!("options must be a JSON object: {e}")))?;
    let Value::Object(map) = v else {
        return Err(invalid(
            "options must be a JSON object such as '{\"interval_ms\": 30000}'".into(),
        ));
    };
    let mut poll = None;
    for (k, v) in &map {
        let ms = |min: u64| -> Result<Duration> {
            match v.as_u64() {
                Some(n) if n >= min => Ok(Duration::from_millis(n)),
                _ => Err(invalid(format!(
                    "{k} must be an integer of at least {min} (milliseconds)"
                ))),
            }
        };
        match k.as_str() {
            "interval_ms" => s.interval = ms(100)?,
            "debounce_ms" => s.debounce = ms(0)?,
            "max_backoff_ms" => s.max_backoff = ms(100)?,
            "min_backoff_ms" => s.min_backoff = ms(10)?,
            "poll_ms" => poll = Some(ms(10)?),
            "watch" => {
                s.watch = match v {
                    Value::Bool(b) => Some(*b),
                    Value::Null => None,
                    _ => return Err(invalid("watch must be true, false or null (= when the server advertises it)".into())),
                }
            }
            "journal_keep" => match v.as_i64() {
                Some(n) if n >= 1 => s.journal_keep = n,
                _ => return Err(invalid("journal_keep must be an integer of at least 1".into())),
            },
            other => return Err(invalid(format!(
                "unknown option {other:?}; the options are interval_ms, debounce_ms, watch, max_backoff_ms, min_backoff_ms, poll_ms, journal_keep"
            ))),
        }
    }
    if s.min_backoff > s.max_backoff {
        return Err(invalid(
            "min_backoff_ms must not exceed max_backoff_ms".into(),
        ));
    }
    s.poll = poll.unwrap_or_else(|| AutoSyncSettings::poll_for(s.debounce));
    Ok(s)
}

fn status_json(s: &ConnSync) -> Result<Value> {
    let guard = s.auto.lock().unwrap_or_else(|p| p.into_inner());
    match guard.as_ref() {
        Some(r) => to_json(&r.worker.status()),
        None => Ok(json!({"running": false, "state": "not_started"})),
    }
}

/// The worker's status for `oversqlite_status()` (null when never started here).
pub fn status_value(s: &ConnSync) -> Value {
    let guard = s.auto.lock().unwrap_or_else(|p| p.into_inner());
    guard
        .as_ref()
        .and_then(|r| serde_json::to_value(r.worker.status()).ok())
        .unwrap_or(Value::Null)
}

pub fn start(s: &ConnSync, conn: &Connection, args: &Args) -> Result<String> {
    args.expect_count(0, 1, "oversqlite_auto_sync_start([options_json])")?;
    let mut settings = settings_from(args.opt_text(0, "options_json")?)?;
    oversqlite_core::state::require_runtime(conn)?;
    let path = conn.path().filter(|p| !p.is_empty()).map(str::to_string).ok_or_else(|| {
        SyncError::new(
            ErrorKind::InvalidState,
            "auto sync needs a database file (the worker opens its own connection to it); this database is in memory or temporary",
        )
    })?;
    let policies = s
        .resolver
        .policies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if matches!(policies.default, Policy::Custom { .. })
        || policies
            .tables
            .values()
            .any(|p| matches!(p, Policy::Custom { .. }))
    {
        return Err(SyncError::new(
            ErrorKind::InvalidState,
            "a 'custom' conflict resolver is set on this connection; the sync worker cannot call SQL functions on it (see the README), so set 'server_wins' or 'client_wins' before oversqlite_auto_sync_start()",
        ));
    }
    let mut slot = s.auto.lock().unwrap_or_else(|p| p.into_inner());
    if slot.as_ref().is_some_and(|r| !r.worker.is_finished()) {
        return Err(SyncError::new(
            ErrorKind::InvalidState,
            "auto sync is already running on this connection; call oversqlite_auto_sync_stop() first to change its options",
        ));
    }
    // A finished worker (it could not open its connection) is cleared first.
    slot.take();
    let key = oversqlite_engine::progress::db_key(conn);
    if !running_files()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key.clone())
    {
        return Err(SyncError::new(
            ErrorKind::InvalidState,
            "another connection in this process already runs auto sync for this database file; one worker per file",
        ));
    }
    crate::pin_library();
    // Prime the host-function token cache on this (the host's) thread.
    let _ = s.tokens.refresh_host_cache();
    s.journal_keep
        .store(settings.journal_keep, std::sync::atomic::Ordering::SeqCst);
    settings.trigger = oversqlite_engine::journal::Trigger::Auto;
    let mut client = SyncClient::new();
    client.settings.lock_wait = LOCK_WAIT * 8;
    client.settings.journal_keep = settings.journal_keep;
    client.set_token_provider(Arc::new(WorkerTokens {
        explicit: s.tokens.explicit.clone(),
        host_cache: s.tokens.host_cache.clone(),
        from_env: Mutex::new(false),
    }));
    client.set_resolver(Arc::new(FixedPolicies(policies)));
    let controls = Controls {
        uploads_paused: s.uploads_paused.clone(),
        downloads_paused: s.downloads_paused.clone(),
    };
    let open = move || -> Result<Connection> {
        let c = Connection::open(&path)?;
        c.busy_timeout(Duration::from_secs(5))?;
        Ok(c)
    };
    let worker = match AutoSync::start(open, client, settings, controls) {
        Ok(w) => w,
        Err(e) => {
            running_files()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            return Err(e);
        }
    };
    *slot = Some(Running { key, worker });
    drop(slot);
    text(status_json(s)?)
}

/// Stops the worker (waiting up to 10 s for a run in progress); answers its last status
/// with `stopped` true once the thread has ended.
pub fn stop(s: &ConnSync, _conn: &Connection, args: &Args) -> Result<String> {
    args.expect_count(0, 0, "oversqlite_auto_sync_stop()")?;
    let mut slot = s.auto.lock().unwrap_or_else(|p| p.into_inner());
    let Some(running) = slot.as_mut() else {
        return text(json!({"running": false, "state": "not_started", "stopped": true}));
    };
    let ended = running.worker.stop(STOP_WAIT);
    let mut status = to_json(&running.worker.status())?;
    status["stopped"] = json!(ended);
    if ended {
        // Releases the file (the thread is already joined).
        slot.take();
    }
    text(status)
}

/// The worker's status; also refreshes the host-function token cache (this runs on the
/// host's connection, where calling it is safe).
pub fn status(s: &ConnSync, _conn: &Connection, args: &Args) -> Result<String> {
    args.expect_count(0, 0, "oversqlite_auto_sync_status()")?;
    let _ = s.tokens.refresh_host_cache();
    text(status_json(s)?)
}
