//! The states and kinds stored as TEXT in the runtime tables (the DDL's CHECK lists).

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::Serialize;

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            /// The stored text.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The variant stored as `text`, if it is one.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let text = value.as_str()?;
                $name::parse(text).ok_or_else(|| {
                    FromSqlError::Other(format!(concat!("unknown ", stringify!($name), " {:?}"), text).into())
                })
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }
    };
}

text_enum!(
    /// `_sync_attachment_state.binding_state`.
    BindingState { Anonymous = "anonymous", Attached = "attached" }
);

text_enum!(
    /// `_sync_operation_state.kind`.
    OperationKind { None = "none", RemoteReplace = "remote_replace", SourceRecovery = "source_recovery" }
);

text_enum!(
    /// `_sync_outbox_bundle.state`.
    OutboxState { None = "none", Prepared = "prepared", CommittedRemote = "committed_remote" }
);

text_enum!(
    /// `op` of `_sync_dirty_rows` and `_sync_outbox_rows`.
    RowOp { Insert = "INSERT", Update = "UPDATE", Delete = "DELETE" }
);
