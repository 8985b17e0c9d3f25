//! The two records Bulkhead keeps in etcd, as JSON (readable with `etcdctl get`).

use crate::error::{ClusterError, Result};
use serde::{Deserialize, Serialize};

/// The largest record this crate reads back from etcd: a node record or a placement is a few
/// hundred bytes; anything larger was not written by it.
const MAX_RECORD_BYTES: usize = 4096;

/// A live node, as it registered itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's id, unique among live nodes (a path segment: letters, digits, `-`, `_`, `.`).
    pub id: String,
    /// Where its gRPC server listens, as clients and other nodes reach it (`host:port`).
    pub address: String,
    /// How many tenants it is meant to hold, relative to the other nodes (at least 1): placement
    /// gives a node new tenants in proportion.
    pub capacity: u32,
    /// The Bulkhead version it runs.
    pub version: String,
}

/// Where a tenant lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The node that owns the tenant.
    pub node: String,
    /// Starts at 1 and grows by one with every change of owner; a cached placement is never trusted
    /// past a newer epoch.
    pub epoch: u64,
}

pub(crate) fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    // Serialising plain structs of strings and integers cannot fail.
    serde_json::to_vec(record).unwrap_or_default()
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(key: &[u8], value: &[u8]) -> Result<T> {
    let corrupt =
        |reason: String| ClusterError::Corrupt { key: String::from_utf8_lossy(key).into_owned(), reason };
    if value.len() > MAX_RECORD_BYTES {
        return Err(corrupt(format!("{} bytes, more than {MAX_RECORD_BYTES}", value.len())));
    }
    serde_json::from_slice(value).map_err(|e| corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_foreign_values_are_reported_with_their_key() {
        let placement = Placement { node: "n1".into(), epoch: 3 };
        assert_eq!(decode::<Placement>(b"k", &encode(&placement)).expect("decodes"), placement);
        let err = decode::<Placement>(b"/bulkhead/c/tenants/t", b"not json").expect_err("refused");
        assert!(err.to_string().contains("/bulkhead/c/tenants/t"), "{err}");
        let huge = vec![b' '; MAX_RECORD_BYTES + 1];
        assert!(matches!(decode::<NodeInfo>(b"k", &huge), Err(ClusterError::Corrupt { .. })));
    }
}
