//! Test hooks, mounted only with `--enable-test-endpoints` (never in production):
//! `POST /dummy-signin`, `POST /test/reset`, `POST /test/retention-floor`,
//! `POST /test/server-bundle`, `GET /test/watch-subscribers`.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use oversqlite_protocol::codes;
use serde::Deserialize;
use serde_json::json;

use super::body::{LimitedBody, RowsBody, SmallBody};
use super::ok_json;
use crate::auth::issue_token;
use crate::error::ApiError;
use crate::service::admin;
use crate::service::server_bundle::{self, ServerBundleOutcome, ServerBundleRequest};
use crate::state::SharedState;

fn bad(message: &str) -> Response {
    ApiError::bad_request(codes::INVALID_REQUEST, message).into_response()
}

#[derive(Deserialize)]
struct SigninRequest {
    #[serde(default)]
    user: String,
    #[serde(default, rename = "password")]
    _password: String,
}

/// Any password is accepted; the token is valid for 300 s.
pub async fn dummy_signin(
    State(app): State<SharedState>,
    LimitedBody(body): SmallBody,
) -> Response {
    let Ok(req) = serde_json::from_slice::<SigninRequest>(&body) else {
        return bad("invalid JSON");
    };
    if req.user.is_empty() {
        return bad("user required");
    }
    match issue_token(&app.settings.jwt_secret, &req.user, 300) {
        Ok(token) => ok_json(&json!({"token": token, "expires_in": 300, "user": req.user})),
        Err(e) => ApiError::new(500, "token_error", e).into_response(),
    }
}

pub async fn reset(State(app): State<SharedState>) -> Response {
    match app.run(admin::reset).await {
        Ok(()) => ok_json(&json!({"schema": app.registry.schemas().join(","), "status": "ok"})),
        Err(f) => f
            .into_api("reset_failed", "Failed to reset the store")
            .into_response(),
    }
}

#[derive(Deserialize)]
struct RetentionFloorRequest {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    retained_bundle_floor: i64,
}

pub async fn retention_floor(
    State(app): State<SharedState>,
    LimitedBody(body): SmallBody,
) -> Response {
    let Ok(req) = serde_json::from_slice::<RetentionFloorRequest>(&body) else {
        return bad("invalid JSON");
    };
    let user = req.user_id.trim().to_string();
    if user.is_empty() {
        return bad("user_id required");
    }
    if req.retained_bundle_floor < 0 {
        return bad("retained_bundle_floor must be non-negative");
    }
    let floor = req.retained_bundle_floor;
    let target = user.clone();
    match app
        .run_for_user(&user, move |_, conn| {
            admin::set_retention_floor(conn, &target, floor)
        })
        .await
    {
        Ok(()) => ok_json(
            &json!({"retained_bundle_floor": floor, "status": "ok", "user_id": req.user_id}),
        ),
        Err(f) => f
            .into_api(
                "retention_floor_update_failed",
                "Failed to update the retained bundle floor",
            )
            .into_response(),
    }
}

pub async fn server_bundle(
    State(app): State<SharedState>,
    LimitedBody(body): RowsBody,
) -> Response {
    let req: ServerBundleRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad(&format!("invalid server bundle request: {e}")),
    };
    let user = req.user_id.trim().to_string();
    match app
        .run_for_user(&user, move |app, conn| server_bundle::write(app, conn, req))
        .await
    {
        Ok(ServerBundleOutcome::Committed(resp, events)) => {
            for event in events {
                app.watch.publish(&user, event);
            }
            ok_json(&resp)
        }
        Ok(ServerBundleOutcome::AlreadyCommitted(resp)) => ok_json(&resp),
        Err(f) => f
            .into_api("server_bundle_failed", "Failed to write the server bundle")
            .into_response(),
    }
}

pub async fn watch_subscribers(
    State(app): State<SharedState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let user = query
        .get("user_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    if user.is_empty() {
        return bad("user_id required");
    }
    // The reference's shape: the count covers this process only (no cross-process fan-out).
    ok_json(&json!({
        "process_local_only": true,
        "subscriber_count": app.watch.subscriber_count(&user),
        "user_id": user,
    }))
}
