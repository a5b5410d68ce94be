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

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::Scope;

use crate::error::{ErrorKind, Result, SyncError};
use crate::remote::client::{send_prepared, Remote};
use crate::remote::transport::{HttpRequest, HttpResponse, TransportError};

/// A request and what sending it produced.
pub(crate) type Sent = (
    HttpRequest,
    std::result::Result<HttpResponse, TransportError>,
);

pub(crate) struct AheadSender {
    requests: SyncSender<HttpRequest>,
    answers: Receiver<Sent>,
}

impl AheadSender {
    /// Starts the helper in `scope`; it ends when this sender is dropped (after
    /// finishing the request it may be sending).
    pub fn spawn<'scope, 'env: 'scope>(
        scope: &'scope Scope<'scope, 'env>,
        remote: &'env Remote<'env>,
    ) -> AheadSender {
        let (requests, to_send) = sync_channel::<HttpRequest>(1);
        let (answered, answers) = sync_channel::<Sent>(1);
        let (transport, retry) = (remote.transport, remote.retry);
        scope.spawn(move || {
            for req in to_send {
                let sent = send_prepared(transport, retry, &req);
                if answered.send((req, sent)).is_err() {
                    return;
                }
            }
        });
        AheadSender { requests, answers }
    }

    /// Queues an authorised request (sent after the previous one was answered).
    pub fn send(&self, req: HttpRequest, what: &str) -> Result<()> {
        self.requests.send(req).map_err(|_| stopped(what))
    }

    /// The answer to the oldest request sent and not yet received.
    pub fn recv(&self, what: &str) -> Result<Sent> {
        self.answers.recv().map_err(|_| stopped(what))
    }
}

fn stopped(what: &str) -> SyncError {
    SyncError::new(
        ErrorKind::NetworkError,
        format!("{what}: request sender stopped"),
    )
}
