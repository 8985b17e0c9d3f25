//! A tenant's storage quotas over gRPC: a write past one is RESOURCE_EXHAUSTED with the quota and its
//! limit in the message, and changes nothing; another tenant is not affected. (The quotas' rules
//! are tested in the storage crate, `src/quota/tests.rs`, and end to end in the workspace's
//! `tests/it/quotas.rs`.)

use crate::harness::{TestServer, collections, count, point, req, seed};
use bulkhead_server::proto as pb;
use tonic::Code;

fn usage(server: &TestServer, tenant: &str) -> bulkhead_query::TenantUsage {
    let name = bulkhead_query::TenantName::new(tenant).expect("name");
    let scope = server.db.operator().trusted_host_scope(&name, "test inspection").expect("scope");
    server.db.tenant(&scope).expect("tenant").usage().expect("usage")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_over_a_storage_quota_is_resource_exhausted_and_changes_nothing() {
    let server = TestServer::start().await;
    // acme: a collection `docs` of dimension 3 holding two points.
    let token = seed(&server, "acme").await;
    let quotas = pb::TenantQuotas { max_vectors: Some(3), max_collections: Some(1), ..Default::default() };
    let policy = pb::TenantPolicy { quotas: Some(quotas), ..Default::default() };
    let request = pb::SetPolicyRequest {
        tenant: "acme".into(),
        policy: Some(policy),
        expected_version: 0,
        note: "storage quota test".into(),
    };
    server.admin().await.set_policy(req(request, &server.admin_token)).await.expect("set policy");
    let mut data = server.data().await;
    let upsert =
        |points: Vec<pb::Point>| req(pb::UpsertRequest { collection: "docs".into(), points }, &token);
    data.upsert(upsert(vec![point("c", [0.0, 0.0, 1.0], "gamma")])).await.expect("exactly at the quota");

    let before = usage(&server, "acme");
    let status = data
        .upsert(upsert(vec![point("a", [1.0, 1.0, 0.0], "replaced"), point("d", [1.0, 0.0, 1.0], "delta")]))
        .await
        .expect_err("one point over the quota");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("max_vectors of 3"), "{}", status.message());
    assert_eq!(count(&server, "acme", "docs"), 3);
    assert_eq!(usage(&server, "acme"), before, "the refused batch changed nothing");
    let get = pb::GetRequest { collection: "docs".into(), id: "a".into(), ..Default::default() };
    let got = data.get(req(get, &token)).await.expect("get").into_inner();
    assert_eq!(got.point.expect("a is there").text, "alpha", "its replacement was refused with the batch");

    let create =
        pb::CreateCollectionRequest { name: "more".into(), dimension: 3, metric: pb::Metric::Cosine as i32 };
    let status = data.create_collection(req(create, &token)).await.expect_err("over max_collections");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("max_collections of 1"), "{}", status.message());
    assert_eq!(collections(&server, "acme"), ["docs"]);

    // bravo has the server's defaults: acme's quota is not its own.
    let bravo = seed(&server, "bravo").await;
    let more = vec![point("c", [0.0, 0.0, 1.0], "gamma"), point("d", [1.0, 0.0, 1.0], "delta")];
    let request = req(pb::UpsertRequest { collection: "docs".into(), points: more }, &bravo);
    data.upsert(request).await.expect("bravo writes on");
    assert_eq!(count(&server, "bravo", "docs"), 4);
    server.stop().await;
}
