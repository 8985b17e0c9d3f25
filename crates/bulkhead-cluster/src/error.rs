//! What can go wrong when agreeing with etcd, each with a message an operator can act on.

use thiserror::Error;

/// An error of the cluster layer.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// etcd could not be reached or refused the call (its message, which names no tenant data).
    #[error("etcd: {0}")]
    Etcd(String),
    /// A node id, tenant id or cluster name that cannot be a key.
    #[error("invalid {field}: {reason}")]
    InvalidName { field: &'static str, reason: &'static str },
    /// Another live node holds this node id.
    #[error("node id {0:?} is held by a live node (another process, or this one's previous lease)")]
    NodeTaken(String),
    /// No node is alive to take a new tenant.
    #[error("no live node to place the tenant on")]
    NoLiveNode,
    /// A pin named a node that is not alive.
    #[error("node {0:?} is not a live member of the cluster")]
    UnknownNode(String),
    /// A pin asked for another node than the one the tenant already lives on: moving a tenant
    /// moves its data (`admin move-tenant`), not only its placement.
    #[error("tenant is already placed on node {current:?}; moving it is a tenant move, not a pin")]
    AlreadyPlaced { current: String },
    /// A placement changed by someone else since it was read (a move raced this one).
    #[error("the tenant's placement changed meanwhile: now node {node:?} at epoch {epoch}")]
    PlacementChanged { node: String, epoch: u64 },
    /// A tenant with no placement was asked to move.
    #[error("the tenant has no placement")]
    NotPlaced,
    /// A record in etcd this crate cannot read (written by something else, or a newer version).
    #[error("unreadable record at {key}: {reason}")]
    Corrupt { key: String, reason: String },
}

impl From<etcd_client::Error> for ClusterError {
    fn from(e: etcd_client::Error) -> Self {
        ClusterError::Etcd(e.to_string())
    }
}

/// The cluster layer's result.
pub type Result<T> = std::result::Result<T, ClusterError>;
