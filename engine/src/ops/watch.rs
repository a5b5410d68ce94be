//! One round of the bundle-change watch (§2.12, §7.12): open `GET /sync/watch` at the
//! durable checkpoint, pull once per bundle event, and pull once more when the stream
//! ends or fails. A host runs this in a loop on a background connection (with its own
//! backoff) to get automatic downloads; the operation lock is taken only by each pull,
//! never for the whole stream, so foreground syncs keep working.

use oversqlite_protocol::FEATURE_BUNDLE_CHANGE_WATCH;
use rusqlite::Connection;
use serde::Serialize;

use crate::api::{HttpFailure, Remote, Requests};
use crate::client::SyncClient;
use crate::error::{ErrorKind, Result, SyncError};
use crate::report::ChangedTables;
use crate::sse::read_events;
use crate::state;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchOutcome {
    /// The server closed the stream cleanly.
    StreamEnded,
    /// The watch could not be opened (non-200); `error_code` names the server's reason.
    SetupFailed,
    /// The stream broke or carried a malformed event.
    StreamFailed,
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

impl SyncClient {
    /// Whether the server offers the watch stream (`features.bundle_change_watch`, strictly true).
    pub fn bundle_change_watch_supported(&mut self, conn: &Connection) -> Result<bool> {
        let ctx = self.begin(conn)?;
        let source = state::attachment(conn)?.current_source_id;
        let caps = ctx
            .remote
            .capabilities(&source)?
            .ok_or_error("capabilities request")?;
        Ok(caps.feature(FEATURE_BUNDLE_CHANGE_WATCH))
    }

    pub fn watch_once(&mut self, conn: &Connection) -> Result<WatchReport> {
        if !conn.is_autocommit() {
            return Err(SyncError::new(
                ErrorKind::InTransaction,
                "cannot watch inside an open transaction",
            ));
        }
        let (source, after, url) = {
            let ctx = self.begin(conn)?;
            let att = self.require_connected(&ctx)?;
            (
                att.current_source_id,
                att.last_bundle_seq_seen,
                ctx.config.server_url.clone(),
            )
        };
        let opened = {
            let remote = Remote {
                requests: Requests::new(&url),
                transport: self.transport_ref(),
                tokens: self.tokens_ref(),
                retry: &self.settings.retry,
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
        let mut stream = match opened {
            Ok(s) if s.status == 200 => s,
            Ok(mut s) => {
                let mut body = Vec::new();
                let _ = std::io::Read::read_to_end(
                    &mut std::io::Read::take(s.body.as_mut(), 64 * 1024),
                    &mut body,
                );
                let failure = HttpFailure {
                    status: s.status,
                    body: serde_json::from_slice(&body).ok(),
                };
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
            Err(e) => {
                report.outcome = WatchOutcome::SetupFailed;
                report.error_code = Some(e.code().to_string());
                self.counted_pull(conn, &mut report);
                return Ok(report);
            }
        };
        let mut pull_failed = false;
        let result = read_events(stream.body.as_mut(), |_event| {
            report.events += 1;
            if !self.counted_pull(conn, &mut report) {
                pull_failed = true;
            }
            Ok(())
        });
        drop(stream);
        match result {
            Ok(()) => {
                if !pull_failed {
                    self.counted_pull(conn, &mut report);
                }
            }
            Err(e) => {
                report.outcome = WatchOutcome::StreamFailed;
                report.error_code = Some(e.code().to_string());
                self.counted_pull(conn, &mut report);
            }
        }
        Ok(report)
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
