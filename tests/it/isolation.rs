//! Isolation: two tenants with identical collection names, ids and vectors; after every one of many
//! random operations, every read and search through one tenant's scope sees exactly that tenant's data.

use crate::util::{TestDir, tenant, vector};
use bulkhead_query::{Database, DocId, Metric, NewPoint, Placement, TenantScope};
use proptest::prelude::*;
use std::collections::BTreeMap;

const DIM: usize = 8;
const IDS: u8 = 12;

#[derive(Debug, Clone)]
enum Op {
    /// Upsert id with vector seed into tenant 0, 1, or both (2).
    Upsert {
        who: u8,
        id: u8,
        seed: u64,
    },
    Delete {
        who: u8,
        id: u8,
    },
    Search {
        who: u8,
        seed: u64,
        k: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 0..IDS, 0u64..1000).prop_map(|(who, id, seed)| Op::Upsert { who, id, seed }),
        1 => (0u8..3, 0..IDS).prop_map(|(who, id)| Op::Delete { who, id }),
        2 => (0u8..2, 0u64..1000, 1usize..20).prop_map(|(who, seed, k)| Op::Search { who, seed, k }),
    ]
}

type Model = BTreeMap<String, (Vec<f32>, String)>;

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn check_tenant(db: &Database, scope: &TenantScope, name: &str, model: &Model) {
    let t = db.tenant(scope).expect("tenant");
    assert_eq!(t.count("docs").expect("count"), model.len() as u64, "{name}: count");
    for i in 0..IDS {
        let id = format!("doc-{i}");
        let got = t.get("docs", &DocId::new(id.clone()).expect("id")).expect("get");
        match (got, model.get(&id)) {
            (None, None) => {}
            (Some(point), Some((vector, text))) => {
                assert_eq!(&point.payload.text, text, "{name}: text of {id}");
                assert_eq!(&point.vector, vector, "{name}: vector of {id}");
            }
            (got, want) => panic!("{name}: {id} present={} expected={}", got.is_some(), want.is_some()),
        }
    }
}

fn run(ops: Vec<Op>, tier: Placement) {
    let dir = TestDir::in_tier(tier);
    let db = dir.open();
    let names = ["left", "right"];
    let scopes: Vec<TenantScope> = names.iter().map(|n| tenant(&db, n)).collect();
    for scope in &scopes {
        db.tenant(scope).expect("tenant").create_collection("docs", DIM, Metric::L2).expect("collection");
    }
    let mut models = [Model::new(), Model::new()];
    for op in ops {
        match op {
            Op::Upsert { who, id, seed } => {
                for t in 0..2 {
                    if who == 2 || who == t as u8 {
                        let id = format!("doc-{id}");
                        let text = format!("{} {seed}", names[t]);
                        let v = vector(seed, DIM);
                        let point =
                            NewPoint::new(DocId::new(id.clone()).expect("id"), v.clone(), text.clone());
                        db.tenant(&scopes[t]).expect("tenant").upsert("docs", &[point]).expect("upsert");
                        models[t].insert(id, (v, text));
                    }
                }
            }
            Op::Delete { who, id } => {
                for t in 0..2 {
                    if who == 2 || who == t as u8 {
                        let id = format!("doc-{id}");
                        let removed = db
                            .tenant(&scopes[t])
                            .expect("tenant")
                            .delete("docs", &[DocId::new(id.clone()).expect("id")])
                            .expect("delete");
                        assert_eq!(removed, usize::from(models[t].remove(&id).is_some()));
                    }
                }
            }
            Op::Search { who, seed, k } => {
                let t = who as usize;
                let q = vector(seed + 10_000, DIM);
                let hits = db.tenant(&scopes[t]).expect("tenant").search("docs", &q, k).expect("search");
                let mut expected: Vec<(f32, &String)> =
                    models[t].iter().map(|(id, (v, _))| (l2(&q, v), id)).collect();
                expected.sort_by(|a, b| a.0.total_cmp(&b.0));
                expected.truncate(k);
                assert_eq!(hits.len(), expected.len(), "min(k, n) results");
                // Rank by rank, the hit is as close as the model's answer (equal vectors tie, and
                // ties may come in either order), and it is this tenant's own point.
                for (hit, (distance, _)) in hits.iter().zip(&expected) {
                    let (v, text) = models[t].get(hit.id.as_str()).expect("hit is in this tenant's model");
                    assert_eq!(l2(&q, v), *distance, "rank of {}", hit.id.as_str());
                    assert_eq!(&hit.text, text);
                    assert!(
                        hit.text.starts_with(names[t]),
                        "search through {} returned the other tenant's text",
                        names[t]
                    );
                }
            }
        }
        for t in 0..2 {
            check_tenant(&db, &scopes[t], names[t], &models[t]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]
    #[test]
    fn tenants_never_see_each_other(ops in proptest::collection::vec(op(), 1..60)) {
        for tier in crate::util::TIERS {
            run(ops.clone(), tier);
        }
    }
}
