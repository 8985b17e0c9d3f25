//! The keyring's control records (a tenant's write generation, its encryption counts, its rotation
//! cursor) are authenticated: an edit at the RocksDB level makes that tenant refuse to open with a
//! clear `KeyringCorrupt`, instead of a silently stalled rotation or a nonce counter set back, and
//! every other tenant goes on.

use crate::util::{TestDir, raw_db, tenant, vector};
use bulkhead_query::{DocId, Metric, NewPoint, StorageError, TenantName, TenantUid};

fn seed(db: &bulkhead_query::Database, name: &str) -> TenantUid {
    let scope = tenant(db, name);
    let t = db.tenant(&scope).expect("tenant");
    t.create_collection("docs", 4, Metric::Cosine).expect("create");
    let points: Vec<NewPoint> = (0..20)
        .map(|i| NewPoint::new(DocId::new(format!("a{i}")).expect("id"), vector(i, 4), "text"))
        .collect();
    t.upsert("docs", &points).expect("upsert");
    scope.tenant_uid()
}

fn scope_of(db: &bulkhead_query::Database, name: &str) -> Result<bulkhead_query::TenantScope, StorageError> {
    db.operator().trusted_host_scope(&TenantName::new(name).expect("name"), "test")
}

#[test]
fn an_edited_control_record_makes_its_tenant_refuse_to_open() {
    type Record = fn(TenantUid) -> Vec<u8>;
    let write_generation: Record = |uid| [b"keyring/".as_slice(), uid.as_bytes(), b"/write"].concat();
    let encryption_count: Record = |uid| [b"enc/".as_slice(), uid.as_bytes(), &2u32.to_be_bytes()].concat();
    let rotation_cursor: Record = |uid| [b"rotate/".as_slice(), uid.as_bytes()].concat();
    type Edit = fn(&mut Vec<u8>);
    // A change of the payload (the tag no longer matches), and a payload set back with its old tag.
    let flip: Edit = |value| value[0] ^= 1;
    let strip_tag: Edit = |value| value.truncate(value.len() - 32);
    for (what, record) in [
        ("write generation", write_generation),
        ("encryption count", encryption_count),
        ("rotation cursor", rotation_cursor),
    ] {
        for edit in [flip, strip_tag] {
            let dir = TestDir::new();
            let (acme, _) = {
                let db = dir.open();
                let acme = seed(&db, "acme");
                let other = seed(&db, "other");
                // A rotation in progress, so the cursor and the new generation's count exist.
                db.operator().rotate_tenant_key(&TenantName::new("acme").expect("name")).expect("rotate");
                db.operator().rotation_step(acme, 1).expect("one step");
                let t = db.tenant(&scope_of(&db, "acme").expect("scope")).expect("tenant");
                t.upsert("docs", &[NewPoint::new(DocId::new("b").expect("id"), vector(2, 4), "more")])
                    .expect("a write under generation 2");
                (acme, other)
            };
            {
                let raw = raw_db(&dir.data());
                let sys = raw.cf_handle("sys").expect("sys");
                let key = record(acme);
                let mut value =
                    raw.get_cf(&sys, &key).expect("get").unwrap_or_else(|| panic!("{what} exists"));
                edit(&mut value);
                raw.put_cf(&sys, &key, value).expect("put");
                raw.flush_wal(true).expect("flush");
            }
            let db = dir.open();
            let refused = scope_of(&db, "acme").and_then(|scope| {
                db.tenant(&scope).map(drop).map_err(|e| match e {
                    bulkhead_query::QueryError::Storage(e) => e,
                    other => panic!("{other:?}"),
                })
            });
            assert!(
                matches!(refused, Err(StorageError::TenantUnavailable { cause: "keyring-corrupt" })),
                "{what}: {refused:?}"
            );
            assert!(db.operator().rotation_step(acme, 10).is_err(), "{what}: the rotation does not run on");
            // The other tenant is untouched.
            let other = db.tenant(&scope_of(&db, "other").expect("scope")).expect("other tenant");
            assert_eq!(other.count("docs").expect("count"), 20, "{what}");
            other
                .upsert("docs", &[NewPoint::new(DocId::new("c").expect("id"), vector(3, 4), "new")])
                .expect("the other tenant writes");
        }
    }
}
