//! The server's own limits: what a connection or a request may consume beyond the per-field limits the
//! library enforces (`bulkhead_query::limits`). All are listed in `docs/LIMITS.md`, and
//! `tests/it/limits_doc.rs` fails if the table and these constants disagree.

use std::time::Duration;

/// Largest gRPC message the server decodes or encodes, in bytes. Above `MAX_BATCH_BYTES` (32 MiB),
/// so that a batch at the library's byte limit still fits in one message with its framing.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Largest answer of one `Search` or `SearchBatch` call, in bytes (an upper bound of the encoded
/// hits, charged as each hit's payload is read): an answer that would be larger is refused with
/// `RESOURCE_EXHAUSTED` before more than this is built. Smaller than `MAX_MESSAGE_BYTES`, because
/// each running call holds its answer twice at most (the hits, then their encoding) and
/// `MAX_CONCURRENT_WORK` calls run at once.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Most queries in one `SearchBatch` call.
pub const MAX_SEARCH_BATCH: usize = 64;

/// Most concurrent HTTP/2 streams (calls in flight) on one connection, advertised in the connection's
/// SETTINGS frame.
pub const MAX_CONCURRENT_STREAMS: u32 = 128;

/// The default request deadline, in milliseconds: a call not answered by then gets
/// `DEADLINE_EXCEEDED`. A client's own `grpc-timeout` shortens it, never lengthens it.
pub const REQUEST_TIMEOUT_MS: u64 = 30_000;

/// The default number of storage operations the server runs at once (on tokio's blocking pool),
/// over all connections; more wait for a slot within their deadline.
pub const MAX_CONCURRENT_WORK: usize = 64;

/// Longest API key label, in bytes (enforced by the library too).
pub const MAX_KEY_LABEL_BYTES: usize = 128;

/// Most audit events in one `ExportAudit` page (also the default).
pub const MAX_AUDIT_PAGE: usize = 1_000;

/// The page size an `ExportAudit` request asks for: 0 means the maximum.
pub(crate) fn audit_page(limit: u32) -> Result<usize, tonic::Status> {
    match limit as usize {
        0 => Ok(MAX_AUDIT_PAGE),
        n if n <= MAX_AUDIT_PAGE => Ok(n),
        _ => {
            Err(crate::status::invalid("limit", format!("must be at most {MAX_AUDIT_PAGE} events per page")))
        }
    }
}

/// [`REQUEST_TIMEOUT_MS`] as a duration.
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(REQUEST_TIMEOUT_MS);
