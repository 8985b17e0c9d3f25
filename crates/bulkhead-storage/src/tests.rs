//! Unit tests of the storage crate's layouts and validation.

use super::*;
use crate::layout::{Kind, TenantKeys, decode_vector, encode_vector};

fn uid() -> TenantUid {
    TenantUid::from_bytes([7; 16])
}

#[test]
fn point_ranges_hold_exactly_their_collection() {
    let keys = TenantKeys::new(&uid());
    let tag = bulkhead_crypto::RecordTag([0xff; 32]);
    for coll in [0u32, 1, 255, 256, u32::MAX - 1, u32::MAX] {
        let (start, end) = keys.point_range(Kind::Vector, coll);
        let inside = keys.point(Kind::Vector, coll, &tag);
        assert!(start <= inside && inside < end, "collection {coll}");
        if coll < u32::MAX {
            let next = keys.point(Kind::Vector, coll + 1, &bulkhead_crypto::RecordTag([0; 32]));
            assert!(next >= end, "collection {coll} + 1 is outside");
        }
        let payload = keys.point(Kind::Payload, coll, &tag);
        assert!(payload < start || payload >= end, "payloads are outside the vector range");
        assert_eq!(TenantKeys::tag_of_point_key(&inside), Some(tag));
    }
}

#[test]
fn vectors_round_trip_bit_exactly() {
    let v = vec![0.0, -0.0, 1.5, f32::MIN_POSITIVE, f32::MAX, -3.25e-7];
    let back = decode_vector(&encode_vector(&v)).expect("decode");
    assert_eq!(
        v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        back.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    assert!(decode_vector(&[0, 1, 2]).is_err());
}

#[test]
fn names_are_validated_and_never_printed() {
    assert!(TenantName::new("acme-01_x").is_ok());
    for bad in ["", "Acme", "-acme", "a b", "ä", &"a".repeat(65)] {
        assert!(TenantName::new(bad).is_err(), "{bad:?}");
    }
    let id = DocId::new("secret-id").expect("id");
    assert!(!format!("{id:?}").contains("secret"));
    let name = TenantName::new("secretcorp").expect("name");
    assert!(!format!("{name:?}").contains("secret"));
}

#[test]
fn cosine_rejects_zero_vectors_but_l2_accepts_them() {
    assert!(validate_vector(&[0.0, 0.0], 2, Metric::Cosine).is_err());
    assert!(validate_vector(&[0.0, 0.0], 2, Metric::L2).is_ok());
    assert!(validate_vector(&[0.0, f32::NAN], 2, Metric::L2).is_err());
    assert!(validate_vector(&[1.0], 2, Metric::Dot).is_err());
}

#[test]
fn registry_encryptions_are_counted_and_persisted_before_use() {
    use bulkhead_crypto::MasterKey;
    let dir = tempfile::tempdir().expect("tempdir");
    let key_path = dir.path().join("k");
    MasterKey::generate().write_new_file(&key_path).expect("key");
    let open = || {
        Store::open(
            &dir.path().join("db"),
            MasterKey::from_file(&key_path).expect("key"),
            StoreOptions::default(),
        )
    };
    let persisted = |store: &Store| {
        let sys = store.db.cf_handle(layout::SYS_CF).expect("sys");
        let value =
            store.db.get_cf(&sys, layout::encryption_count_key(&layout::SYSTEM_OWNER, 1)).expect("get");
        value.map(|v| layout::be_u64(&v).expect("u64")).unwrap_or(0)
    };
    let sealed;
    {
        let store = open().expect("open");
        let name = TenantName::new("acme").expect("name");
        store.create_tenant(&name).expect("tenant");
        for _ in 0..5 {
            store.issue_api_key(&name, Role::Reader, "k", None).expect("key");
        }
        sealed = store.system.encryptions();
        assert_eq!(sealed, 6);
        assert!(persisted(&store) >= sealed, "the reservation is written with the first seal");
    }
    let store = open().expect("reopen");
    assert!(store.system.encryptions() >= sealed, "the count never goes backwards across a restart");
}

#[test]
fn stale_collection_handles_are_refused() {
    use bulkhead_crypto::MasterKey;
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Store::open(&dir.path().join("db"), MasterKey::generate(), StoreOptions::default()).expect("open");
    let name = TenantName::new("acme").expect("name");
    store.create_tenant(&name).expect("tenant");
    let scope = store.trusted_host_scope(&name, "test").expect("scope");
    let handle = store.tenant(&scope).expect("handle");
    let docs = CollectionName::new("docs").expect("name");
    let old = handle.create_collection(&docs, 2, Metric::L2).expect("create");
    handle.drop_collection(&old).expect("drop");
    let new = handle.create_collection(&docs, 3, Metric::L2).expect("recreate");
    assert_ne!(old.number(), new.number());
    let point = NewPoint::new(DocId::new("a").expect("id"), vec![1.0, 2.0], "x");
    assert!(matches!(handle.upsert(&old, &[point]), Err(StorageError::NotFound { what: "collection" })));
    assert!(matches!(handle.drop_collection(&old), Err(StorageError::NotFound { .. })));
    // An edited copy cannot smuggle in the wrong dimension: the stored configuration decides.
    let mut edited = new.clone();
    edited.dimension = 2;
    let point = NewPoint::new(DocId::new("a").expect("id"), vec![1.0, 2.0], "x");
    assert!(matches!(handle.upsert(&edited, &[point]), Err(StorageError::InvalidArgument { .. })));
    assert_eq!(handle.count(&new).expect("count"), 0);
    assert_eq!(handle.list_collections().expect("list").len(), 1);
}

#[test]
fn orphan_tenant_column_families_are_dropped_at_open() {
    use bulkhead_crypto::MasterKey;
    let dir = tempfile::tempdir().expect("tempdir");
    let key_path = dir.path().join("k");
    MasterKey::generate().write_new_file(&key_path).expect("key");
    let path = dir.path().join("db");
    let open = || Store::open(&path, MasterKey::from_file(&key_path).expect("key"), StoreOptions::default());
    let orphan = format!("t-{}", hex::encode([0xab; 16]));
    let real;
    {
        let store = open().expect("open");
        let info = store.create_tenant(&TenantName::new("acme").expect("name")).expect("tenant");
        real = layout::tenant_cf_name(&info.uid);
        // What a crash between the two steps of create_tenant leaves behind.
        store.db.create_cf(&orphan, &rocksdb::Options::default()).expect("create cf");
    }
    drop(open().expect("reopen"));
    let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), &path).expect("list");
    assert!(!names.contains(&orphan), "{names:?}");
    assert!(names.contains(&real), "a real tenant's column family stays: {names:?}");
}
