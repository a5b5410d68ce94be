//! Per-connection sync state: one engine client, the token chain, the conflict policies
//! and the pause flags. Created when the extension is loaded on a connection and handed to
//! every sync function as auxiliary data; dropped when the connection closes. Nothing of
//! it is persisted: pause flags and tokens last as long as the connection.
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, TryLockError};

use oversqlite_engine::{ErrorKind, Result, SyncClient, SyncError};

use super::resolver::ConnResolver;
use super::token::ConnTokens;

pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

pub struct ConnSync {
    client: Mutex<SyncClient>,
    pub tokens: Arc<ConnTokens>,
    pub resolver: Arc<ConnResolver>,
    /// Shared with this connection's auto-sync worker, which honours them.
    pub uploads_paused: Arc<AtomicBool>,
    pub downloads_paused: Arc<AtomicBool>,
    /// Rows the sync journal keeps (`journal_keep` of `oversqlite_auto_sync_start`).
    pub journal_keep: AtomicI64,
    /// The background worker this connection started; dropping the state (the
    /// connection closes) stops it and joins its thread.
    pub auto: Mutex<Option<super::auto_sync::Running>>,
    /// `oversqlite_set_call_timeout`: the overall bound of each call, 0 = none.
    pub call_timeout_ms: AtomicU64,
}

impl ConnSync {
    pub fn new(db: *mut rusqlite::ffi::sqlite3) -> Self {
        let tokens = Arc::new(ConnTokens::new(db));
        let resolver = Arc::new(ConnResolver::new(db));
        let mut client = SyncClient::new();
        // The engine unlocks its operation lock explicitly (a process the host forks
        // shares the descriptor until it execs). This short wait is a margin for an
        // operation that is just finishing in another connection or process; a real
        // concurrent operation still fails fast with `sync_in_progress`.
        client.settings.lock_wait = LOCK_WAIT;
        // A copied or restored database file keeps syncing (issue #10 item 1; beyond
        // the reference clients and their fixtures, see engine/DECISIONS.md).
        client.settings.recover_copied_database = true;
        client.set_token_provider(tokens.clone());
        client.set_resolver(resolver.clone());
        ConnSync {
            client: Mutex::new(client),
            tokens,
            resolver,
            uploads_paused: Arc::new(AtomicBool::new(false)),
            downloads_paused: Arc::new(AtomicBool::new(false)),
            journal_keep: AtomicI64::new(oversqlite_core::store::sync_log::DEFAULT_KEEP),
            auto: Mutex::new(None),
            call_timeout_ms: AtomicU64::new(0),
        }
    }

    pub fn journal_keep(&self) -> i64 {
        self.journal_keep.load(Ordering::SeqCst)
    }

    pub fn uploads_paused(&self) -> bool {
        self.uploads_paused.load(Ordering::SeqCst)
    }

    pub fn downloads_paused(&self) -> bool {
        self.downloads_paused.load(Ordering::SeqCst)
    }

    /// Runs `f` with the engine client. A call made while another one runs on this
    /// connection (e.g. from inside a resolver or token function) is refused instead of
    /// deadlocking. A refused custom resolution gets the resolver's own explanation.
    pub fn with_client<T>(&self, f: impl FnOnce(&mut SyncClient) -> Result<T>) -> Result<T> {
        let mut client = match self.client.try_lock() {
            Ok(c) => c,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(SyncError::new(
                    ErrorKind::SyncInProgress,
                    "another oversqlite sync call is running on this connection (a resolver or token function cannot start one); retry after it returns",
                ))
            }
        };
        // One call, one deadline (and one interrupt state) for everything it runs.
        let timeout = match self.call_timeout_ms.load(Ordering::SeqCst) {
            0 => None,
            ms => Some(std::time::Duration::from_millis(ms)),
        };
        client.start_call(timeout);
        let result = f(&mut client);
        client.end_call();
        let reason = self.resolver.take_invalid_reason();
        match result {
            Err(mut e) if e.kind == ErrorKind::InvalidConflictResolution => {
                if let Some(reason) = reason {
                    e.message = format!(
                        "{reason}; the local change was kept as pending ({})",
                        e.message
                    );
                }
                Err(e)
            }
            // The engine's advice for unsent changes is "sync first", which sends
            // nothing while uploads are paused on this connection: name the way out.
            Err(mut e) if e.kind == ErrorKind::PendingLocalChanges && self.uploads_paused() => {
                let what = e.message.split("; call").next().unwrap_or("").to_string();
                e.message = format!("{what}; uploads are paused on this connection, so no call sends them: call oversqlite_resume_uploads(), then oversqlite_sync()");
                Err(e)
            }
            other => other,
        }
    }
}
