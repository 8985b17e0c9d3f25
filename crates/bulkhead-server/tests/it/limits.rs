//! Every limit of docs/LIMITS.md, over gRPC: a request just over it gets INVALID_ARGUMENT (or
//! RESOURCE_EXHAUSTED / DEADLINE_EXCEEDED) with a message naming the limit, and the database is
//! unchanged; where cheap, a request exactly at the limit still succeeds.

use crate::harness::{TestServer, collections, count, point, req, search};
use bulkhead_query::limits as lib;
use bulkhead_server::ServerLimits;
use bulkhead_server::limits;
use bulkhead_server::proto as pb;
use std::time::Duration;
use tonic::Code;

/// Asserts the status and that its message mentions `needle`.
fn refused(result: Result<impl std::fmt::Debug, tonic::Status>, code: Code, needle: &str) {
    let status = result.expect_err("must be refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(status.message().contains(needle), "message {:?} does not mention {needle:?}", status.message());
}

async fn upsert(
    server: &TestServer,
    token: &str,
    points: Vec<pb::Point>,
) -> Result<pb::UpsertResponse, tonic::Status> {
    let mut data = server.data().await;
    data.upsert(req(pb::UpsertRequest { collection: "docs".into(), points }, token))
        .await
        .map(|r| r.into_inner())
}

fn leaf(i: usize) -> pb::Filter {
    pb::Filter {
        kind: Some(pb::filter::Kind::Eq(pb::Equals {
            field: format!("f{i}"),
            value: Some(pb::equals::Value::Flag(true)),
        })),
    }
}

fn nested(depth: usize) -> pb::Filter {
    let mut filter = leaf(0);
    for _ in 1..depth {
        filter = pb::Filter { kind: Some(pb::filter::Kind::Not(Box::new(filter))) };
    }
    filter
}

/// One upsert per point field, each just over that field's limit: every one is refused.
async fn each_point_field_just_over_its_limit(server: &TestServer, token: &str) {
    let over = |f: &dyn Fn(&mut pb::Point)| {
        let mut p = point("new", [1.0, 1.0, 0.0], "t");
        f(&mut p);
        vec![p]
    };
    refused(
        upsert(server, token, over(&|p| p.id = "i".repeat(lib::MAX_DOC_ID_BYTES + 1))).await,
        Code::InvalidArgument,
        "document id",
    );
    refused(
        upsert(server, token, over(&|p| p.text = "t".repeat(lib::MAX_TEXT_BYTES + 1))).await,
        Code::InvalidArgument,
        "262144",
    );
    refused(
        upsert(server, token, over(&|p| p.source_uri = Some("u".repeat(lib::MAX_SOURCE_URI_BYTES + 1))))
            .await,
        Code::InvalidArgument,
        "2048",
    );
    refused(
        upsert(
            server,
            token,
            over(&|p| {
                for i in 0..=lib::MAX_METADATA_FIELDS {
                    p.metadata.insert(
                        format!("k{i}"),
                        pb::MetaValue { kind: Some(pb::meta_value::Kind::Flag(true)) },
                    );
                }
            }),
        )
        .await,
        Code::InvalidArgument,
        "64 fields",
    );
    refused(
        upsert(
            server,
            token,
            over(&|p| {
                p.metadata.insert(
                    "k".into(),
                    pb::MetaValue {
                        kind: Some(pb::meta_value::Kind::Keyword("v".repeat(lib::MAX_METADATA_BYTES))),
                    },
                );
            }),
        )
        .await,
        Code::InvalidArgument,
        "65536",
    );
    refused(
        upsert(
            server,
            token,
            over(&|p| {
                p.acl = Some(pb::Acl {
                    users: (0..=lib::MAX_ACL_ENTRIES).map(|i| format!("u{i}")).collect(),
                    groups: vec![],
                })
            }),
        )
        .await,
        Code::InvalidArgument,
        "1024",
    );
    refused(
        upsert(server, token, over(&|p| p.vector = vec![1.0, 0.0])).await,
        Code::InvalidArgument,
        "dimension",
    );
    refused(
        upsert(server, token, over(&|p| p.vector = vec![1.0, f32::NAN, 0.0])).await,
        Code::InvalidArgument,
        "NaN",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_and_batch_limits() {
    let server = TestServer::start().await;
    let token = crate::harness::seed(&server, "acme").await;
    let unchanged =
        |server: &TestServer| assert_eq!(count(server, "acme", "docs"), 2, "the database changed");

    each_point_field_just_over_its_limit(&server, &token).await;
    unchanged(&server);

    // Points per batch: one over is refused; exactly at the limit is accepted.
    let batch =
        |n: usize| (0..n).map(|i| point(&format!("p{i}"), [1.0, i as f32, 0.0], "")).collect::<Vec<_>>();
    refused(upsert(&server, &token, batch(lib::MAX_BATCH_POINTS + 1)).await, Code::InvalidArgument, "1024");
    unchanged(&server);
    // Bytes per batch: 128 texts of the largest size, plus their ids and vectors, is just over 32 MiB.
    let heavy: Vec<_> = (0..128)
        .map(|i| point(&format!("h{i}"), [1.0, 0.0, 0.0], &"x".repeat(lib::MAX_TEXT_BYTES)))
        .collect();
    refused(upsert(&server, &token, heavy).await, Code::InvalidArgument, "batch");
    unchanged(&server);
    let accepted = upsert(&server, &token, batch(lib::MAX_BATCH_POINTS)).await.expect("a batch at the limit");
    assert_eq!(accepted.versions.len(), lib::MAX_BATCH_POINTS);

    // Delete batches have the same limit.
    let mut data = server.data().await;
    let ids = (0..=lib::MAX_BATCH_POINTS).map(|i| format!("p{i}")).collect();
    refused(
        data.delete(req(pb::DeleteRequest { collection: "docs".into(), ids }, &token)).await,
        Code::InvalidArgument,
        "1024",
    );
    assert_eq!(count(&server, "acme", "docs"), 2 + lib::MAX_BATCH_POINTS as u64);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_limits() {
    let server = TestServer::start().await;
    let token = crate::harness::seed(&server, "acme").await;
    let mut data = server.data().await;
    let create = |name: String, dimension: u32| pb::CreateCollectionRequest {
        name,
        dimension,
        metric: pb::Metric::Cosine as i32,
    };
    refused(
        data.create_collection(req(create("big".into(), lib::MAX_DIMENSION as u32 + 1), &token)).await,
        Code::InvalidArgument,
        "4096",
    );
    refused(
        data.create_collection(req(create("n".repeat(lib::MAX_COLLECTION_NAME_BYTES + 1), 3), &token)).await,
        Code::InvalidArgument,
        "collection name",
    );
    refused(
        data.create_collection(req(
            pb::CreateCollectionRequest { name: "m".into(), dimension: 3, metric: 0 },
            &token,
        ))
        .await,
        Code::InvalidArgument,
        "metric",
    );
    assert_eq!(collections(&server, "acme"), ["docs"]);
    data.create_collection(req(create("at-limit".into(), lib::MAX_DIMENSION as u32), &token))
        .await
        .expect("dimension at the limit");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_limits() {
    let server = TestServer::start().await;
    let token = crate::harness::seed(&server, "acme").await;
    let mut data = server.data().await;

    let page = |limit: usize| pb::ExportOwnAuditRequest { since_ms: 0, from_seq: 0, limit: limit as u32 };
    refused(
        data.export_audit(req(page(bulkhead_server::limits::MAX_AUDIT_PAGE + 1), &token)).await,
        Code::InvalidArgument,
        "1000",
    );
    data.export_audit(req(page(bulkhead_server::limits::MAX_AUDIT_PAGE), &token))
        .await
        .expect("at the limit");

    refused(
        data.search(req(search("docs", [1.0, 0.0, 0.0], lib::MAX_K as u32 + 1), &token)).await,
        Code::InvalidArgument,
        "1000",
    );
    refused(data.search(req(search("docs", [1.0, 0.0, 0.0], 0), &token)).await, Code::InvalidArgument, "k");
    data.search(req(search("docs", [1.0, 0.0, 0.0], lib::MAX_K as u32), &token))
        .await
        .expect("k at the limit");
    let mut ef = search("docs", [1.0, 0.0, 0.0], 1);
    ef.ef = Some(lib::MAX_EF as u32 + 1);
    refused(data.search(req(ef.clone(), &token)).await, Code::InvalidArgument, "4096");
    ef.ef = Some(lib::MAX_EF as u32);
    data.search(req(ef, &token)).await.expect("ef at the limit");

    let with_filter = |filter: pb::Filter| {
        let mut r = search("docs", [1.0, 0.0, 0.0], 1);
        r.filter = Some(filter);
        r
    };
    refused(
        data.search(req(with_filter(nested(lib::MAX_FILTER_DEPTH + 1)), &token)).await,
        Code::InvalidArgument,
        "deeper than 8",
    );
    data.search(req(with_filter(nested(lib::MAX_FILTER_DEPTH)), &token)).await.expect("depth at the limit");
    // A hostile nesting far beyond the limit is refused as cleanly (prost stops decoding at 100 levels).
    let deep = data.search(req(with_filter(nested(90)), &token)).await.expect_err("deep");
    assert_eq!(deep.code(), Code::InvalidArgument, "{deep:?}");
    let and = |n: usize| pb::Filter {
        kind: Some(pb::filter::Kind::And(pb::FilterList { filters: (0..n).map(leaf).collect() })),
    };
    refused(
        data.search(req(with_filter(and(lib::MAX_FILTER_CONDITIONS + 1)), &token)).await,
        Code::InvalidArgument,
        "64 conditions",
    );
    data.search(req(with_filter(and(lib::MAX_FILTER_CONDITIONS)), &token))
        .await
        .expect("conditions at the limit");
    // Empty `and` nodes hold no condition but each costs a bitmap operation: they count as nodes.
    let empty_ands = |n: usize| pb::Filter {
        kind: Some(pb::filter::Kind::And(pb::FilterList {
            filters: (0..n)
                .map(|_| pb::Filter { kind: Some(pb::filter::Kind::And(pb::FilterList::default())) })
                .collect(),
        })),
    };
    refused(
        data.search(req(with_filter(empty_ands(lib::MAX_FILTER_NODES)), &token)).await,
        Code::InvalidArgument,
        "256 nodes",
    );
    data.search(req(with_filter(empty_ands(lib::MAX_FILTER_NODES - 1)), &token))
        .await
        .expect("nodes at the limit");
    let one_of = pb::Filter {
        kind: Some(pb::filter::Kind::OneOf(pb::OneOf {
            field: "f".into(),
            values: (0..=lib::MAX_FILTER_LIST).map(|i| i.to_string()).collect(),
        })),
    };
    refused(data.search(req(with_filter(one_of), &token)).await, Code::InvalidArgument, "1024 values");

    let mut principal = search("docs", [1.0, 0.0, 0.0], 1);
    principal.principal = Some(pb::Principal {
        user: "u".into(),
        groups: (0..=lib::MAX_PRINCIPAL_GROUPS).map(|i| format!("g{i}")).collect(),
    });
    refused(data.search(req(principal, &token)).await, Code::InvalidArgument, "256 groups");

    let query = pb::BatchQuery { vector: vec![1.0, 0.0, 0.0], k: 1, ..Default::default() };
    let batch =
        |n: usize| pb::SearchBatchRequest { collection: "docs".into(), queries: vec![query.clone(); n] };
    refused(
        data.search_batch(req(batch(limits::MAX_SEARCH_BATCH + 1), &token)).await,
        Code::InvalidArgument,
        "64",
    );
    let results =
        data.search_batch(req(batch(limits::MAX_SEARCH_BATCH), &token)).await.expect("batch at the limit");
    assert_eq!(results.into_inner().results.len(), limits::MAX_SEARCH_BATCH);
    assert_eq!(count(&server, "acme", "docs"), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_size_limit() {
    let server = TestServer::start().await;
    let token = crate::harness::seed(&server, "acme").await;
    // One message just over the limit: a single text of MAX_MESSAGE_BYTES bytes plus its framing.
    let big = point("big", [1.0, 0.0, 0.0], &"x".repeat(limits::MAX_MESSAGE_BYTES));
    refused(upsert(&server, &token, vec![big]).await, Code::ResourceExhausted, "MAX_MESSAGE_BYTES");
    assert_eq!(count(&server, "acme", "docs"), 2);
    // The server is still serving on the same connection.
    let mut data = server.data().await;
    data.count(req(pb::CountRequest { collection: "docs".into() }, &token)).await.expect("still serving");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_deadline() {
    let limits = ServerLimits {
        request_timeout: Duration::from_millis(300),
        max_concurrent_work: 2,
        ..ServerLimits::default()
    };
    let server = TestServer::with_limits(limits).await;
    let token = crate::harness::seed(&server, "acme").await;
    // Every work permit busy: the call waits for one until its deadline, then gives up untouched.
    let held = server.gate.hold_all(2).await.expect("permits");
    let started = std::time::Instant::now();
    let write = upsert(&server, &token, vec![point("late", [1.0, 1.0, 1.0], "late")]).await;
    refused(write, Code::DeadlineExceeded, "300 ms");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A client's shorter grpc-timeout wins over the server's deadline.
    let mut data = server.data().await;
    let mut short = req(pb::CountRequest { collection: "docs".into() }, &token);
    short.set_timeout(Duration::from_millis(50));
    let status = data.count(short).await.expect_err("deadline");
    assert!(matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled), "{status:?}");
    drop(held);
    assert_eq!(count(&server, "acme", "docs"), 2, "the late write never ran");
    data.count(req(pb::CountRequest { collection: "docs".into() }, &token))
        .await
        .expect("permits free again");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_streams_are_advertised() {
    let server = TestServer::start().await;
    let tcp = tokio::net::TcpStream::connect(server.addr).await.expect("tcp");
    let (_send, mut connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    // The limit arrives in the server's SETTINGS frame; drive the connection until it has.
    let advertised = tokio::time::timeout(
        Duration::from_secs(5),
        std::future::poll_fn(|cx| {
            let _ = std::pin::Pin::new(&mut connection).poll(cx);
            let max = connection.max_concurrent_send_streams();
            if max == limits::MAX_CONCURRENT_STREAMS as usize {
                std::task::Poll::Ready(max)
            } else {
                std::task::Poll::Pending
            }
        }),
    )
    .await
    .expect("the server advertises its stream limit");
    assert_eq!(advertised, 128);
    // Closed before the server stops: a graceful stop waits for open connections.
    drop((_send, connection));
    server.stop().await;
}

/// A client may send at most one stream window of a request's body before the server reads it:
/// a call refused on its headers (a bad key, a tenant over its rate) costs the server no more of
/// its body than that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_is_held_to_one_stream_window() {
    let server = TestServer::start().await;
    let token = crate::harness::seed(&server, "acme").await;
    let tcp = tokio::net::TcpStream::connect(server.addr).await.expect("tcp");
    let (send, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let driver = tokio::spawn(connection);
    let upsert = |bearer: Option<&str>| {
        let mut request = http::Request::post(format!("http://{}/bulkhead.v1.DataPlane/Upsert", server.addr))
            .header("content-type", "application/grpc");
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request.body(()).expect("request")
    };
    // A first call, refused on its headers and answered, so that the server's SETTINGS and window
    // updates have arrived.
    let mut send = send.ready().await.expect("ready");
    let (first, _body) = send.send_request(upsert(None), true).expect("stream");
    let first = tokio::time::timeout(Duration::from_secs(5), first).await.expect("in time").expect("answer");
    assert_eq!(first.headers().get("grpc-status").expect("refused"), "16", "no credential");
    // A second, admitted, whose body the server waits for: it may send one window, not more.
    let mut send = send.ready().await.expect("ready");
    let (_response, mut body) = send.send_request(upsert(Some(&token)), false).expect("stream");
    body.reserve_capacity(4 << 20);
    let granted =
        tokio::time::timeout(Duration::from_secs(5), std::future::poll_fn(|cx| body.poll_capacity(cx)))
            .await
            .expect("capacity in time")
            .expect("an open stream")
            .expect("capacity");
    assert_eq!(granted, limits::HTTP2_STREAM_WINDOW_BYTES as usize, "one stream window, not more");
    drop((body, send));
    driver.abort();
    server.stop().await;
}

/// An answer over `MAX_RESPONSE_BYTES` is refused with RESOURCE_EXHAUSTED before it is built; the
/// budget covers a whole batch; answers under it still come back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_size_limit() {
    let server = TestServer::start().await;
    let token = crate::harness::seed(&server, "acme").await;
    let text = "x".repeat(lib::MAX_TEXT_BYTES);
    // 80 hits of 256 KiB: 20 MiB of answer, over the 16 MiB limit; 40 of them fit.
    for part in 0..2 {
        let points =
            (0..40).map(|i| point(&format!("big-{part}-{i}"), [1.0, 0.5, i as f32 / 40.0], &text)).collect();
        upsert(&server, &token, points).await.expect("upsert");
    }
    let mut data = server.data().await;
    refused(
        data.search(req(search("docs", [1.0, 0.5, 0.5], 82), &token)).await,
        Code::ResourceExhausted,
        "ask for fewer hits",
    );
    let fits = data.search(req(search("docs", [1.0, 0.5, 0.5], 40), &token)).await.expect("40 hits fit");
    assert_eq!(fits.into_inner().hits.len(), 40);
    // Two queries of 40 hits each: each fits alone, not together.
    let query = pb::BatchQuery { vector: vec![1.0, 0.5, 0.5], k: 40, ..Default::default() };
    let batch = pb::SearchBatchRequest { collection: "docs".into(), queries: vec![query.clone(), query] };
    refused(data.search_batch(req(batch, &token)).await, Code::ResourceExhausted, "split the batch");
    assert_eq!(count(&server, "acme", "docs"), 82);
    server.stop().await;
}

/// Work nobody waits for stops: a batch whose deadline passes stops at its next check point (the
/// next query) and gives its work permit back, instead of running all its queries for nobody. The
/// trail shows where it stopped: the queries before the deadline, then one `deadline-exceeded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_past_its_deadline_stops_and_frees_its_permit() {
    const DIM: usize = 1024;
    // Enough that 64 exact scans take far longer than the deadline, even from memory: a write
    // loads the collection's search state, so no query pays for loading it.
    const POINTS: usize = 16_000;
    let limits = ServerLimits { max_concurrent_work: 1, ..ServerLimits::default() };
    let server = TestServer::with_limits(limits).await;
    server.tenant("acme").await;
    let (admin, _) = server.key("acme", pb::Role::TenantAdmin).await;
    let mut data = server.data().await;
    let create = pb::CreateCollectionRequest {
        name: "wide".into(),
        dimension: DIM as u32,
        // Dot collections stay exact (no graph is built in the background to speed them up).
        metric: pb::Metric::Dot as i32,
    };
    data.create_collection(req(create, &admin)).await.expect("create");
    let vector = |i: usize| (0..DIM).map(|d| ((i * 31 + d * 7) % 97) as f32 / 97.0).collect::<Vec<f32>>();
    for chunk in 0..POINTS / 1000 {
        let points = (chunk * 1000..(chunk + 1) * 1000)
            .map(|i| pb::Point {
                id: format!("w{i}"),
                vector: vector(i),
                text: "t".into(),
                ..Default::default()
            })
            .collect();
        data.upsert(req(pb::UpsertRequest { collection: "wide".into(), points }, &admin))
            .await
            .expect("upsert");
    }
    let uid = server
        .db
        .operator()
        .tenant_info(&bulkhead_query::TenantName::new("acme").expect("n"))
        .expect("t")
        .uid;
    let before = server.db.operator().audit_events(uid).expect("events").len();
    // 64 exact scans of 16,000 vectors of 1,024 dimensions, with a deadline far shorter than that.
    let query = pb::BatchQuery { vector: vector(7), k: 10, ..Default::default() };
    let batch = pb::SearchBatchRequest { collection: "wide".into(), queries: vec![query; 64] };
    let mut request = req(batch, &admin);
    request.set_timeout(Duration::from_millis(50));
    let status = data.search_batch(request).await.expect_err("past its deadline");
    assert!(matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled), "{status:?}");
    // The one work permit comes back (the batch stopped); then the trail says where.
    let permit = tokio::time::timeout(Duration::from_secs(60), server.gate.hold_all(1)).await;
    drop(permit.expect("the permit came back").expect("permit"));
    let searches: Vec<String> = server.db.operator().audit_events(uid).expect("events")[before..]
        .iter()
        .filter(|e| e.operation == "search")
        .map(|e| e.outcome.clone())
        .collect();
    let (last, done) = searches.split_last().expect("at least the query it stopped at");
    assert!(matches!(last.as_str(), "deadline-exceeded" | "cancelled"), "{searches:?}");
    assert!(done.iter().all(|outcome| outcome == "ok"), "{searches:?}");
    assert!(searches.len() < 64, "the batch stopped before its last query: {} queries ran", searches.len());
    // And the server serves the next call at once.
    data.count(req(pb::CountRequest { collection: "wide".into() }, &admin)).await.expect("count");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_over_the_message_limit_get_the_servers_own_refusal() {
    // A message limit smaller than a point written through the library (or under a larger limit).
    let limits = ServerLimits { max_message_bytes: 64 * 1024, ..ServerLimits::default() };
    let server = TestServer::with_limits(limits).await;
    let token = crate::harness::seed(&server, "acme").await;
    {
        let name = bulkhead_query::TenantName::new("acme").expect("name");
        let scope = server.db.operator().trusted_host_scope(&name, "test").expect("scope");
        let big = bulkhead_query::NewPoint::new(
            bulkhead_query::DocId::new("big").expect("id"),
            vec![1.0, 0.0, 0.0],
            "x".repeat(100_000),
        );
        server.db.tenant(&scope).expect("tenant").upsert("docs", &[big]).expect("upsert");
    }
    let mut data = server.data().await;
    // A single point whose answer is over the limit: refused once encoded, by the server.
    let get = pb::GetRequest { collection: "docs".into(), id: "big".into(), ..Default::default() };
    refused(data.get(req(get, &token)).await, Code::ResourceExhausted, "MAX_MESSAGE_BYTES");
    // A search whose hits would be over it: refused by the answer budget before it is built.
    refused(
        data.search(req(search("docs", [1.0, 0.0, 0.0], 3), &token)).await,
        Code::ResourceExhausted,
        "answer",
    );
    // Smaller answers on the same connection are served.
    let get = pb::GetRequest { collection: "docs".into(), id: "a".into(), ..Default::default() };
    data.get(req(get, &token)).await.expect("a small answer");
    let hits = data.search(req(search("docs", [0.0, 1.0, 0.0], 1), &token)).await.expect("search");
    assert_eq!(hits.into_inner().hits.len(), 1);
    assert_eq!(count(&server, "acme", "docs"), 3);
    server.stop().await;
}
