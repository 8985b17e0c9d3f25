//! Large collections are searched through an HNSW segment built in the background: results stay
//! correct (writes, updates and deletes visible at once, before, during and after a build) and close to
//! the exact answer.

use crate::util::{TestDir, tenant, vector};
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

fn wait_for_graph(t: &Tenant<'_>) -> bulkhead_query::GraphStatus {
    let start = Instant::now();
    loop {
        let status = t.graph_status("docs").expect("status");
        if status.graph_points > 0 && !status.building && status.delta_points < THRESHOLD {
            return status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the background build never finished: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
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

    let check = |t: &Tenant<'_>, model: &BTreeMap<String, Vec<f32>>| {
        let mut found = 0;
        for s in 0..100u64 {
            let q = vector(500_000 + s, DIM);
            let hits = t.search("docs", &q, 10).expect("search");
            assert_eq!(hits.len(), 10);
            for hit in &hits {
                let v = model
                    .get(hit.id.as_str())
                    .unwrap_or_else(|| panic!("a deleted or unknown point came back"));
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
    };
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
