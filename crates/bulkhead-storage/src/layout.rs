//! Every byte layout the storage crate writes: record keys, column family names and the records
//! inside sealed values. Nothing here is plaintext tenant data: keys hold opaque ids, keyed hashes
//! and small integers; records are sealed before they are written.
//!
//! System column family `sys` (registry and keyring):
//!
//! ```text
//! key                                              value
//! "meta/format"                                    u32 BE storage format version
//! "meta/master-version"                            u32 BE current master key version
//! "meta/master-check/" u32 BE                      32-byte master key check value
//! "keyring/" owner(16) "/" generation u32 BE       wrapped data key (generation 0: naming key)
//! "keyring/" owner(16) "/write"                    control: u32 BE write generation
//! "enc/" owner(16) generation u32 BE               control: u64 BE reserved encryption count (an
//!                                                  upper bound)
//! "tenant/" tag(32)                                sealed TenantRecord (system cipher, Registry)
//! "apikey/" key id(16)                             sealed ApiKeyRecord (system cipher, Registry)
//! "policy/" uid(16)                                sealed VersionedPolicy (policy.rs)
//! "rotate/" owner(16)                              control: RotationRecord (a generation, counts and
//!                                                  a record key, which holds only a uid and tags)
//! "audit/", "auditck/", "audithead/", "auditreg/", "auditchains"
//!                                                  the audit trail (audit.rs)
//! ```
//!
//! A *control* record is in plain text (nothing in it is tenant data) but authenticated, from
//! storage format 2 on: its value is the payload followed by a 32-byte tag, an HMAC under the
//! owner's naming key over the record key and the payload ([`control_value`]). An edited write
//! generation, encryption count or rotation cursor is then `KeyringCorrupt`, not a silently stalled
//! rotation or a nonce counter set back. Format 1 stored the bare payload; opening such a directory
//! tags every control record once (`Store::open`).
//!
//! The owner of the registry's own keys is sixteen zero bytes. Tenant column family `t-<32 hex>`,
//! named after the tenant's random uid; every key starts with the uid so that tenants can later share
//! a column family:
//!
//! ```text
//! key                                              value
//! uid(16) 'C' tag(32)                              sealed CollectionRecord (Payloads)
//! uid(16) 'K'                                      u32 BE next collection number
//! uid(16) 'S'                                      u64 BE last write sequence
//! uid(16) 'N' coll u32 BE                          u64 BE number of points in the collection
//! uid(16) 'P' coll u32 BE tag(32)                  sealed PointPayload (Payloads)
//! uid(16) 'V' coll u32 BE tag(32)                  sealed vector, f32 little-endian (Vectors)
//! uid(16) 'J' coll u32 BE                          sealed IndexSegmentsRecord (IndexSnapshots)
//! uid(16) 'I' coll u32 BE segment u64 BE chunk u32 BE
//!                                                  sealed chunk of an index snapshot (IndexSnapshots)
//! ```
//!
//! A collection's index snapshot is a list of segments, each an opaque byte string (the query
//! crate's serialised segment) cut into chunks of at most [`INDEX_CHUNK_BYTES`]. The head names the
//! segment ids that are current and how many chunks and bytes each has (format 1 heads named exactly
//! one; they still load); because every sealed value is bound to its full key, a chunk cannot be
//! moved to another tenant, collection, segment or position, and a missing one is noticed.
//!
//! `tag` is an HMAC-SHA256 under the tenant's naming key (collection names in domain "collection",
//! document ids in domain "doc" with the collection number prepended), so record keys reveal neither
//! names nor ids, and equal ids in two tenants have unrelated keys.

use crate::error::{Result, StorageError};
use crate::ids::TenantUid;
use bulkhead_crypto::RecordTag;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The storage format version written to `meta/format`. Format 2 authenticates the keyring's
/// control records and anchors the audit chains; a format-1 directory is migrated when it opens.
pub(crate) const STORAGE_FORMAT: u32 = 2;

/// The format before control records were authenticated and audit chains anchored.
pub(crate) const STORAGE_FORMAT_1: u32 = 1;

/// The domain of control-record tags.
const CONTROL_DOMAIN: &[u8] = b"keyring-control";

/// A control record's stored value: `payload` then its tag under `owner`'s naming key.
pub(crate) fn control_value(owner: &bulkhead_crypto::OwnerCipher, key: &[u8], payload: &[u8]) -> Vec<u8> {
    let tag = owner.tag(CONTROL_DOMAIN, &encode(&(key, payload)));
    [payload, &tag.0].concat()
}

/// The payload of a control record whose tag holds under `owner`'s naming key, or
/// [`StorageError::KeyringCorrupt`].
pub(crate) fn open_control(
    owner: &bulkhead_crypto::OwnerCipher,
    key: &[u8],
    value: &[u8],
) -> Result<Vec<u8>> {
    let (payload, tag) = split_control(value)?;
    let expected = owner.tag(CONTROL_DOMAIN, &encode(&(key, payload)));
    if !bulkhead_crypto::constant_time_eq(&expected.0, tag) {
        return Err(StorageError::KeyringCorrupt);
    }
    Ok(payload.to_vec())
}

/// A control record's payload and tag, not yet checked (to read the write generation an owner's
/// cipher is built from, before the cipher exists to check it).
pub(crate) fn split_control(value: &[u8]) -> Result<(&[u8], &[u8])> {
    if value.len() < 32 {
        return Err(StorageError::KeyringCorrupt);
    }
    Ok(value.split_at(value.len() - 32))
}

pub(crate) const SYS_CF: &str = "sys";
pub(crate) const SYSTEM_OWNER: [u8; 16] = [0; 16];

pub(crate) const META_FORMAT: &[u8] = b"meta/format";
pub(crate) const META_MASTER_VERSION: &[u8] = b"meta/master-version";
pub(crate) const TENANT_PREFIX: &[u8] = b"tenant/";
pub(crate) const APIKEY_PREFIX: &[u8] = b"apikey/";

pub(crate) fn master_check_key(version: u32) -> Vec<u8> {
    concat(&[b"meta/master-check/", &version.to_be_bytes()])
}

pub(crate) fn keyring_key(owner: &[u8; 16], generation: u32) -> Vec<u8> {
    concat(&[b"keyring/", owner, b"/", &generation.to_be_bytes()])
}

pub(crate) fn keyring_write_key(owner: &[u8; 16]) -> Vec<u8> {
    concat(&[b"keyring/", owner, b"/write"])
}

pub(crate) fn encryption_count_key(owner: &[u8; 16], generation: u32) -> Vec<u8> {
    concat(&[b"enc/", owner, &generation.to_be_bytes()])
}

pub(crate) fn rotation_key(owner: &[u8; 16]) -> Vec<u8> {
    concat(&[b"rotate/", owner])
}

/// Every keyring entry of an owner (its wrapped keys and its write generation) starts with this.
pub(crate) fn keyring_prefix(owner: &[u8; 16]) -> Vec<u8> {
    concat(&[b"keyring/", owner, b"/"])
}

pub(crate) fn tenant_key(tag: &RecordTag) -> Vec<u8> {
    concat(&[TENANT_PREFIX, &tag.0])
}

pub(crate) fn apikey_key(key_id: &[u8; 16]) -> Vec<u8> {
    concat(&[APIKEY_PREFIX, key_id])
}

/// The name of a tenant's own column family: opaque, derived from its random uid.
pub(crate) fn tenant_cf_name(uid: &TenantUid) -> String {
    format!("t-{}", hex::encode(uid.as_bytes()))
}

/// Kinds of record in a tenant's key space.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Collection = b'C' as isize,
    NextCollection = b'K' as isize,
    Sequence = b'S' as isize,
    Count = b'N' as isize,
    Payload = b'P' as isize,
    Vector = b'V' as isize,
    IndexChunk = b'I' as isize,
    IndexHead = b'J' as isize,
}

/// The purpose a tenant record's value is sealed under, from its key's kind byte; `None` for the
/// plain counters (`K`, `S`, `N`).
pub(crate) fn sealed_purpose(key: &[u8]) -> Option<bulkhead_crypto::Purpose> {
    use bulkhead_crypto::Purpose;
    match *key.get(16)? {
        b'C' | b'P' => Some(Purpose::Payloads),
        b'V' => Some(Purpose::Vectors),
        b'I' | b'J' => Some(Purpose::IndexSnapshots),
        _ => None,
    }
}

/// The largest plaintext chunk of an index snapshot.
pub(crate) const INDEX_CHUNK_BYTES: usize = 1 << 20;

/// Builds tenant record keys under one uid prefix.
pub(crate) struct TenantKeys {
    prefix: [u8; 16],
}

impl TenantKeys {
    pub(crate) fn new(uid: &TenantUid) -> TenantKeys {
        TenantKeys { prefix: *uid.as_bytes() }
    }

    pub(crate) fn singleton(&self, kind: Kind) -> Vec<u8> {
        concat(&[&self.prefix, &[kind as u8]])
    }

    pub(crate) fn collection(&self, tag: &RecordTag) -> Vec<u8> {
        concat(&[&self.prefix, &[Kind::Collection as u8], &tag.0])
    }

    pub(crate) fn count(&self, coll: u32) -> Vec<u8> {
        concat(&[&self.prefix, &[Kind::Count as u8], &coll.to_be_bytes()])
    }

    /// The key of a point's payload or vector record.
    pub(crate) fn point(&self, kind: Kind, coll: u32, tag: &RecordTag) -> Vec<u8> {
        concat(&[&self.prefix, &[kind as u8], &coll.to_be_bytes(), &tag.0])
    }

    /// The head record of a collection's index snapshot.
    pub(crate) fn index_head(&self, coll: u32) -> Vec<u8> {
        concat(&[&self.prefix, &[Kind::IndexHead as u8], &coll.to_be_bytes()])
    }

    /// The key of chunk `chunk` of index snapshot `segment` of collection `coll`.
    pub(crate) fn index_chunk(&self, coll: u32, segment: u64, chunk: u32) -> Vec<u8> {
        concat(&[
            &self.prefix,
            &[Kind::IndexChunk as u8],
            &coll.to_be_bytes(),
            &segment.to_be_bytes(),
            &chunk.to_be_bytes(),
        ])
    }

    /// The half-open key range holding every record of `kind` in collection `coll`.
    pub(crate) fn point_range(&self, kind: Kind, coll: u32) -> (Vec<u8>, Vec<u8>) {
        let start = concat(&[&self.prefix, &[kind as u8], &coll.to_be_bytes()]);
        let end = concat(&[&self.prefix, &[kind as u8], &(u64::from(coll) + 1).to_be_bytes()[4..]]);
        if coll == u32::MAX {
            return (start, concat(&[&self.prefix, &[kind as u8 + 1]]));
        }
        (start, end)
    }

    /// The half-open range of every record of `kind` (any collection).
    pub(crate) fn kind_range(&self, kind: Kind) -> (Vec<u8>, Vec<u8>) {
        (concat(&[&self.prefix, &[kind as u8]]), concat(&[&self.prefix, &[kind as u8 + 1]]))
    }

    /// Reads the tag back out of a point record key.
    pub(crate) fn tag_of_point_key(key: &[u8]) -> Option<RecordTag> {
        let tag: [u8; 32] = key.get(16 + 1 + 4..)?.try_into().ok()?;
        Some(RecordTag(tag))
    }
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

pub(crate) fn be_u32(bytes: &[u8]) -> Result<u32> {
    Ok(u32::from_be_bytes(bytes.try_into().map_err(|_| StorageError::Codec("u32"))?))
}

pub(crate) fn be_u64(bytes: &[u8]) -> Result<u64> {
    Ok(u64::from_be_bytes(bytes.try_into().map_err(|_| StorageError::Codec("u64"))?))
}

/// How a tenant's records are placed. Only the own-column-family placement exists today; the tier
/// issue adds a shared one, which is why every record key already carries the uid prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Placement {
    /// The tenant has its own column family.
    OwnColumnFamily,
}

/// A tenant's registry entry (sealed under the registry's keys).
#[derive(Serialize, Deserialize)]
pub(crate) struct TenantRecord {
    pub(crate) name: String,
    pub(crate) uid: [u8; 16],
    pub(crate) created_ms: u64,
    pub(crate) placement: Placement,
}

/// An API key's registry entry. The secret itself is never stored, only its keyed hash.
#[derive(Serialize, Deserialize)]
pub(crate) struct ApiKeyRecord {
    pub(crate) tenant_uid: [u8; 16],
    pub(crate) secret_tag: [u8; 32],
    pub(crate) role: crate::scope::Role,
    pub(crate) label: String,
    pub(crate) created_ms: u64,
    pub(crate) expires_ms: Option<u64>,
    pub(crate) revoked: bool,
    pub(crate) binding: crate::scope::KeyBinding,
}

/// A collection's configuration (sealed: its name is tenant data).
#[derive(Serialize, Deserialize)]
pub(crate) struct CollectionRecord {
    pub(crate) name: String,
    pub(crate) number: u32,
    pub(crate) dimension: u32,
    pub(crate) metric: crate::Metric,
    pub(crate) created_ms: u64,
}

/// One segment's snapshot: its id (below 2^63), how many chunks and bytes it has. Format 1 heads
/// were exactly this record, naming the one current segment.
#[derive(Serialize, Deserialize)]
pub(crate) struct IndexHeadRecord {
    pub(crate) segment: u64,
    pub(crate) chunks: u32,
    pub(crate) bytes: u64,
}

/// Which segment snapshots of a collection are current (sealed under the index-snapshot key at
/// the head key):
///
/// ```text
/// field      encoding (postcard)
/// marker     varint u64, always u64::MAX (a format-1 head starts with a segment id < 2^63 here)
/// segments   varint length, then one IndexHeadRecord each
/// ```
#[derive(Serialize, Deserialize)]
pub(crate) struct IndexSegmentsRecord {
    marker: u64,
    segments: Vec<IndexHeadRecord>,
}

impl IndexSegmentsRecord {
    const MARKER: u64 = u64::MAX;

    pub(crate) fn new(segments: Vec<IndexHeadRecord>) -> IndexSegmentsRecord {
        IndexSegmentsRecord { marker: Self::MARKER, segments }
    }

    /// Decodes a head of either format: a list (this record) or a format-1 single segment.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<IndexHeadRecord>> {
        match postcard::from_bytes::<IndexSegmentsRecord>(bytes) {
            Ok(record) if record.marker == Self::MARKER => Ok(record.segments),
            _ => Ok(vec![decode::<IndexHeadRecord>(bytes, "index head")?]),
        }
    }
}

/// A tenant-key rotation in progress: every record sealed under an older generation is re-sealed
/// under `target`, in key order; `after` is the last key done.
#[derive(Serialize, Deserialize)]
pub(crate) struct RotationRecord {
    pub(crate) target: u32,
    pub(crate) after: Option<Vec<u8>>,
    pub(crate) done: u64,
    pub(crate) total: u64,
}

/// Everything about a point except its vector (sealed under the payload key).
#[derive(Serialize, Deserialize)]
pub(crate) struct PointPayloadRecord {
    pub(crate) id: String,
    pub(crate) text: String,
    pub(crate) metadata: BTreeMap<String, crate::MetaValue>,
    pub(crate) source_uri: Option<String>,
    pub(crate) acl: crate::Acl,
    pub(crate) version: u64,
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("records serialise into memory")
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &'static str) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|_| StorageError::Codec(what))
}

/// Encodes a vector as little-endian f32s.
pub(crate) fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Decodes little-endian f32s.
pub(crate) fn decode_vector(bytes: &[u8]) -> Result<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(StorageError::Codec("vector"));
    }
    Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}
