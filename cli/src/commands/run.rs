//! `oversqlite run`: a long-running sidecar that keeps the file in sync with the engine's
//! background worker (`auto::AutoSync`, trigger `cli`) until SIGTERM or SIGINT, then
//! stops the worker (a run in progress finishes; the watch stream is cancelled) and
//! exits 0. A second signal while stopping exits at once (code 1).
//!
//! One line per run on stderr, read from the sync journal (the worker journals every
//! run): `<finished_at> <operation> <outcome> up N down N`, plus the error; a JSON object
//! per line with `--json`. Errors carry the engine's redacted messages: never a token.
//! On exit, stdout gets the worker's final status (text, or JSON with `--json`).
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use oversqlite_core::store::sync_log::{self, LogEntry};
use oversqlite_engine::auto::{AutoStatus, AutoSync, AutoSyncSettings, Controls};
use oversqlite_engine::journal::Trigger;
use rusqlite::Connection;
use serde_json::json;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

use super::{to_json, Ctx, Outcome};
use crate::args::RunArgs;
use crate::db;
use crate::exit::Exit;
use crate::failure::Failure;

/// How long a stop may take (a run in progress finishes first; systemd's default
/// TimeoutStopSec is 90 s).
const STOP_WAIT: Duration = Duration::from_secs(10);
/// How often the main thread checks for a signal and for finished runs.
const TICK: Duration = Duration::from_millis(50);

pub fn run(ctx: &Ctx, args: &RunArgs, json: bool) -> Result<Outcome, Failure> {
    let stop = register_signals()?;
    let conn = ctx.connection()?;
    db::start_runtime(&conn)?;
    require_attached(&conn)?;

    let mut log = RunLog {
        last_id: newest_id(&conn)?,
        json,
    };
    let mut worker = start_worker(ctx, args)?;
    let mut last_state = String::new();
    let mut last_runs = None;
    while !stop.load(Ordering::SeqCst) {
        let status = worker.status();
        // The journal is read only when the worker has finished a run or changed state
        // (an idle sidecar touches the file only through the worker's data_version poll).
        let runs = (status.runs, status.last_run_at.clone());
        if last_runs.as_ref() != Some(&runs) || status.state != last_state {
            log.print_new(&conn);
            last_runs = Some(runs);
        }
        if status.state != last_state {
            note_state(&status, json);
            last_state = status.state.clone();
        }
        if worker.is_finished() {
            // The worker could not open its connection: nothing to keep in sync.
            let message = status.last_error.unwrap_or_default();
            return Err(Failure::new(
                status
                    .last_error_code
                    .as_deref()
                    .unwrap_or("internal_error"),
                Exit::Software,
                format!("the sync worker ended: {message}"),
            ));
        }
        std::thread::sleep(TICK);
    }

    let stopped = worker.stop(STOP_WAIT);
    log.print_new(&conn);
    if !stopped {
        return Err(Failure::new(
            "timeout",
            Exit::TempFail,
            format!(
                "the sync worker did not stop within {} s (a run was still in progress)",
                STOP_WAIT.as_secs()
            ),
        ));
    }
    let status = worker.status();
    let text = format!(
        "stopped after {} runs; last: {} {}",
        status.runs,
        status.last_operation.as_deref().unwrap_or("-"),
        status.last_outcome.as_deref().unwrap_or("-"),
    );
    Ok(Outcome {
        json: to_json(&status)?,
        text,
    })
}

/// SIGTERM and SIGINT set the stop flag; a second one while the flag is set exits at
/// once (the conditional shutdown must be registered first to see the flag unset).
fn register_signals() -> Result<Arc<AtomicBool>, Failure> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGTERM, SIGINT] {
        flag::register_conditional_shutdown(sig, 1, stop.clone())
            .and_then(|_| flag::register(sig, stop.clone()))
            .map_err(|e| {
                Failure::new(
                    "internal_error",
                    Exit::Software,
                    format!("cannot install the signal handler: {e}"),
                )
            })?;
    }
    Ok(stop)
}

/// The worker would wait for an attach forever; a sidecar on an unattached file is a
/// configuration mistake to report at once.
fn require_attached(conn: &Connection) -> Result<(), Failure> {
    let info = oversqlite_core::state::source_info(conn)?;
    if info.binding_state != "attached" || info.attached_user_id.is_empty() {
        return Err(Failure::new(
            "attach_required",
            Exit::Config,
            "this database is not attached to a user; run `oversqlite attach --user USER` first",
        ));
    }
    Ok(())
}

fn start_worker(ctx: &Ctx, args: &RunArgs) -> Result<AutoSync, Failure> {
    let mut settings = AutoSyncSettings {
        interval: Duration::from_millis(args.interval_ms),
        debounce: Duration::from_millis(args.debounce_ms),
        max_backoff: Duration::from_millis(args.max_backoff_ms),
        trigger: Trigger::Cli,
        ..AutoSyncSettings::default()
    };
    settings.min_backoff = settings.min_backoff.min(settings.max_backoff);
    settings.poll = AutoSyncSettings::poll_for(settings.debounce);
    if args.no_watch {
        settings.watch = Some(false);
    }
    let client = ctx.client();
    settings.journal_keep = client.settings.journal_keep;
    let path: PathBuf = ctx.db.clone();
    let busy = ctx.busy_timeout;
    Ok(AutoSync::start(
        move || {
            let conn = Connection::open(&path)?;
            conn.busy_timeout(busy)?;
            Ok(conn)
        },
        client,
        settings,
        Controls::default(),
    )?)
}

fn newest_id(conn: &Connection) -> Result<i64, Failure> {
    Ok(sync_log::recent(conn, 1)?.first().map_or(0, |e| e.id))
}

/// Prints the journal rows this sidecar's worker added (trigger `cli`, newer than the
/// newest row at start).
struct RunLog {
    last_id: i64,
    json: bool,
}

impl RunLog {
    fn print_new(&mut self, conn: &Connection) {
        // A busy journal is read again on the next tick.
        let Ok(rows) = sync_log::recent(conn, 100) else {
            return;
        };
        let mut new: Vec<&LogEntry> = rows.iter().filter(|e| e.id > self.last_id).collect();
        new.reverse();
        for e in new {
            self.last_id = e.id;
            if e.trigger == Trigger::Cli.as_str() {
                eprintln!("{}", self.line(e));
            }
        }
    }

    fn line(&self, e: &LogEntry) -> String {
        if self.json {
            return json!({"event": "run", "run": e}).to_string();
        }
        let mut line = format!(
            "{} {} {} up {} down {}",
            e.finished_at, e.operation, e.outcome, e.rows_up, e.rows_down
        );
        if let Some(code) = &e.error_code {
            line.push_str(&format!(
                ": {code}: {}",
                e.error_message.as_deref().unwrap_or("")
            ));
        }
        line
    }
}

/// States that need the operator: a refused or missing token, a lost binding.
fn note_state(status: &AutoStatus, json: bool) {
    let hint = match status.state.as_str() {
        "waiting_for_token" => {
            "the server refused the token (or there is none): update the --token-file file or OVERSQLITE_TOKEN_FILE; the worker retries when it changes"
        }
        "waiting_for_attach" => {
            "the database is no longer attached; run `oversqlite attach --user USER`"
        }
        _ => return,
    };
    if json {
        eprintln!(
            "{}",
            json!({"event": "state", "state": status.state, "message": hint})
        );
    } else {
        eprintln!("oversqlite run: {}: {hint}", status.state);
    }
}
