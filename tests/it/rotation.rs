//! Tenant-key rotation and crypto-shredding: reads keep working through a rotation, the old key is
//! destroyed at the end, an interrupted rotation resumes, a `kill -9` at any moment loses no
//! acknowledged write and never leaves a record sealed under a destroyed key, and a deleted tenant's
//! records cannot be opened by anyone.

use crate::util::{TestDir, cf_name, crash_child, raw_db, raw_records, tenant, vector};
use bulkhead_crypto::OwnerCipher;
use bulkhead_query::{
    Database, DocId, MasterKey, Metric, NewPoint, Role, StorageError, StoreOptions, TenantName, TenantUid,
};
use bulkhead_tests::crash::{ROTATION_DIM as DIM, Workload, master_file, newest_master_files, point};
use std::collections::BTreeSet;
use std::path::Path;

fn acme(db: &Database) -> bulkhead_query::TenantScope {
    db.operator().trusted_host_scope(&TenantName::new("acme").expect("n"), "test").expect("scope")
}

fn uid(db: &Database) -> TenantUid {
    db.operator().tenant_info(&TenantName::new("acme").expect("n")).expect("info").uid
}

/// The generations whose wrapped keys exist for `owner`, and the generation of every sealed value in
/// the tenant's column family, read raw from a closed data directory.
fn raw_generations(data: &Path, owner: &[u8; 16], cf: &str) -> (BTreeSet<u32>, BTreeSet<u32>) {
    let raw = raw_db(data);
    let sys = raw.cf_handle("sys").expect("sys");
    let mut prefix = b"keyring/".to_vec();
    prefix.extend_from_slice(owner);
    prefix.push(b'/');
    let mut keys = BTreeSet::new();
    for item in raw.prefix_iterator_cf(&sys, &prefix) {
        let (key, _) = item.expect("entry");
        if !key.starts_with(&prefix) {
            break;
        }
        if let Ok(generation) = <[u8; 4]>::try_from(&key[prefix.len()..]) {
            keys.insert(u32::from_be_bytes(generation));
        }
    }
    let mut sealed = BTreeSet::new();
    if let Some(cf) = raw.cf_handle(cf) {
        for item in raw.iterator_cf(&cf, rocksdb::IteratorMode::Start) {
            let (key, value) = item.expect("entry");
            if matches!(key.get(16), Some(b'C' | b'P' | b'V' | b'I' | b'J')) {
                sealed.insert(OwnerCipher::sealed_generation(&value).expect("sealed header"));
            }
        }
    }
    (keys, sealed)
}

#[test]
fn a_rotation_reseals_everything_resumes_after_a_restart_and_destroys_the_old_key() {
    let dir = TestDir::new();
    let (owner, cf, started_total) = {
        let db = Database::open(&dir.data(), dir.master(), StoreOptions::default())
            .expect("open")
            .with_graph_threshold(300);
        let scope = tenant(&db, "acme");
        let t = db.tenant(&scope).expect("tenant");
        t.create_collection("docs", DIM, Metric::L2).expect("collection");
        for chunk in (0..600u64).collect::<Vec<_>>().chunks(100) {
            t.upsert("docs", &chunk.iter().map(|&i| point(i, i)).collect::<Vec<_>>()).expect("upsert");
        }
        // An index snapshot too, so that its chunks are rotated with the records.
        t.search("docs", &vector(1, DIM), 1).expect("load");
        crate::util::wait_until("the snapshot's save", || {
            t.graph_status("docs").expect("status").snapshot_saved.then_some(())
        });
        assert_eq!(t.key_generation(), 1);
        let op = db.operator();
        let progress = op.rotate_tenant_key(&TenantName::new("acme").expect("n")).expect("rotate");
        assert_eq!(progress.target_generation, 2);
        assert!(progress.total >= 1200, "{progress:?}");
        assert!(matches!(
            op.rotate_tenant_key(&TenantName::new("acme").expect("n")),
            Err(StorageError::AlreadyExists { .. })
        ));
        // Writes from now on use the new key at once; reads of old records keep working.
        let t = db.tenant(&acme(&db)).expect("tenant");
        assert_eq!(t.key_generation(), 2);
        t.upsert("docs", &[point(1000, 1000)]).expect("upsert");
        assert_eq!(
            t.get("docs", &DocId::new("p1000").expect("id")).expect("get").expect("p").payload.key_generation,
            2
        );
        // A few steps, then the process goes away mid-rotation.
        for _ in 0..3 {
            let step = op.rotation_step(uid(&db), 50).expect("step").expect("running");
            assert!(!step.finished);
            assert!(step.done <= step.total, "{step:?}");
        }
        assert_eq!(t.search("docs", &vector(5, DIM), 1).expect("search")[0].id.as_str(), "p5");
        (*uid(&db).as_bytes(), cf_name(&db, "acme"), progress.total)
    };
    let (keys, sealed) = raw_generations(&dir.data(), &owner, &cf);
    assert_eq!(keys, BTreeSet::from([0, 1, 2]), "the old key stays until every record is re-sealed");
    assert_eq!(sealed, BTreeSet::from([1, 2]), "mid-rotation, both generations are in use");

    let db = dir.open();
    let op = db.operator();
    assert_eq!(op.pending_rotations().expect("pending"), vec![uid(&db)]);
    let mut last = None;
    while let Some(step) = op.rotation_step(uid(&db), 64).expect("step") {
        assert!(step.done <= step.total, "the progress never passes its total: {step:?}");
        last = Some(step);
        if step.finished {
            break;
        }
    }
    let last = last.expect("resumed");
    // Every sealed record was counted once: the 1,200+ of the start and the one upsert made during
    // the rotation (a vector and a payload), which raised the total.
    assert!(last.finished && last.done == last.total && last.total >= started_total + 2, "{last:?}");
    assert!(op.rotation_status(uid(&db)).expect("status").is_none());
    assert!(op.pending_rotations().expect("pending").is_empty());
    let t = db.tenant(&acme(&db)).expect("tenant");
    for i in (0..600u64).step_by(7) {
        let p = t.get("docs", &DocId::new(format!("p{i}")).expect("id")).expect("get").expect("present");
        assert_eq!(p.vector, vector(i, DIM));
        assert_eq!(p.payload.key_generation, 2);
    }
    drop(t);
    drop(db);
    let (keys, sealed) = raw_generations(&dir.data(), &owner, &cf);
    assert_eq!(keys, BTreeSet::from([0, 2]), "generation 1 is destroyed");
    assert_eq!(sealed, BTreeSet::from([2]));
    // And the graph came back from its (re-sealed) snapshot.
    let db = dir.open();
    let t = db.tenant(&acme(&db)).expect("tenant");
    t.search("docs", &vector(1, DIM), 1).expect("search");
    assert!(t.graph_status("docs").expect("status").graph_points > 0);
}

#[test]
fn a_deleted_tenant_is_unreadable_at_once_and_gone_after_a_restart() {
    let dir = TestDir::new();
    let (owner, cf, key) = {
        let db = dir.open();
        for name in ["acme", "other"] {
            let scope = tenant(&db, name);
            let t = db.tenant(&scope).expect("tenant");
            t.create_collection("docs", DIM, Metric::L2).expect("collection");
            t.upsert("docs", &(0..50).map(|i| point(i, i)).collect::<Vec<_>>()).expect("upsert");
        }
        let acme_name = TenantName::new("acme").expect("n");
        let key = db.operator().issue_api_key(&acme_name, Role::Reader, "r", None).expect("key");
        let scope = db.operator().authenticate(&key.token).expect("auth");
        let owner = *uid(&db).as_bytes();
        let cf = cf_name(&db, "acme");
        db.operator().flush().expect("flush");
        assert_eq!(db.delete_tenant(&acme_name).expect("delete"), 1);
        // At once: the scope, the key and the name are dead; the other tenant is untouched.
        assert!(db.tenant(&scope).is_err());
        assert!(matches!(db.operator().authenticate(&key.token), Err(StorageError::Unauthenticated)));
        assert!(matches!(db.operator().tenant_info(&acme_name), Err(StorageError::NotFound { .. })));
        let other =
            db.operator().trusted_host_scope(&TenantName::new("other").expect("n"), "t").expect("scope");
        assert_eq!(db.tenant(&other).expect("tenant").count("docs").expect("count"), 50);
        // The name can be used again, for a new tenant with new keys and nothing of the old one.
        let scope = tenant(&db, "acme");
        assert!(db.tenant(&scope).expect("tenant").collections().expect("list").is_empty());
        (owner, cf, key.token)
    };
    let (keys, _) = raw_generations(&dir.data(), &owner, &cf);
    assert!(keys.is_empty(), "no wrapped key of the deleted tenant is left: {keys:?}");
    let raw = raw_db(&dir.data());
    assert!(raw.cf_handle(&cf).is_none(), "its column family is dropped");
    drop(raw);
    let db = dir.open();
    assert!(db.operator().authenticate(&key).is_err());
}

#[test]
fn a_tenant_whose_keys_were_destroyed_before_a_crash_is_cleaned_up_at_open() {
    let dir = TestDir::new();
    let (owner, cf) = {
        let db = dir.open();
        let scope = tenant(&db, "acme");
        db.tenant(&scope).expect("tenant").create_collection("docs", DIM, Metric::L2).expect("collection");
        (*uid(&db).as_bytes(), cf_name(&db, "acme"))
    };
    // The first step of a deletion, as a crash would leave it: keys gone, column family still there.
    {
        let raw = raw_db(&dir.data());
        let sys = raw.cf_handle("sys").expect("sys");
        let mut write_key = b"keyring/".to_vec();
        write_key.extend_from_slice(&owner);
        write_key.extend_from_slice(b"/write");
        raw.delete_cf(&sys, write_key).expect("delete");
    }
    drop(dir.open());
    let raw = raw_db(&dir.data());
    assert!(raw.cf_handle(&cf).is_none(), "the open finished the deletion");
}

#[test]
fn rotations_killed_at_random_lose_nothing() {
    let dir = TestDir::new();
    let (owner, cf) = {
        let db = dir.open();
        let scope = tenant(&db, "acme");
        let t = db.tenant(&scope).expect("tenant");
        t.create_collection("docs", DIM, Metric::L2).expect("collection");
        t.upsert("docs", &(0..200).map(|i| point(i, i)).collect::<Vec<_>>()).expect("upsert");
        (*uid(&db).as_bytes(), cf_name(&db, "acme"))
    };
    let cycles: u64 =
        std::env::var("BULKHEAD_ROTATION_CYCLES").ok().and_then(|c| c.parse().ok()).unwrap_or(100);
    let mut acked_all: Vec<u64> = Vec::new();
    kill_loop(&dir, Workload::Rotation, cycles, |round, acked| {
        acked_all = acked.to_vec();
        // Every acknowledged record and every original record reads back intact.
        {
            let db = dir.open();
            let t = db.tenant(&acme(&db)).expect("tenant");
            for &id in acked.iter().rev().take(60).chain([0, 57, 199].iter()) {
                let p = t
                    .get("docs", &DocId::new(format!("p{id}")).expect("id"))
                    .expect("get")
                    .unwrap_or_else(|| panic!("round {round}: acknowledged point {id} lost"));
                assert_eq!(p.vector, vector(id, DIM), "round {round}");
            }
        }
        // No record is sealed under a generation whose key is gone.
        let (keys, sealed) = raw_generations(&dir.data(), &owner, &cf);
        assert!(sealed.is_subset(&keys), "round {round}: records under {sealed:?}, keys {keys:?}");
    });
    // The rotations made progress across the kills (each finished rotation destroys a key).
    let db = dir.open();
    let t = db.tenant(&acme(&db)).expect("tenant");
    assert!(t.key_generation() > 2, "generation {}", t.key_generation());
    // The count agrees with the points present: every acknowledged one, plus per round at most the
    // one write that committed but was killed before its acknowledgement was printed.
    let acked: BTreeSet<u64> = acked_all.iter().copied().collect();
    let mut present = 0u64;
    for round in 0..cycles {
        let mut unacked = 0;
        for n in 0..1000 {
            let id = 10_000 + round * 1000 + n;
            let here = t.get("docs", &DocId::new(format!("p{id}")).expect("id")).expect("get").is_some();
            if here {
                present += 1;
                unacked += u64::from(!acked.contains(&id));
            } else {
                assert!(!acked.contains(&id), "round {round}: acknowledged point {id} lost");
                if n > 50 {
                    break;
                }
            }
        }
        assert!(unacked <= 1, "round {round}: {unacked} unacknowledged writes survived");
    }
    assert_eq!(t.count("docs").expect("count"), 200 + present);
}

#[test]
fn the_master_key_rotates_online_and_offline_with_distinct_errors() {
    let dir = TestDir::new();
    {
        let db = dir.open();
        let scope = tenant(&db, "acme");
        let t = db.tenant(&scope).expect("tenant");
        t.create_collection("docs", DIM, Metric::L2).expect("collection");
        t.upsert("docs", &(0..20).map(|i| point(i, i)).collect::<Vec<_>>()).expect("upsert");
    }
    let second = MasterKey::generate();
    let second_file = dir.key_path().with_file_name("second.key");
    second.write_new_file(&second_file).expect("write");
    // Online: re-wrap under the second key; the data stays readable, in this process and after.
    {
        let db = dir.open();
        assert_eq!(
            db.operator().rotate_master_key(MasterKey::from_file(&second_file).expect("k")).expect("rotate"),
            2
        );
        let t = db.tenant(&acme(&db)).expect("tenant");
        assert_eq!(
            t.get("docs", &DocId::new("p3").expect("id")).expect("get").expect("p").vector,
            vector(3, DIM)
        );
        tenant(&db, "beta"); // a tenant created after the rotation is wrapped under the new key
    }
    let open = |current: MasterKey, previous: Option<MasterKey>| {
        Database::open_with_previous(&dir.data(), current, previous, StoreOptions::default())
    };
    assert!(matches!(
        open(dir.master(), None),
        Err(bulkhead_query::QueryError::Storage(StorageError::WrongMasterKey { master_version: 2 }))
    ));
    drop(open(MasterKey::from_file(&second_file).expect("k"), None).expect("the second key opens it"));

    // Offline: start with a third key as current and the second as previous, once.
    let third_file = dir.key_path().with_file_name("third.key");
    MasterKey::generate().write_new_file(&third_file).expect("write");
    assert!(matches!(
        open(MasterKey::from_file(&third_file).expect("k"), Some(dir.master())),
        Err(bulkhead_query::QueryError::Storage(StorageError::MasterKeysWrong { master_version: 2 }))
    ));
    {
        let db = open(
            MasterKey::from_file(&third_file).expect("k"),
            Some(MasterKey::from_file(&second_file).expect("k")),
        )
        .expect("re-wrapped at open");
        let t = db.tenant(&acme(&db)).expect("tenant");
        assert_eq!(t.count("docs").expect("count"), 20);
    }
    let db =
        open(MasterKey::from_file(&third_file).expect("k"), None).expect("the third key alone opens it now");
    for name in ["acme", "beta"] {
        let scope = db.operator().trusted_host_scope(&TenantName::new(name).expect("n"), "t").expect("scope");
        db.tenant(&scope).expect("tenant").collections().expect("list");
    }
    drop(db);
    assert!(matches!(
        open(MasterKey::from_file(&second_file).expect("k"), None),
        Err(bulkhead_query::QueryError::Storage(StorageError::WrongMasterKey { master_version: 3 }))
    ));
}

/// Runs `child` (a test of this binary, by name) `cycles` times against `dir`, killing it with
/// SIGKILL after a pseudo-random number (1 to 40) of its `ack` lines, and calls `check` after each
/// kill with the round and every acknowledgement seen so far.
fn kill_loop(dir: &TestDir, workload: Workload, cycles: u64, mut check: impl FnMut(u64, &[u64])) {
    let mut acked: Vec<u64> = Vec::new();
    let mut rng_state = 0x2545_f491_4f6c_dd1du64;
    for round in 0..cycles {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        acked.extend(crash_child(dir, workload, round, 1 + rng_state % 40));
        check(round, &acked);
    }
}

#[test]
fn master_rotations_killed_at_random_always_reopen() {
    let dir = TestDir::new();
    let keys = dir.key_path().parent().expect("dir").to_owned();
    std::fs::copy(dir.key_path(), master_file(&keys, 0)).expect("copy");
    {
        let db = dir.open();
        let scope = tenant(&db, "acme");
        let t = db.tenant(&scope).expect("tenant");
        t.create_collection("docs", DIM, Metric::L2).expect("collection");
        t.upsert("docs", &(0..20).map(|i| point(i, i)).collect::<Vec<_>>()).expect("upsert");
    }
    let cycles = std::env::var("BULKHEAD_ROTATION_CYCLES").ok().and_then(|c| c.parse().ok()).unwrap_or(100);
    kill_loop(&dir, Workload::MasterRotation, cycles, |round, acked| {
        // Whatever moment the kill hit, the newest key opens the directory, with the one before it
        // as the fallback for a rotation that wrote its key file but not its keyring.
        let (newest, previous) = newest_master_files(&keys);
        let db = Database::open_with_previous(
            &dir.data(),
            MasterKey::from_file(&master_file(&keys, newest)).expect("key"),
            previous.map(|p| MasterKey::from_file(&master_file(&keys, p)).expect("key")),
            StoreOptions::default(),
        )
        .unwrap_or_else(|e| panic!("round {round}: {e}"));
        if let Some(&last) = acked.last() {
            assert!(newest >= last, "round {round}: acknowledged key {last} has no file");
        }
        let t = db.tenant(&acme(&db)).expect("tenant");
        assert_eq!(
            t.get("docs", &DocId::new("p7").expect("id")).expect("get").expect("p").vector,
            vector(7, DIM)
        );
    });
}

#[test]
fn deletions_killed_at_random_leave_whole_tenants_or_nothing() {
    let dir = TestDir::new();
    drop(dir.open());
    let cycles = std::env::var("BULKHEAD_ROTATION_CYCLES").ok().and_then(|c| c.parse().ok()).unwrap_or(100);
    kill_loop(&dir, Workload::Deletion, cycles, |round, acked| {
        let db = dir.open();
        let tenants = db.operator().list_tenants().expect("list");
        // Every tenant the registry still lists is whole: keys, collection and all its points.
        for info in &tenants {
            let scope = db.operator().trusted_host_scope(&info.name, "check").expect("scope");
            let t = db
                .tenant(&scope)
                .unwrap_or_else(|e| panic!("round {round}: a listed tenant does not open: {e}"));
            if let Ok(count) = t.count("docs") {
                assert!(count == 0 || count == 30, "round {round}: a torn tenant with {count} points");
            }
        }
        // No acknowledged deletion came back.
        for &id in acked {
            let name = TenantName::new(format!("t{}-{}", id / 1_000_000, id % 1_000_000)).expect("name");
            assert!(db.operator().tenant_info(&name).is_err(), "round {round}: a deleted tenant is back");
        }
        // Clear the survivors (at most the one in flight) so that rounds do not pile up tenants.
        for info in &tenants {
            db.delete_tenant(&info.name).expect("delete survivor");
        }
        drop(db);
        // Every tenant column family left after the open belonged to a listed tenant.
        let raw = raw_db(&dir.data());
        let families = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir.data()).expect("list cf");
        drop(raw);
        let tenant_families = families.iter().filter(|f| f.starts_with("t-")).count();
        assert_eq!(tenant_families, 0, "round {round}: orphan column families survived the open");
    });
}

#[test]
fn reaching_the_encryption_limit_starts_a_rotation_by_itself() {
    let dir = TestDir::new();
    let db = Database::open(&dir.data(), dir.master(), StoreOptions::default())
        .expect("open")
        .with_auto_rotation(100);
    let scope = tenant(&db, "acme");
    let t = db.tenant(&scope).expect("tenant");
    t.create_collection("docs", DIM, Metric::L2).expect("collection");
    t.upsert("docs", &(0..40).map(|i| point(i, i)).collect::<Vec<_>>()).expect("upsert");
    assert_eq!(t.key_generation(), 1, "81 encryptions: under the limit");
    t.upsert("docs", &(40..60).map(|i| point(i, i)).collect::<Vec<_>>()).expect("upsert");
    let t = db.tenant(&acme(&db)).expect("tenant");
    assert_eq!(t.key_generation(), 2, "the write that passed 100 encryptions started a rotation");
    assert_eq!(db.operator().pending_rotations().expect("pending"), vec![uid(&db)]);
    while !db.operator().rotation_step(uid(&db), 32).expect("step").expect("running").finished {}
    assert_eq!(
        t.get("docs", &DocId::new("p1").expect("id")).expect("get").expect("p").payload.key_generation,
        2
    );
}

#[test]
fn values_moved_between_tenants_still_fail_after_rotations() {
    let dir = TestDir::new();
    let (cf_a, cf_b) = {
        let db = dir.open();
        for name in ["alpha", "beta"] {
            let scope = tenant(&db, name);
            let t = db.tenant(&scope).expect("tenant");
            t.create_collection("docs", DIM, Metric::L2).expect("collection");
            t.upsert("docs", &(0..3).map(|i| point(i, i)).collect::<Vec<_>>()).expect("upsert");
            let name = TenantName::new(name).expect("n");
            let uid = db.operator().tenant_info(&name).expect("info").uid;
            db.operator().rotate_tenant_key(&name).expect("rotate");
            while !db.operator().rotation_step(uid, 100).expect("step").expect("running").finished {}
        }
        (cf_name(&db, "alpha"), cf_name(&db, "beta"))
    };
    {
        // Alpha's generation-2 vector value goes under beta's key for the same point.
        let raw = raw_db(&dir.data());
        let (a, b) = (raw_records(&raw, &cf_a, b'V'), raw_records(&raw, &cf_b, b'V'));
        assert_eq!(OwnerCipher::sealed_generation(&a[0].1), Some(2));
        raw.put_cf(&raw.cf_handle(&cf_b).expect("cf"), &b[0].0, &a[0].1).expect("put");
        raw.flush_wal(true).expect("flush");
    }
    let db = dir.open();
    let scope = db.operator().trusted_host_scope(&TenantName::new("beta").expect("n"), "t").expect("scope");
    let t = db.tenant(&scope).expect("tenant");
    let mut integrity = 0;
    for i in 0..3 {
        match t.get("docs", &DocId::new(format!("p{i}")).expect("id")) {
            Err(bulkhead_query::QueryError::Storage(StorageError::Integrity)) => integrity += 1,
            Ok(Some(p)) => assert_eq!(p.vector, vector(i, DIM)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(integrity, 1, "exactly the moved value fails to open");
}

#[test]
fn nothing_of_a_deleted_tenant_is_left_in_the_clear() {
    let dir = TestDir::new();
    let markers: Vec<Vec<u8>> = vec![b"zqgonetext".to_vec(), b"zqgoneid".to_vec(), b"zqgonetenant".to_vec()];
    {
        let db = dir.open();
        let scope = tenant(&db, "zqgonetenant");
        let t = db.tenant(&scope).expect("tenant");
        t.create_collection("docs", DIM, Metric::L2).expect("collection");
        let p = NewPoint::new(DocId::new("zqgoneid").expect("id"), vector(1, DIM), "zqgonetext");
        t.upsert("docs", &[p]).expect("upsert");
        db.operator().flush().expect("flush");
        db.delete_tenant(&TenantName::new("zqgonetenant").expect("n")).expect("delete");
        db.operator().flush().expect("flush");
    }
    drop(dir.open());
    nowhere_in(&dir.data(), &markers, "a marker of the deleted tenant");
}

#[test]
fn key_operations_leave_a_verifiable_audit_chain_that_outlives_the_tenant() {
    let dir = TestDir::new();
    let name = TenantName::new("acme").expect("n");
    let uid = {
        let db = dir.open();
        tenant(&db, "acme");
        let op = db.operator();
        let key = op.issue_api_key(&name, Role::Reader, "r", None).expect("key");
        op.revoke_api_key(&name, &key.key_id).expect("revoke");
        let uid = uid(&db);
        op.rotate_tenant_key(&name).expect("rotate");
        while !op.rotation_step(uid, 100).expect("step").expect("running").finished {}
        db.delete_tenant(&name).expect("delete");
        let events: Vec<String> =
            op.audit_events(uid).expect("events").into_iter().map(|e| e.operation).collect();
        assert_eq!(
            events,
            [
                "tenant-created",
                "api-key-issued",
                "api-key-revoked",
                "tenant-key-rotation-started",
                "tenant-key-rotation-finished",
                "tenant-deleted"
            ]
        );
        assert_eq!(
            op.audit_verify(uid).expect("verify"),
            bulkhead_query::AuditCheck { events: 6, first_seq: 0, first_broken: None, reason: None }
        );
        uid
    };
    // Tampering with the third event (raw disk access) breaks the chain there.
    {
        let raw = raw_db(&dir.data());
        let sys = raw.cf_handle("sys").expect("sys");
        let mut key = b"audit/".to_vec();
        key.extend_from_slice(uid.as_bytes());
        key.extend_from_slice(&2u64.to_be_bytes());
        let mut value = raw.get_cf(&sys, &key).expect("get").expect("event 2");
        value[0] ^= 1; // its time
        raw.put_cf(&sys, &key, value).expect("put");
        raw.flush_wal(true).expect("flush");
    }
    let db = dir.open();
    assert_eq!(db.operator().audit_verify(uid).expect("verify").first_broken, Some(2));
}

/// Every wrapped key of `owner` as stored now, by generation (read raw from a closed data
/// directory): the bytes a "shredded" key must not leave anywhere.
fn wrapped_keys(data: &Path, owner: &[u8; 16]) -> Vec<(u32, Vec<u8>)> {
    let raw = raw_db(data);
    let sys = raw.cf_handle("sys").expect("sys");
    let prefix = [b"keyring/".as_slice(), owner, b"/"].concat();
    raw.prefix_iterator_cf(&sys, &prefix)
        .map(|item| item.expect("entry"))
        .take_while(|(key, _)| key.starts_with(&prefix))
        .filter_map(|(key, value)| {
            let generation = <[u8; 4]>::try_from(&key[prefix.len()..]).ok()?;
            Some((u32::from_be_bytes(generation), value.to_vec()))
        })
        .collect()
}

/// Asserts that none of `needles` occurs in any file of the data directory (table files, logs,
/// manifest, options, info logs alike); `what` says what was found, for the failure.
fn nowhere_in(data: &Path, needles: &[Vec<u8>], what: &str) {
    assert!(!needles.is_empty());
    for file in crate::util::files_below(data) {
        let bytes = std::fs::read(&file).expect("read");
        for needle in needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                "{what} is still in {}",
                file.display()
            );
        }
    }
}

/// Crypto-shredding leaves nothing behind: after a tenant's deletion, and after a rotation
/// finishes, the destroyed wrapped keys are in no file of the data directory (not in a table file
/// under a tombstone, not in a write-ahead log), while the store is still open and after it closes.
#[test]
fn destroyed_wrapped_keys_are_in_no_file_of_the_data_directory() {
    let dir = TestDir::new();
    let (gone, kept) = {
        let db = dir.open();
        for name in ["gone", "kept"] {
            let scope = tenant(&db, name);
            let t = db.tenant(&scope).expect("tenant");
            t.create_collection("docs", DIM, Metric::L2).expect("collection");
            t.upsert("docs", &(0..50).map(|i| point(i, 1)).collect::<Vec<_>>()).expect("upsert");
        }
        // Some of the keys reach table files before the deletion, some stay in the log.
        db.operator().flush().expect("flush");
        let info =
            |name: &str| db.operator().tenant_info(&TenantName::new(name).expect("n")).expect("info").uid;
        (*info("gone").as_bytes(), *info("kept").as_bytes())
    };
    let destroyed: Vec<Vec<u8>> = wrapped_keys(&dir.data(), &gone).into_iter().map(|(_, k)| k).collect();
    assert_eq!(destroyed.len(), 2, "the naming key and generation 1");
    {
        let db = dir.open();
        db.delete_tenant(&TenantName::new("gone").expect("n")).expect("delete");
        nowhere_in(&dir.data(), &destroyed, "after delete, store open: a destroyed wrapped key");
    }
    nowhere_in(&dir.data(), &destroyed, "after delete, store closed: a destroyed wrapped key");

    // A finished rotation destroys generation 1 of "kept"; its naming key stays.
    let keys = wrapped_keys(&dir.data(), &kept);
    let generation_1: Vec<Vec<u8>> = keys.iter().filter(|(g, _)| *g == 1).map(|(_, k)| k.clone()).collect();
    let naming: Vec<u8> = keys.iter().find(|(g, _)| *g == 0).expect("naming key").1.clone();
    {
        let db = dir.open();
        let name = TenantName::new("kept").expect("n");
        db.operator().rotate_tenant_key(&name).expect("rotate");
        let uid = db.operator().tenant_info(&name).expect("info").uid;
        while !db.operator().rotation_step(uid, 16).expect("step").expect("running").finished {}
        nowhere_in(
            &dir.data(),
            &generation_1,
            "after a finished rotation, store open: a destroyed wrapped key",
        );
        let t = db.tenant(&db.operator().trusted_host_scope(&name, "test").expect("scope")).expect("tenant");
        assert_eq!(t.count("docs").expect("count"), 50, "everything still reads");
    }
    nowhere_in(
        &dir.data(),
        &generation_1,
        "after a finished rotation, store closed: a destroyed wrapped key",
    );
    let after = wrapped_keys(&dir.data(), &kept);
    assert_eq!(after.iter().map(|(g, _)| *g).collect::<Vec<_>>(), [0, 2]);
    assert!(after.contains(&(0, naming)), "the naming key is kept");
}
