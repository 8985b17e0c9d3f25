//! Appending to the audit chains: the cached end of each chain behind its own lock, the pending
//! append that holds a place in a chain until its batch commits, and the events themselves
//! (administrative and access), each written with its chain's new anchor, and the first with the
//! chain's registration.

use super::{AccessEvent, MAX_AUDITED_DOCUMENTS, Subject, SubjectHash};
use crate::engine::Batch;
use crate::error::{Result, StorageError};
use crate::ids::TenantUid;
use crate::layout::{self, Head, RecordV2};
use crate::store::{Durability, Store};
use parking_lot::{Mutex, MutexGuard};
use std::collections::HashMap;
use std::sync::Arc;

/// The cached end of each chain appended to since the store opened, each behind its own lock (which
/// also orders appends to that chain), and the cached number of registered chains behind the lock
/// that orders registrations.
#[derive(Default)]
pub(crate) struct AuditHeads {
    chains: Mutex<HashMap<TenantUid, Arc<Mutex<Option<Head>>>>>,
    count: Mutex<Option<u64>>,
}

impl AuditHeads {
    /// The lock of one chain (created on first use).
    pub(super) fn chain(&self, uid: &TenantUid) -> Arc<Mutex<Option<Head>>> {
        Arc::clone(self.chains.lock().entry(*uid).or_default())
    }
}

/// Held while a batch with an audit event is committed: no other event of the same chain can take
/// the same place meanwhile. Dropped without [`PendingAppend::committed`], it forgets the cached end, so
/// the next append reads it back from the anchor whether or not the batch committed.
pub(crate) struct PendingAppend<'s> {
    head: parking_lot::ArcMutexGuard<parking_lot::RawMutex, Option<Head>>,
    next: Head,
    /// The registration lock and the new count, when this event starts a chain.
    registration: Option<(MutexGuard<'s, Option<u64>>, u64)>,
    committed: bool,
}

impl PendingAppend<'_> {
    /// The batch committed: the chain's end (and the chain count) are now what it wrote.
    pub(crate) fn committed(mut self) {
        self.committed = true;
    }
}

impl Drop for PendingAppend<'_> {
    fn drop(&mut self) {
        *self.head = self.committed.then_some(self.next);
        if let Some((count, new)) = &mut self.registration {
            **count = self.committed.then_some(*new);
        }
    }
}

impl Store {
    /// The keyed hash that stands for `value` of kind `subject` in the tenant's events. An operator
    /// (or the tenant, through the admin plane) computes it to find the events about a known value.
    pub fn audit_subject_hash(&self, uid: TenantUid, subject: Subject, value: &[u8]) -> SubjectHash {
        SubjectHash(layout::subject_hash(&self.system, &uid, subject.domain(), value))
    }

    fn query_hash(&self, uid: TenantUid, query: &[f32]) -> SubjectHash {
        SubjectHash(layout::query_subject_hash(&self.system, &uid, Subject::Query.domain(), query))
    }

    /// The anchor and registration records of a chain whose end is `head` (for the format-2
    /// migration, which anchors every chain as it finds it).
    pub(crate) fn anchor_records(&self, uid: &TenantUid, head: Head) -> [(Vec<u8>, Vec<u8>); 2] {
        [
            (layout::audit_anchor_key(uid), layout::anchor_value(&self.system, uid, head)),
            (layout::audit_registration_key(uid), layout::registration_mac(&self.system, uid).to_vec()),
        ]
    }

    /// The end of the tenant's chain from its anchor. A chain without an anchor is new only if
    /// nothing of it exists; an anchor that does not authenticate, or is missing from a chain that
    /// exists, is an integrity failure: appending would hide what was removed.
    pub(crate) fn stored_head(&self, uid: &TenantUid) -> Result<Head> {
        let sys = self.sys()?;
        if let Some(bytes) = self.db.get(&sys, layout::audit_anchor_key(uid))? {
            let anchor: layout::Anchor = layout::decode(&bytes, "audit anchor")?;
            let head = (anchor.next_seq, anchor.last_mac);
            if !bulkhead_crypto::constant_time_eq(&layout::anchor_mac(&self.system, uid, head), &anchor.mac) {
                return Err(StorageError::Integrity);
            }
            return Ok(head);
        }
        let registered = self.db.get(&sys, layout::audit_registration_key(uid))?.is_some();
        if registered || self.unanchored_head(uid)?.is_some() {
            tracing::error!(
                tenant = %uid.short(),
                "an audit chain has lost its anchor; refusing to append to it"
            );
            return Err(StorageError::Integrity);
        }
        Ok((0, [0; 32]))
    }

    /// Puts the event at `(seq, prev)` and the chain's new anchor into `batch`; returns the new end.
    fn put_event(
        &self,
        batch: &mut Batch,
        uid: &TenantUid,
        (seq, prev): Head,
        mut record: RecordV2,
    ) -> Result<Head> {
        record.mac = layout::v2_mac(&self.system, uid, (seq, prev), &record);
        let sys = self.sys()?;
        batch.put(&sys, layout::audit_event_key(uid, seq), layout::event_value(&record));
        let next = (seq + 1, record.mac);
        batch.put(&sys, layout::audit_anchor_key(uid), layout::anchor_value(&self.system, uid, next));
        Ok(next)
    }

    /// The record of an administrative event (outcome `ok`, no subject).
    pub(crate) fn admin_record(&self, operation: &str, key_id: Option<&str>) -> RecordV2 {
        RecordV2::bare(self.now_ms(), operation.to_owned(), key_id.map(str::to_owned), "ok".to_owned())
    }

    /// Adds the next event of the tenant's chain to `batch`. The caller commits the batch while it
    /// holds the returned `PendingAppend`, so that no other event takes the same place.
    pub(crate) fn audit_into(
        &self,
        batch: &mut Batch,
        uid: &TenantUid,
        operation: &str,
        key_id: Option<&str>,
    ) -> Result<PendingAppend<'_>> {
        self.audit_record_into(batch, uid, self.admin_record(operation, key_id))
    }

    /// As [`Store::audit_into`], with a record the caller filled in. The first event of a chain
    /// also registers the chain and counts it, in the same batch.
    pub(crate) fn audit_record_into(
        &self,
        batch: &mut Batch,
        uid: &TenantUid,
        record: RecordV2,
    ) -> Result<PendingAppend<'_>> {
        let mut head = self.audit_heads.chain(uid).lock_arc();
        let current = match *head {
            Some(cached) => cached,
            None => self.stored_head(uid)?,
        };
        let mut registration = None;
        if current.0 == 0 {
            // A new chain (`stored_head` says so only when nothing of it exists).
            let mut count = self.audit_heads.count.lock();
            let chains = match *count {
                Some(n) => n,
                None => self.stored_chain_count()?.unwrap_or(0),
            };
            let sys = self.sys()?;
            batch.put(&sys, layout::audit_registration_key(uid), layout::registration_mac(&self.system, uid));
            batch.put(&sys, layout::CHAINS_KEY, layout::chain_count_value(&self.system, chains + 1));
            *count = None;
            registration = Some((count, chains + 1));
        }
        let next = self.put_event(batch, uid, current, record)?;
        *head = None;
        Ok(PendingAppend { head, next, registration, committed: false })
    }

    /// Appends one administrative event on its own (fsynced).
    pub(crate) fn audit(&self, uid: &TenantUid, operation: &str, key_id: Option<&str>) -> Result<()> {
        let mut batch = Batch::default();
        let pending = self.audit_into(&mut batch, uid, operation, key_id)?;
        self.sys_write(batch)?;
        pending.committed();
        Ok(())
    }

    /// The record of an access event: its values hashed, outcome and time filled in.
    pub(crate) fn access_record(&self, uid: TenantUid, event: &AccessEvent<'_>) -> RecordV2 {
        let hash = |subject, value: &str| self.audit_subject_hash(uid, subject, value.as_bytes()).0;
        RecordV2 {
            key_generation: event.key_generation,
            principal: event.principal.map(|p| hash(Subject::Principal, p)),
            collection: event.collection.map(|c| hash(Subject::Collection, c)),
            query: event.query.map(|q| self.query_hash(uid, q).0),
            documents: event
                .documents
                .iter()
                .take(MAX_AUDITED_DOCUMENTS)
                .map(|d| hash(Subject::Document, d))
                .collect(),
            policy_version: event.policy_version,
            note: event.note.map(str::to_owned),
            ..RecordV2::bare(
                self.now_ms(),
                event.operation.to_owned(),
                event.key_id.map(str::to_owned),
                event.outcome.to_owned(),
            )
        }
    }

    /// Appends an access event to the tenant's chain: hashes its values, chains it, and writes it
    /// through the write-ahead log without waiting for an fsync (a power loss may lose the last
    /// events, never reorder them; a process crash loses none).
    pub fn audit_access(&self, uid: TenantUid, event: &AccessEvent<'_>) -> Result<()> {
        self.audit_access_record(uid, self.access_record(uid, event))
    }

    /// Appends a prepared access record on its own (see [`Store::audit_access`]).
    pub(crate) fn audit_access_record(&self, uid: TenantUid, record: RecordV2) -> Result<()> {
        let mut batch = Batch::default();
        let pending = self.audit_record_into(&mut batch, &uid, record)?;
        self.db.write(batch, Durability::Process)?;
        pending.committed();
        Ok(())
    }
}
