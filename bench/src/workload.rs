//! The benchmark's data: the `users` table and rows of about 190 bytes of JSON each.
use rusqlite::{params, Connection};

pub const TABLE: &str = "users";

pub const CREATE_USERS: &str = "CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
)";

pub struct Row {
    pub id: String,
    pub name: String,
    pub email: String,
    pub created_at: String,
    pub updated_at: String,
}

/// Row `i` of a run; `tag` keeps keys of different devices/runs apart.
pub fn row(tag: &str, i: usize) -> Row {
    let stamp = timestamp(i);
    Row {
        id: format!("{:0>8}-0000-4000-8000-{:012}", tag, i),
        name: format!("Bench User {i:07}"),
        email: format!("user.{i:07}@example.com"),
        created_at: stamp.clone(),
        updated_at: stamp,
    }
}

/// A valid RFC 3339 instant that varies with `i` (one second apart).
fn timestamp(i: usize) -> String {
    let secs = i % 86_400;
    format!(
        "2026-01-15T{:02}:{:02}:{:02}.000Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The size of the row as the JSON object the wire carries.
pub fn json_size(r: &Row) -> usize {
    serde_json::json!({"id": r.id, "name": r.name, "email": r.email,
                       "created_at": r.created_at, "updated_at": r.updated_at})
    .to_string()
    .len()
}

/// Settings every benchmark database uses (a typical app configuration).
pub fn tune(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
}

pub fn insert_all(conn: &Connection, tag: &str, n: usize) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    {
        let mut stmt = tx.prepare("INSERT INTO users(id, name, email, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)")?;
        for i in 0..n {
            let r = row(tag, i);
            stmt.execute(params![r.id, r.name, r.email, r.created_at, r.updated_at])?;
        }
    }
    tx.commit()
}

pub fn update_all(conn: &Connection, tag: &str, n: usize) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    {
        let mut stmt = tx.prepare("UPDATE users SET name = ?2, updated_at = ?3 WHERE id = ?1")?;
        for i in 0..n {
            let r = row(tag, i);
            let changed = stmt.execute(params![
                r.id,
                format!("Jones User {i:07}"),
                timestamp(i + 1)
            ])?;
            if changed != 1 {
                return Err(rusqlite::Error::StatementChangedRows(changed));
            }
        }
    }
    tx.commit()
}

pub fn delete_all(conn: &Connection, tag: &str, n: usize) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    {
        let mut stmt = tx.prepare("DELETE FROM users WHERE id = ?1")?;
        for i in 0..n {
            let changed = stmt.execute([row(tag, i).id])?;
            if changed != 1 {
                return Err(rusqlite::Error::StatementChangedRows(changed));
            }
        }
    }
    tx.commit()
}

pub fn count(conn: &Connection) -> rusqlite::Result<usize> {
    conn.query_row("SELECT count(*) FROM users", [], |r| r.get::<_, i64>(0))
        .map(|c| c as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_about_190_bytes_and_unique() {
        let sizes: Vec<usize> = (0..100_000)
            .step_by(997)
            .map(|i| json_size(&row("a1b2c3", i)))
            .collect();
        assert!(sizes.iter().all(|s| (185..=195).contains(s)), "{sizes:?}");
        assert_ne!(row("t", 1).id, row("t", 2).id);
        assert_ne!(row("t", 1).id, row("u", 1).id);
    }

    #[test]
    fn capture_ops_touch_every_row() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(CREATE_USERS).unwrap();
        insert_all(&conn, "t", 50).unwrap();
        assert_eq!(count(&conn).unwrap(), 50);
        update_all(&conn, "t", 50).unwrap();
        let jones: i64 = conn
            .query_row(
                "SELECT count(*) FROM users WHERE name LIKE 'Jones%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(jones, 50);
        delete_all(&conn, "t", 50).unwrap();
        assert_eq!(count(&conn).unwrap(), 0);
    }
}
