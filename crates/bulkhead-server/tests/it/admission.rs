//! Admission: no request can exhaust the server before it is authenticated, and an authenticated
//! one cannot make it decode more than its limits allow. Hostile messages are built by hand on the
//! wire (`wire.rs`: two bytes per empty point) and sent over raw HTTP/2, so that the test process
//! never encodes them. The tests where memory matters run the real `bulkhead` binary and read its
//! peak resident set from `/proc`: they are the binary's, in `crates/bulkhead-cli/tests/it/admission.rs`.

use crate::harness::{TestServer, point, req, search};
use crate::wire::{COUNT, Raw, SEARCH, UPSERT, answer, assert_answer, empty_points, field, framed};
use bulkhead_server::proto as pb;
use bulkhead_server::{ServerLimits, limits};
use bytes::{BufMut, Bytes, BytesMut};
use std::time::{Duration, Instant};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_method_has_its_own_message_limit() {
    let server = TestServer::start().await;
    let token = crate::harness::seed(&server, "acme").await;
    let address = server.addr.to_string();
    let raw = Raw::connect(&address).await;
    // Just over the small limit of Count: refused from the 5-byte prefix, naming the limit.
    let mut body = BytesMut::new();
    field(&mut body, 1, &vec![b'x'; limits::MAX_SMALL_MESSAGE_BYTES]);
    let answer = raw.call(COUNT, Some(&token), framed(&body)).await;
    assert_answer(&answer, Code::ResourceExhausted, "MAX_SMALL_MESSAGE_BYTES");
    assert!(answer.message.contains(&limits::MAX_SMALL_MESSAGE_BYTES.to_string()), "{answer:?}");
    // Search has a few MiB.
    let mut body = BytesMut::new();
    field(&mut body, 1, &vec![b'x'; limits::MAX_SEARCH_MESSAGE_BYTES]);
    let answer = raw.call(SEARCH, Some(&token), framed(&body)).await;
    assert_answer(&answer, Code::ResourceExhausted, "MAX_SEARCH_MESSAGE_BYTES");
    // A unary call carries one message.
    let one = framed(&[]);
    let two = Bytes::from([one.as_ref(), one.as_ref()].concat());
    let answer = raw.call(COUNT, Some(&token), two).await;
    assert_answer(&answer, Code::InvalidArgument, "exactly one message");
    // Reflection stays open, with the small limit: a request within it is answered without a
    // credential; one over it is never read (reflection ends its stream on a bad request, so the
    // call ends without an answer rather than with the limit's status).
    const REFLECTION: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
    let mut list_services = BytesMut::new();
    field(&mut list_services, 7, b"");
    let answer = raw.call(REFLECTION, None, framed(&list_services)).await;
    assert!(answer.code == Code::Ok && answer.data > 0, "{answer:?}");
    let mut oversized = BytesMut::new();
    field(&mut oversized, 1, &vec![b'x'; limits::MAX_SMALL_MESSAGE_BYTES]);
    field(&mut oversized, 7, b"");
    let answer = raw.call(REFLECTION, None, framed(&oversized)).await;
    assert_eq!(answer.data, 0, "{answer:?}");

    // A legitimate upsert near the library's 32 MiB batch limit still succeeds.
    let heavy: Vec<_> = (0..127)
        .map(|i| {
            point(&format!("h{i}"), [1.0, 0.0, 0.0], &"x".repeat(bulkhead_query::limits::MAX_TEXT_BYTES))
        })
        .collect();
    let mut data = server.data().await;
    let accepted = data
        .upsert(req(pb::UpsertRequest { collection: "docs".into(), points: heavy }, &token))
        .await
        .expect("an upsert of 31.75 MiB");
    assert_eq!(accepted.into_inner().versions.len(), 127);
    assert_eq!(crate::harness::count(&server, "acme", "docs"), 129);
    // Every call returned its share of the request memory budget.
    let budget = server.request_memory.available();
    assert_eq!(budget, limits::REQUEST_MEMORY_BUDGET_BYTES, "the budget is whole again");
    drop(raw);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_after_admission_are_counted_and_audited() {
    let server = TestServer::start().await;
    let token = crate::harness::seed(&server, "acme").await;
    let raw = Raw::connect(&server.addr.to_string()).await;
    let answer = raw.call(UPSERT, Some(&token), empty_points(2_000)).await;
    assert_answer(&answer, Code::InvalidArgument, "at most 1024 points per batch");
    let mut admin = server.admin().await;
    let page = admin
        .export_audit(req(
            pb::ExportAuditRequest { tenant: "acme".into(), since_ms: 0, from_seq: 0, limit: 0 },
            &server.admin_token,
        ))
        .await
        .expect("export")
        .into_inner();
    let last = page.events.iter().rev().find(|e| e.operation == "upsert").expect("an upsert event");
    assert_eq!(last.outcome, "invalid-argument");
    drop(raw);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_memory_budget_is_waited_for_then_refused() {
    // A budget with room for one 1 MiB message at a time (three times its length).
    let budget = 3 * 1024 * 1024 + 1024;
    let small = ServerLimits {
        request_memory_budget_bytes: budget,
        request_timeout: Duration::from_millis(2_000),
        ..ServerLimits::default()
    };
    let server = TestServer::with_limits(small).await;
    let token = crate::harness::seed(&server, "acme").await;
    let address = server.addr.to_string();
    // A message larger than the whole budget is refused at once.
    let raw = Raw::connect(&address).await;
    let too_large = raw.call(UPSERT, Some(&token), empty_points(1024 * 1024)).await;
    assert_answer(&too_large, Code::ResourceExhausted, "REQUEST_MEMORY_BUDGET_BYTES");
    // A 1 MiB message whose body stops after its prefix holds the budget.
    let holder = Raw::connect(&address).await;
    let mut prefix = BytesMut::new();
    prefix.put_u8(0);
    prefix.put_u32(1024 * 1024);
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{address}{UPSERT}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .expect("request");
    let mut send = holder.send.clone().ready().await.expect("ready");
    let held_at = Instant::now();
    let (held_response, mut held_stream) = send.send_request(request, false).expect("send");
    held_stream.send_data(prefix.freeze(), false).expect("prefix");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(server.request_memory.available() < 1024 * 1024, "the held message reserved its share");
    // The next message waits for room until its own (shorter) deadline, then is refused: by the
    // budget's wait, naming the budget, or by tonic's own enforcement of the client's
    // `grpc-timeout`, which expires at the same instant (the unit tests of `budget.rs` check the
    // budget's refusal alone).
    let started = Instant::now();
    let waiter = raw.call_within(UPSERT, Some(&token), empty_points(1000), Some("500m")).await;
    let waited = started.elapsed();
    assert!(
        (waiter.code == Code::ResourceExhausted && waiter.message.contains("before its deadline"))
            || (waiter.code == Code::Cancelled && waiter.message.contains("Timeout expired")),
        "{waiter:?}"
    );
    assert!(waited >= Duration::from_millis(450), "it waited for room: {waited:?}");
    // The held message's body did not arrive within its deadline: refused, its share returned.
    let held = held_response.await.expect("response");
    let held = answer(held.headers()).expect("a status in the headers");
    assert_answer(&held, Code::DeadlineExceeded, "2000 ms");
    assert!(held_at.elapsed() >= Duration::from_millis(1_900), "{:?}", held_at.elapsed());
    drop(held_stream);
    drop(holder);
    let counted = raw
        .call(COUNT, Some(&token), {
            let mut body = BytesMut::new();
            field(&mut body, 1, b"docs");
            framed(&body)
        })
        .await;
    assert_eq!(counted.code, Code::Ok, "{counted:?}");
    assert_eq!(server.request_memory.available(), budget, "every reservation was returned");
    assert_eq!(crate::harness::count(&server, "acme", "docs"), 2);
    drop(raw);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let two = ServerLimits { max_connections: 2, ..ServerLimits::default() };
    let server = TestServer::with_limits(two).await;
    let address = server.addr.to_string();
    let count_body = {
        let mut body = BytesMut::new();
        field(&mut body, 1, b"docs");
        framed(&body)
    };
    let first = Raw::connect(&address).await;
    let second = Raw::connect(&address).await;
    for raw in [&first, &second] {
        assert_eq!(raw.call(COUNT, None, count_body.clone()).await.code, Code::Unauthenticated);
    }
    // The third connection is made by the kernel, but the server does not serve it.
    let third = Raw::connect(&address).await;
    let pending = tokio::spawn({
        let body = count_body.clone();
        async move {
            let answer = third.call(COUNT, None, body).await;
            (answer, third)
        }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!pending.is_finished(), "a connection beyond the cap was served");
    drop(first);
    let (answer, third) = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("served once a connection closed")
        .expect("task");
    assert_eq!(answer.code, Code::Unauthenticated);
    drop((second, third));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_does_not_introduce_itself_is_closed_and_frees_its_permit() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let one = ServerLimits { max_connections: 1, ..ServerLimits::default() };
    let server = TestServer::with_limits(one).await;
    let address = server.addr.to_string();
    let mut dribbling = tokio::net::TcpStream::connect(&address).await.expect("tcp");
    let started = Instant::now();
    // Part of the HTTP/2 preface, then nothing: the server closes the connection after the timeout
    // (reading what it sent meanwhile, its own SETTINGS, until the end).
    dribbling.write_all(b"PRI * HTTP/2.0").await.expect("write");
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(limits::CONNECTION_HANDSHAKE_TIMEOUT + Duration::from_secs(5), async {
        loop {
            match dribbling.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection was closed");
    assert!(started.elapsed() >= limits::CONNECTION_HANDSHAKE_TIMEOUT - Duration::from_millis(500));
    // Its permit is free again.
    let raw = Raw::connect(&address).await;
    let mut body = BytesMut::new();
    field(&mut body, 1, b"docs");
    assert_eq!(raw.call(COUNT, None, framed(&body)).await.code, Code::Unauthenticated);
    drop(raw);
    server.stop().await;
}

#[test]
fn every_rpc_has_a_message_limit() {
    use prost::Message;
    let set = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).expect("descriptor set");
    let mut paths = Vec::new();
    for file in set.file.iter().filter(|f| f.package() == "bulkhead.v1") {
        for service in &file.service {
            for method in &service.method {
                paths.push(format!("/bulkhead.v1.{}/{}", service.name(), method.name()));
            }
        }
    }
    assert_eq!(paths.len(), limits::REQUEST_MESSAGE_LIMITS.len());
    // The methods whose request is a stream are exactly the ones the body limits treat as such.
    let streaming: Vec<String> = set
        .file
        .iter()
        .filter(|f| f.package() == "bulkhead.v1")
        .flat_map(|f| f.service.iter())
        .flat_map(|s| {
            s.method
                .iter()
                .filter(|m| m.client_streaming())
                .map(move |m| format!("/bulkhead.v1.{}/{}", s.name(), m.name()))
        })
        .collect();
    assert_eq!(streaming, limits::CLIENT_STREAMING_METHODS);
    for path in &paths {
        assert!(limits::REQUEST_MESSAGE_LIMITS.iter().any(|(p, _)| p == path), "{path} has no message limit");
    }
    assert_eq!(limits::request_message_limit(UPSERT).bytes, limits::MAX_MESSAGE_BYTES);
    assert_eq!(
        limits::request_message_limit("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo").bytes,
        limits::MAX_SMALL_MESSAGE_BYTES
    );
}

#[test]
fn the_codec_counts_every_element_and_checks_field_limits() {
    use bulkhead_server::codec::count_request_elements;
    use prost::Message;
    let mut first = point("a", [1.0, 0.0, 0.0], "");
    for key in ["k1", "k2", "k3"] {
        first.metadata.insert(key.into(), pb::MetaValue { kind: Some(pb::meta_value::Kind::Flag(true)) });
    }
    first.acl = Some(pb::Acl { users: vec!["u1".into(), "u2".into()], groups: vec![] });
    let request =
        pb::UpsertRequest { collection: "docs".into(), points: vec![first, point("b", [0.0, 1.0, 0.0], "")] };
    // Two points, three map entries with their values, one ACL with two users.
    assert_eq!(count_request_elements::<pb::UpsertRequest>(&request.encode_to_vec()).expect("count"), 11);
    let over = pb::DeleteRequest { collection: "docs".into(), ids: vec![String::new(); 1025] };
    let refused = count_request_elements::<pb::DeleteRequest>(&over.encode_to_vec()).expect_err("over");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("at most 1024 ids"), "{refused:?}");
    // Users and groups share the ACL's limit.
    let mut p = point("a", [1.0, 0.0, 0.0], "");
    p.acl = Some(pb::Acl { users: vec!["u".into(); 600], groups: vec!["g".into(); 600] });
    let request = pb::UpsertRequest { collection: "docs".into(), points: vec![p] };
    let refused = count_request_elements::<pb::UpsertRequest>(&request.encode_to_vec()).expect_err("acl");
    assert!(refused.message().contains("1024 users and groups"), "{refused:?}");
    // Within every per-field limit, but over the total.
    let points = (0..1024)
        .map(|i| {
            let mut p = point(&format!("p{i}"), [1.0, 0.0, 0.0], "");
            p.acl = Some(pb::Acl { users: vec!["u".into(); 300], groups: vec![] });
            p
        })
        .collect();
    let request = pb::UpsertRequest { collection: "docs".into(), points };
    let refused = count_request_elements::<pb::UpsertRequest>(&request.encode_to_vec()).expect_err("total");
    assert!(refused.message().contains("MAX_REQUEST_ELEMENTS"), "{refused:?}");
    // Filters nest at most MAX_FILTER_DEPTH deep, counted as the library counts.
    let mut filter = pb::Filter {
        kind: Some(pb::filter::Kind::Eq(pb::Equals {
            field: "f".into(),
            value: Some(pb::equals::Value::Flag(true)),
        })),
    };
    for _ in 1..bulkhead_query::limits::MAX_FILTER_DEPTH {
        filter = pb::Filter { kind: Some(pb::filter::Kind::Not(Box::new(filter))) };
    }
    let mut request = search("docs", [1.0, 0.0, 0.0], 1);
    request.filter = Some(filter.clone());
    count_request_elements::<pb::SearchRequest>(&request.encode_to_vec()).expect("depth at the limit");
    request.filter = Some(pb::Filter { kind: Some(pb::filter::Kind::Not(Box::new(filter))) });
    let refused = count_request_elements::<pb::SearchRequest>(&request.encode_to_vec()).expect_err("depth");
    assert!(refused.message().contains("nested deeper than 8"), "{refused:?}");
    // Responses are not requests.
    assert!(count_request_elements::<pb::SearchResponse>(&[]).is_err());
    // Malformed bytes are refused without a panic.
    let refused = count_request_elements::<pb::UpsertRequest>(&[0x12, 0xff, 0xff]).expect_err("truncated");
    assert_eq!(refused.code(), Code::InvalidArgument);
}

#[test]
fn every_request_element_fits_its_reservation() {
    use std::mem::size_of;
    // Each element's value sits in a Vec or a hash map (see below), plus one allocator chunk (at
    // most 64 bytes of overhead) for its own contents.
    let sizes = [
        ("Point", size_of::<pb::Point>()),
        ("metadata entry", size_of::<(String, pb::MetaValue)>()),
        ("MetaValue", size_of::<pb::MetaValue>()),
        ("KeywordList", size_of::<pb::KeywordList>()),
        ("string", size_of::<String>()),
        ("Acl", size_of::<pb::Acl>()),
        ("BatchQuery", size_of::<pb::BatchQuery>()),
        ("Filter", size_of::<pb::Filter>()),
        ("FilterList", size_of::<pb::FilterList>()),
        ("Equals", size_of::<pb::Equals>()),
        ("OneOf", size_of::<pb::OneOf>()),
        ("Range", size_of::<pb::Range>()),
        ("Principal", size_of::<pb::Principal>()),
        ("UserBinding", size_of::<pb::UserBinding>()),
        ("TenantPolicy", size_of::<pb::TenantPolicy>()),
        ("DeniedOperation", size_of::<pb::DeniedOperation>()),
        ("ImportTenantStart", size_of::<pb::ImportTenantStart>()),
        ("u64", size_of::<u64>()),
    ];
    for (name, size) in sizes {
        // A Vec at most doubles its elements' size; a hash map (the metadata map is the only one)
        // holds at most twice its entries over its 7/8 load factor, each with a control byte.
        let in_container = if name == "metadata entry" { (size + 1) * 16 / 7 + 1 } else { 2 * size };
        let cost = in_container + 64;
        eprintln!("{name}: {size} bytes, at most {cost} bytes as an element");
        assert!(cost <= limits::ELEMENT_RESERVATION_BYTES, "{name} is {size} bytes");
    }
}
