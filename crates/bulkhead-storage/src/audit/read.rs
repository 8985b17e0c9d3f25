//! Reading the audit chains: events streamed in order (optionally from one snapshot), pages of
//! them, the list of chains, and the stored checkpoint, chain count and pre-anchor end of a chain.

use super::{AuditEvent, SubjectHash};
use crate::engine::{Keys, Snapshot};
use crate::error::{Result, StorageError};
use crate::ids::TenantUid;
use crate::layout::{self, ChainCount, Checkpoint, Head, RecordV2, Stored};
use crate::store::Store;

/// An event as read back. An event of format 1 reads as a bare one of format 2, and an unreadable
/// one as a bare event named `unreadable`.
fn to_event(seq: u64, stored: Stored) -> AuditEvent {
    let r = match stored {
        Stored::V1(r) => RecordV2::bare(r.time_ms, r.operation, r.key_id, r.outcome),
        Stored::V2(r) => r,
        Stored::Unreadable => RecordV2::bare(0, "unreadable".to_owned(), None, "unreadable".to_owned()),
    };
    AuditEvent {
        seq,
        time_ms: r.time_ms,
        operation: r.operation,
        key_id: r.key_id,
        outcome: r.outcome,
        key_generation: r.key_generation,
        principal: r.principal.map(SubjectHash),
        collection: r.collection.map(SubjectHash),
        query: r.query.map(SubjectHash),
        documents: r.documents.into_iter().map(SubjectHash).collect(),
        policy_version: r.policy_version,
        note: r.note,
    }
}

impl Store {
    /// Calls `visit` with each stored event from `from_seq` on, in order, until it returns false,
    /// reading through `snapshot` if given (a consistent view across several reads).
    pub(super) fn visit_records(
        &self,
        uid: &TenantUid,
        from_seq: u64,
        snapshot: Option<&Snapshot<'_>>,
        mut visit: impl FnMut(u64, Stored) -> bool,
    ) -> Result<()> {
        let sys = self.sys()?;
        let keys = Keys::Range(layout::audit_event_key(uid, from_seq), layout::audit_events_end(uid));
        let entries = match snapshot {
            Some(snapshot) => snapshot.entries(&sys, keys)?,
            None => self.db.entries(&sys, keys),
        };
        for item in entries {
            let (key, value) = item?;
            if !visit(layout::audit_event_seq(&key)?, Stored::decode(&value)) {
                break;
            }
        }
        Ok(())
    }

    /// A page of a tenant's audit events: those from sequence number `from_seq` on that happened at
    /// or after `since_ms`, at most `limit`, oldest first (also after the tenant was deleted), and
    /// the sequence number the next page starts at (`None` at the end of the chain).
    pub fn audit_page(
        &self,
        uid: TenantUid,
        from_seq: u64,
        since_ms: u64,
        limit: usize,
    ) -> Result<(Vec<AuditEvent>, Option<u64>)> {
        let mut events = Vec::new();
        let mut next = None;
        self.visit_records(&uid, from_seq, None, |seq, stored| {
            if events.len() == limit {
                next = Some(seq);
                return false;
            }
            let event = to_event(seq, stored);
            if event.time_ms >= since_ms {
                events.push(event);
            }
            true
        })?;
        Ok((events, next))
    }

    /// All of a tenant's audit events, oldest first (for tests and small chains; exports page).
    pub fn audit_events(&self, uid: TenantUid) -> Result<Vec<AuditEvent>> {
        Ok(self.audit_page(uid, 0, 0, usize::MAX)?.0)
    }

    /// The distinct uids found under `prefix` followed by a 16-byte uid (one seek per uid).
    pub(super) fn uids_under(&self, prefix: &[u8]) -> Result<Vec<TenantUid>> {
        let sys = self.sys()?;
        let mut out: Vec<TenantUid> = Vec::new();
        let mut from = prefix.to_vec();
        loop {
            let Some(item) = self.db.entries_from(&sys, Keys::Prefix(prefix), &from).next() else { break };
            let (key, _) = item?;
            let raw = layout::uid_after(prefix, &key).ok_or(StorageError::Codec("audit key"))?;
            out.push(TenantUid::from_bytes(raw));
            // The next uid starts after every key of this one.
            from = layout::after_uid(prefix, &raw);
        }
        Ok(out)
    }

    /// Every tenant uid that has an audit chain, including deleted tenants and the system chain (the
    /// zero uid): every registered chain, and any chain with events (registered or not).
    pub fn audit_tenants(&self) -> Result<Vec<TenantUid>> {
        let mut out = self.uids_under(layout::REGISTRATION_PREFIX)?;
        out.extend(self.uids_under(layout::AUDIT_PREFIX)?);
        out.sort_unstable_by_key(|uid| *uid.as_bytes());
        out.dedup();
        Ok(out)
    }

    /// The end of a chain as stored before anchors existed: after its last event, or at its
    /// checkpoint when pruning left none. `None` for a uid without a chain.
    pub(crate) fn unanchored_head(&self, uid: &TenantUid) -> Result<Option<Head>> {
        let sys = self.sys()?;
        match self.db.last_entry(&sys, Keys::Prefix(&layout::audit_events_prefix(uid)))? {
            None => Ok(self.audit_checkpoint(uid)?.map(|c| (c.first_seq, c.prev_mac))),
            Some((key, value)) => {
                Ok(Some((layout::audit_event_seq(&key)? + 1, Stored::decode(&value).mac())))
            }
        }
    }

    /// The chain's checkpoint, if it was pruned.
    pub(super) fn audit_checkpoint(&self, uid: &TenantUid) -> Result<Option<Checkpoint>> {
        let sys = self.sys()?;
        match self.db.get(&sys, layout::audit_checkpoint_key(uid))? {
            None => Ok(None),
            Some(bytes) => Ok(Some(layout::decode(&bytes, "audit checkpoint")?)),
        }
    }

    /// The number of registered chains, from its authenticated record (`None` if there is none yet).
    pub(super) fn stored_chain_count(&self) -> Result<Option<u64>> {
        let Some(bytes) = self.db.get(&self.sys()?, layout::CHAINS_KEY)? else { return Ok(None) };
        let count: ChainCount = layout::decode(&bytes, "audit chain count")?;
        if !bulkhead_crypto::constant_time_eq(
            &layout::chain_count_mac(&self.system, count.chains),
            &count.mac,
        ) {
            return Err(StorageError::Integrity);
        }
        Ok(Some(count.chains))
    }
}
