//! Isolation tiers (issue 10): a shared-tier tenant lives in the one shared column family under its
//! uid prefix, costs no column family, is deleted with one range delete, and rotates only its own
//! records; a dedicated tenant has a RocksDB instance of its own, where the operator puts it; a
//! tenant moves between the three online. (The foundation's no-plaintext, swap and isolation tests
//! run in every tier too: `util::TIERS`.)

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
        let (gone, kept) = (place(&db, &dir.data(), "gone"), place(&db, &dir.data(), "kept"));
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
        (place(&db, &dir.data(), "rotated"), place(&db, &dir.data(), "other"))
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

/// What a tenant's records answer: the ids and scores of a few searches, and its count.
fn answers(db: &bulkhead_query::Database, who: &str) -> (Vec<Vec<(String, u32)>>, u64) {
    let scope = db.operator().trusted_host_scope(&name(who), "test").expect("scope");
    let t = db.tenant(&scope).expect("tenant");
    let searches = (0..5)
        .map(|q| {
            let hits = t.search("docs", &vector(1_000 + q, 4), 10).expect("search");
            hits.iter().map(|h| (h.id.as_str().to_owned(), h.score.to_bits())).collect()
        })
        .collect();
    (searches, t.count("docs").expect("count"))
}

/// Where the raw directory holds `uid`'s records: whether in the shared family, whether its own
/// family exists, and whether its own instance does (the store must be closed).
fn places(dir: &TestDir, uid: &[u8; 16]) -> [bool; 3] {
    let raw = raw_db(&dir.data());
    let shared = raw.cf_handle("shared").is_some_and(|cf| {
        raw.iterator_cf(&cf, rocksdb::IteratorMode::Start).any(|r| r.expect("iter").0.starts_with(uid))
    });
    let own = raw.cf_handle(&format!("t-{}", hex::encode(uid))).is_some();
    let moving = raw.cf_handle("sys").is_some_and(|cf| {
        raw.iterator_cf(&cf, rocksdb::IteratorMode::Start).any(|r| r.expect("iter").0.starts_with(b"moving/"))
    });
    assert!(!moving, "no tier-move record is left after an open");
    let dedicated = crate::util::dedicated_instance(&dir.data().join("dedicated"), uid).exists();
    [shared, own, dedicated]
}

/// What [`places`] finds for a tenant in `tier`.
fn only(tier: Placement) -> [bool; 3] {
    [tier == Placement::Shared, tier == Placement::OwnColumnFamily, tier == Placement::Dedicated]
}

#[test]
fn a_tenant_moves_between_tiers_and_answers_the_same() {
    let dir = TestDir::in_tier(Placement::Shared);
    let (uid, before) = {
        let db = dir.open();
        for who in ["mover", "stays"] {
            let scope = tenant(&db, who);
            let t = db.tenant(&scope).expect("tenant");
            t.create_collection("docs", 4, Metric::L2).expect("collection");
            t.upsert("docs", &points(who, 300)).expect("upsert");
        }
        let uid = *db.operator().tenant_info(&name("mover")).expect("info").uid.as_bytes();
        (uid, (answers(&db, "mover"), answers(&db, "stays")))
    };
    assert_eq!(places(&dir, &uid), only(Placement::Shared));
    for target in [Placement::OwnColumnFamily, Placement::Dedicated, Placement::Shared, Placement::Dedicated]
    {
        {
            let db = dir.open();
            let mover = db.operator().tenant_info(&name("mover")).expect("info").uid;
            let mut reported = Vec::new();
            // Each step as the callback hears it, and as `move_status` shows it meanwhile.
            let done = db
                .operator()
                .move_tenant(&name("mover"), target, |p| reported.push((p, db.operator().move_status(mover))))
                .expect("move");
            assert!(done.switched && done.copied >= 601 && done.target == target, "{done:?}");
            assert!(reported.last().is_some_and(|(p, _)| p.switched), "the switch is reported");
            assert!(
                reported.iter().all(|(p, shown)| *shown == Some(*p)),
                "move_status shows it: {reported:?}"
            );
            assert_eq!(db.operator().move_status(mover), None, "no move runs once it returned");
            assert_eq!(db.operator().tenant_info(&name("mover")).expect("info").placement, target);
            assert_eq!((answers(&db, "mover"), answers(&db, "stays")), before, "same answers");
            let uid = db.operator().tenant_info(&name("mover")).expect("info").uid;
            let events = db.operator().audit_events(uid).expect("events");
            assert!(events.iter().any(|e| e.operation == "tenant-moved"), "the move is audited");
        }
        assert_eq!(places(&dir, &uid), only(target), "{target:?}: in exactly one place");
        let db = dir.open();
        assert_eq!((answers(&db, "mover"), answers(&db, "stays")), before, "same answers after a reopen");
    }
}

#[test]
fn a_move_under_reads_and_writes_loses_no_acknowledged_write() {
    let dir = TestDir::in_tier(Placement::Shared);
    let db = dir.open();
    let scope = tenant(&db, "busy");
    let t = db.tenant(&scope).expect("tenant");
    t.create_collection("docs", 4, Metric::L2).expect("collection");
    for chunk in points("seed", 2_000).chunks(1_000) {
        t.upsert("docs", chunk).expect("upsert");
    }
    drop(t);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let written = std::sync::atomic::AtomicUsize::new(0);
    let (acked, reads) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut acked = Vec::new();
            for i in 0.. {
                if stop.load(std::sync::atomic::Ordering::Acquire) {
                    break;
                }
                let scope = db.operator().trusted_host_scope(&name("busy"), "test").expect("scope");
                let point = points(&format!("w{i}"), 1);
                match db.tenant(&scope).expect("tenant").upsert("docs", &point) {
                    Ok(_) => {
                        acked.push(format!("w{i}-0"));
                        written.fetch_add(1, std::sync::atomic::Ordering::Release);
                    }
                    Err(e) => panic!("write {i}: {e:?}"),
                }
            }
            acked
        });
        let reader = s.spawn(|| {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let scope = db.operator().trusted_host_scope(&name("busy"), "test").expect("scope");
                let t = db.tenant(&scope).expect("tenant");
                // The hits of the writer's latest points too: a handle reads where the tenant is now.
                assert_eq!(t.search("docs", &vector(reads, 4), 5).expect("a read during the move").len(), 5);
                assert!(t.count("docs").expect("count") >= 2_000);
                reads += 1;
            }
            reads
        });
        // Moves back and forth until a few hundred writes have landed while they ran.
        let mut moves = 0;
        while moves < 4 || written.load(std::sync::atomic::Ordering::Acquire) < 300 {
            let target = [Placement::OwnColumnFamily, Placement::Dedicated, Placement::Shared][moves % 3];
            db.operator().move_tenant(&name("busy"), target, |_| {}).expect("move");
            moves += 1;
            assert!(moves < 1_000, "the writer made no progress");
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
        (writer.join().expect("writer"), reader.join().expect("reader"))
    });
    assert!(!acked.is_empty() && reads > 0, "the load ran: {} writes, {reads} reads", acked.len());
    let scope = db.operator().trusted_host_scope(&name("busy"), "test").expect("scope");
    let t = db.tenant(&scope).expect("tenant");
    assert_eq!(t.count("docs").expect("count"), 2_000 + acked.len() as u64);
    for id in &acked {
        assert!(t.get("docs", &DocId::new(id.clone()).expect("id")).expect("get").is_some(), "{id} lost");
    }
}

#[test]
fn a_move_killed_at_any_moment_leaves_the_tenant_whole_in_one_place() {
    let dir = TestDir::in_tier(Placement::Shared);
    let (uid, before) = {
        let db = dir.open();
        let scope = tenant(&db, "mover");
        let t = db.tenant(&scope).expect("tenant");
        t.create_collection("docs", 4, Metric::L2).expect("collection");
        for chunk in points("m", 3_000).chunks(1_000) {
            t.upsert("docs", chunk).expect("upsert");
        }
        drop(t);
        (*scope.tenant_uid().as_bytes(), answers(&db, "mover"))
    };
    // Moves go partitioned, shared, dedicated and round again: the kills land in each kind of move.
    for (round, kill_after) in [(1, 1), (2, 2), (3, 3), (4, 5), (5, 4), (6, 7)] {
        crate::util::crash_child(&dir, bulkhead_tests::crash::Workload::TierMove, round, kill_after);
        let placement = {
            let db = dir.open();
            assert_eq!(answers(&db, "mover"), before, "round {round}: the tenant answers as before");
            db.operator().tenant_info(&name("mover")).expect("info").placement
        };
        assert_eq!(
            places(&dir, &uid),
            only(placement),
            "round {round}: in one place, where the registry says"
        );
    }
}

#[test]
fn idle_tenants_are_unloaded_past_the_limit_and_come_back_whole() {
    let dir = TestDir::in_tier(Placement::Shared);
    let options = bulkhead_query::StoreOptions {
        default_placement: Placement::Shared,
        max_loaded_tenants: 4,
        ..bulkhead_query::StoreOptions::default()
    };
    let db = bulkhead_query::Database::open(&dir.data(), dir.master(), options).expect("open");
    let held_scope = tenant(&db, "held");
    let held = db.tenant(&held_scope).expect("tenant");
    held.create_collection("docs", 4, Metric::L2).expect("collection");
    for round in 0..3 {
        for i in 0..12 {
            let who = format!("t{i}");
            if round == 0 {
                tenant(&db, &who);
            }
            let scope = db.operator().trusted_host_scope(&name(&who), "test").expect("scope");
            let t = db.tenant(&scope).expect("tenant");
            if round == 0 {
                t.create_collection("docs", 4, Metric::L2).expect("collection");
            }
            t.upsert("docs", &points(&format!("{who}-r{round}"), 5)).expect("upsert");
            assert_eq!(t.count("docs").expect("count"), 5 * (round + 1), "{who} round {round}");
            drop(t);
            // A tenant in use is never unloaded: the held handle keeps writing through its state.
            held.upsert("docs", &points(&format!("held-{round}-{i}"), 1)).expect("held writes");
            assert!(db.loaded_tenant_count() <= 5, "{} loaded", db.loaded_tenant_count());
        }
    }
    assert_eq!(held.count("docs").expect("count"), 36);
    drop(held);
    drop(db);
    let db = dir.open();
    for i in 0..12 {
        assert_eq!(answers(&db, &format!("t{i}")).1, 15, "t{i} after a reopen");
    }
}

/// Every key of every column family of the raw instance in `dir` but `sys` and `intent` (a
/// dedicated instance's intents: main-instance batches, keyed by number).
fn raw_keys(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let raw = raw_db(dir);
    let mut keys = Vec::new();
    for cf in rocksdb::DB::list_cf(&rocksdb::Options::default(), dir).expect("list") {
        if cf == "sys" || cf == "intent" {
            continue;
        }
        let handle = raw.cf_handle(&cf).expect("cf");
        keys.extend(
            raw.iterator_cf(&handle, rocksdb::IteratorMode::Start).map(|r| r.expect("iter").0.to_vec()),
        );
    }
    keys
}

#[test]
fn a_dedicated_tenant_has_an_instance_of_its_own_where_the_operator_puts_it() {
    let dir = TestDir::in_tier(Placement::Dedicated);
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let root = elsewhere.path().join("disk2");
    let options = bulkhead_query::StoreOptions {
        default_placement: Placement::Dedicated,
        dedicated_root: Some(root.clone()),
        ..bulkhead_query::StoreOptions::default()
    };
    let open = || bulkhead_query::Database::open(&dir.data(), dir.master(), options.clone()).expect("open");
    let (solo, other, before) = {
        let db = open();
        for who in ["solo", "other"] {
            let scope = tenant(&db, who);
            let t = db.tenant(&scope).expect("tenant");
            t.create_collection("docs", 4, Metric::L2).expect("collection");
            t.upsert("docs", &points(who, 200)).expect("upsert");
        }
        db.operator().create_tenant_in(&name("small"), Placement::Shared).expect("shared tenant");
        let scope = db.operator().trusted_host_scope(&name("small"), "test").expect("scope");
        let t = db.tenant(&scope).expect("tenant");
        t.create_collection("docs", 4, Metric::L2).expect("collection");
        t.upsert("docs", &points("small", 20)).expect("upsert");
        let uid = |who: &str| *db.operator().tenant_info(&name(who)).expect("info").uid.as_bytes();
        (uid("solo"), uid("other"), (answers(&db, "solo"), answers(&db, "other"), answers(&db, "small")))
    };
    let own = |uid: &[u8; 16]| crate::util::dedicated_instance(&root, uid);
    assert!(own(&solo).join("CURRENT").exists(), "an instance in its own directory, on the other path");
    assert!(!dir.data().join("dedicated").exists(), "nothing under the default root");
    // Its records are in its instance, and only there: the main instance holds none, nor the other's.
    for uid in [solo, other] {
        assert!(raw_keys(&dir.data()).iter().all(|k| !k.starts_with(&uid)), "no record in the main instance");
        let keys = raw_keys(&own(&uid));
        assert!(keys.len() >= 400, "{} keys", keys.len());
        assert!(keys.iter().all(|k| k.starts_with(&uid)), "only its own records in its instance");
    }
    {
        let db = open();
        assert_eq!(
            (answers(&db, "solo"), answers(&db, "other"), answers(&db, "small")),
            before,
            "after a reopen"
        );
        db.delete_tenant(&name("solo")).expect("delete");
        assert!(!own(&solo).exists(), "deleting a dedicated tenant removes its directory");
        assert_eq!(answers(&db, "other"), before.1, "the other dedicated tenant is untouched");
    }
    // A dedicated tenant whose directory is not there (moved away) is unavailable, with its cause;
    // the others are served, and it comes back with its directory.
    let aside = elsewhere.path().join("aside");
    std::fs::rename(own(&other), &aside).expect("move the directory away");
    {
        let db = open();
        match db.operator().trusted_host_scope(&name("other"), "test") {
            Err(StorageError::TenantUnavailable { cause }) => assert_eq!(cause, "dedicated-instance-missing"),
            other => panic!("{other:?}"),
        }
        assert_eq!(answers(&db, "small"), before.2, "the others are served");
    }
    std::fs::rename(&aside, own(&other)).expect("put it back");
    let db = open();
    assert_eq!(answers(&db, "other"), before.1, "back with its directory");
}
