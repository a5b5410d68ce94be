//! `GET /sync/watch` (§2.12, §10.9): Server-Sent Events waking clients after commits.
//! Framing is exactly `event: bundle\ndata: <json>\n\n`, heartbeats `: heartbeat\n\n`.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use oversqlite_protocol::{codes, WatchEvent};
use tokio::sync::watch;
use tokio::time::{interval_at, Instant, Interval};

use super::{query_i64, Actor};
use crate::error::ApiError;
use crate::service::scope::{load_user, require_initialized};
use crate::state::SharedState;
use crate::timefmt::now_ms;

struct WatchStream {
    events: watch::Receiver<Option<WatchEvent>>,
    last_delivered: i64,
    catch_up: Option<i64>,
    heartbeat: Interval,
}

fn frame(event: &WatchEvent) -> String {
    let data = serde_json::to_string(event)
        .unwrap_or_else(|_| format!("{{\"bundle_seq\":{}}}", event.bundle_seq));
    format!("event: bundle\ndata: {data}\n\n")
}

/// Next chunk of the stream; `None` ends it (only if the hub dropped the channel).
async fn next_frame(mut s: WatchStream) -> Option<(Result<String, Infallible>, WatchStream)> {
    if let Some(seq) = s.catch_up.take() {
        s.last_delivered = seq;
        return Some((
            Ok(frame(&WatchEvent {
                bundle_seq: seq,
                source_id: None,
                source_bundle_id: None,
            })),
            s,
        ));
    }
    loop {
        tokio::select! {
            changed = s.events.changed() => {
                changed.ok()?;
                let latest = s.events.borrow_and_update().clone();
                if let Some(event) = latest.filter(|e| e.bundle_seq > s.last_delivered) {
                    s.last_delivered = event.bundle_seq;
                    return Some((Ok(frame(&event)), s));
                }
            }
            _ = s.heartbeat.tick() => return Some((Ok(": heartbeat\n\n".to_string()), s)),
        }
    }
}

pub async fn watch(
    State(app): State<SharedState>,
    Query(query): Query<HashMap<String, String>>,
    actor: Actor,
) -> Response {
    if !app.settings.watch_enabled {
        return ApiError::new(
            503,
            codes::BUNDLE_CHANGE_WATCH_DISABLED,
            "Bundle change watch is disabled",
        )
        .into_response();
    }
    let after = match query_i64(&query, "after_bundle_seq") {
        Ok(Some(v)) if v < 0 => {
            return ApiError::bad_request(codes::INVALID_REQUEST, "after_bundle_seq must be >= 0")
                .into_response()
        }
        Ok(v) => v.unwrap_or(0),
        Err(m) => return ApiError::bad_request(codes::INVALID_REQUEST, m).into_response(),
    };
    // Subscribe before reading the latest seq so a commit in between is not missed.
    let events = app.watch.subscribe(&actor.user);
    let user = actor.user.clone();
    let latest = app
        .run(move |_, conn| {
            let state = load_user(conn, &user)?;
            require_initialized(state.as_ref(), now_ms())?;
            Ok(state.map(|s| s.latest_bundle_seq()).unwrap_or(0))
        })
        .await;
    let latest = match latest {
        Ok(v) => v,
        Err(f) => {
            return f
                .into_api(
                    codes::BUNDLE_CHANGE_WATCH_FAILED,
                    "Failed to subscribe bundle change watch",
                )
                .into_response()
        }
    };
    let period = app.settings.heartbeat;
    let state = WatchStream {
        events,
        last_delivered: after,
        catch_up: (latest > after).then_some(latest),
        heartbeat: interval_at(Instant::now() + period, period),
    };
    let body = Body::from_stream(stream::unfold(state, next_frame));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response()
}
