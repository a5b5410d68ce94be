//! One file per subcommand. Each takes the [`Ctx`] built from the global options and
//! returns an [`Outcome`]: the JSON object printed with `--json` and the text printed
//! without it.
mod attach;
mod detach;
mod log;
mod pending;
mod pull;
mod push;
mod run;
mod status;
mod sync;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use oversqlite_engine::journal::{self, Journaled, Trigger};
use oversqlite_engine::SyncClient;
use rusqlite::Connection;
use serde::Serialize;
use serde_json::Value;

use crate::args::{Cli, Command};
use crate::db;
use crate::exit::Exit;
use crate::failure::Failure;
use crate::token::CliTokens;

pub struct Outcome {
    pub json: Value,
    pub text: String,
}

pub struct Ctx {
    pub db: PathBuf,
    pub server: Option<String>,
    pub token_file: Option<PathBuf>,
    pub busy_timeout: Duration,
    pub lock_wait: Duration,
    pub timeout: Option<Duration>,
}

impl Ctx {
    pub fn from_cli(cli: &Cli) -> Result<Ctx, Failure> {
        let db = cli.db.clone().ok_or_else(|| {
            Failure::new(
                "invalid_argument",
                Exit::Usage,
                "no database: pass --db PATH (or set OVERSQLITE_DB)",
            )
        })?;
        Ok(Ctx {
            db,
            server: cli.server.clone(),
            token_file: cli.token_file.clone(),
            busy_timeout: Duration::from_millis(cli.busy_timeout_ms),
            lock_wait: Duration::from_millis(cli.lock_wait_ms),
            timeout: cli.timeout_ms.map(Duration::from_millis),
        })
    }

    /// The file, opened with the busy timeout; nothing else done.
    pub fn connection(&self) -> Result<Connection, Failure> {
        db::open_file(&self.db, self.busy_timeout)
    }

    /// A fresh engine client with the CLI's token chain, server override and lock wait.
    pub fn client(&self) -> SyncClient {
        let mut client = SyncClient::new();
        client.settings.lock_wait = self.lock_wait;
        client.settings.server_url = self.server.clone();
        // As the extension does: a copied database file moves to a source of its own
        // instead of failing every push (README "A copied or restored database file").
        client.settings.recover_copied_database = true;
        client.set_token_provider(Arc::new(CliTokens {
            file: self.token_file.clone(),
        }));
        client
    }

    /// The file opened and started like an app launch (`oversqlite_open()`), with a
    /// client: for attach and detach.
    pub fn started(&self) -> Result<(Connection, SyncClient), Failure> {
        let conn = self.connection()?;
        db::start_runtime(&conn)?;
        let mut client = self.client();
        // One command, one call: `--timeout-ms` bounds it as a whole, and SIGINT or
        // SIGTERM interrupt it (the engine stops within ~100 ms with `interrupted`,
        // local state as before or resumable) instead of killing the process mid-way.
        client.start_call(self.timeout);
        interrupt_on_signals(&conn, client.current_call())?;
        Ok((conn, client))
    }

    /// [`Ctx::started`] plus the client connected to the attached user: for sync, push
    /// and pull.
    pub fn online(&self) -> Result<(Connection, SyncClient), Failure> {
        let (conn, mut client) = self.started()?;
        db::resume(&mut client, &conn)?;
        Ok((conn, client))
    }

    pub fn label(&self) -> String {
        self.db.display().to_string()
    }
}

/// Runs one engine operation as the extension's SQL functions do, but journaled with
/// trigger `cli`: live progress for the progress bar and one `_oversqlite_sync_log` row
/// (outcome, rows and bytes, a redacted error) once it returns.
pub fn recorded<T: Journaled>(
    conn: &Connection,
    operation: &'static str,
    client: &mut SyncClient,
    op: impl FnOnce(&mut SyncClient) -> oversqlite_engine::Result<T>,
) -> oversqlite_engine::Result<T> {
    let keep = client.settings.journal_keep;
    journal::recorded(conn, operation, Trigger::Cli, keep, || op(client))
}

/// SIGINT and SIGTERM stop the command's call: a wait on the server through its stop
/// state, a running SQLite statement through `sqlite3_interrupt` (a thread waiting for
/// the signals lives as long as the process, which runs one command).
fn interrupt_on_signals(
    conn: &Connection,
    call: Option<Arc<oversqlite_engine::remote::cancel::CallStop>>,
) -> Result<(), Failure> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let handle = conn.get_interrupt_handle();
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(|e| {
        Failure::new(
            "internal_error",
            Exit::Software,
            format!("cannot install the signal handlers: {e}"),
        )
    })?;
    std::thread::Builder::new()
        .name("oversqlite-signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                if let Some(call) = &call {
                    call.interrupt();
                }
                handle.interrupt();
            }
        })
        .map_err(|e| {
            Failure::new(
                "internal_error",
                Exit::Software,
                format!("cannot start the signal thread: {e}"),
            )
        })?;
    Ok(())
}

pub fn to_json<T: Serialize>(v: &T) -> Result<Value, Failure> {
    serde_json::to_value(v).map_err(|e| {
        Failure::new(
            "internal_error",
            Exit::Software,
            format!("report encoding failed: {e}"),
        )
    })
}

/// `changed: a, b` or nothing.
pub fn changed_text(tables: &std::collections::BTreeSet<String>) -> String {
    if tables.is_empty() {
        String::new()
    } else {
        format!(
            "; changed: {}",
            tables.iter().cloned().collect::<Vec<_>>().join(", ")
        )
    }
}

pub fn run(cli: &Cli) -> Result<Outcome, Failure> {
    let ctx = Ctx::from_cli(cli)?;
    match &cli.command {
        Command::Sync => sync::run(&ctx),
        Command::Push => push::run(&ctx),
        Command::Pull => pull::run(&ctx),
        Command::Attach(a) => attach::run(&ctx, a),
        Command::Detach(a) => detach::run(&ctx, a),
        Command::Status => status::run(&ctx),
        Command::Pending => pending::run(&ctx),
        Command::Log(a) => log::run(&ctx, a),
        Command::Run(a) => run::run(&ctx, a, cli.json),
    }
}
