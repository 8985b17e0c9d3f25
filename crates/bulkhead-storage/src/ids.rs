//! Validated newtypes for every name and id a client supplies, and the documented limits they obey.
//!
//! Their `Debug` output never prints the value: ids and names are tenant data.

use crate::error::{Result, StorageError};
use std::fmt;

/// The documented limits on what one request may carry. `docs/LIMITS.md` lists them in a table, and a
/// test (`tests/it/limits_doc.rs`) fails when the table and these constants disagree.
pub mod limits {
    /// Longest tenant name, in bytes.
    pub const MAX_TENANT_NAME_BYTES: usize = 64;
    /// Longest collection name, in bytes.
    pub const MAX_COLLECTION_NAME_BYTES: usize = 64;
    /// Longest document id, in bytes.
    pub const MAX_DOC_ID_BYTES: usize = 256;
    /// Largest text payload of one point, in bytes.
    pub const MAX_TEXT_BYTES: usize = 256 * 1024;
    /// Largest encoded metadata of one point, in bytes.
    pub const MAX_METADATA_BYTES: usize = 64 * 1024;
    /// Most metadata fields on one point.
    pub const MAX_METADATA_FIELDS: usize = 64;
    /// Longest metadata field name, in bytes.
    pub const MAX_METADATA_KEY_BYTES: usize = 128;
    /// Longest source URI, in bytes.
    pub const MAX_SOURCE_URI_BYTES: usize = 2048;
    /// Most users plus groups named in one document ACL.
    pub const MAX_ACL_ENTRIES: usize = 1024;
    /// Longest user or group name in an ACL, in bytes.
    pub const MAX_PRINCIPAL_BYTES: usize = 256;
    /// Largest vector dimension a collection may declare.
    pub const MAX_DIMENSION: usize = 4096;
    /// Most points in one upsert or delete batch.
    pub const MAX_BATCH_POINTS: usize = 1024;
    /// Most bytes (ids, vectors, texts, metadata, source URIs and ACLs together) in one upsert batch.
    pub const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;
    /// Largest k a search may ask for.
    pub const MAX_K: usize = 1000;
    /// Largest ef (graph-search candidates) a search may ask for.
    pub const MAX_EF: usize = 4096;
    /// Most collections one tenant may have.
    pub const MAX_COLLECTIONS_PER_TENANT: usize = 1024;
    /// Deepest nesting of and/or/not in a search filter (a single condition has depth 1).
    pub const MAX_FILTER_DEPTH: usize = 8;
    /// Most conditions (leaves) in one search filter.
    pub const MAX_FILTER_CONDITIONS: usize = 64;
    /// Most nodes of any kind (conditions and every `and`, `or` and `not`) in one search filter:
    /// each node costs a bitmap operation, so empty `and`/`or` nodes count as much as conditions.
    pub const MAX_FILTER_NODES: usize = 256;
    /// Most values in one set-membership condition, and most children of one and/or.
    pub const MAX_FILTER_LIST: usize = 1024;
    /// Longest keyword value in a filter, in bytes.
    pub const MAX_FILTER_VALUE_BYTES: usize = 1024;
    /// Most groups a search principal may hold.
    pub const MAX_PRINCIPAL_GROUPS: usize = 256;
}

fn invalid(field: &'static str, reason: impl Into<String>) -> StorageError {
    StorageError::InvalidArgument { field, reason: reason.into() }
}

macro_rules! redacted_debug {
    ($ty:ident) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($ty), "(<redacted, {} bytes>)"), self.0.len())
            }
        }
    };
}

/// A tenant's name: 1 to 64 bytes of lowercase ASCII letters, digits, `-` and `_`, starting with a
/// letter or digit. Operators choose it; it never appears in plaintext on disk.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TenantName(String);
redacted_debug!(TenantName);

impl TenantName {
    /// Validates a tenant name.
    pub fn new(name: impl Into<String>) -> Result<TenantName> {
        let name = name.into();
        let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        if name.is_empty() || name.len() > limits::MAX_TENANT_NAME_BYTES {
            return Err(invalid("tenant name", "must be 1 to 64 bytes"));
        }
        if !name.chars().all(ok_char) || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(invalid(
                "tenant name",
                "use lowercase letters, digits, '-' and '_', starting with a letter or digit",
            ));
        }
        Ok(TenantName(name))
    }

    /// The name as text (for the operator's own output).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A collection's name: 1 to 64 bytes of ASCII letters, digits, `-`, `_` and `.`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CollectionName(String);
redacted_debug!(CollectionName);

impl CollectionName {
    /// Validates a collection name.
    pub fn new(name: impl Into<String>) -> Result<CollectionName> {
        let name = name.into();
        if name.is_empty() || name.len() > limits::MAX_COLLECTION_NAME_BYTES {
            return Err(invalid("collection name", "must be 1 to 64 bytes"));
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            return Err(invalid("collection name", "use ASCII letters, digits, '-', '_' and '.'"));
        }
        Ok(CollectionName(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A document id chosen by the client: 1 to 256 bytes of UTF-8 without control characters. Stored only
/// inside sealed values; record keys carry a keyed hash of it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocId(String);
redacted_debug!(DocId);

impl DocId {
    /// Validates a document id.
    pub fn new(id: impl Into<String>) -> Result<DocId> {
        let id = id.into();
        if id.is_empty() || id.len() > limits::MAX_DOC_ID_BYTES {
            return Err(invalid("document id", "must be 1 to 256 bytes"));
        }
        if id.chars().any(char::is_control) {
            return Err(invalid("document id", "must not contain control characters"));
        }
        Ok(DocId(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tenant's opaque, random, permanent identity: what keys, column families and record keys use
/// instead of its name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantUid([u8; 16]);

impl fmt::Debug for TenantUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantUid({})", hex::encode(&self.0[..4]))
    }
}

impl TenantUid {
    pub(crate) fn random() -> TenantUid {
        TenantUid(bulkhead_crypto::random_bytes())
    }

    pub(crate) fn from_bytes(bytes: [u8; 16]) -> TenantUid {
        TenantUid(bytes)
    }

    /// The full uid in hex (32 characters), as audit exports name a tenant.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// A uid from its full hex form; `None` if `text` is not 32 hex characters.
    pub fn from_hex(text: &str) -> Option<TenantUid> {
        let mut raw = [0u8; 16];
        hex::decode_to_slice(text, &mut raw).ok().map(|()| TenantUid(raw))
    }

    /// The opaque bytes (they reveal nothing about the tenant).
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// A short opaque label for logs and metrics.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }
}
