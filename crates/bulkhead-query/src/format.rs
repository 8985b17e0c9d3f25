//! The byte layout of a collection's index snapshot (the one layout of this crate): its header, the
//! point reference of each internal id, and the segment's own serialised form (`bulkhead-index`'s
//! `format.rs`). The storage crate seals and chunks it without reading it.
//!
//! ```text
//! offset  size     field
//! 0       8        magic "BHCOLSN\0"
//! 8       4        version u32 LE (1)
//! 12      4        n, the number of points, u32 LE
//! 16      8        the segment's generation, u64 LE
//! 24      32 * n   each point's reference, in internal-id order
//! 24+32n  rest     the segment (FrozenSegment::to_bytes)
//! ```

use bulkhead_index::FrozenSegment;
use bulkhead_storage::{CollectionInfo, PointRef};

/// The first bytes of a collection's index snapshot.
const SNAPSHOT_MAGIC: [u8; 8] = *b"BHCOLSN\0";

/// The version of a collection's index snapshot this build writes and reads. Public so that tests
/// can tell which formats this build writes (`tests/it/golden.rs`).
pub const SNAPSHOT_VERSION: u32 = 1;

/// Bytes before the point references: magic, version, `n`, generation.
const SNAPSHOT_HEADER: usize = 24;

/// A collection's index snapshot: the version, the number of points `n`, the segment's generation,
/// each point's 32-byte reference in internal-id order, then the segment's own serialised form.
pub(crate) fn encode_snapshot(refs: &[PointRef], segment: &FrozenSegment, generation: u64) -> Vec<u8> {
    let graph = segment.to_bytes();
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER + refs.len() * 32 + graph.len());
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    out.extend_from_slice(&(refs.len() as u32).to_le_bytes());
    out.extend_from_slice(&generation.to_le_bytes());
    for point_ref in refs {
        out.extend_from_slice(&point_ref.to_bytes());
    }
    out.extend_from_slice(&graph);
    out
}

/// Reads a snapshot back, checking it against the collection it was loaded for.
pub(crate) fn decode_snapshot(
    bytes: &[u8],
    collection: &CollectionInfo,
) -> Result<(FrozenSegment, Vec<PointRef>, u64), String> {
    let header = bytes.get(..SNAPSHOT_HEADER).ok_or("shorter than its header")?;
    if header[..8] != SNAPSHOT_MAGIC {
        return Err("bad magic".into());
    }
    let word = |at: usize| u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    if word(8) != SNAPSHOT_VERSION {
        return Err(format!("unsupported snapshot version {}", word(8)));
    }
    let n = word(12) as usize;
    let generation = u64::from(word(16)) | (u64::from(word(20)) << 32);
    let refs_end = n.checked_mul(32).and_then(|b| b.checked_add(SNAPSHOT_HEADER)).ok_or("too many points")?;
    let ref_bytes = bytes.get(SNAPSHOT_HEADER..refs_end).ok_or("truncated point references")?;
    let segment = FrozenSegment::from_bytes(&bytes[refs_end..]).map_err(|e| e.to_string())?;
    let metric =
        crate::metric::kernel_metric(collection.metric).ok_or("the collection's metric has no graph")?;
    if segment.len() != n || segment.dim() != collection.dimension || segment.metric() != metric {
        return Err("segment does not match the collection".into());
    }
    let refs: Vec<PointRef> =
        ref_bytes.chunks_exact(32).map(|c| PointRef::from_bytes(c.try_into().unwrap_or([0; 32]))).collect();
    Ok((segment, refs, generation))
}
