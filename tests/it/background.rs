//! One tenant's fault stays in its compartment: with tenant A's keyring and tenant C's audit chain
//! corrupted at the RocksDB level, the server's background tasks still finish tenant B's key rotation
//! and prune B's audit trail; A's and C's failures are logged, counted in the metrics and recorded
//! once in their own trails (not on every retry).

use crate::util::{TestDir, raw_db, tenant, vector};
use bulkhead_query::{Database, DocId, Metric, NewPoint, TenantName, TenantUid};
use bulkhead_server::{AdminToken, Server, ServerLimits};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn seed(db: &Database, name: &str) -> TenantUid {
    let scope = tenant(db, name);
    let t = db.tenant(&scope).expect("tenant");
    t.create_collection("docs", 8, Metric::Cosine).expect("create");
    let points: Vec<NewPoint> = (0..300)
        .map(|i| NewPoint::new(DocId::new(format!("d{i}")).expect("id"), vector(i, 8), "text"))
        .collect();
    t.upsert("docs", &points).expect("upsert");
    t.search("docs", &vector(1, 8), 3).expect("search");
    scope.tenant_uid()
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_tenant_does_not_stop_background_work_for_the_others() {
    let dir = TestDir::new();
    let mut uids = {
        let db = dir.open();
        let uids: Vec<(TenantUid, &str)> =
            ["one", "two", "three"].into_iter().map(|name| (seed(&db, name), name)).collect();
        // Every tenant has a rotation in progress, not yet stepped.
        for (_, name) in &uids {
            db.operator().rotate_tenant_key(&TenantName::new(*name).expect("name")).expect("rotate");
        }
        uids
    };
    // The background passes take tenants in uid order: corrupt the first two, so that a pass that
    // stopped at the first failure would never reach the healthy one.
    uids.sort_by_key(|(uid, _)| *uid.as_bytes());
    let (a, c, b) = (uids[0].0, uids[1].0, uids[2].0);
    {
        let raw = raw_db(&dir.data());
        let sys = raw.cf_handle("sys").expect("sys");
        // A: its newest wrapped data key (generation 2) no longer opens.
        let key = [b"keyring/".as_slice(), a.as_bytes(), b"/", &2u32.to_be_bytes()].concat();
        let mut wrapped = raw.get_cf(&sys, &key).expect("get").expect("wrapped key");
        wrapped[20] ^= 0x40;
        raw.put_cf(&sys, &key, wrapped).expect("put");
        // C: a malformed record in the middle of its audit chain (a key one byte too long).
        let bad = [b"audit/".as_slice(), c.as_bytes(), &1u64.to_be_bytes(), &[0x55]].concat();
        raw.put_cf(&sys, bad, b"junk").expect("put");
    }

    let db = Arc::new(dir.open());
    let limits = ServerLimits { audit_retention: Some(Duration::from_millis(1)), ..ServerLimits::default() };
    let server = Server::new(Arc::clone(&db), AdminToken::generate(), limits);
    let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let metrics_addr = metrics_listener.local_addr().expect("addr");
    let metrics = server.serve_metrics(metrics_listener);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));

    // B's rotation finishes and its trail is pruned, although A and C fail at every pass.
    let op = db.operator();
    let started = Instant::now();
    loop {
        let rotated = op.rotation_status(b).expect("status").is_none();
        let pruned = op.audit_verify(b).expect("verify").first_seq > 0;
        if rotated && pruned {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "B's background work did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(op.key_generation(b).expect("generation"), 2);
    assert_eq!(op.audit_verify(b).expect("verify").first_broken, None);
    // C's rotation is unaffected by its audit chain; A's stays pending.
    while op.rotation_status(c).expect("status").is_some() {
        assert!(started.elapsed() < Duration::from_secs(60), "C's rotation did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A's keyring does not open: its rotation cannot run, and says why.
    let a_status = op.rotation_status(a);
    assert!(
        matches!(a_status, Err(bulkhead_query::StorageError::TenantUnavailable { cause: "keyring-corrupt" })),
        "{a_status:?}"
    );
    // Let a few more passes retry A (with backoff).
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let text = scrape(metrics_addr).await;
    let failures = |task: &str, uid: TenantUid| {
        let name =
            format!("bulkhead_background_failures_total{{task=\"{task}\",tenant=\"{}\"}} ", uid.short());
        text.lines().find_map(|l| l.strip_prefix(name.as_str())).map(|v| v.parse::<f64>().expect("number"))
    };
    let a_failures = failures("key-rotation", a).expect("A's rotation failures are counted");
    assert!(a_failures >= 2.0, "A was retried: {a_failures}");
    assert!(failures("audit-prune", c).expect("C's pruning failure is counted") >= 1.0);
    assert_eq!(failures("key-rotation", b), None);
    assert_eq!(failures("audit-prune", b), None);
    // A's trail holds one event for its run of failures, however many retries there were.
    let recorded: Vec<_> = op
        .audit_events(a)
        .expect("A's events")
        .into_iter()
        .filter(|e| e.operation == "background-key-rotation")
        .map(|e| e.outcome)
        .collect();
    assert_eq!(recorded, ["keyring-corrupt"]);

    stop.send(()).expect("stop");
    serving.await.expect("task").expect("served");
    metrics.abort();
}
