//! Tenant archives over gRPC: `ExportTenant` streams a tenant in chunks, `ImportTenant` restores it
//! under a new name in the shared tier, and searches answer identically; the import streams through
//! a request memory budget smaller than the archive (each chunk's memory goes back once read); a
//! truncated stream, garbage, an oversized chunk, a stream that does not start with `start` are
//! refused with a clear error, create nothing and leave the budget whole.

use crate::harness::{TestServer, req};
use bulkhead_server::client;
use bulkhead_server::limits::{self, MAX_ARCHIVE_CHUNK_BYTES};
use bulkhead_server::proto as pb;
use bulkhead_server::server::ServerLimits;
use pb::import_tenant_request::Kind;
use tonic::Code;

const DIM: usize = 8;
const POINTS: usize = 1200;
/// Small enough that an archive of about 5 MB only fits through it a few chunks at a time.
const BUDGET: usize = 8 * 1024 * 1024;

/// A deterministic pseudo-random vector (splitmix64).
fn vector(i: usize) -> Vec<f32> {
    let mut state = i as u64;
    (0..DIM)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// A collection of `POINTS` points of about 4 KB each (an archive of about 5 MB).
async fn fill(server: &TestServer, tenant: &str) -> String {
    server.tenant(tenant).await;
    let (admin, _) = server.key(tenant, pb::Role::TenantAdmin).await;
    let mut data = server.data().await;
    let create = pb::CreateCollectionRequest {
        name: "docs".into(),
        dimension: DIM as u32,
        metric: pb::Metric::Cosine as i32,
    };
    data.create_collection(req(create, &admin)).await.expect("create collection");
    for batch in (0..POINTS).collect::<Vec<_>>().chunks(200) {
        let points = batch
            .iter()
            .map(|&i| pb::Point {
                id: format!("p{i}"),
                vector: vector(i),
                text: format!("{i} {}", "x".repeat(4000)),
                ..Default::default()
            })
            .collect();
        data.upsert(req(pb::UpsertRequest { collection: "docs".into(), points }, &admin))
            .await
            .expect("upsert");
    }
    admin
}

/// The ids and scores of a few searches.
async fn answers(server: &TestServer, token: &str) -> Vec<Vec<(String, u32)>> {
    let mut data = server.data().await;
    let mut out = Vec::new();
    for seed in 0..5 {
        let query = pb::SearchRequest {
            collection: "docs".into(),
            vector: vector(10_000 + seed),
            k: 10,
            ..Default::default()
        };
        let hits = data.search(req(query, token)).await.expect("search").into_inner().hits;
        out.push(hits.into_iter().map(|h| (h.id, h.score.to_bits())).collect());
    }
    out
}

async fn export(server: &TestServer, tenant: &str) -> (Vec<u8>, pb::ExportTenantSummary, usize) {
    let mut admin = server.admin().await;
    let (mut archive, mut chunks) = (Vec::new(), 0);
    let summary = client::export_tenant(&mut admin, &server.admin_token, tenant, |chunk| {
        assert!(chunk.len() <= MAX_ARCHIVE_CHUNK_BYTES);
        chunks += 1;
        archive.extend_from_slice(chunk);
        Ok(())
    })
    .await
    .expect("export");
    (archive, summary, chunks)
}

async fn import(
    server: &TestServer,
    archive: Vec<u8>,
    new_name: &str,
    tier: &str,
) -> Result<pb::ImportTenantResponse, tonic::Status> {
    let mut admin = server.admin().await;
    let start = pb::ImportTenantStart { new_name: new_name.into(), tier: tier.into() };
    client::import_tenant(&mut admin, &server.admin_token, start, std::io::Cursor::new(archive), |_| {}).await
}

/// Sends `messages` as an import's stream, as they are.
async fn import_raw(server: &TestServer, messages: Vec<pb::ImportTenantRequest>) -> tonic::Status {
    let mut admin = server.admin().await;
    admin.import_tenant(req(tokio_stream::iter(messages), &server.admin_token)).await.expect_err("refused")
}

fn start(new_name: &str, tier: &str) -> pb::ImportTenantRequest {
    let start = pb::ImportTenantStart { new_name: new_name.into(), tier: tier.into() };
    pb::ImportTenantRequest { kind: Some(Kind::Start(start)) }
}

fn chunk(bytes: &[u8]) -> pb::ImportTenantRequest {
    pb::ImportTenantRequest { kind: Some(Kind::Chunk(bytes.to_vec())) }
}

fn tenants(server: &TestServer) -> Vec<String> {
    let listed = server.db.operator().list_tenants().expect("list");
    listed.iter().map(|t| t.name.as_str().to_owned()).collect()
}

/// Waits until every reservation of the request memory budget is back.
async fn budget_is_whole(server: &TestServer) {
    for _ in 0..500 {
        if server.request_memory.available() == BUDGET {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("request memory still reserved: {} of {BUDGET} available", server.request_memory.available());
}

fn operations(server: &TestServer, tenant: &str) -> Vec<String> {
    let op = server.db.operator();
    let uid = op.tenant_info(&bulkhead_query::TenantName::new(tenant).expect("name")).expect("info").uid;
    op.audit_events(uid).expect("audit").into_iter().map(|e| e.operation).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_round_trip_over_grpc_answers_identically() {
    let server = TestServer::with_limits(ServerLimits {
        request_memory_budget_bytes: BUDGET,
        ..ServerLimits::default()
    })
    .await;
    let acme = fill(&server, "acme").await;
    let expected = answers(&server, &acme).await;
    let (archive, summary, chunks) = export(&server, "acme").await;
    assert_eq!(summary.bytes, archive.len() as u64);
    assert_eq!(summary.points, POINTS as u64);
    assert!(archive.len() > 4 * 1024 * 1024 && chunks >= 5, "{} bytes in {chunks} chunks", archive.len());
    assert!(operations(&server, "acme").contains(&"tenant-exported".to_owned()));

    // Through a request memory budget smaller than the archive, into the shared tier, re-keyed.
    let imported = import(&server, archive.clone(), "acme-copy", "shared").await.expect("import");
    let tenant = imported.tenant.expect("tenant");
    assert_eq!((tenant.name.as_str(), tenant.placement.as_str()), ("acme-copy", "shared"));
    assert!(imported.rekeyed);
    assert_eq!((imported.points, imported.bytes), (POINTS as u64, archive.len() as u64));
    assert_eq!(imported.archive_id, summary.archive_id);
    assert!(operations(&server, "acme-copy").contains(&"tenant-imported".to_owned()));
    // An imported tenant has no keys, and the operator cannot issue it one: a tenant-admin key
    // comes through an approved break-glass grant, and issues the reader.
    server.recover("acme-copy").await;
    let (copy, _) = server.key("acme-copy", pb::Role::Reader).await;
    assert_eq!(answers(&server, &copy).await, expected);
    budget_is_whole(&server).await;

    // The same archive under its own name: the name is taken.
    let taken = import(&server, archive, "", "").await.expect_err("taken");
    assert_eq!(taken.code(), Code::AlreadyExists, "{taken:?}");
    // An unknown tenant is NOT_FOUND, as the call's status.
    let mut admin = server.admin().await;
    let missing = client::export_tenant(&mut admin, &server.admin_token, "nobody", |_| Ok(()))
        .await
        .expect_err("unknown");
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_archives_over_grpc_are_refused_and_create_nothing() {
    let server = TestServer::with_limits(ServerLimits {
        request_memory_budget_bytes: BUDGET,
        ..ServerLimits::default()
    })
    .await;
    fill(&server, "acme").await;
    let (archive, _, _) = export(&server, "acme").await;
    let before = tenants(&server);

    let cut = import(&server, archive[..archive.len() / 2].to_vec(), "cut", "").await.expect_err("cut");
    assert_eq!(cut.code(), Code::InvalidArgument, "{cut:?}");
    assert!(cut.message().contains("cut short"), "{cut:?}");
    let garbage: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let refused = import(&server, garbage, "garbage", "").await.expect_err("garbage");
    assert!(refused.message().contains("not a Bulkhead tenant archive"), "{refused:?}");
    let empty = import(&server, Vec::new(), "empty", "").await.expect_err("empty");
    assert!(empty.message().contains("empty"), "{empty:?}");

    // A chunk over MAX_ARCHIVE_CHUNK_BYTES: refused by the handler within the message limit, and
    // by the message limit beyond it.
    let over = vec![0u8; MAX_ARCHIVE_CHUNK_BYTES + 1];
    let refused = import_raw(&server, vec![start("big", ""), chunk(&archive[..60]), chunk(&over)]).await;
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("MAX_ARCHIVE_CHUNK_BYTES"), "{refused:?}");
    let far_over = vec![0u8; MAX_ARCHIVE_CHUNK_BYTES + 64];
    let refused = import_raw(&server, vec![start("big", ""), chunk(&far_over)]).await;
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("MAX_IMPORT_MESSAGE_BYTES"), "{refused:?}");
    const { assert!(limits::MAX_IMPORT_MESSAGE_BYTES < MAX_ARCHIVE_CHUNK_BYTES + 64) };

    // The stream's shape: `start` first, once; a known tier; a valid name.
    let refused = import_raw(&server, vec![chunk(&archive[..100])]).await;
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("must be `start`"), "{refused:?}");
    let refused = import_raw(&server, vec![]).await;
    assert!(refused.message().contains("must be `start`"), "{refused:?}");
    let refused = import_raw(&server, vec![start("twice", ""), chunk(&archive[..60]), start("x", "")]).await;
    assert!(refused.message().contains("after the first is a chunk"), "{refused:?}");
    let refused = import_raw(&server, vec![start("tiered", "isolated"), chunk(&archive[..60])]).await;
    assert!(refused.message().contains("must be `partitioned`, `shared` or `dedicated`"), "{refused:?}");
    let refused = import_raw(&server, vec![start("not a name!", ""), chunk(&archive[..60])]).await;
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");

    assert_eq!(tenants(&server), before, "no refused import created a tenant");
    budget_is_whole(&server).await;
    // And the whole archive still imports.
    import(&server, archive, "whole", "partitioned").await.expect("import");
    server.stop().await;
}
