//! Where tenants live: each tenant's placement is created once by a transaction, on the
//! least-loaded live node or on the node an operator pins.

use crate::error::{ClusterError, Result};
use crate::membership::Cluster;
use crate::records::{NodeInfo, Placement, decode, encode};
use etcd_client::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse};
use std::collections::HashMap;

/// How [`Cluster::place`] chooses a new tenant's node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlacementPolicy {
    /// The live node with the fewest tenants for its capacity (ties to the smaller node id).
    LeastLoaded,
    /// This node, which must be alive (an operator's choice).
    Pinned(String),
}

impl Cluster {
    /// A tenant's placement, if it has one.
    pub async fn placement(&self, tenant: &str) -> Result<Option<Placement>> {
        let key = self.keys.tenant(tenant)?;
        self.conn.get(&key).await?.map(|kv| decode(kv.key(), kv.value())).transpose()
    }

    /// Every placement, by tenant id.
    pub async fn placements(&self) -> Result<HashMap<String, Placement>> {
        let prefix = self.keys.tenants();
        let records = self.conn.list(&prefix).await?;
        records
            .iter()
            .map(|kv| {
                let tenant = String::from_utf8_lossy(&kv.key()[prefix.len()..]).into_owned();
                Ok((tenant, decode(kv.key(), kv.value())?))
            })
            .collect()
    }

    /// Places a tenant: returns its placement if it has one, else creates it (epoch 1) on the node
    /// the policy chooses. Two callers placing the same tenant at once get the same answer: the
    /// placement is created by a transaction that succeeds only where none exists.
    ///
    /// A pin to another node than the one a placed tenant lives on is refused
    /// ([`ClusterError::AlreadyPlaced`]): moving a tenant moves its data too. A node that leaves
    /// between being chosen and the placement's creation fails it with
    /// [`ClusterError::UnknownNode`]; nothing is placed, and placing again chooses among the rest.
    pub async fn place(&self, tenant: &str, policy: PlacementPolicy) -> Result<Placement> {
        let key = self.keys.tenant(tenant)?;
        if let Some(existing) = self.placement(tenant).await? {
            return agreed(existing, &policy);
        }
        let nodes = self.nodes().await?;
        let node = match &policy {
            PlacementPolicy::Pinned(id) => nodes
                .iter()
                .find(|n| &n.id == id)
                .ok_or_else(|| ClusterError::UnknownNode(id.clone()))?
                .id
                .clone(),
            PlacementPolicy::LeastLoaded => least_loaded(&nodes, &self.placements().await?)?,
        };
        // Created only where no placement exists, and only while the chosen node is still alive
        // (its record held by its lease).
        let node_key = self.keys.node(&node)?;
        let placement = Placement { node, epoch: 1 };
        let create = Txn::new()
            .when([
                Compare::create_revision(key.as_str(), CompareOp::Equal, 0),
                Compare::version(node_key.as_str(), CompareOp::Greater, 0),
            ])
            .and_then([TxnOp::put(key.as_str(), encode(&placement), None)])
            .or_else([TxnOp::get(key.as_str(), None)]);
        let response = self.conn.txn(&create).await?;
        if response.succeeded() {
            return Ok(placement);
        }
        // Someone else placed it first (theirs stands), or the chosen node has just left.
        for op in response.op_responses() {
            if let TxnOpResponse::Get(get) = op
                && let Some(kv) = get.kvs().first()
            {
                return agreed(decode(kv.key(), kv.value())?, &policy);
            }
        }
        Err(ClusterError::UnknownNode(placement.node))
    }
}

impl Cluster {
    /// Gives a placed tenant to node `to` (a move's last step, once its data is there): succeeds
    /// only while the placement is still `from` and `to` is alive, and raises the epoch by one.
    /// The transaction compares the record's revision as read, not its bytes, so a record written
    /// by another tool or version that reads as `from` still flips. A flip sent twice (the first
    /// answer lost) finds its own result and succeeds.
    pub async fn flip(&self, tenant: &str, from: &Placement, to: &str) -> Result<Placement> {
        let key = self.keys.tenant(tenant)?;
        let node_key = self.keys.node(to)?;
        let next = Placement { node: to.to_owned(), epoch: from.epoch + 1 };
        let Some(read) = self.conn.get(&key).await? else { return Err(ClusterError::NotPlaced) };
        let current = decode::<Placement>(read.key(), read.value())?;
        if current == next {
            return Ok(next);
        }
        if &current != from {
            return Err(ClusterError::PlacementChanged { node: current.node, epoch: current.epoch });
        }
        let change = Txn::new()
            .when([
                Compare::mod_revision(key.as_str(), CompareOp::Equal, read.mod_revision()),
                Compare::version(node_key.as_str(), CompareOp::Greater, 0),
            ])
            .and_then([TxnOp::put(key.as_str(), encode(&next), None)])
            .or_else([TxnOp::get(key.as_str(), None), TxnOp::get(node_key.as_str(), None)]);
        let response = self.conn.txn(&change).await?;
        if response.succeeded() {
            return Ok(next);
        }
        let found: Vec<Option<(Vec<u8>, Vec<u8>)>> = response
            .op_responses()
            .into_iter()
            .map(|op| match op {
                TxnOpResponse::Get(get) => {
                    get.kvs().first().map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
                }
                _ => None,
            })
            .collect();
        let now = match found.first() {
            Some(Some((k, v))) => decode::<Placement>(k, v)?,
            _ => return Err(ClusterError::NotPlaced),
        };
        if now == next {
            // This flip, sent twice: the first landed.
            return Ok(next);
        }
        if now != current {
            return Err(ClusterError::PlacementChanged { node: now.node, epoch: now.epoch });
        }
        match found.get(1) {
            Some(Some(_)) => Err(ClusterError::PlacementChanged { node: now.node, epoch: now.epoch }),
            _ => Err(ClusterError::UnknownNode(to.to_owned())),
        }
    }
}

/// An existing placement, checked against what the caller asked for.
fn agreed(existing: Placement, policy: &PlacementPolicy) -> Result<Placement> {
    match policy {
        PlacementPolicy::Pinned(node) if node != &existing.node => {
            Err(ClusterError::AlreadyPlaced { current: existing.node })
        }
        _ => Ok(existing),
    }
}

/// The live node with the fewest placed tenants for its capacity; ties to the smaller id.
fn least_loaded(nodes: &[NodeInfo], placements: &HashMap<String, Placement>) -> Result<String> {
    let mut load: HashMap<&str, u64> = HashMap::new();
    for placement in placements.values() {
        *load.entry(placement.node.as_str()).or_default() += 1;
    }
    nodes
        .iter()
        .min_by(|a, b| {
            // a's load / a's capacity against b's, compared without division.
            let (la, lb) = (
                load.get(a.id.as_str()).copied().unwrap_or(0),
                load.get(b.id.as_str()).copied().unwrap_or(0),
            );
            (u128::from(la) * u128::from(b.capacity))
                .cmp(&(u128::from(lb) * u128::from(a.capacity)))
                .then_with(|| a.id.cmp(&b.id))
        })
        .map(|n| n.id.clone())
        .ok_or(ClusterError::NoLiveNode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, capacity: u32) -> NodeInfo {
        NodeInfo { id: id.into(), address: format!("{id}:1"), capacity, version: "test".into() }
    }

    fn placed(counts: &[(&str, usize)]) -> HashMap<String, Placement> {
        let mut out = HashMap::new();
        for (node, count) in counts {
            for i in 0..*count {
                out.insert(format!("{node}-t{i}"), Placement { node: (*node).into(), epoch: 1 });
            }
        }
        out
    }

    #[test]
    fn the_least_loaded_node_for_its_capacity_is_chosen_and_ties_go_to_the_smaller_id() {
        let nodes = [node("a", 1), node("b", 1), node("c", 2)];
        assert_eq!(least_loaded(&nodes, &HashMap::new()).expect("some"), "a");
        assert_eq!(least_loaded(&nodes, &placed(&[("a", 1)])).expect("some"), "b");
        // c holds twice as many for twice the capacity: level with a and b, and "a" < "c".
        assert_eq!(least_loaded(&nodes, &placed(&[("a", 2), ("b", 2), ("c", 4)])).expect("some"), "a");
        assert_eq!(least_loaded(&nodes, &placed(&[("a", 2), ("b", 2), ("c", 3)])).expect("some"), "c");
        // A dead node's tenants count for nobody; a node with none placed yet is chosen.
        assert_eq!(least_loaded(&nodes[1..], &placed(&[("a", 9), ("b", 1)])).expect("some"), "c");
        assert!(matches!(least_loaded(&[], &HashMap::new()), Err(ClusterError::NoLiveNode)));
    }

    #[test]
    fn a_pin_agrees_only_with_the_node_the_tenant_lives_on() {
        let existing = Placement { node: "a".into(), epoch: 2 };
        assert_eq!(agreed(existing.clone(), &PlacementPolicy::LeastLoaded).expect("ok"), existing);
        assert_eq!(agreed(existing.clone(), &PlacementPolicy::Pinned("a".into())).expect("ok"), existing);
        assert!(matches!(
            agreed(existing, &PlacementPolicy::Pinned("b".into())),
            Err(ClusterError::AlreadyPlaced { current }) if current == "a"
        ));
    }
}
