//! One log line per request: method, route template, status, user, duration. Never a
//! token, a header or a body: the route is the matched template (`/sync/push-sessions/{push_id}/chunks`),
//! not the request path, and the user is the authenticated `sub`.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// Where the [`super::Actor`] extractor records the authenticated user for the log line.
#[derive(Default)]
pub struct RequestUser(OnceLock<String>);

impl RequestUser {
    pub fn set(&self, user: &str) {
        let _ = self.0.set(user.to_string());
    }
}

/// The route template of a request (`-` when no route matched).
pub fn route_of(extensions: &axum::http::Extensions) -> String {
    extensions
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "-".to_string())
}

pub async fn log_request(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = route_of(request.extensions());
    let user = Arc::new(RequestUser::default());
    request.extensions_mut().insert(user.clone());
    // Lines logged while handling (a refused token's reason) carry the route too.
    let span = tracing::info_span!("http", method = %method, route = %route);
    let response = next.run(request).instrument(span).await;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        method = %method,
        route = %route,
        status = response.status().as_u16(),
        // Debug formatting quotes the id, so no user id can forge log text.
        user = ?user.0.get().map(String::as_str).unwrap_or("-"),
        duration_ms = format_args!("{duration_ms:.1}"),
        "request"
    );
    response
}
