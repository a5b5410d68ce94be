//! The bundle-change watch (§2.12, §7.12): open `GET /sync/watch` at the durable
//! checkpoint, pull once per bundle event, and pull once more when the stream ends
//! (unless an event pull failed) or breaks. `watch_once` runs one such round in the
//! caller's thread; `AutomaticDownloads` runs the reference worker loop in its own
//! thread on its own connection. The operation lock is taken only by each pull, never
//! for the whole stream, so foreground syncs keep working.

use std::io::BufRead;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use oversqlite_protocol::FEATURE_BUNDLE_CHANGE_WATCH;
use rusqlite::Connection;
use serde::Serialize;

use crate::error::{ErrorKind, Result, SyncError};
use crate::remote::cancel::{CallStop, Limits};
use crate::remote::client::{HttpFailure, Remote};
use crate::remote::requests::Requests;
use crate::remote::sse::SseParser;
use crate::report::ChangedTables;
use crate::sync_client::SyncClient;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchOutcome {
    /// The server closed the stream cleanly.
    StreamEnded,
    /// The watch could not be opened (non-200 or no connection); see `error_code`.
    SetupFailed,
    /// The stream broke or carried a malformed event.
    StreamFailed,
    /// The round was cancelled (automatic downloads stopped).
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchReport {
    pub outcome: WatchOutcome,
    /// The checkpoint the watch was opened at.
    pub after_bundle_seq: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    pub events: u32,
    pub pulls: u32,
    pub failed_pulls: u32,
    pub changed_tables: ChangedTables,
}

/// A cancellation flag that also wakes sleepers at once.
#[derive(Default)]
pub struct StopSignal {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl StopSignal {
    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sleeps up to `d`; returns true if stopped meanwhile.
    pub fn sleep(&self, d: Duration) -> bool {
        let guard = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = self
            .cv
            .wait_timeout_while(guard, d, |s| !*s)
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }
}

enum Line {
    Text(String),
    Failed,
}

/// Reads the stream on a helper thread so the round can be cancelled while a read
/// blocks; the helper ends (closing the stream) at EOF, on error, or on its next
/// line after the round has gone.
fn spawn_reader(mut body: Box<dyn BufRead + Send>) -> mpsc::Receiver<Line> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        loop {
            line.clear();
            match crate::remote::sse::read_line_bounded(
                &mut *body,
                &mut line,
                crate::remote::sse::MAX_SSE_LINE_BYTES,
            ) {
                Ok(0) => return,
                Ok(_) => {
                    let text = line.strip_suffix('\n').unwrap_or(&line).to_string();
                    if tx.send(Line::Text(text)).is_err() {
                        return;
                    }
                }
                Err(_) => {
                    let _ = tx.send(Line::Failed);
                    return;
                }
            }
        }
    });
    rx
}

impl SyncClient {
    /// Whether the server offers the watch stream (`features.bundle_change_watch`, strictly true).
    pub fn bundle_change_watch_supported(&mut self, conn: &Connection) -> Result<bool> {
        let ctx = self.begin_read_only(conn)?;
        let source = crate::local::state::attachment(conn)?.current_source_id;
        let caps = ctx
            .remote
            .capabilities(&source)?
            .ok_or_error("capabilities request")?;
        Ok(caps.feature(FEATURE_BUNDLE_CHANGE_WATCH))
    }

    /// One watch round in the caller's thread; returns when the stream ends.
    pub fn watch_once(&mut self, conn: &Connection) -> Result<WatchReport> {
        self.watch_round(conn, &StopSignal::default(), None)
    }

    /// One watch round that also ends (outcome `stopped`) after `limit`: a bounded
    /// call for hosts that poll from SQL.
    pub fn watch_for(&mut self, conn: &Connection, limit: Duration) -> Result<WatchReport> {
        self.watch_round(
            conn,
            &StopSignal::default(),
            Some(std::time::Instant::now() + limit),
        )
    }

    pub(crate) fn watch_round(
        &mut self,
        conn: &Connection,
        stop: &StopSignal,
        deadline: Option<std::time::Instant>,
    ) -> Result<WatchReport> {
        if !conn.is_autocommit() {
            return Err(SyncError::new(
                ErrorKind::InTransaction,
                "cannot watch inside an open transaction",
            ));
        }
        let (source, after, url) = {
            let ctx = self.begin_read_only(conn)?;
            let att = self.require_connected(&ctx)?;
            (
                att.current_source_id,
                att.last_bundle_seq_seen,
                ctx.config.server_url.clone(),
            )
        };
        // One stop state for the whole round: the host's interrupt ends it with
        // `interrupted`; the call's deadline ends it like `deadline` (outcome `stopped`).
        let call = self.call_stop();
        let deadline = match (deadline, call.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // The round's own limit (`timeout_ms`) bounds the stream's setup too: a server
        // that accepts and never answers must not hold the call past it.
        let round = match deadline {
            Some(d) if call.deadline() != Some(d) => {
                CallStop::new(Some(d.saturating_duration_since(std::time::Instant::now())))
            }
            _ => call.clone(),
        };
        let limits = Limits::new(conn, round);
        let opened = {
            let remote = Remote {
                requests: Requests::new(&url),
                transport: self.transport_arc(),
                tokens: self.tokens_ref(),
                retry: &self.settings.retry,
                limits: limits.clone(),
            };
            remote.open_stream(remote.requests.watch(&source, after), "watch request")
        };
        let mut report = WatchReport {
            outcome: WatchOutcome::StreamEnded,
            after_bundle_seq: after,
            error_code: None,
            events: 0,
            pulls: 0,
            failed_pulls: 0,
            changed_tables: ChangedTables::new(),
        };
        let stream = match opened {
            Ok((s, _)) if s.status == 200 => s,
            Ok((mut s, sent)) => {
                let mut body = Vec::new();
                let _ = std::io::Read::read_to_end(
                    &mut std::io::Read::take(s.body.as_mut(), 64 * 1024),
                    &mut body,
                );
                let failure = HttpFailure::from_body(s.status, &body, &sent);
                drop(s); // close before the fallback pull
                report.outcome = WatchOutcome::SetupFailed;
                report.error_code = Some(
                    failure
                        .code()
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("http_{}", failure.status)),
                );
                self.counted_pull(conn, &mut report);
                return Ok(report);
            }
            Err(e) if e.kind == ErrorKind::Interrupted => return Err(e),
            // The limit passed while the stream was being opened: the round ends as at
            // its limit (no fallback pull, which would wait on the same server).
            Err(e) if e.kind == ErrorKind::Timeout => {
                report.outcome = WatchOutcome::Stopped;
                report.error_code = Some(e.code().to_string());
                return Ok(report);
            }
            Err(e) => {
                report.outcome = WatchOutcome::SetupFailed;
                report.error_code = Some(e.code().to_string());
                self.counted_pull(conn, &mut report);
                return Ok(report);
            }
        };
        let lines = spawn_reader(stream.body);
        let mut parser = SseParser::new();
        let mut pull_failed = false;
        loop {
            if stop.is_stopped() || deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                report.outcome = WatchOutcome::Stopped;
                return Ok(report);
            }
            if let Err(e) = limits.check("watch") {
                if e.kind == ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            match lines.recv_timeout(Duration::from_millis(50)) {
                Ok(Line::Text(text)) => match parser.push_line(&text) {
                    Ok(Some(_event)) => {
                        report.events += 1;
                        if !self.counted_pull(conn, &mut report) {
                            pull_failed = true;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        drop(lines);
                        report.outcome = WatchOutcome::StreamFailed;
                        report.error_code = Some(e.code().to_string());
                        self.counted_pull(conn, &mut report);
                        return Ok(report);
                    }
                },
                Ok(Line::Failed) => {
                    report.outcome = WatchOutcome::StreamFailed;
                    report.error_code = Some(ErrorKind::NetworkError.code().to_string());
                    self.counted_pull(conn, &mut report);
                    return Ok(report);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    parser.finish();
                    if !pull_failed {
                        self.counted_pull(conn, &mut report);
                    }
                    return Ok(report);
                }
            }
        }
    }

    /// Pulls and records the outcome; returns false when the pull failed.
    fn counted_pull(&mut self, conn: &Connection, report: &mut WatchReport) -> bool {
        report.pulls += 1;
        match self.pull_to_stable(conn) {
            Ok(r) => {
                report.changed_tables.extend(r.changed_tables);
                true
            }
            Err(_) => {
                report.failed_pulls += 1;
                false
            }
        }
    }
}

/// Worker configuration (KMP defaults: 60 s polling, watch AUTO, reconnect 1 s → 60 s).
#[derive(Debug, Clone)]
pub struct AutoDownloadConfig {
    /// Polling interval when the watch is off or unsupported.
    pub interval: Duration,
    /// Use the watch stream when the server offers it.
    pub watch: bool,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

impl Default for AutoDownloadConfig {
    fn default() -> Self {
        AutoDownloadConfig {
            interval: Duration::from_secs(60),
            watch: true,
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
        }
    }
}

/// What the worker has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AutoDownloadStats {
    pub pulls: u64,
    pub failed_pulls: u64,
    pub watch_rounds: u64,
    pub events: u64,
    pub changed_tables: ChangedTables,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A running automatic-download worker; stopping (or dropping) it cancels an active
/// watch promptly and joins the thread.
pub struct AutomaticDownloads {
    stop: Arc<StopSignal>,
    stats: Arc<Mutex<AutoDownloadStats>>,
    thread: Option<JoinHandle<()>>,
}

impl AutomaticDownloads {
    /// Starts the worker for `user`. `setup` runs on the worker thread and returns its
    /// own connection and a client; the worker attaches it (a resumed attach costs no
    /// network) and re-attaches after any failure that left it detached.
    pub fn start<F>(setup: F, user: &str, config: AutoDownloadConfig) -> Self
    where
        F: FnOnce() -> Result<(Connection, SyncClient)> + Send + 'static,
    {
        let stop = Arc::new(StopSignal::default());
        let stats = Arc::new(Mutex::new(AutoDownloadStats::default()));
        let (s, st, user) = (stop.clone(), stats.clone(), user.to_string());
        let thread = std::thread::spawn(move || match setup() {
            Ok((conn, mut client)) => run(&conn, &mut client, &user, &config, &s, &st),
            Err(e) => st.lock().unwrap_or_else(|p| p.into_inner()).last_error = Some(e.to_string()),
        });
        AutomaticDownloads {
            stop,
            stats,
            thread: Some(thread),
        }
    }

    pub fn stats(&self) -> AutoDownloadStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn stop(mut self) -> AutoDownloadStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for AutomaticDownloads {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn record(stats: &Mutex<AutoDownloadStats>, f: impl FnOnce(&mut AutoDownloadStats)) {
    f(&mut stats.lock().unwrap_or_else(|p| p.into_inner()));
}

fn pull(conn: &Connection, client: &mut SyncClient, stats: &Mutex<AutoDownloadStats>) {
    let r = client.pull_to_stable(conn);
    record(stats, |s| {
        s.pulls += 1;
        match r {
            Ok(r) => s.changed_tables.extend(r.changed_tables),
            Err(e) => {
                s.failed_pulls += 1;
                s.last_error = Some(e.to_string());
            }
        }
    });
}

/// The reference loop (§7.12): while a healthy stream is open there are no timer
/// pulls; every stream end or failure is followed by a pull and a backoff.
fn run(
    conn: &Connection,
    client: &mut SyncClient,
    user: &str,
    config: &AutoDownloadConfig,
    stop: &StopSignal,
    stats: &Mutex<AutoDownloadStats>,
) {
    let mut backoff = config.reconnect_min;
    while !stop.is_stopped() {
        if client.connected_user() != Some(user) {
            if let Err(e) = client.attach(conn, user) {
                record(stats, |s| s.last_error = Some(e.to_string()));
                if stop.sleep(backoff) {
                    return;
                }
                backoff = (backoff * 2).min(config.reconnect_max);
                continue;
            }
        }
        let use_watch = if config.watch {
            client.bundle_change_watch_supported(conn)
        } else {
            Ok(false)
        };
        match use_watch {
            Ok(true) => {
                match client.watch_round(conn, stop, None) {
                    Ok(r) => record(stats, |s| {
                        s.watch_rounds += 1;
                        s.events += r.events as u64;
                        s.pulls += r.pulls as u64;
                        s.failed_pulls += r.failed_pulls as u64;
                        s.changed_tables.extend(r.changed_tables);
                        if let Some(code) = r.error_code {
                            s.last_error = Some(code);
                        }
                    }),
                    Err(e) => {
                        record(stats, |s| s.last_error = Some(e.to_string()));
                        pull(conn, client, stats);
                    }
                }
                if stop.sleep(backoff) {
                    return;
                }
                backoff = (backoff * 2).min(config.reconnect_max);
            }
            Ok(false) => {
                pull(conn, client, stats);
                backoff = config.reconnect_min;
                if stop.sleep(config.interval) {
                    return;
                }
            }
            Err(e) => {
                record(stats, |s| s.last_error = Some(e.to_string()));
                pull(conn, client, stats);
                if stop.sleep(backoff) {
                    return;
                }
                backoff = (backoff * 2).min(config.reconnect_max);
            }
        }
    }
}
