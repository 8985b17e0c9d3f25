//! Isolation tiers (issue 10): a shared-tier tenant lives in the one shared column family under its
//! uid prefix, costs no column family, is deleted with one range delete, and rotates only its own
//! records. (The foundation's no-plaintext, swap and isolation tests run in every tier too:
//! `util::TIERS`.)

use crate::util::{TestDir, place, raw_db, tenant, tenant_records, vector};
use bulkhead_query::{DocId, Metric, NewPoint, Placement, QueryError, StorageError, TenantName};

fn name(n: &str) -> TenantName {
    TenantName::new(n).expect("name")
}

fn points(prefix: &str, n: usize) -> Vec<NewPoint> {
    (0..n)
        .map(|i| {
            let id = DocId::new(format!("{prefix}-{i}")).expect("id");
            NewPoint::new(id, vector(i as u64, 4), format!("{prefix} text {i}"))
        })
        .collect()
}

fn families(dir: &TestDir) -> Vec<String> {
    rocksdb::DB::list_cf(&rocksdb::Options::default(), dir.data()).expect("list")
}

#[test]
fn shared_tenants_cost_no_column_family_and_the_default_tier_is_the_stores() {
    let dir = TestDir::in_tier(Placement::Shared);
    {
        let db = dir.open();
        for i in 0..20 {
            let scope = tenant(&db, &format!("small-{i}"));
            let t = db.tenant(&scope).expect("tenant");
            t.create_collection("docs", 4, Metric::L2).expect("collection");
            t.upsert("docs", &points(&format!("s{i}"), 3)).expect("upsert");
        }
        // An explicit tier outranks the default.
        let big = db.operator().create_tenant_in(&name("big"), Placement::OwnColumnFamily).expect("create");
        assert_eq!(big.placement, Placement::OwnColumnFamily);
        let info = db.operator().tenant_info(&name("small-3")).expect("info");
        assert_eq!(info.placement, Placement::Shared);
        let scope = db.operator().trusted_host_scope(&name("small-3"), "test").expect("scope");
        let hits = db.tenant(&scope).expect("tenant").search("docs", &vector(1, 4), 3).expect("search");
        assert_eq!(hits.len(), 3);
        assert!(hits.iter().all(|h| h.text.starts_with("s3 ")), "only its own points");
    }
    let mut cfs = families(&dir);
    cfs.sort();
    // default, sys, the shared family, and the one partitioned tenant.
    assert_eq!(cfs.len(), 4, "{cfs:?}");
    assert!(cfs.contains(&"shared".to_owned()));
}

#[test]
fn a_shared_tenant_is_deleted_with_one_range_delete_and_its_neighbours_keep_everything() {
    let dir = TestDir::in_tier(Placement::Shared);
    let (gone, kept) = {
        let db = dir.open();
        for who in ["gone", "kept"] {
            let scope = tenant(&db, who);
            let t = db.tenant(&scope).expect("tenant");
            t.create_collection("docs", 4, Metric::L2).expect("collection");
            t.upsert("docs", &points(who, 50)).expect("upsert");
        }
        let (gone, kept) = (place(&db, "gone"), place(&db, "kept"));
        // A handle held across the deletion cannot write after it.
        let scope = db.operator().trusted_host_scope(&name("gone"), "test").expect("scope");
        let held = db.tenant(&scope).expect("tenant");
        db.delete_tenant(&name("gone")).expect("delete");
        let late = held.upsert("docs", &points("late", 1));
        assert!(
            matches!(late, Err(QueryError::Storage(StorageError::NotFound { what: "tenant" }))),
            "{late:?}"
        );
        drop(held);
        let scope = db.operator().trusted_host_scope(&name("kept"), "test").expect("scope");
        let t = db.tenant(&scope).expect("tenant");
        assert_eq!(t.count("docs").expect("count"), 50);
        assert_eq!(t.search("docs", &vector(7, 4), 5).expect("search").len(), 5);
        (gone, kept)
    };
    let raw = raw_db(&dir.data());
    for kind in [b'C', b'P', b'V', b'N', b'U'] {
        assert!(tenant_records(&raw, &gone, kind).is_empty(), "a record of kind {} remains", kind as char);
    }
    assert_eq!(tenant_records(&raw, &kept, b'P').len(), 50);
    assert_eq!(tenant_records(&raw, &kept, b'V').len(), 50);
}

#[test]
fn a_shared_tenants_rotation_reseals_its_records_and_leaves_its_neighbours_bytes_alone() {
    let dir = TestDir::in_tier(Placement::Shared);
    let (rotated, other) = {
        let db = dir.open();
        for who in ["rotated", "other"] {
            let scope = tenant(&db, who);
            let t = db.tenant(&scope).expect("tenant");
            t.create_collection("docs", 4, Metric::L2).expect("collection");
            t.upsert("docs", &points(who, 40)).expect("upsert");
        }
        (place(&db, "rotated"), place(&db, "other"))
    };
    let records = |place| {
        let raw = raw_db(&dir.data());
        [b'C', b'P', b'V'].iter().flat_map(|&kind| tenant_records(&raw, place, kind)).collect::<Vec<_>>()
    };
    let (rotated_before, other_before) = (records(&rotated), records(&other));
    {
        let db = dir.open();
        let op = db.operator();
        let uid = op.tenant_info(&name("rotated")).expect("info").uid;
        let started = op.rotate_tenant_key(&name("rotated")).expect("rotate");
        // Its own sealed records only: the collection, 40 payloads, 40 vectors.
        assert_eq!(started.total, 81, "{started:?}");
        while !op.rotation_step(uid, 16).expect("step").expect("running").finished {}
        let scope = op.trusted_host_scope(&name("rotated"), "test").expect("scope");
        let t = db.tenant(&scope).expect("tenant");
        assert_eq!(t.count("docs").expect("count"), 40);
        assert_eq!(t.search("docs", &vector(3, 4), 40).expect("search").len(), 40);
    }
    let (rotated_after, other_after) = (records(&rotated), records(&other));
    assert_eq!(other_after, other_before, "the neighbour's records are untouched, byte for byte");
    assert_eq!(rotated_after.len(), rotated_before.len());
    let keys = |r: &[(Vec<u8>, Vec<u8>)]| r.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&rotated_after), keys(&rotated_before), "same keys");
    assert!(
        rotated_after.iter().zip(&rotated_before).all(|(a, b)| a.1 != b.1),
        "every sealed value of the rotated tenant was sealed again"
    );
}
