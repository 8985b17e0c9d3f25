//! Authentication and roles: API keys mint scopes; bad, revoked and expired keys do not; roles limit
//! what a scope can do; a scope from one database is refused by another.

use crate::util::{TestDir, tenant};
use bulkhead_query::{DocId, Metric, NewPoint, QueryError, Role, StorageError, TenantName};

fn unauthenticated<T: std::fmt::Debug>(r: Result<T, StorageError>) -> bool {
    matches!(r, Err(StorageError::Unauthenticated))
}

#[test]
fn api_keys_authenticate_and_carry_roles() {
    let dir = TestDir::new();
    let db = dir.open();
    let admin_scope = tenant(&db, "acme");
    db.tenant(&admin_scope).expect("tenant").create_collection("docs", 2, Metric::Dot).expect("collection");
    let acme = TenantName::new("acme").expect("name");
    let store = db.operator();

    let writer = store.issue_api_key(&acme, Role::Writer, "ingest", None).expect("issue");
    let reader = store.issue_api_key(&acme, Role::Reader, "search", None).expect("issue");
    assert!(!format!("{writer:?}").contains(&writer.token), "Debug never shows the token");

    let scope = store.authenticate(&writer.token).expect("writer authenticates");
    assert_eq!(scope.role(), Role::Writer);
    let t = db.tenant(&scope).expect("tenant");
    t.upsert("docs", &[NewPoint::new(DocId::new("a").expect("id"), vec![1.0, 0.0], "x")])
        .expect("writer writes");
    assert!(matches!(
        t.create_collection("more", 2, Metric::Dot),
        Err(QueryError::Storage(StorageError::PermissionDenied { .. }))
    ));
    assert!(matches!(
        t.drop_collection("docs"),
        Err(QueryError::Storage(StorageError::PermissionDenied { .. }))
    ));

    let scope = store.authenticate(&reader.token).expect("reader authenticates");
    let t = db.tenant(&scope).expect("tenant");
    assert_eq!(t.search("docs", &[1.0, 0.0], 1).expect("reader searches").len(), 1);
    assert!(matches!(
        t.upsert("docs", &[NewPoint::new(DocId::new("b").expect("id"), vec![1.0, 0.0], "y")]),
        Err(QueryError::Storage(StorageError::PermissionDenied { .. }))
    ));
    assert!(matches!(
        t.delete("docs", &[DocId::new("a").expect("id")]),
        Err(QueryError::Storage(StorageError::PermissionDenied { .. }))
    ));
    assert_eq!(db.tenant(&admin_scope).expect("t").count("docs").expect("count"), 1, "nothing changed");

    // Wrong secret, malformed, unknown id: one error for all.
    let mut wrong = writer.token.clone();
    let last = wrong.pop().expect("char");
    wrong.push(if last == '0' { '1' } else { '0' });
    assert!(unauthenticated(store.authenticate(&wrong)));
    assert!(unauthenticated(store.authenticate("")));
    assert!(unauthenticated(store.authenticate("bk_nothex_zz")));
    assert!(unauthenticated(store.authenticate(&format!("bk_{}_{}", "0".repeat(32), "0".repeat(64)))));

    // Revocation takes effect at once, for new authentications and for scopes already minted.
    let held = store.authenticate(&writer.token).expect("writer authenticates");
    store.revoke_api_key(&acme, &writer.key_id).expect("revoke");
    assert!(unauthenticated(store.authenticate(&writer.token)));
    assert!(matches!(db.tenant(&held), Err(QueryError::Storage(StorageError::Unauthenticated))));
    let listed = store.list_api_keys(&acme).expect("list");
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().any(|k| k.key_id == writer.key_id && k.revoked));

    // Expired keys fail.
    let expired = store.issue_api_key(&acme, Role::Reader, "old", Some(1)).expect("issue");
    assert!(unauthenticated(store.authenticate(&expired.token)));
}

#[test]
fn keys_of_one_tenant_cannot_be_revoked_through_another() {
    let dir = TestDir::new();
    let db = dir.open();
    tenant(&db, "acme");
    tenant(&db, "umbrella");
    let acme = TenantName::new("acme").expect("name");
    let umbrella = TenantName::new("umbrella").expect("name");
    let key = db.operator().issue_api_key(&acme, Role::Reader, "k", None).expect("issue");
    assert!(matches!(
        db.operator().revoke_api_key(&umbrella, &key.key_id),
        Err(StorageError::NotFound { what: "api key" })
    ));
    let scope = db.operator().authenticate(&key.token).expect("still valid");
    assert_eq!(db.tenant(&scope).expect("tenant").collections().expect("list").len(), 0);
}

#[test]
fn scopes_do_not_cross_databases() {
    let one = TestDir::new();
    let two = TestDir::new();
    let db_one = one.open();
    let db_two = two.open();
    let scope = tenant(&db_one, "acme");
    tenant(&db_two, "acme");
    assert!(matches!(db_two.tenant(&scope), Err(QueryError::Storage(StorageError::ForeignScope))));
}

#[test]
fn unknown_tenants_and_collections_are_plain_not_found() {
    let dir = TestDir::new();
    let db = dir.open();
    let scope = tenant(&db, "acme");
    let other = tenant(&db, "umbrella");
    db.tenant(&other).expect("t").create_collection("secret-plans", 2, Metric::Dot).expect("collection");
    let ghost = TenantName::new("ghost").expect("name");
    assert!(matches!(
        db.operator().trusted_host_scope(&ghost, "test"),
        Err(StorageError::NotFound { what: "tenant" })
    ));
    // Another tenant's collection looks exactly like one that does not exist.
    let t = db.tenant(&scope).expect("tenant");
    let theirs = t.search("secret-plans", &[1.0, 0.0], 1).expect_err("not visible");
    let missing = t.search("no-such-thing", &[1.0, 0.0], 1).expect_err("missing");
    assert_eq!(theirs.to_string(), missing.to_string());
    assert!(matches!(theirs, QueryError::Storage(StorageError::NotFound { what: "collection" })));
}
