//! The committed bundle after a push (§2.7, §7.4): paged download of its rows (the
//! next page fetched ahead on a helper thread), validation, `bundle_hash` and count
//! verification, and the position-by-position comparison with the outbox, before
//! anything is applied.

use std::collections::BTreeMap;

use oversqlite_protocol::{codes, BundleHasher, BundleRow, Op};

use crate::error::{Result, SyncError};
use crate::local::state::{OutboxBundle, OutboxRow};
use crate::ops::freeze;
use crate::remote::ahead::AheadSender;
use crate::remote::client::{Remote, Reply};
use crate::remote::validate::{validate_committed_page, CommittedMeta};
use crate::sync_client::Ctx;
use crate::values::codec::{parse_object, payloads_equivalent, PayloadForm};
use crate::wording::counted;

pub(crate) enum Fetch {
    Pruned,
    /// The committed bundle's rows (or its pages' metadata) disagree with the
    /// `bundle_hash` the commit answer advertised: a protocol error whose message shows
    /// both hashes. The push decides whether this sets the rebuild gate (§7.4).
    HashMismatch(SyncError),
    Failed(SyncError),
}

impl From<SyncError> for Fetch {
    fn from(e: SyncError) -> Self {
        Fetch::Failed(e)
    }
}

/// What the verified committed bundle leaves for the replay: one `row_version` per
/// row (bundle order), and the server's payload only where it is not exactly the
/// uploaded one (every other row replays from the outbox rows).
pub(crate) struct CommittedRows {
    pub versions: Vec<i64>,
    /// Outbox `row_ordinal` → the committed payload as JSON text.
    pub replaced: BTreeMap<i64, String>,
    /// Why the committed rows differ from the outbox (§7.4 comparison), if they do.
    pub mismatch: Option<String>,
}

/// Pages through the committed rows (§2.7). Each page is validated, hashed, and
/// compared with the outbox rows at the same positions, then dropped; count and
/// `bundle_hash` are verified at the end, before anything is applied. A hash or count
/// failure is a protocol error and wins over a comparison mismatch, as when the whole
/// bundle was fetched first.
type CommittedPage = oversqlite_protocol::CommittedBundleRowsResponse;
type PageResult = (Option<i64>, std::result::Result<CommittedPage, Fetch>);

pub(crate) fn fetch_committed(
    ctx: &Ctx,
    meta: &CommittedMeta,
    outbox: &OutboxBundle,
    strict: bool,
) -> std::result::Result<CommittedRows, Fetch> {
    // The next page downloads on a helper thread while this one is hashed and compared:
    // client and server work overlap instead of alternating. Only the HTTP exchange
    // moves to the helper ([`AheadSender`]); tokens and the database stay here.
    std::thread::scope(|scope| {
        let mut pages = CommittedPages {
            ctx,
            meta,
            sender: AheadSender::spawn(scope, &ctx.remote),
            in_flight: None,
            seen: 0,
        };
        pages.request(None)?;
        verify_pages(ctx, meta, outbox, strict, &mut pages)
        // Returning drops the sender: the helper finishes its request (if any) and ends.
    })
}

const COMMITTED_FETCH: &str = "committed bundle fetch";

/// The committed pages in order, each requested as soon as the previous one arrived,
/// and no further than the verifier will read: the next page is only asked for after a
/// page that is valid, has more, and keeps within `row_count`.
struct CommittedPages<'c> {
    ctx: &'c Ctx<'c>,
    meta: &'c CommittedMeta,
    sender: AheadSender<'c>,
    /// `after_row_ordinal` of the request in flight.
    in_flight: Option<Option<i64>>,
    seen: i64,
}

impl CommittedPages<'_> {
    fn request(&mut self, after: Option<i64>) -> Result<()> {
        let (remote, meta) = (&self.ctx.remote, self.meta);
        let max_rows = self.ctx.settings.committed_rows_page;
        let req = remote
            .requests
            .committed_rows(&meta.source_id, meta.bundle_seq, after, max_rows);
        self.sender.send(remote.authorized(req)?, COMMITTED_FETCH)?;
        self.in_flight = Some(after);
        Ok(())
    }

    /// The page in flight, once it arrived, after asking for the one that follows it.
    fn next_page(&mut self) -> Option<PageResult> {
        let after = self.in_flight.take()?;
        let page = self.receive(after);
        if let Ok(p) = &page {
            self.seen += p.rows.len() as i64;
            let go_on = p.has_more
                && self.seen <= self.meta.row_count
                && validate_committed_page(p, self.meta, after).is_ok();
            if go_on {
                if let Err(e) = self.request(Some(p.next_row_ordinal)) {
                    return Some((after, Err(Fetch::Failed(e))));
                }
            }
        }
        Some((after, page))
    }

    fn receive(&self, after: Option<i64>) -> std::result::Result<CommittedPage, Fetch> {
        let (req, sent) = self.sender.recv(COMMITTED_FETCH)?;
        let first = self.ctx.remote.finish(req, sent, COMMITTED_FETCH)?;
        let backoff = self.ctx.settings.committed_not_found_backoff.as_slice();
        let max_rows = self.ctx.settings.committed_rows_page;
        finish_page(&self.ctx.remote, backoff, self.meta, after, max_rows, first)
    }
}

impl Iterator for CommittedPages<'_> {
    type Item = PageResult;
    fn next(&mut self) -> Option<PageResult> {
        self.next_page()
    }
}

/// Validates, hashes and compares the pages as they arrive (see [`CommittedRows`]).
fn verify_pages(
    ctx: &Ctx,
    meta: &CommittedMeta,
    outbox: &OutboxBundle,
    strict: bool,
    pages: &mut dyn Iterator<Item = PageResult>,
) -> std::result::Result<CommittedRows, Fetch> {
    let mut hasher = BundleHasher::new();
    let mut out = CommittedRows {
        versions: Vec::new(),
        replaced: BTreeMap::new(),
        mismatch: None,
    };
    let mut outbox_after: Option<i64> = None;
    let mut complete = false;
    for (after, page) in pages {
        let page = page?;
        if page.bundle_hash != meta.bundle_hash {
            return Err(Fetch::HashMismatch(SyncError::protocol(format!(
                "committed bundle {} bundle hash mismatch: the commit answer advertised {}, its committed rows page says {}",
                meta.bundle_seq, meta.bundle_hash, page.bundle_hash
            ))));
        }
        validate_committed_page(&page, meta, after)?;
        // A server that keeps paging past the advertised count is broken; stop now
        // rather than reading without bound.
        if hasher.row_count() + page.rows.len() as i64 > meta.row_count {
            return Err(Fetch::Failed(SyncError::protocol(format!(
                "committed bundle {} returned more than its row_count of {}",
                meta.bundle_seq,
                counted(meta.row_count, "row", "rows")
            ))));
        }
        let uploaded = freeze::outbox_page(
            ctx.conn,
            outbox.source_bundle_id,
            outbox_after,
            page.rows.len(),
        )?;
        if let Some(last) = uploaded.last() {
            outbox_after = Some(last.row_ordinal);
        }
        for (i, row) in page.rows.iter().enumerate() {
            let position = out.versions.len();
            hasher.push(row);
            out.versions.push(row.row_version);
            if out.mismatch.is_some() {
                continue;
            }
            let Some(o) = uploaded.get(i) else {
                continue; // more committed rows than uploaded: reported after the hash
            };
            // A stored wire text that may have rounded a big integer proves nothing
            // about the live value: keep the committed payload so the replay writes it.
            let rounded = o
                .wire_payload
                .as_deref()
                .is_some_and(freeze::may_be_rounded);
            match compare_row(ctx, position, row, o, strict) {
                Ok(true) if !rounded => {}
                Ok(_) => {
                    let payload = row
                        .payload
                        .as_ref()
                        .map(|p| serde_json::to_string(p).expect("a JSON map serialises"));
                    out.replaced
                        .insert(o.row_ordinal, payload.unwrap_or_default());
                }
                Err(why) => out.mismatch = Some(why),
            }
        }
        if !page.has_more {
            complete = true;
            break;
        }
    }
    if !complete {
        return Err(Fetch::Failed(SyncError::protocol(format!(
            "committed bundle {} fetch ended before its last page",
            meta.bundle_seq
        ))));
    }
    let fetched = out.versions.len() as i64;
    if fetched != meta.row_count {
        return Err(Fetch::Failed(SyncError::protocol(format!(
            "committed bundle {} returned {} but row_count is {}",
            meta.bundle_seq,
            counted(fetched, "row", "rows"),
            meta.row_count
        ))));
    }
    let hash = hasher.finish().bundle_hash;
    if hash != meta.bundle_hash {
        return Err(Fetch::HashMismatch(SyncError::protocol(format!(
            "committed bundle {} bundle hash mismatch: rows hash to {hash}, server advertised {}",
            meta.bundle_seq, meta.bundle_hash
        ))));
    }
    if fetched != outbox.row_count {
        out.mismatch = Some(format!(
            "{} for {}",
            counted(fetched, "committed row", "committed rows"),
            counted(outbox.row_count, "uploaded row", "uploaded rows")
        ));
    }
    Ok(out)
}

/// One committed-rows page from its first answer, with the bounded retry (requests
/// sent from this thread) while the commit is not visible yet (§2.7).
fn finish_page(
    remote: &Remote,
    backoff: &[std::time::Duration],
    meta: &CommittedMeta,
    after: Option<i64>,
    max_rows: i64,
    first: Reply<CommittedPage>,
) -> std::result::Result<CommittedPage, Fetch> {
    let mut reply = first;
    let mut attempt = 0usize;
    loop {
        match reply {
            Reply::Ok(p) => return Ok(p),
            Reply::Failed(f) if f.status == 409 && f.code() == Some(codes::HISTORY_PRUNED) => {
                return Err(Fetch::Pruned)
            }
            Reply::Failed(f)
                if f.status == 404
                    && f.code() == Some(codes::COMMITTED_BUNDLE_NOT_FOUND)
                    && attempt < backoff.len() =>
            {
                // Waited like a request: an interrupt or the deadline ends it.
                let pause = backoff[attempt];
                remote
                    .limits
                    .wait(COMMITTED_FETCH, move || std::thread::sleep(pause))?;
                attempt += 1;
                reply = remote.committed_rows(&meta.source_id, meta.bundle_seq, after, max_rows)?;
            }
            Reply::Failed(f) => return Err(Fetch::Failed(f.into_error(COMMITTED_FETCH))),
        }
    }
}

/// Compares the committed row at `position` with the uploaded outbox row (§7.4):
/// schema, table, wire key and op always; the payload by typed equivalence when
/// `strict`. `Ok(true)` when the committed payload is exactly the uploaded one (the
/// replay may then read it from the outbox), `Ok(false)` when it must be kept.
fn compare_row(
    ctx: &Ctx,
    position: usize,
    c: &BundleRow,
    o: &OutboxRow,
    strict: bool,
) -> std::result::Result<bool, String> {
    let key = freeze::wire_key_of(o).map_err(|e| e.message)?;
    let op = freeze::row_op(o).map_err(|e| e.message)?;
    if c.schema != o.schema_name || c.table != o.table_name || c.key != key || c.op != op {
        return Err(format!(
            "row {position} is {}:{}:{:?} on the server but {}:{}:{:?} locally",
            c.table, c.op, c.key, o.table_name, op, key
        ));
    }
    if strict && c.op != Op::Delete {
        let table = ctx.table(&c.table).map_err(|e| e.message)?;
        let local = o
            .local_payload
            .as_deref()
            .map(|t| parse_object(t, "outbox local_payload"));
        let equivalent = match (local, &c.payload) {
            (Some(Ok(l)), Some(w)) => {
                payloads_equivalent(table, &l, PayloadForm::Local, w, PayloadForm::Wire, true)
            }
            _ => false,
        };
        if !equivalent {
            return Err(format!(
                "row {position} ({}:{:?}) has a different payload on the server",
                c.table, c.key
            ));
        }
    }
    if c.op == Op::Delete {
        return Ok(true);
    }
    // Exact equality with the stored wire text: decoding either then gives the same
    // values. Anything else (a server that normalises values) keeps its own payload.
    let stored = o
        .wire_payload
        .as_deref()
        .and_then(|t| parse_object(t, "outbox wire_payload").ok());
    Ok(stored.is_some() && stored.as_ref() == c.payload.as_ref())
}
