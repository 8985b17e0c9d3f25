//! Authentication and roles: API keys mint scopes; bad, revoked and expired keys do not; roles limit
//! what a scope can do; a scope from one database is refused by another.

use crate::util::{TestDir, tenant};
use bulkhead_query::{
    DocId, MAX_API_KEYS_PER_TENANT, ManualClock, MasterKey, Metric, NewPoint, QueryError, Role, StorageError,
    TenantName,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
fn a_tenant_holds_at_most_its_key_limit_and_its_dead_keys_make_room() {
    let dir = TestDir::new();
    let db = dir.open();
    let admin_scope = tenant(&db, "acme");
    db.tenant(&admin_scope).expect("tenant").create_collection("docs", 2, Metric::Dot).expect("collection");
    tenant(&db, "other");
    let (acme, other) = (TenantName::new("acme").expect("name"), TenantName::new("other").expect("name"));
    let store = db.operator();
    let revoked = store.issue_api_key(&acme, Role::Reader, "to revoke", None).expect("issue");
    store.revoke_api_key(&acme, &revoked.key_id).expect("revoke");
    let expired = store.issue_api_key(&acme, Role::Reader, "expired", Some(1)).expect("issue");
    let mut live = Vec::new();
    for i in 2..MAX_API_KEYS_PER_TENANT {
        live.push(store.issue_api_key(&acme, Role::Reader, &format!("k{i}"), None).expect("issue").key_id);
    }
    assert_eq!(store.list_api_keys(&acme).expect("list").len(), MAX_API_KEYS_PER_TENANT);
    // The limit is per tenant.
    store.issue_api_key(&other, Role::Reader, "other's", None).expect("another tenant issues");

    // At the limit, a new key makes the revoked and the expired key be forgotten.
    let first_over = store.issue_api_key(&acme, Role::Reader, "over", None).expect("room was made");
    let listed: Vec<String> =
        store.list_api_keys(&acme).expect("list").into_iter().map(|k| k.key_id).collect();
    assert_eq!(listed.len(), MAX_API_KEYS_PER_TENANT - 1);
    assert!(!listed.contains(&revoked.key_id) && !listed.contains(&expired.key_id));
    assert!(listed.contains(&first_over.key_id) && live.iter().all(|k| listed.contains(k)));
    assert!(unauthenticated(store.authenticate(&revoked.token)), "a forgotten key stays refused");
    assert!(unauthenticated(store.authenticate(&expired.token)));
    store.issue_api_key(&acme, Role::Reader, "last", None).expect("the last place");

    // Every key live: refused, nothing written, the tenant's data and keys intact.
    let refused = store.issue_api_key(&acme, Role::Reader, "one too many", None);
    assert!(
        matches!(refused, Err(StorageError::KeyLimit { limit }) if limit == MAX_API_KEYS_PER_TENANT as u64),
        "{refused:?}"
    );
    let message = refused.expect_err("refused").to_string();
    assert!(
        message.contains("revoke") && message.contains(&MAX_API_KEYS_PER_TENANT.to_string()),
        "{message}"
    );
    assert_eq!(store.list_api_keys(&acme).expect("list").len(), MAX_API_KEYS_PER_TENANT);
    let scope = store.authenticate(&first_over.token).expect("a live key authenticates");
    assert_eq!(db.tenant(&scope).expect("tenant").collections().expect("collections").len(), 1);

    // The index survives a restart, and a deleted tenant's keys leave it with the tenant.
    drop(scope);
    drop(db);
    let db = dir.open();
    let store = db.operator();
    assert_eq!(store.list_api_keys(&acme).expect("list").len(), MAX_API_KEYS_PER_TENANT);
    db.delete_tenant(&acme).expect("delete");
    store.create_tenant(&acme).expect("the name again");
    assert!(store.list_api_keys(&acme).expect("list").is_empty());
    assert_eq!(store.list_api_keys(&other).expect("list").len(), 1, "the other tenant's key stays");
}

#[test]
fn a_key_whose_index_entry_was_removed_at_rest_is_refused() {
    let dir = TestDir::new();
    let (token, key_id, uid) = {
        let db = dir.open();
        tenant(&db, "acme");
        let acme = TenantName::new("acme").expect("name");
        let key = db.operator().issue_api_key(&acme, Role::TenantAdmin, "admin", None).expect("issue");
        db.operator().authenticate(&key.token).expect("authenticates");
        (key.token, key.key_id, db.operator().tenant_info(&acme).expect("info").uid)
    };
    {
        // Someone with the data directory deletes the entry, to hide the key from its tenant.
        let raw = crate::util::raw_db(&dir.data());
        let sys = raw.cf_handle("sys").expect("sys");
        let mut entry = b"apikey-of/".to_vec();
        entry.extend_from_slice(uid.as_bytes());
        entry.extend_from_slice(&hex::decode(&key_id).expect("hex"));
        assert!(raw.get_cf(&sys, &entry).expect("get").is_some(), "the entry is where the layout says");
        raw.delete_cf(&sys, &entry).expect("delete");
    }
    let db = dir.open();
    let acme = TenantName::new("acme").expect("name");
    assert!(db.operator().list_api_keys(&acme).expect("list").is_empty(), "hidden from the list");
    assert!(unauthenticated(db.operator().authenticate(&token)), "and so refused");
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

/// The credential cache (`keycache.rs`): a key that authenticated is checked from memory next time,
/// and every change that makes it refuse reaches a cached key at once, for new authentications and
/// for scopes already minted.
#[test]
fn cached_keys_refuse_at_once_after_expiry_lock_deletion_and_rotation() {
    let dir = TestDir::new();
    let clock = ManualClock::new();
    let db = dir.open_on(&clock);
    tenant(&db, "acme");
    let acme = TenantName::new("acme").expect("name");
    let store = db.operator();
    let issue = |expires_ms| store.issue_api_key(&acme, Role::Reader, "k", expires_ms).expect("issue");
    let cached = |token: &str| {
        let scope = store.authenticate(token).expect("authenticates");
        assert!(store.authenticate_cached(token).is_some(), "a key that authenticated is cached");
        scope
    };

    // Expiry, read from the store's clock on every use.
    let expiring = issue(Some(db.clock().now_ms() + 1_000));
    let held = cached(&expiring.token);
    clock.advance(Duration::from_millis(999));
    assert!(store.authenticate_cached(&expiring.token).is_some(), "not expired yet");
    clock.advance(Duration::from_millis(1));
    assert!(store.authenticate_cached(&expiring.token).is_none());
    assert!(unauthenticated(store.authenticate(&expiring.token)));
    assert!(matches!(db.tenant(&held), Err(QueryError::Storage(StorageError::Unauthenticated))));

    // A wrong secret for a cached key id is not answered from memory, and refused.
    let key = issue(None);
    let held = cached(&key.token);
    let mut wrong = key.token.clone();
    let last = wrong.pop().expect("char");
    wrong.push(if last == '0' { '1' } else { '0' });
    assert!(store.authenticate_cached(&wrong).is_none());
    assert!(unauthenticated(store.authenticate(&wrong)));

    // A lock.
    let uid = held.tenant_uid();
    assert!(store.lock_api_key(uid, &key.key_id, "test").expect("lock"));
    assert!(store.authenticate_cached(&key.token).is_none());
    assert!(matches!(store.authenticate(&key.token), Err(StorageError::KeyLocked)));
    assert!(matches!(db.tenant(&held), Err(QueryError::Storage(StorageError::KeyLocked))));
    assert!(store.unlock_api_key(&acme, &key.key_id).expect("unlock"));
    cached(&key.token);

    // Rotations make every key's next call read its record again (and it still authenticates).
    store.rotate_tenant_key(&acme).expect("rotate");
    assert!(store.authenticate_cached(&key.token).is_none());
    cached(&key.token);
    store.rotate_master_key(MasterKey::generate()).expect("rotate master");
    assert!(store.authenticate_cached(&key.token).is_none());
    let held = cached(&key.token);

    // The tenant's deletion.
    db.delete_tenant(&acme).expect("delete");
    assert!(store.authenticate_cached(&key.token).is_none());
    assert!(unauthenticated(store.authenticate(&key.token)));
    assert!(db.tenant(&held).is_err(), "a scope of a deleted tenant opens nothing");
}

/// A revocation racing calls that authenticate from the cache: once `revoke_api_key` returns, no
/// authentication and no handle of a scope minted before succeeds, whichever path it takes.
#[test]
fn a_revocation_racing_cached_calls_wins_once_it_returns() {
    let dir = TestDir::new();
    let db = Arc::new(dir.open());
    tenant(&db, "acme");
    let acme = TenantName::new("acme").expect("name");
    for round in 0..20 {
        let key = db.operator().issue_api_key(&acme, Role::Reader, "k", None).expect("issue");
        let revoked = Arc::new(AtomicBool::new(false));
        let callers: Vec<_> = (0..2)
            .map(|_| {
                let (db, revoked, token) = (Arc::clone(&db), Arc::clone(&revoked), key.token.clone());
                // Minted before the revocation (scopes are not `Clone`).
                let held = db.operator().authenticate(&token).expect("authenticates");
                std::thread::spawn(move || {
                    let mut after = 0;
                    while after < 50 {
                        let was_revoked = revoked.load(Ordering::SeqCst);
                        let authenticated = db.operator().authenticate(&token);
                        let opened = db.tenant(&held).map(|_| ());
                        if was_revoked {
                            assert!(unauthenticated(authenticated), "round {round}: authenticated after");
                            assert!(opened.is_err(), "round {round}: a held scope opened after");
                            after += 1;
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(2));
        db.operator().revoke_api_key(&acme, &key.key_id).expect("revoke");
        revoked.store(true, Ordering::SeqCst);
        for caller in callers {
            caller.join().expect("caller");
        }
    }
}
