//! Typed results of the public operations. They serialise (serde) to the JSON the
//! SQL functions return; enum values are lowercase snake_case as in the fixtures.
//! Every report that can touch application tables lists them in `changed_tables`
//! (sorted, `_sync_*` never included) so hosts can invalidate caches (§7.14).

use std::collections::BTreeSet;

use serde::Serialize;

pub type ChangedTables = BTreeSet<String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Authority {
    PendingLocalSeed,
    AuthoritativeEmpty,
    AuthoritativeMaterialized,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingStatus {
    pub has_pending_sync_data: bool,
    pub pending_row_count: i64,
    pub blocks_detach: bool,
}

/// `syncStatus()` (§7.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncStatus {
    pub authority: Authority,
    pub pending: PendingStatus,
    pub last_bundle_seq_seen: i64,
}

/// A snapshot that replaced local state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Restore {
    pub bundle_seq: i64,
    pub row_count: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachOutcome {
    ResumedAttachedState,
    UsedRemoteState,
    SeededFromLocal,
    StartedEmpty,
    /// Another device holds the initialisation lease; call attach again after
    /// `retry_after_seconds`. Nothing was persisted.
    RetryLater,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachReport {
    pub outcome: AttachOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore: Option<Restore>,
    /// Present when connected (absent for retry_later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<SyncStatus>,
    pub changed_tables: ChangedTables,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PushOutcome {
    NoChange,
    Committed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushReport {
    pub outcome: PushOutcome,
    /// `bundle_seq` of the last committed bundle, when one was committed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle_seq: Option<i64>,
    /// Rows in the committed bundle(s).
    pub row_count: i64,
    /// Structured conflicts resolved during this push.
    pub conflicts_resolved: u32,
    pub status: SyncStatus,
    pub changed_tables: ChangedTables,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteOutcome {
    AlreadyAtTarget,
    AppliedIncremental,
    AppliedSnapshot,
}

/// `pullToStable()` and `rebuild()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullReport {
    pub outcome: RemoteOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore: Option<Restore>,
    pub bundles_applied: i64,
    pub status: SyncStatus,
    pub changed_tables: ChangedTables,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub push_outcome: PushOutcome,
    pub remote_outcome: RemoteOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore: Option<Restore>,
    pub status: SyncStatus,
    pub changed_tables: ChangedTables,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DetachOutcome {
    Detached,
    BlockedUnsyncedData,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DetachReport {
    pub outcome: DetachOutcome,
    pub pending_row_count: i64,
    pub changed_tables: ChangedTables,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncThenDetachReport {
    /// True iff `detach == detached`.
    pub is_success: bool,
    pub last_sync: SyncReport,
    pub detach: DetachOutcome,
    pub sync_rounds: u32,
    pub remaining_pending_row_count: i64,
    pub changed_tables: ChangedTables,
}
