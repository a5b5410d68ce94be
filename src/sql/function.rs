//! The one registration path of every SQL function: `sqlite3_create_function_v2` with a
//! boxed [`Entry`] as user data and a destructor, so whatever a function captures (the
//! connection's sync state) dies with the connection. Every call runs under the one panic
//! guard and leaves through the one error boundary: TEXT on success, else the
//! `oversqlite_<fn>: <code>: <message>` text plus the error's SQLite result code.
//!
//! sqlite-loadable 0.0.5 is not used for functions: its `define_scalar_function*` register
//! without `xDestroy` (captured state would leak), `result_error` leaks its message and
//! fails on a NUL byte (leaving a bare "SQL logic error"), and its error path sets code 1
//! for everything.
use std::ffi::CString;
use std::os::raw::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use rusqlite::ffi;
use rusqlite::Connection;

use super::args::Args;
use super::error::SqlError;
use super::guard::{connection, guarded};

/// A function body: the caller's connection and the arguments; returns TEXT.
pub type Body = Box<dyn Fn(&Connection, &Args) -> Result<String, SqlError>>;

struct Entry {
    name: &'static str,
    body: Body,
}

/// Hands `outcome` to SQLite: the TEXT result, or the error text and then its result code
/// (in that order: `sqlite3_result_error` resets the code to SQLITE_ERROR).
fn set_result(ctx: *mut ffi::sqlite3_context, name: &str, outcome: Result<String, SqlError>) {
    match outcome {
        Ok(text) => match c_int::try_from(text.len()) {
            // SAFETY: `ctx` is the live context of this call; SQLITE_TRANSIENT makes SQLite
            // copy the `len` bytes before this returns (a NUL inside TEXT is valid).
            Ok(len) => unsafe {
                ffi::sqlite3_result_text(ctx, text.as_ptr().cast(), len, ffi::SQLITE_TRANSIENT())
            },
            Err(_) => set_result(
                ctx,
                name,
                Err(SqlError::new(
                    "internal_error",
                    format!("result of {} bytes is too large for SQLite", text.len()),
                    Some(ffi::SQLITE_TOOBIG),
                )),
            ),
        },
        Err(e) => {
            let message = e.text(name);
            let len = c_int::try_from(message.len()).unwrap_or(c_int::MAX);
            // SAFETY: `ctx` is the live context of this call; SQLite copies the message
            // (`text` has no NUL, so `len` bytes are the whole C string SQLite keeps).
            unsafe {
                ffi::sqlite3_result_error(ctx, message.as_ptr().cast(), len);
                ffi::sqlite3_result_error_code(ctx, e.result_code);
            }
        }
    }
}

unsafe extern "C" fn call_entry(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // Nothing below may unwind into SQLite: the whole callback, result setting included,
    // runs inside catch_unwind (the body itself also under `guarded`).
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the user data is the `Entry` boxed at registration; it lives until
        // SQLite calls `destroy_entry`, which cannot happen during a call.
        let entry = unsafe { &*(ffi::sqlite3_user_data(ctx) as *const Entry) };
        let values: &[*mut sqlite_loadable::prelude::sqlite3_value] = if argc <= 0 || argv.is_null()
        {
            &[]
        } else {
            // SAFETY: SQLite passes `argc` valid value pointers in `argv`.
            unsafe { std::slice::from_raw_parts(argv.cast(), argc as usize) }
        };
        let outcome = guarded(entry.name, || {
            // SAFETY: `ctx` is the live context of this call.
            let conn = connection(unsafe { ffi::sqlite3_context_db_handle(ctx) })?;
            (entry.body)(&conn, &Args::new(values))
        });
        set_result(ctx, entry.name, outcome);
    }));
}

unsafe extern "C" fn destroy_entry(p: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `p` is the `Box<Entry>` leaked at registration; SQLite calls this once.
        drop(unsafe { Box::from_raw(p.cast::<Entry>()) });
    }));
}

/// Registers `name` on `db` with any arity (the body checks the count, so a wrong count
/// gets a usage message instead of SQLite's generic "wrong number of arguments").
/// `flags`: `SQLITE_UTF8` plus `SQLITE_DIRECTONLY` / `SQLITE_DETERMINISTIC` as fits.
pub(crate) fn register<E: Into<SqlError>>(
    db: *mut ffi::sqlite3,
    name: &'static str,
    flags: c_int,
    body: impl Fn(&Connection, &Args) -> Result<String, E> + 'static,
) -> sqlite_loadable::Result<()> {
    let cname = CString::new(name)?;
    let entry = Box::into_raw(Box::new(Entry {
        name,
        body: Box::new(move |conn, args| body(conn, args).map_err(Into::into)),
    }));
    // SAFETY: `db` is the connection being initialised; on failure SQLite itself calls
    // `destroy_entry` on the user data, so it is not freed here.
    let rc = unsafe {
        ffi::sqlite3_create_function_v2(
            db,
            cname.as_ptr(),
            -1,
            flags,
            entry.cast(),
            Some(call_entry),
            None,
            None,
            Some(destroy_entry),
        )
    };
    if rc != ffi::SQLITE_OK {
        return Err(sqlite_loadable::Error::new_message(&format!(
            "cannot register {name}: SQLite error {rc}"
        )));
    }
    Ok(())
}
