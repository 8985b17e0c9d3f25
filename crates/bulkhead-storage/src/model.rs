//! The records a tenant stores: collections and points, with their validation.

use crate::error::{Result, StorageError};
use crate::ids::{CollectionName, DocId, TenantUid, limits};
use bulkhead_crypto::RecordTag;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// How a collection compares vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Metric {
    /// Cosine distance, `1 - cos(a, b)`. Zero vectors are rejected.
    Cosine,
    /// Inner product; larger is closer.
    Dot,
    /// Euclidean distance (squared, for ranking).
    L2,
}

impl Metric {
    /// Parses `cosine`, `dot` or `l2`.
    pub fn parse(text: &str) -> Option<Metric> {
        match text {
            "cosine" => Some(Metric::Cosine),
            "dot" => Some(Metric::Dot),
            "l2" => Some(Metric::L2),
            _ => None,
        }
    }

    /// The metric's name as [`Metric::parse`] reads it.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Dot => "dot",
            Metric::L2 => "l2",
        }
    }
}

/// A metadata value.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub enum MetaValue {
    /// A keyword, matched by equality.
    Keyword(String),
    /// A set of keywords, matched by membership.
    Keywords(Vec<String>),
    /// A number, matched by ranges.
    Number(f64),
    /// A flag.
    Bool(bool),
}

impl fmt::Debug for MetaValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MetaValue(<redacted>)")
    }
}

/// Who may read a document.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Acl {
    /// Every principal of the tenant.
    #[default]
    TenantWide,
    /// Only the named users and members of the named groups.
    Restricted {
        /// User ids.
        users: Vec<String>,
        /// Group ids.
        groups: Vec<String>,
    },
}

impl fmt::Debug for Acl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Acl::TenantWide => f.write_str("Acl::TenantWide"),
            Acl::Restricted { users, groups } => {
                write!(f, "Acl::Restricted(<{} users, {} groups>)", users.len(), groups.len())
            }
        }
    }
}

/// A collection as its tenant sees it. Bound to the tenant whose handle returned it.
#[derive(Debug, Clone)]
pub struct CollectionInfo {
    pub(crate) tenant: TenantUid,
    pub(crate) number: u32,
    /// The collection's name.
    pub name: CollectionName,
    /// Vector dimension.
    pub dimension: usize,
    /// Distance metric.
    pub metric: Metric,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
}

impl CollectionInfo {
    /// The collection's number inside its tenant: permanent, never reused for another collection.
    pub fn number(&self) -> u32 {
        self.number
    }
}

/// A point to upsert.
#[derive(Clone)]
pub struct NewPoint {
    /// The client's document id.
    pub id: DocId,
    /// The embedding; its length must equal the collection's dimension and every value be finite.
    pub vector: Vec<f32>,
    /// The chunk's text.
    pub text: String,
    /// Metadata fields.
    pub metadata: BTreeMap<String, MetaValue>,
    /// Where the chunk came from.
    pub source_uri: Option<String>,
    /// Who may read it.
    pub acl: Acl,
}

impl fmt::Debug for NewPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewPoint").field("dimension", &self.vector.len()).finish_non_exhaustive()
    }
}

impl NewPoint {
    /// A point with just an id, a vector and a text; tenant-wide ACL, no metadata.
    pub fn new(id: DocId, vector: Vec<f32>, text: impl Into<String>) -> NewPoint {
        NewPoint {
            id,
            vector,
            text: text.into(),
            metadata: BTreeMap::new(),
            source_uri: None,
            acl: Acl::TenantWide,
        }
    }
}

/// A point read back without its vector: what a search hit returns.
#[derive(Clone)]
pub struct PointPayload {
    /// The client's document id.
    pub id: DocId,
    /// The chunk's text.
    pub text: String,
    /// Metadata fields.
    pub metadata: BTreeMap<String, MetaValue>,
    /// Where the chunk came from.
    pub source_uri: Option<String>,
    /// Who may read it.
    pub acl: Acl,
    /// The tenant-wide write sequence number of the write that stored this version.
    pub version: u64,
    /// The data-key generation that sealed it.
    pub key_generation: u32,
}

impl fmt::Debug for PointPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PointPayload")
            .field("version", &self.version)
            .field("key_generation", &self.key_generation)
            .finish_non_exhaustive()
    }
}

/// A point read back: its payload and its vector.
#[derive(Clone)]
pub struct StoredPoint {
    /// Everything but the vector, with what it was sealed under.
    pub payload: PointPayload,
    /// The embedding.
    pub vector: Vec<f32>,
}

impl fmt::Debug for StoredPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredPoint").field("payload", &self.payload).finish_non_exhaustive()
    }
}

/// An opaque reference to a stored point (its keyed tag), as exact scans and indexes hold them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PointRef(pub(crate) RecordTag);

impl PointRef {
    /// The reference as bytes, for an index snapshot.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.0
    }

    /// A reference read back from an index snapshot. It addresses a record only through a
    /// [`TenantHandle`](crate::TenantHandle) of the same tenant and collection, like any other.
    pub fn from_bytes(bytes: [u8; 32]) -> PointRef {
        PointRef(RecordTag(bytes))
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> StorageError {
    StorageError::InvalidArgument { field, reason: reason.into() }
}

/// Checks a vector against a collection's dimension and metric.
pub fn validate_vector(vector: &[f32], dimension: usize, metric: Metric) -> Result<()> {
    if vector.len() != dimension {
        return Err(invalid(
            "vector",
            format!("has dimension {}, the collection expects {dimension}", vector.len()),
        ));
    }
    if let Some(i) = vector.iter().position(|x| !x.is_finite()) {
        return Err(invalid("vector", format!("component {i} is NaN or infinite")));
    }
    // Finite components can still overflow a dot product or a distance; a squared norm below a
    // quarter of f32::MAX keeps every distance between two accepted vectors finite.
    let squared_norm: f64 = vector.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    if squared_norm > f64::from(f32::MAX) / 4.0 {
        return Err(invalid("vector", "has a norm too large for f32 arithmetic"));
    }
    if metric == Metric::Cosine && vector.iter().all(|&x| x == 0.0) {
        return Err(invalid("vector", "is all zeros, which has no cosine direction"));
    }
    Ok(())
}

fn check_len(field: &'static str, text: &str, max: usize) -> Result<()> {
    if text.len() > max {
        return Err(invalid(field, format!("is {} bytes, the limit is {max}", text.len())));
    }
    Ok(())
}

impl NewPoint {
    /// Checks every documented limit for a point of `collection`, and returns the bytes the point
    /// carries (for the per-batch limit).
    pub fn validate(&self, collection: &CollectionInfo) -> Result<usize> {
        validate_vector(&self.vector, collection.dimension, collection.metric)?;
        check_len("text", &self.text, limits::MAX_TEXT_BYTES)?;
        if let Some(uri) = &self.source_uri {
            check_len("source uri", uri, limits::MAX_SOURCE_URI_BYTES)?;
        }
        if self.metadata.len() > limits::MAX_METADATA_FIELDS {
            return Err(invalid("metadata", format!("has more than {} fields", limits::MAX_METADATA_FIELDS)));
        }
        let mut metadata_bytes = 0;
        for (key, value) in &self.metadata {
            if key.is_empty() || key.len() > limits::MAX_METADATA_KEY_BYTES {
                return Err(invalid("metadata", "field names must be 1 to 128 bytes"));
            }
            metadata_bytes += key.len()
                + match value {
                    MetaValue::Keyword(s) => s.len(),
                    MetaValue::Keywords(v) => v.iter().map(|s| s.len() + 1).sum(),
                    MetaValue::Number(n) if !n.is_finite() => {
                        return Err(invalid("metadata", "numbers must be finite"));
                    }
                    MetaValue::Number(_) | MetaValue::Bool(_) => 8,
                };
        }
        if metadata_bytes > limits::MAX_METADATA_BYTES {
            return Err(invalid("metadata", format!("exceeds {} bytes", limits::MAX_METADATA_BYTES)));
        }
        let mut acl_bytes = 0;
        if let Acl::Restricted { users, groups } = &self.acl {
            acl_bytes = users.iter().chain(groups).map(String::len).sum();
            if users.len() + groups.len() > limits::MAX_ACL_ENTRIES {
                return Err(invalid(
                    "acl",
                    format!("names more than {} users and groups", limits::MAX_ACL_ENTRIES),
                ));
            }
            if users.iter().chain(groups).any(|p| p.is_empty() || p.len() > limits::MAX_PRINCIPAL_BYTES) {
                return Err(invalid("acl", "user and group names must be 1 to 256 bytes"));
            }
        }
        Ok(self.id.as_str().len()
            + 4 * self.vector.len()
            + self.text.len()
            + metadata_bytes
            + self.source_uri.as_ref().map_or(0, String::len)
            + acl_bytes)
    }
}
