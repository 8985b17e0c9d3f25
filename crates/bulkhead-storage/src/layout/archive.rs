//! A tenant archive (`Store::export_tenant`, `Store::import_tenant`): a header, then sealed frames.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "BHTNTAR\0"
//! 8       4     archive format version, u32 BE (1)
//! 12      16    archive id (random)
//! 28      32    check value of the archive's key (ArchiveKey::check_value): which master key
//! 60      ...   frames, each: length u32 BE (at most MAX_SEALED_FRAME) | sealed frame
//! ```
//!
//! A sealed frame is `bulkhead-crypto`'s archive frame (nonce, AES-256-GCM ciphertext, tag) under
//! the archive's frame key, with associated data `header(60 bytes) | frame number u64 BE`: a frame
//! cut, altered, dropped, repeated or moved does not open, and neither does one of another archive.
//! A frame's plaintext (at most [`MAX_FRAME_PLAIN`]) is a run of postcard [`ArchiveEntry`]s; an
//! entry never spans two frames. The entries, in order:
//!
//! ```text
//! Manifest      once, first: name, source uid, times, write generation, policy, audit chain end
//! Key           the tenant's wrapped keys (generation 0: naming key), under the archive's KEK
//! Record        every tenant record but points, in key order: its key without the 16-byte uid,
//!               its value as stored (sealed records stay sealed under the tenant's own keys)
//! Point         a point's payload and vector records (collection number, tag, both values)
//! End           once, last, alone at the end of the last frame: the number of entries before it
//! ```
//!
//! Nothing after the last frame. What the archive shows without the master key: its id, the
//! number and sizes of its frames (hence roughly how much the tenant stores), nothing else.

use super::system::VersionedPolicy;
use crate::error::{Result, StorageError};
use serde::{Deserialize, Serialize};

/// The first bytes of every tenant archive.
pub(crate) const ARCHIVE_MAGIC: [u8; 8] = *b"BHTNTAR\0";
/// The archive format this build writes and reads.
pub(crate) const ARCHIVE_VERSION: u32 = 1;
/// Magic, version, archive id and check value.
pub(crate) const ARCHIVE_HEADER_LEN: usize = 8 + 4 + 16 + 32;
/// A frame is sealed once its entries reach this many bytes.
pub(crate) const FRAME_TARGET: usize = 1 << 20;
/// The largest plaintext of a frame: one entry is at most a point (payload and vector, each
/// bounded by the model's limits) or a 1 MiB index chunk, with their keys.
pub(crate) const MAX_FRAME_PLAIN: usize = 4 << 20;
/// The largest sealed frame a reader accepts (the plaintext, nonce and tag).
pub(crate) const MAX_SEALED_FRAME: usize = MAX_FRAME_PLAIN + bulkhead_crypto::ARCHIVE_FRAME_OVERHEAD;
/// The most wrapped keys an archive may carry (generation 0 and the data keys).
pub(crate) const MAX_ARCHIVE_KEYS: usize = 1024;

/// The archive's header.
pub(crate) fn archive_header(archive_id: &[u8; 16], check: &[u8; 32]) -> [u8; ARCHIVE_HEADER_LEN] {
    let mut out = [0u8; ARCHIVE_HEADER_LEN];
    out[..8].copy_from_slice(&ARCHIVE_MAGIC);
    out[8..12].copy_from_slice(&ARCHIVE_VERSION.to_be_bytes());
    out[12..28].copy_from_slice(archive_id);
    out[28..].copy_from_slice(check);
    out
}

/// The archive id and check value of a header, once its magic and version are known.
pub(crate) fn parse_archive_header(header: &[u8; ARCHIVE_HEADER_LEN]) -> Result<([u8; 16], [u8; 32])> {
    if header[..8] != ARCHIVE_MAGIC {
        return Err(StorageError::BadArchive { reason: "not a Bulkhead tenant archive" });
    }
    if header[8..12] != ARCHIVE_VERSION.to_be_bytes() {
        return Err(StorageError::BadArchive { reason: "unsupported archive format version" });
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&header[12..28]);
    let mut check = [0u8; 32];
    check.copy_from_slice(&header[28..]);
    Ok((id, check))
}

/// The associated data of frame `seq`.
pub(crate) fn frame_aad(header: &[u8; ARCHIVE_HEADER_LEN], seq: u64) -> Vec<u8> {
    [header.as_slice(), &seq.to_be_bytes()].concat()
}

/// One entry of an archive's frames (postcard: the variant index, then the fields in order).
#[derive(Serialize, Deserialize)]
pub(crate) enum ArchiveEntry {
    /// 0: what the archive is of.
    Manifest(ArchiveManifest),
    /// 1: a wrapped key: `generation` (0 the naming key), the bytes `ArchiveKey::wrap` made.
    Key { generation: u32, wrapped: Vec<u8> },
    /// 2: a tenant record: its key after the uid, its value as stored.
    Record { key: Vec<u8>, value: Vec<u8> },
    /// 3: a point: collection number, tag, the sealed payload and vector records.
    Point { collection: u32, tag: [u8; 32], payload: Vec<u8>, vector: Vec<u8> },
    /// 4: the end: how many entries came before it.
    End { entries: u64 },
}

/// The archive's first entry.
///
/// ```text
/// name              string         the tenant's name at the source
/// source_uid        16 bytes       its uid there: the column family and owner its records are sealed for
/// created_ms        varint u64
/// exported_ms       varint u64
/// write_generation  varint u32     the generation sealing its writes at the export
/// policy            VersionedPolicy
/// audit_seq         varint u64     its audit chain's next sequence number at the export
/// audit_mac         32 bytes       the MAC of its last event (the export's own)
/// ```
#[derive(Serialize, Deserialize)]
pub(crate) struct ArchiveManifest {
    pub(crate) name: String,
    pub(crate) source_uid: [u8; 16],
    pub(crate) created_ms: u64,
    pub(crate) exported_ms: u64,
    pub(crate) write_generation: u32,
    pub(crate) policy: VersionedPolicy,
    pub(crate) audit_seq: u64,
    pub(crate) audit_mac: [u8; 32],
}

/// Appends an entry's encoding to `out`.
pub(crate) fn encode_entry(entry: &ArchiveEntry, out: &mut Vec<u8>) {
    let encoded = postcard::to_stdvec(entry).expect("entries serialise into memory");
    out.extend_from_slice(&encoded);
}

/// The entry at the start of `bytes` and what follows it.
pub(crate) fn decode_entry(bytes: &[u8]) -> Result<(ArchiveEntry, &[u8])> {
    postcard::take_from_bytes(bytes).map_err(|_| StorageError::BadArchive { reason: "malformed entry" })
}
