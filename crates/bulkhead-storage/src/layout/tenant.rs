//! A tenant's own column family `t-<32 hex>`, named after the tenant's random uid; every key starts
//! with the uid so that tenants can later share a column family:
//!
//! ```text
//! key                                              value
//! uid(16) 'C' tag(32)                              sealed CollectionRecord (Payloads)
//! uid(16) 'K'                                      u32 BE next collection number
//! uid(16) 'S'                                      u64 BE last write sequence
//! uid(16) 'N' coll u32 BE                          u64 BE number of points in the collection
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
    Payload = b'P' as isize,
    Vector = b'V' as isize,
    IndexChunk = b'I' as isize,
    IndexHead = b'J' as isize,
}

/// The purpose a tenant record's value is sealed under, from its key's kind byte; `None` for the
/// plain counters (`K`, `S`, `N`).
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
