//! Each tenant's share of the server (`quota.rs`): its request rate and upserted bytes a second,
//! its searches at once and its part of the work permits, from its policy or the server's
//! defaults. A refused call is `RESOURCE_EXHAUSTED` naming the quota and its limit, changes
//! nothing, and another tenant's calls go on.

use crate::harness::{TestServer, count, point, req, search, set_quotas};
use bulkhead_query::{TenantName, TenantQuotas};
use bulkhead_server::proto as pb;
use bulkhead_server::{QuotaDefaults, ServerLimits};
use std::time::Duration;
use tonic::Code;

fn exhausted(status: &tonic::Status, quota: &str, limit: &str) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains(quota) && status.message().contains(limit), "{status:?}");
}

async fn count_call(server: &TestServer, token: &str) -> Result<u64, tonic::Status> {
    let mut data = server.data().await;
    Ok(data.count(req(pb::CountRequest { collection: "docs".into() }, token)).await?.into_inner().count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_over_its_request_rate_is_refused_and_another_is_not() {
    let server = TestServer::start().await;
    let acme = crate::harness::seed(&server, "acme").await;
    let globex = crate::harness::seed(&server, "globex").await;
    set_quotas(&server, "acme", TenantQuotas { requests_per_second: Some(3), ..TenantQuotas::default() });
    // Twelve calls at once: three in the bucket, the rest refused (their refusals held, see below),
    // while the other tenant's calls are answered.
    let data = server.data().await;
    let calls: Vec<_> = (0..12)
        .map(|_| {
            let (data, acme) = (data.clone(), acme.clone());
            tokio::spawn(async move { count_with(data, &acme, None).await })
        })
        .collect();
    for _ in 0..5 {
        assert_eq!(count_call(&server, &globex).await.expect("globex is not limited"), 2);
    }
    let mut refused = Vec::new();
    for call in calls {
        if let Err(status) = call.await.expect("join") {
            refused.push(status);
        }
    }
    // Three in the bucket, and at most a few more refilled while the calls were sent.
    assert!(refused.len() >= 6, "{} of 12 refused", refused.len());
    exhausted(&refused[0], "requests_per_second", "3");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(count_call(&server, &acme).await.expect("the bucket refilled"), 2);
    server.stop().await;
}

/// A count with the client's deadline `timeout` if given; the time to its answer if admitted.
async fn count_with(
    mut data: Data,
    token: &str,
    timeout: Option<Duration>,
) -> Result<Duration, tonic::Status> {
    let mut request = req(pb::CountRequest { collection: "docs".into() }, token);
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    let sent = std::time::Instant::now();
    data.count(request).await.map(|_| sent.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_answered_at_its_turn_and_within_the_calls_deadline() {
    let server = TestServer::start().await;
    let acme = crate::harness::seed(&server, "acme").await;
    set_quotas(&server, "acme", TenantQuotas { requests_per_second: Some(4), ..TenantQuotas::default() });
    let data = server.data().await;
    // Spends the bucket (four; a fifth in case one refilled meanwhile), then sends three calls at
    // once: the refused ones are answered a quarter second (one request's refill) apart, so that
    // a client retrying at once is paced at its quota.
    let spend = |data: &Data| {
        let (data, acme) = (data.clone(), acme.clone());
        async move {
            for _ in 0..5 {
                let _ = count_with(data.clone(), &acme, None).await;
            }
        }
    };
    spend(&data).await;
    let start = std::time::Instant::now();
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let (data, acme) = (data.clone(), acme.clone());
            tokio::spawn(async move { (count_with(data, &acme, None).await, start.elapsed()) })
        })
        .collect();
    let mut refused_after = Vec::new();
    for call in calls {
        let (answer, after) = call.await.expect("join");
        if let Err(refused) = answer {
            exhausted(&refused, "requests_per_second", "4");
            refused_after.push(after);
        }
    }
    assert!(refused_after.len() >= 2, "{} of 3 refused", refused_after.len());
    refused_after.sort();
    for (turn, after) in refused_after.iter().enumerate() {
        // Lower bounds only: a hold never ends early, however late its call was sent.
        let at_least = Duration::from_millis(250 * (turn as u64 + 1) - 50);
        assert!(*after >= at_least, "refusal {turn} answered after {after:?}");
    }
    // A refusal whose turn is after the client's deadline still arrives as a refusal: it is held
    // at most a quarter of the call's deadline (the later turns, 500 and 750 ms, are past 600).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    spend(&data).await;
    let deadline = Some(Duration::from_millis(600));
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let (data, acme) = (data.clone(), acme.clone());
            tokio::spawn(async move { count_with(data, &acme, deadline).await })
        })
        .collect();
    let mut refused = 0;
    for call in calls {
        if let Err(status) = call.await.expect("join") {
            exhausted(&status, "requests_per_second", "4");
            refused += 1;
        }
    }
    assert!(refused >= 2, "{refused} of 3 refused");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upserted_bytes_over_the_tenants_rate_are_refused_before_the_write() {
    let server = TestServer::start().await;
    let acme = crate::harness::seed(&server, "acme").await;
    set_quotas(
        &server,
        "acme",
        TenantQuotas { write_bytes_per_second: Some(2_000), ..TenantQuotas::default() },
    );
    let upsert = |id: &str| pb::UpsertRequest {
        collection: "docs".into(),
        points: vec![point(id, [1.0, 0.5, 0.0], &"x".repeat(1_500))],
    };
    let mut data = server.data().await;
    data.upsert(req(upsert("first"), &acme)).await.expect("the bucket holds it");
    let status = data.upsert(req(upsert("second"), &acme)).await.expect_err("the bucket is spent");
    exhausted(&status, "write_bytes_per_second", "2000");
    assert_eq!(count(&server, "acme", "docs"), 3, "the refused write changed nothing");
    // Reads are not charged to the write rate.
    assert_eq!(count_call(&server, &acme).await.expect("count"), 3);
    server.stop().await;
}

type Call<T> = tokio::task::JoinHandle<Result<tonic::Response<T>, tonic::Status>>;
type Data = bulkhead_server::proto::data_plane_client::DataPlaneClient<tonic::transport::Channel>;
type Answer<T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>> + Send>>;

/// Starts a call of `tenant`'s key on its own connection.
fn spawn_call<T: Send + 'static, F>(server: &TestServer, token: &str, call: F) -> Call<T>
where
    F: FnOnce(Data, String) -> Answer<T> + Send + 'static,
{
    let (addr, token) = (server.addr, token.to_owned());
    tokio::spawn(async move {
        let channel = bulkhead_server::client::connect(&addr.to_string()).await.expect("connect");
        call(bulkhead_server::client::data_plane(channel), token).await
    })
}

/// Waits until `refused` of `calls` have finished (the refused ones: the others wait behind the
/// held permits), checks that each was refused for `quota`, and returns the others.
async fn settle<T: std::fmt::Debug>(
    calls: Vec<Call<T>>,
    refused: usize,
    quota: &str,
    limit: &str,
) -> Vec<Call<T>> {
    tokio::time::timeout(Duration::from_secs(20), async {
        while calls.iter().filter(|c| c.is_finished()).count() < refused {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the calls past the quota are refused at once");
    let (done, waiting): (Vec<_>, Vec<_>) = calls.into_iter().partition(|c| c.is_finished());
    for call in done {
        exhausted(&call.await.expect("join").expect_err("refused"), quota, limit);
    }
    waiting
}

fn search_call(mut data: Data, token: String) -> Answer<pb::SearchResponse> {
    Box::pin(async move { data.search(req(search("docs", [1.0, 0.0, 0.0], 2), &token)).await })
}

fn counting_call(mut data: Data, token: String) -> Answer<pb::CountResponse> {
    Box::pin(async move { data.count(req(pb::CountRequest { collection: "docs".into() }, &token)).await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_past_the_tenants_concurrency_wait_then_are_refused() {
    let limits = ServerLimits { max_concurrent_work: 4, ..ServerLimits::default() };
    let server = TestServer::with_limits(limits).await;
    let acme = crate::harness::seed(&server, "acme").await;
    set_quotas(&server, "acme", TenantQuotas { max_concurrent_searches: Some(1), ..TenantQuotas::default() });
    // Every work permit busy, so that calls stay where they are: of four searches, one holds acme's
    // one search permit (waiting for a work permit), one waits for that search permit, and the
    // other two are refused at once.
    let held = server.gate.hold_all(4).await.expect("permits");
    let calls = (0..4).map(|_| spawn_call(&server, &acme, search_call)).collect();
    let waiting = settle(calls, 2, "max_concurrent_searches", "1").await;
    assert_eq!(waiting.len(), 2);
    drop(held);
    for call in waiting {
        let hits = call.await.expect("join").expect("the queued searches run").into_inner().hits;
        assert_eq!(hits.len(), 2);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_holds_at_most_its_share_of_the_work_permits() {
    let quotas = QuotaDefaults { max_tenant_work: 2, ..QuotaDefaults::for_work(4) };
    let limits = ServerLimits { max_concurrent_work: 4, quotas, ..ServerLimits::default() };
    let server = TestServer::with_limits(limits).await;
    let acme = crate::harness::seed(&server, "acme").await;
    let globex = crate::harness::seed(&server, "globex").await;
    // Every server permit busy, so that calls stay queued: of six acme calls, two hold its whole
    // share while they wait for a server permit, two wait for its share, and two are refused.
    // Globex's call is behind none of acme's: it waits only for a server permit.
    let held = server.gate.hold_all(4).await.expect("permits");
    let calls = (0..6).map(|_| spawn_call(&server, &acme, counting_call)).collect();
    let waiting = settle(calls, 2, "work share", "2").await;
    let globex_call = spawn_call(&server, &globex, counting_call);
    drop(held);
    assert_eq!(globex_call.await.expect("join").expect("globex runs").into_inner().count, 2);
    for call in waiting {
        assert_eq!(call.await.expect("join").expect("acme's queued calls run").into_inner().count, 2);
    }
    server.stop().await;
}

/// Acme's audit events with this operation, through the library.
fn events(server: &TestServer, operation: &str) -> Vec<bulkhead_query::AuditEvent> {
    let op = server.db.operator();
    let uid = op.tenant_info(&TenantName::new("acme").expect("name")).expect("tenant").uid;
    op.audit_events(uid).expect("events").into_iter().filter(|e| e.operation == operation).collect()
}

async fn unlock(server: &TestServer, key_id: &str) -> bool {
    let request = pb::UnlockApiKeyRequest { tenant: "acme".into(), key_id: key_id.to_owned() };
    let mut admin = server.admin().await;
    admin.unlock_api_key(req(request, &server.admin_token)).await.expect("unlock").into_inner().was_locked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_refusals_locks_the_key_until_an_operator_unlocks_it() {
    let server = TestServer::start().await;
    let admin = crate::harness::seed(&server, "acme").await;
    set_quotas(&server, "acme", TenantQuotas { max_denials: Some(3), ..TenantQuotas::default() });
    let (reader, reader_id) = server.key("acme", pb::Role::Reader).await;
    let mut data = server.data().await;
    let write =
        || pb::UpsertRequest { collection: "docs".into(), points: vec![point("p", [1.0, 0.0, 0.0], "x")] };
    for _ in 0..3 {
        let status = data.upsert(req(write(), &reader)).await.expect_err("a reader cannot write");
        assert_eq!(status.code(), Code::PermissionDenied);
        assert!(!status.message().contains("locked"), "{status:?}");
    }
    // The third refusal locked the key: even what its role allows is refused now.
    let status = count_call(&server, &reader).await.expect_err("locked");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("locked") && status.message().contains("unlock"), "{status:?}");
    let locked = events(&server, "api-key-locked");
    assert_eq!(locked.len(), 1, "one lock event");
    assert_eq!(locked[0].note.as_deref(), Some("denials"));
    let keys = server.db.operator().list_api_keys(&TenantName::new("acme").expect("name")).expect("keys");
    assert!(keys.iter().any(|k| k.key_id == reader_id && k.locked));
    // Another key of the tenant goes on.
    assert_eq!(count_call(&server, &admin).await.expect("the admin key is not locked"), 2);
    assert!(unlock(&server, &reader_id).await, "it was locked");
    assert!(!unlock(&server, &reader_id).await, "unlocking twice changes nothing");
    assert_eq!(count_call(&server, &reader).await.expect("unlocked"), 2);
    assert_eq!(events(&server, "api-key-unlocked").len(), 1);
    // Its refusals start afresh after the unlock.
    let status = data.upsert(req(write(), &reader)).await.expect_err("still a reader");
    assert!(!status.message().contains("locked"), "{status:?}");
    assert_eq!(count_call(&server, &reader).await.expect("one refusal does not lock"), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_tenants_baseline_locks_the_key() {
    let server = TestServer::start().await;
    let admin = crate::harness::seed(&server, "acme").await;
    // A multiple of 1: a new tenant's baseline is the floor, 300 requests a window.
    set_quotas(&server, "acme", TenantQuotas { burst_multiple: Some(1), ..TenantQuotas::default() });
    let (reader, reader_id) = server.key("acme", pb::Role::Reader).await;
    let mut refused_at = None;
    for i in 0..400 {
        if let Err(status) = count_call(&server, &reader).await {
            assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
            assert!(status.message().contains("locked"), "{status:?}");
            refused_at = Some(i);
            break;
        }
    }
    assert_eq!(refused_at, Some(300), "the 301st request in the window passes the baseline");
    assert_eq!(events(&server, "api-key-locked")[0].note.as_deref(), Some("burst"));
    // The admin key's requests count in the tenant's baseline, but it made only a few.
    assert_eq!(count_call(&server, &admin).await.expect("another key"), 2);
    assert!(unlock(&server, &reader_id).await);
    assert_eq!(count_call(&server, &reader).await.expect("unlocked"), 2);
    server.stop().await;
}
