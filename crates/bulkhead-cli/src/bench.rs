//! `bulkhead bench`: builds one HNSW segment over an fvecs/ivecs dataset and reports the active
//! instruction set, build time, memory, recall@k and queries per second (one thread and all
//! cores) at several beam widths, unfiltered and under random allowed sets.
//!
//! Every measurement goes through `bulkhead_index::eval`, the same code the examples of the
//! benches package use. The report is a plain table on stdout; build progress goes to stderr.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::args::MetricArg;
use anyhow::{Context, Result, bail, ensure};
use bulkhead_distance::VectorArena;
use bulkhead_index::eval::{self, Measurement, SharedFilter};
use bulkhead_index::fvecs::{Fvecs, Ivecs, read_fvecs, read_ivecs};
use bulkhead_index::{
    BuildOptions, Builder, FrozenSegment, HnswParams, IdSet, InternalId, Metric, SearchParams,
};
use bulkhead_query::limits;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// Arguments of `bulkhead bench`.
#[derive(clap::Args)]
pub(crate) struct BenchArgs {
    /// A directory holding base.fvecs, query.fvecs and gt.ivecs (gt is the exact nearest base ids
    /// of each query, closest first, at least k of them).
    #[arg(long, value_name = "DIR")]
    dataset: Option<PathBuf>,
    /// The base vectors (fvecs); overrides DIR/base.fvecs.
    #[arg(long, value_name = "FILE")]
    base: Option<PathBuf>,
    /// The query vectors (fvecs); overrides DIR/query.fvecs.
    #[arg(long, value_name = "FILE")]
    queries: Option<PathBuf>,
    /// The ground truth (ivecs); overrides DIR/gt.ivecs. Without --dataset it may be left out, and
    /// with --limit it is not read: the truth is then computed by an exact scan.
    #[arg(long, value_name = "FILE")]
    gt: Option<PathBuf>,
    /// The distance the ground truth was computed with.
    ///
    /// cosine: every base and query row is scaled to unit length as it is loaded and the index
    /// uses the dot-product kernel, which ranks unit vectors exactly as cosine does at a third of
    /// the arithmetic; use it for angular sets such as GloVe. dot: inner product of vectors that
    /// are already unit length (checked at load: the index's dot distance is max(0, 1 - a·b),
    /// which ranks correctly only for unit vectors). l2: squared Euclidean distance.
    #[arg(long, value_enum)]
    metric: MetricArg,
    /// Index only the first N base vectors (the truth is then computed by an exact scan).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// HNSW neighbours per node on the upper levels (level 0 keeps 2·M); 4 to 64.
    #[arg(long = "m", short = 'M', default_value_t = 16)]
    m: usize,
    /// HNSW beam width while building; M to 2000.
    #[arg(long, default_value_t = 200)]
    ef_construction: usize,
    /// The graph construction: native (our own, the default) or, in a binary built with the
    /// `hnsw-rs` feature (`cargo build --release -p bulkhead-cli --features hnsw-rs`), hnsw-rs
    /// (hnsw_rs 0.3.5, kept to measure against). Run the command once per builder to compare them:
    /// the RSS figures of a second build in one process would include what the first left in the
    /// allocator.
    #[arg(long, value_enum, default_value_t = BenchBuilder::Native)]
    builder: BenchBuilder,
    /// Search beam widths to measure, comma-separated; each 1 to the server's MAX_EF (raised to k
    /// when smaller).
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128")]
    ef: Vec<usize>,
    /// Neighbours per query (recall@k).
    #[arg(long, short = 'k', default_value_t = 10)]
    k: usize,
    /// Sizes of the random allowed sets for filtered searches, in percent of the base,
    /// comma-separated; each above 0 and at most 100.
    #[arg(long, value_delimiter = ',', default_value = "1,10,50")]
    selectivity: Vec<f64>,
    /// Threads for the all-cores measurement and for the exact ground truth of filtered searches
    /// (default: every core). The build always uses every core.
    #[arg(long)]
    threads: Option<usize>,
    /// Timed passes over the query set per measurement, after one untimed warm-up pass.
    #[arg(long, default_value_t = 3)]
    passes: usize,
    /// Seed of the random allowed sets.
    #[arg(long, default_value_t = 0x5eed_1dc5)]
    seed: u64,
    /// Skip the filtered sections (build and unfiltered search only).
    #[arg(long)]
    no_filtered: bool,
}

/// The graph construction as the user names it; see [`BenchArgs::builder`].
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BenchBuilder {
    Native,
    #[cfg(feature = "hnsw-rs")]
    HnswRs,
}

impl From<BenchBuilder> for Builder {
    fn from(builder: BenchBuilder) -> Self {
        match builder {
            BenchBuilder::Native => Builder::Native,
            #[cfg(feature = "hnsw-rs")]
            BenchBuilder::HnswRs => Builder::HnswRs,
        }
    }
}

/// How far from 1 a norm may be for `--metric dot`: float32 rows written by a normalising tool
/// are within about 1e-6 of unit length.
const UNIT_NORM_TOLERANCE: f32 = 1e-3;

/// The loaded and validated dataset.
struct Dataset {
    arena: VectorArena,
    queries: Vec<Vec<f32>>,
    /// Row `i` holds the first `k` true neighbours of query `i`; `None` when the truth must be
    /// computed by an exact scan.
    truth: Option<Vec<Vec<u32>>>,
    base_name: String,
}

/// Runs the benchmark and writes its report to `out`; with `json`, the report goes to stderr and
/// its numbers to `out` as one JSON object.
pub(crate) fn run(args: &BenchArgs, json: bool, out: &mut dyn Write) -> Result<()> {
    if !json {
        return report(args, out, &mut Vec::new()).map(|_| ());
    }
    let mut rows = Vec::new();
    let mut summary = report(args, &mut std::io::stderr().lock(), &mut rows)?;
    summary["results"] = Value::Array(rows);
    writeln!(out, "{summary}")?;
    Ok(())
}

/// The benchmark with its text report on `out`; each result row is also pushed on `rows`, and the
/// dataset and build figures returned, as JSON.
fn report(args: &BenchArgs, out: &mut dyn Write, rows: &mut Vec<Value>) -> Result<Value> {
    let params = HnswParams { m: args.m, ef_construction: args.ef_construction };
    params.validate()?;
    validate(args)?;
    let threads = match args.threads {
        Some(threads) => threads,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let rss_start = Memory::read();
    let data = load(args)?;
    let builder = Builder::from(args.builder);
    write_header(out, args, &data, params, builder, threads)?;
    let Dataset { arena, queries, truth, .. } = data;
    let (n, dim, query_count) = (arena.len(), arena.dim(), queries.len());
    let started = Instant::now();
    let segment = build(out, args.metric, arena, params, builder, rss_start)?;
    let summary = json!({
        "isa": bulkhead_distance::active_isa().to_string(), "vectors": n, "dimension": dim,
        "queries": query_count, "k": args.k, "m": params.m, "ef_construction": params.ef_construction,
        "builder": builder.name(), "threads": threads, "build_seconds": started.elapsed().as_secs_f64(),
        "bytes_per_vector": segment.bytes_per_vector(),
    });
    let queries: Vec<&[f32]> = queries.iter().map(Vec::as_slice).collect();
    let truth = match truth {
        Some(truth) => truth,
        None => eval::exact_truth(&segment, &queries, args.k, None, threads)?,
    };
    let unfiltered = measure_unfiltered(out, args, &segment, &queries, &truth, threads, rows)?;
    if !args.no_filtered {
        measure_filtered(out, args, &segment, &queries, &unfiltered, threads, rows)?;
    }
    writeln!(
        out,
        "\nq/s: median of {} timed passes over all queries after one untimed pass (best: the fastest \
         pass); latency x: unfiltered median q/s at the same ef over filtered median q/s, one thread",
        args.passes
    )?;
    Ok(summary)
}

/// The report's first lines: the instruction set, the data, the metric, the truth and the index.
fn write_header(
    out: &mut dyn Write,
    args: &BenchArgs,
    data: &Dataset,
    params: HnswParams,
    builder: Builder,
    threads: usize,
) -> Result<()> {
    let (n, dim) = (data.arena.len(), data.arena.dim());
    writeln!(out, "bulkhead bench")?;
    writeln!(out, "isa:      {}", bulkhead_distance::active_isa())?;
    writeln!(out, "base:     {} ({n} × {dim})", data.base_name)?;
    writeln!(out, "queries:  {}, k = {}", data.queries.len(), args.k)?;
    let metric_note = match args.metric {
        MetricArg::Cosine => "cosine (rows normalised at load, dot kernel)",
        MetricArg::Dot => "dot (unit vectors, checked)",
        MetricArg::L2 => "l2 (squared Euclidean)",
    };
    writeln!(out, "metric:   {metric_note}")?;
    let truth_note = if data.truth.is_some() { "ground truth file" } else { "exact scan" };
    writeln!(out, "truth:    {truth_note}")?;
    writeln!(
        out,
        "index:    M = {}, ef_construction = {}, {} builder; build on {} cores, search on 1 and {threads} \
         threads",
        params.m,
        params.ef_construction,
        builder.name(),
        std::thread::available_parallelism().map_or(1, usize::from),
    )?;
    Ok(())
}

/// Builds the segment with a progress report, and reports its build time, CPU time and memory.
fn build(
    out: &mut dyn Write,
    metric: MetricArg,
    arena: VectorArena,
    params: HnswParams,
    builder: Builder,
    rss_start: Option<Memory>,
) -> Result<FrozenSegment> {
    // Cosine rows were normalised at load: the dot kernel ranks them as cosine does.
    let metric = match metric {
        MetricArg::Dot | MetricArg::Cosine => Metric::UnitDot,
        MetricArg::L2 => Metric::L2,
    };
    let n = arena.len();
    let rss_before = Memory::read();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut progress = Progress::new(n);
    let options = BuildOptions::new().with_builder(builder);
    let segment = FrozenSegment::build_with_options(arena, metric, params, options, |done, _| {
        progress.update(done, started.elapsed());
    })?;
    progress.finish();
    let build = started.elapsed();
    let cpu = cpu_before.zip(cpu_seconds()).map(|(before, after)| after - before);
    let rss_after = Memory::read();
    let cpu_note = cpu.map_or(String::new(), |cpu| format!(", {cpu:.1} s CPU over all threads"));
    writeln!(out, "\nbuild:    {:.1} s (max level {}{cpu_note})", build.as_secs_f64(), segment.max_level())?;
    writeln!(
        out,
        "memory:   segment {:.0} B/vector (vectors {} B padded + norm, graph and tombstones the rest)",
        segment.bytes_per_vector(),
        segment.vectors().stride() * 4 + 4,
    )?;
    match (rss_start, rss_before, rss_after) {
        (Some(start), Some(before), Some(after)) => writeln!(
            out,
            "rss:      {:.1} MiB at start, {:.1} MiB loaded, {:.1} MiB after build ({:.0} B/vector \
             growth over the build), peak {:.1} MiB",
            mib(start.resident),
            mib(before.resident),
            mib(after.resident),
            after.resident.saturating_sub(before.resident) as f64 / n as f64,
            mib(after.peak),
        )?,
        _ => writeln!(out, "rss:      not available on this system")?,
    }
    Ok(segment)
}

/// The unfiltered section: recall and queries/s at each ef, on one thread and on `threads`; returns
/// the one-thread median queries/s at each ef, which the filtered sections compare against.
fn measure_unfiltered(
    out: &mut dyn Write,
    args: &BenchArgs,
    segment: &FrozenSegment,
    queries: &[&[f32]],
    truth: &[Vec<u32>],
    threads: usize,
    rows: &mut Vec<Value>,
) -> Result<Vec<f64>> {
    writeln!(out, "\nunfiltered (recall@{} against the truth)", args.k)?;
    header(out, threads, false)?;
    let mut unfiltered = Vec::with_capacity(args.ef.len());
    for &ef in &args.ef {
        let search = SearchParams::new(args.k, ef);
        let one = eval::measure(segment, queries, truth, &search, None, 1, args.passes)?;
        let all = eval::measure(segment, queries, truth, &search, None, threads, args.passes)?;
        row(out, ef, &one, &all, None)?;
        rows.push(row_json(None, ef, threads, &one, &all, None));
        unfiltered.push(one.median_qps());
    }
    Ok(unfiltered)
}

/// One filtered section per selectivity: a seeded random allowed set, its exact truth, and recall,
/// queries/s and the slowdown against `unfiltered` at each ef.
fn measure_filtered(
    out: &mut dyn Write,
    args: &BenchArgs,
    segment: &FrozenSegment,
    queries: &[&[f32]],
    unfiltered: &[f64],
    threads: usize,
    rows: &mut Vec<Value>,
) -> Result<()> {
    let n = segment.vectors().len();
    let mut rng = StdRng::seed_from_u64(args.seed);
    for &percent in &args.selectivity {
        let fraction = percent / 100.0;
        let allowed =
            IdSet::from_ids(n, (0..n as u32).filter(|_| rng.gen_bool(fraction)).map(InternalId::new))?;
        let filter: SharedFilter<'_> = &allowed;
        let truth = eval::exact_truth(segment, queries, args.k, Some(filter), threads)?;
        writeln!(
            out,
            "\nfiltered {percent}% ({} allowed; recall@{} against an exact scan of the allowed set; \
             planner's choice)",
            allowed.len(),
            args.k
        )?;
        header(out, threads, true)?;
        for (&ef, &plain) in args.ef.iter().zip(unfiltered) {
            let search = SearchParams::new(args.k, ef);
            let one = eval::measure(segment, queries, &truth, &search, Some(filter), 1, args.passes)?;
            let all = eval::measure(segment, queries, &truth, &search, Some(filter), threads, args.passes)?;
            let slowdown = plain / one.median_qps().max(f64::MIN_POSITIVE);
            row(out, ef, &one, &all, Some(slowdown))?;
            rows.push(row_json(Some(percent), ef, threads, &one, &all, Some(slowdown)));
        }
    }
    Ok(())
}

/// Checks the arguments that need no data.
fn validate(args: &BenchArgs) -> Result<()> {
    ensure!(!args.ef.is_empty(), "--ef needs at least one value");
    if let Some(&ef) = args.ef.iter().find(|&&ef| ef == 0 || ef > limits::MAX_EF) {
        bail!("--ef {ef} is out of range: each ef must be 1 to {}", limits::MAX_EF);
    }
    ensure!(
        (1..=limits::MAX_K).contains(&args.k),
        "-k {} is out of range: k must be 1 to {}",
        args.k,
        limits::MAX_K
    );
    if let Some(&percent) = args.selectivity.iter().find(|&&p| !(p > 0.0 && p <= 100.0)) {
        bail!("--selectivity {percent} is out of range: each must be above 0 and at most 100 (percent)");
    }
    ensure!(args.threads != Some(0), "--threads must be at least 1");
    ensure!(args.passes >= 1, "--passes must be at least 1");
    ensure!(args.limit != Some(0), "--limit must be at least 1");
    Ok(())
}

/// Reads and checks the three files, prepares the vectors for the metric, and fills the arena.
fn load(args: &BenchArgs) -> Result<Dataset> {
    let in_dir = |name: &str| args.dataset.as_ref().map(|dir| dir.join(name));
    let base_path = args.base.clone().or_else(|| in_dir("base.fvecs")).context(
        "no base vectors: give --dataset DIR (with base.fvecs, query.fvecs, gt.ivecs) or --base and \
         --queries",
    )?;
    let query_path =
        args.queries.clone().or_else(|| in_dir("query.fvecs")).context("no queries: give --queries FILE")?;
    let gt_path = if args.limit.is_some() { None } else { args.gt.clone().or_else(|| in_dir("gt.ivecs")) };

    let base = read_vectors(&base_path, args.limit)?;
    let queries = read_vectors(&query_path, None)?;
    ensure!(
        queries.dim() == base.dim(),
        "dimension mismatch: {} has {}-dimensional queries but {} has {}-dimensional base vectors",
        query_path.display(),
        queries.dim(),
        base_path.display(),
        base.dim()
    );
    let truth = match &gt_path {
        Some(path) => Some(read_truth(path, args.k, queries.len(), base.len())?),
        None => None,
    };

    let mut arena = VectorArena::with_capacity(base.dim(), base.len())?;
    for (index, row) in base.rows().enumerate() {
        let row =
            prepare(args.metric, row).with_context(|| format!("{} row {index}", base_path.display()))?;
        arena.push(&row).with_context(|| format!("{} row {index}", base_path.display()))?;
    }
    let queries = queries
        .rows()
        .enumerate()
        .map(|(index, row)| {
            prepare(args.metric, row).with_context(|| format!("{} row {index}", query_path.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Dataset { arena, queries, truth, base_name: base_path.display().to_string() })
}

/// Reads an fvecs file that must hold at least one vector.
fn read_vectors(path: &Path, limit: Option<usize>) -> Result<Fvecs> {
    let rows = read_fvecs(path, limit).with_context(|| format!("reading {}", path.display()))?;
    ensure!(!rows.is_empty(), "{} holds no vectors", path.display());
    Ok(rows)
}

/// Reads the ground truth and keeps the first `k` ids of each of the first `queries` rows.
fn read_truth(path: &Path, k: usize, queries: usize, base: usize) -> Result<Vec<Vec<u32>>> {
    let gt: Ivecs = read_ivecs(path, Some(queries)).with_context(|| format!("reading {}", path.display()))?;
    ensure!(gt.len() == queries, "{} has {} rows but there are {queries} queries", path.display(), gt.len());
    ensure!(
        gt.dim() >= k,
        "{} has {} neighbours per query; recall@{k} needs at least {k}",
        path.display(),
        gt.dim()
    );
    if let Some(id) = gt.rows().flatten().copied().find(|&id| id as usize >= base) {
        bail!("{} names base id {id}, but there are {base} base vectors", path.display());
    }
    Ok(gt.rows().map(|row| row[..k].to_vec()).collect())
}

/// Returns `row` as the index will store it: normalised for cosine, checked to be unit length for
/// dot, unchanged for L2.
fn prepare(metric: MetricArg, row: &[f32]) -> Result<Vec<f32>> {
    ensure!(row.iter().all(|x| x.is_finite()), "a value is not finite");
    let norm = row.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt() as f32;
    match metric {
        MetricArg::L2 => Ok(row.to_vec()),
        MetricArg::Dot => {
            ensure!(
                (norm - 1.0).abs() <= UNIT_NORM_TOLERANCE,
                "norm {norm}: --metric dot needs unit vectors (use --metric cosine to normalise them)"
            );
            Ok(row.to_vec())
        }
        MetricArg::Cosine => {
            ensure!(norm > 0.0 && norm.is_finite(), "a zero vector has no direction for --metric cosine");
            Ok(row.iter().map(|x| x / norm).collect())
        }
    }
}

fn header(out: &mut dyn Write, threads: usize, filtered: bool) -> Result<()> {
    let all = format!("q/s {threads}t");
    let extra = if filtered { format!(" {:>9}", "latency x") } else { String::new() };
    writeln!(
        out,
        "{:>6} {:>9} {:>11} {:>11} {:>11} {:>8}{extra}  plan",
        "ef", "recall", "q/s 1t", "best 1t", all, "dist/q"
    )?;
    Ok(())
}

fn row(
    out: &mut dyn Write,
    ef: usize,
    one: &Measurement,
    all: &Measurement,
    slowdown: Option<f64>,
) -> Result<()> {
    let extra = slowdown.map_or(String::new(), |x| format!(" {x:>8.2}x"));
    writeln!(
        out,
        "{ef:>6} {:>9.4} {:>11.0} {:>11.0} {:>11.0} {:>8.0}{extra}  {}",
        one.recall,
        one.median_qps(),
        one.best_qps(),
        all.median_qps(),
        one.distances_per_query,
        one.plan_summary()
    )?;
    Ok(())
}

/// One result row as JSON: the section (`selectivity_percent` null when unfiltered) and its numbers.
fn row_json(
    percent: Option<f64>,
    ef: usize,
    threads: usize,
    one: &Measurement,
    all: &Measurement,
    slowdown: Option<f64>,
) -> Value {
    json!({
        "selectivity_percent": percent, "ef": ef, "recall": one.recall, "qps_1_thread": one.median_qps(),
        "best_qps_1_thread": one.best_qps(), "threads": threads, "qps_all_threads": all.median_qps(),
        "distances_per_query": one.distances_per_query, "latency_factor": slowdown,
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The process's resident set, from `/proc/self/statm` (pages, times the page size from
/// `/proc/self/auxv`), and its peak (`VmHWM` in `/proc/self/status`). Linux only.
#[derive(Clone, Copy)]
struct Memory {
    resident: u64,
    peak: u64,
}

impl Memory {
    fn read() -> Option<Self> {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let peak_kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(Self { resident: pages * page_size()?, peak: peak_kib * 1024 })
    }
}

/// The CPU time the process has used so far (user and system, every thread), from
/// `/proc/self/stat`, in seconds; it counts a build's work without the time spent waiting for a
/// core on a busy machine. Linux only; assumes the usual 100 clock ticks per second.
fn cpu_seconds() -> Option<f64> {
    const TICKS_PER_SECOND: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / TICKS_PER_SECOND)
}

/// The page size, from the `AT_PAGESZ` entry of the auxiliary vector (pairs of native words), so
/// that 16 KiB and 64 KiB pages on ARM servers are counted right.
fn page_size() -> Option<u64> {
    const AT_PAGESZ: u64 = 6;
    let auxv = std::fs::read("/proc/self/auxv").ok()?;
    let word = size_of::<usize>();
    auxv.chunks_exact(2 * word).find_map(|pair| {
        let (key, value) = pair.split_at(word);
        let read =
            |bytes: &[u8]| -> Option<u64> { Some(usize::from_ne_bytes(bytes.try_into().ok()?) as u64) };
        (read(key)? == AT_PAGESZ).then(|| read(value)).flatten()
    })
}

/// Build progress on stderr: a progress bar on a terminal, otherwise a line at every tenth.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    next_line: usize,
}

impl Progress {
    fn new(total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "build {elapsed_precise} [{wide_bar}] {pos}/{len} inserted, eta {eta}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Self { bar, total, next_line: total.div_ceil(10) }
    }

    fn update(&mut self, done: usize, elapsed: Duration) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
            return;
        }
        if done >= self.next_line {
            eprintln!(
                "build: {done} of {} inserted ({:.0}%, {:.0} s)",
                self.total,
                100.0 * done as f64 / self.total.max(1) as f64,
                elapsed.as_secs_f64()
            );
            while self.next_line <= done {
                self.next_line += self.total.div_ceil(10).max(1);
            }
        }
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
