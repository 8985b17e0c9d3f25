//! Checking the audit trail: one chain, link by link from one snapshot up to its anchor, and the
//! directory of chains against its authenticated count.

use super::{AuditCheck, DirectoryCheck};
use crate::error::{Result, StorageError};
use crate::ids::TenantUid;
use crate::layout::{self, Anchor, Checkpoint};
use crate::store::Store;
use bulkhead_crypto::constant_time_eq;

impl Store {
    /// Checks that every chain ever registered is still registered: the registrations are counted
    /// and compared with the authenticated count. A whole chain removed with its anchor and
    /// registration shows here (and [`Store::audit_tenants`] no longer lists it).
    pub fn audit_directory_check(&self) -> Result<DirectoryCheck> {
        let registered = self.uids_under(layout::REGISTRATION_PREFIX)?.len() as u64;
        let expected = match self.stored_chain_count() {
            Ok(count) => count,
            Err(StorageError::Integrity | StorageError::Codec(_)) => None,
            Err(e) => return Err(e),
        };
        Ok(DirectoryCheck { registered, expected })
    }

    /// Recomputes the tenant's chain (from its checkpoint, if it was pruned) and reports the first
    /// event that does not hold: a MAC that does not match its content and predecessor, a gap in
    /// the sequence, or an end that is not the anchored one (events removed from the end, or the
    /// anchor itself altered or removed). A checkpoint whose own MAC does not hold is reported as
    /// broken at its first sequence number. Reads one consistent snapshot, streaming the events.
    pub fn audit_verify(&self, uid: TenantUid) -> Result<AuditCheck> {
        let snapshot = self.db.snapshot();
        let sys = self.sys()?;
        let broken = |events, first_seq, at, reason| {
            Ok(AuditCheck { events, first_seq, first_broken: Some(at), reason: Some(reason) })
        };
        let checkpoint: Option<Checkpoint> = match snapshot.get(&sys, layout::audit_checkpoint_key(&uid))? {
            None => None,
            Some(bytes) => match layout::decode::<Checkpoint>(&bytes, "audit checkpoint") {
                Ok(c) => Some(c),
                Err(_) => return broken(0, 0, 0, "checkpoint"),
            },
        };
        let (first_seq, mut prev) = match &checkpoint {
            None => (0, [0u8; 32]),
            Some(c) => {
                if !constant_time_eq(&layout::checkpoint_mac(&self.system, &uid, c), &c.mac) {
                    return broken(0, c.first_seq, c.first_seq, "checkpoint");
                }
                (c.first_seq, c.prev_mac)
            }
        };
        // Read from the start, not from the checkpoint: an event left below it is a break too.
        let mut events = 0u64;
        let mut expected = first_seq;
        let mut failure = None;
        let visited = self.visit_records(&uid, 0, Some(&snapshot), |seq, stored| {
            events += 1;
            if failure.is_some() {
                return true;
            }
            if seq != expected {
                failure = Some((expected.min(seq), "sequence"));
            } else if !constant_time_eq(
                &layout::stored_mac(&self.system, &uid, (seq, prev), &stored),
                &stored.mac(),
            ) {
                failure = Some((seq, "mac"));
            } else {
                prev = stored.mac();
                expected += 1;
            }
            true
        });
        match visited {
            Ok(()) => {}
            // A record whose key is not an event's (written at the RocksDB level) breaks the chain
            // where the walk had reached.
            Err(StorageError::Codec(_)) => {
                failure.get_or_insert((expected, "sequence"));
            }
            Err(e) => return Err(e),
        }
        if let Some((at, reason)) = failure {
            return broken(events, first_seq, at, reason);
        }
        // The end: the anchor must name exactly where the chain stops.
        let registered = snapshot.get(&sys, layout::audit_registration_key(&uid))?.is_some();
        let anchor = match snapshot.get(&sys, layout::audit_anchor_key(&uid))? {
            Some(bytes) => match layout::decode::<Anchor>(&bytes, "audit anchor") {
                Ok(anchor) => Some(anchor),
                Err(_) => return broken(events, first_seq, expected, "anchor"),
            },
            None => None,
        };
        let Some(anchor) = anchor else {
            return if registered || events > 0 || checkpoint.is_some() {
                broken(events, first_seq, expected, "anchor")
            } else {
                Ok(AuditCheck { events: 0, first_seq: 0, first_broken: None, reason: None })
            };
        };
        let head = (anchor.next_seq, anchor.last_mac);
        if !constant_time_eq(&layout::anchor_mac(&self.system, &uid, head), &anchor.mac) {
            return broken(events, first_seq, expected, "anchor");
        }
        if anchor.next_seq != expected || !constant_time_eq(&anchor.last_mac, &prev) {
            return broken(events, first_seq, expected.min(anchor.next_seq), "truncated");
        }
        if !registered {
            return broken(events, first_seq, expected, "unregistered");
        }
        Ok(AuditCheck { events, first_seq, first_broken: None, reason: None })
    }
}
