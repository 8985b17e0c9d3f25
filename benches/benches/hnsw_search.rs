//! `bulkhead-index` search on seeded synthetic data: unfiltered graph walks at several beam
//! widths, filtered walks at 1%, 10% and 50% selectivity, and the exact scan, on one segment of
//! 20,000 clustered 128-d vectors.
//!
//! Each iteration runs a batch of 100 queries; divide by 100 for one query. Recall and the
//! debian-minilm numbers come from the `hnsw_recall` example, not from here.
//!
//! ```text
//! cargo bench -p bulkhead-benches --bench hnsw_search -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;

use bulkhead_index::{
    FrozenSegment, HnswParams, IdSet, InternalId, Metric, SearchParams, SearchScratch, Strategy,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Vectors in the segment.
const ROWS: usize = 20_000;
/// Their dimension.
const DIM: usize = 128;
/// Queries per iteration.
const QUERIES: usize = 100;
/// Seed for every random value, so runs compare like with like.
const SEED: u64 = 0x5eed_0004;

/// `n` vectors around 64 random centres.
fn clustered(rng: &mut StdRng, centres: &[Vec<f32>], n: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| {
            let centre = &centres[rng.gen_range(0..centres.len())];
            centre.iter().map(|c| c + rng.gen_range(-0.3_f32..0.3)).collect()
        })
        .collect()
}

fn bench_search(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(SEED);
    let centres: Vec<Vec<f32>> =
        (0..64).map(|_| (0..DIM).map(|_| rng.gen_range(-1.0_f32..1.0)).collect()).collect();
    let data = clustered(&mut rng, &centres, ROWS);
    let queries = clustered(&mut rng, &centres, QUERIES);
    let params = HnswParams { m: 16, ef_construction: 100 };
    let segment = FrozenSegment::build_from_rows(DIM, data.iter().map(Vec::as_slice), Metric::L2, params)
        .expect("build");
    let mut scratch = SearchScratch::new();

    let mut group = c.benchmark_group(format!("hnsw-{ROWS}x{DIM}"));
    group.throughput(Throughput::Elements(QUERIES as u64));
    for ef in [32, 64, 128] {
        let search = SearchParams::new(10, ef).with_strategy(Strategy::Graph);
        group.bench_function(format!("graph-ef{ef}"), |b| {
            b.iter(|| {
                for query in &queries {
                    black_box(segment.search(query, &search, &mut scratch).expect("search"));
                }
            });
        });
    }
    let exact = SearchParams::new(10, 10).with_strategy(Strategy::Exact);
    group.bench_function("exact", |b| {
        b.iter(|| {
            for query in &queries {
                black_box(segment.search(query, &exact, &mut scratch).expect("search"));
            }
        });
    });
    for percent in [1u32, 10, 50] {
        let filter = IdSet::from_ids(
            ROWS,
            (0..ROWS as u32).filter(|_| rng.gen_range(0..100) < percent).map(InternalId::new),
        )
        .expect("filter");
        for strategy in [Strategy::Auto, Strategy::Graph] {
            let search = SearchParams::new(10, 64).with_strategy(strategy);
            group.bench_function(format!("filtered-{percent}pct-{strategy:?}-ef64"), |b| {
                b.iter(|| {
                    for query in &queries {
                        black_box(
                            segment.search_filtered(query, &search, &filter, &mut scratch).expect("search"),
                        );
                    }
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_search);
criterion_main!(benches);
