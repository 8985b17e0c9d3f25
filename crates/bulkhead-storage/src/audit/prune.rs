//! Pruning an audit chain for retention: its oldest events deleted, and a MAC'd checkpoint left so
//! that what remains still verifies.

use crate::engine::Batch;
use crate::error::Result;
use crate::ids::TenantUid;
use crate::layout::{self, Checkpoint, Stored};
use crate::store::Store;

impl Store {
    /// Deletes the tenant's events older than `before_ms`, keeping at least the newest one, and
    /// leaves a checkpoint so that the rest still verifies. Returns how many were deleted. The
    /// deletion and the checkpoint are one fsynced batch. Streams the chain (stopping at the first
    /// event young enough to keep) and takes the chain's lock only to write, so appends to the
    /// chain, and every other chain, go on meanwhile.
    pub fn audit_prune(&self, uid: TenantUid, before_ms: u64) -> Result<u64> {
        let time = |s: &Stored| match s {
            Stored::V1(r) => r.time_ms,
            Stored::V2(r) => r.time_ms,
            // An unreadable event is never pruned: it stays for verification to report.
            Stored::Unreadable => u64::MAX,
        };
        let mut first = None;
        // The newest event seen so far that is old enough, once a later event exists: the cut
        // goes after it. The newest event of the chain is always kept.
        let mut previous: Option<(u64, [u8; 32], u64)> = None;
        let mut cut = None;
        self.visit_records(&uid, 0, None, |seq, stored| {
            first.get_or_insert(seq);
            if let Some((seq_before, mac_before, time_before)) = previous {
                if time_before >= before_ms {
                    return false;
                }
                cut = Some((seq_before + 1, mac_before));
            }
            previous = Some((seq, stored.mac(), time(&stored)));
            true
        })?;
        let (Some(first), Some((first_kept, prev_mac))) = (first, cut) else { return Ok(0) };
        let _chain = self.audit_heads.chain(&uid).lock_arc();
        // Another prune may have moved the checkpoint meanwhile: never move it back.
        if self.audit_checkpoint(&uid)?.is_some_and(|c| c.first_seq >= first_kept) {
            return Ok(0);
        }
        let mut checkpoint =
            Checkpoint { first_seq: first_kept, prev_mac, pruned_at_ms: self.now_ms(), mac: [0; 32] };
        checkpoint.mac = layout::checkpoint_mac(&self.system, &uid, &checkpoint);
        let sys = self.sys()?;
        let mut batch = Batch::default();
        batch.delete_range(
            &sys,
            layout::audit_event_key(&uid, first),
            layout::audit_event_key(&uid, first_kept),
        );
        batch.put(&sys, layout::audit_checkpoint_key(&uid), layout::encode(&checkpoint));
        self.sys_write(batch)?;
        Ok(first_kept - first)
    }
}
