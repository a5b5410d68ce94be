//! Streaming reader of a `GET /sync/pull` page (§2.8). A page carries whole bundles, so
//! one page can be tens of megabytes: it is never materialised. The reader walks the
//! JSON once and hands each bundle row to a [`PageSink`] as it is decoded, so memory
//! stays one row however large the page. JSON object members may come in any order,
//! so a bundle's header fields are only complete at its end ([`PageSink::bundle_end`]),
//! and the page fields only when the whole page was read.

use std::fmt;
use std::io::Read;

use oversqlite_protocol::BundleRow;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::{Result, SyncError};

/// The page-level members of a pull response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageHead {
    pub stable_bundle_seq: i64,
    pub has_more: bool,
    /// How many bundles the page held.
    pub bundles: usize,
}

/// The members of one bundle other than its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BundleHead {
    pub bundle_seq: i64,
    pub source_id: String,
    pub source_bundle_id: i64,
    pub row_count: Option<i64>,
    pub bundle_hash: Option<String>,
}

/// Receives a page as it is read. `index` is the bundle's position in the page.
pub(crate) trait PageSink {
    fn bundle_begin(&mut self, index: usize) -> Result<()>;
    fn row(&mut self, index: usize, row: BundleRow) -> Result<()>;
    fn bundle_end(&mut self, index: usize, head: BundleHead) -> Result<()>;
}

/// Reads one page from `reader`, feeding `sink`. A sink error stops the read and is
/// returned as is; malformed JSON is a protocol error worded like the whole-body
/// decoder's ("pull request: malformed response body: …").
pub(crate) fn read_page(reader: impl Read, sink: &mut dyn PageSink) -> Result<PageHead> {
    let mut failure = None;
    let mut de = serde_json::Deserializer::from_reader(reader);
    let outcome = PageSeed {
        sink,
        failure: &mut failure,
    }
    .deserialize(&mut de)
    .and_then(|head| de.end().map(|_| head));
    match (outcome, failure) {
        (_, Some(e)) => Err(e),
        (Ok(head), None) => Ok(head),
        (Err(e), None) => Err(SyncError::protocol(format!(
            "pull request: malformed response body: {e}"
        ))),
    }
}

/// Moves a sink's error out of the serde call stack: serde errors carry only text, so
/// the typed error waits in `failure` and serde is told to stop.
fn stop<E: de::Error>(failure: &mut Option<SyncError>, e: SyncError) -> E {
    *failure = Some(e);
    E::custom("stopped by the page sink")
}

fn duplicate<E: de::Error>(name: &'static str) -> E {
    E::duplicate_field(name)
}

struct PageSeed<'a> {
    sink: &'a mut dyn PageSink,
    failure: &'a mut Option<SyncError>,
}

impl<'de> DeserializeSeed<'de> for PageSeed<'_> {
    type Value = PageHead;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<PageHead, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PageSeed<'_> {
    type Value = PageHead;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a pull response object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<PageHead, A::Error> {
        let (mut stable, mut has_more, mut bundles) = (None, None, None);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "stable_bundle_seq" if stable.is_some() => {
                    return Err(duplicate("stable_bundle_seq"))
                }
                "stable_bundle_seq" => stable = Some(map.next_value::<i64>()?),
                "has_more" if has_more.is_some() => return Err(duplicate("has_more")),
                "has_more" => has_more = Some(map.next_value::<bool>()?),
                "bundles" if bundles.is_some() => return Err(duplicate("bundles")),
                "bundles" => {
                    bundles = Some(map.next_value_seed(BundlesSeed {
                        sink: &mut *self.sink,
                        failure: &mut *self.failure,
                    })?)
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(PageHead {
            stable_bundle_seq: stable
                .ok_or_else(|| de::Error::missing_field("stable_bundle_seq"))?,
            has_more: has_more.ok_or_else(|| de::Error::missing_field("has_more"))?,
            bundles: bundles.ok_or_else(|| de::Error::missing_field("bundles"))?,
        })
    }
}

struct BundlesSeed<'a> {
    sink: &'a mut dyn PageSink,
    failure: &'a mut Option<SyncError>,
}

impl<'de> DeserializeSeed<'de> for BundlesSeed<'_> {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<usize, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for BundlesSeed<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of bundles")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<usize, A::Error> {
        let mut index = 0;
        while seq
            .next_element_seed(BundleSeed {
                index,
                sink: &mut *self.sink,
                failure: &mut *self.failure,
            })?
            .is_some()
        {
            index += 1;
        }
        Ok(index)
    }
}

struct BundleSeed<'a> {
    index: usize,
    sink: &'a mut dyn PageSink,
    failure: &'a mut Option<SyncError>,
}

impl<'de> DeserializeSeed<'de> for BundleSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BundleSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a bundle object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        if let Err(e) = self.sink.bundle_begin(self.index) {
            return Err(stop(self.failure, e));
        }
        let (mut seq, mut source, mut source_bundle, mut rows_seen) = (None, None, None, false);
        let (mut row_count, mut hash): (Option<Option<i64>>, Option<Option<String>>) = (None, None);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "bundle_seq" if seq.is_some() => return Err(duplicate("bundle_seq")),
                "bundle_seq" => seq = Some(map.next_value::<i64>()?),
                "source_id" if source.is_some() => return Err(duplicate("source_id")),
                "source_id" => source = Some(map.next_value::<String>()?),
                "source_bundle_id" if source_bundle.is_some() => {
                    return Err(duplicate("source_bundle_id"))
                }
                "source_bundle_id" => source_bundle = Some(map.next_value::<i64>()?),
                "row_count" if row_count.is_some() => return Err(duplicate("row_count")),
                "row_count" => row_count = Some(map.next_value::<Option<i64>>()?),
                "bundle_hash" if hash.is_some() => return Err(duplicate("bundle_hash")),
                "bundle_hash" => hash = Some(map.next_value::<Option<String>>()?),
                "rows" if rows_seen => return Err(duplicate("rows")),
                "rows" => {
                    rows_seen = true;
                    map.next_value_seed(RowsSeed {
                        index: self.index,
                        sink: &mut *self.sink,
                        failure: &mut *self.failure,
                    })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !rows_seen {
            return Err(de::Error::missing_field("rows"));
        }
        let head = BundleHead {
            bundle_seq: seq.ok_or_else(|| de::Error::missing_field("bundle_seq"))?,
            source_id: source.ok_or_else(|| de::Error::missing_field("source_id"))?,
            source_bundle_id: source_bundle
                .ok_or_else(|| de::Error::missing_field("source_bundle_id"))?,
            row_count: row_count.flatten(),
            bundle_hash: hash.flatten(),
        };
        self.sink
            .bundle_end(self.index, head)
            .map_err(|e| stop(self.failure, e))
    }
}

struct RowsSeed<'a> {
    index: usize,
    sink: &'a mut dyn PageSink,
    failure: &'a mut Option<SyncError>,
}

impl<'de> DeserializeSeed<'de> for RowsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of bundle rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        // One row at a time: decoded, handed over, dropped.
        while let Some(row) = seq.next_element::<BundleRow>()? {
            if let Err(e) = self.sink.row(self.index, row) {
                return Err(stop(self.failure, e));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Records what the reader reports, as text, and can fail on a chosen row.
    #[derive(Default)]
    struct Recorder {
        events: Vec<String>,
        fail_on_row: Option<usize>,
    }

    impl PageSink for Recorder {
        fn bundle_begin(&mut self, index: usize) -> Result<()> {
            self.events.push(format!("begin {index}"));
            Ok(())
        }
        fn row(&mut self, index: usize, row: BundleRow) -> Result<()> {
            if self.fail_on_row == Some(self.events.len()) {
                return Err(SyncError::protocol("sink refused the row".to_string()));
            }
            self.events
                .push(format!("row {index} {} v{}", row.table, row.row_version));
            Ok(())
        }
        fn bundle_end(&mut self, index: usize, head: BundleHead) -> Result<()> {
            self.events.push(format!(
                "end {index} seq {} rows {:?} hash {:?}",
                head.bundle_seq, head.row_count, head.bundle_hash
            ));
            Ok(())
        }
    }

    fn row(table: &str, v: i64) -> serde_json::Value {
        json!({"schema": "s", "table": table, "key": {"id": "1"}, "op": "INSERT", "row_version": v, "payload": {"id": "1"}})
    }

    #[test]
    fn members_in_any_order_are_reported_row_by_row() {
        // Page fields after the bundles, bundle header after its rows.
        let body = json!({
            "bundles": [
                {"rows": [row("a", 1), row("b", 1)], "extra": [1, 2], "bundle_seq": 1, "source_id": "s1", "source_bundle_id": 1, "row_count": 2},
                {"bundle_seq": 2, "bundle_hash": "h", "source_id": "s1", "source_bundle_id": 2, "rows": []}
            ],
            "has_more": false,
            "stable_bundle_seq": 2
        });
        let mut sink = Recorder::default();
        let head = read_page(body.to_string().as_bytes(), &mut sink).unwrap();
        assert_eq!(
            head,
            PageHead {
                stable_bundle_seq: 2,
                has_more: false,
                bundles: 2
            }
        );
        assert_eq!(
            sink.events,
            vec![
                "begin 0",
                "row 0 a v1",
                "row 0 b v1",
                "end 0 seq 1 rows Some(2) hash None",
                "begin 1",
                "end 1 seq 2 rows None hash Some(\"h\")",
            ]
        );
    }

    #[test]
    fn malformed_pages_are_protocol_errors() {
        let cases = [
            json!({"bundles": [], "has_more": false}).to_string(),
            json!({"stable_bundle_seq": 1, "bundles": [{"bundle_seq": 1, "source_id": "s", "source_bundle_id": 1}], "has_more": false}).to_string(),
            json!({"stable_bundle_seq": 1, "bundles": [{"bundle_seq": 1, "source_id": "s", "source_bundle_id": 1, "rows": [{"schema": "s"}]}], "has_more": false}).to_string(),
            r#"{"stable_bundle_seq": 1, "stable_bundle_seq": 2, "bundles": [], "has_more": false}"#.to_string(),
            "{\"stable_bundle_seq\": 1, \"bundles\": [], \"has_more\": false} trailing".to_string(),
            "{\"stable_bundle_seq\": 1, \"bundles\": [".to_string(),
        ];
        for body in cases {
            let err = read_page(body.as_bytes(), &mut Recorder::default()).unwrap_err();
            assert!(
                err.to_string()
                    .contains("pull request: malformed response body"),
                "{body}: {err}"
            );
        }
    }

    #[test]
    fn a_sink_error_stops_the_read_and_is_returned_as_is() {
        let body = json!({"stable_bundle_seq": 1, "bundles": [
            {"bundle_seq": 1, "source_id": "s", "source_bundle_id": 1, "rows": [row("a", 1), row("b", 1), row("c", 1)]}
        ], "has_more": false});
        let mut sink = Recorder {
            fail_on_row: Some(2),
            ..Default::default()
        };
        let err = read_page(body.to_string().as_bytes(), &mut sink).unwrap_err();
        assert_eq!(
            err.to_string(),
            SyncError::protocol("sink refused the row".to_string()).to_string()
        );
        assert_eq!(sink.events, vec!["begin 0", "row 0 a v1"]);
    }
}
