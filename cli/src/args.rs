//! The command line, parsed by clap: global options (database, output, server, token,
//! waits) and one subcommand. Parsing only: the work lives in `commands/`.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Printed under `--help`; the same table is in the README ("Command-line tool").
pub const EXIT_CODES: &str = "\
Exit codes:
   0  ok
  75  retry later: server unreachable, HTTP 5xx/429/408, database busy or locked,
      another sync running (sync_in_progress), attach told to wait (retry_later),
      a call stopped by its deadline (timeout) or an interrupt (interrupted)
  64  usage: invalid arguments or options
  65  the database's sync state needs an action (the message names it), e.g.
      pending_local_changes, rebuild_required, attached_to_other_user,
      blocked_unsynced_data, push_rejected (fix the row the server names),
      schema_mismatch (migrate this database or the server)
  66  the database file does not exist
  70  internal error (a bug)
  74  SQLite error other than busy/locked (not a database, disk I/O, ...)
  76  the server broke the protocol (protocol_error)
  77  authentication: no token, token refused (HTTP 401/403), token for another user
  78  configuration: database not configured for sync, not attached, server URL,
      server refuses the schema or the request (other HTTP 4xx), unsupported server
Only 75 is worth retrying unchanged; every other non-zero code needs a fix first.
`run` exits 0 after SIGTERM or SIGINT once the worker has stopped (a second signal
while stopping: 1); a server that is down is retried inside it, never an exit.
Errors print `oversqlite <command>: <code>: <message>` on stderr (a JSON object with
--json).

Token: --token-file PATH, else OVERSQLITE_TOKEN, else the file named by
OVERSQLITE_TOKEN_FILE; a file is re-read on every request. Tokens are never printed.";

#[derive(Debug, Parser)]
#[command(
    name = "oversqlite",
    version,
    about = "Sync a SQLite database file with an oversqlite / go-oversync server, once (sync, push, pull) or continuously (run).",
    long_about = "Sync a SQLite database file with an oversqlite / go-oversync server.\n\n\
        The server URL, schema and synced tables come from the database itself (written by \
        the extension's oversqlite_init and oversqlite_enable_sync), so a file synced by the \
        extension continues with this tool and back again. Every operation is recorded in the \
        file's sync journal with trigger `cli` (see `oversqlite log`).",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// The database file (it must exist and be configured for sync).
    #[arg(long, global = true, env = "OVERSQLITE_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// Print the result as JSON on stdout (`run`: also one JSON object per line on stderr; errors: a JSON object on stderr).
    #[arg(long, global = true)]
    pub json: bool,

    /// Talk to this server instead of the URL configured in the database (which stays unchanged).
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,

    /// Read the bearer token from this file (re-read on every request).
    #[arg(long, global = true, value_name = "PATH")]
    pub token_file: Option<PathBuf>,

    /// How long to wait for a database locked by another connection before failing (exit 75).
    #[arg(long, global = true, value_name = "MS", default_value_t = 5000)]
    pub busy_timeout_ms: u64,

    /// How long to wait for another sync of this database to finish before failing (exit 75).
    #[arg(long, global = true, value_name = "MS", default_value_t = 250)]
    pub lock_wait_ms: u64,

    /// Bound on the whole of sync, push, pull, attach or detach; past it the command
    /// stops with `timeout` (exit 75). Without it a stalled server is given up on only
    /// after the transport's own timeouts (60 s per read, 3 attempts).
    #[arg(long, global = true, value_name = "MS")]
    pub timeout_ms: Option<u64>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Push local changes, then pull the server's (what oversqlite_sync() does).
    Sync,
    /// Upload local changes only.
    Push,
    /// Download the server's changes only (refused while local changes are unsent: use sync).
    Pull,
    /// Bind the database to a user (first time: seed from local rows or hydrate from the server).
    Attach(AttachArgs),
    /// Unbind the user: managed tables are emptied and a new source starts.
    Detach(DetachArgs),
    /// Local sync state: configuration, binding, last bundle, pending rows (no network).
    Status,
    /// The local changes not yet uploaded, in upload order (no network).
    Pending,
    /// The newest rows of the sync journal: one per operation (sql, auto or cli), newest first (no network).
    Log(LogArgs),
    /// Keep the file in sync until SIGTERM or SIGINT: push after local writes settle, sync
    /// periodically, pull on the server's watch events, back off on errors (a sidecar).
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Periodic sync (push, then pull) every MS milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval_ms: u64,

    /// Push MS milliseconds after the last local write (by any process).
    #[arg(long, value_name = "MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub debounce_ms: u64,

    /// Do not hold the server's watch stream (by default it is held when the server
    /// advertises it, and every new bundle is pulled at once).
    #[arg(long)]
    pub no_watch: bool,

    /// The longest wait between retries after failures (capped exponential backoff with jitter).
    #[arg(long, value_name = "MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_backoff_ms: u64,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// How many rows to print (the journal keeps the last 1000 operations).
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..))]
    pub limit: i64,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The user id (the `sub` of a JWT token must match it).
    #[arg(long, value_name = "USER")]
    pub user: String,
}

#[derive(Debug, Args)]
pub struct DetachArgs {
    /// Detach even though local changes were never uploaded (they are lost).
    #[arg(long)]
    pub discard_local_changes: bool,
}

impl Command {
    /// The name errors are prefixed with (`oversqlite <name>: ...`).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Sync => "sync",
            Command::Push => "push",
            Command::Pull => "pull",
            Command::Attach(_) => "attach",
            Command::Detach(_) => "detach",
            Command::Status => "status",
            Command::Pending => "pending",
            Command::Log(_) => "log",
            Command::Run(_) => "run",
        }
    }
}
