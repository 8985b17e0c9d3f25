//! Large collections are searched through an HNSW segment built in the background: results stay
//! correct (writes, updates and deletes visible at once, before, during and after a build) and close to
//! the exact answer.

use crate::util::{TestDir, tenant, vector, wait_until};
use bulkhead_query::{Database, DocId, Metric, NewPoint, Tenant};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const DIM: usize = 16;
const N: u64 = 3000;
const THRESHOLD: usize = 1000;

fn point(i: u64, seed: u64) -> NewPoint {
    NewPoint::new(DocId::new(format!("p{i}")).expect("id"), vector(seed, DIM), format!("text {i}"))
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn exact_top(model: &BTreeMap<String, Vec<f32>>, q: &[f32], k: usize) -> Vec<String> {
    let mut all: Vec<(f32, &String)> = model.iter().map(|(id, v)| (l2(q, v), id)).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    all.into_iter().take(k).map(|(_, id)| id.clone()).collect()
}

/// Searches 100 queries and checks every hit against the model: no deleted or unknown point, the
/// score of the current vector, and recall@10 of at least 0.9 against an exact scan.
fn check(t: &Tenant<'_>, model: &BTreeMap<String, Vec<f32>>) -> f64 {
    let mut found = 0;
    for s in 0..100u64 {
        let q = vector(500_000 + s, DIM);
        let hits = t.search("docs", &q, 10).expect("search");
        assert_eq!(hits.len(), 10);
        for hit in &hits {
            let v =
                model.get(hit.id.as_str()).unwrap_or_else(|| panic!("a deleted or unknown point came back"));
            let expected = l2(&q, v).sqrt();
            assert!(
                (hit.score - expected).abs() <= 1e-4 * expected.max(1.0),
                "the score is the current vector's"
            );
        }
        let exact = exact_top(model, &q, 10);
        found += hits.iter().filter(|h| exact.iter().any(|e| e == h.id.as_str())).count();
    }
    let recall = found as f64 / 1000.0;
    assert!(recall >= 0.9, "recall@10 {recall}");
    recall
}

fn wait_for_graph(t: &Tenant<'_>) -> bulkhead_query::GraphStatus {
    wait_until("the background build", || {
        let status = t.graph_status("docs").expect("status");
        (status.graph_points > 0 && !status.building && status.delta_points < THRESHOLD).then_some(status)
    })
}

#[test]
fn graph_search_stays_correct_through_writes_and_builds() {
    let dir = TestDir::new();
    let db = Database::open(&dir.data(), dir.master(), Default::default())
        .expect("open")
        .with_graph_threshold(THRESHOLD);
    let scope = tenant(&db, "acme");
    let t = db.tenant(&scope).expect("tenant");
    t.create_collection("docs", DIM, Metric::L2).expect("collection");
    let mut model: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    // Load the (empty) search state first so that the writes below go through it.
    assert!(t.search("docs", &vector(0, DIM), 1).expect("search").is_empty());
    for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
        let points: Vec<NewPoint> = chunk.iter().map(|&i| point(i, i)).collect();
        t.upsert("docs", &points).expect("upsert");
        for p in &points {
            model.insert(p.id.as_str().to_owned(), p.vector.clone());
        }
    }
    // Writes while the first build is (most likely) running: deletes and updates.
    for i in 0..50u64 {
        let id = DocId::new(format!("p{i}")).expect("id");
        if i % 2 == 0 {
            assert_eq!(t.delete("docs", &[id]).expect("delete"), 1);
            model.remove(&format!("p{i}"));
        } else {
            t.upsert("docs", &[point(i, 100_000 + i)]).expect("update");
            model.insert(format!("p{i}"), vector(100_000 + i, DIM));
        }
    }
    let status = wait_for_graph(&t);
    assert_eq!(
        status.graph_points + status.delta_points,
        model.len(),
        "every live point is in one place: {status:?}"
    );
    assert!(status.graph_points > 2000, "most points are served by the graph: {status:?}");

    check(&t, &model);
    // A wide ef explores much of this small graph and finds (nearly) the exact answer.
    let q = vector(31_337, DIM);
    let wide = t.search_with_ef("docs", &q, 10, Some(400)).expect("search");
    let exact = exact_top(&model, &q, 10);
    let overlap = wide.iter().filter(|h| exact.iter().any(|e| e == h.id.as_str())).count();
    assert!(wide.len() == 10 && overlap >= 9, "ef 400 found {overlap} of the exact 10");

    // After the build: an update moves a point to the query itself, a delete removes the best hit.
    let q = vector(777_777, DIM);
    let best = t.search("docs", &q, 1).expect("search")[0].id.clone();
    assert_eq!(t.delete("docs", std::slice::from_ref(&best)).expect("delete"), 1);
    model.remove(best.as_str());
    assert!(t.search("docs", &q, 10).expect("search").iter().all(|h| h.id != best));
    let mut moved = point(2999, 0);
    moved.vector = q.clone();
    t.upsert("docs", &[moved]).expect("update");
    model.insert("p2999".into(), q.clone());
    assert_eq!(t.search("docs", &q, 1).expect("search")[0].id.as_str(), "p2999");
    check(&t, &model);
}

/// Waits until the collection's segment is built and saved as a snapshot.
fn wait_for_snapshot(t: &Tenant<'_>) -> bulkhead_query::GraphStatus {
    wait_until("the snapshot's save", || Some(wait_for_graph(t)).filter(|status| status.snapshot_saved))
}

/// A database with one L2 collection of `N` points, its graph built and saved. Returns the model.
fn build_and_save(dir: &TestDir) -> BTreeMap<String, Vec<f32>> {
    let db = Database::open(&dir.data(), dir.master(), Default::default())
        .expect("open")
        .with_graph_threshold(THRESHOLD);
    let scope = tenant(&db, "acme");
    let t = db.tenant(&scope).expect("tenant");
    t.create_collection("docs", DIM, Metric::L2).expect("collection");
    let mut model = BTreeMap::new();
    for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
        let points: Vec<NewPoint> = chunk.iter().map(|&i| point(i, i)).collect();
        t.upsert("docs", &points).expect("upsert");
        model.extend(points.into_iter().map(|p| (p.id.as_str().to_owned(), p.vector)));
    }
    assert!(!t.search("docs", &vector(1, DIM), 1).expect("search").is_empty());
    let status = wait_for_snapshot(&t);
    assert_eq!(status.graph_points, N as usize, "{status:?}");
    model
}

/// The generation of the segment that served a search's first hit.
fn segment_generation(t: &Tenant<'_>, q: &[f32]) -> u64 {
    match t.search("docs", q, 1).expect("search")[0].index {
        bulkhead_query::IndexSource::Segment { generation } => generation,
        other => panic!("expected a segment hit, got {other:?}"),
    }
}

fn reopen(dir: &TestDir) -> Database {
    Database::open(&dir.data(), dir.master(), Default::default())
        .expect("open")
        .with_graph_threshold(THRESHOLD)
}

fn acme<'d>(db: &'d Database) -> Tenant<'d> {
    let name = bulkhead_query::TenantName::new("acme").expect("name");
    let scope = db.operator().trusted_host_scope(&name, "test").expect("scope");
    db.tenant(&scope).expect("tenant")
}

#[test]
fn a_saved_graph_serves_after_a_restart_and_later_writes_are_reconciled() {
    let dir = TestDir::new();
    let mut model = build_and_save(&dir);
    let generation = {
        let db = reopen(&dir);
        segment_generation(&acme(&db), &vector(3000, DIM))
    };
    {
        // Writes after the snapshot was saved, too few to start another build: the snapshot on
        // disk no longer matches five updated points and five deleted ones.
        let db = reopen(&dir);
        let t = acme(&db);
        assert!(!t.graph_status("docs").expect("status").loaded, "opening a database loads no index");
        for i in 0..5u64 {
            t.upsert("docs", &[point(i, 200_000 + i)]).expect("update");
            model.insert(format!("p{i}"), vector(200_000 + i, DIM));
            let gone = DocId::new(format!("p{}", 100 + i)).expect("id");
            assert_eq!(t.delete("docs", &[gone]).expect("delete"), 1);
            model.remove(&format!("p{}", 100 + i));
        }
    }
    let db = reopen(&dir);
    let t = acme(&db);
    let started = Instant::now();
    check(&t, &model);
    let status = t.graph_status("docs").expect("status");
    assert_eq!(
        (status.loaded, status.graph_points, status.delta_points, status.building, status.snapshot_saved),
        (true, N as usize - 10, 5, false, true),
        "the snapshot serves every unchanged point, no rebuild started ({:?} after load)",
        started.elapsed()
    );
    // The updated points are found at their new place, in the delta; the rest is served by the
    // same segment as before the restart.
    for i in 0..5u64 {
        let hit = &t.search("docs", &vector(200_000 + i, DIM), 1).expect("search")[0];
        assert_eq!(hit.id.as_str(), format!("p{i}"));
        assert_eq!(hit.index, bulkhead_query::IndexSource::Delta);
    }
    assert_eq!(segment_generation(&t, &vector(3000, DIM)), generation);
}

#[test]
fn a_damaged_snapshot_is_ignored_and_rebuilt_from_the_records() {
    use bulkhead_storage::{CollectionName, Store, StoreOptions, TenantName};
    let dir = TestDir::new();
    let model = build_and_save(&dir);
    // Replace the snapshot, through the storage API (so it is sealed and authentic), first with a
    // truncated copy of itself and then with garbage: both must be refused after decryption.
    let saved = {
        let store = Store::open(&dir.data(), dir.master(), StoreOptions::default()).expect("store");
        let scope = store.trusted_host_scope(&TenantName::new("acme").expect("n"), "test").expect("scope");
        let handle = store.tenant(&scope).expect("handle");
        let info = handle.collection(&CollectionName::new("docs").expect("n")).expect("info");
        let mut segments = handle.load_index_snapshots(&info).expect("load");
        assert_eq!(segments.len(), 1, "one segment after the bulk load settles");
        segments.pop().expect("saved").1.expect("opens").to_vec()
    };
    for damaged in [saved[..saved.len() / 2].to_vec(), b"not a snapshot".to_vec()] {
        {
            let store = Store::open(&dir.data(), dir.master(), StoreOptions::default()).expect("store");
            let scope =
                store.trusted_host_scope(&TenantName::new("acme").expect("n"), "test").expect("scope");
            let handle = store.tenant(&scope).expect("handle");
            let info = handle.collection(&CollectionName::new("docs").expect("n")).expect("info");
            handle.index_snapshot_sink(&info).expect("sink").save(&damaged).expect("save");
        }
        let db = reopen(&dir);
        let t = acme(&db);
        check(&t, &model);
        let status = t.graph_status("docs").expect("status");
        assert_eq!(status.graph_points, 0, "nothing is served from the damaged snapshot: {status:?}");
        assert_eq!(status.delta_points, N as usize);
        // The rebuild runs and saves a good snapshot again.
        let status = wait_for_snapshot(&t);
        assert_eq!(status.graph_points, N as usize);
        check(&t, &model);
    }
}

#[test]
fn least_recently_used_collections_are_evicted_over_the_memory_budget() {
    let dir = TestDir::new();
    let db = Database::open(&dir.data(), dir.master(), Default::default()).expect("open");
    let scope = tenant(&db, "acme");
    let t = db.tenant(&scope).expect("tenant");
    let loaded = |name: &str| t.graph_status(name).expect("status").loaded;
    // Under the default budget, a collection's first write loads its search state.
    t.create_collection("one", DIM, Metric::L2).expect("collection");
    t.upsert("one", &(0..800).map(|i| point(i, i)).collect::<Vec<_>>()).expect("upsert");
    assert!(loaded("one"));
    // With no room in the budget, a write leaves its collection unloaded.
    db.set_index_memory_budget(0);
    for name in ["two", "three"] {
        t.create_collection(name, DIM, Metric::L2).expect("collection");
        let points: Vec<NewPoint> = (0..800).map(|i| point(i, i)).collect();
        t.upsert(name, &points).expect("upsert");
    }
    assert!(loaded("one") && !loaded("two") && !loaded("three"));
    t.search("one", &vector(1, DIM), 1).expect("search");
    let one = t.graph_status("one").expect("status").memory_bytes;
    assert!(one >= 800 * DIM * 4, "the estimate covers at least the raw vectors: {one}");
    assert_eq!(db.index_memory(), one);
    // Room for two collections, not three.
    db.set_index_memory_budget(one * 5 / 2);
    t.search("two", &vector(1, DIM), 1).expect("search");
    assert!(loaded("one") && loaded("two"));
    t.search("one", &vector(2, DIM), 1).expect("search"); // "two" is now the least recently used
    t.search("three", &vector(1, DIM), 1).expect("search");
    assert!(loaded("one") && !loaded("two") && loaded("three"));
    assert!(db.index_memory() <= one * 5 / 2);
    // An evicted collection loads again on its next search and answers the same.
    let hits = t.search("two", &vector(7, DIM), 3).expect("search");
    assert_eq!(hits[0].id.as_str(), "p7");
    assert!(loaded("two") && !loaded("one"));
    // A budget of zero keeps only the collection in use.
    db.set_index_memory_budget(0);
    t.search("three", &vector(1, DIM), 1).expect("search");
    t.search("one", &vector(1, DIM), 1).expect("search");
    assert!(loaded("one") && !loaded("two") && !loaded("three"));
    // With the budget spent, a write does not load its collection (nor evict another for it): it
    // waits for its next search, so writes that go round many collections do not reload each.
    t.upsert("two", &[point(900, 900)]).expect("upsert");
    assert!(loaded("one") && !loaded("two"));
    let hits = t.search("two", &vector(900, DIM), 1).expect("search");
    assert_eq!(hits[0].id.as_str(), "p900");
}

/// Waits until no background job runs and everything is saved (or there is no segment).
fn wait_idle(t: &Tenant<'_>) -> bulkhead_query::GraphStatus {
    wait_until("the jobs to settle", || {
        let status = t.graph_status("docs").expect("status");
        (!status.building && (status.segments == 0 || status.snapshot_saved)).then_some(status)
    })
}

/// Upserts the points `range` (vector seed = index) and records them in the model.
fn load(t: &Tenant<'_>, model: &mut BTreeMap<String, Vec<f32>>, range: std::ops::Range<u64>) {
    let points: Vec<NewPoint> = range.map(|i| point(i, i)).collect();
    for chunk in points.chunks(100) {
        t.upsert("docs", chunk).expect("upsert");
    }
    model.extend(points.into_iter().map(|p| (p.id.as_str().to_owned(), p.vector)));
}

/// The segment generations that serve the model's points.
fn generations(t: &Tenant<'_>, model: &BTreeMap<String, Vec<f32>>) -> std::collections::BTreeSet<u64> {
    model
        .values()
        .step_by(37)
        .filter_map(|v| match t.search("docs", v, 1).expect("search")[0].index {
            bulkhead_query::IndexSource::Segment { generation } => Some(generation),
            bulkhead_query::IndexSource::Delta => None,
        })
        .collect()
}

/// Creates the collection (on a database whose threshold is 2,000), loads it and writes 2,000
/// points: one flush of exactly the threshold, one segment. Returns the model and the segment.
fn one_segment_of_2000(t: &Tenant<'_>) -> (BTreeMap<String, Vec<f32>>, std::collections::BTreeSet<u64>) {
    t.create_collection("docs", DIM, Metric::L2).expect("collection");
    assert!(t.search("docs", &vector(0, DIM), 1).expect("search").is_empty());
    let mut model = BTreeMap::new();
    load(t, &mut model, 0..2_000);
    let status = wait_idle(t);
    assert_eq!((status.segments, status.graph_points, status.delta_points), (1, 2_000, 0), "{status:?}");
    let base = generations(t, &model);
    assert_eq!(base.len(), 1);
    (model, base)
}

#[test]
fn a_small_segment_is_flushed_beside_a_large_one_then_merged_into_it() {
    let dir = TestDir::new();
    let db = reopen(&dir).with_graph_threshold(2_000);
    let scope = tenant(&db, "acme");
    let t = db.tenant(&scope).expect("tenant");
    let (mut model, base) = one_segment_of_2000(&t);

    // With a threshold of 200, the large segment (over four thresholds) is not grown by a flush:
    // the next 200 points get a segment of their own, and 200 beside 2,000 is not yet worth a merge.
    db.set_graph_threshold(200);
    load(&t, &mut model, 2_000..2_200);
    let status = wait_idle(&t);
    assert_eq!((status.segments, status.graph_points, status.delta_points), (2, 2_200, 0), "{status:?}");
    assert_eq!(generations(&t, &model).len(), 2, "a search fans out over both segments");
    assert!(base.is_subset(&generations(&t, &model)), "the large segment is untouched");
    check(&t, &model);

    // Both segments are saved, listed, and load again after a restart.
    drop(t);
    drop(db);
    let db = reopen(&dir).with_graph_threshold(200);
    let t = acme(&db);
    check(&t, &model);
    let status = t.graph_status("docs").expect("status");
    assert_eq!(
        (status.segments, status.graph_points, status.delta_points, status.building),
        (2, 2_200, 0, false),
        "{status:?}"
    );

    // The next flush grows the small segment to 400, which is now an eighth of the large one:
    // it is merged into the large one (extended, so none of its tombstones are dropped either).
    let q = vector(2_000, DIM);
    assert_eq!(t.delete("docs", &[DocId::new("p5").expect("id")]).expect("delete"), 1);
    model.remove("p5");
    load(&t, &mut model, 2_200..2_400);
    let status = wait_idle(&t);
    assert_eq!(
        (status.segments, status.graph_points, status.delta_points, status.tombstones),
        (1, 2_399, 0, 1),
        "{status:?}"
    );
    let merged = generations(&t, &model);
    assert_eq!(merged.len(), 1);
    assert!(merged.is_disjoint(&base), "the merged segment is a new one");
    assert_eq!(t.search("docs", &q, 1).expect("search")[0].id.as_str(), "p2000");
    check(&t, &model);

    // After a restart the one merged segment serves everything.
    drop(t);
    drop(db);
    let db = reopen(&dir).with_graph_threshold(200);
    let t = acme(&db);
    check(&t, &model);
    assert_eq!(generations(&t, &model), merged);
    let status = t.graph_status("docs").expect("status");
    assert_eq!((status.segments, status.graph_points, status.delta_points), (1, 2_399, 0), "{status:?}");
}

#[test]
fn deleting_a_fifth_of_a_segment_purges_its_tombstones() {
    let dir = TestDir::new();
    let db = reopen(&dir).with_graph_threshold(2_000);
    let scope = tenant(&db, "acme");
    let t = db.tenant(&scope).expect("tenant");
    let (mut model, before) = one_segment_of_2000(&t);
    // (A purge also needs a quarter threshold of tombstones, 50 here.)
    db.set_graph_threshold(200);

    // 400 deletes (20%) are tolerated as tombstones; the 401st tips the segment over.
    let ids = |range: std::ops::Range<u64>| -> Vec<DocId> {
        range.map(|i| DocId::new(format!("p{i}")).expect("id")).collect()
    };
    assert_eq!(t.delete("docs", &ids(0..400)).expect("delete"), 400);
    (0..400).for_each(|i| drop(model.remove(&format!("p{i}"))));
    let status = wait_idle(&t);
    assert_eq!((status.tombstones, status.graph_points), (400, 1_600), "{status:?}");
    check(&t, &model);
    assert_eq!(t.delete("docs", &ids(400..401)).expect("delete"), 1);
    model.remove("p400");
    // Searches and writes go on while the purge runs.
    t.upsert("docs", &[point(5_000, 5_000)]).expect("upsert");
    model.insert("p5000".into(), vector(5_000, DIM));
    check(&t, &model);
    let status = wait_idle(&t);
    assert_eq!(
        (status.segments, status.tombstones, status.graph_points, status.delta_points),
        (1, 0, 1_599, 1),
        "the rebuilt segment holds live points only: {status:?}"
    );
    assert!(generations(&t, &model).is_disjoint(&before));
    check(&t, &model);
}

#[test]
fn a_delta_below_the_threshold_is_flushed_once_writes_stop() {
    let dir = TestDir::new();
    let clock = bulkhead_query::ManualClock::new();
    let db = dir.open_on(&clock).with_graph_threshold(2_000);
    let scope = tenant(&db, "acme");
    let t = db.tenant(&scope).expect("tenant");
    let (mut model, base) = one_segment_of_2000(&t);
    // 300 points: under the threshold, so the delta keeps them while writes go on.
    load(&t, &mut model, 2_000..2_300);
    let status = t.graph_status("docs").expect("status");
    assert_eq!((status.delta_points, status.building), (300, false), "{status:?}");
    // A second without writes; the next status read (or search) starts the flush, which extends
    // the one segment (2,000 points is small next to the threshold).
    clock.advance(Duration::from_millis(1_100));
    t.graph_status("docs").expect("status");
    let status = wait_idle(&t);
    assert_eq!((status.segments, status.graph_points, status.delta_points), (1, 2_300, 0), "{status:?}");
    assert!(generations(&t, &model).is_disjoint(&base));
    check(&t, &model);
    // A delta under the floor (256 points) stays where it is.
    load(&t, &mut model, 2_300..2_400);
    clock.advance(Duration::from_millis(1_100));
    check(&t, &model);
    let status = wait_idle(&t);
    assert_eq!((status.graph_points, status.delta_points), (2_300, 100), "{status:?}");
}

/// Background jobs run on the database's bounded pool and count in the memory budget with what
/// they hold; a collection whose job is running can still be evicted, and its job is cancelled
/// (it stops, its result is never installed) instead of finishing for nobody.
#[test]
fn a_collection_with_a_job_running_is_evicted_and_its_job_cancelled() {
    const BIG: u64 = 60_000;
    const WIDE: usize = 64;
    let dir = TestDir::new();
    let db = Database::open(&dir.data(), dir.master(), Default::default())
        .expect("open")
        .with_graph_threshold(BIG as usize);
    let scope = tenant(&db, "acme");
    let t = db.tenant(&scope).expect("tenant");
    t.create_collection("big", WIDE, Metric::L2).expect("collection");
    t.create_collection("small", DIM, Metric::L2).expect("collection");
    t.search("big", &vector(1, WIDE), 1).expect("load big while empty");
    for chunk in 0..BIG / 1000 {
        let points: Vec<NewPoint> = (chunk * 1000..(chunk + 1) * 1000)
            .map(|i| NewPoint::new(DocId::new(format!("b{i}")).expect("id"), vector(i, WIDE), "t"))
            .collect();
        t.upsert("big", &points).expect("upsert");
    }
    // The flush of 60,000 points has started; its memory is counted while it runs: the copied
    // vectors and the graph it builds, on top of the delta's own copy.
    let status = t.graph_status("big").expect("status");
    assert!(status.building, "a flush runs");
    let delta_only = BIG as usize * WIDE * 4;
    assert!(status.memory_bytes >= 2 * delta_only, "the job's input is counted: {}", status.memory_bytes);
    assert_eq!(db.index_jobs().running + db.index_jobs().queued, 1);
    // Loading another collection under a budget of zero evicts "big", its job and all.
    db.set_index_memory_budget(0);
    // (With the budget spent, the write does not load "small"; its search does.)
    t.upsert("small", &(0..10).map(|i| point(i, i)).collect::<Vec<_>>()).expect("upsert");
    assert!(!t.graph_status("small").expect("status").loaded);
    t.search("small", &vector(1, DIM), 1).expect("search");
    assert!(!t.graph_status("big").expect("status").loaded, "evicted although building");
    wait_until("the job's cancellation", || {
        let counts = db.index_jobs();
        (counts.cancelled > 0 && counts.running == 0).then_some(())
    });
    let counts = db.index_jobs();
    assert_eq!((counts.finished, counts.cancelled, counts.running), (0, 1, 0), "{counts:?}");
    // Everything is still there: the collection loads again from its records and answers.
    db.set_index_memory_budget(usize::MAX);
    let hits = t.search("big", &vector(123, WIDE), 1).expect("search");
    assert_eq!(hits[0].id.as_str(), "b123");
    assert_eq!(t.count("big").expect("count"), BIG);
}
