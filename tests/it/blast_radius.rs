//! Blast radius (issue 10): a tenant whose stored keys do not open is marked unavailable, with a
//! clear error and one audit event, while the node starts and every other tenant, in either tier,
//! keeps serving over gRPC.

use crate::util::{TestDir, raw_db, vector};
use bulkhead_query::{Database, DocId, Metric, NewPoint, Placement, StorageError, TenantName, TenantUid};
use bulkhead_server::client;
use bulkhead_server::proto as pb;
use bulkhead_server::{AdminToken, Server, ServerLimits};
use std::sync::Arc;

fn seed(db: &Database, name: &str, tier: Placement) -> TenantUid {
    db.operator().create_tenant_in(&TenantName::new(name).expect("name"), tier).expect("create");
    let scope =
        db.operator().trusted_host_scope(&TenantName::new(name).expect("name"), "test").expect("scope");
    let t = db.tenant(&scope).expect("tenant");
    t.create_collection("docs", 8, Metric::Cosine).expect("create");
    let points: Vec<NewPoint> = (0..50)
        .map(|i| NewPoint::new(DocId::new(format!("d{i}")).expect("id"), vector(i, 8), format!("{name} {i}")))
        .collect();
    t.upsert("docs", &points).expect("upsert");
    scope.tenant_uid()
}

fn with_key<T>(message: T, token: &str) -> client::Request<T> {
    client::authorized(message, token).expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_whose_keys_do_not_open_is_unavailable_and_the_others_serve() {
    let dir = TestDir::new();
    let (broken, tokens, archive) = {
        let db = dir.open();
        let broken = seed(&db, "broken", Placement::Shared);
        // Its backup, taken while it was whole.
        let mut archive = Vec::new();
        db.operator()
            .export_tenant(&TenantName::new("broken").expect("name"), &mut archive, &mut |_| {})
            .expect("export");
        seed(&db, "shared-ok", Placement::Shared);
        seed(&db, "own-ok", Placement::OwnColumnFamily);
        let mut tokens = Vec::new();
        for name in ["broken", "shared-ok", "own-ok"] {
            let key = db
                .operator()
                .issue_api_key(&TenantName::new(name).expect("name"), bulkhead_query::Role::Reader, "k", None)
                .expect("key");
            tokens.push(key.token);
        }
        (broken, tokens, archive)
    };
    {
        // The broken tenant's data key (generation 1) no longer opens.
        let raw = raw_db(&dir.data());
        let sys = raw.cf_handle("sys").expect("sys");
        let key = [b"keyring/".as_slice(), broken.as_bytes(), b"/", &1u32.to_be_bytes()].concat();
        let mut wrapped = raw.get_cf(&sys, &key).expect("get").expect("wrapped key");
        wrapped[20] ^= 0x40;
        raw.put_cf(&sys, &key, wrapped).expect("put");
        raw.flush_wal(true).expect("flush");
    }

    // The node starts.
    let db = Arc::new(dir.open());
    let server = Server::new(Arc::clone(&db), AdminToken::generate(), ServerLimits::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));
    let channel = client::connect(&address).await.expect("connect");
    let mut data = client::data_plane(channel);
    let search =
        || pb::SearchRequest { collection: "docs".into(), vector: vector(3, 8), k: 3, ..Default::default() };

    for _ in 0..3 {
        let refused = data.search(with_key(search(), &tokens[0])).await.expect_err("unavailable");
        assert_eq!(refused.code(), client::Code::Unavailable, "{refused:?}");
        assert!(refused.message().contains("this tenant is unavailable"), "{}", refused.message());
        assert!(refused.message().contains("other tenants are unaffected"), "{}", refused.message());
        for (token, name) in [(&tokens[1], "shared-ok"), (&tokens[2], "own-ok")] {
            let hits = data.search(with_key(search(), token)).await.expect("served").into_inner().hits;
            assert_eq!(hits.len(), 3, "{name}");
            assert!(hits.iter().all(|h| h.text.starts_with(name)), "{name} sees only its own points");
        }
    }
    // The operator's view: the cause, in the tenant's own trail, once for the three refusals.
    let op = db.operator();
    let status = op.rotation_status(broken);
    assert!(
        matches!(status, Err(StorageError::TenantUnavailable { cause: "keyring-corrupt" })),
        "{status:?}"
    );
    let marked: Vec<_> = op
        .audit_events(broken)
        .expect("events")
        .into_iter()
        .filter(|e| e.operation == "tenant-unavailable")
        .map(|e| e.outcome)
        .collect();
    assert_eq!(marked, ["keyring-corrupt"]);
    // It can still be deleted (crypto-shredded), which needs none of its keys, and restored from
    // its backup under its own uid, which is served again (with a new key: keys are not archived).
    let name = TenantName::new("broken").expect("name");
    db.delete_tenant(&name).expect("a broken tenant is deleted");
    let hits = data.search(with_key(search(), &tokens[1])).await.expect("served").into_inner().hits;
    assert_eq!(hits.len(), 3);
    db.operator().import_tenant(&mut &archive[..], None, None, &mut |_| {}).expect("restore");
    let key = db.operator().issue_api_key(&name, bulkhead_query::Role::Reader, "k", None).expect("key");
    let hits = data.search(with_key(search(), &key.token)).await.expect("restored").into_inner().hits;
    assert!(hits.len() == 3 && hits.iter().all(|h| h.text.starts_with("broken")), "{hits:?}");

    stop.send(()).expect("stop");
    serving.await.expect("task").expect("served");
}
