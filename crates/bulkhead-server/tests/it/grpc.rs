//! The gRPC walkthrough on a real server: an operator creates a tenant and keys, a writer fills a
//! collection, a reader searches (with and without a principal), roles and revocation hold, and one
//! tenant's key cannot see another tenant's collection; the index status a client polls after a bulk
//! load. Plus reflection and the admin plane's unimplemented delete.

use crate::harness::{TestServer, point, req, search};
use bulkhead_server::client::{self, DataPlane};
use bulkhead_server::proto as pb;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walkthrough_over_grpc() {
    let server = TestServer::start().await;
    let mut admin = server.admin().await;
    let mut data = server.data().await;
    server.tenant("acme").await;
    let tenants =
        admin.list_tenants(req(pb::ListTenantsRequest {}, &server.admin_token)).await.expect("list");
    assert_eq!(tenants.into_inner().tenants.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["acme"]);

    let (tenant_admin, _) = server.key("acme", pb::Role::TenantAdmin).await;
    let (writer, _) = server.key("acme", pb::Role::Writer).await;
    let (reader, reader_id) = server.key("acme", pb::Role::Reader).await;
    assert!(writer.starts_with("bk_") && reader.starts_with("bk_"));

    // Writers may not create collections; tenant admins may.
    let create =
        pb::CreateCollectionRequest { name: "docs".into(), dimension: 3, metric: pb::Metric::Cosine as i32 };
    let denied =
        data.create_collection(req(create.clone(), &writer)).await.expect_err("writer cannot create");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let created = data.create_collection(req(create, &tenant_admin)).await.expect("create").into_inner();
    assert_eq!(
        (created.name.as_str(), created.dimension, created.metric),
        ("docs", 3, pb::Metric::Cosine as i32)
    );

    let mut restricted = point("secret-plan", [0.9, 0.1, 0.0], "only alice reads this");
    restricted.acl = Some(pb::Acl { users: vec!["alice".into()], groups: vec![] });
    restricted.source_uri = Some("s3://bucket/plan.pdf".into());
    let mut public = point("handbook", [1.0, 0.0, 0.0], "everyone reads this");
    public
        .metadata
        .insert("lang".into(), pb::MetaValue { kind: Some(pb::meta_value::Kind::Keyword("en".into())) });
    let other = point("other", [0.0, 0.0, 1.0], "far away");
    let upserted = data
        .upsert(req(
            pb::UpsertRequest { collection: "docs".into(), points: vec![restricted, public, other] },
            &writer,
        ))
        .await
        .expect("upsert")
        .into_inner();
    assert_eq!(upserted.versions.len(), 3);

    searches_see_what_the_principal_may_read(&mut data, &reader).await;
    get_honours_the_principal(&server, &mut data, &reader).await;

    // The reader cannot write; nothing changed.
    let write =
        pb::UpsertRequest { collection: "docs".into(), points: vec![point("x", [1.0, 1.0, 0.0], "x")] };
    let denied = data.upsert(req(write, &reader)).await.expect_err("reader cannot write");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let delete = pb::DeleteRequest { collection: "docs".into(), ids: vec!["other".into()] };
    assert_eq!(
        data.delete(req(delete.clone(), &reader)).await.expect_err("reader cannot delete").code(),
        Code::PermissionDenied
    );
    let count =
        data.count(req(pb::CountRequest { collection: "docs".into() }, &reader)).await.expect("count");
    assert_eq!(count.into_inner().count, 3);

    // The writer deletes; the count follows.
    let deleted = data.delete(req(delete, &writer)).await.expect("delete").into_inner();
    assert_eq!(deleted.deleted, 1);
    assert_eq!(
        data.count(req(pb::CountRequest { collection: "docs".into() }, &reader))
            .await
            .expect("count")
            .into_inner()
            .count,
        2
    );

    // Revocation takes effect at once.
    admin
        .revoke_api_key(req(
            pb::RevokeApiKeyRequest { tenant: "acme".into(), key_id: reader_id.clone() },
            &server.admin_token,
        ))
        .await
        .expect("revoke");
    let refused = data.search(req(search("docs", [1.0, 0.0, 0.0], 1), &reader)).await.expect_err("revoked");
    assert_eq!(refused.code(), Code::Unauthenticated);
    let keys = admin
        .list_api_keys(req(pb::ListApiKeysRequest { tenant: "acme".into() }, &server.admin_token))
        .await
        .expect("keys");
    let keys = keys.into_inner().keys;
    // The three of the walkthrough, and the reader without the on-behalf-of right.
    assert_eq!(keys.len(), 4);
    assert!(keys.iter().any(|k| k.key_id == reader_id && k.revoked && k.role == pb::Role::Reader as i32));

    // Describe and drop.
    let described =
        data.describe_collection(req(pb::DescribeCollectionRequest { name: "docs".into() }, &reader));
    assert!(matches!(described.await, Err(s) if s.code() == Code::Unauthenticated));
    data.drop_collection(req(pb::DropCollectionRequest { name: "docs".into() }, &tenant_admin))
        .await
        .expect("drop");
    let list = data.list_collections(req(pb::ListCollectionsRequest {}, &writer)).await.expect("list");
    assert!(list.into_inner().collections.is_empty());
    server.stop().await;
}

/// The walkthrough's searches: on behalf of bob, alice's document is filtered out before ranking; on
/// behalf of alice it comes first, with its provenance; a metadata filter in a batch.
async fn searches_see_what_the_principal_may_read(data: &mut DataPlane, reader: &str) {
    // The reader searches on behalf of bob: alice's document is filtered out before ranking.
    let mut as_bob = search("docs", [1.0, 0.0, 0.0], 2);
    as_bob.principal = Some(pb::Principal { user: "bob".into(), groups: vec![] });
    let hits = data.search(req(as_bob, reader)).await.expect("search").into_inner().hits;
    assert_eq!(hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["handbook", "other"]);
    let top = &hits[0];
    assert_eq!(top.text, "everyone reads this");
    assert_eq!(top.matched_by, pb::MatchReason::TenantWide as i32);
    assert_eq!(top.acl_fingerprint.len(), 16);
    assert!(top.version > 0 && matches!(top.index, Some(pb::hit::Index::Delta(true))));
    assert!(matches!(
        top.metadata.get("lang").and_then(|v| v.kind.clone()),
        Some(pb::meta_value::Kind::Keyword(ref v)) if v == "en"
    ));

    // On behalf of alice, her document comes first, with its provenance.
    let mut as_alice = search("docs", [0.9, 0.1, 0.0], 1);
    as_alice.principal = Some(pb::Principal { user: "alice".into(), groups: vec![] });
    let hits = data.search(req(as_alice, reader)).await.expect("search").into_inner().hits;
    assert_eq!(hits[0].id, "secret-plan");
    assert_eq!(hits[0].matched_by, pb::MatchReason::User as i32);
    assert_eq!(hits[0].source_uri.as_deref(), Some("s3://bucket/plan.pdf"));

    // A metadata filter, in a batch with a second query.
    let lang_en = pb::Filter {
        kind: Some(pb::filter::Kind::Eq(pb::Equals {
            field: "lang".into(),
            value: Some(pb::equals::Value::Keyword("en".into())),
        })),
    };
    let batch = pb::SearchBatchRequest {
        collection: "docs".into(),
        queries: vec![
            pb::BatchQuery { vector: vec![0.0, 0.0, 1.0], k: 3, filter: Some(lang_en), ..Default::default() },
            pb::BatchQuery { vector: vec![0.0, 0.0, 1.0], k: 1, ..Default::default() },
        ],
    };
    let results = data.search_batch(req(batch, reader)).await.expect("batch").into_inner().results;
    assert_eq!(results[0].hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["handbook"]);
    assert_eq!(results[1].hits[0].id, "other");
}

/// The walkthrough's gets: bob's view of alice's document is "not found"; a service key without the
/// on-behalf-of right may not name a principal, and its refusal is audited with the principal's
/// keyed hash.
async fn get_honours_the_principal(server: &TestServer, data: &mut DataPlane, reader: &str) {
    // Get honours the principal: bob's view of alice's document is "not found".
    let get = |principal: &str| pb::GetRequest {
        collection: "docs".into(),
        id: "secret-plan".into(),
        principal: Some(pb::Principal { user: principal.into(), groups: vec![] }),
        with_vector: true,
    };
    let got = data.get(req(get("alice"), reader)).await.expect("get").into_inner().point.expect("point");
    assert_eq!((got.text.as_str(), got.vector.len()), ("only alice reads this", 3));
    let hidden = data.get(req(get("bob"), reader)).await.expect_err("hidden");
    assert_eq!(hidden.code(), Code::NotFound);
    // A service key without the on-behalf-of right may not name a principal on Get, as on Search,
    // and the refusal is audited with the named principal's keyed hash.
    let (plain, plain_id) = server
        .own_key(
            "acme",
            pb::IssueOwnApiKeyRequest {
                role: pb::Role::Reader as i32,
                label: String::new(),
                expires_ms: None,
                binding: None,
            },
        )
        .await;
    for request in [get("alice"), get("bob")] {
        let refused = data.get(req(request, &plain)).await.expect_err("no on-behalf-of right");
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    }
    let uid = server
        .db
        .operator()
        .tenant_info(&bulkhead_query::TenantName::new("acme").expect("name"))
        .expect("tenant")
        .uid;
    let alice_hash =
        server.db.operator().audit_subject_hash(uid, bulkhead_query::Subject::Principal, b"alice");
    let events = server.db.operator().audit_events(uid).expect("events");
    assert!(
        events.iter().any(|e| e.operation == "get"
            && e.outcome == "permission-denied"
            && e.key_id.as_deref() == Some(plain_id.as_str())
            && e.principal == Some(alice_hash)),
        "the refused get is in the trail with its principal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_collection_looks_missing() {
    let server = TestServer::start().await;
    crate::harness::seed(&server, "acme").await;
    server.tenant("globex").await;
    let (globex, _) = server.key("globex", pb::Role::TenantAdmin).await;
    let (acme_reader, _) = server.key("acme", pb::Role::Reader).await;
    let mut data = server.data().await;

    let theirs =
        data.search(req(search("docs", [1.0, 0.0, 0.0], 1), &globex)).await.expect_err("not visible");
    let missing =
        data.search(req(search("nothing", [1.0, 0.0, 0.0], 1), &globex)).await.expect_err("missing");
    assert_eq!(theirs.code(), Code::NotFound);
    assert_eq!((theirs.code(), theirs.message()), (missing.code(), missing.message()));
    for status in [
        data.describe_collection(req(pb::DescribeCollectionRequest { name: "docs".into() }, &globex))
            .await
            .expect_err("describe"),
        data.count(req(pb::CountRequest { collection: "docs".into() }, &globex)).await.expect_err("count"),
        data.drop_collection(req(pb::DropCollectionRequest { name: "docs".into() }, &globex))
            .await
            .expect_err("drop"),
    ] {
        assert_eq!((status.code(), status.message()), (Code::NotFound, "collection not found"));
    }
    let listed =
        data.list_collections(req(pb::ListCollectionsRequest {}, &globex)).await.expect("list").into_inner();
    assert!(listed.collections.is_empty());
    // Globex may make its own "docs"; acme's is untouched.
    let create =
        pb::CreateCollectionRequest { name: "docs".into(), dimension: 3, metric: pb::Metric::L2 as i32 };
    data.create_collection(req(create, &globex)).await.expect("globex creates its own");
    let theirs =
        data.search(req(search("docs", [1.0, 0.0, 0.0], 5), &globex)).await.expect("own").into_inner();
    assert!(theirs.hits.is_empty());
    let ours =
        data.search(req(search("docs", [1.0, 0.0, 0.0], 5), &acme_reader)).await.expect("acme").into_inner();
    assert_eq!(ours.hits.len(), 2);
    server.stop().await;
}

/// What a client polls to know when a bulk load is indexed: `DescribeCollection`'s index status,
/// from the first writes (which load the collection) through the background build that the writes
/// start to "every point in the segment". A user-bound key
/// gets no index status (its sizes would count documents its user may not read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_reports_the_index_state() {
    let server = TestServer::start().await;
    server.db.set_graph_threshold(64);
    let writer = crate::harness::seed(&server, "acme").await;
    let mut data = server.data().await;
    let describe = || req(pb::DescribeCollectionRequest { name: "docs".into() }, &writer);
    let index = data.describe_collection(describe()).await.expect("describe").into_inner().index;
    assert_eq!(
        index,
        Some(pb::IndexStatus {
            loaded: true,
            graph_points: 0,
            delta_points: 2,
            building: false,
            segments: 0
        })
    );

    let points = (0..200)
        .map(|i| {
            let angle = i as f32 / 200.0 * std::f32::consts::FRAC_PI_2;
            point(&format!("p{i}"), [angle.cos(), angle.sin(), 0.5], "")
        })
        .collect();
    // The write passes the graph threshold, which starts the build: no search is needed.
    data.upsert(req(pb::UpsertRequest { collection: "docs".into(), points }, &writer)).await.expect("upsert");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let index = loop {
        let index = data.describe_collection(describe()).await.expect("describe").into_inner().index;
        let index = index.expect("a service key sees the index status");
        assert!(index.loaded);
        assert_eq!(index.graph_points + index.delta_points, 202);
        if index.delta_points == 0 && !index.building {
            break index;
        }
        assert!(std::time::Instant::now() < deadline, "the segment never covered the collection: {index:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!((index.graph_points, index.segments), (202, 1));
    let hits = data.search(req(search("docs", [1.0, 0.0, 0.5], 1), &writer)).await.expect("search");
    assert!(matches!(hits.into_inner().hits[0].index, Some(pb::hit::Index::SegmentGeneration(_))));

    let bound = pb::IssueOwnApiKeyRequest {
        role: pb::Role::Reader as i32,
        label: String::new(),
        expires_ms: None,
        binding: Some(pb::issue_own_api_key_request::Binding::User(pb::UserBinding {
            user: "alice".into(),
            groups: vec![],
        })),
    };
    let (alice, _) = server.own_key("acme", bound).await;
    let seen = data
        .describe_collection(req(pb::DescribeCollectionRequest { name: "docs".into() }, &alice))
        .await
        .expect("describe")
        .into_inner();
    assert_eq!((seen.name.as_str(), seen.index), ("docs", None));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_and_deletion_over_grpc() {
    let server = TestServer::start().await;
    let writer = crate::harness::seed(&server, "acme").await;
    let (reader, _) = server.key("acme", pb::Role::Reader).await;
    let mut admin = server.admin().await;
    let mut data = server.data().await;
    let tenant = || pb::GetRotationStatusRequest { tenant: "acme".into() };

    // A rotation: new writes use generation 2 at once; the server's task re-seals the rest.
    let started = admin
        .rotate_tenant_key(req(pb::RotateTenantKeyRequest { tenant: "acme".into() }, &server.admin_token))
        .await
        .expect("rotate")
        .into_inner();
    assert_eq!(started.key_generation, 2);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status =
            admin.get_rotation_status(req(tenant(), &server.admin_token)).await.expect("status").into_inner();
        if !status.running {
            assert_eq!(status.key_generation, 2);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the rotation never finished: {status:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let hits = data
        .search(req(search("docs", [1.0, 0.0, 0.0], 5), &reader))
        .await
        .expect("search")
        .into_inner()
        .hits;
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| h.key_generation == 2), "every record re-sealed under the new key");

    // The master key, re-wrapped online from a private file on the server's host.
    let rotated = admin
        .rotate_master_key(req(
            pb::RotateMasterKeyRequest { new_key_file: server.key_file().display().to_string() },
            &server.admin_token,
        ))
        .await
        .expect("rotate master")
        .into_inner();
    assert_eq!(rotated.master_version, 2);
    let missing = admin
        .rotate_master_key(req(
            pb::RotateMasterKeyRequest { new_key_file: "/nonexistent/key".into() },
            &server.admin_token,
        ))
        .await
        .expect_err("no such file");
    assert_eq!(missing.code(), Code::InvalidArgument);
    // The answer is the same for every kind of unusable path (missing, a directory, a device, a
    // file of the wrong mode): the admin plane does not tell the host's files apart.
    let world_readable = tempfile::NamedTempFile::new().expect("file");
    std::fs::write(world_readable.path(), "0".repeat(64)).expect("write");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(world_readable.path(), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
    }
    for path in ["/nonexistent/key", "/etc", "/dev/zero", world_readable.path().to_str().expect("path")] {
        let refused = admin
            .rotate_master_key(req(
                pb::RotateMasterKeyRequest { new_key_file: path.into() },
                &server.admin_token,
            ))
            .await
            .expect_err("unusable");
        assert_eq!(refused.code(), Code::InvalidArgument, "{path}");
        assert_eq!(refused.message(), missing.message(), "{path} is told apart");
    }

    // Deletion: the tenant's keys stop working at once and the name is free again.
    let deleted = admin
        .delete_tenant(req(pb::DeleteTenantRequest { name: "acme".into() }, &server.admin_token))
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(deleted.revoked_keys, 2);
    let refused = data.search(req(search("docs", [1.0, 0.0, 0.0], 5), &writer)).await.expect_err("gone");
    assert_eq!(refused.code(), Code::Unauthenticated);
    let gone = admin
        .describe_tenant(req(pb::DescribeTenantRequest { name: "acme".into() }, &server.admin_token))
        .await
        .expect_err("gone");
    assert_eq!(gone.code(), Code::NotFound);
    server.tenant("acme").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_both_services() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = TestServer::start().await;
    let mut client = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses =
        client.server_reflection_info(tokio_stream::iter([request])).await.expect("reflection").into_inner();
    let response = responses.message().await.expect("message").expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"bulkhead.v1.DataPlane") && names.contains(&"bulkhead.v1.Admin"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    server.stop().await;
}

/// The standard health service answers SERVING for the server and both services, without a
/// credential, and NOT_FOUND for a service it does not know; reflection lists it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_health_service_reports_serving() {
    let server = TestServer::start().await;
    for service in ["", "bulkhead.v1.DataPlane", "bulkhead.v1.Admin"] {
        let status = client::health(server.channel().await, service).await.expect("health");
        assert_eq!(status, "SERVING", "{service:?}");
    }
    let unknown = client::health(server.channel().await, "other.Service").await.expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_is_created_in_the_tier_asked_for_and_serves_from_it() {
    let server = TestServer::start().await;
    let mut admin = server.admin().await;
    let create = |name: &str, tier: &str| pb::CreateTenantRequest { name: name.into(), tier: tier.into() };
    let token = &server.admin_token;
    let shared =
        admin.create_tenant(req(create("small", "shared"), token)).await.expect("create").into_inner();
    assert_eq!(shared.placement, "shared");
    let default = admin.create_tenant(req(create("big", ""), token)).await.expect("create").into_inner();
    assert_eq!(default.placement, "partitioned", "the server's default tier");
    let refused = admin.create_tenant(req(create("odd", "isolated"), token)).await.expect_err("no such tier");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("partitioned"), "{}", refused.message());
    let listed = admin.list_tenants(req(pb::ListTenantsRequest {}, token)).await.expect("list").into_inner();
    assert!(listed.tenants.iter().all(|t| t.name != "odd"), "a refused creation leaves nothing");
    // The shared tenant serves like any other.
    let (writer, _) = server.key("small", pb::Role::TenantAdmin).await;
    let mut data = server.data().await;
    let collection =
        pb::CreateCollectionRequest { name: "docs".into(), dimension: 3, metric: pb::Metric::Cosine as i32 };
    data.create_collection(req(collection, &writer)).await.expect("collection");
    let upsert =
        pb::UpsertRequest { collection: "docs".into(), points: vec![point("a", [1.0, 0.0, 0.0], "hi")] };
    data.upsert(req(upsert, &writer)).await.expect("upsert");
    let hits =
        data.search(req(search("docs", [1.0, 0.0, 0.0], 1), &writer)).await.expect("search").into_inner();
    assert_eq!(hits.hits.len(), 1);

    // It moves to its own column family online, and answers the same from there.
    let moving =
        |tenant: &str, tier: &str| pb::MoveTenantRequest { tenant: tenant.into(), tier: tier.into() };
    let moved =
        admin.move_tenant(req(moving("small", "partitioned"), token)).await.expect("move").into_inner();
    assert!(moved.moved && moved.tier == "partitioned" && moved.copied > 0, "{moved:?}");
    let described = admin
        .describe_tenant(req(pb::DescribeTenantRequest { name: "small".into() }, token))
        .await
        .expect("describe")
        .into_inner();
    assert_eq!(described.placement, "partitioned");
    let again =
        data.search(req(search("docs", [1.0, 0.0, 0.0], 1), &writer)).await.expect("search").into_inner();
    assert_eq!(again.hits, hits.hits, "the same answer from the new tier");
    let stay =
        admin.move_tenant(req(moving("small", "partitioned"), token)).await.expect("no-op").into_inner();
    assert!(!stay.moved, "already there: nothing copied");
    // And to a RocksDB instance of its own.
    let moved = admin.move_tenant(req(moving("small", "dedicated"), token)).await.expect("move").into_inner();
    assert!(moved.moved && moved.tier == "dedicated" && moved.copied > 0, "{moved:?}");
    let describe = pb::DescribeTenantRequest { name: "small".into() };
    let described = admin.describe_tenant(req(describe, token)).await.expect("describe").into_inner();
    assert_eq!(described.placement, "dedicated");
    let again =
        data.search(req(search("docs", [1.0, 0.0, 0.0], 1), &writer)).await.expect("search").into_inner();
    assert_eq!(again.hits, hits.hits, "the same answer from the dedicated tier");
    let odd = admin.move_tenant(req(moving("small", "isolated"), token)).await.expect_err("no such tier");
    assert_eq!(odd.code(), Code::InvalidArgument);
    let ghost = admin.move_tenant(req(moving("ghost", "shared"), token)).await.expect_err("no such tenant");
    assert_eq!(ghost.code(), Code::NotFound);
    let refused = admin.move_tenant(req(moving("small", "shared"), &writer)).await.expect_err("a tenant key");
    assert_eq!(refused.code(), Code::PermissionDenied);
}

/// An upsert encoded once lands like any upsert (and again when sent again), is refused like any
/// call with a wrong key, and shows no point in its `Debug`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upsert_encoded_once_is_sent_as_it_is() {
    let server = TestServer::start().await;
    let writer = crate::harness::seed(&server, "acme").await;
    let points = vec![point("c", [0.0, 0.0, 1.0], "gamma"), point("d", [0.5, 0.5, 0.0], "delta")];
    let upsert = client::EncodedUpsert::new(&pb::UpsertRequest { collection: "docs".into(), points });
    let timeout = std::time::Duration::from_secs(10);
    upsert.send(server.channel().await, &writer, timeout).await.expect("sent");
    upsert.send(server.channel().await, &writer, timeout).await.expect("sent again");
    assert_eq!(crate::harness::count(&server, "acme", "docs"), 4);
    let mut data = server.data().await;
    let hit = data.search(req(search("docs", [0.0, 0.0, 1.0], 1), &writer)).await.expect("search");
    assert_eq!(hit.into_inner().hits[0].text, "gamma");
    let refused = upsert.send(server.channel().await, "bk_not_a_key", timeout).await.expect_err("refused");
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(!format!("{upsert:?}").contains("gamma"), "Debug shows the size, not the points");
    server.stop().await;
}
