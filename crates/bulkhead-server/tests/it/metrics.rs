//! The metrics endpoint after a scripted scenario: every counter equals what the scenario did, tenants
//! appear only as opaque uids, and nothing but `GET /metrics` (and the `/healthz` probe) is served.

use crate::harness::{TestServer, req, search};
use bulkhead_server::proto as pb;
use std::collections::BTreeMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 request to the metrics port; returns the status line and the body.
async fn http_get(server: &TestServer, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(server.metrics_addr).await.expect("connect");
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

/// Every sample of the text format: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(name, value)| (name.to_owned(), value.parse().expect("a number")))
        .collect()
}

fn sample(all: &BTreeMap<String, f64>, name: &str) -> f64 {
    all.get(name)
        .copied()
        .unwrap_or_else(|| panic!("no sample {name}; have {:#?}", all.keys().collect::<Vec<_>>()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_a_scripted_scenario_did() {
    let server = TestServer::start().await;
    let admin_key = crate::harness::seed(&server, "acme").await;
    let (reader, _) = server.key("acme", pb::Role::Reader).await;
    let mut admin = server.admin().await;
    let acme = admin
        .describe_tenant(req(pb::DescribeTenantRequest { name: "acme".into() }, &server.admin_token))
        .await
        .expect("describe")
        .into_inner()
        .uid;
    let mut data = server.data().await;
    for _ in 0..3 {
        data.search(req(search("docs", [1.0, 0.0, 0.0], 1), &reader)).await.expect("search");
    }
    data.search(req(search("nope", [1.0, 0.0, 0.0], 1), &reader)).await.expect_err("no such collection");
    let upsert = pb::UpsertRequest { collection: "docs".into(), points: vec![] };
    data.upsert(req(upsert, &reader)).await.expect_err("a reader cannot write");
    data.count(tonic::Request::new(pb::CountRequest { collection: "docs".into() }))
        .await
        .expect_err("no key");
    let unknown = format!("bk_{}_{}", "00".repeat(16), "11".repeat(32));
    data.count(req(pb::CountRequest { collection: "docs".into() }, &unknown)).await.expect_err("unknown key");
    admin
        .list_tenants(req(pb::ListTenantsRequest {}, &admin_key))
        .await
        .expect_err("a tenant key on the admin plane");

    let (status, text) = http_get(&server, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let all = samples(&text);
    let requests = |tenant: &str, op: &str, outcome: &str| {
        sample(
            &all,
            &format!(
                "bulkhead_requests_total{{tenant=\"{tenant}\",operation=\"{op}\",outcome=\"{outcome}\"}}"
            ),
        )
    };
    assert_eq!(requests(&acme, "search", "ok"), 3.0);
    assert_eq!(requests(&acme, "search", "not-found"), 1.0);
    // seed: one collection and one upsert, with the tenant-admin key.
    assert_eq!(requests(&acme, "create-collection", "ok"), 1.0);
    assert_eq!(requests(&acme, "upsert", "ok"), 1.0);
    // The operator's calls: seed's tenant and the tenant's first key, this test's describe; the
    // second key is issued by that tenant-admin key on the data plane.
    assert_eq!(requests("operator", "admin-create-tenant", "ok"), 1.0);
    assert_eq!(requests("operator", "admin-issue-api-key", "ok"), 1.0);
    assert_eq!(requests(&acme, "issue-api-key", "ok"), 1.0);
    assert_eq!(requests("operator", "admin-describe-tenant", "ok"), 1.0);
    let latency =
        format!("bulkhead_request_duration_seconds_count{{tenant=\"{acme}\",operation=\"search\"}}");
    assert_eq!(sample(&all, &latency), 4.0);
    let denials = |tenant: &str, reason: &str| {
        sample(&all, &format!("bulkhead_denials_total{{tenant=\"{tenant}\",reason=\"{reason}\"}}"))
    };
    assert_eq!(denials(&acme, "role"), 1.0);
    assert_eq!(denials(&acme, "tenant-key-on-admin"), 1.0);
    assert_eq!(denials("none", "missing-credential"), 1.0);
    assert_eq!(denials("none", "unauthenticated"), 1.0);
    let isa = format!("bulkhead_simd_isa{{isa=\"{}\"}}", bulkhead_distance::active_isa());
    assert_eq!(sample(&all, &isa), 1.0);
    assert!(all.contains_key("bulkhead_index_memory_bytes"), "{text}");
    // Tenants by uid only; nothing a tenant sent.
    for secret in ["acme", "docs", "alpha", reader.as_str(), admin_key.as_str()] {
        assert!(!text.contains(secret), "{secret} in the metrics");
    }

    let (status, _) = http_get(&server, "/other").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    server.stop().await;
}

/// `GET /healthz` beside `/metrics`: 200 and `ok`, without a credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_ok_beside_the_metrics() {
    let server = TestServer::start().await;
    let (status, body) = http_get(&server, "/healthz").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, "ok\n");
    server.stop().await;
}

/// The metrics endpoint serves at most `MAX_METRICS_CONNECTIONS` connections at once, each within
/// five seconds: connections that send nothing hold their permit only that long, and a scrape behind
/// them is served once they are closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_connections_are_bounded_and_timed_out() {
    let server = TestServer::start().await;
    let mut idle = Vec::new();
    for _ in 0..bulkhead_server::limits::MAX_METRICS_CONNECTIONS {
        idle.push(tokio::net::TcpStream::connect(server.metrics_addr).await.expect("connect"));
    }
    // Give the endpoint time to take every idle connection; the next one waits in the backlog.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let scrape = tokio::spawn({
        let addr = server.metrics_addr;
        async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await.expect("write");
            let mut response = String::new();
            stream.read_to_string(&mut response).await.expect("read");
            response
        }
    });
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(!scrape.is_finished(), "a scrape beyond the cap waits");
    let response = tokio::time::timeout(std::time::Duration::from_secs(30), scrape)
        .await
        .expect("served once the idle connections timed out")
        .expect("task");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(3), "it waited for a permit");
    // The idle connections were closed by the server.
    for mut stream in idle {
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "an idle connection was closed");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_refusals_are_a_gauge_and_those_over_a_connections_cap_are_counted() {
    let server = TestServer::start().await;
    let acme = crate::harness::seed(&server, "acme").await;
    let quotas = bulkhead_query::TenantQuotas { requests_per_second: Some(1), ..Default::default() };
    crate::harness::set_quotas(&server, "acme", quotas);
    // One connection: the bucket's one request, then more calls than the connection may hold.
    let data = server.data().await;
    let count = |data: &pb::data_plane_client::DataPlaneClient<tonic::transport::Channel>| {
        let (mut data, acme) = (data.clone(), acme.clone());
        async move { data.count(req(pb::CountRequest { collection: "docs".into() }, &acme)).await }
    };
    let _ = count(&data).await;
    let cap = bulkhead_server::limits::MAX_HELD_REFUSALS_PER_CONNECTION;
    let started = std::time::Instant::now();
    let calls: Vec<_> = (0..cap + 4)
        .map(|_| {
            let call = count(&data);
            tokio::spawn(async move { (call.await, started.elapsed()) })
        })
        .collect();
    let mut answered = Vec::new();
    for call in calls {
        let (answer, after) = call.await.expect("join");
        let status = answer.expect_err("over the rate");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        answered.push(after);
    }
    answered.sort();
    // The ones over the cap come back first, at once; the held ones at their turn (about 1 s).
    let at_once = answered.iter().filter(|after| after.as_millis() < 500).count();
    assert!(at_once >= 4, "at least the calls over the cap answered at once: {answered:?}");
    let (_, body) = http_get(&server, "/metrics").await;
    let all = samples(&body);
    let counted = sample(&all, "bulkhead_refusals_answered_at_once_total{cap=\"connection\"}");
    assert!(counted >= 4.0, "counted by cap: {counted}");
    assert_eq!(sample(&all, "bulkhead_held_refusals"), 0.0, "none held once all are answered");
    server.stop().await;
}
