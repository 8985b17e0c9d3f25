//! Recall and throughput of a segment's searches, measured one way for every harness: the
//! `bulkhead bench` command and the examples of `bulkhead-benches`.
//!
//! A measurement runs the whole query set once untimed (warm-up; recall, distances and plans are
//! counted in that pass), then `passes` timed passes. With more than one thread the queries are
//! split into contiguous chunks, one per scoped thread, each with its own [`SearchScratch`], and a
//! pass is timed from the first spawn to the last join.

use std::time::Instant;

use crate::{Filter, FrozenSegment, IndexError, Plan, SearchParams, SearchScratch, Strategy};

/// A filter that threads can share.
pub type SharedFilter<'a> = &'a (dyn Filter + Sync);

/// The result of [`measure`].
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Mean recall@k against the truth: found / expected over all queries, where a query expects
    /// `min(k, its truth's length)` ids.
    pub recall: f64,
    /// Queries per second of each timed pass, in the order they ran.
    pub pass_qps: Vec<f64>,
    /// Mean number of distances computed per query.
    pub distances_per_query: f64,
    /// How many queries ran each plan, in order of first appearance.
    pub plans: Vec<(Plan, usize)>,
}

impl Measurement {
    /// Returns the median of the timed passes' queries per second (the mean of the middle two for
    /// an even count; 0 without passes).
    pub fn median_qps(&self) -> f64 {
        let mut sorted = self.pass_qps.clone();
        sorted.sort_by(f64::total_cmp);
        match sorted.len() {
            0 => 0.0,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        }
    }

    /// Returns the fastest timed pass's queries per second (0 without passes).
    pub fn best_qps(&self) -> f64 {
        self.pass_qps.iter().copied().fold(0.0, f64::max)
    }

    /// Returns the plans as `Graph` or `Graph 97%, GraphThenExact 3%`.
    pub fn plan_summary(&self) -> String {
        let total: usize = self.plans.iter().map(|&(_, count)| count).sum();
        if let [(plan, _)] = self.plans.as_slice() {
            return format!("{plan:?}");
        }
        self.plans
            .iter()
            .map(|&(plan, count)| format!("{plan:?} {:.0}%", 100.0 * count as f64 / total.max(1) as f64))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Returns, for every query, the ids of its exact `k` nearest visible vectors that `filter` (if
/// any) allows, closest first: the segment's own exact scan, run on `threads` threads.
///
/// # Errors
///
/// As [`FrozenSegment::search`], for a query of the wrong dimension or with a non-finite element.
pub fn exact_truth(
    segment: &FrozenSegment,
    queries: &[&[f32]],
    k: usize,
    filter: Option<SharedFilter<'_>>,
    threads: usize,
) -> Result<Vec<Vec<u32>>, IndexError> {
    let params = SearchParams::new(k, k).with_strategy(Strategy::Exact);
    let mut scratches: Vec<SearchScratch> = (0..threads.max(1)).map(|_| SearchScratch::new()).collect();
    let chunks = run_chunks(queries, &mut scratches, |_, chunk, scratch| {
        chunk
            .iter()
            .map(|query| {
                let hits = search(segment, query, &params, filter, scratch)?;
                Ok(hits.iter().map(|hit| hit.id.get()).collect())
            })
            .collect::<Result<Vec<Vec<u32>>, IndexError>>()
    })?;
    Ok(chunks.into_iter().flatten().collect())
}

/// Measures `params` over every query on `threads` threads: recall against `truth` (row `i` for
/// query `i`; missing rows count as empty), then `passes` timed passes.
///
/// # Errors
///
/// As [`FrozenSegment::search`].
pub fn measure(
    segment: &FrozenSegment,
    queries: &[&[f32]],
    truth: &[Vec<u32>],
    params: &SearchParams,
    filter: Option<SharedFilter<'_>>,
    threads: usize,
    passes: usize,
) -> Result<Measurement, IndexError> {
    let mut scratches: Vec<SearchScratch> = (0..threads.max(1)).map(|_| SearchScratch::new()).collect();
    // The untimed pass: each query against its row of the truth.
    let tallies = run_chunks(queries, &mut scratches, |offset, chunk, scratch| {
        let mut tally = Tally::default();
        for (index, query) in chunk.iter().enumerate() {
            let hits = search(segment, query, params, filter, scratch)?;
            let expected: &[u32] = truth.get(offset + index).map_or(&[], Vec::as_slice);
            let expected = &expected[..expected.len().min(params.k)];
            tally.found += hits.iter().filter(|hit| expected.contains(&hit.id.get())).count();
            tally.expected += expected.len();
            tally.distances += scratch.last_distance_count();
            tally.count_plan(scratch.last_plan(), 1);
        }
        Ok(tally)
    })?;
    let mut total = Tally::default();
    for tally in tallies {
        total.found += tally.found;
        total.expected += tally.expected;
        total.distances += tally.distances;
        for (plan, count) in tally.plans {
            total.count_plan(plan, count);
        }
    }

    let mut pass_qps = Vec::with_capacity(passes);
    for _ in 0..passes {
        let started = Instant::now();
        run_chunks(queries, &mut scratches, |_, chunk, scratch| {
            for query in chunk {
                search(segment, query, params, filter, scratch)?;
            }
            Ok(())
        })?;
        pass_qps.push(queries.len() as f64 / started.elapsed().as_secs_f64().max(f64::MIN_POSITIVE));
    }
    Ok(Measurement {
        recall: if total.expected == 0 { 1.0 } else { total.found as f64 / total.expected as f64 },
        pass_qps,
        distances_per_query: total.distances as f64 / queries.len().max(1) as f64,
        plans: total.plans,
    })
}

/// Counts of one chunk's untimed pass.
#[derive(Default)]
struct Tally {
    found: usize,
    expected: usize,
    distances: usize,
    plans: Vec<(Plan, usize)>,
}

impl Tally {
    fn count_plan(&mut self, plan: Plan, count: usize) {
        match self.plans.iter_mut().find(|(seen, _)| *seen == plan) {
            Some((_, total)) => *total += count,
            None => self.plans.push((plan, count)),
        }
    }
}

/// One search, filtered or not.
fn search<'s>(
    segment: &FrozenSegment,
    query: &[f32],
    params: &SearchParams,
    filter: Option<SharedFilter<'_>>,
    scratch: &'s mut SearchScratch,
) -> Result<&'s [crate::Hit], IndexError> {
    match filter {
        Some(filter) => segment.search_filtered(query, params, filter, scratch),
        None => segment.search(query, params, scratch),
    }
}

/// Splits `queries` into one contiguous chunk per scratch and runs `work(start, chunk, scratch)`
/// on each (`start` is the chunk's first index in `queries`), on the calling thread when there is
/// one scratch and on scoped threads otherwise; returns the chunks' results in order.
fn run_chunks<T: Send>(
    queries: &[&[f32]],
    scratches: &mut [SearchScratch],
    work: impl Fn(usize, &[&[f32]], &mut SearchScratch) -> Result<T, IndexError> + Sync,
) -> Result<Vec<T>, IndexError> {
    let chunk_len = queries.len().div_ceil(scratches.len().max(1)).max(1);
    if let [scratch] = scratches {
        return Ok(vec![work(0, queries, scratch)?]);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = queries
            .chunks(chunk_len)
            .zip(scratches.iter_mut())
            .enumerate()
            .map(|(index, (chunk, scratch))| {
                let work = &work;
                scope.spawn(move || work(index * chunk_len, chunk, scratch))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    })
}
