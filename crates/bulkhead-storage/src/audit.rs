//! The audit trail: an append-only chain of events per tenant, in the system column family so that
//! it outlives the tenant. Administrative events (creation, API keys issued and revoked, rotations,
//! deletion) are written in the same fsynced batch as the change they record; access events (every
//! data-plane operation that reached the tenant, and every refusal of a credential that names it) are
//! appended on their own, through the write-ahead log without an fsync.
//!
//! Each event carries a keyed MAC (under the registry's naming key) over its content and its
//! predecessor's MAC, so that an altered, removed or reordered event breaks the chain at that point.
//! Events hold no tenant data in clear: an opaque uid, a time, an operation name, a public key id, an
//! outcome, a key generation, and for the principal, the collection, the query and the document ids
//! only keyed hashes ([`Store::audit_subject_hash`]), which stay comparable within the tenant.
//!
//! Pruning (retention) deletes the oldest events and leaves a checkpoint, itself MAC'd, that holds the
//! first kept sequence number and its predecessor's MAC, so that what remains still verifies.
//!
//! Layout: `"audit/" uid(16) seq u64 BE` → event; `"auditck/" uid(16)` → checkpoint. An event written
//! before access events existed is a bare postcard record (its first byte, a varint of a time in
//! milliseconds, is ≥ 0x80); a current one is the byte [`EVENT_V2`] followed by its postcard record.

use crate::error::{Result, StorageError};
use crate::ids::TenantUid;
use crate::layout;
use crate::store::{Store, now_ms};
use bulkhead_crypto::constant_time_eq;
use parking_lot::MutexGuard;
use rocksdb::{IteratorMode, ReadOptions, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

const AUDIT_PREFIX: &[u8] = b"audit/";
const CHECKPOINT_PREFIX: &[u8] = b"auditck/";
/// The first byte of an event in the current format.
const EVENT_V2: u8 = 2;
/// The most document-id hashes one event keeps (a batch holds at most this many ids anyway).
pub const MAX_AUDITED_DOCUMENTS: usize = 1024;

fn audit_key(uid: &TenantUid, seq: u64) -> Vec<u8> {
    [AUDIT_PREFIX, uid.as_bytes(), &seq.to_be_bytes()].concat()
}

fn tenant_prefix(uid: &TenantUid) -> Vec<u8> {
    [AUDIT_PREFIX, uid.as_bytes()].concat()
}

fn checkpoint_key(uid: &TenantUid) -> Vec<u8> {
    [CHECKPOINT_PREFIX, uid.as_bytes()].concat()
}

/// An event as written before access events existed (only administrative events, always `ok`).
#[derive(Serialize, Deserialize)]
struct RecordV1 {
    time_ms: u64,
    operation: String,
    key_id: Option<String>,
    outcome: String,
    mac: [u8; 32],
}

/// An event in the current format.
#[derive(Serialize, Deserialize, Clone)]
pub(crate) struct RecordV2 {
    time_ms: u64,
    operation: String,
    key_id: Option<String>,
    outcome: String,
    key_generation: Option<u32>,
    principal: Option<[u8; 16]>,
    collection: Option<[u8; 16]>,
    query: Option<[u8; 16]>,
    documents: Vec<[u8; 16]>,
    pub(crate) policy_version: Option<u64>,
    pub(crate) note: Option<String>,
    mac: [u8; 32],
}

enum Stored {
    V1(RecordV1),
    V2(RecordV2),
    /// Bytes that do not parse as an event (altered on disk): verification reports it as broken.
    Unreadable,
}

impl Stored {
    fn decode(bytes: &[u8]) -> Stored {
        let parsed = match bytes.split_first() {
            Some((&EVENT_V2, rest)) => layout::decode(rest, "audit event").map(Stored::V2),
            _ => layout::decode(bytes, "audit event").map(Stored::V1),
        };
        parsed.unwrap_or(Stored::Unreadable)
    }

    fn mac(&self) -> [u8; 32] {
        match self {
            Stored::V1(r) => r.mac,
            Stored::V2(r) => r.mac,
            Stored::Unreadable => [0; 32],
        }
    }
}

/// The checkpoint pruning leaves: the chain now starts at `first_seq`, whose predecessor's MAC was
/// `prev_mac`.
#[derive(Serialize, Deserialize)]
struct Checkpoint {
    first_seq: u64,
    prev_mac: [u8; 32],
    pruned_at_ms: u64,
    mac: [u8; 32],
}

/// A keyed hash that stands for a value in an audit event (16 bytes of HMAC-SHA256 under the
/// registry's naming key, bound to the tenant and the kind of value): equal values of one tenant hash
/// equally, and nobody without the key can tell what was hashed.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubjectHash(pub [u8; 16]);

impl SubjectHash {
    /// Lower-case hex, for export.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for SubjectHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// What a value in an event is, for [`Store::audit_subject_hash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A user id (the principal a request ran for).
    Principal,
    /// A collection name.
    Collection,
    /// A query vector (its bytes, little-endian `f32`s).
    Query,
    /// A document id.
    Document,
}

impl Subject {
    fn domain(self) -> &'static [u8] {
        match self {
            Subject::Principal => b"principal",
            Subject::Collection => b"collection",
            Subject::Query => b"query",
            Subject::Document => b"document",
        }
    }
}

/// An access event to append with [`Store::audit_access`]. Values are hashed on the way in.
#[derive(Default)]
pub struct AccessEvent<'a> {
    /// The operation (`search`, `upsert`, `auth`, ...).
    pub operation: &'a str,
    /// The public id of the API key used, if any.
    pub key_id: Option<&'a str>,
    /// `ok`, or a reason code (`permission-denied`, `invalid-argument`, `revoked`, ...).
    pub outcome: &'a str,
    /// The tenant's key generation in force.
    pub key_generation: Option<u32>,
    /// The user the request ran for.
    pub principal: Option<&'a str>,
    /// The collection.
    pub collection: Option<&'a str>,
    /// The query vector of a search.
    pub query: Option<&'a [f32]>,
    /// The document ids concerned (at most [`MAX_AUDITED_DOCUMENTS`] are kept).
    pub documents: &'a [&'a str],
    /// The version of the tenant's policy in force.
    pub policy_version: Option<u64>,
}

impl std::fmt::Debug for AccessEvent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The values are tenant data until hashed: only the shape is shown.
        f.debug_struct("AccessEvent")
            .field("operation", &self.operation)
            .field("outcome", &self.outcome)
            .field("documents", &self.documents.len())
            .finish_non_exhaustive()
    }
}

/// One audit event as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Position in the tenant's chain, from 0.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// What happened (`tenant-created`, `api-key-issued`, `search`, `auth`, ...).
    pub operation: String,
    /// The public id of the API key concerned, if any.
    pub key_id: Option<String>,
    /// `ok`, or a reason code.
    pub outcome: String,
    /// The tenant's key generation in force, for access events.
    pub key_generation: Option<u32>,
    /// Keyed hash of the principal.
    pub principal: Option<SubjectHash>,
    /// Keyed hash of the collection name.
    pub collection: Option<SubjectHash>,
    /// Keyed hash of the query vector.
    pub query: Option<SubjectHash>,
    /// Keyed hashes of the document ids.
    pub documents: Vec<SubjectHash>,
    /// The version of the tenant's policy in force (access events), or set (`policy-changed`).
    pub policy_version: Option<u64>,
    /// The operator's note (`policy-changed`).
    pub note: Option<String>,
}

/// The result of checking a tenant's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditCheck {
    /// Events in the chain (after the checkpoint, if it was pruned).
    pub events: u64,
    /// Where the chain starts: 0, or the checkpoint's first kept event.
    pub first_seq: u64,
    /// The sequence number of the first event whose MAC or position does not hold, if any.
    pub first_broken: Option<u64>,
}

/// The next sequence number and the last MAC of each tenant chain that was appended to since the
/// store opened. Its lock also orders appends: whoever holds it owns the end of every chain.
#[derive(Default)]
pub(crate) struct AuditHeads(parking_lot::Mutex<HashMap<TenantUid, (u64, [u8; 32])>>);

/// Held while an administrative batch with an audit event is committed: no other event can take the
/// same place meanwhile. Dropping it forgets the cached head, so the next append reads it back from
/// the database whether or not the batch committed.
pub(crate) struct AuditSlot<'s> {
    heads: MutexGuard<'s, HashMap<TenantUid, (u64, [u8; 32])>>,
    uid: TenantUid,
}

impl Drop for AuditSlot<'_> {
    fn drop(&mut self) {
        self.heads.remove(&self.uid);
    }
}

/// An event with no subject, key generation, policy version or note.
fn bare_event(
    seq: u64,
    time_ms: u64,
    operation: String,
    key_id: Option<String>,
    outcome: String,
) -> AuditEvent {
    AuditEvent {
        seq,
        time_ms,
        operation,
        key_id,
        outcome,
        key_generation: None,
        principal: None,
        collection: None,
        query: None,
        documents: Vec::new(),
        policy_version: None,
        note: None,
    }
}

fn to_event(seq: u64, stored: Stored) -> AuditEvent {
    match stored {
        Stored::V1(r) => bare_event(seq, r.time_ms, r.operation, r.key_id, r.outcome),
        Stored::V2(r) => AuditEvent {
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
        },
        Stored::Unreadable => bare_event(seq, 0, "unreadable".to_owned(), None, "unreadable".to_owned()),
    }
}

impl Store {
    fn v1_mac(&self, uid: &TenantUid, seq: u64, prev: &[u8; 32], record: &RecordV1) -> [u8; 32] {
        let content = layout::encode(&(
            uid.as_bytes(),
            seq,
            prev,
            record.time_ms,
            &record.operation,
            &record.key_id,
            &record.outcome,
        ));
        self.system.tag(b"audit", &content).0
    }

    fn v2_mac(&self, uid: &TenantUid, seq: u64, prev: &[u8; 32], record: &RecordV2) -> [u8; 32] {
        let mut unsigned = record.clone();
        unsigned.mac = [0; 32];
        let content = layout::encode(&(uid.as_bytes(), seq, prev, &unsigned));
        self.system.tag(b"audit-v2", &content).0
    }

    fn stored_mac(&self, uid: &TenantUid, seq: u64, prev: &[u8; 32], stored: &Stored) -> [u8; 32] {
        match stored {
            Stored::V1(r) => self.v1_mac(uid, seq, prev, r),
            Stored::V2(r) => self.v2_mac(uid, seq, prev, r),
            // Nothing matches: `mac()` is zero and the computed MAC never is (but compare anyway).
            Stored::Unreadable => [0xff; 32],
        }
    }

    fn checkpoint_mac(&self, uid: &TenantUid, checkpoint: &Checkpoint) -> [u8; 32] {
        let content = layout::encode(&(
            uid.as_bytes(),
            checkpoint.first_seq,
            checkpoint.prev_mac,
            checkpoint.pruned_at_ms,
        ));
        self.system.tag(b"audit-checkpoint", &content).0
    }

    /// The keyed hash that stands for `value` of kind `subject` in the tenant's events. An operator
    /// (or the tenant, through the admin plane) computes it to find the events about a known value.
    pub fn audit_subject_hash(&self, uid: TenantUid, subject: Subject, value: &[u8]) -> SubjectHash {
        let tag =
            self.system.tag(b"audit-subject", &layout::encode(&(uid.as_bytes(), subject.domain(), value)));
        let mut out = [0u8; 16];
        out.copy_from_slice(&tag.0[..16]);
        SubjectHash(out)
    }

    fn query_hash(&self, uid: TenantUid, query: &[f32]) -> SubjectHash {
        let bytes: Vec<u8> = query.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.audit_subject_hash(uid, Subject::Query, &bytes)
    }

    /// The next sequence number of the tenant's chain and the MAC of its last event, from the
    /// database (the last stored event, or the checkpoint of a chain pruned to nothing).
    fn audit_head_stored(&self, uid: &TenantUid) -> Result<(u64, [u8; 32])> {
        let sys = self.sys()?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_range(rocksdb::PrefixRange(tenant_prefix(uid)));
        match self.db.iterator_cf_opt(&sys, ro, IteratorMode::End).next() {
            None => Ok(self.audit_checkpoint(uid)?.map_or((0, [0; 32]), |c| (c.first_seq, c.prev_mac))),
            Some(item) => {
                let (key, value) = item?;
                let seq = layout::be_u64(&key[AUDIT_PREFIX.len() + 16..])?;
                Ok((seq + 1, Stored::decode(&value).mac()))
            }
        }
    }

    fn audit_checkpoint(&self, uid: &TenantUid) -> Result<Option<Checkpoint>> {
        let sys = self.sys()?;
        match self.db.get_cf(&sys, checkpoint_key(uid))? {
            None => Ok(None),
            Some(bytes) => Ok(Some(layout::decode(&bytes, "audit checkpoint")?)),
        }
    }

    fn head_of(
        &self,
        heads: &mut HashMap<TenantUid, (u64, [u8; 32])>,
        uid: &TenantUid,
    ) -> Result<(u64, [u8; 32])> {
        if let Some(head) = heads.get(uid) {
            return Ok(*head);
        }
        let head = self.audit_head_stored(uid)?;
        heads.insert(*uid, head);
        Ok(head)
    }

    fn put_event(
        &self,
        batch: &mut WriteBatch,
        uid: &TenantUid,
        (seq, prev): (u64, [u8; 32]),
        mut record: RecordV2,
    ) -> Result<[u8; 32]> {
        record.mac = self.v2_mac(uid, seq, &prev, &record);
        let mut value = vec![EVENT_V2];
        value.extend_from_slice(&layout::encode(&record));
        batch.put_cf(&self.sys()?, audit_key(uid, seq), value);
        Ok(record.mac)
    }

    pub(crate) fn admin_record(operation: &str, key_id: Option<&str>) -> RecordV2 {
        RecordV2 {
            time_ms: now_ms(),
            operation: operation.to_owned(),
            key_id: key_id.map(str::to_owned),
            outcome: "ok".to_owned(),
            key_generation: None,
            principal: None,
            collection: None,
            query: None,
            documents: Vec::new(),
            policy_version: None,
            note: None,
            mac: [0; 32],
        }
    }

    /// Adds the next event of the tenant's chain to `batch`. The caller commits the batch while it
    /// holds the returned slot, so that no other event takes the same place.
    pub(crate) fn audit_into(
        &self,
        batch: &mut WriteBatch,
        uid: &TenantUid,
        operation: &str,
        key_id: Option<&str>,
    ) -> Result<AuditSlot<'_>> {
        self.audit_record_into(batch, uid, Self::admin_record(operation, key_id))
    }

    /// As [`Store::audit_into`], with a record the caller filled in.
    pub(crate) fn audit_record_into(
        &self,
        batch: &mut WriteBatch,
        uid: &TenantUid,
        record: RecordV2,
    ) -> Result<AuditSlot<'_>> {
        let mut heads = self.audit_heads.0.lock();
        let head = self.head_of(&mut heads, uid)?;
        self.put_event(batch, uid, head, record)?;
        Ok(AuditSlot { heads, uid: *uid })
    }

    /// Appends one administrative event on its own (fsynced).
    pub(crate) fn audit(&self, uid: &TenantUid, operation: &str, key_id: Option<&str>) -> Result<()> {
        let mut batch = WriteBatch::default();
        let _slot = self.audit_into(&mut batch, uid, operation, key_id)?;
        self.sys_write(batch)
    }

    /// Appends an access event to the tenant's chain: hashes its values, chains it, and writes it
    /// through the write-ahead log without waiting for an fsync (a power loss may lose the last
    /// events, never reorder them; a process crash loses none).
    pub fn audit_access(&self, uid: TenantUid, event: &AccessEvent<'_>) -> Result<()> {
        let record = RecordV2 {
            time_ms: now_ms(),
            operation: event.operation.to_owned(),
            key_id: event.key_id.map(str::to_owned),
            outcome: event.outcome.to_owned(),
            key_generation: event.key_generation,
            principal: event
                .principal
                .map(|p| self.audit_subject_hash(uid, Subject::Principal, p.as_bytes()).0),
            collection: event
                .collection
                .map(|c| self.audit_subject_hash(uid, Subject::Collection, c.as_bytes()).0),
            query: event.query.map(|q| self.query_hash(uid, q).0),
            documents: event
                .documents
                .iter()
                .take(MAX_AUDITED_DOCUMENTS)
                .map(|d| self.audit_subject_hash(uid, Subject::Document, d.as_bytes()).0)
                .collect(),
            policy_version: event.policy_version,
            note: None,
            mac: [0; 32],
        };
        let mut heads = self.audit_heads.0.lock();
        let (seq, prev) = self.head_of(&mut heads, &uid)?;
        let mut batch = WriteBatch::default();
        let mac = self.put_event(&mut batch, &uid, (seq, prev), record)?;
        let mut wo = WriteOptions::default();
        wo.set_sync(false);
        match self.db.write_opt(batch, &wo) {
            Ok(()) => {
                heads.insert(uid, (seq + 1, mac));
                Ok(())
            }
            Err(e) => {
                heads.remove(&uid);
                Err(e.into())
            }
        }
    }

    /// Calls `visit` with each stored event from `from_seq` on, in order, until it returns false.
    fn visit_records(
        &self,
        uid: &TenantUid,
        from_seq: u64,
        mut visit: impl FnMut(u64, Stored) -> bool,
    ) -> Result<()> {
        let sys = self.sys()?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_range(audit_key(uid, from_seq)..[tenant_prefix(uid), vec![0xff; 9]].concat());
        for item in self.db.iterator_cf_opt(&sys, ro, IteratorMode::Start) {
            let (key, value) = item?;
            let seq =
                layout::be_u64(key.get(AUDIT_PREFIX.len() + 16..).ok_or(StorageError::Codec("audit key"))?)?;
            if !visit(seq, Stored::decode(&value)) {
                break;
            }
        }
        Ok(())
    }

    fn audit_records(&self, uid: &TenantUid, from_seq: u64) -> Result<Vec<(u64, Stored)>> {
        let mut out = Vec::new();
        self.visit_records(uid, from_seq, |seq, stored| {
            out.push((seq, stored));
            true
        })?;
        Ok(out)
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
        self.visit_records(&uid, from_seq, |seq, stored| {
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

    /// All of a tenant's audit events, oldest first.
    pub fn audit_events(&self, uid: TenantUid) -> Result<Vec<AuditEvent>> {
        Ok(self.audit_page(uid, 0, 0, usize::MAX)?.0)
    }

    /// Every tenant uid that has an audit chain, including deleted tenants and the system chain (the
    /// zero uid).
    pub fn audit_tenants(&self) -> Result<Vec<TenantUid>> {
        let sys = self.sys()?;
        let mut out: Vec<TenantUid> = Vec::new();
        let mut from = AUDIT_PREFIX.to_vec();
        loop {
            let mut ro = ReadOptions::default();
            ro.set_iterate_range(rocksdb::PrefixRange(AUDIT_PREFIX));
            let mut iter =
                self.db.iterator_cf_opt(&sys, ro, IteratorMode::From(&from, rocksdb::Direction::Forward));
            let Some(item) = iter.next() else { break };
            let (key, _) = item?;
            let raw: [u8; 16] = key
                .get(AUDIT_PREFIX.len()..AUDIT_PREFIX.len() + 16)
                .and_then(|b| b.try_into().ok())
                .ok_or(StorageError::Codec("audit key"))?;
            out.push(TenantUid::from_bytes(raw));
            // The next uid starts after every sequence number of this one.
            from = [AUDIT_PREFIX, &raw, &[0xff; 9]].concat();
        }
        Ok(out)
    }

    /// Recomputes the tenant's chain (from its checkpoint, if it was pruned) and reports the first
    /// event that does not hold: a MAC that does not match its content and predecessor, or a gap in
    /// the sequence. A checkpoint whose own MAC does not hold is reported as broken at its first
    /// sequence number.
    pub fn audit_verify(&self, uid: TenantUid) -> Result<AuditCheck> {
        let (first_seq, mut prev) = match self.audit_checkpoint(&uid)? {
            None => (0, [0u8; 32]),
            Some(c) => {
                if !constant_time_eq(&self.checkpoint_mac(&uid, &c), &c.mac) {
                    return Ok(AuditCheck {
                        events: 0,
                        first_seq: c.first_seq,
                        first_broken: Some(c.first_seq),
                    });
                }
                (c.first_seq, c.prev_mac)
            }
        };
        // Read from the start, not from the checkpoint: an event left below it is a break too.
        let records = self.audit_records(&uid, 0)?;
        let events = records.len() as u64;
        for (expected, (seq, stored)) in (first_seq..).zip(&records) {
            if *seq != expected
                || !constant_time_eq(&self.stored_mac(&uid, *seq, &prev, stored), &stored.mac())
            {
                return Ok(AuditCheck { events, first_seq, first_broken: Some(expected.min(*seq)) });
            }
            prev = stored.mac();
        }
        Ok(AuditCheck { events, first_seq, first_broken: None })
    }

    /// Deletes the tenant's events older than `before_ms`, keeping at least the newest one, and
    /// leaves a checkpoint so that the rest still verifies. Returns how many were deleted. The
    /// deletion and the checkpoint are one fsynced batch.
    pub fn audit_prune(&self, uid: TenantUid, before_ms: u64) -> Result<u64> {
        let mut heads = self.audit_heads.0.lock();
        let head = self.head_of(&mut heads, &uid)?;
        let records = self.audit_records(&uid, 0)?;
        let Some(&(first, _)) = records.first() else { return Ok(0) };
        let time = |s: &Stored| match s {
            Stored::V1(r) => r.time_ms,
            Stored::V2(r) => r.time_ms,
            // An unreadable event is never pruned: it stays for verification to report.
            Stored::Unreadable => u64::MAX,
        };
        // Events are appended in time order; keep the newest event whatever its age, so the chain
        // has an end to append to and to verify.
        let cut = records
            .iter()
            .take(records.len() - 1)
            .take_while(|(_, s)| time(s) < before_ms)
            .last()
            .map(|(seq, s)| (seq + 1, s.mac()));
        let Some((first_kept, prev_mac)) = cut else { return Ok(0) };
        let mut checkpoint =
            Checkpoint { first_seq: first_kept, prev_mac, pruned_at_ms: now_ms(), mac: [0; 32] };
        checkpoint.mac = self.checkpoint_mac(&uid, &checkpoint);
        let sys = self.sys()?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(&sys, audit_key(&uid, first), audit_key(&uid, first_kept));
        batch.put_cf(&sys, checkpoint_key(&uid), layout::encode(&checkpoint));
        self.sys_write(batch)?;
        heads.insert(uid, head);
        Ok(first_kept - first)
    }
}
