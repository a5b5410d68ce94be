//! Registration of the sync functions with the connection's [`ConnSync`] as auxiliary
//! data.
//!
//! sqlite-loadable 0.0.5's `define_scalar_function_with_aux` registers without an
//! `xDestroy`, so the aux data would outlive the connection and leak. These functions are
//! registered through `sqlite3_create_function_v2` directly, with a destructor: every
//! function holds one `Arc<ConnSync>` and SQLite drops it when the connection closes (or
//! the function is replaced), so the state dies with the last function of its connection.
use std::ffi::CString;
use std::os::raw::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use oversqlite_engine::{ErrorKind, SyncError};
use rusqlite::ffi;
use rusqlite::Connection;
use sqlite_loadable::api;

use super::state::ConnSync;
use crate::sql::args::Args;
use crate::sql::guard::{connection, fault_point, panic_text};

/// A sync function body: the connection's sync state, the caller's connection, the
/// arguments; returns the JSON text of the report.
pub type SyncBody = fn(&ConnSync, &Connection, &Args) -> Result<String, SyncError>;

struct Entry {
    name: &'static str,
    body: SyncBody,
    state: Arc<ConnSync>,
}

/// Runs `f` behind the panic guard (and the test fault point named `name`).
pub fn guarded_sync(
    name: &str,
    f: impl FnOnce() -> Result<String, SyncError>,
) -> Result<String, SyncError> {
    match catch_unwind(AssertUnwindSafe(|| {
        fault_point(name);
        f()
    })) {
        Ok(result) => result,
        Err(payload) => Err(SyncError::new(
            ErrorKind::Internal,
            format!(
                "unexpected panic ({}); any partial work was rolled back; please report this bug",
                panic_text(payload.as_ref())
            ),
        )),
    }
}

unsafe extern "C" fn call_entry(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // Nothing below may unwind into SQLite: the whole callback, result setting included,
    // runs inside catch_unwind.
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
        let outcome = guarded_sync(entry.name, || {
            // SAFETY: `ctx` is the live context of this call.
            let db = unsafe { ffi::sqlite3_context_db_handle(ctx) };
            let conn = connection(db.cast()).map_err(SyncError::from)?;
            (entry.body)(&entry.state, &conn, &Args::new(values))
        });
        let set = match outcome {
            Ok(text) => api::result_text(ctx.cast(), text),
            Err(e) => api::result_error(ctx.cast(), &e.sql_message(entry.name)),
        };
        if set.is_err() {
            // Only when the text cannot be handed to SQLite (interior NUL).
            api::result_error_code(ctx.cast(), 1);
        }
    }));
}

unsafe extern "C" fn destroy_entry(p: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `p` is the `Box<Entry>` leaked at registration; SQLite calls this once.
        drop(unsafe { Box::from_raw(p.cast::<Entry>()) });
    }));
}

/// Registers `name` (any arity; the body checks the count) on `db` with `state` as aux data.
pub(crate) fn register_sync(
    db: *mut ffi::sqlite3,
    name: &'static str,
    body: SyncBody,
    flags: c_int,
    state: &Arc<ConnSync>,
) -> sqlite_loadable::Result<()> {
    let cname = CString::new(name)?;
    let entry = Box::into_raw(Box::new(Entry {
        name,
        body,
        state: Arc::clone(state),
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
