//! Counts in messages: "1 local change", "2 local changes", so a message reads right
//! whatever the count.

/// `n` followed by `one` when `n` is 1, else by `many`: `counted(1, "row was", "rows were")`
/// is "1 row was".
pub(crate) fn counted(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::counted;

    #[test]
    fn one_is_singular_every_other_count_plural() {
        assert_eq!(
            counted(1, "local change", "local changes"),
            "1 local change"
        );
        assert_eq!(
            counted(0, "local change", "local changes"),
            "0 local changes"
        );
        assert_eq!(counted(2, "row was", "rows were"), "2 rows were");
        assert_eq!(counted(-1, "row", "rows"), "-1 rows");
    }
}
