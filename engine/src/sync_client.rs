//! `SyncClient`: the engine's entry point. One client serves one database
//! connection; each public operation loads the configuration and durable state
//! afresh, takes the cross-process operation lock, and refuses to run inside the
//! caller's transaction.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use oversqlite_protocol::BundleLimits;

use rusqlite::Connection;

use crate::conflict::{ConflictResolver, ServerWins};
use crate::error::{ErrorKind, Result, SyncError};
use crate::local::lock::OperationLock;
use crate::local::schema::Config;
use crate::local::state;
use crate::remote::auth::{NoToken, TokenProvider};
use crate::remote::cancel::{CallStop, Limits};
use crate::remote::client::Remote;
use crate::remote::requests::Requests;
use crate::remote::transport::{RetryPolicy, Transport, UreqTransport};
use crate::report::{Authority, PendingStatus, SyncStatus};

/// How long a call waits for a run of this process's background worker (auto sync) on
/// the same database before failing with `sync_in_progress`.
pub const BACKGROUND_RUN_WAIT: Duration = Duration::from_secs(60);

/// Tunables. Defaults follow the reference client (§7.4, §7.6, §7.7, §7.11).
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Rows per push chunk (never above the server's `max_rows_per_push_chunk`).
    pub upload_chunk_rows: usize,
    /// Rows frozen into one bundle before the freeze looks for a place to cut it (0 =
    /// no cap, one bundle for everything, as the reference clients do). Bounds how long
    /// the freeze and the replay hold the write lock; never above the server's
    /// advertised `max_rows_per_bundle`.
    pub max_bundle_rows: usize,
    /// `max_bundles` per pull page (1..=5000).
    pub download_max_bundles: i64,
    /// `max_rows` per snapshot chunk (servers cap it silently at their maximum, 5000
    /// for the reference; bigger chunks mean fewer round trips and transactions).
    pub snapshot_chunk_rows: i64,
    /// `max_rows` per committed-bundle page.
    pub committed_rows_page: i64,
    /// Per-request transient retry.
    pub retry: RetryPolicy,
    /// Waits between attempts while a just-committed bundle is not yet visible
    /// (`404 committed_bundle_not_found`); attempts = len + 1.
    pub committed_not_found_backoff: Vec<Duration>,
    /// Automatic re-pushes after a resolved conflict before giving up.
    pub max_conflict_retries: u32,
    /// Rounds of sync + detach in `sync_then_detach`.
    pub sync_then_detach_rounds: u32,
    /// How long an operation waits for another one on the same database to finish
    /// before failing with `sync_in_progress` (0 = fail at once, the reference rule).
    pub lock_wait: Duration,
    /// Recover a copied database file (`ops/copied.rs`): when the server committed our
    /// next bundle id with another copy's rows, move to a source of our own and push
    /// again. Off by default, where the contract fixtures pin the reference clients'
    /// `source_sequence_mismatch`; the SQL layer turns it on.
    pub recover_copied_database: bool,
    /// Talk to this server instead of the one configured in the database (the CLI's
    /// `--server`); the file's configuration is left unchanged. `None`: the configured URL.
    pub server_url: Option<String>,
    /// Rows the sync journal keeps (the newest; `_oversqlite_sync_log`).
    pub journal_keep: i64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            upload_chunk_rows: 200,
            max_bundle_rows: 5000,
            download_max_bundles: 1000,
            snapshot_chunk_rows: 5000,
            committed_rows_page: 1000,
            retry: RetryPolicy::default(),
            committed_not_found_backoff: [75, 150, 300, 600, 600]
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
            max_conflict_retries: 2,
            sync_then_detach_rounds: 3,
            lock_wait: Duration::ZERO,
            recover_copied_database: false,
            server_url: None,
            journal_keep: oversqlite_core::store::sync_log::DEFAULT_KEEP,
        }
    }
}

pub struct SyncClient {
    pub settings: EngineSettings,
    transport: Arc<dyn Transport>,
    tokens: Arc<dyn TokenProvider>,
    resolver: Arc<dyn ConflictResolver>,
    /// The user a successful `attach` connected in this client (KMP `session_connected`).
    connected_user: Option<String>,
    /// The server's `bundle_limits`, learned once per client (§7.13).
    limits: OnceLock<BundleLimits>,
    /// The stop state of the call in progress, set by [`SyncClient::start_call`];
    /// without one each operation gets a fresh one (interrupts only, no deadline).
    call: Option<Arc<CallStop>>,
}

impl SyncClient {
    /// A client over the production transport, no token, server-wins conflicts.
    pub fn new() -> Self {
        Self::with_transport(Arc::new(UreqTransport::default()))
    }

    pub fn with_transport(transport: Arc<dyn Transport>) -> Self {
        SyncClient {
            settings: EngineSettings::default(),
            transport,
            tokens: Arc::new(NoToken),
            resolver: Arc::new(ServerWins),
            connected_user: None,
            limits: OnceLock::new(),
            call: None,
        }
    }

    /// Starts one host call: everything until [`SyncClient::end_call`] shares one
    /// deadline, `timeout` from now (None: no deadline, interrupts only). A sync that
    /// runs several operations (rounds, a pull per watch event) is bounded as a whole.
    pub fn start_call(&mut self, timeout: Option<Duration>) {
        self.call = Some(CallStop::new(timeout));
    }

    /// Ends the call started by [`SyncClient::start_call`].
    pub fn end_call(&mut self) {
        self.call = None;
    }

    /// The current call's stop state (None outside [`SyncClient::start_call`]): a host
    /// without a running SQLite statement to interrupt (the CLI on a signal) stops the
    /// call with [`CallStop::interrupt`].
    pub fn current_call(&self) -> Option<Arc<CallStop>> {
        self.call.clone()
    }

    /// The stop state operations of the current call share.
    pub(crate) fn call_stop(&self) -> Arc<CallStop> {
        self.call.clone().unwrap_or_else(|| CallStop::new(None))
    }

    pub(crate) fn transport_arc(&self) -> Arc<dyn Transport> {
        self.transport.clone()
    }

    pub fn set_token_provider(&mut self, tokens: Arc<dyn TokenProvider>) {
        self.tokens = tokens;
    }

    pub fn set_resolver(&mut self, resolver: Arc<dyn ConflictResolver>) {
        self.resolver = resolver;
    }

    pub fn set_transport(&mut self, transport: Arc<dyn Transport>) {
        self.transport = transport;
        self.limits = OnceLock::new();
    }

    /// The user connected by `attach` in this client, if any.
    pub fn connected_user(&self) -> Option<&str> {
        self.connected_user.as_deref()
    }

    pub(crate) fn tokens_ref(&self) -> &dyn TokenProvider {
        self.tokens.as_ref()
    }

    pub(crate) fn set_connected(&mut self, user: Option<String>) {
        self.connected_user = user;
    }

    /// Starts an operation: refuses inside a transaction, takes the operation lock,
    /// loads the configuration.
    pub(crate) fn begin<'a>(&'a self, conn: &'a Connection) -> Result<Ctx<'a>> {
        self.begin_with(conn, true)
    }

    /// Like `begin`, without the operation lock: for steps that only read local state
    /// and talk to the server without writing (capabilities, opening the watch).
    pub(crate) fn begin_read_only<'a>(&'a self, conn: &'a Connection) -> Result<Ctx<'a>> {
        self.begin_with(conn, false)
    }

    fn begin_with<'a>(&'a self, conn: &'a Connection, lock: bool) -> Result<Ctx<'a>> {
        if !conn.is_autocommit() {
            return Err(SyncError::new(
                ErrorKind::InTransaction,
                "this call talks to the server, so it cannot run inside an open transaction; commit or roll back first",
            ));
        }
        oversqlite_core::state::require_runtime(conn)?;
        let lock = if lock {
            // Past the usual short wait, a call waits out a run of this process's
            // background worker (bounded, and stopped by an interrupt or the call's
            // deadline) rather than failing with `sync_in_progress`: an app that
            // enabled auto sync and also syncs on demand should not see its own worker
            // as a conflict.
            let limits = crate::remote::cancel::Limits::new(conn, self.call_stop());
            let started = std::time::Instant::now();
            OperationLock::acquire_waiting(conn, self.settings.lock_wait, || {
                limits.check("waiting for the background sync's run to finish")?;
                Ok(started.elapsed() < BACKGROUND_RUN_WAIT
                    && crate::progress::current_for(conn).is_some_and(|p| p.trigger == "auto"))
            })?
        } else {
            OperationLock::none()
        };
        let mut config = oversqlite_core::config::load(conn)?;
        if let Some(url) = &self.settings.server_url {
            oversqlite_core::config::validate_server_url(url)?;
            config.server_url = url.clone();
        }
        Ok(Ctx {
            conn,
            remote: Remote {
                requests: Requests::new(&config.server_url),
                transport: self.transport.clone(),
                tokens: self.tokens.as_ref(),
                retry: &self.settings.retry,
                limits: Limits::new(conn, self.call_stop()),
            },
            config,
            settings: &self.settings,
            resolver: self.resolver.as_ref(),
            limits: &self.limits,
            _lock: lock,
        })
    }

    /// Precondition of push/pull/sync/rebuild/status: attached in this client and
    /// the current source has its row.
    pub(crate) fn require_connected(&self, ctx: &Ctx) -> Result<state::Attachment> {
        let att = state::attachment(ctx.conn)?;
        let connected = state::is_attached(&att)
            && self.connected_user.as_deref() == Some(att.attached_user_id.as_str());
        if !connected || state::source_row(ctx.conn, &att.current_source_id)?.is_none() {
            // Attachment is per connection: the database may well be attached (by an
            // earlier connection or process) while this connection never said so.
            let message = if state::is_attached(&att) && !connected {
                format!(
                    "this connection has not attached (the database is attached to user {:?}, but each connection must attach itself); call oversqlite_attach('{}') on this connection first",
                    att.attached_user_id,
                    att.attached_user_id.replace('\'', "''")
                )
            } else {
                "this connection has not attached (and the database is not attached to any user); call oversqlite_attach(user_id) on this connection first".to_string()
            };
            return Err(SyncError::new(ErrorKind::AttachRequired, message));
        }
        Ok(att)
    }
}

impl Default for SyncClient {
    fn default() -> Self {
        Self::new()
    }
}

/// Everything one operation needs.
pub(crate) struct Ctx<'a> {
    pub conn: &'a Connection,
    pub config: Config,
    pub remote: Remote<'a>,
    pub settings: &'a EngineSettings,
    pub resolver: &'a dyn ConflictResolver,
    pub limits: &'a OnceLock<BundleLimits>,
    _lock: OperationLock,
}

impl Ctx<'_> {
    /// The server's advertised limits, fetched once per client when first needed. A
    /// failed fetch is not cached and falls back to the configured sizes.
    fn server_limits(&self) -> BundleLimits {
        if let Some(l) = self.limits.get() {
            return l.clone();
        }
        let source = state::attachment(self.conn)
            .map(|a| a.current_source_id)
            .unwrap_or_default();
        match self.remote.capabilities(&source) {
            Ok(crate::remote::client::Reply::Ok(caps)) => self
                .limits
                .get_or_init(|| caps.bundle_limits.unwrap_or_default())
                .clone(),
            _ => BundleLimits::default(),
        }
    }

    /// Rows per push chunk: the setting, never above `max_rows_per_push_chunk`.
    pub fn push_chunk_rows(&self) -> usize {
        let wanted = self.settings.upload_chunk_rows.max(1);
        match self.server_limits().max_rows_per_push_chunk {
            Some(max) if max > 0 => wanted.min(max as usize),
            _ => wanted,
        }
    }

    /// Rows per frozen bundle (`None`: no cap): the setting, never above the server's
    /// `max_rows_per_bundle` when its limits are already known (no request is made
    /// for them here: the freeze runs before any request).
    pub fn bundle_rows_cap(&self) -> Option<i64> {
        let wanted = oversqlite_core::fault::max_bundle_rows_override()
            .unwrap_or(self.settings.max_bundle_rows) as i64;
        let advertised = self
            .limits
            .get()
            .and_then(|l| l.max_rows_per_bundle)
            .filter(|m| *m > 0);
        match (wanted > 0, advertised) {
            (true, Some(max)) => Some(wanted.min(max)),
            (true, None) => Some(wanted),
            (false, max) => max,
        }
    }

    /// `max_bundles` per pull: the setting, within 1..=5000 and `max_bundles_per_pull`.
    pub fn pull_max_bundles(&self) -> i64 {
        let wanted = self.settings.download_max_bundles.clamp(1, 5000);
        match self.server_limits().max_bundles_per_pull {
            Some(max) if max > 0 => wanted.min(max),
            _ => wanted,
        }
    }

    /// `max_rows` per snapshot chunk: the setting, never above the server's
    /// `max_rows_per_snapshot_chunk` when its limits are already known. Limits are not
    /// fetched for this: a server caps `max_rows` itself (§2.10), so asking for more
    /// is harmless, while an extra capabilities request would change what a rebuild
    /// sends.
    pub fn snapshot_chunk_rows(&self) -> i64 {
        let wanted = self.settings.snapshot_chunk_rows.max(1);
        match self
            .limits
            .get()
            .and_then(|l| l.max_rows_per_snapshot_chunk)
        {
            Some(max) if max > 0 => wanted.min(max),
            _ => wanted,
        }
    }

    pub fn table(&self, name: &str) -> Result<&crate::local::schema::ManagedTable> {
        self.config.table(name).ok_or_else(|| {
            let managed: Vec<&str> = self.config.tables.iter().map(|t| t.name.as_str()).collect();
            SyncError::new(
                ErrorKind::SchemaMismatch,
                format!(
                    "the server sent rows of table {name:?}, which this database does not sync \
                 (its synced tables: {}): the server's schema is newer. Migrate this database: \
                 CREATE TABLE {name} (…) as the app's new schema has it, \
                 SELECT oversqlite_enable_sync('{name}'), then SELECT oversqlite_open(); \
                 nothing was applied",
                    managed.join(", ")
                ),
            )
        })
    }

    /// Index of a table in FK order (parents first).
    pub fn table_order(&self, name: &str) -> usize {
        self.config
            .tables
            .iter()
            .position(|t| t.name == name)
            .unwrap_or(usize::MAX)
    }

    pub fn check_schema(&self, schema: &str) -> Result<()> {
        if schema != self.config.schema {
            return Err(SyncError::protocol(format!(
                "row schema {schema:?} does not match the configured schema {:?}",
                self.config.schema
            )));
        }
        Ok(())
    }
}

/// `syncStatus()` (§7.1).
pub fn sync_status(conn: &Connection) -> Result<SyncStatus> {
    let att = state::attachment(conn)?;
    let live = oversqlite_core::store::row_state::live_count(conn)?;
    let authority = if !att.pending_initialization_id.is_empty() {
        Authority::PendingLocalSeed
    } else if live == 0 {
        Authority::AuthoritativeEmpty
    } else {
        Authority::AuthoritativeMaterialized
    };
    let pending = state::pending_row_count(conn)?;
    Ok(SyncStatus {
        authority,
        pending: PendingStatus {
            has_pending_sync_data: pending > 0,
            pending_row_count: pending,
            blocks_detach: pending > 0,
        },
        last_bundle_seq_seen: att.last_bundle_seq_seen,
    })
}
