//! The worker loop: one thread, one connection, one run at a time. Between runs it
//! waits on its inbox (stop, watch events) with a timeout that is the next due time or
//! the next `data_version` poll, whichever comes first.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::error::Result;
use crate::local::state;
use crate::progress::now_millis;
use crate::sync_client::SyncClient;

use super::backoff;
use super::runs::{fingerprint, Run};
use super::watch_feed::WatchFeed;
use super::{AutoStatus, AutoSyncSettings, Controls};

pub(crate) enum Wake {
    Stop,
    BundleEvent,
    WatchEnded { failed: bool },
}

pub(crate) struct Worker {
    pub client: SyncClient,
    pub settings: AutoSyncSettings,
    pub controls: Controls,
    pub inbox: Receiver<Wake>,
    pub wake: Sender<Wake>,
    pub stopped: Arc<AtomicBool>,
    pub status: Arc<Mutex<AutoStatus>>,
}

/// How long closing waits for the watch reader (it ends at the next heartbeat).
/// How long closing waits for the watch reader: its stream is cancelled first
/// (`Transport::cancel_streams`), so it normally ends at once.
const WATCH_CLOSE_WAIT: Duration = Duration::from_secs(2);

fn at(instant: Instant) -> String {
    let ahead = instant.saturating_duration_since(Instant::now());
    oversqlite_protocol::values::rfc3339::format_millis(now_millis() + ahead.as_millis() as i64)
}

/// One cached statement: the only query an idle worker runs per poll.
fn data_version(conn: &Connection) -> i64 {
    conn.prepare_cached("PRAGMA data_version")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .unwrap_or(-1)
}

/// The worker's schedule and memory between runs.
pub(super) struct Plan {
    pub(super) next_sync: Instant,
    pub(super) push_due: Option<Instant>,
    pub(super) pull_due: Option<Instant>,
    pub(super) retry_at: Option<Instant>,
    pub(super) failures: u32,
    /// Set while waiting for a token other than this one (its fingerprint).
    pub(super) waiting_token: Option<u64>,
    pub(super) watch_supported: Option<bool>,
    pub(super) watch_retry_at: Instant,
    pub(super) watch_failures: u32,
    /// The pause flags as last seen, to notice a resume.
    pub(super) paused: (bool, bool),
    /// The binding was checked since the last change by another connection (an
    /// attach or detach elsewhere moves data_version).
    pub(super) attach_checked: bool,
    /// The next run time last published in the status (to skip re-formatting it).
    pub(super) shown_next: Option<Instant>,
}

impl Worker {
    pub(super) fn paused_up(&self) -> bool {
        self.controls.uploads_paused.load(Ordering::SeqCst)
    }

    pub(super) fn paused_down(&self) -> bool {
        self.controls.downloads_paused.load(Ordering::SeqCst)
    }

    pub(super) fn update(&self, f: impl FnOnce(&mut AutoStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    pub fn run(mut self, open: impl FnOnce() -> Result<Connection>) {
        let conn = match open() {
            Ok(c) => c,
            Err(e) => {
                self.update(|s| {
                    s.running = false;
                    s.state = "failed".into();
                    s.last_error_code = Some(e.code().to_string());
                    s.last_error = Some(e.message.clone());
                });
                return;
            }
        };
        let mut feed: Option<WatchFeed> = None;
        self.main_loop(&conn, &mut feed);
        if let Some(f) = feed.take() {
            // The worker's transport is its own: cancelling ends only its watch stream.
            self.client.transport_arc().cancel_streams();
            f.close(WATCH_CLOSE_WAIT);
        }
        self.update(|s| {
            s.running = false;
            s.state = "stopped".into();
            s.watching = false;
            s.next_run_at = None;
        });
    }

    fn main_loop(&mut self, conn: &Connection, feed: &mut Option<WatchFeed>) {
        let now = Instant::now();
        let mut plan = Plan {
            next_sync: now,
            push_due: None,
            pull_due: None,
            retry_at: None,
            failures: 0,
            waiting_token: None,
            watch_supported: None,
            watch_retry_at: now,
            watch_failures: 0,
            paused: (self.paused_up(), self.paused_down()),
            attach_checked: false,
            shown_next: None,
        };
        let mut last_dv = data_version(conn);
        while !self.is_stopped() {
            let now = Instant::now();
            // Local writes by any other connection or process move data_version.
            let dv = data_version(conn);
            if dv != last_dv {
                last_dv = dv;
                plan.attach_checked = false;
                if state::pending_row_count(conn).unwrap_or(0) > 0 {
                    plan.push_due = Some(now + self.settings.debounce);
                }
            }
            // A resumed direction catches up at once on what waited meanwhile.
            let paused = (self.paused_up(), self.paused_down());
            if plan.paused.0 && !paused.0 && state::pending_row_count(conn).unwrap_or(0) > 0 {
                plan.push_due = Some(now);
            }
            if plan.paused.1 && !paused.1 {
                plan.pull_due = Some(now);
            }
            plan.paused = paused;
            if let Some(rejected) = plan.waiting_token {
                let current = self.client.tokens_ref().token().ok().flatten();
                if current.is_some() && fingerprint(&current) != rejected {
                    plan.waiting_token = None;
                    plan.retry_at = None;
                    plan.next_sync = now;
                    self.update(|s| s.advice = None);
                } else {
                    self.set_state("waiting_for_token", None);
                    if self.wait(
                        self.settings.poll.max(Duration::from_millis(200)),
                        &mut plan,
                        feed,
                    ) {
                        return;
                    }
                    continue;
                }
            }
            if !plan.attach_checked && !self.ensure_attached(conn) {
                self.set_state("waiting_for_attach", Some(now + self.settings.interval));
                if self.wait(
                    self.settings.interval.min(Duration::from_secs(2)),
                    &mut plan,
                    feed,
                ) {
                    return;
                }
                continue;
            }
            plan.attach_checked = true;
            self.manage_watch(conn, &mut plan, feed, now);
            let ready = plan.retry_at.is_none_or(|t| now >= t);
            let due = if !ready {
                None
            } else if now >= plan.next_sync && !(self.paused_up() && self.paused_down()) {
                Some(Run::Sync)
            } else if plan.push_due.is_some_and(|t| now >= t) && !self.paused_up() {
                Some(Run::Push)
            } else if plan.pull_due.is_some_and(|t| now >= t) && !self.paused_down() {
                Some(Run::Pull)
            } else {
                None
            };
            if let Some(run) = due {
                self.set_state("syncing", None);
                plan.shown_next = None;
                let paused = (self.paused_up(), self.paused_down());
                let result = self.run_once(conn, run);
                match result {
                    Ok(()) => self.after_success(conn, &mut plan, run, paused),
                    Err(e) => self.after_failure(&mut plan, run, e),
                }
                continue;
            }
            // Only what may run counts: a run a paused direction holds back is not due
            // (waiting for it would spin).
            let (up, down) = (!self.paused_up(), !self.paused_down());
            let next = [
                Some(plan.next_sync).filter(|_| up || down),
                plan.push_due.filter(|_| up),
                plan.pull_due.filter(|_| down),
            ]
            .into_iter()
            .flatten()
            .min()
            .map(|t| plan.retry_at.map_or(t, |r| t.max(r)));
            let state = if plan.retry_at.is_some_and(|r| r > now) {
                "backing_off"
            } else {
                "idle"
            };
            // An idle worker wakes every poll; it formats a time only when it changed.
            let changed = plan.shown_next != next;
            plan.shown_next = next;
            self.update(|s| {
                if s.state != state {
                    s.state = state.to_string();
                }
                if changed {
                    s.next_run_at = next.map(at);
                }
            });
            let wait = next
                .map(|t| t.saturating_duration_since(now))
                .unwrap_or(self.settings.poll)
                .min(self.settings.poll);
            if self.wait(wait, &mut plan, feed) {
                return;
            }
        }
    }

    fn set_state(&self, state: &str, next: Option<Instant>) {
        self.update(|s| {
            if s.state != state {
                s.state = state.to_string();
            }
            s.next_run_at = next.map(at);
        });
    }

    /// Waits for the inbox up to `d`; true when told to stop.
    fn wait(&self, d: Duration, plan: &mut Plan, feed: &mut Option<WatchFeed>) -> bool {
        match self.inbox.recv_timeout(d) {
            Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => true,
            Ok(Wake::BundleEvent) => {
                plan.pull_due = Some(Instant::now());
                self.is_stopped()
            }
            Ok(Wake::WatchEnded { failed }) => {
                if let Some(f) = feed.take() {
                    f.close(Duration::from_millis(100));
                }
                self.update(|s| s.watching = false);
                // Catch up on anything the stream may have missed, then reopen later.
                plan.pull_due = Some(Instant::now());
                if failed {
                    plan.watch_failures += 1;
                }
                plan.watch_retry_at = Instant::now()
                    + backoff::delay(
                        plan.watch_failures.max(1),
                        self.settings.min_backoff,
                        self.settings.max_backoff,
                    );
                self.is_stopped()
            }
            Err(RecvTimeoutError::Timeout) => self.is_stopped(),
        }
    }

    fn manage_watch(
        &mut self,
        conn: &Connection,
        plan: &mut Plan,
        feed: &mut Option<WatchFeed>,
        now: Instant,
    ) {
        let wanted = self.settings.watch != Some(false) && !self.paused_down();
        if !wanted {
            if let Some(f) = feed.take() {
                self.client.transport_arc().cancel_streams();
                f.close(WATCH_CLOSE_WAIT);
                self.update(|s| s.watching = false);
            }
            return;
        }
        if feed.as_ref().is_some_and(|f| f.is_finished()) {
            feed.take();
            self.update(|s| s.watching = false);
        }
        if feed.is_some() || now < plan.watch_retry_at || plan.waiting_token.is_some() {
            return;
        }
        if plan.watch_supported.is_none() {
            match self.client.bundle_change_watch_supported(conn) {
                Ok(s) => plan.watch_supported = Some(s),
                Err(_) => {
                    plan.watch_failures += 1;
                    plan.watch_retry_at = now
                        + backoff::delay(
                            plan.watch_failures,
                            self.settings.min_backoff,
                            self.settings.max_backoff,
                        );
                    return;
                }
            }
        }
        if plan.watch_supported != Some(true) {
            return;
        }
        match WatchFeed::open(&self.client, conn, self.wake.clone()) {
            Ok(f) => {
                *feed = Some(f);
                plan.watch_failures = 0;
                self.update(|s| s.watching = true);
            }
            Err(_) => {
                plan.watch_failures += 1;
                plan.watch_retry_at = now
                    + backoff::delay(
                        plan.watch_failures,
                        self.settings.min_backoff,
                        self.settings.max_backoff,
                    );
            }
        }
    }
}
