//! The worker's view of `GET /sync/watch` (§2.12): the stream is opened on the worker's
//! thread (token, 401 rule) and read on a helper thread that only parses events and
//! wakes the worker; every pull happens on the worker's thread, under the operation
//! lock, like any other run. The helper touches no database.
//!
//! A blocked read is interrupted by the transport (`Transport::cancel_streams`), which the
//! worker calls before [`WatchFeed::close`]; close then joins the helper (waiting up to
//! a bound; a transport that cannot cancel leaves it to end at the server's next line).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::error::Result;
use crate::remote::client::HttpFailure;
use crate::remote::sse::{read_line_bounded, SseParser, MAX_SSE_LINE_BYTES};
use crate::sync_client::SyncClient;

use super::worker::Wake;

pub(crate) struct WatchFeed {
    alive: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl WatchFeed {
    /// Opens the watch at the durable checkpoint and starts the reader.
    pub fn open(client: &SyncClient, conn: &Connection, wake: Sender<Wake>) -> Result<WatchFeed> {
        let ctx = client.begin_read_only(conn)?;
        let att = client.require_connected(&ctx)?;
        let req = ctx
            .remote
            .requests
            .watch(&att.current_source_id, att.last_bundle_seq_seen);
        let (mut stream, sent) = ctx.remote.open_stream(req, "watch request")?;
        if stream.status != 200 {
            let mut body = Vec::new();
            let _ = std::io::Read::read_to_end(
                &mut std::io::Read::take(stream.body.as_mut(), 64 * 1024),
                &mut body,
            );
            return Err(
                HttpFailure::from_body(stream.status, &body, &sent).into_error("watch request")
            );
        }
        let alive = Arc::new(AtomicBool::new(true));
        let flag = alive.clone();
        let mut body = stream.body;
        let reader = std::thread::Builder::new()
            .name("oversqlite-watch".into())
            .spawn(move || {
                let mut parser = SseParser::new();
                let mut line = String::new();
                let failed = loop {
                    line.clear();
                    match read_line_bounded(&mut *body, &mut line, MAX_SSE_LINE_BYTES) {
                        Ok(0) => break false,
                        Ok(_) => {}
                        Err(_) => break true,
                    }
                    if !flag.load(Ordering::SeqCst) {
                        return;
                    }
                    match parser.push_line(line.strip_suffix('\n').unwrap_or(&line)) {
                        Ok(Some(_)) => {
                            if wake.send(Wake::BundleEvent).is_err() {
                                return;
                            }
                        }
                        Ok(None) => {}
                        Err(_) => break true,
                    }
                };
                if flag.load(Ordering::SeqCst) {
                    let _ = wake.send(Wake::WatchEnded { failed });
                }
            })
            .map_err(|e| {
                crate::error::SyncError::new(
                    crate::error::ErrorKind::Internal,
                    format!("cannot start the watch reader: {e}"),
                )
            })?;
        Ok(WatchFeed {
            alive,
            reader: Some(reader),
        })
    }

    pub fn is_finished(&self) -> bool {
        self.reader.as_ref().is_none_or(|r| r.is_finished())
    }

    /// Stops listening; waits up to `wait` for the reader to end (it ends at the
    /// server's next line), joining it when it did.
    pub fn close(mut self, wait: Duration) {
        self.alive.store(false, Ordering::SeqCst);
        let Some(reader) = self.reader.take() else {
            return;
        };
        let until = Instant::now()
            .checked_add(wait)
            .unwrap_or_else(Instant::now);
        while !reader.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        if reader.is_finished() {
            let _ = reader.join();
        }
    }
}

impl Drop for WatchFeed {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::SeqCst);
    }
}
