//! Who serves which tenant, when Bulkhead runs on several nodes: agreed through etcd, never by a
//! protocol of our own (`docs/CLUSTER.md`).
//!
//! - A node [joins](Cluster::join) by writing its record (address, capacity, version) under a lease
//!   of its own; the record lives exactly as long as the lease, so the live nodes are the records
//!   etcd holds ([`Cluster::nodes`]).
//! - A tenant's [`Placement`] (its node and an epoch) is a key written by a transaction: created
//!   once, on the least-loaded live node or the one an operator pins ([`Cluster::place`]), and never
//!   overwritten except by a transaction that compares the placement it read ([`Cluster::flip`],
//!   a move's last step). A [`PlacementMap`] keeps every placement in memory from a watch.
//! - A node serves only while its lease is surely alive: its [`Fence`] closes before the lease could
//!   have expired on etcd's side, measured from when the last renewal that etcd acknowledged was
//!   *sent*, so that a node cut off from etcd stops before another could be given its tenants.
//!
//! This crate holds no tenant data and no keys: node records and placements hold node ids,
//! addresses and tenant ids. Callers name a tenant by its uid, never by its name (tenant names do
//! not leave a node in plaintext); the crate cannot tell the two apart.
//!
//! Not supported yet: TLS to etcd and etcd's own authentication. Until they are, etcd must be
//! reachable only by Bulkhead's nodes (a private network), since whoever can write to it decides
//! where tenants are served.

mod connection;
mod error;
mod fence;
mod keys;
mod map;
mod membership;
mod placement;
mod records;

pub use error::{ClusterError, Result};
pub use fence::Fence;
pub use keys::check_name;
pub use map::{Lookup, PROGRESS_EVERY, PlacementMap, SILENCE_LIMIT};
pub use membership::{Cluster, Membership};
pub use placement::PlacementPolicy;
pub use records::{NodeInfo, Placement};

/// How long a node's lease lives without a renewal, unless the node asks otherwise
/// ([`Cluster::join`]). A node renews it three times per period.
pub const DEFAULT_LEASE_TTL_SECS: i64 = 10;

/// The shortest lease a node takes: with less, one renewal lost to a slow round trip or an etcd
/// election would close the fence (it stays open three quarters of a TTL after a renewal is sent,
/// and renewals go a third of a TTL apart).
pub const MIN_LEASE_TTL_SECS: i64 = 5;
