//! Break-glass access grants through the library: a grant gives nothing until it is approved and
//! activated; its key reads and does nothing else, stops at the grant's expiry and at its
//! revocation (despite the key cache), goes with its tenant; every step and every read is in the
//! tenant's own trail with the grant id, and in no other tenant's.

use crate::util::{TestDir, tenant};
use bulkhead_query::{
    AuditEvent, Database, DocId, GrantState, ManualClock, Metric, NewPoint, QueryError, Role, StorageError,
    TenantName, TenantUid,
};
use std::time::Duration;

fn seeded(db: &Database) -> TenantName {
    let scope = tenant(db, "acme");
    let t = db.tenant(&scope).expect("tenant");
    t.create_collection("docs", 2, Metric::Dot).expect("collection");
    t.upsert("docs", &[NewPoint::new(DocId::new("a").expect("id"), vec![1.0, 0.0], "alpha")])
        .expect("upsert");
    tenant(db, "globex");
    TenantName::new("acme").expect("name")
}

fn trail(db: &Database, name: &str) -> Vec<AuditEvent> {
    let uid = db.operator().tenant_info(&TenantName::new(name).expect("name")).expect("info").uid;
    db.operator().audit_events(uid).expect("events")
}

fn uid(db: &Database, name: &str) -> TenantUid {
    db.operator().tenant_info(&TenantName::new(name).expect("name")).expect("info").uid
}

fn denied<T>(r: Result<T, QueryError>) -> bool {
    matches!(r, Err(QueryError::Storage(StorageError::PermissionDenied { .. })))
}

fn grant_state<T: std::fmt::Debug>(r: Result<T, StorageError>) -> bool {
    matches!(r, Err(StorageError::GrantState { .. }))
}

#[test]
fn a_grant_reads_only_after_approval_and_activation_and_leaves_its_trail() {
    let dir = TestDir::new();
    let db = dir.open();
    let acme = seeded(&db);
    let op = db.operator();
    let reason = "ticket 4711: customer reports missing search results";
    let grant = op.request_access_grant(&acme, reason, None).expect("request");
    assert_eq!(grant.state, GrantState::Pending);
    assert_eq!(grant.expires_ms - grant.requested_ms, 3_600_000, "one hour by default");
    assert!(!format!("{grant:?}").contains("4711"), "Debug never shows the reason");
    // Requested is not approved: no key.
    assert!(grant_state(op.activate_access_grant(&acme, &grant.grant_id)));
    let approved = op.approve_access_grant(&acme, &grant.grant_id).expect("approve");
    assert_eq!(approved.state, GrantState::Approved);
    assert!(grant_state(op.approve_access_grant(&acme, &grant.grant_id)), "approved once");
    let (active, key) = op.activate_access_grant(&acme, &grant.grant_id).expect("activate");
    assert_eq!(active.state, GrantState::Active);
    assert_eq!(active.key_id.as_deref(), Some(key.key_id.as_str()));
    assert!(grant_state(op.activate_access_grant(&acme, &grant.grant_id)), "the key is shown once");

    // The key: a reader of acme that names its grant, expiring with it.
    let listed = op.list_api_keys(&acme).expect("keys");
    let record = listed.iter().find(|k| k.key_id == key.key_id).expect("listed");
    assert_eq!(record.role, Role::Reader);
    assert_eq!(record.expires_ms, Some(grant.expires_ms));
    assert_eq!(record.grant_id.as_deref(), Some(grant.grant_id.as_str()));
    let scope = op.authenticate(&key.token).expect("authenticates");
    assert_eq!(scope.grant_id().as_deref(), Some(grant.grant_id.as_str()));
    let t = db.tenant(&scope).expect("tenant");
    assert_eq!(t.search("docs", &[1.0, 0.0], 1).expect("search").len(), 1);
    assert!(t.get("docs", &DocId::new("a").expect("id")).expect("get").is_some());
    let b = NewPoint::new(DocId::new("b").expect("id"), vec![0.0, 1.0], "beta");
    assert!(denied(t.upsert("docs", &[b])));
    assert!(denied(t.delete("docs", &[DocId::new("a").expect("id")])));
    assert!(denied(t.create_collection("more", 2, Metric::Dot)));
    assert!(denied(t.drop_collection("docs")));
    assert!(denied(t.audit_page(0, 0, 10)), "a break-glass key does not read the trail");
    drop(t);

    // The tenant's own trail: every step with the grant id and the reason, every read with the key
    // id and the grant id.
    let events = trail(&db, "acme");
    let with_grant = |op: &str| {
        events
            .iter()
            .find(|e| e.operation == op && e.note.as_deref().is_some_and(|n| n.contains(&grant.grant_id)))
    };
    for step in ["access-grant-requested", "access-grant-approved", "access-grant-activated"] {
        let event = with_grant(step).unwrap_or_else(|| panic!("{step} in acme's trail: {events:?}"));
        assert!(event.note.as_deref().is_some_and(|n| n.contains(reason)), "{step} names the reason");
    }
    assert_eq!(with_grant("access-grant-activated").and_then(|e| e.key_id.clone()), Some(key.key_id.clone()));
    let approval_refused = events.iter().filter(|e| e.operation == "access-grant-approval-refused").count();
    assert_eq!(approval_refused, 1, "the second approval was refused and recorded");
    let activations_refused: Vec<&str> = events
        .iter()
        .filter(|e| e.operation == "access-grant-activation-refused")
        .map(|e| e.outcome.as_str())
        .collect();
    assert_eq!(
        activations_refused, ["failed-precondition"; 2],
        "the activation before approval and the second one were refused and recorded"
    );
    let note = format!("break-glass grant {}", grant.grant_id);
    let reads: Vec<_> = events.iter().filter(|e| e.key_id.as_deref() == Some(key.key_id.as_str())).collect();
    for (operation, outcome) in [("search", "ok"), ("get", "ok"), ("upsert", "permission-denied")] {
        assert!(
            reads.iter().any(|e| e.operation == operation
                && e.outcome == outcome
                && e.note.as_deref() == Some(note.as_str())),
            "{operation} {outcome} under the grant: {reads:?}"
        );
    }
    // Another tenant's trail has none of it.
    let globex = trail(&db, "globex");
    assert!(globex.iter().all(|e| !e.operation.starts_with("access-grant")
        && e.note.as_deref().is_none_or(|n| !n.contains(&grant.grant_id))
        && e.key_id.as_deref() != Some(key.key_id.as_str())));
    for name in ["acme", "globex"] {
        let check = op.audit_verify(uid(&db, name)).expect("verify");
        assert_eq!(check.first_broken, None, "{name}'s chain intact");
    }
}

#[test]
fn the_key_stops_at_the_grants_expiry_and_an_expired_grant_is_not_approved() {
    let dir = TestDir::new();
    let clock = ManualClock::new();
    let db = dir.open_on(&clock);
    let acme = seeded(&db);
    let op = db.operator();
    let grant = op.request_access_grant(&acme, "forensics", Some(Duration::from_secs(60))).expect("request");
    op.approve_access_grant(&acme, &grant.grant_id).expect("approve");
    let (_, key) = op.activate_access_grant(&acme, &grant.grant_id).expect("activate");
    let held = op.authenticate(&key.token).expect("authenticates");
    op.authenticate(&key.token).expect("again, from the cache");
    clock.advance(Duration::from_secs(61));
    assert!(matches!(op.authenticate(&key.token), Err(StorageError::Unauthenticated)));
    assert!(matches!(db.tenant(&held), Err(QueryError::Storage(StorageError::Unauthenticated))));
    let listed = op.list_access_grants(&acme).expect("list");
    assert_eq!(listed.iter().map(|g| g.state).collect::<Vec<_>>(), [GrantState::Expired]);

    // A grant that expires before its approval is never approved (and the refusal is recorded).
    let late = op.request_access_grant(&acme, "too late", Some(Duration::from_secs(60))).expect("request");
    clock.advance(Duration::from_secs(61));
    assert!(grant_state(op.approve_access_grant(&acme, &late.grant_id)));
    let refused = trail(&db, "acme")
        .into_iter()
        .filter(|e| e.operation == "access-grant-approval-refused" && e.outcome == "failed-precondition")
        .count();
    assert_eq!(refused, 1);
}

#[test]
fn revocation_stops_the_key_at_once_despite_the_cache() {
    let dir = TestDir::new();
    let db = dir.open();
    let acme = seeded(&db);
    let op = db.operator();
    let grant = op.request_access_grant(&acme, "support", None).expect("request");
    op.approve_access_grant(&acme, &grant.grant_id).expect("approve");
    let (_, key) = op.activate_access_grant(&acme, &grant.grant_id).expect("activate");
    let held = op.authenticate(&key.token).expect("authenticates");
    assert!(op.authenticate_cached(&key.token).is_some(), "the key is cached");
    let revoked = op.revoke_access_grant(&acme, &grant.grant_id).expect("revoke");
    assert_eq!(revoked.state, GrantState::Revoked);
    assert!(op.authenticate_cached(&key.token).is_none(), "gone from the cache");
    assert!(matches!(op.authenticate(&key.token), Err(StorageError::Unauthenticated)));
    assert!(matches!(db.tenant(&held), Err(QueryError::Storage(StorageError::Unauthenticated))));
    assert!(grant_state(op.activate_access_grant(&acme, &grant.grant_id)));
    let events = trail(&db, "acme");
    let event = events.iter().find(|e| e.operation == "access-grant-revoked").expect("revoked event");
    assert_eq!(event.key_id.as_deref(), Some(key.key_id.as_str()));
    assert!(op.list_api_keys(&acme).expect("keys").iter().any(|k| k.key_id == key.key_id && k.revoked));
}

#[test]
fn bad_requests_get_clear_errors_that_never_echo_the_reason() {
    let dir = TestDir::new();
    let db = dir.open();
    let acme = seeded(&db);
    let globex = TenantName::new("globex").expect("name");
    let op = db.operator();
    let invalid = |r: Result<_, StorageError>, field: &str| match r {
        Err(StorageError::InvalidArgument { field: f, reason }) => {
            assert_eq!(f, field);
            assert!(!reason.contains("secret-marker"), "{reason}");
        }
        other => panic!("expected invalid {field}, got {other:?}"),
    };
    invalid(op.request_access_grant(&acme, &"secret-marker ".repeat(40), None), "reason");
    invalid(op.request_access_grant(&acme, "", None), "reason");
    invalid(op.request_access_grant(&acme, "   ", None), "reason");
    invalid(op.request_access_grant(&acme, "secret-marker\nline", None), "reason");
    invalid(op.request_access_grant(&acme, "ok", Some(Duration::from_secs(24 * 3600 + 1))), "ttl");
    invalid(op.request_access_grant(&acme, "ok", Some(Duration::from_secs(1))), "ttl");
    let nobody = TenantName::new("nobody").expect("name");
    assert!(matches!(op.request_access_grant(&nobody, "ok", None), Err(StorageError::NotFound { .. })));
    // Invisible formatting characters (a right-to-left override) would make a reason read as other text.
    invalid(op.request_access_grant(&acme, "ticket 12\u{202E}34", None), "reason");
    // The approver learns no tenant names: an unknown tenant is an unknown grant.
    assert!(matches!(
        op.approve_access_grant(&nobody, &"00".repeat(16)),
        Err(StorageError::NotFound { what: "access grant" })
    ));
    // Unknown, malformed and another tenant's grants look alike.
    let grant = op.request_access_grant(&acme, "ok", None).expect("request");
    for (tenant, id) in
        [(&acme, "00".repeat(16)), (&acme, "zz".to_owned()), (&globex, grant.grant_id.clone())]
    {
        assert!(matches!(
            op.approve_access_grant(tenant, &id),
            Err(StorageError::NotFound { what: "access grant" })
        ));
        assert!(matches!(op.activate_access_grant(tenant, &id), Err(StorageError::NotFound { .. })));
        assert!(matches!(op.revoke_access_grant(tenant, &id), Err(StorageError::NotFound { .. })));
    }
    assert!(op.list_access_grants(&globex).expect("list").is_empty());
    assert_eq!(op.list_access_grants(&acme).expect("list").len(), 1);
}

#[test]
fn a_break_glass_key_is_audited_even_with_access_audit_off_and_goes_with_its_tenant() {
    let dir = TestDir::new();
    let db = dir.open();
    let acme = seeded(&db);
    db.set_access_audit(false);
    let op = db.operator();
    let grant = op.request_access_grant(&acme, "audit off", None).expect("request");
    op.approve_access_grant(&acme, &grant.grant_id).expect("approve");
    let (_, key) = op.activate_access_grant(&acme, &grant.grant_id).expect("activate");
    let scope = op.authenticate(&key.token).expect("authenticates");
    db.tenant(&scope).expect("tenant").count("docs").expect("count");
    let counted = trail(&db, "acme")
        .into_iter()
        .any(|e| e.operation == "count" && e.key_id.as_deref() == Some(key.key_id.as_str()));
    assert!(counted, "the read is in the trail although access auditing is off");
    // Deleting the tenant deletes its grants and their keys.
    db.delete_tenant(&acme).expect("delete");
    assert!(matches!(op.authenticate(&key.token), Err(StorageError::Unauthenticated)));
    tenant(&db, "acme");
    assert!(op.list_access_grants(&acme).expect("list").is_empty(), "a new acme has no grant");
}
