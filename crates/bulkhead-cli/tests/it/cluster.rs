//! `bulkhead serve --cluster`: the binary registers itself in etcd under its lease before it says
//! it serves, refuses to start with the id of a live node, and leaves on SIGTERM.

#[allow(dead_code)]
#[path = "../../../bulkhead-cluster/tests/harness/mod.rs"]
mod etcd;

use crate::serve::start_serve;
use bulkhead_cluster::Cluster;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

#[test]
fn a_served_node_registers_under_its_lease_and_leaves_on_sigterm() {
    let rt = runtime();
    let etcd = rt.block_on(etcd::Etcd::start(1));
    let members = etcd.endpoints().iter().map(|e| e.replace("http://", "")).collect::<Vec<_>>().join(",");
    let url = format!("etcd://{members}");
    let cluster = rt.block_on(Cluster::connect(&etcd.endpoints(), "it")).expect("connects");
    let flags = |id: &'static str| -> Vec<String> {
        ["--listen", "127.0.0.1:0", "--metrics-listen", "off", "--cluster", &url, "--cluster-name", "it"]
            .into_iter()
            .map(str::to_owned)
            .chain(["--node-id".to_owned(), id.to_owned(), "--node-capacity".to_owned(), "3".to_owned()])
            .collect()
    };

    let dir = tempfile::tempdir().expect("dir");
    let args = flags("n1");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = start_serve(dir.path(), &args, &[]).expect("the first node serves");
    assert!(first.startup.contains("joined the cluster"), "{}", first.startup);
    let nodes = rt.block_on(cluster.nodes()).expect("nodes");
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        (nodes[0].id.as_str(), nodes[0].address.as_str(), nodes[0].capacity),
        ("n1", first.address.as_str(), 3)
    );
    assert_eq!(nodes[0].version, env!("CARGO_PKG_VERSION"));

    // A second process with the same id never says it serves, and says why.
    let other = tempfile::tempdir().expect("dir");
    let refused = start_serve(other.path(), &args, &[]).err().expect("a second n1 is refused");
    assert!(refused.contains("node id \"n1\" is held by a live node"), "{refused}");

    // A clean stop leaves at once: the record goes without waiting for the lease.
    let rest = first.stop();
    assert!(rest.contains("left the cluster"), "{rest}");
    assert!(rt.block_on(cluster.nodes()).expect("nodes").is_empty());

    // Unreachable etcd: a clear error before serving.
    let dead = format!("etcd://127.0.0.1:{}", free_port());
    let lonely = tempfile::tempdir().expect("dir");
    let unreachable = start_serve(
        lonely.path(),
        &["--listen", "127.0.0.1:0", "--metrics-listen", "off", "--cluster", &dead, "--node-id", "n9"],
        &[],
    )
    .err()
    .expect("no etcd, no serving");
    assert!(unreachable.contains("joining cluster \"default\" as node \"n9\""), "{unreachable}");

    // Listening on loopback with etcd elsewhere: the default address would reach nobody.
    let elsewhere = tempfile::tempdir().expect("dir");
    let refused = start_serve(
        elsewhere.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
            "--cluster",
            "etcd://10.0.0.1:2379",
            "--node-id",
            "n8",
        ],
        &[],
    )
    .err()
    .expect("no advertised address, no serving");
    assert!(refused.contains("give --advertise"), "{refused}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a port").port()
}

#[test]
fn a_node_whose_lease_expires_in_etcd_stops_serving() {
    let rt = runtime();
    let mut etcd = rt.block_on(etcd::Etcd::start(3));
    let endpoints = etcd.endpoints();
    // The node reaches etcd through member 2 only; the test watches through the other two.
    let only = format!("etcd://{}", endpoints[2].replace("http://", ""));
    let observer = rt.block_on(Cluster::connect(&endpoints[..2], "default")).expect("connects");
    let dir = tempfile::tempdir().expect("dir");
    let args = ["--listen", "127.0.0.1:0", "--metrics-listen", "off", "--cluster", &only, "--node-id", "n1"];
    let node =
        start_serve(dir.path(), &[&args[..], &["--lease-ttl-secs", "5"]].concat(), &[]).expect("serves");
    assert_eq!(rt.block_on(observer.nodes()).expect("nodes").len(), 1);

    // Cut off: etcd expires the node's lease while the node cannot hear of it.
    etcd.kill(2);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !rt.block_on(observer.nodes()).expect("nodes").is_empty() {
        assert!(std::time::Instant::now() < deadline, "etcd did not expire the cut-off node's lease");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Back in touch, the node finds its lease gone and stops, saying why, with a failure status.
    etcd.restart(2);
    let (status, log) = node.wait_exit(std::time::Duration::from_secs(60));
    assert!(!status.success(), "{log}");
    assert!(log.contains("lease expired in etcd"), "{log}");
}
