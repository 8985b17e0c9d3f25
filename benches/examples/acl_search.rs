//! Permission-aware search on debian-minilm (issue 5): every document is readable by one ACL
//! group, its Debian section (the `section` column of `base.tsv`, row `i` = vector `i`), and
//! principals holding 1, 3 or 10 sections search through the embedded API with the HNSW segment
//! built. For each principal it prints the share of the corpus it sees, which plan the planner
//! picks, recall@10 against an exact top-10 over the visible set (brute-force cosine on the raw
//! vectors, computed here), and queries/s with median and p99 latency, next to the unfiltered
//! search (no principal) timed in the same loop. The same sections are then asked for as a
//! metadata filter (`Filter::In` on a keyword field `section`), which takes the same path.
//!
//! Timing: every query is run filtered and unfiltered back to back (alternating which goes
//! first), `BENCH_PASSES` times (default 3); a query's latency is its fastest pass, queries/s is
//! the number of queries over the fastest pass's total. Recall is counted on the first pass.
//!
//! ```text
//! . scripts/env.sh && cargo run -p bulkhead-benches --example acl_search --release [DATASET_DIR]
//! ```
#![expect(clippy::print_stdout, reason = "a harness whose output is its report")]

mod common;

use anyhow::{Context, Result, ensure};
use bulkhead_index::Planner;
use bulkhead_index::fvecs::Fvecs;
use bulkhead_query::{
    Acl, DocId, Filter, MetaValue, Metric, NewPoint, Principal, SearchRequest, Tenant, TenantName,
};
use common::{Dataset, TempDatabase, bench_scope, build_graph, tsv_column, upsert_rows};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const K: usize = 10;
const COLLECTION: &str = "docs";
/// The seed of the section draws.
const SEED: u64 = 0x0ac1_5ec7;
/// The beam width a search through the API uses by default (`MIN_EF` in
/// `bulkhead-query/src/collection.rs`), for predicting the plan.
const DEFAULT_EF: usize = 64;
/// Principals drawn per way of drawing and per number of sections.
const DRAWS: usize = 2;

/// A principal's sections and the documents they make visible.
struct Group {
    label: String,
    sections: Vec<String>,
    /// Visible base rows, ascending.
    visible: Vec<u32>,
}

fn main() -> Result<()> {
    let Dataset { dir, base, queries, gt } = Dataset::load()?;
    let sections = tsv_column(&dir.join("base.tsv"), 1)?;
    ensure!(sections.len() == base.len(), "base.tsv has {} rows for {} vectors", sections.len(), base.len());
    let passes: usize = std::env::var("BENCH_PASSES").ok().map(|p| p.parse()).transpose()?.unwrap_or(3);
    let mut by_section: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (row, section) in (0u32..).zip(&sections) {
        by_section.entry(section).or_default().push(row);
    }
    println!(
        "debian-minilm: {} base × {}, {} queries, {} sections, isa {}",
        base.len(),
        base.dim(),
        queries.len(),
        by_section.len(),
        bulkhead_distance::active_isa()
    );

    let groups = choose_groups(&by_section, &sections);
    let started = Instant::now();
    let everything =
        Group { label: "everything".into(), sections: vec![], visible: (0..base.len() as u32).collect() };
    let truth = exact_truth(&base, &queries, groups.iter().chain([&everything]))?;
    let truth_all: Vec<&Vec<u32>> = truth.iter().map(|per_group| &per_group[groups.len()]).collect();
    let agree = (0..queries.len())
        .map(|q| {
            let gt_row = gt.row(q).map_or(&[][..], |row| &row[..K]);
            truth_all[q].iter().filter(|id| gt_row.contains(id)).count()
        })
        .sum::<usize>();
    println!(
        "exact top-10 over the visible sets: {:.1} s (unfiltered, it agrees with gt.ivecs on {:.4} of ids)",
        started.elapsed().as_secs_f64(),
        agree as f64 / (queries.len() * K) as f64
    );

    let data = TempDatabase::new()?;
    let db = data.open(usize::MAX)?;
    let name = TenantName::new("bench")?;
    db.operator().create_tenant(&name)?;
    let tenant = db.tenant(&bench_scope(&db, &name)?)?;
    tenant.create_collection(COLLECTION, base.dim(), Metric::Cosine)?;
    let point = |i: usize, row: &[f32]| -> Result<NewPoint> {
        let section = sections[i].clone();
        let mut point = NewPoint::new(DocId::new(i.to_string())?, row.to_vec(), "");
        point.metadata.insert("section".into(), MetaValue::Keyword(section.clone()));
        point.acl = Acl::Restricted { users: vec![], groups: vec![section] };
        Ok(point)
    };
    let elapsed = upsert_rows(&tenant, COLLECTION, &base, point)?;
    println!("upserted {} points in {:.1} s", base.len(), elapsed.as_secs_f64());
    let (elapsed, status) = build_graph(&db, &tenant, COLLECTION, point(0, base.row(0).context("row 0")?)?)?;
    println!("background HNSW build: {:.1} s ({status:?})", elapsed.as_secs_f64());

    println!("\nprincipals (seed {SEED:#x}):");
    for group in &groups {
        println!(
            "  {:<14} {:>6} docs ({:>5.2}%): {}",
            group.label,
            group.visible.len(),
            percent(group.visible.len(), base.len()),
            group.sections.join(", ")
        );
    }

    let queries: Vec<&[f32]> = queries.rows().collect();
    let principal_for = |group: &Group| Principal::new("bench-user", group.sections.iter().cloned());
    let mut rows = Vec::new();
    for kind in [Kind::Acl, Kind::Metadata] {
        println!(
            "\n{} (k = {K}, default ef {DEFAULT_EF}, one thread; latency = fastest of {passes} interleaved passes)",
            kind.title()
        );
        println!(
            "{:<14} {:>7} {:>6} {:>8} {:>10} {:>8} {:>8} {:>10} {:>8} {:>8} {:>7} {:>7} {:>7}",
            "principal",
            "visible",
            "plan",
            "recall",
            "q/s",
            "p50 µs",
            "p99 µs",
            "unf. q/s",
            "p50 µs",
            "p99 µs",
            "x p50",
            "x p99",
            "x mean"
        );
        for (g, group) in groups.iter().enumerate() {
            let principal = principal_for(group)?;
            let filter = Filter::In { field: "section".into(), values: group.sections.clone() };
            let request = match kind {
                Kind::Acl => SearchRequest { k: K, ef: None, principal: Some(&principal), filter: None },
                Kind::Metadata => SearchRequest { k: K, ef: None, principal: None, filter: Some(&filter) },
            };
            let truth: Vec<&Vec<u32>> = truth.iter().map(|per_group| &per_group[g]).collect();
            let row = measure(&tenant, &queries, &request, group, &truth, &truth_all, passes)?;
            let plan = if Planner::prefers_exact_filtered(group.visible.len(), base.len(), DEFAULT_EF) {
                "exact"
            } else {
                "graph"
            };
            println!(
                "{:<14} {:>6.2}% {plan:>6} {:>8.4} {:>10.0} {:>8.0} {:>8.0} {:>10.0} {:>8.0} {:>8.0} {:>7.2} {:>7.2} {:>7.2}",
                group.label,
                percent(group.visible.len(), base.len()),
                row.recall,
                row.filtered.qps,
                micros(row.filtered.p50),
                micros(row.filtered.p99),
                row.unfiltered.qps,
                micros(row.unfiltered.p50),
                micros(row.unfiltered.p99),
                row.p50_ratio(),
                row.p99_ratio(),
                row.mean_ratio(),
            );
            rows.push((kind, group.sections.len(), row));
        }
    }

    println!("\nsummary (the bar: recall@10 ≥ 0.95 and latency ≤ 2x unfiltered)");
    println!(
        "{:<10} {:>8} {:>11} {:>11} {:>12} {:>13} {:>12}",
        "filter", "sections", "min recall", "mean recall", "max x p50", "max x mean", "unf. recall"
    );
    for kind in [Kind::Acl, Kind::Metadata] {
        for n in [1, 3, 10] {
            let of_n: Vec<&Row> =
                rows.iter().filter(|(k, s, _)| *k == kind && *s == n).map(|r| &r.2).collect();
            let min_recall = of_n.iter().map(|r| r.recall).fold(f64::INFINITY, f64::min);
            let mean_recall = of_n.iter().map(|r| r.recall).sum::<f64>() / of_n.len() as f64;
            let max_p50 = of_n.iter().map(|r| r.p50_ratio()).fold(0.0, f64::max);
            let max_mean = of_n.iter().map(|r| r.mean_ratio()).fold(0.0, f64::max);
            let unfiltered = of_n.iter().map(|r| r.unfiltered_recall).fold(f64::INFINITY, f64::min);
            println!(
                "{:<10} {n:>8} {min_recall:>11.4} {mean_recall:>11.4} {max_p50:>12.2} {max_mean:>13.2} {unfiltered:>12.4}",
                kind.name()
            );
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Acl,
    Metadata,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Acl => "ACL",
            Kind::Metadata => "metadata",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Kind::Acl => "ACL: principal holding the sections as groups",
            Kind::Metadata => "metadata filter: Filter::In on the keyword field `section`, no principal",
        }
    }
}

/// Principals of 1, 3 and 10 sections: [`DRAWS`] drawn uniformly over sections (a typical section
/// is small: the median holds ~300 documents), [`DRAWS`] drawn by size (the sections of random
/// documents, so large sections come up often), and the smallest sections.
fn choose_groups(by_section: &BTreeMap<&str, Vec<u32>>, sections: &[String]) -> Vec<Group> {
    let mut rng = StdRng::seed_from_u64(SEED);
    let names: Vec<&str> = by_section.keys().copied().collect();
    let mut smallest = names.clone();
    smallest.sort_by_key(|name| (by_section[name].len(), *name));
    let group = |label: String, chosen: Vec<&str>| {
        let mut visible: Vec<u32> = chosen.iter().flat_map(|name| by_section[name].iter().copied()).collect();
        visible.sort_unstable();
        Group { label, sections: chosen.iter().map(|s| (*s).to_owned()).collect(), visible }
    };
    let mut out = Vec::new();
    for n in [1, 3, 10] {
        for draw in 1..=DRAWS {
            let chosen = names.choose_multiple(&mut rng, n).copied().collect();
            out.push(group(format!("{n} uniform #{draw}"), chosen));
        }
        for draw in 1..=DRAWS {
            let mut chosen = BTreeSet::new();
            while chosen.len() < n {
                chosen.insert(sections[rng.gen_range(0..sections.len())].as_str());
            }
            out.push(group(format!("{n} by size #{draw}"), chosen.into_iter().collect()));
        }
        out.push(group(format!("{n} smallest"), smallest[..n].to_vec()));
    }
    out
}

/// The exact top-[`K`] of every query over each group's visible rows, by cosine similarity on
/// the raw vectors (ties to the lower id), computed independently of the index's kernels:
/// `truth[query][group]`. Two threads.
fn exact_truth<'g>(
    base: &Fvecs,
    queries: &Fvecs,
    groups: impl Iterator<Item = &'g Group>,
) -> Result<Vec<Vec<Vec<u32>>>> {
    let groups: Vec<&Group> = groups.collect();
    let norms: Vec<f32> = base.rows().map(|row| dot(row, row).sqrt()).collect();
    let queries: Vec<&[f32]> = queries.rows().collect();
    let half = queries.len().div_ceil(2);
    let per_query = |query: &[f32]| -> Vec<Vec<u32>> {
        let query_norm = dot(query, query).sqrt();
        let similarity: Vec<f32> =
            base.rows().zip(&norms).map(|(row, norm)| dot(query, row) / (norm * query_norm)).collect();
        groups
            .iter()
            .map(|group| {
                // The best K so far, best first.
                let mut best: Vec<(f32, u32)> = Vec::with_capacity(K + 1);
                for &id in &group.visible {
                    let s = similarity[id as usize];
                    if best.len() < K || s > best[K - 1].0 {
                        let at = best.partition_point(|&(b, _)| b >= s);
                        best.insert(at, (s, id));
                        best.truncate(K);
                    }
                }
                best.into_iter().map(|(_, id)| id).collect()
            })
            .collect()
    };
    let per_query = &per_query;
    std::thread::scope(|scope| {
        let workers: Vec<_> = queries
            .chunks(half.max(1))
            .map(|chunk| scope.spawn(move || chunk.iter().map(|q| per_query(q)).collect::<Vec<_>>()))
            .collect();
        let mut out = Vec::with_capacity(queries.len());
        for worker in workers {
            out.extend(worker.join().map_err(|_| anyhow::anyhow!("a ground-truth thread panicked"))?);
        }
        Ok(out)
    })
}

/// A dot product with eight independent sums, which the compiler vectorises.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..8 {
            sums[lane] += x[lane] * y[lane];
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// Latency figures of one kind of search over every query.
struct Timing {
    qps: f64,
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

impl Timing {
    /// `latencies[pass][query]`: each query's fastest pass gives its latency; the fastest pass's
    /// total gives queries/s.
    fn from_passes(latencies: &[Vec<Duration>]) -> Timing {
        let n = latencies[0].len();
        let mut best: Vec<Duration> =
            (0..n).map(|q| latencies.iter().map(|pass| pass[q]).min().unwrap_or_default()).collect();
        let fastest_pass =
            latencies.iter().map(|pass| pass.iter().sum::<Duration>()).min().unwrap_or_default();
        let mean = best.iter().sum::<Duration>() / n as u32;
        best.sort_unstable();
        Timing {
            qps: n as f64 / fastest_pass.as_secs_f64(),
            p50: best[n / 2],
            p99: best[(n * 99).div_ceil(100) - 1],
            mean,
        }
    }
}

/// One principal's figures.
struct Row {
    recall: f64,
    unfiltered_recall: f64,
    filtered: Timing,
    unfiltered: Timing,
}

impl Row {
    fn p50_ratio(&self) -> f64 {
        self.filtered.p50.as_secs_f64() / self.unfiltered.p50.as_secs_f64()
    }

    fn p99_ratio(&self) -> f64 {
        self.filtered.p99.as_secs_f64() / self.unfiltered.p99.as_secs_f64()
    }

    fn mean_ratio(&self) -> f64 {
        self.filtered.mean.as_secs_f64() / self.unfiltered.mean.as_secs_f64()
    }
}

/// Runs every query through `request` and unfiltered, back to back, `passes` times; checks that
/// every filtered hit is visible and that there are `min(k, visible)` of them.
fn measure(
    tenant: &Tenant<'_>,
    queries: &[&[f32]],
    request: &SearchRequest<'_>,
    group: &Group,
    truth: &[&Vec<u32>],
    truth_all: &[&Vec<u32>],
    passes: usize,
) -> Result<Row> {
    let unfiltered_request = SearchRequest::top(K);
    let mut filtered_latency = vec![vec![Duration::ZERO; queries.len()]; passes];
    let mut unfiltered_latency = filtered_latency.clone();
    let (mut found, mut found_all) = (0usize, 0usize);
    let expected = K.min(group.visible.len());
    let ids = |hits: Vec<bulkhead_query::SearchHit>| -> Result<Vec<u32>> {
        hits.iter().map(|hit| Ok(hit.id.as_str().parse::<u32>()?)).collect()
    };
    for pass in 0..passes {
        for (q, query) in queries.iter().enumerate() {
            for filtered in if (q + pass) % 2 == 0 { [true, false] } else { [false, true] } {
                let (req, latency) = if filtered {
                    (request, &mut filtered_latency[pass][q])
                } else {
                    (&unfiltered_request, &mut unfiltered_latency[pass][q])
                };
                let start = Instant::now();
                let hits = tenant.search_request(COLLECTION, query, req)?;
                *latency = start.elapsed();
                if pass > 0 {
                    continue;
                }
                let hits = ids(hits)?;
                if filtered {
                    ensure!(
                        hits.len() == expected,
                        "{}: {} hits, {expected} expected",
                        group.label,
                        hits.len()
                    );
                    ensure!(
                        hits.iter().all(|id| group.visible.binary_search(id).is_ok()),
                        "{}: a hit outside the visible set",
                        group.label
                    );
                    found += hits.iter().filter(|id| truth[q].contains(id)).count();
                } else {
                    found_all += hits.iter().filter(|id| truth_all[q].contains(id)).count();
                }
            }
        }
    }
    Ok(Row {
        recall: found as f64 / (queries.len() * expected) as f64,
        unfiltered_recall: found_all as f64 / (queries.len() * K) as f64,
        filtered: Timing::from_passes(&filtered_latency),
        unfiltered: Timing::from_passes(&unfiltered_latency),
    })
}

fn percent(part: usize, whole: usize) -> f64 {
    100.0 * part as f64 / whole as f64
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
