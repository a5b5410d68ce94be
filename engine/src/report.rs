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

/// What a pull applied, in rows: every row of every bundle it committed (a row the
/// pull only recorded, because a local change or a later deletion supersedes it, still
/// counts: the change was applied to this device's view of the history), or the rows
/// of the snapshot it restored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PullCounts {
    pub rows: i64,
    /// Bundles (and their rows) this device's own source committed, met again because
    /// another device's bundle came first and the push could not move the checkpoint
    /// past them; applying them again writes the rows this device already has.
    pub own_bundles: i64,
    pub own_rows: i64,
}

/// `pullToStable()` and `rebuild()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullReport {
    pub outcome: RemoteOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore: Option<Restore>,
    pub bundles_applied: i64,
    /// Rows behind `bundles_applied` (and this device's own share of them); not part of
    /// the serialised report, which keeps the reference's shape. The one-shot calls
    /// report changes, not bundles.
    #[serde(skip)]
    pub counts: PullCounts,
    /// The pull stopped before the stable bundle because a local row must first be
    /// settled by a push (a foreign-key race whose server row could not be fetched).
    #[serde(skip)]
    pub stopped_early: bool,
    pub status: SyncStatus,
    pub changed_tables: ChangedTables,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub push_outcome: PushOutcome,
    pub remote_outcome: RemoteOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore: Option<Restore>,
    /// True when no local change was left pending at return. False means the app wrote
    /// faster than the sync's bounded rounds sent; the next sync sends the rest.
    pub complete: bool,
    /// Local rows still waiting to be pushed (dirty plus outbox).
    pub pending_row_count: i64,
    /// Foreign-key races this sync settled, each as its policy decided.
    pub foreign_key_resolutions: Vec<ForeignKeyResolution>,
    pub status: SyncStatus,
    pub changed_tables: ChangedTables,
}

/// What a foreign-key race did to a row (README, "Foreign-key races").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ForeignKeyAction {
    /// A local child the server never had was discarded with its change.
    Dropped,
    /// A local change to a child was discarded; the child took the server's row.
    Reverted,
    /// The deleted parent was recreated from this device's values.
    ParentRecreated,
    /// The local deletion of the parent was undone with the server's row.
    ParentRestored,
    /// The local deletion of the parent extended to a child the server had.
    ChildDeleted,
    /// The resolver's merged row replaced the local child.
    Merged,
}

/// One settled race, always named by its child row and its parent row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForeignKeyResolution {
    /// The child row of the race (the referencing one).
    pub table: String,
    pub key: serde_json::Value,
    pub action: ForeignKeyAction,
    /// The parent row of the race (the referenced one).
    pub parent_table: String,
    pub parent_key: serde_json::Value,
    /// The policy that decided (`server_wins`, `client_wins`, `custom`).
    pub policy: String,
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
