//! A read-only, eponymous virtual table whose rows are computed by `RowSource::rows` when
//! a scan starts. Every callback runs under the panic guard.
use std::cell::{RefCell, UnsafeCell};
use std::marker::PhantomData;
use std::os::raw::c_int;

use oversqlite_core::Error;
use rusqlite::Connection;
use sqlite_loadable::prelude::*;
use sqlite_loadable::table::{BestIndexError, IndexInfo, VTab, VTabArguments, VTabCursor};
use sqlite_loadable::{api, define_table_function};

use super::error::SqlError;
use super::guard::{connection, guarded};

pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

impl From<Option<String>> for Cell {
    fn from(v: Option<String>) -> Self {
        v.map(Cell::Text).unwrap_or(Cell::Null)
    }
}

pub trait RowSource: 'static {
    const NAME: &'static str;
    /// `CREATE TABLE x(...)` declaration of the columns.
    const SCHEMA: &'static str;
    fn rows(conn: &Connection) -> Result<Vec<Vec<Cell>>, Error>;
}

/// sqlite-loadable 0.0.5 hands the message to SQLite but returns SQLITE_ERROR for every
/// virtual-table error (`Error::code` is always 1): the `<code>` text is kept, the SQLite
/// result code of a vtab error is not.
fn to_loadable(name: &str, e: SqlError) -> sqlite_loadable::Error {
    sqlite_loadable::Error::new_message(&e.text(name))
}

fn point<S: RowSource>(callback: &str) -> String {
    format!("{}.{callback}", S::NAME)
}

/// Hands an error message to SQLite through `zErrMsg` (for callbacks where
/// sqlite-loadable passes only a code: `xBestIndex`, `xOpen`).
fn set_vtab_error(vtab: *mut sqlite3_vtab, name: &str, e: &SqlError) {
    if let Ok(msg) = api::mprintf(&e.text(name)) {
        // SAFETY: `vtab` points at our live table; SQLite frees zErrMsg with sqlite3_free,
        // and mprintf allocates with sqlite3_mprintf.
        unsafe {
            if !(*vtab).zErrMsg.is_null() {
                rusqlite::ffi::sqlite3_free((*vtab).zErrMsg.cast());
            }
            (*vtab).zErrMsg = msg;
        }
    }
}

#[repr(C)]
pub struct RowsTable<S: RowSource> {
    /// Must be first: SQLite sees this struct as a `sqlite3_vtab`. In a cell because
    /// SQLite reads `zErrMsg` we write from `&self` callbacks.
    base: UnsafeCell<sqlite3_vtab>,
    db: *mut sqlite3,
    source: PhantomData<S>,
}

#[repr(C)]
pub struct RowsCursor<S: RowSource> {
    /// Must be first: SQLite sees this struct as a `sqlite3_vtab_cursor`.
    base: sqlite3_vtab_cursor,
    db: *mut sqlite3,
    rows: Vec<Vec<Cell>>,
    pos: usize,
    /// An error caught in `eof`, which cannot report one: `eof` then answers "not at end"
    /// so SQLite calls `column`, which reports it.
    deferred: RefCell<Option<SqlError>>,
    source: PhantomData<S>,
}

impl<'vtab, S: RowSource> VTab<'vtab> for RowsTable<S> {
    type Aux = ();
    type Cursor = RowsCursor<S>;

    fn connect(
        db: *mut sqlite3,
        _aux: Option<&()>,
        _args: VTabArguments,
    ) -> sqlite_loadable::Result<(String, Self)> {
        guarded(&point::<S>("connect"), || {
            // SAFETY: an all-zero sqlite3_vtab is the documented initial state.
            let base: sqlite3_vtab = unsafe { std::mem::zeroed() };
            Ok::<_, SqlError>((
                S::SCHEMA.to_string(),
                RowsTable {
                    base: UnsafeCell::new(base),
                    db,
                    source: PhantomData,
                },
            ))
        })
        .map_err(|e| to_loadable(S::NAME, e))
    }

    fn best_index(&self, mut info: IndexInfo) -> Result<(), BestIndexError> {
        guarded(&point::<S>("best_index"), || {
            // Full scan; SQLite applies any WHERE terms itself.
            info.set_estimated_cost(1000.0);
            info.set_estimated_rows(100);
            Ok::<_, SqlError>(())
        })
        .map_err(|e| {
            set_vtab_error(self.base.get(), S::NAME, &e);
            BestIndexError::Error
        })
    }

    fn open(&'vtab mut self) -> sqlite_loadable::Result<RowsCursor<S>> {
        let db = self.db;
        guarded(&point::<S>("open"), || {
            // SAFETY: as in `connect`.
            let base: sqlite3_vtab_cursor = unsafe { std::mem::zeroed() };
            Ok::<_, SqlError>(RowsCursor {
                base,
                db,
                rows: Vec::new(),
                pos: 0,
                deferred: RefCell::new(None),
                source: PhantomData,
            })
        })
        .map_err(|e| {
            set_vtab_error(self.base.get(), S::NAME, &e);
            to_loadable(S::NAME, e)
        })
    }
}

impl<S: RowSource> VTabCursor for RowsCursor<S> {
    fn filter(
        &mut self,
        _idx_num: c_int,
        _idx_str: Option<&str>,
        _values: &[*mut sqlite3_value],
    ) -> sqlite_loadable::Result<()> {
        let db = self.db;
        let rows = guarded(&point::<S>("filter"), || S::rows(&connection(db.cast())?))
            .map_err(|e| to_loadable(S::NAME, e))?;
        self.rows = rows;
        self.pos = 0;
        Ok(())
    }

    fn next(&mut self) -> sqlite_loadable::Result<()> {
        if let Some(e) = self.deferred.borrow_mut().take() {
            return Err(to_loadable(S::NAME, e));
        }
        guarded(&point::<S>("next"), || Ok::<_, SqlError>(()))
            .map_err(|e| to_loadable(S::NAME, e))?;
        self.pos += 1;
        Ok(())
    }

    fn eof(&self) -> bool {
        match guarded(&point::<S>("eof"), || {
            Ok::<_, SqlError>(self.pos >= self.rows.len())
        }) {
            Ok(at_end) => at_end,
            Err(e) => {
                self.deferred.replace(Some(e));
                false
            }
        }
    }

    fn column(&self, ctx: *mut sqlite3_context, i: c_int) -> sqlite_loadable::Result<()> {
        if let Some(e) = self.deferred.borrow_mut().take() {
            return Err(to_loadable(S::NAME, e));
        }
        guarded(&point::<S>("column"), || {
            match self.rows.get(self.pos).and_then(|r| r.get(i as usize)) {
                Some(Cell::Int(v)) => api::result_int64(ctx, *v),
                Some(Cell::Text(t)) => api::result_text(ctx, t).map_err(|_| {
                    SqlError::internal(format!("text of {} bytes is too large", t.len()))
                })?,
                Some(Cell::Null) | None => api::result_null(ctx),
            }
            Ok::<_, SqlError>(())
        })
        .map_err(|e| to_loadable(S::NAME, e))
    }

    fn rowid(&self) -> sqlite_loadable::Result<i64> {
        guarded(&point::<S>("rowid"), || {
            Ok::<_, SqlError>(self.pos as i64 + 1)
        })
        .map_err(|e| to_loadable(S::NAME, e))
    }
}

/// Registers `S` as an eponymous table (`SELECT * FROM <name>` without CREATE VIRTUAL TABLE).
pub fn register<S: RowSource>(db: *mut sqlite3) -> sqlite_loadable::Result<()> {
    define_table_function::<RowsTable<S>>(db, S::NAME, None)
}
