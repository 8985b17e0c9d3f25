//! The server's own limits: what a connection or a request may consume beyond the per-field limits the
//! library enforces (`bulkhead_query::limits`). All are listed in `docs/LIMITS.md`, and
//! `tests/it/limits_doc.rs` fails if the table and these constants disagree.

use bulkhead_query::limits as lib;
use std::time::Duration;

/// Largest gRPC message the server decodes or encodes, in bytes: the limit of `Upsert` requests and
/// of every response. Above `MAX_BATCH_BYTES` (32 MiB), so that a batch at the library's byte limit
/// still fits in one message with its framing. Every other request has a tighter limit of its own
/// ([`request_message_limit`]).
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
/// over all connections; more wait for a permit within their deadline.
pub const MAX_CONCURRENT_WORK: usize = 64;

/// The default number of searches one tenant runs at once; a tenant's policy may set its own
/// (`max_concurrent_searches`). As many more wait; beyond them, calls are refused.
pub const MAX_TENANT_SEARCHES: u32 = 16;

/// A call refused on its tenant's request rate or upserted bytes a second is answered at most this
/// long after it arrived (and a quarter of its deadline): its refusal is held until its turn, when
/// the tenant's quota could take it (see `quota.rs`, pushback), so that a client retrying at once
/// sends a throttled tenant's calls about as fast as its quota admits them.
pub const MAX_PUSHBACK_MS: u64 = 1_000;

/// Refusals of one tenant held at once (each an open stream without its body); beyond them a
/// refusal is answered at once.
pub const MAX_HELD_REFUSALS: usize = 256;

/// Refusals held at once on one connection, whatever their tenants: an eighth of its
/// [`MAX_CONCURRENT_STREAMS`], so that held refusals never take the stream slots of the other
/// calls a connection carries (another tenant's through a shared client or proxy, or the same
/// tenant's reads while its writes are throttled). Beyond them a refusal is answered at once.
pub const MAX_HELD_REFUSALS_PER_CONNECTION: usize = (MAX_CONCURRENT_STREAMS / 8) as usize;

/// The default number of refusals (permission denied) of one API key within five minutes that
/// locks the key until an operator unlocks it; a tenant's policy may set its own (`max_denials`).
pub const MAX_DENIALS: u32 = 100;

/// Connections the metrics endpoint serves at once; while they are all busy it accepts no more (a
/// scraper needs one, and each is closed within five seconds of being accepted).
pub const MAX_METRICS_CONNECTIONS: usize = 16;

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

/// The default deadline of `ExportTenant`, `ImportTenant` and `MoveTenant`, in milliseconds (one
/// hour): a tenant archive of many gigabytes takes longer than [`REQUEST_TIMEOUT_MS`] to stream, and
/// a tier move to copy. A client's
/// own `grpc-timeout` shortens it, never lengthens it. The call holds one work permit of
/// [`MAX_CONCURRENT_WORK`] until it ends; past its deadline an export stops and an import is
/// abandoned (nothing of it stays), unless it had already committed.
pub const ARCHIVE_TIMEOUT_MS: u64 = 3_600_000;

/// [`ARCHIVE_TIMEOUT_MS`] as a duration.
pub const ARCHIVE_TIMEOUT: Duration = Duration::from_millis(ARCHIVE_TIMEOUT_MS);

/// Largest chunk of a tenant archive in one message of `ExportTenant` (sent) or `ImportTenant`
/// (accepted): 1 MiB. An import's stream is read one message at a time; its request memory is
/// reserved and returned per message, so an archive of any size costs a few chunks of memory.
pub const MAX_ARCHIVE_CHUNK_BYTES: usize = 1024 * 1024;

/// How many chunks an export or import holds between its gRPC stream and its storage work (a
/// bounded channel each way): the memory of one call in flight is a few chunks.
pub(crate) const ARCHIVE_CHANNEL_CHUNKS: usize = 2;

/// The paths of the calls that carry a whole tenant (its archive, a tier move), which get
/// [`ARCHIVE_TIMEOUT_MS`] instead of [`REQUEST_TIMEOUT_MS`].
pub(crate) const ARCHIVE_METHODS: [&str; 3] =
    ["/bulkhead.v1.Admin/ExportTenant", "/bulkhead.v1.Admin/ImportTenant", "/bulkhead.v1.Admin/MoveTenant"];

/// The paths of the methods whose request is a stream of messages (every other request is one
/// message, and a second is refused): each message has the method's limit and its own
/// reservation of request memory, returned once the handler is done with it.
pub const CLIENT_STREAMING_METHODS: [&str; 1] = ["/bulkhead.v1.Admin/ImportTenant"];

/// The default cap on open client connections (TCP, or TLS over TCP). At the cap the server stops
/// accepting until one closes: further clients wait in the kernel's listen backlog.
pub const MAX_CONNECTIONS: usize = 1024;

/// The default budget of request bytes the server holds in memory at once, over all calls. Each
/// request message reserves [`wire_reservation`] of its declared length as soon as its 5-byte
/// gRPC prefix arrives (waiting for room within the call's deadline) and, once its elements are
/// counted, [`ELEMENT_RESERVATION_BYTES`] per element; the reservation is returned when the call's
/// handler is done with the message. At least three messages of [`MAX_MESSAGE_BYTES`] fit.
pub const REQUEST_MEMORY_BUDGET_BYTES: usize = 512 * 1024 * 1024;

/// How long a new connection has to introduce itself: to send the 24 bytes of the HTTP/2 preface
/// (or, over TLS, to complete the TLS handshake). One that does not is closed, so that silent or
/// dribbling connections cannot hold every permit of [`MAX_CONNECTIONS`]; after that, HTTP/2
/// keepalive reaps peers that stop answering.
pub const CONNECTION_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The bytes a connection must send within [`CONNECTION_HANDSHAKE_TIMEOUT`]: the HTTP/2 client
/// preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`), which also is less than any TLS client hello.
pub const CONNECTION_PREFACE_BYTES: usize = 24;

/// How often the server pings a connection that has been quiet, and how long it waits for the
/// answer before it closes the connection: a peer that vanished without closing is reaped within
/// their sum.
pub const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
/// See [`HTTP2_KEEPALIVE_INTERVAL`].
pub const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The HTTP/2 flow-control window a connection's streams start with: how many body bytes a client
/// may send before the server has read them. The admission layer refuses a call on its headers (a
/// bad key, a tenant over its request or write rate) and drops its body unread, but the client has
/// already sent up to one window of it: with hyper's fixed default of 1 MiB, each refused 1.5 MB
/// upsert of a flooding tenant still cost the server a mebibyte of socket reads. The server uses
/// HTTP/2's own initial window (65,535 bytes) with hyper's adaptive flow control: the windows then
/// grow with each connection's measured bandwidth-delay product, so a large upload over a long
/// round trip is not held to one small window a round trip, while on a short one they stay small.
pub const HTTP2_STREAM_WINDOW_BYTES: u32 = 65_535;

/// Most elements in one request message: points, ids, map entries, list values, ACL entries,
/// queries, filter nodes and every other nested message, and every value of a repeated integer
/// field. Counted on the wire before anything is decoded (`codec.rs`), so that a message of tiny
/// elements (two bytes each on the wire, a few hundred bytes each decoded) cannot decode into
/// gigabytes. 2^18 leaves room for a full batch of 1,024 points with 64 metadata fields each, or
/// 250 ACL entries each.
pub const MAX_REQUEST_ELEMENTS: usize = 262_144;

/// The bytes of request memory one counted element may cost once decoded, beyond its wire bytes:
/// its value inside its `Vec` or map, with room for the container's growth (at most doubling, or
/// 2.3 times for a hash map at its load factor), plus one allocator chunk for its own bytes (a
/// string's contents, a nested `Vec`'s buffer). The largest element of any request, a `Point`, is
/// 192 bytes (`tests/it/admission.rs` checks every request element type against this bound).
pub const ELEMENT_RESERVATION_BYTES: usize = 512;

/// The bytes reserved from [`REQUEST_MEMORY_BUDGET_BYTES`] for a request message of `len` bytes on
/// the wire, before its elements are counted: the received bytes, plus at most twice as many again
/// for the decoded message (strings are copied at their exact length; packed vectors grow a `Vec`
/// by doubling).
pub const fn wire_reservation(len: usize) -> usize {
    len.saturating_mul(3)
}

/// An upper bound on the wire bytes of one length-delimited field carrying `n` bytes: a one-byte
/// tag (every field number of `bulkhead.v1` is below 16), a length of up to five bytes, the bytes.
const fn field(n: usize) -> usize {
    n + 6
}

/// The wire bytes of a principal (search or key binding) at its limits: the user and
/// `MAX_PRINCIPAL_GROUPS` groups of `MAX_PRINCIPAL_BYTES` each. 67,340 bytes.
const PRINCIPAL_WIRE: usize = field(field(lib::MAX_PRINCIPAL_BYTES) * (1 + lib::MAX_PRINCIPAL_GROUPS));

/// The wire bytes of one query without its filter at the limits: a vector of `MAX_DIMENSION`
/// floats, k, ef and a principal. 83,742 bytes.
const QUERY_WIRE: usize = field(4 * lib::MAX_DIMENSION) + 2 * 6 + PRINCIPAL_WIRE;

/// Largest `Upsert` message: [`MAX_MESSAGE_BYTES`], twice `MAX_BATCH_BYTES`, so that a batch at
/// the library's byte limit fits with its protobuf framing (tags, lengths and map entries cost
/// more than the library's byte count for small fields). This is the one method that needs
/// megabytes.
pub const MAX_UPSERT_MESSAGE_BYTES: usize = MAX_MESSAGE_BYTES;
const _: () = assert!(MAX_UPSERT_MESSAGE_BYTES >= 2 * lib::MAX_BATCH_BYTES);

/// Largest `SearchBatch` message: `MAX_SEARCH_BATCH` queries at their limits without filters
/// take 5.4 MB; the rest (about 3 MB) is left for the batch's filters.
pub const MAX_SEARCH_BATCH_MESSAGE_BYTES: usize = 8 * 1024 * 1024;
const _: () = assert!(
    MAX_SEARCH_BATCH_MESSAGE_BYTES
        >= field(lib::MAX_COLLECTION_NAME_BYTES) + MAX_SEARCH_BATCH * field(QUERY_WIRE) + 1024 * 1024
);

/// Largest `Search` message: one query at its limits takes 84 KB; the rest (about 4 MB) is left for
/// its filter. The filter's own limits (64 conditions of up to 1,024 values of 1 KiB) would allow
/// 64 MiB; this message limit is the tighter bound on a filter's total size.
pub const MAX_SEARCH_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
const _: () =
    assert!(MAX_SEARCH_MESSAGE_BYTES >= field(lib::MAX_COLLECTION_NAME_BYTES) + QUERY_WIRE + 1024 * 1024);

/// Largest `Delete` message: `MAX_BATCH_POINTS` ids of `MAX_DOC_ID_BYTES` (268 KB) and the
/// collection name, with room to spare.
pub const MAX_DELETE_MESSAGE_BYTES: usize = 512 * 1024;
const _: () = assert!(
    MAX_DELETE_MESSAGE_BYTES
        >= field(lib::MAX_COLLECTION_NAME_BYTES) + lib::MAX_BATCH_POINTS * field(lib::MAX_DOC_ID_BYTES)
);

/// Largest `SetPolicy` message: 64 denied operations (role and a name of up to 64 bytes), 64 source
/// URI prefixes of `MAX_SOURCE_URI_BYTES` (137 KB together), three limits and a 256-byte note.
pub const MAX_POLICY_MESSAGE_BYTES: usize = 256 * 1024;
const _: () = assert!(
    MAX_POLICY_MESSAGE_BYTES
        >= field(lib::MAX_TENANT_NAME_BYTES)
            + field(64 * field(field(64) + 6) + 64 * field(lib::MAX_SOURCE_URI_BYTES) + 3 * 6)
            + 11
            + field(256)
);

/// Largest `Get` and `IssueApiKey` message: a principal (or a user binding) at its limits, 67 KB,
/// next to a collection name and a document id (or a tenant name, a role, a label and an expiry).
pub const MAX_PRINCIPAL_MESSAGE_BYTES: usize = 128 * 1024;
const _: () = assert!(
    MAX_PRINCIPAL_MESSAGE_BYTES
        >= field(lib::MAX_COLLECTION_NAME_BYTES) + field(lib::MAX_DOC_ID_BYTES) + PRINCIPAL_WIRE + 2
);
const _: () = assert!(
    MAX_PRINCIPAL_MESSAGE_BYTES
        >= field(lib::MAX_TENANT_NAME_BYTES) + 6 + field(MAX_KEY_LABEL_BYTES) + 11 + PRINCIPAL_WIRE
);

/// Largest message of every other method (and of each gRPC reflection message): names, numbers and
/// at most one path on the server's host (`RotateMasterKey`, 4,096 bytes at most on Linux).
pub const MAX_SMALL_MESSAGE_BYTES: usize = 64 * 1024;
const _: () = assert!(MAX_SMALL_MESSAGE_BYTES >= field(4096) + field(lib::MAX_TENANT_NAME_BYTES) + 3 * 11);
const _: () = assert!(
    MAX_SMALL_MESSAGE_BYTES
        >= field(lib::MAX_TENANT_NAME_BYTES) + field(bulkhead_query::MAX_GRANT_REASON_BYTES) + field(64) + 11
);

/// Largest `ImportTenant` message: a chunk of [`MAX_ARCHIVE_CHUNK_BYTES`] with its framing (the
/// first message, a name and a tier, is smaller).
pub const MAX_IMPORT_MESSAGE_BYTES: usize = field(MAX_ARCHIVE_CHUNK_BYTES);
const _: () = assert!(MAX_IMPORT_MESSAGE_BYTES >= field(field(lib::MAX_TENANT_NAME_BYTES) + field(16)));

/// The largest request message of one RPC and the name of its constant (for the refusal's
/// message), by the request's HTTP/2 path (`/bulkhead.v1.DataPlane/Upsert`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageLimit {
    /// The largest message length, in bytes, without the 5-byte gRPC prefix.
    pub bytes: usize,
    /// The constant that sets it, as `docs/LIMITS.md` names it.
    pub name: &'static str,
}

/// Every RPC of `bulkhead.v1` with its request limit (`tests/it/admission.rs` checks that every RPC
/// of the service descriptors has a row).
pub const REQUEST_MESSAGE_LIMITS: &[(&str, MessageLimit)] = &[
    ("/bulkhead.v1.DataPlane/CreateCollection", SMALL),
    ("/bulkhead.v1.DataPlane/ListCollections", SMALL),
    ("/bulkhead.v1.DataPlane/DescribeCollection", SMALL),
    ("/bulkhead.v1.DataPlane/DropCollection", SMALL),
    (
        "/bulkhead.v1.DataPlane/Upsert",
        MessageLimit { bytes: MAX_UPSERT_MESSAGE_BYTES, name: "MAX_MESSAGE_BYTES" },
    ),
    ("/bulkhead.v1.DataPlane/Get", PRINCIPAL),
    (
        "/bulkhead.v1.DataPlane/Delete",
        MessageLimit { bytes: MAX_DELETE_MESSAGE_BYTES, name: "MAX_DELETE_MESSAGE_BYTES" },
    ),
    ("/bulkhead.v1.DataPlane/Count", SMALL),
    (
        "/bulkhead.v1.DataPlane/Search",
        MessageLimit { bytes: MAX_SEARCH_MESSAGE_BYTES, name: "MAX_SEARCH_MESSAGE_BYTES" },
    ),
    (
        "/bulkhead.v1.DataPlane/SearchBatch",
        MessageLimit { bytes: MAX_SEARCH_BATCH_MESSAGE_BYTES, name: "MAX_SEARCH_BATCH_MESSAGE_BYTES" },
    ),
    ("/bulkhead.v1.DataPlane/ExportAudit", SMALL),
    // A tenant-admin's own keys: a user binding, as the operator's IssueApiKey.
    ("/bulkhead.v1.DataPlane/IssueOwnApiKey", PRINCIPAL),
    ("/bulkhead.v1.DataPlane/ListOwnApiKeys", SMALL),
    ("/bulkhead.v1.DataPlane/RevokeOwnApiKey", SMALL),
    ("/bulkhead.v1.Admin/CreateTenant", SMALL),
    ("/bulkhead.v1.Admin/ListTenants", SMALL),
    ("/bulkhead.v1.Admin/DescribeTenant", SMALL),
    ("/bulkhead.v1.Admin/DeleteTenant", SMALL),
    ("/bulkhead.v1.Admin/MoveTenant", SMALL),
    ("/bulkhead.v1.Admin/GetMoveStatus", SMALL),
    ("/bulkhead.v1.Admin/IssueApiKey", PRINCIPAL),
    ("/bulkhead.v1.Admin/ListApiKeys", SMALL),
    ("/bulkhead.v1.Admin/RevokeApiKey", SMALL),
    ("/bulkhead.v1.Admin/UnlockApiKey", SMALL),
    ("/bulkhead.v1.Admin/RevokeAllApiKeys", SMALL),
    ("/bulkhead.v1.Admin/RotateTenantKey", SMALL),
    ("/bulkhead.v1.Admin/GetRotationStatus", SMALL),
    ("/bulkhead.v1.Admin/RotateMasterKey", SMALL),
    ("/bulkhead.v1.Admin/ExportAudit", SMALL),
    ("/bulkhead.v1.Admin/VerifyAudit", SMALL),
    ("/bulkhead.v1.Admin/GetPolicy", SMALL),
    (
        "/bulkhead.v1.Admin/SetPolicy",
        MessageLimit { bytes: MAX_POLICY_MESSAGE_BYTES, name: "MAX_POLICY_MESSAGE_BYTES" },
    ),
    ("/bulkhead.v1.Admin/ExportTenant", SMALL),
    // Break-glass grants: a tenant name, a grant id, a reason of at most MAX_GRANT_REASON_BYTES.
    ("/bulkhead.v1.Admin/RequestAccessGrant", SMALL),
    ("/bulkhead.v1.Admin/ApproveAccessGrant", SMALL),
    ("/bulkhead.v1.Admin/ActivateAccessGrant", SMALL),
    ("/bulkhead.v1.Admin/ListAccessGrants", SMALL),
    ("/bulkhead.v1.Admin/RevokeAccessGrant", SMALL),
    (
        "/bulkhead.v1.Admin/ImportTenant",
        MessageLimit { bytes: MAX_IMPORT_MESSAGE_BYTES, name: "MAX_IMPORT_MESSAGE_BYTES" },
    ),
];

const SMALL: MessageLimit = MessageLimit { bytes: MAX_SMALL_MESSAGE_BYTES, name: "MAX_SMALL_MESSAGE_BYTES" };
const PRINCIPAL: MessageLimit =
    MessageLimit { bytes: MAX_PRINCIPAL_MESSAGE_BYTES, name: "MAX_PRINCIPAL_MESSAGE_BYTES" };

/// The request limit of the RPC at `path`; any other path (reflection, an unknown method) gets
/// [`MAX_SMALL_MESSAGE_BYTES`].
pub fn request_message_limit(path: &str) -> MessageLimit {
    REQUEST_MESSAGE_LIMITS.iter().find(|(p, _)| *p == path).map_or(SMALL, |(_, limit)| *limit)
}
