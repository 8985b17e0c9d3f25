//! Storage quotas through the embedded API, over a real data directory: a refused write leaves the
//! search state as it was, one tenant's quota is not another's, and the usage counters equal a
//! count of the stored records after writers are killed (`kill -9`) mid-write. (Each quota at its
//! boundary, replacements, deletes and drops: `crates/bulkhead-storage/src/quota/tests.rs`; a
//! tenant written before the counters: `golden.rs`; over gRPC: the server's `tests/it/quotas.rs`.)

use crate::util::{TestDir, crash_child, tenant, vector};
use bulkhead_query::{
    DocId, Metric, NewPoint, QueryError, StorageError, StorageQuotas, StoreOptions, TenantName, TenantPolicy,
    TenantQuotas,
};
use bulkhead_tests::crash::Workload;

fn over_quota(result: Result<impl std::fmt::Debug, QueryError>, quota: &str, limit: u64) {
    match result {
        Err(QueryError::Storage(StorageError::QuotaExceeded { quota: q, limit: l })) => {
            assert_eq!((q, l), (quota, limit));
        }
        other => panic!("expected {quota} {limit} exceeded, got {other:?}"),
    }
}

#[test]
fn a_refused_write_leaves_the_search_state_and_other_tenants_alone() {
    let dir = TestDir::new();
    let db = bulkhead_query::Database::open(
        &dir.data(),
        dir.master(),
        StoreOptions {
            default_quotas: StorageQuotas { max_vectors: 3, ..StorageQuotas::default() },
            ..StoreOptions::default()
        },
    )
    .expect("open");
    let (a, b) = (tenant(&db, "acme"), tenant(&db, "bravo"));
    let (a, b) = (db.tenant(&a).expect("acme"), db.tenant(&b).expect("bravo"));
    let point = |i: u64| NewPoint::new(DocId::new(format!("p{i}")).expect("id"), vector(i, 8), "text");
    for t in [&a, &b] {
        t.create_collection("docs", 8, Metric::L2).expect("collection");
        t.upsert("docs", &[point(0), point(1), point(2)]).expect("at the limit");
    }
    // acme's search state is loaded before the refusal and must not take the refused point in.
    assert_eq!(a.search("docs", &vector(0, 8), 10).expect("search").len(), 3);
    over_quota(a.upsert("docs", &[point(3)]), "max_vectors", 3);
    let hits = a.search("docs", &vector(3, 8), 10).expect("search");
    assert_eq!(hits.len(), 3);
    assert!(hits.iter().all(|h| h.id.as_str() != "p3"));
    assert_eq!(a.count("docs").expect("count"), 3);
    assert!(a.get("docs", &DocId::new("p3").expect("id")).expect("get").is_none());
    // A policy raises acme's quota, and only acme's.
    let policy = TenantPolicy {
        quotas: TenantQuotas { max_vectors: Some(4), ..TenantQuotas::default() },
        ..TenantPolicy::default()
    };
    let name = TenantName::new("acme").expect("name");
    db.operator().set_policy(&name, policy, 0, "more room").expect("policy");
    assert_eq!(a.quotas().max_vectors, 4);
    a.upsert("docs", &[point(3)]).expect("under the new quota");
    assert_eq!(a.search("docs", &vector(3, 8), 1).expect("search")[0].id.as_str(), "p3");
    over_quota(b.upsert("docs", &[point(3)]), "max_vectors", 3);
    assert_eq!((a.usage().expect("usage").points, b.usage().expect("usage").points), (4, 3));

    // A write loads its collection's search state before it is refused: that state is counted in
    // the index memory at once, refused or not.
    let c = tenant(&db, "carol");
    let c = db.tenant(&c).expect("carol");
    c.create_collection("docs", 8, Metric::L2).expect("collection");
    db.set_index_memory_budget(0); // no room: these writes leave the state unloaded
    c.upsert("docs", &[point(0), point(1), point(2)]).expect("at the limit");
    assert!(!c.graph_status("docs").expect("status").loaded);
    db.set_index_memory_budget(usize::MAX);
    over_quota(c.upsert("docs", &[point(3)]), "max_vectors", 3);
    let carol = c.graph_status("docs").expect("status");
    assert!(carol.loaded && carol.memory_bytes > 0, "{carol:?}");
    let held: usize = [&a, &b, &c].iter().map(|t| t.graph_status("docs").expect("status").memory_bytes).sum();
    assert_eq!(db.index_memory(), held);
}

/// The stored usage counters of tenant `name` (read through the storage crate, which can also count
/// the records), checked against a count of its records; returns the points.
fn check_counters(dir: &TestDir, name: &str) -> u64 {
    let store =
        bulkhead_storage::Store::open(&dir.data(), dir.master(), StoreOptions::default()).expect("open");
    let scope = store.trusted_host_scope(&TenantName::new(name).expect("name"), "test").expect("scope");
    let t = store.tenant(&scope).expect("tenant");
    let usage = t.usage().expect("usage");
    assert_eq!(usage, t.recount_usage().expect("recount"), "the counters equal a count of the records");
    let counted: u64 = t.list_collections().expect("list").iter().map(|c| t.count(c).expect("count")).sum();
    assert_eq!(usage.points, counted, "the tenant's points are its collections' counts");
    usage.points
}

#[test]
fn counters_equal_a_recount_after_kill_9_mid_write() {
    let dir = TestDir::new();
    let cf = {
        let db = dir.open();
        tenant(&db, "churny");
        crate::util::cf_name(&db, "churny")
    };
    for round in 0..4u64 {
        let acked = crash_child(&dir, Workload::Churn, round, 40 + 29 * round);
        assert!(!acked.is_empty());
        let points = check_counters(&dir, "churny");
        assert!(points > 0, "round {round}: the workload stores points");
        // The counters checked are the stored ones, not counted anew because they are missing: the
        // tenant's usage record is on disk, and says the same.
        let raw = crate::util::raw_db(&dir.data());
        let stored = crate::util::raw_records(&raw, &cf, b'U');
        assert_eq!(stored.len(), 1, "round {round}: one usage record");
        let value = &stored[0].1;
        assert_eq!(u64::from_be_bytes(value[..8].try_into().expect("8 bytes")), points);
    }
}
