//! A transport driven by a closure, recording every request. Used by the engine's
//! fixture runners and usable by hosts' own tests; it never touches the network.

use std::io::{BufRead, Cursor, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::http::{HttpRequest, HttpResponse, StreamResponse, Transport, TransportError};

/// What the script answers for one request.
#[derive(Debug, Clone)]
pub enum ScriptedResponse {
    Json(u16, serde_json::Value),
    Raw(u16, Vec<(String, String)>, Vec<u8>),
    /// The request fails without a response (network error).
    Fail(String),
}

impl ScriptedResponse {
    pub fn ok(body: serde_json::Value) -> Self {
        ScriptedResponse::Json(200, body)
    }

    pub fn error(status: u16, code: &str, message: &str) -> Self {
        ScriptedResponse::Json(
            status,
            serde_json::json!({"error": code, "message": message}),
        )
    }
}

/// A request as recorded by [`ScriptedTransport`] (headers included, so tests can
/// assert the source header; tests must not print them).
pub type RecordedRequest = HttpRequest;

type Handler = dyn FnMut(&HttpRequest) -> ScriptedResponse + Send;

#[derive(Clone)]
pub struct ScriptedTransport {
    handler: Arc<Mutex<Box<Handler>>>,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    closed_streams: Arc<AtomicUsize>,
}

/// A stream body that counts its own closing (drop), so tests can assert that a
/// watch response was closed.
struct CountedStream {
    inner: Cursor<Vec<u8>>,
    closed: Arc<AtomicUsize>,
}

impl Read for CountedStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl BufRead for CountedStream {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.inner.consume(amt)
    }
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }
}

impl ScriptedTransport {
    pub fn new(handler: impl FnMut(&HttpRequest) -> ScriptedResponse + Send + 'static) -> Self {
        ScriptedTransport {
            handler: Arc::new(Mutex::new(Box::new(handler))),
            requests: Arc::new(Mutex::new(Vec::new())),
            closed_streams: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// How many stream responses have been closed (dropped) so far.
    pub fn closed_streams(&self) -> usize {
        self.closed_streams.load(Ordering::SeqCst)
    }

    /// Every request sent so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn answer(&self, request: &HttpRequest) -> ScriptedResponse {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request.clone());
        let mut handler = self.handler.lock().unwrap_or_else(|p| p.into_inner());
        (handler)(request)
    }
}

impl Transport for ScriptedTransport {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        match self.answer(request) {
            ScriptedResponse::Json(status, body) => Ok(HttpResponse {
                status,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: serde_json::to_vec(&body).unwrap_or_default(),
            }),
            ScriptedResponse::Raw(status, headers, body) => Ok(HttpResponse {
                status,
                headers,
                body,
            }),
            ScriptedResponse::Fail(message) => Err(TransportError { message }),
        }
    }

    fn open_stream(&self, request: &HttpRequest) -> Result<StreamResponse, TransportError> {
        let resp = self.send(request)?;
        let body = CountedStream {
            inner: Cursor::new(resp.body),
            closed: self.closed_streams.clone(),
        };
        Ok(StreamResponse {
            status: resp.status,
            headers: resp.headers,
            body: Box::new(body),
        })
    }
}
