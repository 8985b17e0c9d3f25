//! Unit tests of the storage quotas: each at its boundary, refusals that change nothing, the bytes a
//! replacement, a delete and a drop charge or release, a policy over the default, and the counters
//! of a tenant written before they existed.

use crate::layout::{self, Kind, PointPayloadRecord};
use crate::{
    Acl, CollectionInfo, CollectionName, DocId, Metric, NewPoint, StorageError, StorageQuotas, Store,
    StoreOptions, TenantHandle, TenantName, TenantPolicy, TenantQuotas, TenantUsage,
};
use bulkhead_crypto::MasterKey;
use std::collections::BTreeMap;
use std::path::PathBuf;

const DIM: usize = 4;

/// A store in a temporary directory, reopenable under the same master key.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        MasterKey::generate().write_new_file(&dir.path().join("key")).expect("key");
        Fixture { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    fn open_with(&self, default_quotas: StorageQuotas) -> Store {
        let master = MasterKey::from_file(&self.dir.path().join("key")).expect("key");
        Store::open(&self.path(), master, StoreOptions { default_quotas, ..StoreOptions::default() })
            .expect("open")
    }

    fn open(&self) -> Store {
        self.open_with(StorageQuotas::default())
    }
}

fn tenant<'s>(store: &'s Store, name: &str) -> TenantHandle<'s> {
    let name = TenantName::new(name).expect("name");
    if store.tenant_info(&name).is_err() {
        store.create_tenant(&name).expect("tenant");
    }
    store.tenant(&store.trusted_host_scope(&name, "test").expect("scope")).expect("handle")
}

fn set_quotas(store: &Store, name: &str, quotas: TenantQuotas) {
    let name = TenantName::new(name).expect("name");
    let version = store.policy(store.tenant_info(&name).expect("info").uid).expect("policy").version;
    let policy = TenantPolicy { quotas, ..TenantPolicy::default() };
    store.set_policy(&name, policy, version, "quota test").expect("set policy");
}

fn collection(handle: &TenantHandle<'_>, name: &str) -> CollectionInfo {
    let name = CollectionName::new(name).expect("name");
    match handle.collection(&name) {
        Ok(info) => info,
        Err(_) => handle.create_collection(&name, DIM, Metric::L2).expect("create"),
    }
}

fn point(id: &str, text_len: usize) -> NewPoint {
    NewPoint::new(DocId::new(id).expect("id"), vec![0.5; DIM], "t".repeat(text_len))
}

/// What `point` stores, written at `version`: its vector's 4 bytes a dimension plus its encoded
/// payload record, computed here from the layout, independently of the counters.
fn bytes_of(point: &NewPoint, version: u64) -> u64 {
    let record = PointPayloadRecord {
        id: point.id.as_str().to_owned(),
        text: point.text.clone(),
        metadata: point.metadata.clone(),
        source_uri: point.source_uri.clone(),
        acl: point.acl.clone(),
        version,
    };
    (4 * point.vector.len() + layout::encode(&record).len()) as u64
}

/// Everything a refused write must leave as it was.
#[derive(Debug, PartialEq)]
struct Observed {
    usage: TenantUsage,
    sequence: u64,
    counts: BTreeMap<String, u64>,
    points: Vec<Option<(String, Vec<f32>)>>,
}

fn observe(handle: &TenantHandle<'_>, ids: &[&str]) -> Observed {
    let mut counts = BTreeMap::new();
    let mut points = Vec::new();
    for info in handle.list_collections().expect("list") {
        counts.insert(info.name.as_str().to_owned(), handle.count(&info).expect("count"));
        for id in ids {
            let got = handle.get(&info, &DocId::new(*id).expect("id")).expect("get");
            points.push(got.map(|p| (p.payload.text, p.vector)));
        }
    }
    Observed { usage: handle.usage().expect("usage"), sequence: handle.write_sequence(), counts, points }
}

/// The counters agree with a count of the stored records.
fn assert_counted(handle: &TenantHandle<'_>) {
    assert_eq!(handle.usage().expect("usage"), handle.recount_usage().expect("recount"));
}

fn refused(result: Result<impl std::fmt::Debug, StorageError>, quota: &str, limit: u64) {
    match result {
        Err(StorageError::QuotaExceeded { quota: q, limit: l }) => assert_eq!((q, l), (quota, limit)),
        other => panic!("expected QuotaExceeded {{ {quota}, {limit} }}, got {other:?}"),
    }
}

#[test]
fn max_vectors_at_its_boundary() {
    let fixture = Fixture::new();
    let store = fixture.open();
    let t = tenant(&store, "acme");
    set_quotas(&store, "acme", TenantQuotas { max_vectors: Some(3), ..TenantQuotas::default() });
    let docs = collection(&t, "docs");
    let other = collection(&t, "other");
    t.upsert(&docs, &[point("a", 1), point("b", 1)]).expect("two");
    // The quota is the tenant's, over all its collections: the third point, in another, is exactly
    // at the limit.
    t.upsert(&other, &[point("c", 1)]).expect("exactly at the limit");
    assert_eq!(t.usage().expect("usage").points, 3);
    let ids = ["a", "b", "c", "d", "e"];
    let before = observe(&t, &ids);
    refused(t.upsert(&docs, &[point("d", 1)]), "max_vectors", 3);
    // A batch that replaces one point and adds another is refused whole.
    refused(t.upsert(&docs, &[point("a", 9), point("e", 1)]), "max_vectors", 3);
    assert_eq!(observe(&t, &ids), before, "a refused write changes nothing");
    // Replacements add no point: at the limit they pass, and so does an id twice in one batch.
    t.upsert(&docs, &[point("a", 2), point("b", 2), point("b", 3)]).expect("replacements");
    assert_eq!(t.usage().expect("usage").points, 3);
    // A delete makes room for exactly one more.
    assert_eq!(t.delete(&docs, &[DocId::new("a").expect("id")]).expect("delete").len(), 1);
    t.upsert(&docs, &[point("d", 1)]).expect("room again");
    refused(t.upsert(&docs, &[point("e", 1)]), "max_vectors", 3);
    assert_counted(&t);
}

#[test]
fn max_stored_bytes_at_its_boundary() {
    let fixture = Fixture::new();
    let store = fixture.open();
    let t = tenant(&store, "acme");
    let docs = collection(&t, "docs");
    // Points "a" and "b" of ten text bytes each, at versions below 128 (a one-byte varint): the
    // same number of bytes each.
    let one = bytes_of(&point("a", 10), 1);
    assert_eq!(one, bytes_of(&point("b", 10), 2));
    set_quotas(&store, "acme", TenantQuotas { max_stored_bytes: Some(2 * one), ..TenantQuotas::default() });
    t.upsert(&docs, &[point("a", 10)]).expect("one");
    assert_eq!(t.usage().expect("usage").stored_bytes, one, "a point's bytes are its vector and payload");
    t.upsert(&docs, &[point("b", 10)]).expect("exactly at the limit");
    assert_eq!(t.usage().expect("usage").stored_bytes, 2 * one);
    let ids = ["a", "b", "c"];
    let before = observe(&t, &ids);
    refused(t.upsert(&docs, &[point("c", 0)]), "max_stored_bytes", 2 * one);
    // A replacement by a larger payload is charged the difference: one byte more is too much.
    refused(t.upsert(&docs, &[point("b", 11)]), "max_stored_bytes", 2 * one);
    assert_eq!(observe(&t, &ids), before, "a refused write changes nothing");
    // By a smaller one, it is credited the difference, which a larger one may then use.
    t.upsert(&docs, &[point("b", 4)]).expect("smaller");
    assert_eq!(t.usage().expect("usage").stored_bytes, 2 * one - 6);
    t.upsert(&docs, &[point("a", 16)]).expect("larger, exactly at the limit again");
    assert_eq!(t.usage().expect("usage").stored_bytes, 2 * one);
    assert_counted(&t);
}

#[test]
fn max_collections_at_its_boundary() {
    let fixture = Fixture::new();
    let store = fixture.open();
    let t = tenant(&store, "acme");
    set_quotas(&store, "acme", TenantQuotas { max_collections: Some(2), ..TenantQuotas::default() });
    let first = collection(&t, "one");
    collection(&t, "two");
    let name = CollectionName::new("three").expect("name");
    let before = observe(&t, &[]);
    refused(t.create_collection(&name, DIM, Metric::L2), "max_collections", 2);
    assert_eq!(observe(&t, &[]), before);
    assert!(matches!(t.collection(&name), Err(StorageError::NotFound { .. })));
    assert_eq!(t.usage().expect("usage").collections, 2);
    t.drop_collection(&first).expect("drop");
    t.create_collection(&name, DIM, Metric::L2).expect("room again");
    assert_eq!(t.usage().expect("usage").collections, 2);
}

#[test]
fn replacements_deletes_and_drops_charge_and_release_exactly() {
    let fixture = Fixture::new();
    let store = fixture.open();
    let t = tenant(&store, "acme");
    let docs = collection(&t, "docs");
    let other = collection(&t, "other");
    let p = |id: &str, text: usize, meta: bool| {
        let mut p = point(id, text);
        if meta {
            p.metadata.insert("lang".into(), crate::MetaValue::Keyword("en".into()));
            p.source_uri = Some("https://example.com/doc".into());
            p.acl = Acl::Restricted { users: vec!["u1".into()], groups: vec!["g1".into()] };
        }
        p
    };
    t.upsert(&docs, &[p("a", 10, false)]).expect("a");
    let a1 = bytes_of(&p("a", 10, false), 1);
    assert_eq!(t.usage().expect("usage"), TenantUsage { points: 1, stored_bytes: a1, collections: 2 });
    // Replaced by a larger payload (metadata, a source, an ACL): charged the difference.
    t.upsert(&docs, &[p("a", 100, true)]).expect("larger");
    let a2 = bytes_of(&p("a", 100, true), 2);
    assert!(a2 > a1);
    assert_eq!(t.usage().expect("usage").stored_bytes, a2);
    // An id twice in a batch is charged for its last version only.
    t.upsert(&docs, &[p("b", 50, false), p("b", 5, false)]).expect("b twice");
    let b = bytes_of(&p("b", 5, false), 4);
    assert_eq!(t.usage().expect("usage"), TenantUsage { points: 2, stored_bytes: a2 + b, collections: 2 });
    t.upsert(&other, &[p("a", 20, false), p("c", 30, true)]).expect("other");
    let others = bytes_of(&p("a", 20, false), 5) + bytes_of(&p("c", 30, true), 6);
    assert_eq!(t.usage().expect("usage").stored_bytes, a2 + b + others);
    assert_counted(&t);
    // A delete releases what the point held; an id that does not exist releases nothing.
    let ids = [DocId::new("a").expect("id"), DocId::new("nope").expect("id")];
    assert_eq!(t.delete(&docs, &ids).expect("delete").len(), 1);
    assert_eq!(
        t.usage().expect("usage"),
        TenantUsage { points: 3, stored_bytes: b + others, collections: 2 }
    );
    assert_counted(&t);
    // A drop releases the collection's points and bytes.
    t.drop_collection(&other).expect("drop");
    assert_eq!(t.usage().expect("usage"), TenantUsage { points: 1, stored_bytes: b, collections: 1 });
    assert_counted(&t);
    t.delete(&docs, &[DocId::new("b").expect("id")]).expect("delete");
    assert_eq!(t.usage().expect("usage"), TenantUsage { points: 0, stored_bytes: 0, collections: 1 });
    // The counters survive a reopen.
    t.upsert(&docs, &[p("d", 7, true)]).expect("d");
    let expected = t.usage().expect("usage");
    drop(t);
    drop(store);
    let store = fixture.open();
    let t = tenant(&store, "acme");
    assert_eq!(t.usage().expect("usage"), expected);
    assert_counted(&t);
}

#[test]
fn a_policy_overrides_the_default_for_its_tenant_only() {
    let fixture = Fixture::new();
    let defaults = StorageQuotas { max_vectors: 2, max_stored_bytes: 1 << 20, max_collections: 1 };
    let store = fixture.open_with(defaults);
    let a = tenant(&store, "acme");
    let b = tenant(&store, "bravo");
    set_quotas(&store, "acme", TenantQuotas { max_vectors: Some(4), ..TenantQuotas::default() });
    assert_eq!(a.quotas(), StorageQuotas { max_vectors: 4, ..defaults });
    assert_eq!(b.quotas(), defaults);
    let (docs_a, docs_b) = (collection(&a, "docs"), collection(&b, "docs"));
    a.upsert(&docs_a, &[point("1", 1), point("2", 1), point("3", 1), point("4", 1)]).expect("four");
    refused(a.upsert(&docs_a, &[point("5", 1)]), "max_vectors", 4);
    // The default, which acme's policy does not set, still holds for it.
    refused(
        a.create_collection(&CollectionName::new("more").expect("n"), DIM, Metric::L2),
        "max_collections",
        1,
    );
    // bravo has the defaults, and acme's usage is not its own.
    b.upsert(&docs_b, &[point("1", 1), point("2", 1)]).expect("two");
    refused(b.upsert(&docs_b, &[point("3", 1)]), "max_vectors", 2);
    assert_eq!(a.usage().expect("usage").points, 4);
    assert_eq!(b.usage().expect("usage").points, 2);
    // Lowered below what acme stores: growing is refused, shrinking and deleting are not.
    set_quotas(&store, "acme", TenantQuotas { max_vectors: Some(1), ..TenantQuotas::default() });
    refused(a.upsert(&docs_a, &[point("5", 1)]), "max_vectors", 1);
    a.upsert(&docs_a, &[point("1", 0)]).expect("a replacement adds no point");
    a.delete(&docs_a, &[DocId::new("2").expect("id")]).expect("delete");
    assert_eq!(a.usage().expect("usage").points, 3);
}

#[test]
fn defaults_past_the_global_collection_limit_are_refused_at_open() {
    let fixture = Fixture::new();
    let master = MasterKey::generate();
    let default_quotas = StorageQuotas { max_collections: 1025, ..StorageQuotas::default() };
    let options = StoreOptions { default_quotas, ..StoreOptions::default() };
    let error = Store::open(&fixture.path(), master, options).expect_err("refused");
    assert!(matches!(error, StorageError::InvalidArgument { .. }), "{error}");
    assert!(error.to_string().contains("1024"), "{error}");
}

#[test]
fn the_refusal_names_the_quota_and_its_limit_and_nothing_else() {
    let message = StorageError::QuotaExceeded { quota: "max_stored_bytes", limit: 1234 }.to_string();
    assert!(message.contains("max_stored_bytes") && message.contains("1234"), "{message}");
    assert!(message.contains("policy") && message.contains("default"), "{message}");
    assert_eq!(
        StorageError::QuotaExceeded { quota: "max_vectors", limit: 1 }.reason_code(),
        "quota-exceeded"
    );
}

/// Removes a tenant's usage records, as a directory written before they existed lacks them.
fn forget_counters(store: &Store, handle: &TenantHandle<'_>) {
    let keys = &handle.state.keys;
    let mut removed = vec![keys.singleton(Kind::Usage)];
    for info in handle.list_collections().expect("list") {
        removed.push(keys.collection_bytes(info.number()));
    }
    for key in removed {
        store.db.delete(&handle.cf().expect("cf"), &key).expect("delete");
    }
}

fn stored_usage_record(store: &Store, handle: &TenantHandle<'_>) -> Option<Vec<u8>> {
    store.db.get(&handle.cf().expect("cf"), handle.state.keys.singleton(Kind::Usage)).expect("get")
}

#[test]
fn a_tenant_without_counters_gets_them_counted_on_its_first_write() {
    let fixture = Fixture::new();
    let expected;
    {
        let store = fixture.open();
        let t = tenant(&store, "acme");
        let (docs, other, third) = (collection(&t, "docs"), collection(&t, "other"), collection(&t, "third"));
        t.upsert(&docs, &[point("a", 10), point("b", 20)]).expect("docs");
        t.upsert(&other, &[point("a", 30), point("c", 40), point("d", 0)]).expect("other");
        t.upsert(&third, &[point("e", 3)]).expect("third");
        expected = t.usage().expect("usage");
        assert_eq!(expected.points, 6);
        forget_counters(&store, &t);
    }
    let store = fixture.open();
    let t = tenant(&store, "acme");
    // Read: counted from the records, nothing written.
    assert_eq!(t.usage().expect("usage"), expected);
    assert_eq!(stored_usage_record(&store, &t), None);
    // A quota is checked against the counted usage.
    set_quotas(&store, "acme", TenantQuotas { max_vectors: Some(6), ..TenantQuotas::default() });
    let docs = collection(&t, "docs");
    refused(t.upsert(&docs, &[point("z", 1)]), "max_vectors", 6);
    assert_eq!(stored_usage_record(&store, &t), None, "a refused write stores nothing");
    // The first write stores the counters, every collection's included: a later drop of another
    // collection releases exactly what it holds.
    t.delete(&docs, &[DocId::new("a").expect("id")]).expect("delete");
    assert!(stored_usage_record(&store, &t).is_some());
    assert_counted(&t);
    let other = collection(&t, "other");
    t.drop_collection(&other).expect("drop");
    assert_counted(&t);
    assert_eq!(t.usage().expect("usage").points, 2);
    drop(t);
    drop(store);
    let store = fixture.open();
    let t = tenant(&store, "acme");
    assert_counted(&t);
    // A drop may be the first write too.
    forget_counters(&store, &t);
    drop(t);
    drop(store);
    let store = fixture.open();
    let t = tenant(&store, "acme");
    t.drop_collection(&collection(&t, "third")).expect("drop");
    assert_eq!(t.usage().expect("usage").points, 1);
    assert_counted(&t);
}

#[test]
fn a_key_rotation_keeps_the_counters_true() {
    let fixture = Fixture::new();
    let store = fixture.open();
    let t = tenant(&store, "acme");
    let docs = collection(&t, "docs");
    t.upsert(&docs, &(0..40).map(|i| point(&format!("p{i}"), i)).collect::<Vec<_>>()).expect("upsert");
    let before = t.usage().expect("usage");
    let name = TenantName::new("acme").expect("name");
    store.rotate_tenant_key(&name).expect("rotate");
    let uid = t.tenant_uid();
    while store.rotation_step(uid, 7).expect("step").is_some() {}
    assert_eq!(t.usage().expect("usage"), before);
    assert_counted(&t);
}
