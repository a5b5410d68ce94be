//! `oversqlite_exec(script)`: a schema or migration script run in one transaction, with
//! sync enabled for every table whose `CREATE TABLE` is preceded by a SQLiteNow
//! annotation comment, `-- @@{ enableSync=true }` or
//! `-- @@{ enableSync=true, syncKeyColumnName=doc_id }` (sqlitenow-kmp's schema files;
//! other annotation keys, e.g. `field=…, propertyName=…` above a column, are ignored).
//!
//! SQLite itself splits and runs the statements (`rusqlite::Batch`); the small lexer
//! here only reads comments, so it finds annotations exactly where SQLite sees comments
//! (never inside a string or a quoted name), and the statements' first keywords, so a
//! script that would end the transaction around it (`BEGIN`, `COMMIT`, `END`,
//! `ROLLBACK`) is refused before anything runs.
use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::{Batch, Connection};

use crate::error::{Error, ErrorCode, Result};
use crate::{config, tx};

/// One annotated table: its name as written (schema qualifier included, which
/// `enable_sync` then refuses with its usual message) and the optional key column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncAnnotation {
    pub table: String,
    pub key: Option<String>,
}

/// What a script did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecReport {
    /// Statements SQLite ran (comments and blank text are not statements).
    pub statements: usize,
    /// Tables that exist after the script and did not before, by name.
    pub created_tables: Vec<String>,
    /// `(table, sync key column)` for each annotated table, in script order.
    pub enabled: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// A bare word (keyword or unquoted name).
    Word(String),
    /// A quoted name (`"…"`, `` `…` ``, `[…]`), unescaped.
    Quoted(String),
    Comment(String),
    Semi,
    Other(char),
}

fn lex(sql: &str) -> Result<Vec<Tok>> {
    let chars: Vec<char> = sql.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let unterminated = |what: &str| {
        Error::new(
            ErrorCode::InvalidArgument,
            format!("the script has an unterminated {what}"),
        )
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && next == Some('-') {
            let end = (i..chars.len())
                .find(|&j| chars[j] == '\n')
                .unwrap_or(chars.len());
            toks.push(Tok::Comment(chars[i + 2..end].iter().collect()));
            i = end;
        } else if c == '/' && next == Some('*') {
            // SQLite accepts a block comment left open at the end of the text.
            let end = (i + 2..chars.len().saturating_sub(1))
                .find(|&j| chars[j] == '*' && chars[j + 1] == '/');
            let stop = end.unwrap_or(chars.len());
            toks.push(Tok::Comment(chars[i + 2..stop].iter().collect()));
            i = end.map_or(chars.len(), |e| e + 2);
        } else if c == '\'' || c == '"' || c == '`' || c == '[' {
            let close = if c == '[' { ']' } else { c };
            let mut text = String::new();
            let mut j = i + 1;
            loop {
                let Some(&d) = chars.get(j) else {
                    return Err(unterminated(if c == '\'' {
                        "string"
                    } else {
                        "quoted name"
                    }));
                };
                if d == close {
                    // A doubled quote is an escaped quote (not for `[…]`).
                    if c != '[' && chars.get(j + 1) == Some(&close) {
                        text.push(d);
                        j += 2;
                        continue;
                    }
                    break;
                }
                text.push(d);
                j += 1;
            }
            toks.push(if c == '\'' {
                Tok::Other('\'')
            } else {
                Tok::Quoted(text)
            });
            i = j + 1;
        } else if c.is_alphanumeric() || c == '_' || c == '$' || !c.is_ascii() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric()
                    || chars[i] == '_'
                    || chars[i] == '$'
                    || !chars[i].is_ascii())
            {
                i += 1;
            }
            toks.push(Tok::Word(chars[start..i].iter().collect()));
        } else if c == ';' {
            toks.push(Tok::Semi);
            i += 1;
        } else {
            toks.push(Tok::Other(c));
            i += 1;
        }
    }
    Ok(toks)
}

fn is_word(t: Option<&Tok>, w: &str) -> bool {
    matches!(t, Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
}

/// The options of an annotation comment (`@@{ k=v, k=v }`), or `None` for any other
/// comment. Keys are matched case-insensitively; values may be quoted.
fn annotation_options(comment: &str) -> Option<Vec<(String, String)>> {
    let body = comment.trim().strip_prefix("@@{")?;
    let body = &body[..body.find('}').unwrap_or(body.len())];
    Some(
        body.split(',')
            .filter(|part| !part.trim().is_empty())
            .map(|part| {
                let (k, v) = part.split_once('=').unwrap_or((part, ""));
                let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
                (k.trim().to_ascii_lowercase(), v.to_string())
            })
            .collect(),
    )
}

fn invalid(message: String) -> Error {
    Error::new(ErrorCode::InvalidArgument, message)
}

/// The `CREATE TABLE` name starting at `toks[i]` (comments already skipped), or why
/// there is none.
fn created_table(toks: &[Tok], i: usize) -> std::result::Result<String, String> {
    let sig: Vec<&Tok> = toks[i..]
        .iter()
        .filter(|t| !matches!(t, Tok::Comment(_)))
        .take(8)
        .collect();
    let mut s = sig.into_iter().peekable();
    if !is_word(s.next(), "CREATE") {
        return Err("it is not followed by CREATE TABLE".into());
    }
    let mut t = s.next();
    if is_word(t, "TEMP") || is_word(t, "TEMPORARY") {
        return Err("a TEMP table is never synced".into());
    }
    if !is_word(t, "TABLE") {
        return Err("it is not followed by CREATE TABLE".into());
    }
    t = s.next();
    if is_word(t, "IF") {
        if !(is_word(s.next(), "NOT") && is_word(s.next(), "EXISTS")) {
            return Err("CREATE TABLE IF is not followed by NOT EXISTS".into());
        }
        t = s.next();
    }
    let name = match t {
        Some(Tok::Word(n)) | Some(Tok::Quoted(n)) => n.clone(),
        _ => return Err("CREATE TABLE names no table".into()),
    };
    if s.peek() == Some(&&Tok::Other('.')) {
        s.next();
        if let Some(Tok::Word(n)) | Some(Tok::Quoted(n)) = s.next() {
            return Ok(format!("{name}.{n}"));
        }
    }
    Ok(name)
}

/// The annotated tables of `script`, in order. Also refuses a statement that would end
/// or replace the transaction `exec_script` runs the script in.
pub fn scan(script: &str) -> Result<Vec<SyncAnnotation>> {
    let toks = lex(script)?;
    let mut found = Vec::new();
    for (i, tok) in toks.iter().enumerate() {
        let Tok::Comment(text) = tok else { continue };
        let Some(options) = annotation_options(text) else {
            continue;
        };
        let mut enable = false;
        let mut key = None;
        for (k, v) in options {
            match k.as_str() {
                "enablesync" if v.eq_ignore_ascii_case("true") => enable = true,
                "enablesync" if v.eq_ignore_ascii_case("false") => enable = false,
                "enablesync" => {
                    return Err(invalid(format!(
                        "annotation {:?}: enableSync must be true or false, got {v:?}",
                        text.trim()
                    )))
                }
                "synckeycolumnname" if !v.is_empty() => key = Some(v),
                _ => {}
            }
        }
        if !enable {
            continue;
        }
        let start = (i + 1..toks.len())
            .find(|&j| !matches!(toks[j], Tok::Comment(_)))
            .unwrap_or(toks.len());
        let table = created_table(&toks, start).map_err(|why| {
            invalid(format!(
                "annotation {:?} enables sync but {why}; put it on the line above the table's CREATE TABLE",
                text.trim()
            ))
        })?;
        found.push(SyncAnnotation { table, key });
    }
    refuse_transaction_control(&toks)?;
    Ok(found)
}

/// Statement boundaries as SQLite's `sqlite3_complete` sees them: a `;` ends a
/// statement, except inside a `CREATE TRIGGER … BEGIN … END` body (`CASE … END`
/// nests inside it).
fn refuse_transaction_control(toks: &[Tok]) -> Result<()> {
    let words = toks.iter().filter(|t| !matches!(t, Tok::Comment(_)));
    let mut first: Vec<&Tok> = Vec::new();
    let mut trigger = false;
    let mut body = false;
    let mut case_depth = 0usize;
    for t in words {
        if first.len() < 4 {
            first.push(t);
            if first.len() <= 3
                && is_word(Some(t), "TRIGGER")
                && is_word(first.first().copied(), "CREATE")
            {
                trigger = true;
            }
        }
        if first.len() == 1 {
            let refused = ["BEGIN", "COMMIT", "END"]
                .iter()
                .find(|w| is_word(Some(t), w));
            if let Some(w) = refused {
                return Err(invalid(format!(
                    "the script runs {w}: oversqlite_exec runs the whole script in one transaction of its own, so a script must not begin, commit or roll back one"
                )));
            }
        }
        if first.len() == 3 && is_word(first.first().copied(), "ROLLBACK") {
            // ROLLBACK [TRANSACTION] TO undoes a savepoint of the script: allowed.
            let to = is_word(first.get(1).copied(), "TO") || is_word(first.get(2).copied(), "TO");
            if !to {
                return Err(invalid("the script runs ROLLBACK: oversqlite_exec runs the whole script in one transaction of its own, so a script must not begin, commit or roll back one".into()));
            }
        }
        if trigger {
            if is_word(Some(t), "BEGIN") && !body {
                body = true;
            } else if body && is_word(Some(t), "CASE") {
                case_depth += 1;
            } else if body && is_word(Some(t), "END") {
                if case_depth == 0 {
                    body = false;
                    trigger = false;
                } else {
                    case_depth -= 1;
                }
            }
        }
        if *t == Tok::Semi && !body {
            if first.len() < 3 && is_word(first.first().copied(), "ROLLBACK") {
                return Err(invalid("the script runs ROLLBACK: oversqlite_exec runs the whole script in one transaction of its own, so a script must not begin, commit or roll back one".into()));
            }
            first.clear();
            trigger = false;
            case_depth = 0;
        }
    }
    if !first.is_empty() && first.len() < 3 && is_word(first.first().copied(), "ROLLBACK") {
        return Err(invalid("the script runs ROLLBACK: oversqlite_exec runs the whole script in one transaction of its own, so a script must not begin, commit or roll back one".into()));
    }
    Ok(())
}

fn table_names(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )?;
    let names = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(names)
}

/// Runs every statement of `script`, then enables sync for each annotated table, all in
/// one transaction: any failure (a statement, an annotation, a table `enable_sync`
/// refuses) rolls everything back. Refused inside the caller's transaction, whose
/// rollback or commit would otherwise decide over the script's half.
pub fn exec_script(conn: &Connection, script: &str) -> Result<ExecReport> {
    if !conn.is_autocommit() {
        return Err(Error::new(
            ErrorCode::TransactionOpen,
            "oversqlite_exec runs the script in a transaction of its own; call it outside BEGIN…COMMIT",
        ));
    }
    let annotations = scan(script)?;
    tx::write_tx(conn, |conn| {
        let before = table_names(conn)?;
        let mut statements = 0;
        let mut batch = Batch::new(conn, script);
        while let Some(mut stmt) = batch.next()? {
            // Stepped to the end, so a SELECT (e.g. `SELECT oversqlite_init(…)`) runs too.
            let mut rows = stmt.raw_query();
            while rows.next()?.is_some() {}
            statements += 1;
            if conn.is_autocommit() {
                // `scan` refuses the statements that do this; a backstop for any other.
                return Err(invalid(format!(
                    "statement {statements} of the script ended oversqlite_exec's transaction"
                )));
            }
        }
        let created_tables = table_names(conn)?
            .into_iter()
            .filter(|t| !before.contains(t))
            .collect();
        let mut enabled = Vec::new();
        for a in &annotations {
            let key = config::enable_sync(conn, &a.table, a.key.as_slice())?;
            enabled.push((a.table.clone(), key));
        }
        Ok(ExecReport {
            statements,
            created_tables,
            enabled,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(script: &str) -> Vec<(String, Option<String>)> {
        scan(script)
            .unwrap()
            .into_iter()
            .map(|a| (a.table, a.key))
            .collect()
    }

    #[test]
    fn annotations_name_the_next_create_table() {
        let script = "
            -- Enable sync for this table
            -- @@{ enableSync=true }
            CREATE TABLE person (id TEXT PRIMARY KEY NOT NULL,
                -- @@{ field=first_name, propertyName=myFirstName }
                first_name TEXT);
            CREATE TABLE local_only (id INTEGER PRIMARY KEY);
            --@@{enableSync = true , syncKeyColumnName = doc_id}}
            CREATE TABLE IF NOT EXISTS \"docs\" (doc_id TEXT PRIMARY KEY NOT NULL);
            /* @@{ enableSync=false } */ CREATE TABLE off (id TEXT PRIMARY KEY);
            INSERT INTO person VALUES ('-- @@{ enableSync=true }', 'x');
        ";
        assert_eq!(
            tables(script),
            [
                ("person".to_string(), None),
                ("docs".to_string(), Some("doc_id".to_string()))
            ]
        );
    }

    #[test]
    fn misplaced_or_invalid_annotations_are_refused() {
        for (script, fragment) in [
            (
                "-- @@{ enableSync=true }\nCREATE INDEX i ON t(x);",
                "not followed by CREATE TABLE",
            ),
            ("-- @@{ enableSync=true }\n", "not followed by CREATE TABLE"),
            (
                "-- @@{ enableSync=yes }\nCREATE TABLE t(id TEXT PRIMARY KEY);",
                "must be true or false",
            ),
            (
                "-- @@{ enableSync=true }\nCREATE TEMP TABLE t(id TEXT PRIMARY KEY);",
                "TEMP",
            ),
        ] {
            let e = scan(script).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument);
            assert!(e.message.contains(fragment), "{script}: {}", e.message);
        }
        assert_eq!(
            tables("-- @@{ enableSync=true }\nCREATE TABLE aux.t(id TEXT PRIMARY KEY);"),
            [("aux.t".to_string(), None)]
        );
    }

    #[test]
    fn transaction_control_is_refused_but_trigger_bodies_are_not() {
        for script in [
            "BEGIN; CREATE TABLE t(x); COMMIT;",
            "CREATE TABLE t(x); COMMIT",
            "CREATE TABLE t(x); END TRANSACTION;",
            "CREATE TABLE t(x); ROLLBACK;",
            "CREATE TABLE t(x); ROLLBACK",
        ] {
            let e = scan(script).unwrap_err();
            assert!(
                e.message.contains("must not begin, commit or roll back"),
                "{script}"
            );
        }
        scan(
            "CREATE TABLE t(x, y);
             CREATE TRIGGER tr AFTER INSERT ON t BEGIN
               UPDATE t SET y = CASE WHEN new.x > 0 THEN 1 ELSE 0 END WHERE x = new.x;
               DELETE FROM t WHERE x < 0;
             END;
             SAVEPOINT s; ROLLBACK TO s; ROLLBACK TRANSACTION TO SAVEPOINT s; RELEASE s;",
        )
        .unwrap();
    }

    #[test]
    fn exec_runs_everything_or_nothing() {
        let conn = Connection::open_in_memory().unwrap();
        config::init(&conn, "https://sync.example.com", "main").unwrap();
        let report = exec_script(
            &conn,
            "-- @@{ enableSync=true }
             CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT);
             -- @@{ enableSync=true, syncKeyColumnName=id }
             CREATE TABLE posts (id TEXT PRIMARY KEY NOT NULL, user_id TEXT REFERENCES users(id));
             CREATE TABLE cache (k INTEGER PRIMARY KEY, v TEXT);
             INSERT INTO cache VALUES (1, 'a');",
        )
        .unwrap();
        assert_eq!(report.statements, 4);
        assert_eq!(report.created_tables, ["cache", "posts", "users"]);
        assert_eq!(
            report.enabled,
            [
                ("users".to_string(), "id".to_string()),
                ("posts".to_string(), "id".to_string())
            ]
        );

        let e = exec_script(
            &conn,
            "CREATE TABLE more (id TEXT PRIMARY KEY);
             -- @@{ enableSync=true }
             CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER);",
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidConfig, "{}", e.message);
        assert!(!table_names(&conn).unwrap().contains(&"more".to_string()));
        assert_eq!(config::read_settings(&conn).unwrap().tables.len(), 2);
        assert!(conn.is_autocommit());
    }
}
