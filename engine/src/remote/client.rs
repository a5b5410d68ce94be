//! `Remote`, the HTTP client of one operation: it authenticates every request (the
//! only place tokens are asked for, and the only place a 401 is answered by asking
//! the provider once for a fresh token, streams included), retries transient
//! failures, and decodes answers into [`Reply`].

use oversqlite_protocol::{
    CapabilitiesResponse, CommittedBundleRowsResponse, ConnectResponse, ErrorBody,
    PushChunkRequest, PushCommitResponse, PushSessionCreateRequest, PushSessionCreateResponse,
    SnapshotChunkResponse, SnapshotSessionCreateRequest, SnapshotSessionCreateResponse,
};
use serde::de::DeserializeOwned;

use std::sync::Arc;

use crate::error::{ErrorKind, Result, SyncError};
use crate::remote::auth::TokenProvider;
use crate::remote::cancel::{CallStop, Limits};
use crate::remote::redact;
use crate::remote::requests::Requests;
use crate::remote::transport::{
    send_to_with_retry_until, send_with_retry, send_with_retry_until, HttpRequest, HttpResponse,
    ResponseHead, RetryPolicy, StreamResponse, Transport, TransportError,
};

/// A non-success HTTP answer, with the decoded error envelope when there was one.
#[derive(Debug, Clone)]
pub struct HttpFailure {
    pub status: u16,
    pub body: Option<ErrorBody>,
    /// The body as text when it was not a JSON error envelope (a 401 from an auth
    /// middleware is plain text): redacted and capped like every server text.
    pub text: Option<String>,
    /// The request's URL (no userinfo, no query), for advice that names it.
    pub url: Option<String>,
}

impl HttpFailure {
    pub fn code(&self) -> Option<&str> {
        self.body.as_ref().map(|b| b.error.as_str())
    }

    pub fn into_error(self, what: &str) -> SyncError {
        let kind = if self.status == 401 {
            ErrorKind::AuthenticationFailed
        } else {
            ErrorKind::HttpError
        };
        let detail = match (&self.body, &self.text) {
            (Some(b), _) if b.message.is_empty() => format!(" ({})", b.error),
            (Some(b), _) => format!(" ({}: {})", b.error, b.message),
            (None, Some(t)) => format!(" ({t})"),
            (None, None) => String::new(),
        };
        let mut e = SyncError::new(
            kind,
            format!(
                "{what} failed with HTTP {}{detail}{}",
                self.status,
                self.advice()
            ),
        );
        e.http_status = Some(self.status);
        e.server_code = self.body.map(|b| b.error);
        e
    }
}

/// Outcome of one call: decoded success or a server refusal (local failures are `Err`).
#[allow(clippy::large_enum_variant)] // short-lived, matched immediately
pub enum Reply<T> {
    Ok(T),
    Failed(HttpFailure),
}

impl<T> Reply<T> {
    /// Turns any server refusal into an error (for routes without special codes).
    pub fn ok_or_error(self, what: &str) -> Result<T> {
        match self {
            Reply::Ok(v) => Ok(v),
            Reply::Failed(f) => Err(f.into_error(what)),
        }
    }
}

/// Sends requests for one source, with authentication and transient retry. Every
/// exchange waits through `limits`, so the host's `sqlite3_interrupt` and the call's
/// deadline stop it (see [`crate::remote::cancel`]).
pub struct Remote<'a> {
    pub requests: Requests,
    pub transport: Arc<dyn Transport>,
    pub tokens: &'a dyn TokenProvider,
    pub retry: &'a RetryPolicy,
    pub limits: Limits<'a>,
}

impl HttpFailure {
    /// Decodes a non-2xx body. The server's `error` and `message` are response-derived
    /// text: every token in `sent` (the bearer tokens the request carried) is redacted
    /// from them and they are cut to `redact::MAX_SERVER_TEXT_CHARS`. A body that is not
    /// an error envelope is kept as (redacted, capped, trimmed) text when it is UTF-8.
    pub fn from_body(status: u16, body: &[u8], sent: &[String]) -> HttpFailure {
        let envelope = serde_json::from_slice::<ErrorBody>(body).ok().map(|mut b| {
            b.error = redact::server_text(&b.error, sent);
            b.message = redact::server_text(&b.message, sent);
            b
        });
        let text = match envelope {
            Some(_) => None,
            None => std::str::from_utf8(body)
                .ok()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| redact::server_text(t, sent)),
        };
        HttpFailure {
            status,
            body: envelope,
            text,
            url: None,
        }
    }

    /// The same failure, naming the URL it came from (redacted).
    pub fn at(mut self, url: &str) -> HttpFailure {
        self.url = Some(crate::remote::transport::redact_url(url));
        self
    }

    /// What to do about this status, when the status alone tells: a 401 is a token the
    /// server refused; a 404 without an error envelope is a route that does not exist,
    /// which means the configured URL is not the sync API root (every real route's 404
    /// carries an envelope).
    fn advice(&self) -> String {
        match (self.status, &self.body) {
            (401, _) => "; the server refused the bearer token: check the token's expiry and that it was signed with the server's secret (oversqlite_set_token, OVERSQLITE_TOKEN/OVERSQLITE_TOKEN_FILE, or the host's oversqlite_auth_token())".to_string(),
            (404, None) => format!(
                "; no sync route at {}: the server URL given to oversqlite_init must be the sync API root (e.g. http://host:port, where /sync/... lives), without an extra path",
                self.url.as_deref().unwrap_or("the configured URL")
            ),
            (413, _) => "; the request is larger than the server accepts (a push is already split down to one row per chunk before this is reported): make the row smaller, e.g. keep large blobs out of synced tables, or raise the server's body limit; the change stays pending".to_string(),
            _ => String::new(),
        }
    }
}

fn decode_failure(resp: &HttpResponse, url: &str, sent: &[String]) -> HttpFailure {
    HttpFailure::from_body(resp.status, &resp.body, sent).at(url)
}

/// A transport failure as an engine error; its text may quote the answer, so it is
/// redacted like a server message.
fn network_error(what: &str, message: &str, sent: &[String]) -> SyncError {
    SyncError::new(
        ErrorKind::NetworkError,
        redact::server_text(&format!("{what}: {message}"), sent),
    )
}

/// The bearer tokens a request carried (one, or none).
fn tokens_of(req: &HttpRequest) -> Vec<String> {
    redact::bearer_of(&req.headers).into_iter().collect()
}

/// The start of a spooled error body: error envelopes are small, so a huge non-2xx
/// body is cut rather than read whole (and then simply fails to decode).
fn read_error_body(file: &mut std::fs::File) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut body = Vec::new();
    if file.seek(SeekFrom::Start(0)).is_ok() {
        let _ = file.take(1 << 20).read_to_end(&mut body);
    }
    body
}

impl<'a> Remote<'a> {
    fn authorize(&self, mut req: HttpRequest, token: Option<String>) -> HttpRequest {
        req.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("Authorization"));
        if let Some(t) = token {
            req.headers
                .push(("Authorization".to_string(), format!("Bearer {t}")));
        }
        req
    }

    /// The one answer to a 401: when `sent` (the answer to `req`) is a 401, asks the
    /// provider once for a fresh token and, if it gives one, sends `req` again with it
    /// through `send`; otherwise `sent` stands.
    fn after_unauthorized<R>(
        &self,
        req: HttpRequest,
        sent: R,
        status: impl Fn(&R) -> u16,
        send: impl FnOnce(&HttpRequest) -> Result<R>,
    ) -> Result<R> {
        if status(&sent) != 401 {
            return Ok(sent);
        }
        match self.tokens.token_after_unauthorized()? {
            Some(fresh) => send(&self.authorize(req, Some(fresh))),
            None => Ok(sent),
        }
    }

    /// Sends with the current token; after a 401 asks the provider once for a fresh one.
    pub fn send_raw(&self, req: HttpRequest, what: &str) -> Result<HttpResponse> {
        self.send_tracked(req, what).map(|(resp, _)| resp)
    }

    /// `send_raw`, also returning every token sent (for redacting the answer).
    fn send_tracked(&self, req: HttpRequest, what: &str) -> Result<(HttpResponse, Vec<String>)> {
        let first = self.authorized(req)?;
        let mut sent = tokens_of(&first);
        let resp = self.send_once(&first, what, &sent)?;
        let resp = self.after_unauthorized(
            first,
            resp,
            |r| r.status,
            |r| {
                sent.extend(tokens_of(r));
                self.send_once(r, what, &sent)
            },
        )?;
        Ok((resp, sent))
    }

    fn send_once(&self, req: &HttpRequest, what: &str, sent: &[String]) -> Result<HttpResponse> {
        let (transport, retry, owned) = self.owned(req);
        let stop = self.limits.stop.clone();
        let resp = self
            .limits
            .wait(what, move || {
                send_prepared_until(&*transport, &retry, &owned, &stop)
            })?
            .map_err(|e| network_error(what, &e.message, sent))?;
        crate::progress::bytes(body_len(req), resp.body.len());
        Ok(resp)
    }

    /// What a detached exchange thread needs, owned.
    fn owned(&self, req: &HttpRequest) -> (Arc<dyn Transport>, RetryPolicy, HttpRequest) {
        (self.transport.clone(), self.retry.clone(), req.clone())
    }

    /// Sends and decodes a 2xx JSON body into `T`; other statuses become `Reply::Failed`.
    pub fn call<T: DeserializeOwned>(&self, req: HttpRequest, what: &str) -> Result<Reply<T>> {
        let url = req.url.clone();
        let (resp, sent) = self.send_tracked(req, what)?;
        decode_reply(&resp, &url, what, &sent)
    }

    /// Best-effort DELETE (session cleanup): failures are ignored by design (§2.6, §2.11).
    pub fn best_effort(&self, req: HttpRequest) {
        let _ = self.send_raw(req, "session cleanup");
    }

    /// Opens a streaming response (the watch), with the same 401 rule as every call;
    /// also returns the tokens sent, for redacting a refusal's body
    /// ([`HttpFailure::from_body`]).
    pub fn open_stream(
        &self,
        req: HttpRequest,
        what: &str,
    ) -> Result<(StreamResponse, Vec<String>)> {
        let first = self.authorized(req)?;
        let mut sent = tokens_of(&first);
        let open = |r: &HttpRequest, sent: &[String]| {
            let (transport, _, owned) = self.owned(r);
            self.limits
                .wait(what, move || transport.open_stream(&owned))?
                .map_err(|e| network_error(what, &e.message, sent))
        };
        let stream = open(&first, &sent)?;
        let stream = self.after_unauthorized(
            first,
            stream,
            |s| s.status,
            |r| {
                sent.extend(tokens_of(r));
                open(r, &sent)
            },
        )?;
        Ok((stream, sent))
    }

    pub fn capabilities(&self, source: &str) -> Result<Reply<CapabilitiesResponse>> {
        self.call(self.requests.capabilities(source), "capabilities request")
    }

    pub fn connect(&self, source: &str, pending: bool) -> Result<Reply<ConnectResponse>> {
        self.call(self.requests.connect(source, pending), "connect request")
    }

    /// `GET /sync/pull` with the body streamed into `file` instead of memory (a page
    /// carries whole bundles). `Reply::Ok(())` means a 2xx body now fills `file`; a
    /// refusal is decoded from the (small) error body, as [`Remote::call`] does.
    pub fn pull_to_file(
        &self,
        source: &str,
        after: i64,
        max: i64,
        target: i64,
        file: &mut std::fs::File,
    ) -> Result<Reply<()>> {
        let what = "pull request";
        let req = self.requests.pull(source, after, max, target);
        let url = req.url.clone();
        let first = self.authorized(req)?;
        let mut sent = tokens_of(&first);
        let head = self.send_to_file_once(&first, what, file, &sent)?;
        let head = self.after_unauthorized(
            first,
            head,
            |h| h.status,
            |r| {
                sent.extend(tokens_of(r));
                self.send_to_file_once(r, what, file, &sent)
            },
        )?;
        if (200..300).contains(&head.status) {
            return Ok(Reply::Ok(()));
        }
        Ok(Reply::Failed(decode_failure(
            &HttpResponse {
                status: head.status,
                headers: head.headers,
                body: read_error_body(file),
            },
            &url,
            &sent,
        )))
    }

    fn send_to_file_once(
        &self,
        req: &HttpRequest,
        what: &str,
        file: &mut std::fs::File,
        sent: &[String],
    ) -> Result<ResponseHead> {
        // The exchange writes through its own handle of the spool file; an abandoned
        // one keeps writing into a file this call no longer reads.
        let mut spool = file.try_clone().map_err(|e| {
            SyncError::new(
                ErrorKind::NetworkError,
                format!("{what}: reopening the response spool file failed: {e}"),
            )
        })?;
        let (transport, retry, owned) = self.owned(req);
        let stop = self.limits.stop.clone();
        let head = self
            .limits
            .wait(what, move || {
                send_to_with_retry_until(&*transport, &retry, &owned, &mut spool, &|| {
                    stop.check("").is_err()
                })
            })?
            .map_err(|e| network_error(what, &e.message, sent))?;
        let down = file.metadata().map(|m| m.len() as usize).unwrap_or(0);
        crate::progress::bytes(body_len(req), down);
        Ok(head)
    }

    pub fn create_push(
        &self,
        source: &str,
        body: &PushSessionCreateRequest,
    ) -> Result<Reply<PushSessionCreateResponse>> {
        self.call(
            self.requests.push_session_create(source, body),
            "push session create",
        )
    }

    pub fn push_chunk(
        &self,
        source: &str,
        push_id: &str,
        body: &PushChunkRequest,
    ) -> Result<Reply<oversqlite_protocol::PushChunkResponse>> {
        self.call(
            self.requests.push_session_chunk(source, push_id, body),
            "push chunk upload",
        )
    }

    pub fn commit_push(&self, source: &str, push_id: &str) -> Result<Reply<PushCommitResponse>> {
        self.call(
            self.requests.push_session_commit(source, push_id),
            "push commit",
        )
    }

    pub fn committed_rows(
        &self,
        source: &str,
        seq: i64,
        after: Option<i64>,
        max: i64,
    ) -> Result<Reply<CommittedBundleRowsResponse>> {
        self.call(
            self.requests.committed_rows(source, seq, after, max),
            "committed bundle fetch",
        )
    }

    pub fn create_snapshot(
        &self,
        source: &str,
        body: Option<&SnapshotSessionCreateRequest>,
    ) -> Result<Reply<SnapshotSessionCreateResponse>> {
        self.call(
            self.requests.snapshot_session_create(source, body),
            "snapshot session create",
        )
    }

    /// A snapshot chunk request carrying the current token, for sending elsewhere
    /// (a download thread). The token is asked for here, on the caller's thread: a
    /// provider may call back into the host through the connection.
    pub fn snapshot_chunk_request(
        &self,
        source: &str,
        id: &str,
        after: i64,
        max: i64,
    ) -> Result<HttpRequest> {
        self.authorized(self.requests.snapshot_chunk(source, id, after, max))
    }

    /// `req` with the current bearer token, asked for on this (the caller's) thread,
    /// ready for [`send_prepared`] on any thread.
    pub fn authorized(&self, req: HttpRequest) -> Result<HttpRequest> {
        Ok(self.authorize(req, self.tokens.token()?))
    }

    /// Finishes a request made with [`Remote::authorized`] and sent elsewhere, as
    /// [`Remote::call`] would: after a 401 the provider is asked once for a fresh
    /// token (on this thread) and the request is sent again; then the body is decoded.
    pub fn finish<T: DeserializeOwned>(
        &self,
        req: HttpRequest,
        sent: std::result::Result<HttpResponse, TransportError>,
        what: &str,
    ) -> Result<Reply<T>> {
        let mut tokens = tokens_of(&req);
        let url = req.url.clone();
        let resp = sent.map_err(|e| network_error(what, &e.message, &tokens))?;
        // Sent on a helper thread; counted here, on the operation's thread.
        crate::progress::bytes(body_len(&req), resp.body.len());
        let resp = self.after_unauthorized(
            req,
            resp,
            |r| r.status,
            |r| {
                tokens.extend(tokens_of(r));
                self.send_once(r, what, &tokens)
            },
        )?;
        decode_reply(&resp, &url, what, &tokens)
    }

    /// The answer to a [`Remote::snapshot_chunk_request`] sent with [`send_prepared`],
    /// finished by [`Remote::finish`] (401 refresh on this thread, then decoding).
    pub fn snapshot_chunk_reply(
        &self,
        req: HttpRequest,
        sent: std::result::Result<HttpResponse, TransportError>,
    ) -> Result<Reply<SnapshotChunkResponse>> {
        self.finish(req, sent, "snapshot chunk fetch")
    }
}

fn body_len(req: &HttpRequest) -> usize {
    req.body.as_ref().map_or(0, Vec::len)
}

/// Sends an already authorised request with transient retry; touches no token, so
/// it may run on any thread.
pub fn send_prepared(
    transport: &dyn Transport,
    retry: &RetryPolicy,
    req: &HttpRequest,
) -> std::result::Result<HttpResponse, TransportError> {
    send_with_retry(transport, retry, req)
}

/// [`send_prepared`] that makes no further attempt once `stop` says the call is over.
pub fn send_prepared_until(
    transport: &dyn Transport,
    retry: &RetryPolicy,
    req: &HttpRequest,
    stop: &CallStop,
) -> std::result::Result<HttpResponse, TransportError> {
    send_with_retry_until(transport, retry, req, &|| stop.check("").is_err())
}

/// [`send_prepared_until`] on a helper thread (send-ahead): the exchange itself runs
/// detached, and the helper gives up on it as soon as the caller's thread has stopped
/// the call, so the helper (a scoped thread the caller joins) ends within [`POLL`].
///
/// [`POLL`]: crate::remote::cancel::POLL
pub fn send_prepared_detached(
    transport: &Arc<dyn Transport>,
    retry: &RetryPolicy,
    req: &HttpRequest,
    stop: &Arc<CallStop>,
    what: &str,
) -> std::result::Result<HttpResponse, TransportError> {
    let (transport, retry, owned, inner) =
        (transport.clone(), retry.clone(), req.clone(), stop.clone());
    crate::remote::cancel::detached(
        move || send_prepared_until(&*transport, &retry, &owned, &inner),
        || stop.check(what),
    )
    .unwrap_or_else(|e| Err(TransportError { message: e.message }))
}

/// A 2xx JSON body decoded into `T`; other statuses become `Reply::Failed` (the
/// decoding half of [`Remote::call`]).
fn decode_reply<T: DeserializeOwned>(
    resp: &HttpResponse,
    url: &str,
    what: &str,
    sent: &[String],
) -> Result<Reply<T>> {
    if !(200..300).contains(&resp.status) {
        return Ok(Reply::Failed(decode_failure(resp, url, sent)));
    }
    // serde quotes offending values from the body: redact them too.
    serde_json::from_slice::<T>(&resp.body)
        .map(Reply::Ok)
        .map_err(|e| {
            SyncError::protocol(redact::server_text(
                &format!("{what}: malformed response body: {e}"),
                sent,
            ))
        })
}
