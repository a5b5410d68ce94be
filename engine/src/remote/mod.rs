//! Everything that talks to the server: the `Transport` trait and its two
//! implementations, request builders, the authenticated HTTP client with the single
//! 401 rule, bearer-token providers, the send-ahead helper thread, the watch's SSE
//! parser, and the checks every server answer passes before it is used.

pub(crate) mod ahead;
pub mod auth;
pub mod cancel;
pub mod client;
pub mod redact;
pub mod requests;
pub mod sse;
pub mod transport;
pub mod validate;
