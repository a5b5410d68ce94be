//! Structured push conflicts (§7.5): the resolver interface and the plan a
//! resolution turns into. Executing the plan lives in `ops::push`.

use oversqlite_protocol::{Op, Payload, SyncKey};
use serde::Serialize;
use serde_json::{Map, Value};

/// What the resolver sees about the first conflicting row of a rejected bundle.
#[derive(Debug, Clone, Serialize)]
pub struct ConflictContext {
    pub schema: String,
    pub table: String,
    /// Wire key (`{"id": "..."}`).
    pub key: SyncKey,
    pub local_op: Op,
    /// The frozen local row in local JSON form (BLOBs as hex); `None` for DELETE.
    pub local_payload: Option<Map<String, Value>>,
    pub base_row_version: i64,
    pub server_row_version: i64,
    pub server_row_deleted: bool,
    /// The server's current row in wire form, `None` when deleted or never existing.
    pub server_row: Option<Payload>,
    /// Set when the question is a foreign-key race rather than a row-version conflict:
    /// the row above is the local change, the other row of the race is named here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub foreign_key: Option<ForeignKeyContext>,
}

/// The two kinds of foreign-key race a device can meet (see the README's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ForeignKeyRace {
    /// The conflict row is an unsent local child (INSERT/UPDATE) whose parent, named
    /// in `other_*`, was deleted on the server. `AcceptServer`: the child gives way
    /// (dropped, or reverted to the server's row); `KeepLocal`: the parent is recreated
    /// from this device's values; `KeepMerged`: the child is replaced by the merged row.
    ParentDeletedRemotely,
    /// The conflict row is an unsent local DELETE of a parent; the server has a child,
    /// named in `other_*`, that references it. `AcceptServer`: the parent is restored
    /// with the server's row; `KeepLocal`: the deletion extends to that child.
    ChildAddedRemotely,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForeignKeyContext {
    pub race: ForeignKeyRace,
    /// The referencing column of the child table.
    pub column: String,
    pub other_table: String,
    /// Wire key of the other row.
    pub other_key: SyncKey,
}

/// A resolver's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// Take the server's state for this row.
    AcceptServer,
    /// Keep the local intent, re-based on the server's version.
    KeepLocal,
    /// Keep this merged row (local JSON form, every column present) for INSERT/UPDATE.
    KeepMerged(Map<String, Value>),
}

pub trait ConflictResolver: Send + Sync {
    fn resolve(&self, conflict: &ConflictContext) -> Resolution;

    /// The policy's name for `table` as reports show it (`server_wins`,
    /// `client_wins`, `custom`).
    fn policy(&self, _table: &str) -> String {
        "custom".to_string()
    }
}

/// The default: the server's row wins.
pub struct ServerWins;

impl ConflictResolver for ServerWins {
    fn resolve(&self, _: &ConflictContext) -> Resolution {
        Resolution::AcceptServer
    }

    fn policy(&self, _: &str) -> String {
        "server_wins".to_string()
    }
}

/// The local intent wins wherever keeping it is valid. A local UPDATE of a row the
/// server deleted (or never had) cannot be kept (§7.5), and answering KeepLocal there
/// would leave the device re-pushing the same rejected bundle forever; the server's
/// deletion is accepted instead.
pub struct ClientWins;

impl ConflictResolver for ClientWins {
    fn resolve(&self, c: &ConflictContext) -> Resolution {
        if c.foreign_key.is_some() {
            // A foreign-key race: keeping the local change is always possible (the
            // parent is recreated, or the deletion extends to the remote child).
            return Resolution::KeepLocal;
        }
        if c.local_op == Op::Update && c.server_row.is_none() {
            Resolution::AcceptServer
        } else {
            Resolution::KeepLocal
        }
    }

    fn policy(&self, _: &str) -> String {
        "client_wins".to_string()
    }
}

/// The built-in resolver named `server_wins` or `client_wins` (the SQL-level policy names).
pub fn resolver_by_name(name: &str) -> Option<std::sync::Arc<dyn ConflictResolver>> {
    match name.trim().to_ascii_lowercase().as_str() {
        "server_wins" => Some(std::sync::Arc::new(ServerWins)),
        "client_wins" => Some(std::sync::Arc::new(ClientWins)),
        _ => None,
    }
}

/// A host callback.
pub struct CallbackResolver<F>(pub F);

impl<F> ConflictResolver for CallbackResolver<F>
where
    F: Fn(&ConflictContext) -> Resolution + Send + Sync,
{
    fn resolve(&self, conflict: &ConflictContext) -> Resolution {
        (self.0)(conflict)
    }
}

/// The server's authoritative state for the conflicting row.
#[derive(Debug, Clone, PartialEq)]
pub enum Authoritative {
    Present { version: i64, row: Payload },
    Deleted { version: i64 },
    Missing,
}

impl Authoritative {
    pub fn of(server_row: &Option<Payload>, deleted: bool, version: i64) -> Self {
        match server_row {
            Some(row) => Authoritative::Present {
                version,
                row: row.clone(),
            },
            None if deleted => Authoritative::Deleted { version },
            None => Authoritative::Missing,
        }
    }
}

/// What to do with the application row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowAction {
    /// Upsert the server's row (wire form).
    UpsertServer(Payload),
    /// Upsert a local-form row (the local payload or a merged one).
    UpsertLocal(Map<String, Value>),
    Delete,
}

/// What to do with the row state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowStateAction {
    Remove,
    Set { version: i64, deleted: bool },
}

/// The executable plan for the conflicting row (one line of the §7.5 table).
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictPlan {
    pub row: RowAction,
    pub row_state: RowStateAction,
    /// Requeue a dirty intent `(op, base)` whose payload is the re-serialised live row
    /// (`None` payload for DELETE).
    pub requeue: Option<(Op, i64)>,
}

/// Turns a resolution into a plan, or explains why it is invalid.
pub fn plan(
    resolution: &Resolution,
    local_op: Op,
    local_payload: Option<&Map<String, Value>>,
    auth: &Authoritative,
    column_names: &[String],
) -> std::result::Result<ConflictPlan, String> {
    let keep = |payload: Map<String, Value>,
                kind: &str|
     -> std::result::Result<ConflictPlan, String> {
        match (local_op, auth) {
            (Op::Insert, Authoritative::Present { version, .. }) | (Op::Update, Authoritative::Present { version, .. }) => Ok(ConflictPlan {
                row: RowAction::UpsertLocal(payload),
                row_state: RowStateAction::Set { version: *version, deleted: false },
                requeue: Some((Op::Update, *version)),
            }),
            (Op::Insert, Authoritative::Deleted { version }) => Ok(ConflictPlan {
                row: RowAction::UpsertLocal(payload),
                row_state: RowStateAction::Set { version: *version, deleted: true },
                requeue: Some((Op::Insert, *version)),
            }),
            (Op::Insert, Authoritative::Missing) => {
                Err(format!("{kind} is invalid: an INSERT conflict without any authoritative server row cannot be kept"))
            }
            (Op::Update, _) => Err(format!("{kind} is invalid for an UPDATE whose authoritative row is deleted or missing")),
            (Op::Delete, _) => Err(format!("{kind} is invalid for a DELETE")),
        }
    };
    match resolution {
        Resolution::AcceptServer => Ok(match auth {
            Authoritative::Missing => ConflictPlan {
                row: RowAction::Delete,
                row_state: RowStateAction::Remove,
                requeue: None,
            },
            Authoritative::Deleted { version } => ConflictPlan {
                row: RowAction::Delete,
                row_state: RowStateAction::Set {
                    version: *version,
                    deleted: true,
                },
                requeue: None,
            },
            Authoritative::Present { version, row } => ConflictPlan {
                row: RowAction::UpsertServer(row.clone()),
                row_state: RowStateAction::Set {
                    version: *version,
                    deleted: false,
                },
                requeue: None,
            },
        }),
        Resolution::KeepLocal => match local_op {
            Op::Delete => Ok(match auth {
                Authoritative::Missing => ConflictPlan {
                    row: RowAction::Delete,
                    row_state: RowStateAction::Remove,
                    requeue: None,
                },
                Authoritative::Deleted { version } => ConflictPlan {
                    row: RowAction::Delete,
                    row_state: RowStateAction::Set {
                        version: *version,
                        deleted: true,
                    },
                    requeue: None,
                },
                Authoritative::Present { version, .. } => ConflictPlan {
                    row: RowAction::Delete,
                    row_state: RowStateAction::Set {
                        version: *version,
                        deleted: false,
                    },
                    requeue: Some((Op::Delete, *version)),
                },
            }),
            _ => {
                let payload = local_payload.cloned().ok_or_else(|| {
                    "KeepLocal is invalid: the local row has no payload".to_string()
                })?;
                keep(payload, "KeepLocal")
            }
        },
        Resolution::KeepMerged(merged) => {
            if local_op == Op::Delete {
                return Err("KeepMerged is invalid for a DELETE".to_string());
            }
            let same_columns = merged.len() == column_names.len()
                && merged
                    .keys()
                    .all(|k| column_names.iter().any(|c| c.eq_ignore_ascii_case(k)));
            if !same_columns {
                return Err("KeepMerged is invalid: the merged row must contain exactly the table's columns".to_string());
            }
            let lowered: Map<String, Value> = merged
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect();
            keep(lowered, "KeepMerged")
        }
    }
}
