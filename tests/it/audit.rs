//! The audit trail of data operations: every operation that reaches a tenant, and every refusal of a
//! credential that names it, is an event in the tenant's MAC-chained trail, with no tenant data in
//! clear; tampering with stored events at the RocksDB level is found at the first altered event;
//! pruning keeps the rest verifiable.

use crate::util::{TestDir, raw_db, tenant, vector};
use bulkhead_query::{
    Acl, AuditEvent, Database, DocId, ManualClock, Metric, NewPoint, Principal, Role, SearchRequest,
    StorageError, Subject, TenantName, TenantUid,
};
use std::time::Duration;

fn uid(db: &Database, name: &str) -> TenantUid {
    db.operator().tenant_info(&TenantName::new(name).expect("name")).expect("info").uid
}

fn point(id: &str, seed: u64) -> NewPoint {
    NewPoint::new(DocId::new(id).expect("id"), vector(seed, 8), format!("text of {id}"))
}

fn events_after(db: &Database, uid: TenantUid, seq: u64) -> Vec<AuditEvent> {
    db.operator().audit_page(uid, seq, 0, usize::MAX).expect("events").0
}

fn audit_key(uid: TenantUid, seq: u64) -> Vec<u8> {
    [b"audit/".as_slice(), uid.as_bytes(), &seq.to_be_bytes()].concat()
}

/// A tenant with a collection and a few data operations by an API key; returns its uid and the
/// number of events.
fn scenario(db: &Database) -> (TenantUid, u64) {
    let scope = tenant(db, "acme");
    let t = db.tenant(&scope).expect("tenant");
    t.create_collection("secret-collection", 8, Metric::Cosine).expect("create");
    let name = TenantName::new("acme").expect("name");
    let writer = db.operator().issue_api_key(&name, Role::Writer, "w", None).expect("key");
    let scope = db.operator().authenticate(&writer.token).expect("auth");
    let t = db.tenant(&scope).expect("tenant");
    t.upsert("secret-collection", &[point("doc-a", 1), point("doc-b", 2)]).expect("upsert");
    t.search("secret-collection", &vector(1, 8), 2).expect("search");
    t.get("secret-collection", &DocId::new("doc-a").expect("id")).expect("get");
    t.delete("secret-collection", &[DocId::new("doc-b").expect("id")]).expect("delete");
    t.count("secret-collection").expect("count");
    let uid = uid(db, "acme");
    let n = db.operator().audit_verify(uid).expect("verify").events;
    (uid, n)
}

#[test]
fn every_data_operation_is_an_event_with_hashes_not_values() {
    let dir = TestDir::new();
    let db = dir.open();
    let (uid, _) = scenario(&db);
    let events = db.operator().audit_events(uid).expect("events");
    let ops: Vec<(&str, &str)> = events.iter().map(|e| (e.operation.as_str(), e.outcome.as_str())).collect();
    assert_eq!(
        ops,
        [
            ("tenant-created", "ok"),
            ("create-collection", "ok"),
            ("api-key-issued", "ok"),
            ("upsert", "ok"),
            ("search", "ok"),
            ("get", "ok"),
            ("delete", "ok"),
            ("count", "ok"),
        ]
    );
    let op = db.operator();
    let collection = op.audit_subject_hash(uid, Subject::Collection, b"secret-collection");
    let upsert = &events[3];
    assert_eq!(upsert.collection, Some(collection));
    assert_eq!(
        upsert.documents,
        [
            op.audit_subject_hash(uid, Subject::Document, b"doc-a"),
            op.audit_subject_hash(uid, Subject::Document, b"doc-b")
        ]
    );
    let issued_key = events[2].key_id.clone().expect("issued key id");
    assert_eq!(upsert.key_id.as_deref(), Some(issued_key.as_str()), "the event names the key used");
    assert_eq!(upsert.key_generation, Some(1));
    let query: Vec<u8> = vector(1, 8).iter().flat_map(|x| x.to_le_bytes()).collect();
    assert_eq!(events[4].query, Some(op.audit_subject_hash(uid, Subject::Query, &query)));
    // Hashes are per tenant: the same name in another tenant hashes differently.
    tenant(&db, "globex");
    let globex = self::uid(&db, "globex");
    assert_ne!(op.audit_subject_hash(globex, Subject::Collection, b"secret-collection"), collection);
    assert_eq!(op.audit_verify(uid).expect("verify").first_broken, None);
    drop(db);
    // Nothing of what the tenant sent is in the system column family in clear.
    let raw = raw_db(&dir.data());
    let sys = raw.cf_handle("sys").expect("sys");
    for item in raw.iterator_cf(&sys, rocksdb::IteratorMode::Start) {
        let (_, value) = item.expect("iter");
        for marker in [b"secret-collection".as_slice(), b"doc-a", b"doc-b"] {
            assert!(
                !value.windows(marker.len()).any(|w| w == marker),
                "a value in clear in the system column family"
            );
        }
    }
}

#[test]
fn failures_and_refusals_are_events_too() {
    let dir = TestDir::new();
    let db = dir.open();
    let (uid, n) = scenario(&db);
    let name = TenantName::new("acme").expect("name");
    let reader = db.operator().issue_api_key(&name, Role::Reader, "r", None).expect("key");
    let scope = db.operator().authenticate(&reader.token).expect("auth");
    let t = db.tenant(&scope).expect("tenant");
    // A reader cannot write; a missing collection; a bad vector; a user-bound principal misuse.
    assert!(t.upsert("secret-collection", &[point("doc-c", 3)]).is_err());
    assert!(t.search("no-such", &vector(1, 8), 1).is_err());
    assert!(t.search("secret-collection", &[f32::NAN; 8], 1).is_err());
    let alice = Principal::new("alice", Vec::<String>::new()).expect("principal");
    let request = SearchRequest { principal: Some(&alice), ..SearchRequest::top(1) };
    assert!(t.search_request("secret-collection", &vector(1, 8), &request).is_err(), "no on-behalf-of right");
    // A revoked key and a wrong secret for a known key id are refused, and the tenant hears of it.
    db.operator().revoke_api_key(&name, &reader.key_id).expect("revoke");
    assert!(db.operator().authenticate(&reader.token).is_err());
    let wrong = format!("bk_{}_{}", reader.key_id, "00".repeat(32));
    assert!(db.operator().authenticate(&wrong).is_err());
    // An unknown key names no tenant: nothing is recorded anywhere for it.
    assert!(db.operator().authenticate(&format!("bk_{}_{}", "ab".repeat(16), "00".repeat(32))).is_err());
    let events = events_after(&db, uid, n);
    let ops: Vec<(&str, &str)> = events.iter().map(|e| (e.operation.as_str(), e.outcome.as_str())).collect();
    assert_eq!(
        ops,
        [
            ("api-key-issued", "ok"),
            ("upsert", "permission-denied"),
            ("search", "not-found"),
            ("search", "invalid-argument"),
            ("search", "permission-denied"),
            ("api-key-revoked", "ok"),
            ("authenticate", "revoked-key"),
            ("authenticate", "wrong-secret"),
        ]
    );
    assert!(events[1..].iter().all(|e| e.key_id.as_deref() == Some(reader.key_id.as_str())));
    assert_eq!(
        events[4].principal,
        Some(db.operator().audit_subject_hash(uid, Subject::Principal, b"alice"))
    );
    assert_eq!(db.operator().audit_verify(uid).expect("verify").first_broken, None);
}

#[test]
fn user_bound_keys_record_their_user_and_the_trail_outlives_the_tenant() {
    let dir = TestDir::new();
    let db = dir.open();
    let (uid, n) = scenario(&db);
    let name = TenantName::new("acme").expect("name");
    let scope = tenant_scope(&db);
    let mut doc = point("doc-c", 3);
    doc.acl = Acl::Restricted { users: vec!["bob".into()], groups: vec![] };
    db.tenant(&scope).expect("t").upsert("secret-collection", &[doc]).expect("upsert");
    let bound = db
        .operator()
        .issue_bound_api_key(
            &name,
            Role::Reader,
            "bob",
            None,
            bulkhead_query::KeyBinding::User { user: "bob".into(), groups: vec![] },
        )
        .expect("key");
    let scope = db.operator().authenticate(&bound.token).expect("auth");
    db.tenant(&scope).expect("t").search("secret-collection", &vector(3, 8), 1).expect("search");
    let events = events_after(&db, uid, n);
    let search = events.iter().find(|e| e.operation == "search").expect("search event");
    assert_eq!(search.principal, Some(db.operator().audit_subject_hash(uid, Subject::Principal, b"bob")));
    let before = db.operator().audit_verify(uid).expect("verify").events;
    db.delete_tenant(&name).expect("delete");
    let after = db.operator().audit_events(uid).expect("events");
    assert_eq!(after.len() as u64, before + 1);
    assert_eq!(after.last().map(|e| e.operation.as_str()), Some("tenant-deleted"));
    assert!(db.operator().audit_tenants().expect("chains").contains(&uid));
    assert_eq!(db.operator().audit_verify(uid).expect("verify").first_broken, None);
}

#[test]
fn access_audit_can_be_turned_off_but_admin_events_stay() {
    let dir = TestDir::new();
    let db = dir.open().without_access_audit();
    let (uid, _) = scenario(&db);
    let ops: Vec<String> =
        db.operator().audit_events(uid).expect("events").into_iter().map(|e| e.operation).collect();
    assert_eq!(ops, ["tenant-created", "api-key-issued"]);
}

/// The three kinds of tampering an attacker with disk access can do to stored events, each found at
/// the first event it touches.
#[test]
fn tampering_with_stored_events_is_found_at_the_first_broken_one() {
    type Tamper = fn(&rocksdb::DB, TenantUid);
    let edit: Tamper = |raw, uid| {
        let sys = raw.cf_handle("sys").expect("sys");
        let mut value = raw.get_cf(&sys, audit_key(uid, 4)).expect("get").expect("event 4");
        let last = value.len() - 40; // inside the record, before its MAC
        value[last] ^= 1;
        raw.put_cf(&sys, audit_key(uid, 4), value).expect("put");
    };
    let delete: Tamper = |raw, uid| {
        let sys = raw.cf_handle("sys").expect("sys");
        raw.delete_cf(&sys, audit_key(uid, 4)).expect("delete");
    };
    let reorder: Tamper = |raw, uid| {
        let sys = raw.cf_handle("sys").expect("sys");
        let a = raw.get_cf(&sys, audit_key(uid, 4)).expect("get").expect("4");
        let b = raw.get_cf(&sys, audit_key(uid, 5)).expect("get").expect("5");
        raw.put_cf(&sys, audit_key(uid, 4), b).expect("put");
        raw.put_cf(&sys, audit_key(uid, 5), a).expect("put");
    };
    let truncate: Tamper = |raw, uid| {
        // Removing the newest events is not detectable from the chain alone; removing the oldest is.
        let sys = raw.cf_handle("sys").expect("sys");
        raw.delete_cf(&sys, audit_key(uid, 0)).expect("delete");
    };
    for (what, tamper, broken) in
        [("edit", edit, 4), ("delete", delete, 4), ("reorder", reorder, 4), ("drop the first", truncate, 0)]
    {
        let dir = TestDir::new();
        let uid = {
            let db = dir.open();
            let (uid, n) = scenario(&db);
            assert!(n > 6);
            assert_eq!(db.operator().audit_verify(uid).expect("verify").first_broken, None);
            uid
        };
        {
            let raw = raw_db(&dir.data());
            tamper(&raw, uid);
            raw.flush_wal(true).expect("flush");
        }
        let db = dir.open();
        assert_eq!(db.operator().audit_verify(uid).expect("verify").first_broken, Some(broken), "{what}");
    }
}

#[test]
fn pruning_leaves_a_checkpoint_that_keeps_the_rest_verifiable() {
    let dir = TestDir::new();
    let clock = ManualClock::new();
    let (uid, total) = {
        let db = dir.open_on(&clock);
        let (uid, n) = scenario(&db);
        clock.advance(Duration::from_millis(20));
        let cut = db.clock().now_ms();
        clock.advance(Duration::from_millis(20));
        let scope = tenant_scope(&db);
        db.tenant(&scope).expect("t").count("secret-collection").expect("count");
        db.tenant(&scope).expect("t").count("secret-collection").expect("count");
        let op = db.operator();
        assert_eq!(op.audit_prune(uid, cut).expect("prune"), n);
        let check = op.audit_verify(uid).expect("verify");
        assert_eq!((check.events, check.first_seq, check.first_broken), (2, n, None));
        assert_eq!(events_after(&db, uid, 0).first().map(|e| e.seq), Some(n));
        // Appending after a prune continues the chain; pruning everything keeps the newest event.
        db.tenant(&scope).expect("t").count("secret-collection").expect("count");
        assert_eq!(op.audit_prune(uid, u64::MAX).expect("prune"), 2);
        let check = op.audit_verify(uid).expect("verify");
        assert_eq!((check.events, check.first_seq, check.first_broken), (1, n + 2, None));
        (uid, n + 3)
    };
    // Reopened, the chain still verifies and appends where it ended.
    {
        let db = dir.open_on(&clock);
        let scope = tenant_scope(&db);
        db.tenant(&scope).expect("t").count("secret-collection").expect("count");
        let check = db.operator().audit_verify(uid).expect("verify");
        assert_eq!((check.events, check.first_broken), (2, None));
        assert_eq!(events_after(&db, uid, 0).last().map(|e| e.seq), Some(total));
    }
    // A forged checkpoint (moved forward to hide events) does not verify.
    {
        let raw = raw_db(&dir.data());
        let sys = raw.cf_handle("sys").expect("sys");
        let key = [b"auditck/".as_slice(), uid.as_bytes()].concat();
        let mut value = raw.get_cf(&sys, &key).expect("get").expect("checkpoint");
        value[0] = value[0].wrapping_add(1); // first_seq
        raw.put_cf(&sys, &key, value).expect("put");
        raw.flush_wal(true).expect("flush");
    }
    let db = dir.open();
    assert!(db.operator().audit_verify(uid).expect("verify").first_broken.is_some());
}

fn tenant_scope(db: &Database) -> bulkhead_query::TenantScope {
    db.operator().trusted_host_scope(&TenantName::new("acme").expect("name"), "test").expect("scope")
}

/// A tenant's policy: versioned, changed only by the operator with a note in the trail, enforced on
/// every operation, and named in every access event and search hit.
#[test]
fn a_versioned_policy_is_enforced_and_named_in_events_and_hits() {
    use bulkhead_query::TenantPolicy;
    let dir = TestDir::new();
    let name = TenantName::new("acme").expect("name");
    let (uid, reader, writer) = {
        let db = dir.open();
        let (uid, _) = scenario(&db);
        let op = db.operator();
        assert_eq!(op.policy(&name).expect("policy").version, 0);
        let policy = TenantPolicy {
            denied: vec![(Role::Reader, "count".to_owned())],
            max_k: Some(5),
            source_uri_prefixes: vec!["https://wiki.example/".to_owned()],
            ..TenantPolicy::default()
        };
        assert_eq!(op.set_policy(&name, policy.clone(), 0, "readers may not count").expect("set"), 1);
        // An edit from a stale version is refused and changes nothing.
        assert!(op.set_policy(&name, TenantPolicy::default(), 0, "stale").is_err());
        // A deny list naming no operation (a typo) would deny nothing: it is refused, and says which
        // operations exist.
        let typo = TenantPolicy { denied: vec![(Role::Reader, "serch".to_owned())], ..policy.clone() };
        match op.set_policy(&name, typo, 1, "typo") {
            Err(StorageError::InvalidArgument { field: "policy", reason }) => {
                assert!(
                    reason.contains("\"serch\" is not an operation") && reason.contains("search"),
                    "{reason}"
                );
            }
            other => panic!("a typo must be refused: {other:?}"),
        }
        assert_eq!(op.policy(&name).expect("policy").policy, policy);
        let changed =
            op.audit_events(uid).expect("events").into_iter().filter(|e| e.operation == "policy-changed");
        let changed: Vec<_> = changed.map(|e| (e.policy_version, e.note)).collect();
        assert_eq!(changed, [(Some(1), Some("readers may not count".to_owned()))]);
        let reader = op.issue_api_key(&name, Role::Reader, "r", None).expect("key").token;
        let writer = op.issue_api_key(&name, Role::Writer, "w", None).expect("key").token;
        (uid, reader, writer)
    };
    // After a restart the policy is still in force.
    let db = dir.open();
    let seq = db.operator().audit_verify(uid).expect("verify").events;
    let as_reader = db.operator().authenticate(&reader).expect("auth");
    let as_writer = db.operator().authenticate(&writer).expect("auth");
    let (r, w) = (db.tenant(&as_reader).expect("t"), db.tenant(&as_writer).expect("t"));
    assert!(r.count("secret-collection").is_err(), "denied to readers");
    assert_eq!(w.count("secret-collection").expect("writers may"), 1);
    assert!(r.search("secret-collection", &vector(1, 8), 6).is_err(), "k above the policy's 5");
    let hits = r.search("secret-collection", &vector(1, 8), 5).expect("k at the policy's limit");
    assert!(hits.iter().all(|h| h.policy_version == 1));
    assert!(w.upsert("secret-collection", &[point("doc-x", 9)]).is_err(), "no source URI");
    let mut sourced = point("doc-y", 10);
    sourced.source_uri = Some("https://wiki.example/page".to_owned());
    w.upsert("secret-collection", &[sourced]).expect("a source URI under the prefix");
    let events = events_after(&db, uid, seq);
    let seen: Vec<(&str, &str, Option<u64>)> =
        events.iter().map(|e| (e.operation.as_str(), e.outcome.as_str(), e.policy_version)).collect();
    assert_eq!(
        seen,
        [
            ("count", "permission-denied", Some(1)),
            ("count", "ok", Some(1)),
            ("search", "invalid-argument", Some(1)),
            ("search", "ok", Some(1)),
            ("upsert", "permission-denied", Some(1)),
            ("upsert", "ok", Some(1)),
        ]
    );
    assert_eq!(db.operator().audit_verify(uid).expect("verify").first_broken, None);
}

fn raw_delete(dir: &TestDir, keys: &[Vec<u8>]) {
    let raw = raw_db(&dir.data());
    let sys = raw.cf_handle("sys").expect("sys");
    for key in keys {
        raw.delete_cf(&sys, key).expect("delete");
    }
    raw.flush_wal(true).expect("flush");
}

fn keyed(prefix: &[u8], uid: TenantUid) -> Vec<u8> {
    [prefix, uid.as_bytes().as_slice()].concat()
}

/// Removing events from the end of a chain, or a chain's anchor, is found: each chain's anchor
/// (written with every event) names where it ends.
#[test]
fn truncating_a_chain_or_removing_its_anchor_is_found() {
    let dir = TestDir::new();
    let (uid, n) = {
        let db = dir.open();
        let (uid, n) = scenario(&db);
        assert_eq!(db.operator().audit_verify(uid).expect("verify").first_broken, None);
        (uid, n)
    };
    // The last two events go.
    raw_delete(&dir, &[audit_key(uid, n - 1), audit_key(uid, n - 2)]);
    {
        let db = dir.open();
        let check = db.operator().audit_verify(uid).expect("verify");
        assert_eq!((check.first_broken, check.reason), (Some(n - 2), Some("truncated")), "{check:?}");
        assert_eq!(check.events, n - 2);
        // Appending would hide the cut: an append goes on from the anchor, so the gap stays visible.
        let scope =
            db.operator().trusted_host_scope(&TenantName::new("acme").expect("name"), "t").expect("s");
        db.tenant(&scope).expect("t").count("secret-collection").expect("count");
        let check = db.operator().audit_verify(uid).expect("verify");
        assert_eq!((check.first_broken, check.reason), (Some(n - 2), Some("sequence")), "{check:?}");
    }
    // Without its anchor, an intact chain is reported broken, and nothing more is appended to it:
    // an operation that cannot leave its event does not run.
    let dir = TestDir::new();
    let uid = scenario(&dir.open()).0;
    raw_delete(&dir, &[keyed(b"audithead/", uid)]);
    let db = dir.open();
    let check = db.operator().audit_verify(uid).expect("verify");
    assert_eq!(check.reason, Some("anchor"), "{check:?}");
    let scope = db.operator().trusted_host_scope(&TenantName::new("acme").expect("name"), "t").expect("s");
    let refused = db.tenant(&scope).expect("t").count("secret-collection");
    assert!(
        matches!(refused, Err(bulkhead_query::QueryError::Storage(StorageError::Integrity))),
        "{refused:?}"
    );
}

/// A whole chain removed (events, checkpoint, anchor and registration) is found by the directory
/// check: the number of registered chains is authenticated.
#[test]
fn removing_a_whole_chain_is_found() {
    let dir = TestDir::new();
    let (uid, n, other) = {
        let db = dir.open();
        let (uid, n) = scenario(&db);
        let other = tenant(&db, "other").tenant_uid();
        let op = db.operator();
        assert_eq!(op.audit_prune(uid, u64::MAX).expect("prune"), n - 1, "a checkpoint exists too");
        let directory = op.audit_directory_check().expect("directory");
        assert!(directory.intact(), "{directory:?}");
        assert_eq!(directory.registered, 2);
        (uid, n, other)
    };
    // Everything of acme's chain goes, as an attacker with the disk would remove it.
    let mut keys: Vec<Vec<u8>> = (0..n).map(|seq| audit_key(uid, seq)).collect();
    keys.extend([b"auditck/".as_slice(), b"audithead/", b"auditreg/"].map(|p| keyed(p, uid)));
    raw_delete(&dir, &keys);
    let db = dir.open();
    let op = db.operator();
    assert!(!op.audit_tenants().expect("chains").contains(&uid), "the chain is gone from the listing");
    let directory = op.audit_directory_check().expect("directory");
    assert!(!directory.intact(), "{directory:?}");
    assert_eq!((directory.registered, directory.expected), (1, Some(2)));
    assert_eq!(op.audit_verify(other).expect("verify").first_broken, None, "the other chain is intact");

    // Without its registration removed, the emptied chain itself is reported.
    let dir = TestDir::new();
    let (uid, n) = scenario(&dir.open());
    let mut keys: Vec<Vec<u8>> = (0..n).map(|seq| audit_key(uid, seq)).collect();
    keys.extend([b"audithead/".as_slice()].map(|p| keyed(p, uid)));
    raw_delete(&dir, &keys);
    let check = dir.open().operator().audit_verify(uid).expect("verify");
    assert_eq!((check.events, check.first_broken, check.reason), (0, Some(0), Some("anchor")), "{check:?}");
}

/// A write and its access event are one atomic batch: when the event cannot be written (the
/// chain's anchor was altered on disk), the write does not happen either.
#[test]
fn a_write_whose_event_cannot_be_written_does_not_happen() {
    let dir = TestDir::new();
    let uid = {
        let db = dir.open();
        let (uid, _) = scenario(&db);
        uid
    };
    {
        let raw = raw_db(&dir.data());
        let sys = raw.cf_handle("sys").expect("sys");
        let key = keyed(b"audithead/", uid);
        let mut anchor = raw.get_cf(&sys, &key).expect("get").expect("anchor");
        anchor[0] ^= 1;
        raw.put_cf(&sys, &key, anchor).expect("put");
        raw.flush_wal(true).expect("flush");
    }
    let db = dir.open();
    let scope = db.operator().trusted_host_scope(&TenantName::new("acme").expect("name"), "t").expect("s");
    let t = db.tenant(&scope).expect("t");
    let before = t.count("secret-collection");
    assert!(before.is_err(), "reads need their event too");
    let written = t.upsert("secret-collection", &[point("doc-new", 9)]);
    assert!(
        matches!(written, Err(bulkhead_query::QueryError::Storage(StorageError::Integrity))),
        "{written:?}"
    );
    // Read back without the audit trail (as a host that keeps its own would): nothing was written.
    db.set_access_audit(false);
    let t = db.tenant(&scope).expect("t");
    assert_eq!(t.count("secret-collection").expect("count"), 1);
    assert!(t.get("secret-collection", &DocId::new("doc-new").expect("id")).expect("get").is_none());
}

/// A known key id presented with a wrong secret over and over leaves at most one event per
/// `REFUSAL_EVENT_EVERY`, and the next event says how many refusals it stands for.
#[test]
fn repeated_refusals_of_one_key_are_folded_into_few_events() {
    let dir = TestDir::new();
    let clock = ManualClock::new();
    let db = dir.open_on(&clock);
    let (uid, n) = scenario(&db);
    let key = db
        .operator()
        .issue_api_key(&TenantName::new("acme").expect("name"), Role::Reader, "r", None)
        .expect("key");
    let (prefix, _) = key.token.rsplit_once('_').expect("token");
    let wrong = format!("{prefix}_{}", "00".repeat(32));
    // A thousand refusals spread over half a window.
    let presented = 1000u64;
    for _ in 0..presented {
        assert!(matches!(db.operator().authenticate(&wrong), Err(StorageError::Unauthenticated)));
        clock.advance(bulkhead_query::REFUSAL_EVENT_EVERY / 2 / presented as u32);
    }
    let refusals = |db: &Database| -> Vec<AuditEvent> {
        events_after(db, uid, n).into_iter().filter(|e| e.operation == "authenticate").collect()
    };
    assert_eq!(refusals(&db).len(), 1, "one event, the first refusal's, for {presented} refusals");
    clock.advance(bulkhead_query::REFUSAL_EVENT_EVERY);
    assert!(db.operator().authenticate(&wrong).is_err());
    let events = refusals(&db);
    assert_eq!(events.len(), 2, "the next window's first refusal writes the next event");
    let last = events.last().expect("an event");
    assert_eq!(last.outcome, "wrong-secret");
    let folded: u64 = events
        .iter()
        .filter_map(|e| e.note.as_deref())
        .map(|note| note.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).expect("a count"))
        .sum();
    assert_eq!(folded + events.len() as u64, presented + 1, "every refusal is accounted for");
    assert_eq!(db.operator().audit_verify(uid).expect("verify").first_broken, None);
}
