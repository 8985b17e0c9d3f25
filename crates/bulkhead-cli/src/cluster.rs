//! `bulkhead serve --cluster`: the node's membership in a cluster of Bulkhead nodes agreed through
//! etcd (`bulkhead_cluster`, docs/CLUSTER.md). Today a node registers itself under its lease and
//! leaves on a clean stop; routing and moves are later steps.

use anyhow::{Context, Result, bail};
use bulkhead_cluster::{Cluster, DEFAULT_LEASE_TTL_SECS, Membership, NodeInfo, check_name};
use bulkhead_server::config::ClusterConfig;
use std::net::SocketAddr;
use std::time::Duration;

/// How long a clean stop waits for etcd to revoke the node's lease; past it the lease expires on
/// its own, and the store is flushed without waiting longer.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(3);

/// The cluster's name when none is given.
const DEFAULT_CLUSTER_NAME: &str = "default";

/// Joins the cluster the settings name, if any: connects to etcd and registers this node (id,
/// address, capacity, version) under a lease it keeps renewing. `address` is where the server
/// listens, advertised unless the settings name another.
pub(crate) async fn join(settings: &ClusterConfig, address: SocketAddr) -> Result<Option<Membership>> {
    let Some(endpoints) = settings.endpoints()? else { return Ok(None) };
    let Some(id) = settings.node_id.clone() else { bail!("cluster.node_id is needed with cluster.etcd") };
    let name = settings.name.as_deref().unwrap_or(DEFAULT_CLUSTER_NAME);
    check_name("node id", &id)?;
    check_name("cluster name", name)?;
    let advertise = match &settings.advertise {
        Some(advertise) => advertise.clone(),
        None if address.ip().is_unspecified() => {
            bail!("listening on every interface ({address}): give --advertise with the address others reach")
        }
        // A loopback address reaches nobody else unless the whole cluster is on this machine.
        None if address.ip().is_loopback() && !endpoints.iter().all(|e| on_loopback(e)) => {
            bail!("listening on loopback ({address}), etcd elsewhere: give --advertise, reachable by others")
        }
        None => address.to_string(),
    };
    let cluster = Cluster::connect(&endpoints, name)
        .await
        .with_context(|| format!("connecting to etcd at {}", endpoints.join(",")))?;
    let node = NodeInfo {
        id,
        address: advertise,
        capacity: settings.capacity.unwrap_or(1),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let ttl = settings.lease_ttl_secs.map_or(DEFAULT_LEASE_TTL_SECS, i64::from);
    let membership = cluster.join(node.clone(), ttl).await.with_context(|| {
        format!(
            "joining cluster {name:?} as node {:?} (check etcd, and that no other live node has the id)",
            node.id
        )
    })?;
    tracing::info!(
        cluster = name,
        node = %node.id,
        advertise = %node.address,
        lease_ttl_s = membership.lease_ttl().as_secs(),
        "joined the cluster"
    );
    Ok(Some(membership))
}

/// Leaves the cluster on a clean stop: the node's record goes at once instead of at its lease's end.
pub(crate) async fn leave(membership: Option<Membership>) {
    if let Some(membership) = membership {
        let node = membership.node().id.clone();
        match tokio::time::timeout(LEAVE_TIMEOUT, membership.leave()).await {
            Ok(Ok(())) => tracing::info!(%node, "left the cluster"),
            Ok(Err(e)) => {
                tracing::warn!(%node, error = %e, "could not leave the cluster; the lease expires on its own")
            }
            Err(_) => {
                tracing::warn!(%node, "etcd did not answer in time; the node's lease expires on its own")
            }
        }
    }
}

/// Resolves when the node's lease is gone for good (never without a cluster). Logged here, since
/// the server then stops.
pub(crate) async fn lease_lost(fence: Option<bulkhead_cluster::Fence>) {
    match fence {
        Some(fence) => {
            fence.closed_for_good().await;
            tracing::error!("this node's lease expired in etcd: stopping (restart it to rejoin)");
        }
        None => std::future::pending().await,
    }
}

/// Whether an etcd client URL (`http://host:port`) names this machine.
fn on_loopback(endpoint: &str) -> bool {
    let authority = endpoint.strip_prefix("http://").unwrap_or(endpoint);
    let host = authority.rsplit_once(':').map_or(authority, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
