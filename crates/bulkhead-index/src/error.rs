//! The crate's one error type.

use bulkhead_distance::DistanceError;

/// Everything the index can reject or fail at.
///
/// Messages carry only sizes, parameter values and internal ids, never vector contents or any
/// other tenant data, so they are safe to log and to map into client-facing statuses.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A construction parameter is out of its supported range. It is a caller error, checked before
    /// any builder sees the value (hnsw_rs exits the process on some bad parameters).
    #[error("invalid index parameter: {reason}")]
    InvalidParams {
        /// Which rule was broken.
        reason: &'static str,
    },
    /// A query's length differs from the segment's dimension. It is a caller error: the distance
    /// between vectors of different dimensions is undefined.
    #[error("query dimension {actual} does not match the index dimension {expected}")]
    DimensionMismatch {
        /// The segment's dimension.
        expected: usize,
        /// The query's length.
        actual: usize,
    },
    /// A query contains NaN or an infinity. It is a caller error: no ranking is defined for it.
    #[error("query element {index} is not finite")]
    NonFiniteQuery {
        /// The position of the first non-finite element.
        index: usize,
    },
    /// An internal id is not below the segment's length. It is a caller error: ids come from the
    /// segment's own numbering `0..len`.
    #[error("internal id {id} is out of range for a segment of {len} vectors")]
    IdOutOfRange {
        /// The offending id.
        id: u32,
        /// The number of vectors in the segment.
        len: usize,
    },
    /// The vectors were rejected by the distance crate (non-finite element, norm overflow, too many
    /// rows). It is a caller error on the input vectors.
    #[error("vector rejected: {0}")]
    Vector(#[from] DistanceError),
    /// The graph builder panicked or broke one of its invariants (or its thread pool could not be
    /// started). It is an internal failure: the input had been validated, so a panic is a bug in
    /// the builder, caught so that it cannot take the process down.
    #[error("graph construction failed inside the HNSW builder")]
    BuildFailed,
    /// The build was cancelled through [`BuildOptions::cancel`](crate::BuildOptions): nobody needs
    /// its result any more (its collection was evicted or dropped, or the database is closing).
    #[error("graph construction was cancelled")]
    Cancelled,
    /// A serialised segment was written by a format version this build does not read. It is
    /// classified apart from [`Corrupt`](Self::Corrupt) so operators can tell an upgrade problem
    /// from damaged data.
    #[error("unsupported segment format version {version}")]
    UnsupportedVersion {
        /// The version found in the header.
        version: u32,
    },
    /// A serialised segment is truncated, has a bad checksum, or describes an impossible structure.
    /// It is a data error: the bytes are not a segment this crate wrote.
    #[error("corrupt segment: {reason}")]
    Corrupt {
        /// Which check failed.
        reason: &'static str,
    },
    /// Reading a vector file (fvecs/ivecs) failed at the operating-system level.
    #[error("vector file I/O error")]
    Io(#[from] std::io::Error),
    /// A vector file (fvecs/ivecs) is malformed: truncated rows, inconsistent or zero dimensions,
    /// or negative ids. It is a data error in the file.
    #[error("malformed vector file: {reason}")]
    MalformedVectorFile {
        /// Which check failed.
        reason: &'static str,
    },
}
