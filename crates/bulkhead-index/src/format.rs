//! The serialised form of a [`FrozenSegment`]: [`FrozenSegment::to_bytes`] and
//! [`FrozenSegment::from_bytes`].
//!
//! All integers are little-endian; every field is validated on load, and no input, however
//! truncated or corrupt, makes `from_bytes` panic or exit. Every length is checked against the
//! bytes actually present before anything is allocated for it, so memory stays proportional to
//! the input.
//!
//! ```text
//!  offset           size               field
//!  +----------------+------------------+---------------------------------------------------+
//!  | 0              | 8                | magic  b"BHDXSEG\0"                               |
//!  | 8              | 4   u32          | format version (1)                                |
//!  | 12             | 4   u32          | metric: 0 cosine, 1 dot, 2 l2                     |
//!  | 16             | 4   u32          | dim (>= 1)                                        |
//!  | 20             | 4   u32          | n, the number of vectors                          |
//!  | 24             | 4   u32          | m (4..=64)                                        |
//!  | 28             | 4   u32          | ef_construction (m..=2000)                        |
//!  | 32             | 4   u32          | L, the highest level (0..=15)                     |
//!  | 36             | 4   u32          | entry point id (u32::MAX iff n = 0)               |
//!  +----------------+------------------+---------------------------------------------------+
//!  | 40             | 4·dim·n  f32     | vectors, row-major, unpadded                      |
//!  |                | 4·2m·n   u32     | level-0 adjacency: 2m entries per node, closest   |
//!  |                |                  | first, unused entries u32::MAX at the end         |
//!  +----------------+------------------+---------------------------------------------------+
//!  |                |                  | for each level l = 1..=L:                         |
//!  |                | 4        u32     |   c, the number of nodes on level l               |
//!  |                | 4·c      u32     |   their ids, strictly increasing, each on l-1     |
//!  |                | 4·m·c    u32     |   m entries per node, targets on level l          |
//!  +----------------+------------------+---------------------------------------------------+
//!  |                | 8·⌈n/64⌉ u64     | tombstones: bit i%64 of word i/64 = id i deleted  |
//!  | len - 8        | 8        u64     | checksum of every preceding byte (see below)      |
//!  +----------------+------------------+---------------------------------------------------+
//! ```
//!
//! The checksum detects accidental damage (every single-word change alters it); it is not a
//! MAC. Integrity against tampering comes from sealing the bytes under the tenant's key, which
//! another crate does.

use bulkhead_distance::{Metric, VectorArena};

use crate::construct::{Graph, MAX_LAYERS, NO_NEIGHBOUR, UpperLevel};
use crate::{FrozenSegment, HnswParams, IdSet, IndexError};

/// The first eight bytes of every serialised segment.
const MAGIC: [u8; 8] = *b"BHDXSEG\0";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes before the vectors.
const HEADER_LEN: usize = 40;
/// Bytes of the trailing checksum.
const CHECKSUM_LEN: usize = 8;

/// Returns the format's code for `metric`.
fn metric_code(metric: Metric) -> u32 {
    match metric {
        Metric::Cosine => 0,
        Metric::UnitDot => 1,
        Metric::L2 => 2,
    }
}

/// Returns the metric for a format code.
fn metric_from_code(code: u32) -> Option<Metric> {
    match code {
        0 => Some(Metric::Cosine),
        1 => Some(Metric::UnitDot),
        2 => Some(Metric::L2),
        _ => None,
    }
}

/// A 64-bit checksum over `bytes`: each little-endian word (the tail zero-padded) is folded in
/// with a bijective multiply-xorshift, so changing any one word always changes the result.
fn checksum(bytes: &[u8]) -> u64 {
    let mix = |state: u64, word: u64| {
        let x = (state ^ word).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^ (x >> 29)
    };
    let mut chunks = bytes.chunks_exact(8);
    let mut state = mix(0x6A09_E667_F3BC_C908, bytes.len() as u64);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        state = mix(state, u64::from_le_bytes(word));
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut word = [0u8; 8];
        word[..tail.len()].copy_from_slice(tail);
        state = mix(state, u64::from_le_bytes(word));
    }
    state
}

/// Returns `value` as a `u32`; every count written here fits, because an arena holds at most
/// `u32::MAX` rows, dimensions are checked on the way in, and parameters are validated.
fn to_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

impl FrozenSegment {
    /// Serialises the segment (vectors, graph and tombstones) in the layout drawn in this
    /// module's documentation.
    pub fn to_bytes(&self) -> Vec<u8> {
        let n = self.len();
        let dim = self.dim();
        let upper_words: usize =
            self.graph.upper.iter().map(|layer| 1 + layer.nodes.len() + layer.links.len()).sum();
        let capacity = HEADER_LEN
            + 4 * (dim * n + self.graph.level0.len() + upper_words)
            + 8 * self.deleted.words().len()
            + CHECKSUM_LEN;
        let mut out = Vec::with_capacity(capacity);
        out.extend_from_slice(&MAGIC);
        for field in [
            FORMAT_VERSION,
            metric_code(self.metric),
            to_u32(dim),
            to_u32(n),
            to_u32(self.params.m),
            to_u32(self.params.ef_construction),
            to_u32(self.graph.max_level()),
            self.graph.entry,
        ] {
            out.extend_from_slice(&field.to_le_bytes());
        }
        for row in self.arena.iter() {
            for value in row {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        for entry in &self.graph.level0 {
            out.extend_from_slice(&entry.to_le_bytes());
        }
        for layer in &self.graph.upper {
            out.extend_from_slice(&to_u32(layer.nodes.len()).to_le_bytes());
            for id in layer.nodes.iter().chain(&layer.links) {
                out.extend_from_slice(&id.to_le_bytes());
            }
        }
        for word in self.deleted.words() {
            out.extend_from_slice(&word.to_le_bytes());
        }
        let sum = checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Loads a segment written by [`to_bytes`](Self::to_bytes), validating every length, id and
    /// value.
    ///
    /// # Errors
    ///
    /// [`IndexError::UnsupportedVersion`] for another format version; [`IndexError::Corrupt`] for
    /// anything truncated, inconsistent or failing the checksum.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IndexError> {
        let corrupt = |reason| IndexError::Corrupt { reason };
        if bytes.len() < HEADER_LEN + CHECKSUM_LEN {
            return Err(corrupt("shorter than the header"));
        }
        if bytes[..8] != MAGIC {
            return Err(corrupt("bad magic"));
        }
        let (body, stored) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        let mut reader = Reader { bytes: &body[8..] };
        let version = reader.u32()?;
        if version != FORMAT_VERSION {
            return Err(IndexError::UnsupportedVersion { version });
        }
        let mut stored_word = [0u8; 8];
        stored_word.copy_from_slice(stored);
        if u64::from_le_bytes(stored_word) != checksum(body) {
            return Err(corrupt("checksum mismatch"));
        }
        let metric = metric_from_code(reader.u32()?).ok_or(corrupt("unknown metric"))?;
        let dim = reader.u32()? as usize;
        let n = reader.u32()? as usize;
        let params = HnswParams { m: reader.u32()? as usize, ef_construction: reader.u32()? as usize };
        params.validate().map_err(|_| corrupt("parameters out of range"))?;
        let m = params.m;
        let max_level = reader.u32()? as usize;
        let entry = reader.u32()?;
        if dim == 0 {
            return Err(corrupt("zero dimension"));
        }
        if max_level >= MAX_LAYERS {
            return Err(corrupt("too many levels"));
        }
        if n == 0 && (entry != NO_NEIGHBOUR || max_level != 0) {
            return Err(corrupt("empty segment with an entry point"));
        }
        if n > 0 && entry as usize >= n {
            return Err(corrupt("entry point out of range"));
        }

        let vector_bytes = reader.take_array(n, dim.checked_mul(4))?;
        let mut arena = VectorArena::with_capacity(dim, n).map_err(|_| corrupt("too large"))?;
        // Only allocate a row buffer once the input has proven it holds at least one row.
        let mut row = if n > 0 { vec![0f32; dim] } else { Vec::new() };
        for chunk in vector_bytes.chunks_exact(4 * dim) {
            for (value, bytes) in row.iter_mut().zip(chunk.chunks_exact(4)) {
                *value = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            }
            arena.push(&row).map_err(|_| corrupt("non-finite or overflowing vector"))?;
        }

        let level0 = reader.u32_array(n.checked_mul(2 * m))?;
        for entries in level0.chunks_exact(2 * m) {
            check_list(entries, |id| (id as usize) < n)?;
        }

        let mut upper: Vec<UpperLevel> = Vec::with_capacity(max_level);
        for _ in 0..max_level {
            let level = read_upper_level(&mut reader, upper.last(), n, m)?;
            upper.push(level);
        }
        if let Some(top) = upper.last()
            && top.nodes.binary_search(&entry).is_err()
        {
            return Err(corrupt("entry point not on the top level"));
        }

        let words = reader.u64_array(n.div_ceil(64))?;
        let deleted = IdSet::from_words(n, words).ok_or(corrupt("tombstone bits out of range"))?;
        if !reader.bytes.is_empty() {
            return Err(corrupt("trailing bytes"));
        }
        Ok(Self {
            metric,
            params,
            arena: std::sync::Arc::new(arena),
            graph: std::sync::Arc::new(Graph { m, level0, upper, entry }),
            deleted,
        })
    }
}

/// Reads one upper level and checks it: nodes strictly increasing and all on the level `below` (or
/// in `0..n` for level 1), every link to a node of this level.
fn read_upper_level(
    reader: &mut Reader<'_>,
    below: Option<&UpperLevel>,
    n: usize,
    m: usize,
) -> Result<UpperLevel, IndexError> {
    let corrupt = |reason| IndexError::Corrupt { reason };
    let count = reader.u32()? as usize;
    let nodes = reader.u32_array(Some(count))?;
    let links = reader.u32_array(count.checked_mul(m))?;
    if count == 0 {
        return Err(corrupt("empty upper level"));
    }
    if nodes.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err(corrupt("upper-level nodes not strictly increasing"));
    }
    for &id in &nodes {
        let on_level_below = match below {
            Some(below) => below.nodes.binary_search(&id).is_ok(),
            None => (id as usize) < n,
        };
        if !on_level_below {
            return Err(corrupt("upper-level node missing from the level below"));
        }
    }
    for entries in links.chunks_exact(m) {
        check_list(entries, |id| nodes.binary_search(&id).is_ok())?;
    }
    Ok(UpperLevel { nodes, links })
}

/// Checks one node's adjacency entries: every id before the first [`NO_NEIGHBOUR`] passes `valid`,
/// and every entry after it is [`NO_NEIGHBOUR`] too.
fn check_list(entries: &[u32], valid: impl Fn(u32) -> bool) -> Result<(), IndexError> {
    let used = entries.iter().position(|&id| id == NO_NEIGHBOUR).unwrap_or(entries.len());
    if !entries[..used].iter().all(|&id| valid(id)) {
        return Err(IndexError::Corrupt { reason: "neighbour id out of range" });
    }
    if entries[used..].iter().any(|&id| id != NO_NEIGHBOUR) {
        return Err(IndexError::Corrupt { reason: "neighbour after the end-of-list marker" });
    }
    Ok(())
}

/// A bounds-checked little-endian cursor.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Takes the next `len` bytes.
    fn take(&mut self, len: usize) -> Result<&'a [u8], IndexError> {
        if len > self.bytes.len() {
            return Err(IndexError::Corrupt { reason: "truncated" });
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }

    /// Takes `count` items of `item_len` bytes (either `None` when the size overflowed).
    fn take_array(&mut self, count: usize, item_len: Option<usize>) -> Result<&'a [u8], IndexError> {
        let len = item_len
            .and_then(|item| item.checked_mul(count))
            .ok_or(IndexError::Corrupt { reason: "length overflow" })?;
        self.take(len)
    }

    /// Reads one `u32`.
    fn u32(&mut self) -> Result<u32, IndexError> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// Reads `count` `u32`s (`None` when the count overflowed).
    fn u32_array(&mut self, count: Option<usize>) -> Result<Vec<u32>, IndexError> {
        let count = count.ok_or(IndexError::Corrupt { reason: "length overflow" })?;
        let bytes = self.take_array(count, Some(4))?;
        Ok(bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }

    /// Reads `count` `u64`s.
    fn u64_array(&mut self, count: usize) -> Result<Vec<u64>, IndexError> {
        let bytes = self.take_array(count, Some(8))?;
        Ok(bytes
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect())
    }
}

/// Exposes the checksum to the unit tests, which damage structure behind a valid checksum.
#[cfg(test)]
pub(crate) fn checksum_for_tests(bytes: &[u8]) -> u64 {
    checksum(bytes)
}
