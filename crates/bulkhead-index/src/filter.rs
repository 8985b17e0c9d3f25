//! Internal ids, the [`Filter`] predicate that filtered search applies during traversal, and the
//! fixed-size bitset [`IdSet`] used both for allowed sets and for the segment's tombstones.

use crate::IndexError;

/// The position of a vector inside one segment, `0..len`, in the order the vectors were given to
/// the build.
///
/// It is local to a segment: mapping it to a document id (and across segments) is the caller's
/// job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct InternalId(u32);

impl InternalId {
    /// Wraps a raw row number; whether it is in range is checked where it is used.
    #[inline]
    pub const fn new(raw: u32) -> Self {
        Self(raw)
    }

    /// Returns the raw row number.
    #[inline]
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// An allowed-set predicate over internal ids, applied inside candidate generation.
///
/// Filtered search never returns an id for which [`allows`](Self::allows) is false, and it never
/// trims a global top-k: it either scans the allowed ids exactly or traverses the graph while
/// applying the predicate.
pub trait Filter {
    /// Returns whether `id` may appear in the results.
    fn allows(&self, id: InternalId) -> bool;

    /// Returns an estimate of how many ids of the segment are allowed, if known cheaply. The
    /// planner uses it to choose between an exact scan of the allowed set and graph traversal.
    fn estimated_count(&self) -> Option<usize> {
        None
    }

    /// Calls `visit` for every allowed id below `len`, in increasing order.
    ///
    /// The default tests every id; implementations that can enumerate their members faster (like
    /// [`IdSet`]) should override it, because the exact-scan plan calls it on every query.
    fn for_each_allowed(&self, len: usize, visit: &mut dyn FnMut(InternalId)) {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        for raw in 0..len {
            let id = InternalId(raw);
            if self.allows(id) {
                visit(id);
            }
        }
    }
}

impl<F: Filter + ?Sized> Filter for &F {
    #[inline]
    fn allows(&self, id: InternalId) -> bool {
        (**self).allows(id)
    }

    fn estimated_count(&self) -> Option<usize> {
        (**self).estimated_count()
    }

    fn for_each_allowed(&self, len: usize, visit: &mut dyn FnMut(InternalId)) {
        (**self).for_each_allowed(len, visit);
    }
}

/// A fixed-size set of internal ids `0..capacity`, one bit each, that keeps its member count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdSet {
    /// Bit `i % 64` of word `i / 64` is set when `i` is a member; bits at or above `capacity` are
    /// always clear.
    words: Vec<u64>,
    /// The number of ids the set can hold.
    capacity: usize,
    /// The number of members.
    count: usize,
}

impl IdSet {
    /// Creates an empty set for the ids `0..capacity`.
    pub fn new(capacity: usize) -> Self {
        Self { words: vec![0; capacity.div_ceil(64)], capacity, count: 0 }
    }

    /// Creates a set for `0..capacity` holding `ids`.
    ///
    /// # Errors
    ///
    /// [`IndexError::IdOutOfRange`] for the first id not below `capacity`.
    pub fn from_ids(capacity: usize, ids: impl IntoIterator<Item = InternalId>) -> Result<Self, IndexError> {
        let mut set = Self::new(capacity);
        for id in ids {
            set.insert(id)?;
        }
        Ok(set)
    }

    /// Rebuilds a set from its words, as read from a serialised segment; `None` if the word count
    /// does not match `capacity` or a bit at or above `capacity` is set.
    pub(crate) fn from_words(capacity: usize, words: Vec<u64>) -> Option<Self> {
        if words.len() != capacity.div_ceil(64) {
            return None;
        }
        let tail_bits = capacity % 64;
        if tail_bits != 0 && words.last().is_some_and(|&w| w >> tail_bits != 0) {
            return None;
        }
        let count = words.iter().map(|w| w.count_ones() as usize).sum();
        Some(Self { words, capacity, count })
    }

    /// Returns the raw words (bit `i % 64` of word `i / 64` is id `i`).
    pub(crate) fn words(&self) -> &[u64] {
        &self.words
    }

    /// Adds `id`; returns whether it was newly added.
    ///
    /// # Errors
    ///
    /// [`IndexError::IdOutOfRange`] if `id` is not below [`capacity`](Self::capacity).
    pub fn insert(&mut self, id: InternalId) -> Result<bool, IndexError> {
        let index = id.0 as usize;
        if index >= self.capacity {
            return Err(IndexError::IdOutOfRange { id: id.0, len: self.capacity });
        }
        let (word, bit) = (index / 64, 1u64 << (index % 64));
        let bits = &mut self.words[word];
        let added = *bits & bit == 0;
        *bits |= bit;
        self.count += usize::from(added);
        Ok(added)
    }

    /// Returns whether `id` is a member (false for ids out of range).
    #[inline]
    pub fn contains(&self, id: InternalId) -> bool {
        let index = id.0 as usize;
        self.words.get(index / 64).is_some_and(|word| word & (1u64 << (index % 64)) != 0)
    }

    /// Returns the number of members.
    #[inline]
    pub fn len(&self) -> usize {
        self.count
    }

    /// Returns whether the set has no members.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Returns the number of ids the set can hold.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Iterates over the members in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = InternalId> + '_ {
        self.words.iter().enumerate().flat_map(|(index, &word)| {
            let base = (index * 64) as u32;
            BitIter(word).map(move |bit| InternalId(base + bit))
        })
    }

    /// Returns the heap bytes the set occupies.
    pub fn heap_bytes(&self) -> usize {
        self.words.len() * size_of::<u64>()
    }
}

/// Iterates over the set bits of one word, lowest first.
struct BitIter(u64);

impl Iterator for BitIter {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        if self.0 == 0 {
            return None;
        }
        let bit = self.0.trailing_zeros();
        self.0 &= self.0 - 1;
        Some(bit)
    }
}

impl Filter for IdSet {
    #[inline]
    fn allows(&self, id: InternalId) -> bool {
        self.contains(id)
    }

    fn estimated_count(&self) -> Option<usize> {
        Some(self.count)
    }

    fn for_each_allowed(&self, len: usize, visit: &mut dyn FnMut(InternalId)) {
        for id in self.iter() {
            if id.0 as usize >= len {
                break;
            }
            visit(id);
        }
    }
}
