//! Distance kernels: each ISA of `bulkhead-distance`, scalar reference and simsimd, side by side.
//!
//! Pairwise groups are named `{metric}-{dim}` and hold one function per implementation: each ISA
//! the CPU supports (called through its `Kernels` table), `dispatched` (the free function, which
//! goes through the cached `OnceLock` table, to show that dispatch costs nothing measurable) and
//! `simsimd`. Both operands are rows of a `VectorArena`, so they are 64-byte aligned for every
//! implementation alike.
//!
//! Batch groups `batch-{metric}-384x{rows}` compute one query against 10,000 rows (15 MB, beyond
//! L2) or 1,000 rows (1.5 MB, inside L2) of dimension 384; divide the time by the number of rows for
//! the cost of one distance.
//!
//! Run with:
//!
//! ```text
//! cargo bench -p bulkhead-benches --bench distance -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;

use bulkhead_distance::{Kernels, Metric, VectorArena, available_isas};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use simsimd::SpatialSimilarity;

/// The embedding sizes we care about: small models, MiniLM, BERT-base, OpenAI ada-002.
const DIMS: [usize; 4] = [128, 384, 768, 1536];
/// Rows scanned by the batch benchmark: 15 MB at d = 384, far larger than L2, so memory-bound, and
/// a 1.5 MB arena that stays in L2 and shows the cost of the batch loop itself.
const BATCH_ROWS: [usize; 2] = [10_000, 1_000];
/// Dimension of the batch benchmark.
const BATCH_DIM: usize = 384;
/// Seed for every random vector, so runs compare like with like.
const SEED: u64 = 0x5eed_0003;

/// Returns `len` floats uniformly drawn from `[-1, 1)`.
fn random_vector(rng: &mut StdRng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.gen_range(-1.0_f32..1.0)).collect()
}

/// Returns an arena holding `rows` random vectors of dimension `dim`.
fn random_arena(rng: &mut StdRng, dim: usize, rows: usize) -> VectorArena {
    let mut arena = VectorArena::with_capacity(dim, rows).expect("valid dimension");
    for _ in 0..rows {
        arena.push(&random_vector(rng, dim)).expect("finite vector of the right dimension");
    }
    arena
}

/// The metric names used in group names, with their `Metric`.
const METRICS: [(&str, Metric); 3] =
    [("dot", Metric::UnitDot), ("l2", Metric::L2), ("cosine", Metric::Cosine)];

/// Benchmarks every implementation of one metric at one dimension in one group.
///
/// The three functions are generic parameters, so each instantiation calls its kernel directly and
/// the timed loop contains no selection logic of its own.
fn compare<O, F, S>(c: &mut Criterion, group_name: &str, a: &[f32], b: &[f32], ours: O, free: F, simsimd: S)
where
    O: Fn(&Kernels, &[f32], &[f32]) -> Result<f32, bulkhead_distance::DistanceError>,
    F: Fn(&[f32], &[f32]) -> Result<f32, bulkhead_distance::DistanceError>,
    S: Fn(&[f32], &[f32]) -> Option<f64>,
{
    let mut group = c.benchmark_group(group_name);
    for isa in available_isas() {
        let kernels = Kernels::for_isa(isa).expect("listed as available");
        group.bench_function(isa.name(), |bench| {
            bench.iter(|| ours(black_box(&kernels), black_box(a), black_box(b)).expect("equal lengths"));
        });
    }
    group.bench_function("dispatched", |bench| {
        bench.iter(|| free(black_box(a), black_box(b)).expect("equal lengths"));
    });
    group.bench_function("simsimd", |bench| {
        bench.iter(|| simsimd(black_box(a), black_box(b)).expect("equal lengths"));
    });
    group.finish();
}

/// One group per metric and dimension with every implementation side by side.
fn pairwise(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(SEED);
    for dim in DIMS {
        let arena = random_arena(&mut rng, dim, 2);
        let a = arena.get(0).expect("row 0 exists");
        let b = arena.get(1).expect("row 1 exists");
        compare(
            c,
            &format!("dot-{dim}"),
            a,
            b,
            Kernels::dot,
            bulkhead_distance::dot,
            <f32 as SpatialSimilarity>::dot,
        );
        compare(
            c,
            &format!("l2-{dim}"),
            a,
            b,
            Kernels::l2_squared,
            bulkhead_distance::l2_squared,
            <f32 as SpatialSimilarity>::sqeuclidean,
        );
        compare(
            c,
            &format!("cosine-{dim}"),
            a,
            b,
            Kernels::cosine_distance,
            bulkhead_distance::cosine_distance,
            <f32 as SpatialSimilarity>::cosine,
        );
    }
}

/// One query against every arena row, per metric and ISA, plus the active ISA over shuffled ids.
fn batch(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(SEED ^ 1);
    for rows in BATCH_ROWS {
        let arena = random_arena(&mut rng, BATCH_DIM, rows);
        let query = random_vector(&mut rng, BATCH_DIM);
        let mut ids: Vec<u32> = (0..u32::try_from(rows).expect("fits")).collect();
        ids.shuffle(&mut rng);
        let mut out = vec![0.0_f32; rows];
        for (name, metric) in METRICS {
            let mut group = c.benchmark_group(format!("batch-{name}-{BATCH_DIM}x{rows}"));
            group.throughput(Throughput::Elements(rows as u64));
            for isa in available_isas() {
                let kernels = Kernels::for_isa(isa).expect("listed as available");
                group.bench_function(isa.name(), |bench| {
                    bench.iter(|| {
                        black_box(&kernels)
                            .distances_all(metric, black_box(&query), &arena, &mut out)
                            .expect("valid batch");
                    });
                });
            }
            group.bench_function("active-shuffled-ids", |bench| {
                bench.iter(|| {
                    bulkhead_distance::distances(metric, black_box(&query), &arena, &ids, &mut out)
                        .expect("valid batch");
                });
            });
            group.finish();
        }
    }
}

criterion_group!(benches, pairwise, batch);
criterion_main!(benches);
