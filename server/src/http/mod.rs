//! HTTP surface: route table, authentication + source header, body/query parsing helpers.
// Handlers return ready `Response`s as their early-exit error type on purpose.
#![allow(clippy::result_large_err)]

pub mod body;
pub mod capabilities;
pub mod request_log;
pub mod sync_routes;
pub mod test_routes;
pub mod watch;

use std::sync::atomic::Ordering;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use oversqlite_protocol::{codes, SOURCE_ID_HEADER};
use serde::Serialize;

use crate::auth::verify_token;
use crate::error::{ApiError, Fail, ServiceResult};
use crate::state::{AppState, SharedState};

pub fn router(state: SharedState) -> Router {
    let mut router = Router::new()
        .route("/sync/capabilities", get(capabilities::capabilities))
        .route("/sync/connect", post(sync_routes::connect))
        .route(
            "/sync/push-sessions",
            post(sync_routes::create_push_session),
        )
        .route(
            "/sync/push-sessions/{push_id}/chunks",
            post(sync_routes::push_chunk),
        )
        .route(
            "/sync/push-sessions/{push_id}/commit",
            post(sync_routes::commit_push_session),
        )
        .route(
            "/sync/push-sessions/{push_id}",
            delete(sync_routes::delete_push_session),
        )
        .route(
            "/sync/committed-bundles/{bundle_seq}/rows",
            get(sync_routes::committed_bundle_rows),
        )
        .route("/sync/pull", get(sync_routes::pull))
        .route(
            "/sync/snapshot-sessions",
            post(sync_routes::create_snapshot_session),
        )
        .route(
            "/sync/snapshot-sessions/{snapshot_id}",
            get(sync_routes::snapshot_chunk).delete(sync_routes::delete_snapshot_session),
        )
        .route("/sync/watch", get(watch::watch))
        .route("/syncx/health", get(sync_routes::health))
        .route("/syncx/status", get(sync_routes::status));
    if state.settings.test_endpoints {
        router = router
            .route("/dummy-signin", post(test_routes::dummy_signin))
            .route("/test/reset", post(test_routes::reset))
            .route("/test/retention-floor", post(test_routes::retention_floor))
            .route("/test/server-bundle", post(test_routes::server_bundle))
            .route(
                "/test/watch-subscribers",
                get(test_routes::watch_subscribers),
            );
    }
    router
        // Bodies are read by `body::LimitedBody` with each route's own limit.
        .layer(axum::middleware::from_fn(request_log::log_request))
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                405,
                codes::METHOD_NOT_ALLOWED,
                "method not allowed for this route",
            )
        })
        .with_state(state)
}

/// The authenticated user and the request's source id. As a handler argument it is the
/// extractor of every authenticated route: [`authenticate`] runs before the handler body
/// (after `State`/`Path`/`Query`, before the request body is read), and its rejection is
/// the 401 / 400 / 503 response the handlers used to return themselves.
#[derive(Clone)]
pub struct Actor {
    pub user: String,
    pub source: String,
}

impl FromRequestParts<SharedState> for Actor {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let actor = authenticate(state, &parts.headers)?;
        if let Some(slot) = parts
            .extensions
            .get::<std::sync::Arc<request_log::RequestUser>>()
        {
            slot.set(&actor.user);
        }
        Ok(actor)
    }
}

impl Actor {
    /// Runs `work` for this user on the store, serialised with the user's other mutating
    /// operations (`AppState::run_for_user`); `work` gets the actor back.
    pub async fn run_for_user<R: Send + 'static>(
        &self,
        app: &SharedState,
        work: impl FnOnce(&AppState, &mut rusqlite::Connection, &Actor) -> ServiceResult<R>
            + Send
            + 'static,
    ) -> ServiceResult<R> {
        let actor = self.clone();
        app.run_for_user(&self.user, move |app, conn| work(app, conn, &actor))
            .await
    }

    /// Runs read-only `work` for this user on the store (`AppState::run`, not serialised).
    pub async fn run<R: Send + 'static>(
        &self,
        app: &SharedState,
        work: impl FnOnce(&AppState, &mut rusqlite::Connection, &Actor) -> ServiceResult<R>
            + Send
            + 'static,
    ) -> ServiceResult<R> {
        let actor = self.clone();
        app.run(move |app, conn| work(app, conn, &actor)).await
    }
}

/// What a handler returns: the response, or an early error response (`?` on a rejection).
pub type Reply = Result<Response, Response>;

/// Maps a service failure to the route's error envelope (`Fail::into_api`: the carried
/// `ApiError`, or 500 with the route's `*_failed` code and message).
pub fn failed(code: &'static str, message: &'static str) -> impl FnOnce(Fail) -> Response {
    move |f| f.into_api(code, message).into_response()
}

fn unauthorized(text: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{text}\n"),
    )
        .into_response()
}

/// Bearer token first (401 plain text, like the reference example), then the
/// `Oversync-Source-ID` header (400 `invalid_request` when blank; the value is trimmed, so
/// the cascade bundles' leading-space id can never arrive here); 503 while shutting down.
pub fn authenticate(state: &SharedState, headers: &HeaderMap) -> Result<Actor, Response> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim();
    if authorization.is_empty() {
        tracing::warn!(reason = "missing Authorization header", "request refused");
        return Err(unauthorized("Authorization header required"));
    }
    let parts: Vec<&str> = authorization.split(' ').collect();
    if parts.len() != 2 || parts[0] != "Bearer" {
        tracing::warn!(
            reason = "Authorization is not `Bearer <token>`",
            "request refused"
        );
        return Err(unauthorized("Invalid authorization header format"));
    }
    let user = match verify_token(&state.settings.jwt_secret, parts[1]) {
        Ok(user) => user,
        Err(refusal) => {
            // The reason only: the token is never logged.
            tracing::warn!(reason = refusal.reason(), "bearer token refused");
            return Err(unauthorized("Invalid token"));
        }
    };
    let source = headers
        .get(SOURCE_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_string();
    if source.is_empty() {
        return Err(ApiError::bad_request(
            codes::INVALID_REQUEST,
            format!("{SOURCE_ID_HEADER} header is required"),
        )
        .into_response());
    }
    if state.shutting_down.load(Ordering::Relaxed) {
        return Err(ApiError::new(
            503,
            codes::SERVICE_UNAVAILABLE,
            "Sync service is shutting down",
        )
        .into_response());
    }
    Ok(Actor { user, source })
}

pub fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(_) => ApiError::new(500, "encode_failed", "Failed to encode response").into_response(),
    }
}

pub fn ok_json<T: Serialize>(value: &T) -> Response {
    json_response(StatusCode::OK, value)
}

/// 200 with a body the service already encoded.
pub fn ok_json_body(body: crate::service::raw_rows::JsonBody) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.0,
    )
        .into_response()
}

/// Parses an optional integer query parameter; `Err` carries the reference's message.
pub fn query_i64(
    query: &std::collections::HashMap<String, String>,
    name: &str,
) -> Result<Option<i64>, String> {
    match query.get(name).map(|s| s.as_str()) {
        None | Some("") => Ok(None),
        Some(text) => text
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("{name} must be an integer")),
    }
}
