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
//! The records, their keys and what each MAC covers are drawn in `layout/audit.rs`. Here: the
//! public types; `append.rs` (chain ends, pending appends, registrations), `read.rs` (paging and
//! the list of chains), `verify.rs` (a chain's and the directory's checks) and `prune.rs`.

mod append;
mod prune;
mod read;
mod verify;

pub(crate) use append::AuditHeads;

#[cfg(doc)]
use crate::store::Store;

/// The most document-id hashes one event keeps (a batch holds at most this many ids anyway).
pub const MAX_AUDITED_DOCUMENTS: usize = 1024;

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
