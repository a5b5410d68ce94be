//! oversqlite-server: a go-oversync-compatible sync server (protocol of go-oversync commit
//! 1f1118f) storing everything in one SQLite file.
#![forbid(unsafe_code)]

mod auth;
mod codec;
mod config;
mod error;
mod http;
mod logging;
mod migrate;
mod service;
mod state;
mod store;
mod timefmt;

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::Registry;
use crate::state::{AppState, ForeignKeyErrors, Settings};
use crate::store::Store;

#[derive(Parser)]
#[command(
    name = "oversqlite-server",
    version,
    about = "go-oversync-compatible sync server with an embedded SQLite store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Bring a store to the config's shape (additive changes only) and say what changed.
    Migrate(MigrateArgs),
    /// Print a bearer token (HS256 JWT, `sub` = user id) for the given user.
    Token(TokenArgs),
}

#[derive(Args)]
struct SecretArg {
    /// HS256 secret for bearer tokens (falls back to `jwt_secret` in the config file).
    #[arg(long, env = "OVERSQLITE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
}

#[derive(Args)]
struct ServeArgs {
    /// Configuration file (TOML) registering the synced tables.
    #[arg(long)]
    config: PathBuf,
    /// Address to listen on; port 0 picks a free port (the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// SQLite store file (created if missing).
    #[arg(long, default_value = "./oversqlite-server.db")]
    data: PathBuf,
    #[command(flatten)]
    secret: SecretArg,
    /// Mount the test hooks: /dummy-signin, /test/reset, /test/retention-floor,
    /// /test/server-bundle, /test/watch-subscribers. Never in production.
    #[arg(long)]
    enable_test_endpoints: bool,
    /// Committed bundles kept per user before the retained floor moves up.
    #[arg(long, default_value_t = 10_000)]
    retained_window: i64,
    /// Largest floor increase per commit (bundles pruned at once).
    #[arg(long, default_value_t = 1_000)]
    prune_batch: i64,
    /// Lifetime of an uncommitted push session (refreshed by each chunk).
    #[arg(long, default_value_t = 900)]
    push_session_ttl_seconds: i64,
    /// Lifetime of a snapshot session.
    #[arg(long, default_value_t = 900)]
    snapshot_session_ttl_seconds: i64,
    /// Lifetime of a scope initialisation lease handed out by connect.
    #[arg(long, default_value_t = 900)]
    initialization_lease_ttl_seconds: i64,
    /// Interval between `: heartbeat` comments on /sync/watch, in milliseconds.
    #[arg(long, default_value_t = 25_000)]
    watch_heartbeat_ms: u64,
    /// Turn off /sync/watch (503 bundle_change_watch_disabled; capability false).
    #[arg(long)]
    disable_watch: bool,
    /// Row limit of one snapshot session (0 = unlimited; exceeding it is a 500).
    #[arg(long, default_value_t = 0)]
    max_rows_per_snapshot_session: i64,
    /// Payload byte limit of one snapshot session (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    max_bytes_per_snapshot_session: i64,
    /// After SIGTERM/SIGINT: answer 503 service_unavailable this long, then exit.
    #[arg(long, default_value_t = 2_000)]
    shutdown_grace_ms: u64,
    /// Log level (off, error, warn, info, debug, trace) or `target=level` directives
    /// (`oversqlite_server=debug`); an invalid one stops start-up (exit 2). Falls back to
    /// OVERSQLITE_LOG, then RUST_LOG (an invalid value warns and is ignored), then `info`.
    /// Logs go to stderr.
    #[arg(long)]
    log_level: Option<String>,
    /// How a push commit violating a foreign key is answered: `ours` (400
    /// push_commit_invalid) or `reference` (500 push_session_commit_failed, as go-oversync
    /// answers a PostgreSQL error; a test aid).
    #[arg(long, value_enum, default_value_t = ForeignKeyErrors::Ours)]
    foreign_key_errors: ForeignKeyErrors,
}

#[derive(Args)]
struct MigrateArgs {
    /// Configuration file (TOML) registering the synced tables.
    #[arg(long)]
    config: PathBuf,
    /// SQLite store file to migrate.
    #[arg(long)]
    data: PathBuf,
    /// Print what would change (or what is refused) without changing the store.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
struct TokenArgs {
    /// Configuration file (may hold `jwt_secret`).
    #[arg(long)]
    config: PathBuf,
    /// User id to put in the `sub` claim.
    #[arg(long)]
    user: String,
    /// Token lifetime in seconds.
    #[arg(long, default_value_t = 3600, allow_negative_numbers = true)]
    ttl_seconds: i64,
    #[command(flatten)]
    secret: SecretArg,
}

fn resolve_secret(arg: &SecretArg, registry: &Registry) -> Result<String, String> {
    arg.jwt_secret
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| registry.jwt_secret.clone())
        .ok_or_else(|| "no JWT secret: pass --jwt-secret, set OVERSQLITE_JWT_SECRET, or set jwt_secret in the config file".into())
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Migrate(args) => migrate_command(args),
        Command::Token(args) => token(args),
    };
    if let Err(message) = result {
        eprintln!("oversqlite-server: {message}");
        std::process::exit(2);
    }
}

fn migrate_command(args: MigrateArgs) -> Result<(), String> {
    let registry = Arc::new(Registry::load(&args.config)?);
    if !args.data.exists() {
        // `migrate` never creates a store: a mistyped path must not look like success.
        return Err(format!("store {} does not exist", args.data.display()));
    }
    if args.dry_run {
        let conn = rusqlite::Connection::open_with_flags(
            &args.data,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .map_err(|e| format!("cannot open store {}: {e}", args.data.display()))?;
        let plan = migrate::plan(&conn, &registry)
            .map_err(|e| format!("store {}: {e}", args.data.display()))?;
        println!("{}", plan.describe(false));
        return Ok(());
    }
    let (_, plan) = Store::open(&args.data, registry)?;
    println!("{}", plan.describe(true));
    Ok(())
}

fn token(args: TokenArgs) -> Result<(), String> {
    let registry = Registry::load(&args.config)?;
    let secret = resolve_secret(&args.secret, &registry)?;
    if args.user.trim().is_empty() {
        return Err("--user must not be empty".into());
    }
    println!(
        "{}",
        auth::issue_token(&secret, &args.user, args.ttl_seconds)?
    );
    Ok(())
}

fn serve(args: ServeArgs) -> Result<(), String> {
    logging::init(args.log_level.as_deref())?;
    let registry = Arc::new(Registry::load(&args.config)?);
    let jwt_secret = resolve_secret(&args.secret, &registry)?;
    if args.retained_window < 0 || args.prune_batch <= 0 {
        return Err("--retained-window must be >= 0 and --prune-batch > 0".into());
    }
    let (store, plan) = Store::open(&args.data, registry.clone())?;
    if !plan.fresh && !plan.steps.is_empty() {
        // stderr: the first stdout line stays the bound address, which harnesses read.
        tracing::info!("{}", plan.describe(true));
    }
    let settings = Settings {
        retained_window: args.retained_window,
        prune_batch: args.prune_batch,
        push_session_ttl_secs: args.push_session_ttl_seconds,
        snapshot_session_ttl_secs: args.snapshot_session_ttl_seconds,
        lease_ttl_secs: args.initialization_lease_ttl_seconds,
        heartbeat: Duration::from_millis(args.watch_heartbeat_ms.max(1)),
        watch_enabled: !args.disable_watch,
        test_endpoints: args.enable_test_endpoints,
        max_rows_per_snapshot_session: args.max_rows_per_snapshot_session,
        max_bytes_per_snapshot_session: args.max_bytes_per_snapshot_session,
        jwt_secret,
        foreign_key_errors: args.foreign_key_errors,
    };
    let state = Arc::new(AppState::new(store, registry, settings));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!("oversqlite-server listening on http://{addr}");
        let _ = std::io::stdout().flush();
        let shutdown_state = state.clone();
        let grace = Duration::from_millis(args.shutdown_grace_ms);
        tokio::spawn(async move {
            wait_for_signal().await;
            // Drain: new sync requests get 503 service_unavailable while in-flight ones finish.
            // Every commit is one SQLite transaction, so exiting mid-request loses nothing
            // that was acknowledged. Watch streams never end on their own, hence the exit.
            shutdown_state.shutting_down.store(true, Ordering::Relaxed);
            let deadline = tokio::time::Instant::now() + grace;
            while shutdown_state.inflight.load(Ordering::Relaxed) > 0
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep_until(deadline).await;
            std::process::exit(0);
        });
        axum::serve(listener, http::router(state))
            .await
            .map_err(|e| format!("server error: {e}"))
    })
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
