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
//! Nothing in the chain itself shows that its newest events, or the whole chain, were removed. So
//! each chain has an *anchor*, written in the same batch as every event: the next sequence number and
//! the last event's MAC, MAC'd. A chain is also *registered* when its first event is written, and the
//! number of registered chains is kept in one MAC'd record: removing events from the end, a chain's
//! anchor, or a whole chain with its checkpoint, anchor and registration, is each found by
//! [`Store::audit_verify`] or [`Store::audit_directory_check`]. (Replacing the whole system column
//! family with an older copy of itself is not: that needs an anchor outside the data directory.)
//!
//! Appends to one chain are ordered by that chain's own lock; chains do not wait for each other.
//!
//! Layout (system column family):
//!
//! ```text
//! key                                   value
//! "audit/" uid(16) seq u64 BE           event: a bare postcard RecordV1 (written before access events
//!                                       existed; its first byte, a varint time in ms, is >= 0x80), or
//!                                       the byte EVENT_V2 then a postcard RecordV2
//! "auditck/" uid(16)                    Checkpoint: first kept seq, its predecessor's MAC, time, MAC
//! "audithead/" uid(16)                  Anchor: next seq, last event's MAC, MAC (storage format 2)
//! "auditreg/" uid(16)                   32-byte MAC of the uid: the chain exists (storage format 2)
//! "auditchains"                         ChainCount: how many chains are registered, MAC
//! ```

use crate::error::{Result, StorageError};
use crate::ids::TenantUid;
use crate::layout;
use crate::store::{Store, now_ms};
use bulkhead_crypto::constant_time_eq;
use parking_lot::{Mutex, MutexGuard};
use rocksdb::{IteratorMode, ReadOptions, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

const AUDIT_PREFIX: &[u8] = b"audit/";
const CHECKPOINT_PREFIX: &[u8] = b"auditck/";
const ANCHOR_PREFIX: &[u8] = b"audithead/";
const REGISTRATION_PREFIX: &[u8] = b"auditreg/";
const CHAINS_KEY: &[u8] = b"auditchains";
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

fn anchor_key(uid: &TenantUid) -> Vec<u8> {
    [ANCHOR_PREFIX, uid.as_bytes()].concat()
}

fn registration_key(uid: &TenantUid) -> Vec<u8> {
    [REGISTRATION_PREFIX, uid.as_bytes()].concat()
}

/// The key of the record that counts the registered chains.
pub(crate) fn chains_key() -> &'static [u8] {
    CHAINS_KEY
}

fn chain_count_mac(system: &bulkhead_crypto::OwnerCipher, chains: u64) -> [u8; 32] {
    system.tag(b"audit-chain-count", &chains.to_be_bytes()).0
}

/// The authenticated record saying `chains` chains are registered, under the registry's cipher.
pub(crate) fn chain_count_value(system: &bulkhead_crypto::OwnerCipher, chains: u64) -> Vec<u8> {
    layout::encode(&ChainCount { chains, mac: chain_count_mac(system, chains) })
}

/// The end of a chain: the sequence number the next event takes and the MAC of the last one.
type Head = (u64, [u8; 32]);

/// The anchor of a chain's end, rewritten with every event.
#[derive(Serialize, Deserialize)]
struct Anchor {
    next_seq: u64,
    last_mac: [u8; 32],
    mac: [u8; 32],
}

/// How many chains are registered.
#[derive(Serialize, Deserialize)]
struct ChainCount {
    chains: u64,
    mac: [u8; 32],
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
    pub(crate) outcome: String,
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
    /// A note (for example how many like refusals were folded into this event).
    pub note: Option<&'a str>,
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
    /// The sequence number of the first event whose MAC or position does not hold, if any (for a
    /// chain cut short, the first missing one).
    pub first_broken: Option<u64>,
    /// What does not hold there: `mac` (an event altered), `sequence` (an event missing, moved or
    /// out of place), `checkpoint` (a forged checkpoint), `truncated` (events removed from the
    /// end), `anchor` (the chain's anchor altered or removed), `unregistered` (a chain that was never
    /// registered). `None` when intact.
    pub reason: Option<&'static str>,
}

/// The result of checking the directory of chains ([`Store::audit_directory_check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryCheck {
    /// Chains registered (one record each).
    pub registered: u64,
    /// Chains the authenticated count says there are (`None` if the count is missing or altered).
    pub expected: Option<u64>,
}

impl DirectoryCheck {
    /// Whether every chain that was ever registered is still there.
    pub fn intact(&self) -> bool {
        self.expected == Some(self.registered)
    }
}

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
    fn chain(&self, uid: &TenantUid) -> Arc<Mutex<Option<Head>>> {
        Arc::clone(self.chains.lock().entry(*uid).or_default())
    }
}

/// Held while a batch with an audit event is committed: no other event of the same chain can take
/// the same place meanwhile. Dropped without [`AuditSlot::committed`], it forgets the cached end, so
/// the next append reads it back from the anchor whether or not the batch committed.
pub(crate) struct AuditSlot<'s> {
    head: parking_lot::ArcMutexGuard<parking_lot::RawMutex, Option<Head>>,
    next: Head,
    /// The registration lock and the new count, when this event starts a chain.
    registration: Option<(MutexGuard<'s, Option<u64>>, u64)>,
    committed: bool,
}

impl AuditSlot<'_> {
    /// The batch committed: the chain's end (and the chain count) are now what it wrote.
    pub(crate) fn committed(mut self) {
        self.committed = true;
    }
}

impl Drop for AuditSlot<'_> {
    fn drop(&mut self) {
        *self.head = self.committed.then_some(self.next);
        if let Some((count, new)) = &mut self.registration {
            **count = self.committed.then_some(*new);
        }
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

    fn anchor_mac(&self, uid: &TenantUid, (next_seq, last_mac): Head) -> [u8; 32] {
        self.system.tag(b"audit-anchor", &layout::encode(&(uid.as_bytes(), next_seq, last_mac))).0
    }

    fn registration_mac(&self, uid: &TenantUid) -> [u8; 32] {
        self.system.tag(b"audit-chain", uid.as_bytes()).0
    }

    fn chain_count_mac(&self, chains: u64) -> [u8; 32] {
        chain_count_mac(&self.system, chains)
    }

    /// The authenticated record of how many chains are registered.
    pub(crate) fn chain_count_record(&self, chains: u64) -> Vec<u8> {
        chain_count_value(&self.system, chains)
    }

    /// The anchor and registration records of a chain whose end is `head` (for the format-2
    /// migration, which anchors every chain as it finds it).
    pub(crate) fn anchor_records(&self, uid: &TenantUid, head: Head) -> [(Vec<u8>, Vec<u8>); 2] {
        let anchor = Anchor { next_seq: head.0, last_mac: head.1, mac: self.anchor_mac(uid, head) };
        [
            (anchor_key(uid), layout::encode(&anchor)),
            (registration_key(uid), self.registration_mac(uid).to_vec()),
        ]
    }

    /// The end of a chain as stored before anchors existed: after its last event, or at its
    /// checkpoint when pruning left none. `None` for a uid without a chain.
    pub(crate) fn unanchored_head(&self, uid: &TenantUid) -> Result<Option<Head>> {
        let sys = self.sys()?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_range(rocksdb::PrefixRange(tenant_prefix(uid)));
        match self.db.iterator_cf_opt(&sys, ro, IteratorMode::End).next() {
            None => Ok(self.audit_checkpoint(uid)?.map(|c| (c.first_seq, c.prev_mac))),
            Some(item) => {
                let (key, value) = item?;
                let seq = layout::be_u64(
                    key.get(AUDIT_PREFIX.len() + 16..).ok_or(StorageError::Codec("audit key"))?,
                )?;
                Ok(Some((seq + 1, Stored::decode(&value).mac())))
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

    /// The end of the tenant's chain from its anchor. A chain without an anchor is new only if
    /// nothing of it exists; an anchor that does not authenticate, or is missing from a chain that
    /// exists, is an integrity failure: appending would hide what was removed.
    fn stored_head(&self, uid: &TenantUid) -> Result<Head> {
        let sys = self.sys()?;
        if let Some(bytes) = self.db.get_cf(&sys, anchor_key(uid))? {
            let anchor: Anchor = layout::decode(&bytes, "audit anchor")?;
            let head = (anchor.next_seq, anchor.last_mac);
            if !constant_time_eq(&self.anchor_mac(uid, head), &anchor.mac) {
                return Err(StorageError::Integrity);
            }
            return Ok(head);
        }
        let registered = self.db.get_cf(&sys, registration_key(uid))?.is_some();
        if registered || self.unanchored_head(uid)?.is_some() {
            tracing::error!(tenant = %uid.short(), "an audit chain has lost its anchor; refusing to append to it");
            return Err(StorageError::Integrity);
        }
        Ok((0, [0; 32]))
    }

    /// The number of registered chains, from its authenticated record (0 if there is none yet).
    fn stored_chain_count(&self) -> Result<Option<u64>> {
        let Some(bytes) = self.db.get_cf(&self.sys()?, CHAINS_KEY)? else { return Ok(None) };
        let count: ChainCount = layout::decode(&bytes, "audit chain count")?;
        if !constant_time_eq(&self.chain_count_mac(count.chains), &count.mac) {
            return Err(StorageError::Integrity);
        }
        Ok(Some(count.chains))
    }

    fn put_event(
        &self,
        batch: &mut WriteBatch,
        uid: &TenantUid,
        (seq, prev): Head,
        mut record: RecordV2,
    ) -> Result<Head> {
        record.mac = self.v2_mac(uid, seq, &prev, &record);
        let mut value = vec![EVENT_V2];
        value.extend_from_slice(&layout::encode(&record));
        let sys = self.sys()?;
        batch.put_cf(&sys, audit_key(uid, seq), value);
        let next = (seq + 1, record.mac);
        let anchor = Anchor { next_seq: next.0, last_mac: next.1, mac: self.anchor_mac(uid, next) };
        batch.put_cf(&sys, anchor_key(uid), layout::encode(&anchor));
        Ok(next)
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

    /// As [`Store::audit_into`], with a record the caller filled in. The first event of a chain
    /// also registers the chain and counts it, in the same batch.
    pub(crate) fn audit_record_into(
        &self,
        batch: &mut WriteBatch,
        uid: &TenantUid,
        record: RecordV2,
    ) -> Result<AuditSlot<'_>> {
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
            batch.put_cf(&sys, registration_key(uid), self.registration_mac(uid));
            batch.put_cf(&sys, CHAINS_KEY, self.chain_count_record(chains + 1));
            *count = None;
            registration = Some((count, chains + 1));
        }
        let next = self.put_event(batch, uid, current, record)?;
        *head = None;
        Ok(AuditSlot { head, next, registration, committed: false })
    }

    /// Appends one administrative event on its own (fsynced).
    pub(crate) fn audit(&self, uid: &TenantUid, operation: &str, key_id: Option<&str>) -> Result<()> {
        let mut batch = WriteBatch::default();
        let slot = self.audit_into(&mut batch, uid, operation, key_id)?;
        self.sys_write(batch)?;
        slot.committed();
        Ok(())
    }

    /// The record of an access event: its values hashed, outcome and time filled in.
    pub(crate) fn access_record(&self, uid: TenantUid, event: &AccessEvent<'_>) -> RecordV2 {
        RecordV2 {
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
            note: event.note.map(str::to_owned),
            mac: [0; 32],
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
        let mut batch = WriteBatch::default();
        let slot = self.audit_record_into(&mut batch, &uid, record)?;
        let mut wo = WriteOptions::default();
        wo.set_sync(false);
        self.db.write_opt(batch, &wo)?;
        slot.committed();
        Ok(())
    }

    /// Calls `visit` with each stored event from `from_seq` on, in order, until it returns false,
    /// reading through `snapshot` if given (a consistent view across several reads).
    fn visit_records(
        &self,
        uid: &TenantUid,
        from_seq: u64,
        snapshot: Option<&rocksdb::SnapshotWithThreadMode<'_, rocksdb::DB>>,
        mut visit: impl FnMut(u64, Stored) -> bool,
    ) -> Result<()> {
        let sys = self.sys()?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_range(audit_key(uid, from_seq)..[tenant_prefix(uid), vec![0xff; 9]].concat());
        if let Some(snapshot) = snapshot {
            ro.set_snapshot(snapshot);
        }
        for item in self.db.iterator_cf_opt(&sys, ro, IteratorMode::Start) {
            let (key, value) = item?;
            let seq = key
                .get(AUDIT_PREFIX.len() + 16..)
                .filter(|rest| rest.len() == 8)
                .ok_or(StorageError::Codec("audit key"))
                .and_then(layout::be_u64)?;
            if !visit(seq, Stored::decode(&value)) {
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
    fn uids_under(&self, prefix: &[u8]) -> Result<Vec<TenantUid>> {
        let sys = self.sys()?;
        let mut out: Vec<TenantUid> = Vec::new();
        let mut from = prefix.to_vec();
        loop {
            let mut ro = ReadOptions::default();
            ro.set_iterate_range(rocksdb::PrefixRange(prefix));
            let mut iter =
                self.db.iterator_cf_opt(&sys, ro, IteratorMode::From(&from, rocksdb::Direction::Forward));
            let Some(item) = iter.next() else { break };
            let (key, _) = item?;
            let raw: [u8; 16] = key
                .get(prefix.len()..prefix.len() + 16)
                .and_then(|b| b.try_into().ok())
                .ok_or(StorageError::Codec("audit key"))?;
            out.push(TenantUid::from_bytes(raw));
            // The next uid starts after every key of this one.
            from = [prefix, &raw, &[0xff; 9]].concat();
        }
        Ok(out)
    }

    /// Every tenant uid that has an audit chain, including deleted tenants and the system chain (the
    /// zero uid): every registered chain, and any chain with events (registered or not).
    pub fn audit_tenants(&self) -> Result<Vec<TenantUid>> {
        let mut out = self.uids_under(REGISTRATION_PREFIX)?;
        out.extend(self.uids_under(AUDIT_PREFIX)?);
        out.sort_unstable_by_key(|uid| *uid.as_bytes());
        out.dedup();
        Ok(out)
    }

    /// Checks that every chain ever registered is still registered: the registrations are counted
    /// and compared with the authenticated count. A whole chain removed with its anchor and
    /// registration shows here (and [`Store::audit_tenants`] no longer lists it).
    pub fn audit_directory_check(&self) -> Result<DirectoryCheck> {
        let registered = self.uids_under(REGISTRATION_PREFIX)?.len() as u64;
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
        let checkpoint: Option<Checkpoint> = match snapshot.get_cf(&sys, checkpoint_key(&uid))? {
            None => None,
            Some(bytes) => match layout::decode::<Checkpoint>(&bytes, "audit checkpoint") {
                Ok(c) => Some(c),
                Err(_) => return broken(0, 0, 0, "checkpoint"),
            },
        };
        let (first_seq, mut prev) = match &checkpoint {
            None => (0, [0u8; 32]),
            Some(c) => {
                if !constant_time_eq(&self.checkpoint_mac(&uid, c), &c.mac) {
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
            } else if !constant_time_eq(&self.stored_mac(&uid, seq, &prev, &stored), &stored.mac()) {
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
        let registered = snapshot.get_cf(&sys, registration_key(&uid))?.is_some();
        let anchor = match snapshot.get_cf(&sys, anchor_key(&uid))? {
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
        if !constant_time_eq(&self.anchor_mac(&uid, head), &anchor.mac) {
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
            Checkpoint { first_seq: first_kept, prev_mac, pruned_at_ms: now_ms(), mac: [0; 32] };
        checkpoint.mac = self.checkpoint_mac(&uid, &checkpoint);
        let sys = self.sys()?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(&sys, audit_key(&uid, first), audit_key(&uid, first_kept));
        batch.put_cf(&sys, checkpoint_key(&uid), layout::encode(&checkpoint));
        self.sys_write(batch)?;
        Ok(first_kept - first)
    }
}
