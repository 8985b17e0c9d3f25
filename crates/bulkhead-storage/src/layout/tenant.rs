//! A tenant's own column family `t-<32 hex>`, named after the tenant's random uid; every key starts
//! with the uid so that tenants can later share a column family:
//!
//! ```text
//! key                                              value
//! uid(16) 'C' tag(32)                              sealed CollectionRecord (Payloads)
//! uid(16) 'K'                                      u32 BE next collection number
//! uid(16) 'S'                                      u64 BE last write sequence
//! uid(16) 'N' coll u32 BE                          u64 BE number of points in the collection
//! uid(16) 'B' coll u32 BE                          u64 BE stored bytes of the collection's points
//! uid(16) 'U'                                      UsageRecord: the tenant's points and stored bytes
//! uid(16) 'P' coll u32 BE tag(32)                  sealed PointPayloadRecord (Payloads)
//! uid(16) 'V' coll u32 BE tag(32)                  sealed vector, f32 little-endian (Vectors)
//! uid(16) 'J' coll u32 BE                          sealed IndexSegmentsRecord (IndexSnapshots)
//! uid(16) 'I' coll u32 BE segment u64 BE chunk u32 BE
//!                                                  sealed chunk of an index snapshot (IndexSnapshots)
//! ```
//!
//! `tag` is an HMAC-SHA256 under the tenant's naming key (collection names in domain `collection`,
//! document ids in domain `doc` with the collection number prepended, [`collection_tag`] and
//! [`doc_tag`]), so record keys reveal neither names nor ids, and equal ids in two tenants have
//! unrelated keys.
//!
//! The usage counters (`N`, `B`, `U`) are plain numbers, written in the batch of every write that
//! changes them, so they never disagree with the records after a crash. What a point counts as
//! stored bytes is [`stored_bytes`]. A tenant written before the counters existed has no `U` (nor
//! `B`) record: its first write counts its records and writes both in its batch.
//!
//! A collection's index snapshot is a list of segments, each an opaque byte string (the query
//! crate's serialised segment) cut into chunks of at most [`INDEX_CHUNK_BYTES`]. The head names the
//! segment ids that are current and how many chunks and bytes each has (format 1 heads named exactly
//! one; they still load); because every sealed value is bound to its full key, a chunk cannot be
//! moved to another tenant, collection, segment or position, and a missing one is noticed.

use super::{concat, decode};
use crate::error::{Result, StorageError};
use crate::ids::{CollectionName, DocId, TenantUid};
use crate::model::{Acl, MetaValue, Metric};
use bulkhead_crypto::{OwnerCipher, Purpose, RecordTag};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a tenant's column family name starts with (then its uid in hex).
const TENANT_CF_PREFIX: &str = "t-";

/// The column family of the tenants placed in the shared tier, each under its uid prefix.
pub(crate) const SHARED_CF: &str = "shared";

/// The keys from the first to (excluded) the last of a tenant's key space: every record key is the
/// uid, a kind byte (an ASCII letter) and more, so `uid 0xff` is above all of them.
pub(crate) fn tenant_key_range(uid: &TenantUid) -> (Vec<u8>, Vec<u8>) {
    (uid.as_bytes().to_vec(), [uid.as_bytes().as_slice(), &[0xff]].concat())
}

/// The name of a tenant's own column family: opaque, derived from its random uid.
pub(crate) fn tenant_cf_name(uid: &TenantUid) -> String {
    format!("{TENANT_CF_PREFIX}{}", hex::encode(uid.as_bytes()))
}

/// The uid a tenant column family is named after; `None` for other column families.
pub(crate) fn tenant_cf_uid(name: &str) -> Option<[u8; 16]> {
    let mut uid = [0u8; 16];
    hex::decode_to_slice(name.strip_prefix(TENANT_CF_PREFIX)?, &mut uid).ok()?;
    Some(uid)
}

/// Kinds of record in a tenant's key space.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Collection = b'C' as isize,
    NextCollection = b'K' as isize,
    Sequence = b'S' as isize,
    Count = b'N' as isize,
    CollectionBytes = b'B' as isize,
    Usage = b'U' as isize,
    Payload = b'P' as isize,
    Vector = b'V' as isize,
    IndexChunk = b'I' as isize,
    IndexHead = b'J' as isize,
}

/// The purpose a tenant record's value is sealed under, from its key's kind byte; `None` for the
/// plain counters (`K`, `S`, `N`, `B`, `U`).
pub(crate) fn sealed_purpose(key: &[u8]) -> Option<Purpose> {
    match *key.get(16)? {
        b'C' | b'P' => Some(Purpose::Payloads),
        b'V' => Some(Purpose::Vectors),
        b'I' | b'J' => Some(Purpose::IndexSnapshots),
        _ => None,
    }
}

/// The largest plaintext chunk of an index snapshot.
pub(crate) const INDEX_CHUNK_BYTES: usize = 1 << 20;

/// The tag that stands for a collection's name in its record key.
pub(crate) fn collection_tag(cipher: &OwnerCipher, name: &CollectionName) -> RecordTag {
    cipher.tag(b"collection", name.as_str().as_bytes())
}

/// The tag that stands for a document id in collection `collection`'s point keys.
pub(crate) fn doc_tag(cipher: &OwnerCipher, collection: u32, id: &DocId) -> RecordTag {
    cipher.tag(b"doc", &concat(&[&collection.to_be_bytes(), id.as_str().as_bytes()]))
}

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

    /// The stored bytes of collection `coll`'s points (see [`stored_bytes`]).
    pub(crate) fn collection_bytes(&self, coll: u32) -> Vec<u8> {
        concat(&[&self.prefix, &[Kind::CollectionBytes as u8], &coll.to_be_bytes()])
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

    /// Reads the collection number back out of a point record key (or a per-collection counter's).
    pub(crate) fn collection_of_key(key: &[u8]) -> Option<u32> {
        Some(u32::from_be_bytes(key.get(16 + 1..16 + 1 + 4)?.try_into().ok()?))
    }

    /// Reads the tag back out of a point record key.
    pub(crate) fn tag_of_point_key(key: &[u8]) -> Option<RecordTag> {
        let tag: [u8; 32] = key.get(16 + 1 + 4..)?.try_into().ok()?;
        Some(RecordTag(tag))
    }
}

/// A collection's configuration (sealed: its name is tenant data).
///
/// ```text
/// name        string
/// number      varint u32      its records' collection number, never reused
/// dimension   varint u32
/// metric      variant index   0 cosine, 1 dot, 2 l2
/// created_ms  varint u64
/// ```
#[derive(Serialize, Deserialize)]
pub(crate) struct CollectionRecord {
    pub(crate) name: String,
    pub(crate) number: u32,
    pub(crate) dimension: u32,
    pub(crate) metric: Metric,
    pub(crate) created_ms: u64,
}

/// Everything about a point except its vector (sealed under the payload key).
///
/// ```text
/// id          string
/// text        string
/// metadata    count, then (string, MetaValue) each, in key order; a MetaValue is a variant index
///             then 0 Keyword: string, 1 Keywords: counted strings, 2 Number: f64 LE, 3 Bool: 1 byte
/// source_uri  option, string
/// acl         variant index, fields   0 TenantWide, 1 Restricted { users, groups: counted strings }
/// version     varint u64              the write sequence that wrote it
/// ```
#[derive(Serialize, Deserialize)]
pub(crate) struct PointPayloadRecord {
    pub(crate) id: String,
    pub(crate) text: String,
    pub(crate) metadata: BTreeMap<String, MetaValue>,
    pub(crate) source_uri: Option<String>,
    pub(crate) acl: Acl,
    pub(crate) version: u64,
}

/// One segment's snapshot: its id (below 2^63), how many chunks and bytes it has. Format 1 heads
/// were exactly this record, naming the one current segment.
///
/// ```text
/// segment  varint u64
/// chunks   varint u32
/// bytes    varint u64
/// ```
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

/// What one stored record of a point (its payload or its vector) counts against its tenant's
/// `max_stored_bytes` quota: its plaintext, i.e. the encoded [`PointPayloadRecord`], or the vector's
/// 4 bytes a dimension. Read from the sealed value's length (no decryption), so a key rotation, which
/// re-seals the same plaintext, never changes it. A point's stored bytes are its two records'.
///
/// On disk a point takes these bytes plus, per record, the sealing overhead
/// ([`bulkhead_crypto::SEALED_OVERHEAD`], 34 bytes) and its key (53 bytes): 174 bytes a point more.
pub(crate) fn stored_bytes(sealed: &[u8]) -> Result<u64> {
    let plain = sealed.len().checked_sub(bulkhead_crypto::SEALED_OVERHEAD).ok_or(StorageError::Integrity)?;
    Ok(plain as u64)
}

/// A tenant's stored usage over all its collections (plain, at the `U` key): the points and their
/// [`stored_bytes`]. Absent for a tenant written before it existed.
///
/// ```text
/// offset  size  field
/// 0       8     points, u64 BE
/// 8       8     bytes, u64 BE
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct UsageRecord {
    pub(crate) points: u64,
    pub(crate) bytes: u64,
}

impl UsageRecord {
    pub(crate) fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.points.to_be_bytes());
        out[8..].copy_from_slice(&self.bytes.to_be_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<UsageRecord> {
        if bytes.len() != 16 {
            return Err(StorageError::Codec("usage"));
        }
        Ok(UsageRecord { points: super::be_u64(&bytes[..8])?, bytes: super::be_u64(&bytes[8..])? })
    }
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
