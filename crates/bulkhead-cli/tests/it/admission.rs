//! Admission against the real binary: no request can exhaust the server before it is
//! authenticated, and an authenticated one cannot make it decode more than its limits allow, nor
//! build an answer past its limit. Hostile messages are built by hand on the wire (the server's
//! `tests/it/wire.rs`: two bytes per empty point) and sent over raw HTTP/2, so that the test process
//! never encodes them; the server is `bulkhead serve` and its peak resident set (`VmHWM`) is read
//! from `/proc`. The in-process admission tests are in `crates/bulkhead-server/tests/it/admission.rs`.

use crate::serve::{Running, start_serve};
use crate::wire::{Answer, Raw, SEARCH, UPSERT, assert_answer, empties, empty_points, field, framed, varint};
use crate::wire::{point, req, search};
use bulkhead_server::client::{self, Code};
use bulkhead_server::{limits, proto as pb};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const DELETE: &str = "/bulkhead.v1.DataPlane/Delete";

// ----------------------------------------------------------------------------------------------
// Hand-made wire bytes
// ----------------------------------------------------------------------------------------------

/// A `DeleteRequest` for `docs` with `ids` empty ids.
fn empty_ids(ids: usize) -> Bytes {
    let mut message = BytesMut::new();
    field(&mut message, 1, b"docs");
    empties(&mut message, 2, ids);
    framed(&message)
}

/// A `SearchRequest` for `docs` whose filter is an `and` of `nodes` empty `and` nodes.
fn empty_and_nodes(nodes: usize) -> Bytes {
    let mut list = BytesMut::new();
    // FilterList.filters (1): empty Filter messages.
    empties(&mut list, 1, nodes);
    let mut filter = BytesMut::new();
    // Filter.and (4).
    field(&mut filter, 4, &list);
    let mut message = BytesMut::new();
    field(&mut message, 1, b"docs");
    let vector: Vec<u8> = [1.0f32, 0.0, 0.0].iter().flat_map(|f| f.to_le_bytes()).collect();
    field(&mut message, 2, &vector);
    varint(&mut message, 3 << 3);
    varint(&mut message, 1);
    field(&mut message, 5, &filter);
    framed(&message)
}

/// An `UpsertRequest` of one point whose metadata map has `entries` empty entries.
fn empty_metadata(entries: usize) -> Bytes {
    let mut point = BytesMut::new();
    field(&mut point, 1, b"m");
    let vector: Vec<u8> = [1.0f32, 0.0, 0.0].iter().flat_map(|f| f.to_le_bytes()).collect();
    field(&mut point, 2, &vector);
    // Point.metadata (4): empty map entries.
    empties(&mut point, 4, entries);
    let mut message = BytesMut::new();
    field(&mut message, 1, b"docs");
    field(&mut message, 2, &point);
    framed(&message)
}

// ----------------------------------------------------------------------------------------------
// The real binary
// ----------------------------------------------------------------------------------------------

/// `bulkhead serve` on a fresh directory with its development admin token, and the tenants the
/// tests use: acme (a collection `docs` of dimension 3 with two points) and globex (the same),
/// each with a writer and a reader key.
struct Binary {
    running: Running,
    _dir: tempfile::TempDir,
    address: String,
    keys: Keys,
}

#[derive(Clone)]
struct Keys {
    acme_writer: String,
    acme_reader: String,
    globex_reader: String,
    admin: String,
}

impl Binary {
    async fn start(extra: &[&str]) -> Binary {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args = vec!["--listen", "127.0.0.1:0", "--metrics-listen", "off"];
        args.extend_from_slice(extra);
        let running = start_serve(dir.path(), &args, &[]).expect("serving");
        let address = running.address.clone();
        let admin = std::fs::read_to_string(dir.path().join("bulkhead-data/dev-admin.token"))
            .expect("dev admin token")
            .trim()
            .to_owned();
        let channel = client::connect_with(&address, None).await.expect("connect");
        let mut admin_client = client::admin(channel.clone());
        let mut data = client::data_plane(channel);
        let mut keys = Vec::new();
        for tenant in ["acme", "globex"] {
            admin_client
                .create_tenant(req(
                    pb::CreateTenantRequest { name: tenant.into(), ..Default::default() },
                    &admin,
                ))
                .await
                .expect("tenant");
            let issue = |role: pb::Role| pb::IssueApiKeyRequest {
                tenant: tenant.into(),
                role: role as i32,
                label: String::new(),
                expires_ms: None,
                binding: None,
            };
            let mut tokens = Vec::new();
            for role in [pb::Role::TenantAdmin, pb::Role::Writer, pb::Role::Reader] {
                let issued = admin_client.issue_api_key(req(issue(role), &admin)).await.expect("key");
                tokens.push(issued.into_inner().token);
            }
            let create = pb::CreateCollectionRequest {
                name: "docs".into(),
                dimension: 3,
                metric: pb::Metric::Cosine as i32,
            };
            data.create_collection(req(create, &tokens[0])).await.expect("collection");
            let points = vec![point("a", [1.0, 0.0, 0.0], "alpha"), point("b", [0.0, 1.0, 0.0], "beta")];
            data.upsert(req(pb::UpsertRequest { collection: "docs".into(), points }, &tokens[1]))
                .await
                .expect("upsert");
            keys.push(tokens);
        }
        let keys = Keys {
            acme_writer: keys[0][1].clone(),
            acme_reader: keys[0][2].clone(),
            globex_reader: keys[1][2].clone(),
            admin,
        };
        Binary { running, _dir: dir, address, keys }
    }

    /// The server's peak resident set so far, in MiB.
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.running.pid())).expect("status");
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("VmHWM");
        kib / 1024.0
    }

    async fn count(&self, token: &str) -> u64 {
        let mut data = client::data_plane(client::connect_with(&self.address, None).await.expect("connect"));
        data.count(req(pb::CountRequest { collection: "docs".into() }, token))
            .await
            .expect("count")
            .into_inner()
            .count
    }
}

/// Another tenant's searches, one after another on their own connection, until stopped; every one
/// must succeed. Returns how many ran.
fn searches_meanwhile(
    address: String,
    token: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let channel = client::connect_with(&address, None).await.expect("connect");
        let mut data = client::data_plane(channel);
        let mut done = 0;
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let hits = data
                .search(req(search("docs", [1.0, 0.0, 0.0], 1), &token))
                .await
                .expect("a search during the flood");
            assert_eq!(hits.into_inner().hits.len(), 1);
            assert!(started.elapsed() < Duration::from_secs(5), "a search took {:?}", started.elapsed());
            done += 1;
        }
        done
    })
}

/// Sends `body` to `path` `copies` times at once, each on its own connection; returns the answers.
async fn flood(
    address: &str,
    path: &'static str,
    token: Option<&str>,
    body: &Bytes,
    copies: usize,
) -> Vec<Answer> {
    let mut calls = Vec::new();
    for _ in 0..copies {
        let (address, token, body) = (address.to_owned(), token.map(str::to_owned), body.clone());
        calls.push(tokio::spawn(async move {
            let raw = Raw::connect(&address).await;
            raw.call(path, token.as_deref(), body).await
        }));
    }
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.expect("call task"));
    }
    answers
}

// ----------------------------------------------------------------------------------------------
// Tests
// ----------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_never_have_their_body_read() {
    let server = Binary::start(&[]).await;
    let baseline = server.peak_rss_mib();
    // 30 million empty points: 60 MB on the wire, several GiB once decoded.
    let hostile = empty_points(30_000_000);
    assert!(hostile.len() > 60_000_000 && hostile.len() < limits::MAX_MESSAGE_BYTES);
    let stop = Arc::new(AtomicBool::new(false));
    let searches =
        searches_meanwhile(server.address.clone(), server.keys.globex_reader.clone(), Arc::clone(&stop));

    let one = Raw::connect(&server.address).await.call(UPSERT, None, hostile.clone()).await;
    assert_answer(&one, Code::Unauthenticated, "missing credential");
    let unknown = format!("bk_{}_{}", "00".repeat(16), "11".repeat(32));
    for (token, code, needle) in [
        (None, Code::Unauthenticated, "missing credential"),
        (Some("not a key"), Code::Unauthenticated, "invalid or expired credential"),
        (Some(unknown.as_str()), Code::Unauthenticated, "invalid or expired credential"),
        // A valid key without the role, of this tenant and of another.
        (Some(server.keys.acme_reader.as_str()), Code::PermissionDenied, "a reader key cannot upsert points"),
        (
            Some(server.keys.globex_reader.as_str()),
            Code::PermissionDenied,
            "a reader key cannot upsert points",
        ),
        // The admin token on the data plane.
        (Some(server.keys.admin.as_str()), Code::PermissionDenied, "cannot call the data plane"),
    ] {
        let started = Instant::now();
        let answers = flood(&server.address, UPSERT, token, &hostile, 16).await;
        for answer in &answers {
            assert_answer(answer, code, needle);
        }
        eprintln!(
            "16 x {} MB upserts ({code:?}) refused in {:?}; peak RSS {:.1} MiB",
            hostile.len() / 1_000_000,
            started.elapsed(),
            server.peak_rss_mib()
        );
    }
    // A tenant key on the admin plane, with a body far over the admin method's own limit: the
    // credential is refused first, so the body is never even measured.
    let answers = flood(
        &server.address,
        "/bulkhead.v1.Admin/CreateTenant",
        Some(&server.keys.acme_writer),
        &hostile,
        16,
    )
    .await;
    for answer in &answers {
        assert_answer(answer, Code::PermissionDenied, "tenant API keys cannot call the admin service");
    }
    stop.store(true, Ordering::Relaxed);
    let searched = searches.await.expect("searches");
    assert!(searched >= 5, "the other tenant searched during the floods: {searched}");
    let peak = server.peak_rss_mib();
    eprintln!(
        "refused floods: baseline {baseline:.1} MiB, peak {peak:.1} MiB, {searched} searches meanwhile"
    );
    assert!(peak < 256.0, "peak RSS {peak:.1} MiB");
    assert_eq!(server.count(&server.keys.acme_reader).await, 2, "nothing was written");
    server.running.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_writer_cannot_make_the_server_decode_gigabytes() {
    let server = Binary::start(&[]).await;
    let writer = server.keys.acme_writer.as_str();
    let reader = server.keys.acme_reader.as_str();
    let raw = Raw::connect(&server.address).await;

    // 33 MiB of empty points: within Upsert's message limit, so it is received; refused by its
    // element count before prost allocates a point.
    let points = empty_points(33 * 1024 * 1024 / 2);
    let answer = raw.call(UPSERT, Some(writer), points.clone()).await;
    assert_answer(&answer, Code::InvalidArgument, "at most 1024 points per batch");
    eprintln!("33 MiB of empty points refused; peak RSS {:.1} MiB", server.peak_rss_mib());

    // A million empty ids: over Delete's message limit, refused from the first frame.
    let answer = raw.call(DELETE, Some(writer), empty_ids(1_000_000)).await;
    assert_answer(&answer, Code::ResourceExhausted, "MAX_DELETE_MESSAGE_BYTES");
    // 100,000 empty ids fit the message limit and are refused by count.
    let answer = raw.call(DELETE, Some(writer), empty_ids(100_000)).await;
    assert_answer(&answer, Code::InvalidArgument, "at most 1024 ids per batch");

    // A filter of a million empty `and` nodes, and a metadata map of a million entries.
    let answer = raw.call(SEARCH, Some(reader), empty_and_nodes(1_000_000)).await;
    assert_answer(&answer, Code::InvalidArgument, "an and/or holds at most 1024 children");
    let answer = raw.call(UPSERT, Some(writer), empty_metadata(1_000_000)).await;
    assert_answer(&answer, Code::InvalidArgument, "has more than 64 fields");

    // Sixteen writers at once, each with 33 MiB of empty points: the request memory budget lets a
    // few in at a time, and each is refused by count.
    let started = Instant::now();
    let answers = flood(&server.address, UPSERT, Some(writer), &points, 16).await;
    for answer in &answers {
        assert_answer(answer, Code::InvalidArgument, "at most 1024 points per batch");
    }
    let peak = server.peak_rss_mib();
    eprintln!("16 x 33 MiB of empty points refused in {:?}; peak RSS {peak:.1} MiB", started.elapsed());
    // The default budget (512 MiB) admits five such messages at once (three times 33.5 MiB each):
    // about 170 MiB of received bytes, plus at most 1 MiB of unread bytes per connection and the
    // server's own ~25 MiB. Measured: about 190 MiB.
    assert!(peak < 320.0, "peak RSS {peak:.1} MiB");
    assert_eq!(server.count(reader).await, 2, "the database is unchanged");
    // The writer still writes.
    let mut data = client::data_plane(client::connect_with(&server.address, None).await.expect("connect"));
    let points = vec![point("c", [0.0, 0.0, 1.0], "gamma")];
    data.upsert(req(pb::UpsertRequest { collection: "docs".into(), points }, writer)).await.expect("upsert");
    assert_eq!(server.count(reader).await, 3);
    server.running.stop();
}

/// An answer is bounded before it is built: sixteen readers at once ask for batches whose answers
/// would be 1.6 GB each (64 queries of 100 hits of 256 KiB texts, 25 GB in all); each is refused
/// with RESOURCE_EXHAUSTED once its hits reach `MAX_RESPONSE_BYTES`, the server's peak resident
/// set stays bounded, and another tenant's searches go on meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_refused_before_they_grow_past_their_limit() {
    let server = Binary::start(&[]).await;
    let writer = server.keys.acme_writer.clone();
    let reader = server.keys.acme_reader.clone();
    let mut data = client::data_plane(client::connect_with(&server.address, None).await.expect("connect"));
    let text = "x".repeat(bulkhead_query::limits::MAX_TEXT_BYTES);
    for part in 0..4 {
        let points = (0..25)
            .map(|i| point(&format!("big-{part}-{i}"), [1.0, 0.5, (part * 25 + i) as f32 / 100.0], &text))
            .collect();
        data.upsert(req(pb::UpsertRequest { collection: "docs".into(), points }, &writer))
            .await
            .expect("upsert");
    }
    let before = server.peak_rss_mib();
    let stop = Arc::new(AtomicBool::new(false));
    let meanwhile =
        searches_meanwhile(server.address.clone(), server.keys.globex_reader.clone(), Arc::clone(&stop));
    let mut calls = Vec::new();
    for _ in 0..16 {
        let (address, reader) = (server.address.clone(), reader.clone());
        calls.push(tokio::spawn(async move {
            let mut data = client::data_plane(client::connect_with(&address, None).await.expect("connect"));
            let query = pb::BatchQuery { vector: vec![1.0, 0.5, 0.5], k: 100, ..Default::default() };
            let batch = pb::SearchBatchRequest { collection: "docs".into(), queries: vec![query; 64] };
            data.search_batch(req(batch, &reader)).await.map(|r| r.into_inner().results.len())
        }));
    }
    for call in calls {
        let refused = call.await.expect("call").expect_err("over the answer limit");
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        assert!(refused.message().contains("split the batch"), "{refused:?}");
    }
    stop.store(true, Ordering::Relaxed);
    let searched = meanwhile.await.expect("searches");
    let peak = server.peak_rss_mib();
    eprintln!(
        "16 batches of 1.6 GB answers refused; peak RSS {before:.1} -> {peak:.1} MiB; {searched} searches \
         meanwhile"
    );
    // Each call builds at most MAX_RESPONSE_BYTES (16 MiB) of hits before it is refused, and reads
    // payloads of 256 KiB one at a time: 16 calls hold well under 512 MiB together.
    assert!(peak < 512.0, "peak RSS {peak:.1} MiB");
    assert!(searched > 0, "the other tenant was served meanwhile");
    server.running.stop();
}
