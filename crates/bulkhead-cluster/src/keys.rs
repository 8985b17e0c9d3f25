//! Where Bulkhead's records live in etcd's key space: everything under `/bulkhead/<cluster>/`, so
//! that several clusters (or other users of the same etcd) never meet.
//!
//! ```text
//! /bulkhead/<cluster>/nodes/<node id>      NodeInfo, attached to the node's lease
//! /bulkhead/<cluster>/tenants/<tenant id>  Placement, no lease (it outlives its node's restarts)
//! ```
//!
//! A tenant is named by its id (the store's tenant uid, as the metrics show it), never by its name:
//! tenant names do not leave a node in plaintext.

use crate::error::{ClusterError, Result};

/// The longest cluster name, node id or tenant id used in a key.
pub(crate) const MAX_NAME_BYTES: usize = 128;

/// The key prefixes of one cluster.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    root: String,
}

impl Keys {
    pub(crate) fn new(cluster: &str) -> Result<Keys> {
        check_name("cluster name", cluster)?;
        Ok(Keys { root: format!("/bulkhead/{cluster}/") })
    }

    pub(crate) fn nodes(&self) -> String {
        format!("{}nodes/", self.root)
    }

    pub(crate) fn node(&self, id: &str) -> Result<String> {
        check_name("node id", id)?;
        Ok(format!("{}{id}", self.nodes()))
    }

    pub(crate) fn tenants(&self) -> String {
        format!("{}tenants/", self.root)
    }

    pub(crate) fn tenant(&self, id: &str) -> Result<String> {
        check_name("tenant id", id)?;
        Ok(format!("{}{id}", self.tenants()))
    }
}

/// Checks a name that becomes one path segment in etcd (a cluster name, a node id, a tenant id):
/// 1 to 128 bytes of ASCII letters, digits, `-`, `_` and `.` (not `.` or `..`).
pub fn check_name(field: &'static str, name: &str) -> Result<()> {
    let invalid = |reason| Err(ClusterError::InvalidName { field, reason });
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return invalid("must be 1 to 128 bytes");
    }
    if name == "." || name == ".." {
        return invalid("must not be . or ..");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return invalid("may hold only ASCII letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_path_segments() {
        let keys = Keys::new("prod").expect("valid");
        assert_eq!(keys.node("node-1").expect("valid"), "/bulkhead/prod/nodes/node-1");
        assert_eq!(keys.tenant("acme.eu").expect("valid"), "/bulkhead/prod/tenants/acme.eu");
        for bad in ["", "a/b", "..", ".", "x y", "é", &"n".repeat(129)] {
            assert!(
                matches!(keys.tenant(bad), Err(ClusterError::InvalidName { field: "tenant id", .. })),
                "{bad:?} was accepted"
            );
        }
        assert!(Keys::new("a/b").is_err());
    }
}
