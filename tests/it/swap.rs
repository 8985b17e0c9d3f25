//! Ciphertext is bound to its place: a sealed value copied at the RocksDB level into another tenant's
//! column family (or dedicated instance), or under another record key, fails to open with an
//! integrity error.

use crate::util::{TIERS, TestDir, place, raw_db, tenant, tenant_records};
use bulkhead_query::{DocId, Metric, NewPoint, Placement, QueryError, StorageError};

#[test]
fn values_moved_between_tenants_or_keys_fail_to_open() {
    for tier in TIERS {
        values_moved_between_tenants_or_keys_fail_to_open_in(tier);
    }
}

fn values_moved_between_tenants_or_keys_fail_to_open_in(tier: Placement) {
    let dir = TestDir::in_tier(tier);
    let (place_a, place_b) = {
        let db = dir.open();
        for name in ["alpha", "beta"] {
            let scope = tenant(&db, name);
            let t = db.tenant(&scope).expect("tenant");
            t.create_collection("docs", 4, Metric::Dot).expect("collection");
            let points = [
                NewPoint::new(
                    DocId::new("doc-1").expect("id"),
                    vec![1.0, 2.0, 3.0, 4.0],
                    format!("{name} one"),
                ),
                NewPoint::new(
                    DocId::new("doc-2").expect("id"),
                    vec![4.0, 3.0, 2.0, 1.0],
                    format!("{name} two"),
                ),
            ];
            t.upsert("docs", &points).expect("upsert");
        }
        (place(&db, &dir.data(), "alpha"), place(&db, &dir.data(), "beta"))
    };

    {
        // One raw instance per directory: both tenants' in the shared and partitioned tiers, one
        // each in the dedicated tier.
        let raw_a = raw_db(&place_a.dir);
        let raw_b = (place_b.dir != place_a.dir).then(|| raw_db(&place_b.dir));
        let raw_b = raw_b.as_ref().unwrap_or(&raw_a);
        for kind in [b'P', b'V'] {
            let a = tenant_records(&raw_a, &place_a, kind);
            let b = tenant_records(raw_b, &place_b, kind);
            assert_eq!((a.len(), b.len()), (2, 2));
            // Tenant A's sealed value goes under tenant B's key for a point, in B's place; and
            // inside A, one point's value goes under the other point's key.
            let cf_b_handle = raw_b.cf_handle(&place_b.cf).expect("cf");
            raw_b.put_cf(&cf_b_handle, &b[0].0, &a[0].1).expect("put");
            raw_b.put_cf(&cf_b_handle, &b[1].0, &a[1].1).expect("put");
            let cf_a_handle = raw_a.cf_handle(&place_a.cf).expect("cf");
            raw_a.put_cf(&cf_a_handle, &a[0].0, &a[1].1).expect("put");
        }
        raw_a.flush_wal(true).expect("flush");
        raw_b.flush_wal(true).expect("flush");
    }

    let db = dir.open();
    let same_family = place_a.dir == place_b.dir && place_a.cf == place_b.cf;
    assert_eq!(same_family, tier == Placement::Shared, "{tier:?}: where the tenants live");
    for name in ["alpha", "beta"] {
        let scope = db
            .operator()
            .trusted_host_scope(&bulkhead_query::TenantName::new(name).expect("n"), "test")
            .expect("scope");
        let t = db.tenant(&scope).expect("tenant");
        let mut failed = 0;
        for id in ["doc-1", "doc-2"] {
            match t.get("docs", &DocId::new(id).expect("id")) {
                Err(QueryError::Storage(StorageError::Integrity)) => failed += 1,
                // Whatever does open must be the tenant's own data, never the other's.
                Ok(Some(point)) => assert!(point.payload.text.starts_with(name), "{name} read foreign text"),
                other => panic!("{name}: unexpected {other:?}"),
            }
        }
        let expected = if name == "beta" { 2 } else { 1 };
        assert_eq!(failed, expected, "{tier:?} {name}: moved values must fail authentication");
        // A search that meets a moved vector fails loudly rather than returning foreign data.
        let search = t.search("docs", &[1.0, 0.0, 0.0, 0.0], 2);
        assert!(matches!(search, Err(QueryError::Storage(StorageError::Integrity))), "{name}: {search:?}");
    }
}
