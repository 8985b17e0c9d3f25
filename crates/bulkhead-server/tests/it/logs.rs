//! The server's logs, captured at every level (trace included, for every crate: the server, the
//! library, tonic, hyper and h2) during a scenario that plants markers in everything a tenant or an
//! operator sends (tenant name, ids, texts, metadata, ACLs, principals, filter values, API keys, the
//! admin token), including requests that fail: no marker may appear in the logs or in any error
//! message sent back.

use crate::harness::{TestServer, point, req, search};
use bulkhead_server::client::{Admin, DataPlane};
use bulkhead_server::proto as pb;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Everything logged by this test binary, from every thread.
fn captured() -> Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER
        .get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let sink = Arc::clone(&buffer);
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(move || Sink(Arc::clone(&sink)))
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
            buffer
        })
        .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Failures that must echo nothing either: an id over its limit, a missing collection and point, a
/// wrong key, a wrong admin token, a tenant that exists; their statuses.
async fn failures(
    server: &TestServer,
    data: &mut DataPlane,
    admin: &mut Admin,
    p: &pb::Point,
    token: &str,
    tenant: &str,
) -> Vec<tonic::Status> {
    let mut statuses = Vec::new();
    let mut long = p.clone();
    long.id = format!("IDMARKER-8c1{}", "x".repeat(300));
    statuses.push(
        data.upsert(req(pb::UpsertRequest { collection: "COLLMARKER-9".into(), points: vec![long] }, token))
            .await
            .expect_err("long id"),
    );
    statuses.push(
        data.count(req(pb::CountRequest { collection: "COLLMARKER-9x".into() }, token))
            .await
            .expect_err("missing"),
    );
    let get = pb::GetRequest {
        collection: "COLLMARKER-9".into(),
        id: "IDMARKER-8c1-missing".into(),
        ..Default::default()
    };
    statuses.push(data.get(req(get, token)).await.expect_err("missing point"));
    // The last character changed (to one it is not: a token ending in 0 stays valid as "...0").
    let last = if token.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &token[..token.len() - 1]);
    statuses.push(
        data.count(req(pb::CountRequest { collection: "COLLMARKER-9".into() }, &forged))
            .await
            .expect_err("forged"),
    );
    statuses.push(
        admin
            .list_tenants(req(pb::ListTenantsRequest {}, &format!("{}x", server.admin_token)))
            .await
            .expect_err("admin"),
    );
    statuses.push(
        admin
            .create_tenant(req(
                pb::CreateTenantRequest { name: tenant.into(), ..Default::default() },
                &server.admin_token,
            ))
            .await
            .expect_err("exists"),
    );
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_tenant_data_in_logs_or_errors() {
    let logs = captured();
    let server = TestServer::start().await;
    let tenant = "tenantmarker-q7";
    let markers = [
        tenant,
        "IDMARKER-8c1",
        "TEXTMARKER-5e2",
        "METAMARKER-0a9",
        "ACLUSERMARKER-77",
        "PRINCIPALMARKER-31",
        "FILTERMARKER-4d",
        "COLLMARKER-9",
        "LABELMARKER-6f",
    ];
    let mut admin = server.admin().await;
    admin
        .create_tenant(req(
            pb::CreateTenantRequest { name: tenant.into(), ..Default::default() },
            &server.admin_token,
        ))
        .await
        .expect("tenant");
    let issue = pb::IssueApiKeyRequest {
        tenant: tenant.into(),
        role: pb::Role::TenantAdmin as i32,
        label: "LABELMARKER-6f".into(),
        expires_ms: None,
        binding: Some(pb::issue_api_key_request::Binding::OnBehalfOf(true)),
    };
    let token = admin.issue_api_key(req(issue, &server.admin_token)).await.expect("issue").into_inner().token;
    let mut data = server.data().await;
    let create = pb::CreateCollectionRequest {
        name: "COLLMARKER-9".into(),
        dimension: 3,
        metric: pb::Metric::Cosine as i32,
    };
    data.create_collection(req(create, &token)).await.expect("collection");
    let mut p = point("IDMARKER-8c1", [0.5, 0.25, 0.125], "TEXTMARKER-5e2");
    p.metadata.insert(
        "kind".into(),
        pb::MetaValue { kind: Some(pb::meta_value::Kind::Keyword("METAMARKER-0a9".into())) },
    );
    p.acl = Some(pb::Acl { users: vec!["ACLUSERMARKER-77".into()], groups: vec![] });
    data.upsert(req(
        pb::UpsertRequest { collection: "COLLMARKER-9".into(), points: vec![p.clone()] },
        &token,
    ))
    .await
    .expect("upsert");
    let mut q = search("COLLMARKER-9", [0.5, 0.25, 0.125], 3);
    q.principal = Some(pb::Principal { user: "PRINCIPALMARKER-31".into(), groups: vec![] });
    q.filter = Some(pb::Filter {
        kind: Some(pb::filter::Kind::Eq(pb::Equals {
            field: "kind".into(),
            value: Some(pb::equals::Value::Keyword("FILTERMARKER-4d".into())),
        })),
    });
    data.search(req(q, &token)).await.expect("search");

    let statuses = failures(&server, &mut data, &mut admin, &p, &token, tenant).await;
    let admin_token = server.admin_token.clone();
    server.stop().await;

    let text = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
    assert!(text.contains("api key issued"), "the capture works (the library logs key issuance): {text}");
    let secret = &token[token.rfind('_').expect("token shape") + 1..];
    for needle in markers.iter().copied().chain([secret, token.as_str(), admin_token.as_str()]) {
        assert!(!text.contains(needle), "the logs contain {needle:?}");
        for status in &statuses {
            assert!(!status.message().contains(needle), "an error message contains {needle:?}: {status:?}");
        }
    }
}
