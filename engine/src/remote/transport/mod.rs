//! HTTP abstraction: the engine builds `HttpRequest`s and hands them to a
//! `Transport`. Production uses `UreqTransport`; tests use `ScriptedTransport`.

mod http;
mod retry;
mod scripted;
mod ureq_transport;

pub use http::*;
pub use retry::{
    send_to_with_retry, send_to_with_retry_until, send_with_retry, send_with_retry_until,
    RetryPolicy,
};
pub use scripted::{RecordedRequest, ScriptedResponse, ScriptedTransport};
pub use ureq_transport::{UreqTransport, UreqTransportConfig};
