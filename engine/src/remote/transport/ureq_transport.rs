//! Production transport over ureq 3 with rustls (certificates verified against the
//! bundled webpki roots). Non-2xx statuses are returned as responses, not errors,
//! so the engine can decode the server's JSON error envelope.

use std::io::{BufReader, Write};
use std::time::Duration;

use super::http::{
    HttpRequest, HttpResponse, ResponseHead, StreamResponse, Transport, TransportError,
};

#[derive(Debug, Clone)]
pub struct UreqTransportConfig {
    pub connect_timeout: Duration,
    /// Bound on receiving a complete (non-streaming) response.
    pub read_timeout: Duration,
    /// Largest response body accepted (snapshot/committed pages are capped server-side).
    pub max_body_bytes: u64,
}

impl Default for UreqTransportConfig {
    fn default() -> Self {
        UreqTransportConfig {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            max_body_bytes: 256 * 1024 * 1024,
        }
    }
}

pub struct UreqTransport {
    agent: ureq::Agent,
    /// Only for watch streams; replaced by a fresh one when its streams are cancelled
    /// (a shut-down agent opens no more connections).
    stream_agent: std::sync::Mutex<ureq::Agent>,
    config: UreqTransportConfig,
}

impl UreqTransport {
    pub fn new(config: UreqTransportConfig) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(config.connect_timeout))
            .timeout_recv_response(Some(config.read_timeout))
            .timeout_recv_body(Some(config.read_timeout))
            .build()
            .new_agent();
        UreqTransport {
            agent,
            stream_agent: std::sync::Mutex::new(Self::stream_agent(&config)),
            config,
        }
    }

    /// The watch stream stays open indefinitely; heartbeats arrive every ~25 s, so a
    /// per-read timeout well above that detects a dead connection.
    fn stream_agent(config: &UreqTransportConfig) -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(config.connect_timeout))
            .timeout_recv_response(Some(config.read_timeout))
            .timeout_per_read(Some(Duration::from_secs(90)))
            .build()
            .new_agent()
    }

    fn build(request: &HttpRequest) -> Result<ureq::http::Request<Vec<u8>>, TransportError> {
        let mut builder = ureq::http::Request::builder()
            .method(request.method)
            .uri(&request.url);
        for (k, v) in &request.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        if request.body.is_some() {
            builder = builder.header("Content-Type", "application/json");
        }
        builder
            .body(request.body.clone().unwrap_or_default())
            .map_err(|e| TransportError {
                message: format!(
                    "invalid request for {}: {e}",
                    super::http::redact_url(&request.url)
                ),
            })
    }
}

impl Default for UreqTransport {
    fn default() -> Self {
        Self::new(UreqTransportConfig::default())
    }
}

fn headers_of<B>(resp: &ureq::http::Response<B>) -> Vec<(String, String)> {
    resp.headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn transport_error(url: &str, e: ureq::Error) -> TransportError {
    let shown = super::http::redact_url(url);
    let text = e.to_string();
    TransportError {
        message: match scheme_mismatch(url, &text) {
            Some(advice) => format!("request to {shown} failed: {advice}"),
            None => format!("request to {shown} failed: {text}"),
        },
    }
}

/// Advice for the classic scheme mix-ups, recognised from the TLS library's and the
/// HTTP parser's error text: an `https://` URL pointing at a plain-HTTP server makes
/// rustls read an HTTP answer as a TLS record ("received corrupt message of type
/// InvalidContentType"); an `http://` URL pointing at a TLS port gets TLS bytes where an
/// HTTP status line belongs.
fn scheme_mismatch(url: &str, error: &str) -> Option<String> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://")
        && (error.contains("InvalidContentType") || error.contains("corrupt message"))
    {
        let plain = format!("http://{}", &url["https://".len()..]);
        return Some(format!(
            "the server does not speak TLS at that URL (it answered in plain HTTP); use {} instead ({error})",
            super::http::redact_url(&plain)
        ));
    }
    if lower.starts_with("http://")
        && (error.contains("http parse fail") || error.contains("unsupported http version"))
    {
        let tls = format!("https://{}", &url["http://".len()..]);
        return Some(format!(
            "the server did not answer in plain HTTP (it may expect TLS); if so, use {} instead ({error})",
            super::http::redact_url(&tls)
        ));
    }
    None
}

impl UreqTransport {
    /// Sends `request` on the regular agent; returns the status and headers, and the
    /// body still unread (buffered or streamed by the caller).
    fn exchange(
        &self,
        request: &HttpRequest,
    ) -> Result<(ResponseHead, ureq::Body), TransportError> {
        let req = Self::build(request)?;
        let resp = self
            .agent
            .run(req)
            .map_err(|e| transport_error(&request.url, e))?;
        let head = ResponseHead {
            status: resp.status().as_u16(),
            headers: headers_of(&resp),
        };
        Ok((head, resp.into_body()))
    }
}

impl Transport for UreqTransport {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let (head, body) = self.exchange(request)?;
        let body = body
            .into_with_config()
            .limit(self.config.max_body_bytes)
            .read_to_vec()
            .map_err(|e| transport_error(&request.url, e))?;
        Ok(HttpResponse {
            status: head.status,
            headers: head.headers,
            body,
        })
    }

    /// Streams the body into `sink` in fixed-size pieces: memory stays constant
    /// however large the response, within the same `max_body_bytes` bound as `send`.
    fn send_to(
        &self,
        request: &HttpRequest,
        sink: &mut dyn Write,
    ) -> Result<ResponseHead, TransportError> {
        let (head, body) = self.exchange(request)?;
        let mut reader = body
            .into_with_config()
            .limit(self.config.max_body_bytes)
            .reader();
        std::io::copy(&mut reader, sink).map_err(|e| TransportError {
            message: format!(
                "reading the response of {} failed: {e}",
                super::http::redact_url(&request.url)
            ),
        })?;
        Ok(head)
    }

    fn open_stream(&self, request: &HttpRequest) -> Result<StreamResponse, TransportError> {
        let req = Self::build(request)?;
        // Cloned out of the lock: a stream may take long to answer, and cancelling must
        // not wait for it.
        let agent = self
            .stream_agent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let resp = agent
            .run(req)
            .map_err(|e| transport_error(&request.url, e))?;
        let status = resp.status().as_u16();
        let headers = headers_of(&resp);
        let reader = resp.into_body().into_reader();
        Ok(StreamResponse {
            status,
            headers,
            body: Box::new(BufReader::new(reader)),
        })
    }

    /// Shuts the stream agent's connections down (ureq wakes a blocked read with end of
    /// stream) and puts a fresh agent in its place for later streams.
    fn cancel_streams(&self) {
        let fresh = Self::stream_agent(&self.config);
        let old = std::mem::replace(
            &mut *self.stream_agent.lock().unwrap_or_else(|p| p.into_inner()),
            fresh,
        );
        old.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::scheme_mismatch;

    #[test]
    fn scheme_mixups_get_advice_naming_the_other_scheme() {
        let tls = scheme_mismatch(
            "https://h:8080/sync/capabilities?x=1",
            "rustls: received corrupt message of type InvalidContentType",
        )
        .unwrap();
        assert!(tls.contains("does not speak TLS"), "{tls}");
        assert!(tls.contains("http://h:8080/sync/capabilities"), "{tls}");
        assert!(!tls.contains("x=1"), "the query is not shown: {tls}");
        let plain = scheme_mismatch("http://h/sync/x", "http parse fail: invalid version").unwrap();
        assert!(plain.contains("https://h/sync/x"), "{plain}");
        assert_eq!(scheme_mismatch("https://h/", "connection refused"), None);
        assert_eq!(scheme_mismatch("http://h/", "connection refused"), None);
    }
}
