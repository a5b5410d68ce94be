//! The runs themselves: what each kind of run calls (journaled, with the caller's
//! trigger), keeping the client attached, and what a run's outcome does to the plan
//! (the next sync, backoff, waiting for a token).
use std::hash::{Hash, Hasher};
use std::time::Instant;

use rusqlite::Connection;

use crate::error::{ErrorKind, Result, SyncError};
use crate::journal::{self, Outcome};
use crate::local::state;
use crate::progress::now_millis;

use super::backoff;
use super::worker::{Plan, Worker};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Run {
    Sync,
    Push,
    Pull,
}

/// A hash of the token a run was refused with: the worker waits for a different one
/// without keeping the token itself.
pub(super) fn fingerprint(token: &Option<String>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    token.hash(&mut h);
    h.finish()
}

fn is_auth_failure(e: &SyncError) -> bool {
    e.kind == ErrorKind::AuthenticationFailed
        || e.kind == ErrorKind::TokenUnavailable
        || e.http_status == Some(401)
}

impl Worker {
    /// A successful run: the periodic sync is due again after `interval`, what the run
    /// did is no longer due, and writes that landed meanwhile are pushed after a
    /// debounce.
    pub(super) fn after_success(
        &mut self,
        conn: &Connection,
        plan: &mut Plan,
        run: Run,
        paused: (bool, bool),
    ) {
        let now = Instant::now();
        plan.failures = 0;
        plan.retry_at = None;
        match run {
            Run::Sync => {
                plan.next_sync = now + self.settings.interval;
                // A paused direction did not run: what it owes stays due.
                if !paused.0 {
                    plan.push_due = None;
                }
                if !paused.1 {
                    plan.pull_due = None;
                }
            }
            Run::Push => plan.push_due = None,
            Run::Pull => plan.pull_due = None,
        }
        // Writes that landed during the run are pushed after a debounce.
        if !self.paused_up() && state::pending_row_count(conn).unwrap_or(0) > 0 {
            plan.push_due.get_or_insert(now + self.settings.debounce);
        }
        self.update(|s| {
            s.consecutive_failures = 0;
            s.last_error = None;
            s.last_error_code = None;
        });
    }

    /// A failed run: backoff with jitter, or (authentication) wait for another token.
    pub(super) fn after_failure(&mut self, plan: &mut Plan, run: Run, e: SyncError) {
        let now = Instant::now();
        plan.failures += 1;
        let failures = plan.failures;
        if is_auth_failure(&e) {
            let current = self.client.tokens_ref().token().ok().flatten();
            plan.waiting_token = Some(fingerprint(&current));
            self.update(|s| s.advice = Some(
                        "the server refused the token (or there is none): call oversqlite_set_token(token) on the connection that started auto sync, update OVERSQLITE_TOKEN_FILE, or (with a host oversqlite_auth_token() function) call oversqlite_auto_sync_status() or any sync function on that connection to refresh it".into(),
                    ));
        } else {
            let wait = backoff::delay(
                failures,
                self.settings.min_backoff,
                self.settings.max_backoff,
            );
            plan.retry_at = Some(now + wait);
        }
        // A failure may mean the binding changed (lost lease, detach).
        plan.attach_checked = false;
        self.update(|s| {
            s.consecutive_failures = failures;
            s.last_error_code = Some(e.code().to_string());
            s.last_error = Some(crate::remote::redact::scrub_credentials(&e.message));
        });
        if run == Run::Sync {
            // Retried at retry_at (not after a whole interval).
            plan.next_sync = now;
        }
    }

    /// The client must be connected (attach in this client) before it may sync: a
    /// database attached by another connection resumes without a network request.
    pub(super) fn ensure_attached(&mut self, conn: &Connection) -> bool {
        let Ok(att) = state::attachment(conn) else {
            return false;
        };
        if !state::is_attached(&att) {
            self.client.set_connected(None);
            return false;
        }
        if self.client.connected_user() == Some(att.attached_user_id.as_str()) {
            return true;
        }
        let user = att.attached_user_id.clone();
        let keep = self.settings.journal_keep;
        let trigger = self.settings.trigger;
        let client = &mut self.client;
        match journal::recorded(conn, "attach", trigger, keep, || client.attach(conn, &user)) {
            Ok(_) => self.client.connected_user() == Some(user.as_str()),
            Err(e) => {
                self.update(|s| {
                    s.last_error_code = Some(e.code().to_string());
                    s.last_error = Some(crate::remote::redact::scrub_credentials(&e.message));
                });
                false
            }
        }
    }

    /// One journaled run.
    pub(super) fn run_once(&mut self, conn: &Connection, run: Run) -> Result<()> {
        let (up, down) = (!self.paused_up(), !self.paused_down());
        let pending = state::pending_row_count(conn).unwrap_or(0);
        let keep = self.settings.journal_keep;
        let trigger = self.settings.trigger;
        let client = &mut self.client;
        let (operation, result): (&str, Result<Outcome>) = match run {
            Run::Sync if up && down => (
                "sync",
                journal::recorded(conn, "sync", trigger, keep, || client.sync(conn))
                    .map(|r| journal::Journaled::outcome(&r)),
            ),
            Run::Sync if up => (
                "push",
                journal::recorded(conn, "push", trigger, keep, || client.push_pending(conn))
                    .map(|_| Outcome::Ok),
            ),
            Run::Sync | Run::Pull if pending > 0 && up => (
                "sync",
                journal::recorded(conn, "sync", trigger, keep, || client.sync(conn))
                    .map(|r| journal::Journaled::outcome(&r)),
            ),
            Run::Sync | Run::Pull => (
                "pull",
                journal::recorded(conn, "pull", trigger, keep, || client.pull_beside(conn))
                    .map(|_| Outcome::Ok),
            ),
            Run::Push => (
                "push",
                journal::recorded(conn, "push", trigger, keep, || client.push_pending(conn))
                    .map(|_| Outcome::Ok),
            ),
        };
        let finished = oversqlite_protocol::values::rfc3339::format_millis(now_millis());
        self.update(|s| {
            s.runs += 1;
            s.last_run_at = Some(finished);
            s.last_operation = Some(operation.to_string());
            s.last_outcome = Some(match &result {
                Ok(o) => o.as_str().to_string(),
                Err(_) => "error".to_string(),
            });
        });
        result.map(|_| ())
    }
}
