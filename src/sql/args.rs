//! Argument checks for SQL functions, with messages that name the argument.
use oversqlite_core::Error;
use sqlite_loadable::api::{self, ValueType};
use sqlite_loadable::prelude::sqlite3_value;

pub struct Args<'a> {
    values: &'a [*mut sqlite3_value],
}

fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Text => "TEXT",
        ValueType::Integer => "INTEGER",
        ValueType::Float => "REAL",
        ValueType::Blob => "BLOB",
        ValueType::Null => "NULL",
    }
}

impl<'a> Args<'a> {
    pub fn new(values: &'a [*mut sqlite3_value]) -> Self {
        Args { values }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Fails unless the count is within `min..=max`; `usage` is the call signature.
    pub fn expect_count(&self, min: usize, max: usize, usage: &str) -> Result<(), Error> {
        let n = self.values.len();
        if n < min || n > max {
            let want = if min == max {
                format!("{min}")
            } else if max == usize::MAX {
                format!("at least {min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(Error::argument(format!(
                "expected {want} argument(s), got {n}; usage: {usage}"
            )));
        }
        Ok(())
    }

    /// Argument `i` (0-based) as non-NULL TEXT.
    pub fn text(&self, i: usize, name: &str) -> Result<String, Error> {
        let v = &self.values[i];
        let t = api::value_type(v);
        if t != ValueType::Text {
            return Err(Error::argument(format!(
                "argument {} ({name}) must be TEXT, got {}",
                i + 1,
                type_name(t)
            )));
        }
        api::value_text(v)
            .map(str::to_string)
            .map_err(|_| Error::argument(format!("argument {} ({name}) is not valid UTF-8", i + 1)))
    }
}

impl Args<'_> {
    pub fn is_null(&self, i: usize) -> bool {
        api::value_type(&self.values[i]) == ValueType::Null
    }

    /// Argument `i` as TEXT, `None` when absent or NULL.
    pub fn opt_text(&self, i: usize, name: &str) -> Result<Option<String>, Error> {
        if i >= self.values.len() || self.is_null(i) {
            return Ok(None);
        }
        self.text(i, name).map(Some)
    }

    /// Argument `i` as INTEGER, `None` when absent or NULL.
    pub fn opt_integer(&self, i: usize, name: &str) -> Result<Option<i64>, Error> {
        if i >= self.values.len() || self.is_null(i) {
            return Ok(None);
        }
        let v = &self.values[i];
        let t = api::value_type(v);
        if t != ValueType::Integer {
            return Err(Error::argument(format!(
                "argument {} ({name}) must be INTEGER, got {}",
                i + 1,
                type_name(t)
            )));
        }
        Ok(Some(api::value_int64(v)))
    }
}
