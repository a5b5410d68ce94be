//! `GET /sync/capabilities` (§2.1) with the reference values of §10.10.

use axum::extract::State;
use axum::response::Response;
use oversqlite_protocol::{
    BundleLimits, CapabilitiesResponse, RegisteredTableSpec, PROTOCOL_VERSION,
};

use super::{ok_json, Actor};
use crate::service::features::features;
use crate::state::{
    AppState, SharedState, DEFAULT_ROWS_PER_CHUNK, MAX_BUNDLES_PER_PULL, MAX_ROWS_PER_CHUNK,
};

fn positive(value: i64) -> Option<i64> {
    (value > 0).then_some(value)
}

pub fn capabilities_response(app: &AppState) -> CapabilitiesResponse {
    let s = &app.settings;
    CapabilitiesResponse {
        protocol_version: PROTOCOL_VERSION.to_string(),
        schema_version: app.registry.schema_version,
        app_name: Some(app.registry.app_name.clone()),
        registered_tables: app
            .registry
            .tables
            .iter()
            .map(|t| t.qualified.clone())
            .collect(),
        registered_table_specs: app
            .registry
            .tables
            .iter()
            .map(|t| RegisteredTableSpec {
                schema: t.schema.clone(),
                table: t.table.clone(),
                sync_key_columns: vec![t.key_column.clone()],
            })
            .collect(),
        features: features(app),
        bundle_limits: Some(BundleLimits {
            max_rows_per_bundle: None,
            max_bytes_per_bundle: None,
            max_bundles_per_pull: Some(MAX_BUNDLES_PER_PULL),
            default_rows_per_push_chunk: Some(DEFAULT_ROWS_PER_CHUNK),
            max_rows_per_push_chunk: Some(MAX_ROWS_PER_CHUNK),
            push_session_ttl_seconds: positive(s.push_session_ttl_secs),
            default_rows_per_committed_bundle_chunk: Some(DEFAULT_ROWS_PER_CHUNK),
            max_rows_per_committed_bundle_chunk: Some(MAX_ROWS_PER_CHUNK),
            default_rows_per_snapshot_chunk: Some(DEFAULT_ROWS_PER_CHUNK),
            max_rows_per_snapshot_chunk: Some(MAX_ROWS_PER_CHUNK),
            snapshot_session_ttl_seconds: positive(s.snapshot_session_ttl_secs),
            max_rows_per_snapshot_session: positive(s.max_rows_per_snapshot_session),
            max_bytes_per_snapshot_session: positive(s.max_bytes_per_snapshot_session),
            initialization_lease_ttl_seconds: positive(s.lease_ttl_secs),
        }),
    }
}

pub async fn capabilities(State(app): State<SharedState>, _actor: Actor) -> Response {
    ok_json(&capabilities_response(&app))
}
