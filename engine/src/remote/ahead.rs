//! One request in flight while the caller works: a scoped helper thread that sends
//! already-authorised requests, one at a time and in order, and hands back the raw
//! answers. It touches neither the token provider nor the database: the SQL layer's
//! token provider runs a host function on the caller's connection, which must happen
//! on the caller's thread (a serialized-mode host holds the connection mutex for the
//! whole `SELECT oversqlite_…()`, so a token asked for here would deadlock, and a
//! single-thread host would see the connection used from two threads). Authorising,
//! the 401 refresh and decoding stay with the caller ([`Remote::authorized`],
//! [`Remote::finish`]).
//!
//! [`Remote::authorized`]: crate::remote::client::Remote::authorized
//! [`Remote::finish`]: crate::remote::client::Remote::finish

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::thread::Scope;

use crate::error::{ErrorKind, Result, SyncError};
use crate::remote::cancel::{Limits, POLL};
use crate::remote::client::{send_prepared_detached, Remote};
use crate::remote::transport::{HttpRequest, HttpResponse, TransportError};

/// A request and what sending it produced.
pub(crate) type Sent = (
    HttpRequest,
    std::result::Result<HttpResponse, TransportError>,
);

pub(crate) struct AheadSender<'env> {
    requests: SyncSender<HttpRequest>,
    answers: Receiver<Sent>,
    limits: Limits<'env>,
}

impl<'env> AheadSender<'env> {
    /// Starts the helper in `scope`; it ends when this sender is dropped (after
    /// finishing the request it may be sending, or giving up on it at once when the
    /// call was interrupted or timed out).
    pub fn spawn<'scope>(
        scope: &'scope Scope<'scope, 'env>,
        remote: &'env Remote<'env>,
    ) -> AheadSender<'env> {
        let (requests, to_send) = sync_channel::<HttpRequest>(1);
        let (answered, answers) = sync_channel::<Sent>(1);
        let (transport, retry, stop) = (
            remote.transport.clone(),
            remote.retry,
            remote.limits.stop.clone(),
        );
        scope.spawn(move || {
            for req in to_send {
                let sent = send_prepared_detached(&transport, retry, &req, &stop, "request");
                if answered.send((req, sent)).is_err() {
                    return;
                }
            }
        });
        AheadSender {
            requests,
            answers,
            limits: remote.limits.clone(),
        }
    }

    /// Queues an authorised request (sent after the previous one was answered).
    pub fn send(&self, req: HttpRequest, what: &str) -> Result<()> {
        self.requests.send(req).map_err(|_| stopped(what))
    }

    /// The answer to the oldest request sent and not yet received; fails with
    /// `interrupted` / `timeout` while waiting, as every wait on the server does.
    pub fn recv(&self, what: &str) -> Result<Sent> {
        loop {
            match self.answers.recv_timeout(POLL) {
                Ok(sent) => return Ok(sent),
                Err(RecvTimeoutError::Timeout) => self.limits.check(what)?,
                Err(RecvTimeoutError::Disconnected) => return Err(stopped(what)),
            }
        }
    }
}

fn stopped(what: &str) -> SyncError {
    SyncError::new(
        ErrorKind::NetworkError,
        format!("{what}: request sender stopped"),
    )
}
