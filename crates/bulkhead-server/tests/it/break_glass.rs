//! Break-glass access over gRPC: the admin token reads no tenant data and cannot approve a grant;
//! the approver token approves and does nothing else; an activated grant's key reads and does not
//! write, stops at the grant's expiry and at its revocation; every step and read is in the
//! tenant's own exported trail with the grant id and reason, and in no other tenant's.

use crate::harness::{TestServer, point, req, search, seed};
use bulkhead_query::ManualClock;
use bulkhead_server::proto as pb;
use std::time::Duration;
use tonic::Code;

const REASON: &str = "INC-2024-77 customer cannot find their onboarding docs";

fn code<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Code {
    result.map_or_else(|s| s.code(), |_| Code::Ok)
}

/// Every event of the tenant's trail, read with its own tenant-admin key (the tenant's export).
async fn own_trail(server: &TestServer, tenant_admin: &str) -> Vec<pb::AuditEvent> {
    let mut data = server.data().await;
    let mut events = Vec::new();
    let mut from_seq = 0;
    loop {
        let r = pb::ExportOwnAuditRequest { since_ms: 0, from_seq, limit: 0 };
        let page = data.export_audit(req(r, tenant_admin)).await.expect("own export").into_inner();
        events.extend(page.events);
        match page.next_seq {
            Some(next) => from_seq = next,
            None => return events,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_takes_a_second_credential_reads_only_and_is_in_the_tenants_own_trail() {
    let clock = ManualClock::new();
    let server = TestServer::on_clock(&clock).await;
    let acme_admin = seed(&server, "acme").await;
    let globex_admin = seed(&server, "globex").await;
    let (admin_token, approver) = (server.admin_token.clone(), server.approver_token.clone());
    let mut admin = server.admin().await;
    let mut data = server.data().await;

    // The operator tokens read no tenant data.
    for token in [&admin_token, &approver] {
        let got = data.search(req(search("docs", [1.0, 0.0, 0.0], 1), token)).await;
        assert_eq!(code(got), Code::PermissionDenied);
    }

    // Requested: no access yet, and no key to activate.
    let r = pb::RequestAccessGrantRequest {
        tenant: "acme".into(),
        reason: REASON.into(),
        ttl_seconds: Some(600),
        role: 0,
    };
    let grant = admin.request_access_grant(req(r, &admin_token)).await.expect("request").into_inner();
    assert_eq!(grant.state, "pending");
    assert_eq!(grant.expires_ms - grant.requested_ms, 600_000);
    let activate =
        || pb::ActivateAccessGrantRequest { tenant: "acme".into(), grant_id: grant.grant_id.clone() };
    let refused = admin.activate_access_grant(req(activate(), &admin_token)).await.expect_err("pending");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("not approved"), "{}", refused.message());
    assert!(!refused.message().contains("INC-2024"), "errors never echo the reason");

    // The requester's own credential cannot approve; the approver token does nothing else.
    let approve = || pb::ApproveAccessGrantRequest {
        tenant: "acme".into(),
        grant_id: grant.grant_id.clone(),
        role: pb::Role::Reader as i32,
    };
    let refused = admin.approve_access_grant(req(approve(), &admin_token)).await.expect_err("admin approves");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("approver token"), "{}", refused.message());
    let refused =
        admin.activate_access_grant(req(activate(), &approver)).await.expect_err("approver activates");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let listed = admin.list_tenants(req(pb::ListTenantsRequest {}, &approver)).await;
    assert_eq!(code(listed), Code::PermissionDenied);
    // The approval names the role it approves: a reader's grant is not approved as a tenant-admin's,
    // and no role at all is a bad request.
    let mut other = approve();
    other.role = pb::Role::TenantAdmin as i32;
    let refused = admin.approve_access_grant(req(other, &approver)).await.expect_err("another role");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("another role"), "{}", refused.message());
    let mut none = approve();
    none.role = 0;
    let refused = admin.approve_access_grant(req(none, &approver)).await.expect_err("no role");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let approved = admin.approve_access_grant(req(approve(), &approver)).await.expect("approve").into_inner();
    assert_eq!(approved.state, "approved");

    // Activated: a reader key of acme that expires with the grant.
    let active =
        admin.activate_access_grant(req(activate(), &admin_token)).await.expect("activate").into_inner();
    let key = active.token.clone();
    assert_eq!(active.grant.as_ref().map(|g| g.state.as_str()), Some("active"));
    let again = admin.activate_access_grant(req(activate(), &admin_token)).await;
    assert_eq!(code(again), Code::FailedPrecondition, "a grant's key is shown once");
    let keys = admin
        .list_api_keys(req(pb::ListApiKeysRequest { tenant: "acme".into() }, &admin_token))
        .await
        .expect("keys")
        .into_inner()
        .keys;
    let listed = keys.iter().find(|k| k.key_id == active.key_id).expect("the grant's key is listed");
    assert_eq!(listed.role, pb::Role::Reader as i32);
    assert_eq!(listed.expires_ms, Some(grant.expires_ms));
    assert_eq!(listed.grant_id.as_deref(), Some(grant.grant_id.as_str()));

    let hits = data.search(req(search("docs", [1.0, 0.0, 0.0], 1), &key)).await.expect("search").into_inner();
    assert_eq!(hits.hits.len(), 1);
    let get = pb::GetRequest { collection: "docs".into(), id: "a".into(), ..Default::default() };
    assert_eq!(code(data.get(req(get, &key)).await), Code::Ok);
    let upsert =
        pb::UpsertRequest { collection: "docs".into(), points: vec![point("c", [0.0, 0.0, 1.0], "x")] };
    assert_eq!(code(data.upsert(req(upsert, &key)).await), Code::PermissionDenied);
    let delete = pb::DeleteRequest { collection: "docs".into(), ids: vec!["a".into()] };
    assert_eq!(code(data.delete(req(delete, &key)).await), Code::PermissionDenied);
    let drop = pb::DropCollectionRequest { name: "docs".into() };
    assert_eq!(code(data.drop_collection(req(drop, &key)).await), Code::PermissionDenied);
    let export = pb::ExportOwnAuditRequest { since_ms: 0, from_seq: 0, limit: 1 };
    assert_eq!(code(data.export_audit(req(export, &key)).await), Code::PermissionDenied);
    // Tenant keys (this one too) are refused by the admin plane: it issues no keys.
    let issue = pb::IssueApiKeyRequest {
        tenant: "acme".into(),
        role: pb::Role::TenantAdmin as i32,
        ..Default::default()
    };
    assert_eq!(code(admin.issue_api_key(req(issue, &key)).await), Code::PermissionDenied);
    let count = data.count(req(pb::CountRequest { collection: "docs".into() }, &key)).await.expect("count");
    assert_eq!(count.into_inner().count, 2, "the tenant's two points");

    // Past the grant's expiry the key is refused, although it is cached.
    clock.advance(Duration::from_secs(601));
    let expired = data.search(req(search("docs", [1.0, 0.0, 0.0], 1), &key)).await;
    assert_eq!(code(expired), Code::Unauthenticated);
    let grants = admin
        .list_access_grants(req(pb::ListAccessGrantsRequest { tenant: "acme".into() }, &admin_token))
        .await
        .expect("list")
        .into_inner()
        .grants;
    assert_eq!(grants.iter().map(|g| g.state.as_str()).collect::<Vec<_>>(), ["expired"]);

    // The tenant's own export: every step with the grant id and the reason, every read with the
    // key id and the grant id.
    let trail = own_trail(&server, &acme_admin).await;
    let steps = [
        "access-grant-requested",
        "access-grant-approval-refused",
        "access-grant-approved",
        "access-grant-activated",
    ];
    for step in steps {
        let event = trail.iter().find(|e| e.operation == step).unwrap_or_else(|| panic!("{step}: {trail:?}"));
        let note = event.note.as_deref().unwrap_or_default();
        assert!(note.contains(&grant.grant_id) && note.contains(REASON), "{step}: {note}");
    }
    let refusal = trail.iter().find(|e| e.operation == "access-grant-approval-refused").expect("refusal");
    assert_eq!(refusal.outcome, "permission-denied");
    let under_grant = format!("break-glass grant {}", grant.grant_id);
    let reads: Vec<(&str, &str)> = trail
        .iter()
        .filter(|e| {
            e.key_id.as_deref() == Some(active.key_id.as_str()) && e.note.as_deref() == Some(&under_grant)
        })
        .map(|e| (e.operation.as_str(), e.outcome.as_str()))
        .collect();
    for read in [("search", "ok"), ("get", "ok"), ("count", "ok"), ("upsert", "permission-denied")] {
        assert!(reads.contains(&read), "{read:?} under the grant: {reads:?}");
    }
    // Globex's trail has none of it.
    let globex = own_trail(&server, &globex_admin).await;
    assert!(globex.iter().all(|e| !e.operation.contains("grant")
        && e.key_id.as_deref() != Some(active.key_id.as_str())
        && e.note.as_deref().is_none_or(|n| !n.contains(&grant.grant_id) && !n.contains("INC-2024"))));
    let verified = admin
        .verify_audit(req(pb::VerifyAuditRequest { tenant: String::new() }, &admin_token))
        .await
        .expect("verify")
        .into_inner();
    assert!(verified.chains.iter().all(|c| c.first_broken.is_none()), "every chain intact");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_grant_stops_its_cached_key_at_once_and_bad_requests_are_refused_clearly() {
    let server = TestServer::start().await;
    seed(&server, "acme").await;
    seed(&server, "globex").await;
    let (admin_token, approver) = (server.admin_token.clone(), server.approver_token.clone());
    let mut admin = server.admin().await;
    let mut data = server.data().await;
    let r = pb::RequestAccessGrantRequest {
        tenant: "acme".into(),
        reason: "support".into(),
        ttl_seconds: None,
        role: 0,
    };
    let grant = admin.request_access_grant(req(r, &admin_token)).await.expect("request").into_inner();
    assert_eq!(grant.expires_ms - grant.requested_ms, 3_600_000, "one hour by default");
    let id = grant.grant_id.clone();
    let approve = pb::ApproveAccessGrantRequest {
        tenant: "acme".into(),
        grant_id: id.clone(),
        role: pb::Role::Reader as i32,
    };
    admin.approve_access_grant(req(approve, &approver)).await.expect("approve");
    let activate = pb::ActivateAccessGrantRequest { tenant: "acme".into(), grant_id: id.clone() };
    let key =
        admin.activate_access_grant(req(activate, &admin_token)).await.expect("activate").into_inner().token;
    for _ in 0..3 {
        let r = pb::CountRequest { collection: "docs".into() };
        data.count(req(r, &key)).await.expect("the key reads (and is cached)");
    }
    let revoke = pb::RevokeAccessGrantRequest { tenant: "acme".into(), grant_id: id.clone() };
    let revoked = admin.revoke_access_grant(req(revoke, &admin_token)).await.expect("revoke").into_inner();
    assert_eq!(revoked.state, "revoked");
    let after = data.count(req(pb::CountRequest { collection: "docs".into() }, &key)).await;
    assert_eq!(code(after), Code::Unauthenticated, "refused at once");

    // Clear refusals: a reason too long, a time to live too long, an unknown grant, another
    // tenant's grant.
    let long = pb::RequestAccessGrantRequest {
        tenant: "acme".into(),
        reason: "x".repeat(513),
        ttl_seconds: None,
        role: 0,
    };
    let status = admin.request_access_grant(req(long, &admin_token)).await.expect_err("long reason");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("reason") && status.message().contains("512"), "{}", status.message());
    let ttl = pb::RequestAccessGrantRequest {
        tenant: "acme".into(),
        reason: "ok".into(),
        ttl_seconds: Some(86_401),
        role: 0,
    };
    let status = admin.request_access_grant(req(ttl, &admin_token)).await.expect_err("long ttl");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("ttl") && status.message().contains("86400"), "{}", status.message());
    for (tenant, grant_id) in [("acme", "00".repeat(16)), ("globex", id.clone())] {
        let r = pb::ApproveAccessGrantRequest {
            tenant: tenant.into(),
            grant_id: grant_id.clone(),
            role: pb::Role::Reader as i32,
        };
        let status = admin.approve_access_grant(req(r, &approver)).await.expect_err("no such grant");
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "access grant not found");
        let r = pb::RevokeAccessGrantRequest { tenant: tenant.into(), grant_id };
        assert_eq!(code(admin.revoke_access_grant(req(r, &admin_token)).await), Code::NotFound);
    }
    server.stop().await;
}

#[test]
fn the_approver_token_must_differ_from_the_admin_token() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let master = bulkhead_query::MasterKey::generate();
        let options = bulkhead_query::StoreOptions::default();
        let db = std::sync::Arc::new(
            bulkhead_query::Database::open(&dir.path().join("db"), master, options).expect("open"),
        );
        let text = format!("bka_{}", "5a".repeat(32));
        let admin = bulkhead_server::AdminToken::new(text.clone()).expect("token");
        let same = bulkhead_server::AdminToken::new(text).expect("token");
        let server = bulkhead_server::Server::new(db, admin, bulkhead_server::ServerLimits::default());
        let refused = server.with_approver(same).expect_err("the same token twice");
        assert!(refused.to_string().contains("differ"), "{refused}");
    });
}
