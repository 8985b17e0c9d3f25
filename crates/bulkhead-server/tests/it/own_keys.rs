//! Issue 8, the operator's paths to tenant data that bypassed break-glass, over gRPC: a configured
//! admin token issues only a tenant's first key (once, even when two calls race); tenant-admins
//! issue, list and revoke their own tenant's keys on the data plane and no other tenant's; an
//! imported tenant gets an admin key only through an approved tenant-admin grant; the approver
//! lists grants (role, reason, expiry) and does nothing else; a development admin token still
//! issues any key.

use crate::harness::{TestServer, req, seed};
use bulkhead_server::proto as pb;
use tonic::Code;

fn code<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Code {
    result.map_or_else(|s| s.code(), |_| Code::Ok)
}

fn operator_issue(tenant: &str, role: pb::Role) -> pb::IssueApiKeyRequest {
    pb::IssueApiKeyRequest {
        tenant: tenant.into(),
        role: role as i32,
        label: "ops".into(),
        expires_ms: None,
        binding: None,
    }
}

fn own_issue(role: pb::Role) -> pb::IssueOwnApiKeyRequest {
    pb::IssueOwnApiKeyRequest { role: role as i32, label: "svc".into(), expires_ms: None, binding: None }
}

fn count_req() -> pb::CountRequest {
    pb::CountRequest { collection: "docs".into() }
}

/// The tenant's trail as its own tenant-admin key exports it: (operation, outcome, note).
async fn trail(server: &TestServer, tenant_admin: &str) -> Vec<(String, String, String)> {
    let mut data = server.data().await;
    let (mut events, mut from_seq) = (Vec::new(), 0);
    loop {
        let r = pb::ExportOwnAuditRequest { since_ms: 0, from_seq, limit: 0 };
        let page = data.export_audit(req(r, tenant_admin)).await.expect("own export").into_inner();
        events.extend(page.events.into_iter().map(|e| (e.operation, e.outcome, e.note.unwrap_or_default())));
        match page.next_seq {
            Some(next) => from_seq = next,
            None => return events,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_issues_a_tenants_first_key_and_no_second() {
    let server = TestServer::start().await;
    server.tenant("acme").await;
    let mut admin = server.admin().await;
    let first = admin
        .issue_api_key(req(operator_issue("acme", pb::Role::TenantAdmin), &server.admin_token))
        .await
        .expect("the first key")
        .into_inner();
    // A second key, of any role, is refused with what to do instead.
    for role in [pb::Role::Reader, pb::Role::TenantAdmin] {
        let refused = admin
            .issue_api_key(req(operator_issue("acme", role), &server.admin_token))
            .await
            .expect_err("a second key");
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        assert!(refused.message().contains("first key"), "{}", refused.message());
        assert!(refused.message().contains("data plane"), "{}", refused.message());
        assert!(refused.message().contains("break-glass"), "{}", refused.message());
    }
    // Only the first key exists, and each refusal is in the tenant's own trail.
    let keys = server
        .db
        .operator()
        .list_api_keys(&bulkhead_query::TenantName::new("acme").expect("name"))
        .expect("keys");
    assert_eq!(keys.len(), 1);
    // The first key is how the tenant receives its keys, not one the operator keeps: asked
    // without an expiry, it expires within a day.
    let now = server.db.clock().now_ms();
    let day = bulkhead_query::FIRST_KEY_TTL.as_millis() as u64;
    assert!(keys[0].expires_ms.is_some_and(|t| t > now && t <= now + day), "{:?}", keys[0].expires_ms);
    let events = trail(&server, &first.token).await;
    let refusals: Vec<_> = events.iter().filter(|(op, _, _)| op == "api-key-issue-refused").collect();
    assert_eq!(refusals.len(), 2, "{events:?}");
    assert!(refusals.iter().all(|(_, outcome, _)| outcome == "failed-precondition"));
    assert_eq!(refusals[0].2, "role reader: not the tenant's first key");
    // An unknown tenant is not found, as before.
    let unknown =
        admin.issue_api_key(req(operator_issue("nobody", pb::Role::Reader), &server.admin_token)).await;
    assert_eq!(code(unknown), Code::NotFound);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_concurrent_first_key_calls_exactly_one_succeeds() {
    let server = TestServer::start().await;
    for round in 0..4 {
        let tenant = format!("race{round}");
        server.tenant(&tenant).await;
        let mut calls = Vec::new();
        for _ in 0..6 {
            let mut admin = server.admin().await;
            let request = req(operator_issue(&tenant, pb::Role::TenantAdmin), &server.admin_token);
            calls.push(tokio::spawn(async move { code(admin.issue_api_key(request).await) }));
        }
        let mut codes = Vec::new();
        for call in calls {
            codes.push(call.await.expect("call"));
        }
        assert_eq!(codes.iter().filter(|c| **c == Code::Ok).count(), 1, "{tenant}: {codes:?}");
        assert!(codes.iter().all(|c| matches!(c, Code::Ok | Code::FailedPrecondition)), "{codes:?}");
        let keys = server
            .db
            .operator()
            .list_api_keys(&bulkhead_query::TenantName::new(tenant.clone()).expect("name"))
            .expect("keys");
        assert_eq!(keys.len(), 1, "{tenant}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_issues_lists_and_revokes_its_own_keys() {
    let server = TestServer::start().await;
    let acme_admin = seed(&server, "acme").await;
    let mut data = server.data().await;
    let issued = data
        .issue_own_api_key(req(own_issue(pb::Role::Reader), &acme_admin))
        .await
        .expect("issue own")
        .into_inner();
    // The reader key works, as a reader.
    let count = data.count(req(count_req(), &issued.token)).await.expect("count").into_inner();
    assert_eq!(count.count, 2);
    let drop = pb::DropCollectionRequest { name: "docs".into() };
    assert_eq!(code(data.drop_collection(req(drop, &issued.token)).await), Code::PermissionDenied);
    // Listed, with its role and label, and never a secret.
    let listed = data
        .list_own_api_keys(req(pb::ListOwnApiKeysRequest {}, &acme_admin))
        .await
        .expect("list own")
        .into_inner()
        .keys;
    let key = listed.iter().find(|k| k.key_id == issued.key_id).expect("the new key is listed");
    assert_eq!((key.role, key.label.as_str(), key.revoked), (pb::Role::Reader as i32, "svc", false));
    assert_eq!(listed.len(), 2, "acme's tenant-admin key and the new one: {listed:?}");
    // Revoked: refused from the next call on (it authenticated before, so it was cached).
    let revoke = pb::RevokeOwnApiKeyRequest { key_id: issued.key_id.clone() };
    data.revoke_own_api_key(req(revoke, &acme_admin)).await.expect("revoke own");
    assert_eq!(code(data.count(req(count_req(), &issued.token)).await), Code::Unauthenticated);
    // The issue and the revocation are in the tenant's trail, naming the key that made them.
    let events = trail(&server, &acme_admin).await;
    let by = |op: &str| events.iter().find(|(o, _, _)| o == op).map(|(_, _, note)| note.clone());
    let admin_id = &listed.iter().find(|k| k.key_id != issued.key_id).expect("admin key").key_id;
    assert_eq!(by("api-key-issued").expect("issued"), "role tenant-admin");
    let own_issue_note = events
        .iter()
        .filter(|(o, _, _)| o == "api-key-issued")
        .nth(1)
        .map(|(_, _, note)| note.clone())
        .expect("the own issue");
    assert_eq!(own_issue_note, format!("role reader; by tenant-admin key {admin_id}"));
    assert_eq!(by("api-key-revoked").expect("revoked"), format!("by tenant-admin key {admin_id}"));
    // A key that does not expire in the future is refused, as on the admin plane.
    let past = pb::IssueOwnApiKeyRequest { expires_ms: Some(1), ..own_issue(pb::Role::Reader) };
    assert_eq!(code(data.issue_own_api_key(req(past, &acme_admin)).await), Code::InvalidArgument);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_stops_at_the_key_limit_until_it_revokes_one() {
    let server = TestServer::start().await;
    let acme_admin = seed(&server, "acme").await;
    let acme = bulkhead_query::TenantName::new("acme").expect("name");
    // Filled to the limit through the library (fast, and without tripping the key's burst lockout).
    let operator = server.db.operator();
    let held = operator.list_api_keys(&acme).expect("keys").len();
    for i in held..bulkhead_query::MAX_API_KEYS_PER_TENANT {
        operator.issue_api_key(&acme, bulkhead_query::Role::Reader, &format!("k{i}"), None).expect("issue");
    }
    let mut data = server.data().await;
    let refused = data
        .issue_own_api_key(req(own_issue(pb::Role::Reader), &acme_admin))
        .await
        .expect_err("over the limit");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("revoke"), "{}", refused.message());
    assert_eq!(operator.list_api_keys(&acme).expect("keys").len(), bulkhead_query::MAX_API_KEYS_PER_TENANT);
    // The refusal is in the tenant's trail, with its reason.
    let events = trail(&server, &acme_admin).await;
    assert!(
        events.iter().any(|(op, outcome, _)| op == "issue-api-key" && outcome == "key-limit"),
        "{events:?}"
    );
    // A revoked key makes room: the next issue forgets it and succeeds.
    let victim =
        operator.list_api_keys(&acme).expect("keys").into_iter().find(|k| k.label == "k5").expect("k5");
    let revoke = pb::RevokeOwnApiKeyRequest { key_id: victim.key_id.clone() };
    data.revoke_own_api_key(req(revoke, &acme_admin)).await.expect("revoke own");
    data.issue_own_api_key(req(own_issue(pb::Role::Reader), &acme_admin)).await.expect("room was made");
    let keys = operator.list_api_keys(&acme).expect("keys");
    assert_eq!(keys.len(), bulkhead_query::MAX_API_KEYS_PER_TENANT);
    assert!(keys.iter().all(|k| k.key_id != victim.key_id), "the revoked key is forgotten");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_and_writer_keys_cannot_manage_keys() {
    let server = TestServer::start().await;
    let acme_admin = seed(&server, "acme").await;
    let (reader, reader_id) = server.key("acme", pb::Role::Reader).await;
    let (writer, _) = server.key("acme", pb::Role::Writer).await;
    let mut data = server.data().await;
    for token in [&reader, &writer] {
        let issue = data.issue_own_api_key(req(own_issue(pb::Role::Reader), token)).await;
        assert_eq!(code(issue), Code::PermissionDenied);
        let list = data.list_own_api_keys(req(pb::ListOwnApiKeysRequest {}, token)).await;
        assert_eq!(code(list), Code::PermissionDenied);
        let revoke = pb::RevokeOwnApiKeyRequest { key_id: reader_id.clone() };
        assert_eq!(code(data.revoke_own_api_key(req(revoke, token)).await), Code::PermissionDenied);
    }
    // Nothing changed, and each refusal is audited like any role refusal.
    assert_eq!(data.count(req(count_req(), &reader)).await.expect("still works").into_inner().count, 2);
    let events = trail(&server, &acme_admin).await;
    for op in ["issue-api-key", "list-api-keys", "revoke-api-key"] {
        let refused = events.iter().filter(|(o, out, _)| o == op && out == "permission-denied").count();
        assert_eq!(refused, 2, "{op}: {events:?}");
    }
    assert_eq!(events.iter().filter(|(o, _, _)| o == "api-key-issued").count(), 3, "{events:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_never_touches_another_tenants_keys() {
    let server = TestServer::start().await;
    let acme_admin = seed(&server, "acme").await;
    let globex_admin = seed(&server, "globex").await;
    let (globex_reader, globex_reader_id) = server.key("globex", pb::Role::Reader).await;
    let mut data = server.data().await;
    // Revoking globex's keys with acme's admin key: "not found", like an unknown id.
    let globex_keys = server
        .db
        .operator()
        .list_api_keys(&bulkhead_query::TenantName::new("globex").expect("name"))
        .expect("keys");
    for key in &globex_keys {
        let revoke = pb::RevokeOwnApiKeyRequest { key_id: key.key_id.clone() };
        let refused = data.revoke_own_api_key(req(revoke, &acme_admin)).await.expect_err("another tenant's");
        assert_eq!(refused.code(), Code::NotFound);
        let unknown = pb::RevokeOwnApiKeyRequest { key_id: "00".repeat(16) };
        let missing = data.revoke_own_api_key(req(unknown, &acme_admin)).await.expect_err("unknown");
        assert_eq!((missing.code(), missing.message()), (refused.code(), refused.message()));
    }
    // acme's list holds acme's keys only; a key acme issues is acme's.
    let issued = data
        .issue_own_api_key(req(own_issue(pb::Role::TenantAdmin), &acme_admin))
        .await
        .expect("issue own")
        .into_inner();
    let acme_list = data
        .list_own_api_keys(req(pb::ListOwnApiKeysRequest {}, &acme_admin))
        .await
        .expect("list")
        .into_inner()
        .keys;
    assert!(acme_list.iter().all(|k| globex_keys.iter().all(|g| g.key_id != k.key_id)), "{acme_list:?}");
    let describe = pb::DescribeCollectionRequest { name: "docs".into() };
    let tenant_of_new = data.describe_collection(req(describe, &issued.token)).await;
    assert_eq!(code(tenant_of_new), Code::Ok, "acme's docs");
    // globex's keys all still work, and globex's trail holds none of acme's key management.
    assert_eq!(data.count(req(count_req(), &globex_reader)).await.expect("globex").into_inner().count, 2);
    let globex_list = data
        .list_own_api_keys(req(pb::ListOwnApiKeysRequest {}, &globex_admin))
        .await
        .expect("list")
        .into_inner()
        .keys;
    assert!(globex_list.iter().all(|k| !k.revoked), "{globex_list:?}");
    assert!(globex_list.iter().any(|k| k.key_id == globex_reader_id));
    assert!(globex_list.iter().all(|k| k.key_id != issued.key_id));
    let globex_trail = trail(&server, &globex_admin).await;
    assert!(!globex_trail.iter().any(|(op, _, _)| op == "api-key-revoked"), "{globex_trail:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_tenant_gets_an_admin_key_only_through_an_approved_grant() {
    let server = TestServer::start().await;
    seed(&server, "acme").await;
    let mut admin = server.admin().await;
    let mut archive = Vec::new();
    bulkhead_server::client::export_tenant(&mut admin, &server.admin_token, "acme", |chunk| {
        archive.extend_from_slice(chunk);
        Ok(())
    })
    .await
    .expect("export");
    let start = pb::ImportTenantStart { new_name: "acme-copy".into(), tier: String::new() };
    let cursor = std::io::Cursor::new(archive);
    bulkhead_server::client::import_tenant(&mut admin, &server.admin_token, start, cursor, |_| {})
        .await
        .expect("import");
    // The copy has no keys, and the operator cannot issue it one.
    let refused = admin
        .issue_api_key(req(operator_issue("acme-copy", pb::Role::TenantAdmin), &server.admin_token))
        .await
        .expect_err("no operator key for an imported tenant");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    // Through a grant of role tenant-admin, approved by the approver: a tenant-admin key that
    // expires with the grant, which issues the tenant's other keys.
    let (recovered, grant) = server.recover("acme-copy").await;
    assert_eq!(grant.role, pb::Role::TenantAdmin as i32);
    assert_eq!(grant.state, "active");
    // The approver was shown that the tenant was imported from an archive.
    let shown = admin
        .list_access_grants(req(
            pb::ListAccessGrantsRequest { tenant: "acme-copy".into() },
            &server.approver_token,
        ))
        .await
        .expect("the approver's list")
        .into_inner()
        .grants;
    let imported = shown.iter().find(|g| g.grant_id == grant.grant_id).expect("listed").tenant_imported_ms;
    let now = server.db.clock().now_ms();
    assert!(imported.is_some_and(|t| t <= grant.requested_ms && t <= now), "{shown:?}");
    assert_eq!((grant.tenant_imported_ms, grant.operator_revoked_keys_ms), (imported, None));
    let mut data = server.data().await;
    let issued = data
        .issue_own_api_key(req(own_issue(pb::Role::Reader), &recovered))
        .await
        .expect("the recovered key issues keys")
        .into_inner();
    assert_eq!(data.count(req(count_req(), &issued.token)).await.expect("count").into_inner().count, 2);
    let keys = data
        .list_own_api_keys(req(pb::ListOwnApiKeysRequest {}, &recovered))
        .await
        .expect("list")
        .into_inner()
        .keys;
    let grant_key =
        keys.iter().find(|k| k.grant_id.as_deref() == Some(grant.grant_id.as_str())).expect("key");
    assert_eq!(
        (grant_key.role, grant_key.expires_ms),
        (pb::Role::TenantAdmin as i32, Some(grant.expires_ms))
    );
    // Once the tenant has a tenant-admin key of its own, it cannot revoke the grant's key (a
    // failed precondition, not a permission refusal that would count against its own key), and
    // no further tenant-admin grant is given for it.
    let mut own_admin = own_issue(pb::Role::TenantAdmin);
    own_admin.label = "own admin".into();
    let own_admin = data.issue_own_api_key(req(own_admin, &recovered)).await.expect("issue").into_inner();
    let revoke = pb::RevokeOwnApiKeyRequest { key_id: grant.key_id.clone().expect("the grant's key") };
    let refused = data.revoke_own_api_key(req(revoke, &own_admin.token)).await.expect_err("break-glass");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    let mut admin = server.admin().await;
    let again = pb::RequestAccessGrantRequest {
        tenant: "acme-copy".into(),
        reason: "recovery again".into(),
        ttl_seconds: None,
        role: pb::Role::TenantAdmin as i32,
    };
    let refused =
        admin.request_access_grant(req(again, &server.admin_token)).await.expect_err("has an admin");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("live tenant-admin key"), "{}", refused.message());
    // The grant's role is in its events' notes, and the key it issued names the grant.
    let events = trail(&server, &recovered).await;
    let activated = events.iter().find(|(op, _, _)| op == "access-grant-activated").expect("activated");
    assert!(activated.2.contains("role tenant-admin"), "{}", activated.2);
    let own = events.iter().rfind(|(op, _, _)| op == "api-key-issued").expect("issued");
    assert!(own.2.ends_with(&format!("break-glass grant {}", grant.grant_id)), "{}", own.2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approver_sees_that_the_operator_revoked_the_tenants_keys() {
    let server = TestServer::start().await;
    seed(&server, "acme").await;
    let globex_admin = seed(&server, "globex").await;
    let mut admin = server.admin().await;
    let list = |tenant: &str| pb::ListAccessGrantsRequest { tenant: tenant.into() };
    let ask = |tenant: &str, role: pb::Role| pb::RequestAccessGrantRequest {
        tenant: tenant.into(),
        reason: "INC-12".into(),
        ttl_seconds: None,
        role: role as i32,
    };
    // The operator revokes acme's keys, which makes it eligible for a tenant-admin grant.
    let before = server.db.clock().now_ms();
    let revoke_all = pb::RevokeAllApiKeysRequest { tenant: "acme".into() };
    let revoked = admin.revoke_all_api_keys(req(revoke_all, &server.admin_token)).await.expect("revoke all");
    assert!(revoked.into_inner().revoked >= 1);
    let asked = admin
        .request_access_grant(req(ask("acme", pb::Role::TenantAdmin), &server.admin_token))
        .await
        .expect("a tenant-admin grant for a tenant without admin keys")
        .into_inner();
    let shown = admin.list_access_grants(req(list("acme"), &server.approver_token)).await.expect("list");
    let shown = shown.into_inner().grants;
    let grant = shown.iter().find(|g| g.grant_id == asked.grant_id).expect("listed");
    let at = grant.operator_revoked_keys_ms.expect("the approver sees the operator's revocation");
    assert!(before <= at && at <= grant.requested_ms, "{grant:?}");
    assert_eq!(grant.tenant_imported_ms, None);
    // A tenant revoking its own keys is not the operator: nothing is shown for globex.
    let mut data = server.data().await;
    let second = data
        .issue_own_api_key(req(own_issue(pb::Role::Reader), &globex_admin))
        .await
        .expect("issue")
        .into_inner();
    let revoke = pb::RevokeOwnApiKeyRequest { key_id: second.key_id.clone() };
    data.revoke_own_api_key(req(revoke, &globex_admin)).await.expect("revoke own");
    // Nor is the operator's revocation of a key that was revoked already.
    let again = pb::RevokeApiKeyRequest { tenant: "globex".into(), key_id: second.key_id };
    admin.revoke_api_key(req(again, &server.admin_token)).await.expect("revoke again");
    admin.request_access_grant(req(ask("globex", pb::Role::Reader), &server.admin_token)).await.expect("ask");
    let shown = admin.list_access_grants(req(list("globex"), &server.approver_token)).await.expect("list");
    let grant = &shown.into_inner().grants[0];
    assert_eq!((grant.operator_revoked_keys_ms, grant.tenant_imported_ms), (None, None), "{grant:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approver_lists_grants_and_does_nothing_else() {
    let server = TestServer::start().await;
    // A tenant without a key yet: a tenant-admin grant is for a tenant without a live admin key.
    server.tenant("acme").await;
    let mut admin = server.admin().await;
    let request = pb::RequestAccessGrantRequest {
        tenant: "acme".into(),
        reason: "INC-9 restore admin access".into(),
        ttl_seconds: Some(600),
        role: pb::Role::TenantAdmin as i32,
    };
    let asked = admin.request_access_grant(req(request, &server.admin_token)).await.expect("request");
    let asked = asked.into_inner();
    let reader = pb::RequestAccessGrantRequest {
        tenant: "acme".into(),
        reason: "INC-10 forensics".into(),
        ttl_seconds: None,
        role: 0,
    };
    admin.request_access_grant(req(reader, &server.admin_token)).await.expect("request");
    let list = |tenant: &str| pb::ListAccessGrantsRequest { tenant: tenant.into() };
    let grants =
        admin.list_access_grants(req(list("acme"), &server.approver_token)).await.expect("list").into_inner();
    assert_eq!(grants.grants.len(), 2);
    let seen = grants.grants.iter().find(|g| g.grant_id == asked.grant_id).expect("the grant");
    assert_eq!(seen.role, pb::Role::TenantAdmin as i32);
    assert_eq!(seen.reason, "INC-9 restore admin access");
    assert_eq!(seen.expires_ms, asked.expires_ms);
    assert_eq!(seen.expires_ms - seen.requested_ms, 600_000);
    assert_eq!(seen.state, "pending");
    let other = grants.grants.iter().find(|g| g.grant_id != asked.grant_id).expect("the reader's");
    assert_eq!(other.role, pb::Role::Reader as i32, "no role asked: a reader's grant");
    // An unknown tenant looks like a tenant without grants: the approver learns no tenant names.
    server.tenant("quiet").await;
    let unknown = admin.list_access_grants(req(list("nobody"), &server.approver_token)).await;
    let quiet = admin.list_access_grants(req(list("quiet"), &server.approver_token)).await;
    assert_eq!(unknown.expect("unknown").into_inner().grants.len(), 0);
    assert_eq!(quiet.expect("quiet").into_inner().grants.len(), 0);
    // Everything else stays refused to it (the matrix checks every call; these are the nearest).
    let approver = &server.approver_token;
    let keys = admin.list_api_keys(req(pb::ListApiKeysRequest { tenant: "acme".into() }, approver)).await;
    assert_eq!(code(keys), Code::PermissionDenied);
    let activate = pb::ActivateAccessGrantRequest { tenant: "acme".into(), grant_id: asked.grant_id.clone() };
    assert_eq!(code(admin.activate_access_grant(req(activate, approver)).await), Code::PermissionDenied);
    let issue = admin.issue_api_key(req(operator_issue("quiet", pb::Role::TenantAdmin), approver)).await;
    assert_eq!(code(issue), Code::PermissionDenied);
    let tenants = admin.list_tenants(req(pb::ListTenantsRequest {}, approver)).await;
    assert_eq!(code(tenants), Code::PermissionDenied);
    let mut data = server.data().await;
    assert_eq!(code(data.count(req(count_req(), approver)).await), Code::PermissionDenied);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_development_admin_token_still_issues_several_keys() {
    let server = TestServer::development().await;
    seed(&server, "acme").await;
    let mut admin = server.admin().await;
    for role in [pb::Role::TenantAdmin, pb::Role::Writer, pb::Role::Reader] {
        let issued = admin
            .issue_api_key(req(operator_issue("acme", role), &server.admin_token))
            .await
            .expect("a development token issues any key")
            .into_inner();
        let mut data = server.data().await;
        assert_eq!(data.count(req(count_req(), &issued.token)).await.expect("count").into_inner().count, 2);
    }
    let keys = server
        .db
        .operator()
        .list_api_keys(&bulkhead_query::TenantName::new("acme").expect("name"))
        .expect("keys");
    assert_eq!(keys.len(), 4, "seed's key and three more");
    server.stop().await;
}
