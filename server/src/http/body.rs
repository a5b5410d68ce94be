//! Request bodies with a per-route size limit.
//!
//! Each body-carrying route reads its body through [`LimitedBody`], whose limit is what a
//! valid request to that route can be. It runs after the [`super::Actor`] extractor, so an
//! unauthenticated request is answered 401 before a byte of its body is read. Over the limit
//! the answer is `413 request_body_too_large` (the protocol's error JSON): at once, from the
//! `Content-Length` header, when the client declares the size; otherwise as soon as the
//! streamed body passes the limit, so at most `limit` bytes are ever held.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use oversqlite_protocol::codes;

use crate::error::ApiError;
use crate::state::MAX_ROWS_PER_CHUNK;

/// Error code of a body over its route's limit (server-specific: the reference has none).
pub const REQUEST_BODY_TOO_LARGE: &str = "request_body_too_large";

/// Per-row share of a push chunk's limit: an encoded row (key, payload, base64 blobs) may
/// average up to this many bytes over a full chunk of `max_rows_per_push_chunk` rows.
pub const PUSH_ROW_BYTE_BOUND: usize = 16 * 1024;

/// Room for the chunk envelope (`start_row_ordinal`, brackets, whitespace).
const ENVELOPE_BYTES: usize = 64 * 1024;

/// `POST /sync/push-sessions/{id}/chunks` and `POST /test/server-bundle`: the advertised
/// `max_rows_per_push_chunk` rows at [`PUSH_ROW_BYTE_BOUND`] each (5000 × 16 KiB ≈ 78 MiB).
pub const ROWS_BODY_LIMIT: usize =
    MAX_ROWS_PER_CHUNK as usize * PUSH_ROW_BYTE_BOUND + ENVELOPE_BYTES;

/// Every other body-carrying route (connect, push-session create, snapshot-session create,
/// sign-in, retention floor, reset): a few ids and flags.
pub const SMALL_BODY_LIMIT: usize = 64 * 1024;

/// The route's whole body, at most `LIMIT` bytes.
pub struct LimitedBody<const LIMIT: usize>(pub Bytes);

pub type RowsBody = LimitedBody<ROWS_BODY_LIMIT>;
pub type SmallBody = LimitedBody<SMALL_BODY_LIMIT>;

fn too_large(limit: usize) -> Response {
    ApiError::new(
        413,
        REQUEST_BODY_TOO_LARGE,
        format!("request body exceeds this route's limit of {limit} bytes"),
    )
    .into_response()
}

impl<S: Send + Sync, const LIMIT: usize> FromRequest<S> for LimitedBody<LIMIT> {
    type Rejection = Response;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > LIMIT as u64) {
            return Err(too_large(LIMIT));
        }
        let mut stream = request.into_body().into_data_stream();
        let mut body = Vec::with_capacity(declared.unwrap_or(0) as usize);
        while let Some(frame) = stream.next().await {
            let frame = frame.map_err(|_| {
                ApiError::bad_request(codes::INVALID_REQUEST, "failed to read the request body")
                    .into_response()
            })?;
            if body.len() + frame.len() > LIMIT {
                return Err(too_large(LIMIT));
            }
            body.extend_from_slice(&frame);
        }
        Ok(LimitedBody(Bytes::from(body)))
    }
}
