//! Handlers of the `/sync/*` JSON routes and `/syncx/*`. Each parses its input the way the
//! reference does (so malformed input gets the reference's 4xx and writes nothing), then
//! delegates to `service`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use oversqlite_protocol::{codes, SnapshotSessionCreateRequest};
use serde::Deserialize;

use super::{authenticate, json_response, ok_json, ok_json_body, query_i64};
use crate::error::ApiError;
use crate::service::{admin, commit, connect as connect_service, push, reads, snapshot};
use crate::state::{
    SharedState, DEFAULT_BUNDLES_PER_PULL, DEFAULT_ROWS_PER_CHUNK, MAX_BUNDLES_PER_PULL,
};

type Params = Query<HashMap<String, String>>;

fn parse_body<T: for<'de> Deserialize<'de>>(body: &Bytes, what: &str) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|_| {
        ApiError::bad_request(
            codes::INVALID_REQUEST,
            format!("Failed to parse {what} request"),
        )
        .into_response()
    })
}

#[derive(Deserialize)]
struct RawConnectRequest {
    #[serde(default)]
    has_local_pending_rows: bool,
}

pub async fn connect(State(app): State<SharedState>, headers: HeaderMap, body: Bytes) -> Response {
    let actor = match authenticate(&app, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let req: RawConnectRequest = match parse_body(&body, "connect") {
        Ok(r) => r,
        Err(r) => return r,
    };
    let (user, source) = (actor.user.clone(), actor.source);
    match app
        .run_for_user(&actor.user, move |app, conn| {
            connect_service::connect(app, conn, &user, &source, req.has_local_pending_rows)
        })
        .await
    {
        Ok(resp) => ok_json(&resp),
        Err(f) => f
            .into_api(codes::CONNECT_FAILED, "Failed to resolve connect lifecycle")
            .into_response(),
    }
}

pub async fn create_push_session(
    State(app): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let actor = match authenticate(&app, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let req: push::RawCreateRequest = match parse_body(&body, "push session") {
        Ok(r) => r,
        Err(r) => return r,
    };
    let (user, source) = (actor.user.clone(), actor.source);
    match app
        .run_for_user(&actor.user, move |app, conn| {
            push::create(app, conn, &user, &source, req)
        })
        .await
    {
        Ok(resp) => ok_json(&resp),
        Err(f) => f
            .into_api(
                codes::PUSH_SESSION_CREATE_FAILED,
                "Failed to create push session",
            )
            .into_response(),
    }
}

pub async fn push_chunk(
    State(app): State<SharedState>,
    headers: HeaderMap,
    Path(push_id): Path<String>,
    body: Bytes,
) -> Response {
    let actor = match authenticate(&app, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let req: push::RawChunkRequest = match parse_body(&body, "push chunk") {
        Ok(r) => r,
        Err(r) => return r,
    };
    let user = actor.user.clone();
    match app
        .run_for_user(&actor.user, move |app, conn| {
            push::upload_chunk(app, conn, &user, &push_id, req)
        })
        .await
    {
        Ok(resp) => ok_json(&resp),
        Err(f) => f
            .into_api(codes::PUSH_CHUNK_FAILED, "Failed to upload push chunk")
            .into_response(),
    }
}

pub async fn commit_push_session(
    State(app): State<SharedState>,
    headers: HeaderMap,
    Path(push_id): Path<String>,
) -> Response {
    let actor = match authenticate(&app, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let user = actor.user.clone();
    match app
        .run_for_user(&actor.user, move |app, conn| {
            commit::commit(app, conn, &user, &push_id)
        })
        .await
    {
        Ok((resp, events)) => {
            for event in events {
                app.watch.publish(&actor.user, event);
            }
            ok_json(&resp)
        }
        Err(f) => f
            .into_api(
                codes::PUSH_SESSION_COMMIT_FAILED,
                "Failed to commit push session",
            )
            .into_response(),
    }
}

pub async fn delete_push_session(
    State(app): State<SharedState>,
    headers: HeaderMap,
    Path(push_id): Path<String>,
) -> Response {
    let actor = match authenticate(&app, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let user = actor.user.clone();
    match app
        .run_for_user(&actor.user, move |_, conn| {
            push::delete_session(conn, &user, &push_id)
        })
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(f) => f
            .into_api(
                codes::PUSH_SESSION_DELETE_FAILED,
                "Failed to delete push session",
            )
            .into_response(),
    }
}

pub async fn committed_bundle_rows(
    State(app): State<SharedState>,
    headers: HeaderMap,
    Path(bundle_seq): Path<String>,
    Query(query): Params,
) -> Response {
    let actor = match authenticate(&app, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let invalid =
        |m: String| ApiError::bad_request(codes::COMMITTED_BUNDLE_CHUNK_INVALID, m).into_response();
    let Ok(bundle_seq) = bundle_seq.parse::<i64>() else {
        return invalid("bundle_seq must be an integer".into());
    };
    let after = match query_i64(&query, "after_row_ordinal") {
        Ok(v) => v,
        Err(m) => return invalid(m),
    };
    let max_rows = match query_i64(&query, "max_rows") {
        Ok(v) => v.unwrap_or(DEFAULT_ROWS_PER_CHUNK),
        Err(m) => return invalid(m),
    };
    let user = actor.user;
    match app
        .run(move |app, conn| reads::committed_rows(app, conn, &user, bundle_seq, after, max_rows))
        .await
    {
        Ok(body) => ok_json_body(body),
        Err(f) => f
            .into_api(
                codes::COMMITTED_BUNDLE_ROWS_FAILED,
                "Failed to fetch committed bundle rows",
            )
            .into_response(),
    }
}

pub async fn pull(
    State(app): State<SharedState>,
    headers: HeaderMap,
    Query(query): Params,
) -> Response {
    let actor = match authenticate(&app, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let invalid = |m: String| ApiError::bad_request(codes::INVALID_REQUEST, m).into_response();
    let mut values = [0i64; 3];
    for (slot, name) in ["after_bundle_seq", "max_bundles", "target_bundle_seq"]
        .iter()
        .enumerate()
    {
        match query_i64(&query, name) {
            Ok(Some(v)) if *name == "max_bundles" && !(1..=MAX_BUNDLES_PER_PULL).contains(&v) => {
                return invalid(format!(
                    "max_bundles must be between 1 and {MAX_BUNDLES_PER_PULL}"
                ));
            }
            Ok(Some(v)) if v < 0 => return invalid(format!("{name} must be >= 0")),
            Ok(Some(v)) => values[slot] = v,
            Ok(None) => {
                values[slot] = if *name == "max_bundles" {
                    DEFAULT_BUNDLES_PER_PULL
                } else {
                    0
                }
            }
            Err(m) => return invalid(m),
        }
    }
    let [after, max_bundles, target] = values;
    let user = actor.user;
    match app
        .run(move |app, conn| reads::pull(app, conn, &user, after, max_bundles, target))
        .await
    {
        Ok(body) => ok_json_body(body),
        Err(f) => f
            .into_api(codes::PULL_FAILED, "Failed to process pull")
            .into_response(),
    }
}

pub async fn create_snapshot_session(
    State(app): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let actor = match authenticate(&app, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    // Empty body = keep-source rebuild; otherwise decoded strictly (unknown members rejected).
    let request = if body.iter().all(|b| b.is_ascii_whitespace()) {
        None
    } else {
        match serde_json::from_slice::<SnapshotSessionCreateRequest>(&body) {
            Ok(r) => Some(r),
            Err(_) => {
                return ApiError::bad_request(
                    codes::SNAPSHOT_SESSION_INVALID,
                    "Failed to parse snapshot session request",
                )
                .into_response()
            }
        }
    };
    let (user, source) = (actor.user.clone(), actor.source);
    match app
        .run_for_user(&actor.user, move |app, conn| {
            snapshot::create(app, conn, &user, &source, request)
        })
        .await
    {
        Ok(resp) => ok_json(&resp),
        Err(f) => f
            .into_api(
                codes::SNAPSHOT_SESSION_CREATE_FAILED,
                "Failed to create snapshot session",
            )
            .into_response(),
    }
}

pub async fn snapshot_chunk(
    State(app): State<SharedState>,
    headers: HeaderMap,
    Path(snapshot_id): Path<String>,
    Query(query): Params,
) -> Response {
    let actor = match authenticate(&app, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let invalid =
        |m: String| ApiError::bad_request(codes::SNAPSHOT_CHUNK_INVALID, m).into_response();
    let after = match query_i64(&query, "after_row_ordinal") {
        Ok(v) => v.unwrap_or(0),
        Err(m) => return invalid(m),
    };
    let max_rows = match query_i64(&query, "max_rows") {
        Ok(v) => v.unwrap_or(DEFAULT_ROWS_PER_CHUNK),
        Err(m) => return invalid(m),
    };
    let user = actor.user;
    match app
        .run(move |_, conn| snapshot::chunk(conn, &user, &snapshot_id, after, max_rows))
        .await
    {
        Ok(body) => ok_json_body(body),
        Err(f) => f
            .into_api(codes::SNAPSHOT_CHUNK_FAILED, "Failed to get snapshot chunk")
            .into_response(),
    }
}

pub async fn delete_snapshot_session(
    State(app): State<SharedState>,
    headers: HeaderMap,
    Path(snapshot_id): Path<String>,
) -> Response {
    let actor = match authenticate(&app, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let user = actor.user.clone();
    match app
        .run_for_user(&actor.user, move |_, conn| {
            snapshot::delete(conn, &user, &snapshot_id)
        })
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(f) => f
            .into_api(
                codes::SNAPSHOT_SESSION_DELETE_FAILED,
                "Failed to delete snapshot session",
            )
            .into_response(),
    }
}

pub async fn status(State(app): State<SharedState>) -> Response {
    match app.run(admin::status).await {
        Ok(resp) => ok_json(&resp),
        Err(f) => f
            .into_api(codes::STATUS_FAILED, "Failed to get service status")
            .into_response(),
    }
}

pub async fn health(State(app): State<SharedState>) -> Response {
    match app.run(admin::status).await {
        Ok(resp) => json_response(StatusCode::OK, &resp),
        Err(f) => f
            .into_api(codes::HEALTH_FAILED, "Failed to get health status")
            .into_response(),
    }
}
