//! The query crate's error type.

use bulkhead_storage::StorageError;

/// Everything the embedded API can report.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A search parameter breaks a documented limit; `reason` says which, never echoing tenant data.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },

    /// The request's deadline passed while it ran; it stopped at its next check point.
    #[error("the request's deadline passed before it finished")]
    DeadlineExceeded,

    /// The request was cancelled (its caller stopped waiting); it stopped at its next check point.
    #[error("the request was cancelled")]
    Cancelled,

    /// The request would need more of a bounded resource than it may have (`what`: the response);
    /// refused before the excess was built. Apart from `InvalidArgument` because the same request can
    /// succeed over smaller data.
    #[error("{what} too large: {reason}")]
    ResourceExhausted { what: &'static str, reason: String },

    /// The index refused or failed an operation (a build that failed or was cancelled, a corrupt
    /// segment, a vector its kernels refused). Kept with its type, so that callers can tell a
    /// cancelled build from a failed one; never carries tenant data.
    #[error("index: {0}")]
    Index(#[from] bulkhead_index::IndexError),

    /// The distance kernels refused a vector that had been validated (a bug), without its values.
    #[error("distance kernel: {0}")]
    Kernel(#[from] bulkhead_distance::DistanceError),

    /// A broken internal invariant (a bug), reported without tenant data.
    #[error("internal error: {0}")]
    Internal(String),

    /// Everything the storage layer reports (not found, authentication, integrity, validation...).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl QueryError {
    /// A short, stable code for the audit trail and metrics (`invalid-argument`, `not-found`, ...).
    pub fn reason_code(&self) -> &'static str {
        match self {
            QueryError::InvalidArgument { .. } => "invalid-argument",
            QueryError::DeadlineExceeded => "deadline-exceeded",
            QueryError::Cancelled => "cancelled",
            QueryError::ResourceExhausted { .. } => "resource-exhausted",
            QueryError::Index(bulkhead_index::IndexError::Cancelled) => "cancelled",
            QueryError::Index(_) | QueryError::Kernel(_) | QueryError::Internal(_) => "internal",
            QueryError::Storage(e) => e.reason_code(),
        }
    }

    /// True for errors caused by the caller's input (as opposed to the database or its keys).
    pub fn is_invalid_argument(&self) -> bool {
        matches!(
            self,
            QueryError::InvalidArgument { .. } | QueryError::Storage(StorageError::InvalidArgument { .. })
        )
    }
}
