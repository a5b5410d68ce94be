//! Where a frozen bundle may be cut short (issue #16, engine/DECISIONS.md "Bounded
//! bundles"). A bundle is committed on the server as a whole, its foreign keys checked
//! at commit; two bundles are two commits. Bundle order puts upserts parents-first and
//! deletes children-first, so a cut between rows leaves every reference of the first
//! part satisfied — except inside a foreign-key cycle (tables referencing each other,
//! or a table referencing itself), where rows of one table may need rows that sort
//! after them. There the bundle is never cut.

use std::collections::HashMap;

use crate::local::schema::ManagedTable;

/// The foreign-key cycles of the managed tables, computed once per freeze.
pub(crate) struct CutPoints {
    /// Table name → index of its cycle; tables in no cycle are absent.
    cycle_of: HashMap<String, usize>,
}

impl CutPoints {
    pub(crate) fn new(tables: &[ManagedTable]) -> CutPoints {
        let index: HashMap<&str, usize> = tables
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect();
        let n = tables.len();
        // reaches[a][b]: a references b, directly or through other managed tables.
        let mut reaches = vec![vec![false; n]; n];
        for (a, t) in tables.iter().enumerate() {
            for fk in &t.foreign_keys {
                if let Some(&b) = index.get(fk.parent_table.as_str()) {
                    reaches[a][b] = true;
                }
            }
        }
        for k in 0..n {
            let via = reaches[k].clone();
            for row in reaches.iter_mut() {
                if row[k] {
                    for (b, &r) in via.iter().enumerate() {
                        row[b] |= r;
                    }
                }
            }
        }
        let mut cycle_of = HashMap::new();
        for a in 0..n {
            if reaches[a][a] {
                // The cycle's index: its first member in table order.
                let first = (0..n)
                    .find(|&b| reaches[a][b] && reaches[b][a])
                    .unwrap_or(a);
                cycle_of.insert(tables[a].name.clone(), first);
            }
        }
        CutPoints { cycle_of }
    }

    /// Whether a bundle may end after a row of `last` and before a row of `next`.
    pub(crate) fn may_cut_between(&self, last: &str, next: &str) -> bool {
        match (self.cycle_of.get(last), self.cycle_of.get(next)) {
            (Some(a), Some(b)) => a != b,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oversqlite_core::{ForeignKey, KeyKind};

    fn table(name: &str, parents: &[&str]) -> ManagedTable {
        ManagedTable {
            name: name.to_string(),
            key_column: "id".to_string(),
            key_json_name: "id".to_string(),
            key_kind: KeyKind::Text,
            columns: Vec::new(),
            foreign_keys: parents
                .iter()
                .map(|p| ForeignKey {
                    from_column: format!("{p}_id"),
                    parent_table: p.to_string(),
                    parent_column: "id".to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn acyclic_tables_may_be_cut_anywhere() {
        let cuts = CutPoints::new(&[table("users", &[]), table("posts", &["users"])]);
        assert!(cuts.may_cut_between("users", "users"));
        assert!(cuts.may_cut_between("users", "posts"));
        assert!(cuts.may_cut_between("posts", "posts"));
    }

    #[test]
    fn a_self_reference_is_never_cut_inside() {
        let cuts = CutPoints::new(&[
            table("users", &[]),
            table("comments", &["comments", "users"]),
        ]);
        assert!(!cuts.may_cut_between("comments", "comments"));
        assert!(cuts.may_cut_between("users", "comments"));
        assert!(cuts.may_cut_between("comments", "users"));
    }

    #[test]
    fn a_cycle_of_tables_is_never_cut_inside_but_may_be_cut_around() {
        let cuts = CutPoints::new(&[
            table("users", &[]),
            table("teams", &["team_members", "users"]),
            table("team_members", &["teams", "users"]),
            table("notes", &["teams"]),
        ]);
        assert!(!cuts.may_cut_between("teams", "team_members"));
        assert!(!cuts.may_cut_between("team_members", "teams"));
        assert!(!cuts.may_cut_between("teams", "teams"));
        assert!(cuts.may_cut_between("users", "teams"));
        assert!(cuts.may_cut_between("team_members", "notes"));
        assert!(cuts.may_cut_between("notes", "notes"));
    }
}
