//! Quoting and the JSON expressions shared by capture triggers and first-open capture.
use crate::model::{ColumnKind, KeyKind, ManagedTable};

/// `"ident"` with embedded quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with embedded quotes doubled.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `key_json` expression for a row reference such as `NEW`, `OLD` or a table alias.
pub fn key_expr(table: &ManagedTable, row: &str) -> String {
    let value = format!("{row}.{}", quote_ident(&table.key_column));
    let value = match table.key_kind {
        KeyKind::Text => value,
        KeyKind::UuidBlob => format!("lower(hex({value}))"),
    };
    format!(
        "json_object({}, {value})",
        quote_literal(&table.key_json_name)
    )
}

/// Full-row payload expression: BLOB columns as lowercase hex, NULL kept NULL.
pub fn row_expr(table: &ManagedTable, row: &str) -> String {
    let members: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            let value = format!("{row}.{}", quote_ident(&c.name));
            let value = match c.kind {
                ColumnKind::Blob | ColumnKind::UuidBlob => {
                    format!("CASE WHEN {value} IS NULL THEN NULL ELSE lower(hex({value})) END")
                }
                _ => value,
            };
            format!("{}, {value}", quote_literal(&c.json_name))
        })
        .collect();
    format!("json_object({})", members.join(", "))
}

/// Whitespace-normalised SQL, the form the fixtures compare trigger text in.
pub fn normalize_sql(sql: &str) -> String {
    let collapsed = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match collapsed.strip_prefix("CREATE TRIGGER IF NOT EXISTS ") {
        Some(rest) => format!("CREATE TRIGGER {rest}"),
        None => collapsed,
    }
}
