//! Nodes, leases, fencing and placement against a real three-member etcd on loopback.

mod harness;

use bulkhead_cluster::{Cluster, ClusterError, Lookup, NodeInfo, Placement, PlacementPolicy};
use harness::Etcd;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn node(id: &str, capacity: u32) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        address: format!("127.0.0.1:{}", 7000 + id.len()),
        capacity,
        version: "test".into(),
    }
}

async fn ids(cluster: &Cluster) -> Vec<String> {
    cluster.nodes().await.expect("nodes").into_iter().map(|n| n.id).collect()
}

/// Polls `check` every 100 ms until it holds, for at most `limit`.
async fn eventually<F: std::future::Future<Output = bool>>(
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_live_under_their_leases_and_an_id_is_held_by_one_live_node() {
    let etcd = Etcd::start(3).await;
    let cluster = Cluster::connect(&etcd.endpoints(), "members").await.expect("connects");
    let a = cluster.join(node("a", 1), 2).await.expect("a joins");
    let b = cluster.join(node("b", 1), 2).await.expect("b joins");
    let c = cluster.join(node("c", 1), 2).await.expect("c joins");
    assert_eq!(ids(&cluster).await, ["a", "b", "c"]);
    // Asked for 2 s, each got the minimum: a shorter lease would not survive one lost renewal.
    let min = Duration::from_secs(bulkhead_cluster::MIN_LEASE_TTL_SECS as u64);
    assert!(a.lease_ttl() >= min && c.lease_ttl() >= min, "{:?}", a.lease_ttl());
    assert_eq!(cluster.nodes().await.expect("nodes")[0], node("a", 1), "the record is what a registered");
    assert!(a.fence().is_open() && b.fence().is_open() && c.fence().is_open());

    let taken = cluster.join(node("a", 1), 2).await.expect_err("a's id is held");
    assert!(matches!(taken, ClusterError::NodeTaken(ref id) if id == "a"), "{taken}");
    for bad in [NodeInfo { capacity: 0, ..node("d", 1) }, NodeInfo { address: String::new(), ..node("d", 1) }]
    {
        assert!(matches!(cluster.join(bad, 2).await, Err(ClusterError::InvalidName { .. })));
    }
    assert!(matches!(cluster.join(node("d/e", 1), 2).await, Err(ClusterError::InvalidName { .. })));

    // Leaving revokes the lease: the record goes at once, and the fence closes.
    let b_fence = b.fence();
    b.leave().await.expect("b leaves");
    assert!(!b_fence.is_open());
    assert_eq!(ids(&cluster).await, ["a", "c"]);

    // A node that stops without leaving (a crash) keeps its record until its lease expires, and
    // its fence closes at once; then its id is free again.
    let c_fence = c.fence();
    drop(c);
    assert!(!c_fence.is_open());
    assert_eq!(ids(&cluster).await, ["a", "c"], "the lease outlives the process for its TTL");
    assert!(
        eventually(Duration::from_secs(20), || async { ids(&cluster).await == ["a"] }).await,
        "c's record did not go with its lease"
    );
    // a kept renewing meanwhile, past several of its TTLs.
    assert!(a.fence().is_open());
    let c_again = cluster.join(node("c", 1), 2).await.expect("c's id is free after its lease expired");
    assert!(c_again.fence().is_open());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tenants_spread_over_the_live_nodes_by_capacity() {
    let etcd = Etcd::start(3).await;
    let cluster = Cluster::connect(&etcd.endpoints(), "spread").await.expect("connects");
    let _a = cluster.join(node("a", 1), 5).await.expect("joins");
    let _b = cluster.join(node("b", 1), 5).await.expect("joins");
    let _c = cluster.join(node("c", 2), 5).await.expect("joins");
    let mut placed: HashMap<String, usize> = HashMap::new();
    for i in 0..1000 {
        let placement =
            cluster.place(&format!("t{i:04}"), PlacementPolicy::LeastLoaded).await.expect("placed");
        assert_eq!(placement.epoch, 1);
        *placed.entry(placement.node).or_default() += 1;
    }
    assert_eq!(placed, HashMap::from([("a".into(), 250), ("b".into(), 250), ("c".into(), 500)]));
    let all = cluster.placements().await.expect("placements");
    assert_eq!(all.len(), 1000);
    // Placing a placed tenant again answers where it is, under any policy that agrees.
    for i in (0..1000).step_by(97) {
        let tenant = format!("t{i:04}");
        let again = cluster.place(&tenant, PlacementPolicy::LeastLoaded).await.expect("placed");
        assert_eq!(again, all[&tenant]);
        assert_eq!(cluster.placement(&tenant).await.expect("read"), Some(again));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_placements_of_the_same_tenants_agree() {
    let etcd = Etcd::start(3).await;
    let cluster = Cluster::connect(&etcd.endpoints(), "race").await.expect("connects");
    let _a = cluster.join(node("a", 1), 5).await.expect("joins");
    let _b = cluster.join(node("b", 1), 5).await.expect("joins");
    let tenants: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
    let mut placers = Vec::new();
    for p in 0..4 {
        // Each placer its own connection, and its own order.
        let (endpoints, tenants) = (etcd.endpoints(), tenants.clone());
        placers.push(tokio::spawn(async move {
            let cluster = Cluster::connect(&endpoints, "race").await.expect("connects");
            let mut seen = HashMap::new();
            let order: Vec<&String> =
                if p % 2 == 0 { tenants.iter().collect() } else { tenants.iter().rev().collect() };
            for tenant in order {
                seen.insert(
                    tenant.clone(),
                    cluster.place(tenant, PlacementPolicy::LeastLoaded).await.expect("placed"),
                );
            }
            seen
        }));
    }
    let stored = {
        let mut answers = Vec::new();
        for placer in placers {
            answers.push(placer.await.expect("placer"));
        }
        let stored = cluster.placements().await.expect("placements");
        for answer in &answers {
            assert_eq!(answer, &stored, "a placer was told another node than the one stored");
        }
        stored
    };
    assert_eq!(stored.len(), 100);
    assert!(stored.values().all(|p| p.epoch == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_pins_a_new_tenant_but_a_placed_one_only_moves() {
    let etcd = Etcd::start(3).await;
    let cluster = Cluster::connect(&etcd.endpoints(), "pins").await.expect("connects");
    let _a = cluster.join(node("a", 1), 5).await.expect("joins");
    let _b = cluster.join(node("b", 1), 5).await.expect("joins");
    let pinned = cluster.place("acme", PlacementPolicy::Pinned("b".into())).await.expect("pinned");
    assert_eq!((pinned.node.as_str(), pinned.epoch), ("b", 1));
    assert_eq!(cluster.place("acme", PlacementPolicy::Pinned("b".into())).await.expect("same"), pinned);
    assert_eq!(cluster.place("acme", PlacementPolicy::LeastLoaded).await.expect("same"), pinned);
    let moved = cluster.place("acme", PlacementPolicy::Pinned("a".into())).await.expect_err("a move");
    assert!(matches!(moved, ClusterError::AlreadyPlaced { ref current } if current == "b"), "{moved}");
    let unknown = cluster.place("other", PlacementPolicy::Pinned("zz".into())).await.expect_err("no zz");
    assert!(matches!(unknown, ClusterError::UnknownNode(ref id) if id == "zz"), "{unknown}");
    assert_eq!(cluster.placement("other").await.expect("read"), None, "a refused pin places nothing");
    assert!(matches!(
        cluster.place("bad/id", PlacementPolicy::LeastLoaded).await,
        Err(ClusterError::InvalidName { field: "tenant id", .. })
    ));
    let empty = Cluster::connect(&etcd.endpoints(), "empty").await.expect("connects");
    assert!(matches!(empty.place("t", PlacementPolicy::LeastLoaded).await, Err(ClusterError::NoLiveNode)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_etcd_is_fenced_before_its_lease_expires_and_stays_fenced() {
    let mut etcd = Etcd::start(3).await;
    // The node reaches etcd through member 2 only; an observer through members 0 and 1.
    let endpoints = etcd.endpoints();
    let node_side = Cluster::connect(&endpoints[2..], "fence").await.expect("connects");
    let observer = Cluster::connect(&endpoints[..2], "fence").await.expect("connects");
    let member = node_side.join(node("a", 1), bulkhead_cluster::MIN_LEASE_TTL_SECS).await.expect("joins");
    let (fence, ttl, margin) = (member.fence(), member.lease_ttl(), member.fence_margin());
    tokio::time::sleep(ttl / 2).await;
    assert!(fence.is_open());
    // Cut off: its member dies, while the other two (a quorum) live on and keep the lease's clock.
    etcd.kill(2);
    let cut = Instant::now();
    // Every renewal etcd acknowledged was sent before the cut.
    let open_until = fence.open_until().expect("the fence was open");
    assert!(open_until <= cut + ttl - margin, "open until {:?} after the cut", open_until - cut);
    // When the observer sees the record go, etcd has expired the lease: the fence was closed by then.
    let expired = eventually(ttl * 3, || async { ids(&observer).await.is_empty() }).await;
    assert!(expired, "etcd did not expire the cut-off node's lease");
    assert!(!fence.is_open(), "the fence was open when etcd had already expired the lease");
    // The member comes back: the node's renewals find the lease gone and close its fence for good;
    // the node does not come back by itself.
    etcd.restart(2);
    etcd.wait_member(2).await;
    let closed_for_good = eventually(ttl * 2, || async { fence.open_until().is_none() }).await;
    assert!(closed_for_good, "the node did not notice that its lease had expired");
    assert!(ids(&observer).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_etcd_member_killed_and_restored_stops_nothing() {
    let mut etcd = Etcd::start(3).await;
    let cluster = Cluster::connect(&etcd.endpoints(), "member-loss").await.expect("connects");
    // The default TTL: a lease outlives the election that follows the loss of etcd's leader (about
    // a second here) with room to spare.
    let ttl = bulkhead_cluster::DEFAULT_LEASE_TTL_SECS;
    let a = cluster.join(node("a", 1), ttl).await.expect("joins");
    let b = cluster.join(node("b", 1), ttl).await.expect("joins");
    for round in 0..3 {
        etcd.kill(round);
        // Two members of three are a quorum: placements go on, and the nodes' leases stay renewed
        // for longer than their TTL.
        let until = Instant::now() + a.lease_ttl() + Duration::from_secs(1);
        let mut placed = 0;
        while Instant::now() < until {
            let tenant = format!("r{round}-t{placed}");
            // The connection moves on from the dead member by itself.
            let placement = cluster.place(&tenant, PlacementPolicy::LeastLoaded).await.expect("placed");
            assert!(placement.node == "a" || placement.node == "b");
            assert!(a.fence().is_open() && b.fence().is_open(), "a fence closed with a quorum up");
            placed += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(placed > 0);
        etcd.restart(round);
        // Rejoined and caught up before the next round kills another: never fewer than two up.
        etcd.wait_member(round).await;
    }
    assert_eq!(ids(&cluster).await, ["a", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_placement_map_follows_placements_and_flips_across_a_lost_member() {
    let mut etcd = Etcd::start(3).await;
    let endpoints = etcd.endpoints();
    let cluster = Cluster::connect(&endpoints, "map").await.expect("connects");
    let _a = cluster.join(node("a", 1), 5).await.expect("joins");
    let _b = cluster.join(node("b", 1), 5).await.expect("joins");
    let early = cluster.place("early", PlacementPolicy::Pinned("a".into())).await.expect("placed");
    // The map's own connection starts at member 0.
    let watcher = Cluster::connect(&endpoints, "map").await.expect("connects");
    let map = watcher.placement_map().await.expect("loads");
    assert_eq!(map.lookup("early"), Lookup::Current(Some(early.clone())));
    assert_eq!(map.lookup("nobody"), Lookup::Current(None));
    let later = cluster.place("later", PlacementPolicy::Pinned("b".into())).await.expect("placed");
    let shows = |tenant: &'static str, placement: Placement| {
        let map = &map;
        move || {
            let expected = Lookup::Current(Some(placement.clone()));
            async move { map.lookup(tenant) == expected }
        }
    };
    assert!(eventually(Duration::from_secs(5), shows("later", later.clone())).await, "a new placement");

    // A flip from the placement read gives the tenant to another node at the next epoch; a flip
    // from what is now old is refused, naming the current placement.
    let flipped = cluster.flip("early", &early, "b").await.expect("flipped");
    assert_eq!(flipped, Placement { node: "b".into(), epoch: 2 });
    // The same flip sent again (as after a lost answer) finds its own result.
    assert_eq!(cluster.flip("early", &early, "b").await.expect("the same flip"), flipped);
    let stale = cluster.flip("early", &early, "a").await.expect_err("from an old placement");
    assert!(matches!(stale, ClusterError::PlacementChanged { ref node, epoch: 2 } if node == "b"), "{stale}");
    assert!(eventually(Duration::from_secs(5), shows("early", flipped.clone())).await, "a flip");
    assert!(matches!(cluster.flip("later", &later, "zz").await, Err(ClusterError::UnknownNode(_))));
    assert!(matches!(cluster.flip("none", &early, "a").await, Err(ClusterError::NotPlaced)));
    assert_eq!(
        cluster.placement("later").await.expect("read"),
        Some(later.clone()),
        "refused flips changed nothing"
    );

    // The watcher's member dies; a flip made meanwhile still reaches the map once it has moved on.
    // (If member 0 led, the flip waits out the election: retried, as a mover would.)
    etcd.kill(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let moved = loop {
        match cluster.flip("later", &later, "a").await {
            Ok(moved) => break moved,
            Err(ClusterError::Etcd(e)) if Instant::now() < deadline => {
                eprintln!("flip retried: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(eventually(Duration::from_secs(15), shows("later", moved)).await, "the map did not catch up");
    assert_eq!(map.len(), 2);

    // etcd gone entirely: within its silence limit the map stops answering as if it knew.
    etcd.kill(1);
    etcd.kill(2);
    let limit = bulkhead_cluster::SILENCE_LIMIT + bulkhead_cluster::PROGRESS_EVERY + Duration::from_secs(5);
    assert!(eventually(limit, || async { map.lookup("later") == Lookup::Stale }).await, "still Current");
    assert_eq!(map.lookup("nobody"), Lookup::Stale);
}
