//! A copied or restored database file (issue #10 item 1). Two files with one history
//! carry the same source id and the same next `source_bundle_id`. The copy that pushes
//! second asks to create `(source, n)`, which the other copy already committed: the
//! server answers `already_committed`, and the committed rows are not the ones in this
//! outbox. No retry can ever match, and the reference clients stay stuck there with
//! `source_sequence_mismatch`.
//!
//! Way out: this copy moves to a fresh source of its own, locally, and its frozen
//! bundle becomes bundle 1 of that source (state `prepared`, rows and hash unchanged,
//! as a rotated rebuild rebinds a preserved outbox, §7.7.2). The next push uploads it
//! under the new source; the other copy's bundle arrives with the next pull like any
//! other device's. The old source is *not* retired on the server (no rotated snapshot,
//! §7.8): it still belongs to the other copy, and a retirement would send that copy into
//! source recovery towards the same replacement id, which the server accepts again, so
//! both copies would share one source once more. A source id the server has never seen
//! starts at bundle 1 on the reference server as on ours (every new device does), so the
//! recovery relies on nothing but that. See `engine/DECISIONS.md`.

use crate::error::{ErrorKind, Result, SyncError};
use crate::local::state;
use crate::local::state::OutboxState;
use crate::local::tx::write_tx;
use crate::sync_client::Ctx;
use oversqlite_core::store::{attachment, outbox, source};

/// Moves this database to a fresh source and rebinds the prepared outbox as its first
/// bundle, in one transaction; returns the new source id. Refused (the original error
/// stands) unless the outbox is `prepared` on the current source and no seeding lease
/// is held (a lease belongs to the source that asked for it).
pub(crate) fn move_to_own_source(ctx: &Ctx, mismatch: SyncError) -> Result<String> {
    write_tx(ctx.conn, |c| {
        let mut att = attachment::read(c)?;
        let bundle = state::outbox(c)?;
        if bundle.state != OutboxState::Prepared
            || bundle.source_id != att.current_source_id
            || !att.pending_initialization_id.is_empty()
        {
            return Err(mismatch);
        }
        let old = att.current_source_id.clone();
        let new = state::new_source_id(&[&old]);
        state::ensure_source_row(c, &new)?;
        state::set_next_source_bundle_id_at_least(c, &new, 2)?;
        source::set_replaced_by(c, &old, &new)?;
        outbox::rebind_as_first_bundle(c, &new)?;
        att.current_source_id = new.clone();
        attachment::write(c, &att)?;
        Ok(new)
    })
    .map_err(|e| {
        if e.kind == ErrorKind::SourceSequenceMismatch {
            e
        } else {
            SyncError::new(
                e.kind,
                format!(
                    "moving this copy of the database to a source of its own failed: {}",
                    e.message
                ),
            )
        }
    })
}
