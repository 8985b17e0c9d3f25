//! Ciphertext is bound to its place: a sealed value copied at the RocksDB level into another tenant's
//! column family, or under another record key, fails to open with an integrity error.

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
        (place(&db, "alpha"), place(&db, "beta"))
    };
    let (cf_a, cf_b) = (&place_a.0, &place_b.0);

    {
        let raw = raw_db(&dir.data());
        for kind in [b'P', b'V'] {
            let a = tenant_records(&raw, &place_a, kind);
            let b = tenant_records(&raw, &place_b, kind);
            assert_eq!((a.len(), b.len()), (2, 2));
            // Tenant A's sealed value goes under tenant B's key for a point, in B's column family;
            // and inside A, one point's value goes under the other point's key.
            let cf_b_handle = raw.cf_handle(cf_b).expect("cf");
            raw.put_cf(&cf_b_handle, &b[0].0, &a[0].1).expect("put");
            raw.put_cf(&cf_b_handle, &b[1].0, &a[1].1).expect("put");
            let cf_a_handle = raw.cf_handle(cf_a).expect("cf");
            raw.put_cf(&cf_a_handle, &a[0].0, &a[1].1).expect("put");
        }
        raw.flush_wal(true).expect("flush");
    }

    let db = dir.open();
    assert_eq!(cf_a == cf_b, tier == Placement::Shared, "{tier:?}: where the tenants live");
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
