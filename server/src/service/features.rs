//! The feature flags this server advertises, shared by `GET /sync/capabilities` (§2.1,
//! reference values of §10.10) and `GET /syncx/status`.

use std::collections::BTreeMap;

use crate::state::AppState;

const ALWAYS_ON: [&str; 18] = [
    "bundle_pull",
    "push_session_chunking",
    "committed_bundle_row_fetch",
    "snapshot_chunking",
    "status_endpoint",
    "graceful_shutdown",
    "capabilities_endpoint",
    "history_pruned_errors",
    "bundle_push",
    "structured_sync_keys",
    "registered_write_rejection_enforced",
    "accepted_push_replay_visibility",
    "committed_bundle_visibility",
    "retained_floor_visibility",
    "retained_window_visibility",
    "history_pruned_visibility",
    "connect_lifecycle",
    "scope_initialization_leases",
];

/// All 20 feature flags.
pub fn features(app: &AppState) -> BTreeMap<String, bool> {
    let mut features: BTreeMap<String, bool> =
        ALWAYS_ON.iter().map(|f| (f.to_string(), true)).collect();
    features.insert("server_checkpoint_tracking".into(), false);
    features.insert("bundle_change_watch".into(), app.settings.watch_enabled);
    features
}
