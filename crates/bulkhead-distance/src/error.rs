//! The crate's one error type.

/// Everything the safe API of this crate can reject.
///
/// Each variant is a caller error (bad lengths, bad ids, bad values), never an internal failure:
/// the kernels themselves cannot fail once their inputs have been checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DistanceError {
    /// Two vectors that must have the same dimension do not. It is a caller error because the
    /// distance between vectors of different dimensions is undefined.
    #[error("dimension mismatch: {left} != {right}")]
    DimensionMismatch {
        /// The length of the left (or query) vector.
        left: usize,
        /// The length of the right vector (or the arena's dimension).
        right: usize,
    },
    /// The output slice of a batch call does not have one slot per requested row. It is a caller
    /// error because writing fewer results would silently drop distances.
    #[error("output length {actual} does not match the {expected} rows requested")]
    OutputLengthMismatch {
        /// The number of rows requested.
        expected: usize,
        /// The length of the output slice.
        actual: usize,
    },
    /// A row id passed to a batch call or to [`VectorArena::get`](crate::VectorArena::get) is not
    /// below the arena's length. It is a caller error: ids come from the arena's own `push`.
    #[error("row id {id} is out of range for an arena of {len} rows")]
    IdOutOfRange {
        /// The offending id.
        id: u32,
        /// The number of rows in the arena.
        len: usize,
    },
    /// An arena was asked for dimension zero, for which no distance is meaningful.
    #[error("vector dimension must be at least 1")]
    ZeroDimension,
    /// A vector contains NaN or an infinity, which would make distances NaN (and the HNSW graph
    /// panic).
    #[error("vector element {index} is not finite")]
    NonFinite {
        /// The position of the first non-finite element.
        index: usize,
    },
    /// A vector's squared norm `v·v` overflows `f32` although every element is finite, which would
    /// make cosine distances against it meaningless.
    #[error("vector norm overflows f32")]
    NormOverflow,
    /// The arena would exceed `u32::MAX` rows or `isize::MAX` bytes. It is classified as a caller
    /// error because it can only be reached by asking for more rows than ids can name.
    #[error("vector arena capacity overflow")]
    CapacityOverflow,
}
