//! Admission: no request can exhaust the server before it is authenticated, and an authenticated
//! one cannot make it decode more than its limits allow. Hostile messages are built by hand on the
//! wire (two bytes per empty point) and sent over raw HTTP/2, so that the test process never
//! encodes them; where memory matters the server is the real `bulkhead` binary and its peak
//! resident set (`VmHWM`) is read from `/proc`.

use crate::harness::{TestServer, point, req, search};
use crate::serve::{Running, start_serve};
use bulkhead_server::proto as pb;
use bulkhead_server::{ServerLimits, client, limits};
use bytes::{BufMut, Bytes, BytesMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tonic::Code;

// ----------------------------------------------------------------------------------------------
// Hand-made wire bytes
// ----------------------------------------------------------------------------------------------

fn varint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// A length-delimited field.
fn field(out: &mut BytesMut, number: u32, bytes: &[u8]) {
    varint(out, u64::from(number << 3 | 2));
    varint(out, bytes.len() as u64);
    out.put_slice(bytes);
}

/// `count` copies of an empty length-delimited field `number` (two bytes each).
fn empties(out: &mut BytesMut, number: u8, count: usize) {
    let pair = [number << 3 | 2, 0];
    out.reserve(2 * count);
    for _ in 0..count {
        out.put_slice(&pair);
    }
}

/// The gRPC framing of one message: a zero flag, the length, the bytes.
fn framed(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.put_slice(message);
    out.freeze()
}

/// An `UpsertRequest` for `docs` with `points` empty points.
fn empty_points(points: usize) -> Bytes {
    let mut message = BytesMut::new();
    field(&mut message, 1, b"docs");
    empties(&mut message, 2, points);
    framed(&message)
}

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
// Raw HTTP/2 calls
// ----------------------------------------------------------------------------------------------

/// The status of a call: code and message (`OK` with an empty message on success), and how many
/// bytes of response messages came before it.
#[derive(Debug, Clone)]
struct Answer {
    code: Code,
    message: String,
    data: usize,
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn answer(headers: &http::HeaderMap) -> Option<Answer> {
    let code = headers.get("grpc-status")?;
    let message =
        headers.get("grpc-message").and_then(|m| m.to_str().ok()).map(percent_decode).unwrap_or_default();
    Some(Answer { code: Code::from_bytes(code.as_bytes()), message, data: 0 })
}

/// One HTTP/2 connection to the server, driven by its own task.
struct Raw {
    send: h2::client::SendRequest<Bytes>,
    driver: tokio::task::JoinHandle<()>,
    address: String,
}

impl Raw {
    async fn connect(address: &str) -> Raw {
        let tcp = tokio::net::TcpStream::connect(address).await.expect("tcp");
        tcp.set_nodelay(true).expect("nodelay");
        let (send, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Raw { send, driver, address: address.to_owned() }
    }

    /// Sends `body` (already framed) to `path` and returns the call's status. The status is read
    /// as soon as the server answers, whether or not it read the body.
    async fn call(&self, path: &str, token: Option<&str>, body: Bytes) -> Answer {
        self.call_within(path, token, body, None).await
    }

    /// As [`Raw::call`], with a `grpc-timeout` when given one.
    async fn call_within(
        &self,
        path: &str,
        token: Option<&str>,
        body: Bytes,
        timeout: Option<&str>,
    ) -> Answer {
        let mut request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{}{path}", self.address))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(timeout) = timeout {
            request = request.header("grpc-timeout", timeout);
        }
        let request = request.body(()).expect("request");
        let mut send = self.send.clone().ready().await.expect("ready");
        let (response, mut stream) = send.send_request(request, false).expect("send request");
        // The server may answer (and reset the stream) before it took the body: a failed send is
        // expected then.
        let _ = stream.send_data(body, true);
        let response = response.await.expect("response headers");
        if let Some(answer) = answer(response.headers()) {
            return answer;
        }
        let mut body = response.into_body();
        let mut data = 0;
        while let Some(chunk) = body.data().await {
            let chunk = chunk.expect("response data");
            data += chunk.len();
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        let trailers = body.trailers().await.expect("trailers").expect("trailers present");
        Answer { data, ..answer(&trailers).expect("grpc-status in the trailers") }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

const UPSERT: &str = "/bulkhead.v1.DataPlane/Upsert";
const DELETE: &str = "/bulkhead.v1.DataPlane/Delete";
const SEARCH: &str = "/bulkhead.v1.DataPlane/Search";
const COUNT: &str = "/bulkhead.v1.DataPlane/Count";

fn assert_answer(answer: &Answer, code: Code, needle: &str) {
    assert_eq!(answer.code, code, "{answer:?}");
    assert!(answer.message.contains(needle), "{answer:?} does not mention {needle:?}");
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
                .create_tenant(req(pb::CreateTenantRequest { name: tenant.into() }, &admin))
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
async fn a_connection_that_does_not_introduce_itself_is_closed_and_frees_its_slot() {
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
    // Its slot is free again.
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
        "16 batches of 1.6 GB answers refused; peak RSS {before:.1} -> {peak:.1} MiB; {searched} searches meanwhile"
    );
    // Each call builds at most MAX_RESPONSE_BYTES (16 MiB) of hits before it is refused, and reads
    // payloads of 256 KiB one at a time: 16 calls hold well under 512 MiB together.
    assert!(peak < 512.0, "peak RSS {peak:.1} MiB");
    assert!(searched > 0, "the other tenant was served meanwhile");
    server.running.stop();
}
