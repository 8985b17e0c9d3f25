//! Durability: reopen after a clean shutdown and after `kill -9` mid-stream loses no acknowledged
//! write, batches stay atomic, the encryption count survives, and a wrong master key is named as such.

use crate::util::{TestDir, crash_child, tenant};
use bulkhead_query::{Database, MasterKey, Metric, QueryError, StorageError, StoreOptions, TenantName};
use bulkhead_tests::crash::{BATCH, WRITER_DIM as DIM, Workload, batch};

#[test]
fn clean_reopen_keeps_everything_and_the_encryption_count() {
    let dir = TestDir::new();
    let written;
    {
        let db = dir.open();
        let scope = tenant(&db, "acme");
        let t = db.tenant(&scope).expect("tenant");
        t.create_collection("docs", DIM, Metric::Cosine).expect("collection");
        for n in 0..20 {
            t.upsert("docs", &batch(0, n)).expect("upsert");
        }
        written = db.tenant(&scope).expect("tenant").encryptions();
        assert_eq!(
            written,
            1 + 20 * BATCH as u64 * 2,
            "one collection record, a payload and a vector per point"
        );
        db.operator().flush().expect("flush");
    }
    let db = dir.open();
    let scope =
        db.operator().trusted_host_scope(&TenantName::new("acme").expect("n"), "test").expect("scope");
    let t = db.tenant(&scope).expect("tenant");
    assert_eq!(t.count("docs").expect("count"), 20 * BATCH as u64);
    for n in 0..20 {
        for point in batch(0, n) {
            let got = t.get("docs", &point.id).expect("get").expect("present");
            assert_eq!(got.vector, point.vector);
            assert_eq!(got.payload.text, point.text);
        }
    }
    let after = db.tenant(&scope).expect("tenant").encryptions();
    assert!(after >= written, "the persisted count is an upper bound: {after} >= {written}");
}

#[test]
fn wrong_master_key_is_named() {
    let dir = TestDir::new();
    drop(dir.open());
    let err =
        Database::open(&dir.data(), MasterKey::generate(), StoreOptions::default()).expect_err("wrong key");
    assert!(
        matches!(err, QueryError::Storage(StorageError::WrongMasterKey { master_version: 1 })),
        "{err:?}"
    );
    assert!(err.to_string().contains("wrong master key"), "{err}");
    // The right key still opens it.
    drop(dir.open());
}

#[test]
fn killed_mid_stream_loses_no_acknowledged_write() {
    let dir = TestDir::new();
    {
        let db = dir.open();
        let scope = tenant(&db, "crashy");
        db.tenant(&scope).expect("tenant").create_collection("docs", DIM, Metric::L2).expect("collection");
    }
    let mut expected_count = 0;
    for round in 0..3u64 {
        let acked = crash_child(&dir, Workload::Writer, round, 50 + 37 * round);

        let db = dir.open();
        let scope =
            db.operator().trusted_host_scope(&TenantName::new("crashy").expect("n"), "test").expect("scope");
        let t = db.tenant(&scope).expect("tenant");
        for &n in &acked {
            for point in batch(round, n) {
                let got = t
                    .get("docs", &point.id)
                    .expect("get")
                    .unwrap_or_else(|| panic!("round {round}: acknowledged batch {n} lost"));
                assert_eq!(got.vector, point.vector);
            }
        }
        // Batches are atomic: the one in flight is either all there or absent, and the count agrees.
        let last = acked.iter().max().copied().unwrap_or(0);
        let in_flight = batch(round, last + 1);
        let present = in_flight.iter().filter(|p| t.get("docs", &p.id).expect("get").is_some()).count();
        assert!(present == 0 || present == BATCH, "round {round}: a torn batch ({present} of {BATCH})");
        expected_count += (last + 1) * BATCH as u64 + present as u64;
        assert_eq!(t.count("docs").expect("count"), expected_count, "round {round}: count matches the data");
    }
}
