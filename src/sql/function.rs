//! Registration of TEXT-returning SQL functions behind the panic guard.
use oversqlite_core::Error;
use rusqlite::Connection;
use sqlite_loadable::prelude::*;
use sqlite_loadable::{api, define_scalar_function, FunctionFlags};

use super::args::Args;
use super::guard::{connection, context_db, format_error, guarded};

/// A function body: gets the caller's connection and the arguments, returns TEXT.
pub type Body = fn(&Connection, &Args) -> Result<String, Error>;

/// Registers `name` with any arity (the body checks the count, so a wrong count gets a
/// usage message instead of SQLite's generic "wrong number of arguments"). Errors and
/// panics become `name: <code>: <message>` SQL errors.
pub fn register(
    db: *mut sqlite3,
    name: &'static str,
    body: Body,
    flags: FunctionFlags,
) -> sqlite_loadable::Result<()> {
    let call = move |ctx: *mut sqlite3_context,
                     values: &[*mut sqlite3_value]|
          -> sqlite_loadable::Result<()> {
        let outcome = guarded(name, || {
            let conn = connection(context_db(ctx))?;
            body(&conn, &Args::new(values))
        });
        let set = match outcome {
            Ok(text) => api::result_text(ctx, text),
            Err(e) => api::result_error(ctx, &format_error(name, &e)),
        };
        if set.is_err() {
            // Only when the text itself cannot be handed to SQLite (interior NUL).
            api::result_error_code(ctx, 1);
        }
        Ok(())
    };
    define_scalar_function(db, name, -1, call, flags)
}
