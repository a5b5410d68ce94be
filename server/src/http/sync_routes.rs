//! Handlers of the `/sync/*` JSON routes and `/syncx/*`. Each parses its input the way the
//! reference does (so malformed input gets the reference's 4xx and writes nothing), then
//! delegates to `service`. Authentication is the [`Actor`] extractor; a handler returns
//! [`Reply`] so every early exit is a `?`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use oversqlite_protocol::{codes, SnapshotSessionCreateRequest};
use serde::Deserialize;

use super::body::{LimitedBody, RowsBody, SmallBody};
use super::{failed, json_response, ok_json, ok_json_body, query_i64, Actor, Reply};
use crate::error::ApiError;
use crate::service::{admin, commit, connect as connect_service, push, reads, snapshot};
use crate::state::{
    SharedState, DEFAULT_BUNDLES_PER_PULL, DEFAULT_ROWS_PER_CHUNK, MAX_BUNDLES_PER_PULL,
};

type Params = Query<HashMap<String, String>>;

fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8], what: &str) -> Result<T, Response> {
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

pub async fn connect(State(app): State<SharedState>, actor: Actor, body: SmallBody) -> Reply {
    let req: RawConnectRequest = parse_body(&body.0, "connect")?;
    let resp = actor
        .run_for_user(&app, move |app, conn, a| {
            connect_service::connect(app, conn, &a.user, &a.source, req.has_local_pending_rows)
        })
        .await
        .map_err(failed(
            codes::CONNECT_FAILED,
            "Failed to resolve connect lifecycle",
        ))?;
    Ok(ok_json(&resp))
}

pub async fn create_push_session(
    State(app): State<SharedState>,
    actor: Actor,
    body: SmallBody,
) -> Reply {
    let req: push::RawCreateRequest = parse_body(&body.0, "push session")?;
    let resp = actor
        .run_for_user(&app, move |app, conn, a| {
            push::create(app, conn, &a.user, &a.source, req)
        })
        .await
        .map_err(failed(
            codes::PUSH_SESSION_CREATE_FAILED,
            "Failed to create push session",
        ))?;
    Ok(ok_json(&resp))
}

pub async fn push_chunk(
    State(app): State<SharedState>,
    Path(push_id): Path<String>,
    actor: Actor,
    body: RowsBody,
) -> Reply {
    let req: push::RawChunkRequest = parse_body(&body.0, "push chunk")?;
    let resp = actor
        .run_for_user(&app, move |app, conn, a| {
            push::upload_chunk(app, conn, &a.user, &push_id, req)
        })
        .await
        .map_err(failed(
            codes::PUSH_CHUNK_FAILED,
            "Failed to upload push chunk",
        ))?;
    Ok(ok_json(&resp))
}

pub async fn commit_push_session(
    State(app): State<SharedState>,
    Path(push_id): Path<String>,
    actor: Actor,
) -> Reply {
    let (resp, events) = actor
        .run_for_user(&app, move |app, conn, a| {
            commit::commit(app, conn, &a.user, &push_id)
        })
        .await
        .map_err(failed(
            codes::PUSH_SESSION_COMMIT_FAILED,
            "Failed to commit push session",
        ))?;
    for event in events {
        app.watch.publish(&actor.user, event);
    }
    Ok(ok_json(&resp))
}

pub async fn delete_push_session(
    State(app): State<SharedState>,
    Path(push_id): Path<String>,
    actor: Actor,
) -> Reply {
    actor
        .run_for_user(&app, move |_, conn, a| {
            push::delete_session(conn, &a.user, &push_id)
        })
        .await
        .map_err(failed(
            codes::PUSH_SESSION_DELETE_FAILED,
            "Failed to delete push session",
        ))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn committed_bundle_rows(
    State(app): State<SharedState>,
    Path(bundle_seq): Path<String>,
    Query(query): Params,
    actor: Actor,
) -> Reply {
    let invalid =
        |m: String| ApiError::bad_request(codes::COMMITTED_BUNDLE_CHUNK_INVALID, m).into_response();
    let bundle_seq = bundle_seq
        .parse::<i64>()
        .map_err(|_| invalid("bundle_seq must be an integer".into()))?;
    let after = query_i64(&query, "after_row_ordinal").map_err(invalid)?;
    let max_rows = query_i64(&query, "max_rows")
        .map_err(invalid)?
        .unwrap_or(DEFAULT_ROWS_PER_CHUNK);
    let body = actor
        .run(&app, move |app, conn, a| {
            reads::committed_rows(app, conn, &a.user, bundle_seq, after, max_rows)
        })
        .await
        .map_err(failed(
            codes::COMMITTED_BUNDLE_ROWS_FAILED,
            "Failed to fetch committed bundle rows",
        ))?;
    Ok(ok_json_body(body))
}

pub async fn pull(State(app): State<SharedState>, Query(query): Params, actor: Actor) -> Reply {
    let invalid = |m: String| ApiError::bad_request(codes::INVALID_REQUEST, m).into_response();
    let mut values = [0i64; 3];
    for (slot, name) in ["after_bundle_seq", "max_bundles", "target_bundle_seq"]
        .iter()
        .enumerate()
    {
        match query_i64(&query, name).map_err(invalid)? {
            Some(v) if *name == "max_bundles" && !(1..=MAX_BUNDLES_PER_PULL).contains(&v) => {
                return Err(invalid(format!(
                    "max_bundles must be between 1 and {MAX_BUNDLES_PER_PULL}"
                )));
            }
            Some(v) if v < 0 => return Err(invalid(format!("{name} must be >= 0"))),
            Some(v) => values[slot] = v,
            None => {
                values[slot] = if *name == "max_bundles" {
                    DEFAULT_BUNDLES_PER_PULL
                } else {
                    0
                }
            }
        }
    }
    let [after, max_bundles, target] = values;
    let body = actor
        .run(&app, move |app, conn, a| {
            reads::pull(app, conn, &a.user, after, max_bundles, target)
        })
        .await
        .map_err(failed(codes::PULL_FAILED, "Failed to process pull"))?;
    Ok(ok_json_body(body))
}

pub async fn create_snapshot_session(
    State(app): State<SharedState>,
    actor: Actor,
    LimitedBody(body): SmallBody,
) -> Reply {
    // Empty body = keep-source rebuild; otherwise decoded strictly (unknown members rejected).
    let request = if body.iter().all(|b| b.is_ascii_whitespace()) {
        None
    } else {
        Some(
            serde_json::from_slice::<SnapshotSessionCreateRequest>(&body).map_err(|_| {
                ApiError::bad_request(
                    codes::SNAPSHOT_SESSION_INVALID,
                    "Failed to parse snapshot session request",
                )
                .into_response()
            })?,
        )
    };
    let resp = actor
        .run_for_user(&app, move |app, conn, a| {
            snapshot::create(app, conn, &a.user, &a.source, request)
        })
        .await
        .map_err(failed(
            codes::SNAPSHOT_SESSION_CREATE_FAILED,
            "Failed to create snapshot session",
        ))?;
    Ok(ok_json(&resp))
}

pub async fn snapshot_chunk(
    State(app): State<SharedState>,
    Path(snapshot_id): Path<String>,
    Query(query): Params,
    actor: Actor,
) -> Reply {
    let invalid =
        |m: String| ApiError::bad_request(codes::SNAPSHOT_CHUNK_INVALID, m).into_response();
    let after = query_i64(&query, "after_row_ordinal")
        .map_err(invalid)?
        .unwrap_or(0);
    let max_rows = query_i64(&query, "max_rows")
        .map_err(invalid)?
        .unwrap_or(DEFAULT_ROWS_PER_CHUNK);
    let body = actor
        .run(&app, move |_, conn, a| {
            snapshot::chunk(conn, &a.user, &snapshot_id, after, max_rows)
        })
        .await
        .map_err(failed(
            codes::SNAPSHOT_CHUNK_FAILED,
            "Failed to get snapshot chunk",
        ))?;
    Ok(ok_json_body(body))
}

pub async fn delete_snapshot_session(
    State(app): State<SharedState>,
    Path(snapshot_id): Path<String>,
    actor: Actor,
) -> Reply {
    actor
        .run_for_user(&app, move |_, conn, a| {
            snapshot::delete(conn, &a.user, &snapshot_id)
        })
        .await
        .map_err(failed(
            codes::SNAPSHOT_SESSION_DELETE_FAILED,
            "Failed to delete snapshot session",
        ))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn status(State(app): State<SharedState>) -> Reply {
    let resp = app
        .run(admin::status)
        .await
        .map_err(failed(codes::STATUS_FAILED, "Failed to get service status"))?;
    Ok(ok_json(&resp))
}

pub async fn health(State(app): State<SharedState>) -> Reply {
    let resp = app
        .run(admin::status)
        .await
        .map_err(failed(codes::HEALTH_FAILED, "Failed to get health status"))?;
    Ok(json_response(StatusCode::OK, &resp))
}
