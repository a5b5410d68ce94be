//! A device database driven only through the extension's SQL functions, as an app would.
use std::path::Path;

use rusqlite::Connection;
use serde_json::Value;

use crate::workload;

pub type Result<T> = std::result::Result<T, String>;

pub struct Device {
    pub conn: Connection,
}

impl Device {
    /// Opens (or creates) `db`, loads the extension and tunes the connection.
    pub fn open(db: &Path, extension: &Path) -> Result<Device> {
        let conn = Connection::open(db).map_err(|e| format!("open {}: {e}", db.display()))?;
        load_extension(&conn, extension)?;
        workload::tune(&conn).map_err(|e| format!("pragmas: {e}"))?;
        Ok(Device { conn })
    }

    /// First launch of an app: the table, the sync configuration and the runtime.
    pub fn configure(&self, server_url: &str, schema: &str) -> Result<()> {
        self.conn
            .execute_batch(workload::CREATE_USERS)
            .map_err(|e| format!("create users: {e}"))?;
        self.call("oversqlite_init(?1, ?2)", &[server_url, schema])?;
        self.call("oversqlite_enable_sync(?1)", &[workload::TABLE])?;
        self.launch()
    }

    /// Every launch: install/refresh the runtime (idempotent).
    pub fn launch(&self) -> Result<()> {
        self.call("oversqlite_open()", &[]).map(drop)
    }

    pub fn set_token(&self, token: &str) -> Result<()> {
        // The token is a bound parameter and never part of an error text.
        self.conn
            .query_row("SELECT oversqlite_set_token(?1)", [token], |_| Ok(()))
            .map_err(|e| {
                format!(
                    "oversqlite_set_token failed: {}",
                    e.to_string().replace(token, "<token>")
                )
            })
    }

    /// `SELECT <call>` with text arguments; the JSON report it returns.
    pub fn call(&self, call: &str, args: &[&str]) -> Result<Value> {
        let sql = format!("SELECT {call}");
        let text: Option<String> = self
            .conn
            .query_row(&sql, rusqlite::params_from_iter(args.iter()), |r| r.get(0))
            .map_err(|e| format!("{sql}: {e}"))?;
        match text {
            None => Ok(Value::Null),
            Some(t) => serde_json::from_str(&t).map_err(|e| format!("{sql}: not JSON ({e}): {t}")),
        }
    }

    pub fn count(&self) -> Result<usize> {
        workload::count(&self.conn).map_err(|e| format!("count users: {e}"))
    }
}

pub fn load_extension(conn: &Connection, extension: &Path) -> Result<()> {
    // SQLite appends the platform suffix itself and derives the entry point
    // (sqlite3_oversqlite_init) from the file name.
    let stem = extension.with_extension("");
    // SAFETY: loading our own extension, built from this repository.
    unsafe {
        conn.load_extension_enable()
            .map_err(|e| format!("enable extension loading: {e}"))?;
        let loaded = conn.load_extension(&stem, None::<&str>);
        conn.load_extension_disable()
            .map_err(|e| format!("disable extension loading: {e}"))?;
        loaded.map_err(|e| format!("load {}: {e}", extension.display()))
    }
}
