//! Calling SQL functions the host registered on the same connection (token provider,
//! custom conflict resolvers).
use oversqlite_engine::{ErrorKind, Result, SyncError};
use rusqlite::types::Value;
use rusqlite::Connection;

pub enum HostCall {
    /// No function of that name (and arity) exists on this connection.
    NotRegistered,
    Value(Value),
    /// The function raised an error (its message).
    Failed(String),
}

/// Host function names are plain identifiers: they are spliced into SQL text.
pub fn check_function_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(SyncError::new(
            ErrorKind::InvalidArgument,
            format!(
                "function name {name:?} must be a plain identifier (letters, digits, underscore)"
            ),
        ));
    }
    Ok(())
}

fn call_sql(name: &str, arity: usize) -> String {
    let params: Vec<String> = (1..=arity).map(|i| format!("?{i}")).collect();
    format!("SELECT {name}({})", params.join(", "))
}

fn is_missing(e: &rusqlite::Error, name: &str) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    let name = name.to_ascii_lowercase();
    text.contains(&format!("no such function: {name}"))
        || text.contains(&format!("wrong number of arguments to function {name}"))
}

/// Whether `name` can be called with `arity` arguments on `conn` (prepares, runs nothing).
pub fn is_registered(conn: &Connection, name: &str, arity: usize) -> Result<bool> {
    check_function_name(name)?;
    match conn.prepare(&call_sql(name, arity)) {
        Ok(_) => Ok(true),
        Err(e) if is_missing(&e, name) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `SELECT name(args...)` on `conn`.
pub fn call_host_function(
    conn: &Connection,
    name: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<HostCall> {
    check_function_name(name)?;
    let mut stmt = match conn.prepare(&call_sql(name, args.len())) {
        Ok(s) => s,
        Err(e) if is_missing(&e, name) => return Ok(HostCall::NotRegistered),
        Err(e) => return Err(e.into()),
    };
    match stmt.query_row(args, |r| r.get::<_, Value>(0)) {
        Ok(v) => Ok(HostCall::Value(v)),
        Err(rusqlite::Error::SqliteFailure(_, Some(message))) => Ok(HostCall::Failed(message)),
        Err(e) => Ok(HostCall::Failed(e.to_string())),
    }
}
