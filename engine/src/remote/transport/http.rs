//! The HTTP vocabulary shared by every transport: requests, responses, the
//! `Transport` trait, URL redaction and percent-encoding.

use std::io::{BufRead, Write};

/// One HTTP request as the engine means it. `url` is absolute (base URL with the
/// configured path prefix preserved, then `/sync/...` and the query string).
/// `Debug` redacts credential headers and URL userinfo/query (tokens must never reach
/// logs or panic messages).
#[derive(Clone, PartialEq)]
pub struct HttpRequest {
    pub method: &'static str,
    pub url: String,
    /// Header names as sent; includes `Authorization` once the token is attached.
    pub headers: Vec<(String, String)>,
    /// JSON body bytes, or `None` for requests without a body.
    pub body: Option<Vec<u8>>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_lookup(&self.headers, name)
    }

    /// The path component of `url` (everything after the authority, before `?`).
    pub fn path(&self) -> &str {
        let after_scheme = self.url.find("://").map(|i| i + 3).unwrap_or(0);
        let rest = &self.url[after_scheme..];
        let path_start = rest
            .find('/')
            .map(|i| after_scheme + i)
            .unwrap_or(self.url.len());
        let end = self.url[path_start..]
            .find('?')
            .map(|i| path_start + i)
            .unwrap_or(self.url.len());
        &self.url[path_start..end]
    }

    /// Decoded query pairs in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        match self.url.find('?') {
            None => Vec::new(),
            Some(i) => self.url[i + 1..]
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        }
    }

    /// The query parameter `name`, if present.
    pub fn query(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn body_json(&self) -> Option<serde_json::Value> {
        self.body
            .as_ref()
            .and_then(|b| serde_json::from_slice(b).ok())
    }
}

/// Headers whose values are credentials.
fn is_secret_header(name: &str) -> bool {
    ["authorization", "proxy-authorization", "cookie"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let v = if is_secret_header(k) {
                    "<redacted>"
                } else {
                    v.as_str()
                };
                (k.as_str(), v)
            })
            .collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &redact_url(&self.url))
            .field("headers", &headers)
            .field("body_bytes", &self.body.as_ref().map(Vec::len))
            .finish()
    }
}

/// `url` without userinfo (`user:password@`) and without the query string, for error
/// messages and logs: either may carry credentials.
pub fn redact_url(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or("");
    let after_scheme = no_query.find("://").map(|i| i + 3).unwrap_or(0);
    let authority_end = no_query[after_scheme..]
        .find('/')
        .map(|i| after_scheme + i)
        .unwrap_or(no_query.len());
    match no_query[after_scheme..authority_end].rfind('@') {
        Some(at) => format!(
            "{}{}",
            &no_query[..after_scheme],
            &no_query[after_scheme + at + 1..]
        ),
        None => no_query.to_string(),
    }
}

/// A complete (non-streaming) response.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_lookup(&self.headers, name)
    }
}

/// Status and headers of a response whose body went to a caller-supplied sink.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseHead {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_lookup(&self.headers, name)
    }
}

/// A streaming response (used for `GET /sync/watch`). Dropping it closes the stream.
pub struct StreamResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Box<dyn BufRead + Send>,
}

/// Why a request produced no response at all.
#[derive(Debug, Clone, PartialEq)]
pub struct TransportError {
    pub message: String,
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Sends requests. Implementations must not log header values (they carry tokens).
pub trait Transport: Send + Sync {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError>;
    fn open_stream(&self, request: &HttpRequest) -> Result<StreamResponse, TransportError>;

    /// Sends `request` and copies the whole response body into `sink` (any status),
    /// returning status and headers. Used for responses too large to hold in memory
    /// (a pull page carries whole bundles). The default goes through [`Transport::send`],
    /// so transports that only answer whole responses keep working; a production
    /// transport streams. A failed body write or read is a `TransportError`.
    fn send_to(
        &self,
        request: &HttpRequest,
        sink: &mut dyn Write,
    ) -> Result<ResponseHead, TransportError> {
        let resp = self.send(request)?;
        sink.write_all(&resp.body).map_err(|e| TransportError {
            message: format!(
                "writing the response of {} failed: {e}",
                redact_url(&request.url)
            ),
        })?;
        Ok(ResponseHead {
            status: resp.status,
            headers: resp.headers,
        })
    }

    /// Ends every stream this transport has open (a blocked read returns at once, as at
    /// end of stream); later streams open normally. The default does nothing: a
    /// transport that cannot interrupt a read leaves it to the server's next line.
    fn cancel_streams(&self) {}
}

fn header_lookup<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Percent-encodes everything outside RFC 3986 "unreserved" so ids are safe as a
/// single path segment or query value.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{:02X}", b));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
