//! Noisy neighbour (issue 9): how much does one tenant's flood raise another tenant's latency?
//!
//! Starts the release `bulkhead serve` (`common::server`) on 127.0.0.1 with a fresh data directory,
//! creates tenants A and B with a tenant-admin key each through the admin plane, loads one cosine
//! collection per tenant (debian-minilm rows if the dataset is there, else seeded random unit
//! vectors) and waits until both are in their HNSW segments. Then:
//!
//! 1. **alone**: after a warm-up, B runs a steady open-loop search load: requests are issued on a
//!    fixed schedule whether or not earlier ones have completed (at most `--b-in-flight` at once;
//!    a request whose slot is not free waits for one), and each latency counts from the request's
//!    scheduled time, so that a stalled server cannot hide its stall by slowing the sender
//!    (coordinated omission).
//! 2. **flooded**: the same load from B while A floods the server: closed-loop searches on
//!    `--a-search-streams` concurrent streams and bulk upserts of `--a-batch` points on
//!    `--a-upsert-streams` more into a second collection of A's (its points written in turn, then
//!    rewritten, so that the collection stops growing at `--a-points` while its delta, tombstones
//!    and background index jobs churn), all started `--ramp-s` before B's measurement and stopped
//!    after it.
//!
//! Reported: for B in each phase, requests sent, ok, failed (by gRPC code), p50/p90/p99/max of the
//! successful ones, and the send lag (scheduled time to the call leaving this harness: the
//! harness's own share of the latency, which a starved client host adds); for A, requests sent,
//! ok and refused by code (`RESOURCE_EXHAUSTED` is A being throttled); the CPU the server and this
//! client used; the load average (`/proc/loadavg`) at the start and end of each phase; and B's p99
//! flooded over alone, against issue 9's bar (at most 1.5x, no request of B lost, A throttled).
//! A human table, or one JSON object with `--json`.
//!
//! A and B run on two tokio runtimes of their own in this process, so that B's calls never wait
//! behind A's tasks in one runtime's queues, and B's schedule is kept by the main thread; they still
//! share the machine's cores with each other and with the server.
//!
//! ```text
//! . scripts/env.sh && cargo run -p bulkhead-benches --example noisy_neighbour --release -- [--json]
//! ```
#![expect(clippy::print_stdout, reason = "a harness whose output is its report")]

mod common;

use anyhow::{Context, Result, bail, ensure};
use bulkhead_index::fvecs::read_fvecs;
use bulkhead_server::client::{self, Code, DataPlane};
use bulkhead_server::proto as pb;
use clap::Parser;
use common::server::{ServeProcess, bulkhead_binary, load_average, process_cpu_time};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The collection each tenant searches.
const COLLECTION: &str = "docs";
/// A's second collection, which its upserts write: a write holds its collection's lock, so
/// upserts into the searched collection would mostly throttle A's own searches, not the server.
const INGEST: &str = "ingest";
/// The seed of the random vectors (when there is no dataset).
const SEED: u64 = 0x0b0d_15e5;
/// Random queries made when there is no dataset.
const RANDOM_QUERIES: usize = 2_000;
/// A collection counts as indexed once no job runs and fewer points than this wait in its exact
/// delta: the idle flush's minimum (`IDLE_FLUSH_MIN` in the query crate), below which a remainder
/// stays in the delta for good.
const DELTA_LEFT: u64 = 256;
/// How long the two collections may take to be indexed.
const INDEX_TIMEOUT: Duration = Duration::from_secs(300);
/// How often the index status is asked for while waiting.
const INDEX_POLL: Duration = Duration::from_millis(200);

/// Tenant B's steady search load alone, then while tenant A floods the server.
#[derive(Parser, Debug)]
#[command(name = "noisy_neighbour")]
struct Args {
    /// The `bulkhead` binary [default: this workspace's, built with the release profile].
    #[arg(long, env = "BULKHEAD_BIN")]
    bin: Option<PathBuf>,
    /// A directory with base.fvecs and query.fvecs [default: /work/shared/datasets/debian-minilm
    /// if present, else seeded random unit vectors].
    #[arg(long, conflicts_with = "random")]
    dataset: Option<PathBuf>,
    /// Random unit vectors even if the dataset is there.
    #[arg(long)]
    random: bool,
    /// Dimension of the random vectors.
    #[arg(long, default_value_t = 384)]
    dim: usize,
    /// Points in B's collection (dataset rows from the first; wrapped around if it has fewer).
    #[arg(long, default_value_t = 20_000)]
    b_points: usize,
    /// Points in A's collection (the dataset rows after B's).
    #[arg(long, default_value_t = 20_000)]
    a_points: usize,
    /// B's searches per second, issued on schedule.
    #[arg(long, default_value_t = 200.0)]
    b_rate: f64,
    /// B's requests in flight at most; a scheduled request waits for a free slot beyond it.
    #[arg(long, default_value_t = 64)]
    b_in_flight: usize,
    /// Seconds of B's load before the first phase (not measured).
    #[arg(long, default_value_t = 5.0)]
    warmup_s: f64,
    /// Seconds B's load is measured in each phase.
    #[arg(long, default_value_t = 30.0)]
    phase_s: f64,
    /// Seconds A floods before B's flooded phase starts.
    #[arg(long, default_value_t = 2.0)]
    ramp_s: f64,
    /// A's concurrent closed-loop search streams.
    #[arg(long, default_value_t = 32)]
    a_search_streams: usize,
    /// A's concurrent closed-loop upsert streams.
    #[arg(long, default_value_t = 2)]
    a_upsert_streams: usize,
    /// Points in each of A's upserts (at most 1024, the server's batch limit).
    #[arg(long, default_value_t = 1000)]
    a_batch: usize,
    /// Connections A's streams are spread over (B has one of its own).
    #[arg(long, default_value_t = 4)]
    a_connections: usize,
    /// Milliseconds an A stream pauses after a refused call, so that a throttled A does not turn
    /// into a busy loop on the client's cores.
    #[arg(long, default_value_t = 5)]
    a_backoff_ms: u64,
    /// k of every search.
    #[arg(long, default_value_t = 10)]
    k: u32,
    /// Deadline of each call (sent as `grpc-timeout` and enforced by the client), in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    timeout_ms: u64,
    /// Runs A's client threads at the lowest OS priority (nice 19), as if A's client ran on
    /// another machine: on a machine where the server and both clients share the cores, B's
    /// client and the server then no longer wait for cores behind A's client. A's sending rate
    /// (reported) shows how hard it still floods.
    #[arg(long)]
    a_client_low_priority: bool,
    /// Tenant A's quota of requests a second, set in its policy once both tenants are loaded.
    #[arg(long)]
    a_requests_per_second: Option<u32>,
    /// Tenant A's quota of upserted bytes a second (its policy, set after loading).
    #[arg(long)]
    a_write_bytes_per_second: Option<u64>,
    /// Tenant A's quota of searches at once (its policy, set after loading).
    #[arg(long)]
    a_max_concurrent_searches: Option<u32>,
    /// An argument for `bulkhead serve` (repeat for each), e.g. `--serve-arg=--config=FILE` for the
    /// server's limits and tenant quotas.
    #[arg(long, allow_hyphen_values = true)]
    serve_arg: Vec<String>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// The vectors of the run.
struct Vectors {
    source: String,
    dim: usize,
    b: Vec<Vec<f32>>,
    a: Vec<Vec<f32>>,
    queries: Vec<Vec<f32>>,
}

impl Vectors {
    fn load(args: &Args) -> Result<Vectors> {
        let dir = args.dataset.clone().unwrap_or_else(common::default_dataset_dir);
        if !args.random && dir.join("base.fvecs").is_file() {
            let base = read_fvecs(&dir.join("base.fvecs"), Some(args.b_points + args.a_points))
                .context("base.fvecs")?;
            ensure!(!base.is_empty(), "{}: no rows", dir.display());
            let rows: Vec<&[f32]> = base.rows().collect();
            let row = |i: usize| rows[i % rows.len()].to_vec();
            let queries = read_fvecs(&dir.join("query.fvecs"), None).context("query.fvecs")?;
            ensure!(!queries.is_empty(), "{}: no queries", dir.display());
            return Ok(Vectors {
                source: dir.canonicalize().unwrap_or(dir).display().to_string(),
                dim: base.dim(),
                b: (0..args.b_points).map(row).collect(),
                a: (args.b_points..args.b_points + args.a_points).map(row).collect(),
                queries: queries.rows().map(<[f32]>::to_vec).collect(),
            });
        }
        if args.dataset.is_some() {
            bail!("no base.fvecs in {}", dir.display());
        }
        let mut rng = SmallRng::seed_from_u64(SEED);
        let mut random = |n: usize| -> Vec<Vec<f32>> {
            (0..n)
                .map(|_| {
                    let v: Vec<f32> = (0..args.dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
                    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
                    v.into_iter().map(|x| x / norm).collect()
                })
                .collect()
        };
        Ok(Vectors {
            source: format!("random unit vectors (seed {SEED:#x})"),
            dim: args.dim,
            b: random(args.b_points),
            a: random(args.a_points),
            queries: random(RANDOM_QUERIES),
        })
    }
}

/// One call's outcome: `Ok`, or the gRPC code it failed with (a deadline the client enforced
/// counts as `DEADLINE_EXCEEDED`).
type Outcome = Result<(), Code>;

/// One of B's requests.
struct Sample {
    /// From the scheduled send time to the answer.
    latency: Duration,
    /// From the scheduled send time to the call leaving the harness (the schedule's own lateness,
    /// and any wait for a slot).
    lag: Duration,
    outcome: Outcome,
    /// Whether it had to wait for a slot (the in-flight bound was reached).
    waited: bool,
}

/// What one phase measured for B, and around it.
struct Phase {
    name: &'static str,
    samples: Vec<Sample>,
    elapsed: Duration,
    server_cpu: Duration,
    client_cpu: Duration,
    load_start: [f64; 3],
    load_end: [f64; 3],
}

/// Counts of one kind of A's calls.
#[derive(Default)]
struct Tally {
    sent: u64,
    ok: u64,
    refused: BTreeMap<String, u64>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.sent += other.sent;
        self.ok += other.ok;
        for (code, n) in other.refused {
            *self.refused.entry(code).or_default() += n;
        }
    }

    fn record(&mut self, outcome: Outcome) {
        self.sent += 1;
        match outcome {
            Ok(()) => self.ok += 1,
            Err(code) => *self.refused.entry(code_name(code)).or_default() += 1,
        }
    }

    fn throttled(&self) -> u64 {
        self.refused.get("RESOURCE_EXHAUSTED").copied().unwrap_or(0)
    }

    fn to_json(&self) -> Value {
        json!({ "sent": self.sent, "ok": self.ok, "refused": self.refused, "throttled": self.throttled() })
    }
}

/// What A did during the flooded phase.
struct Flood {
    searches: Tally,
    upserts: Tally,
    points_written: u64,
    elapsed: Duration,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.b_rate > 0.0 && args.phase_s > 0.0, "--b-rate and --phase-s must be positive");
    ensure!((1..=1024).contains(&args.a_batch), "--a-batch must be 1 to 1024");
    ensure!(args.a_points >= 1 && args.b_points >= 1, "each tenant needs at least one point");
    let vectors = Vectors::load(&args)?;
    let binary = bulkhead_binary(args.bin.as_deref())?;
    let load_first = load_average()?;
    let server = ServeProcess::start(&binary, &args.serve_arg)?;
    eprintln!("bulkhead serve (pid {}) at {}; vectors: {}", server.pid(), server.address(), vectors.source);

    // Setup and B's load run on B's runtime; A's flood on its own.
    let b_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let mut a_runtime = tokio::runtime::Builder::new_multi_thread();
    if args.a_client_low_priority {
        a_runtime.on_thread_start(|| {
            if !bulkhead_index::lower_thread_priority() {
                eprintln!("could not lower the priority of A's client thread");
            }
        });
    }
    let a_runtime = a_runtime.worker_threads(2).enable_all().build()?;
    let (key_a, key_b, indexed) = b_runtime.block_on(setup(&server, &vectors))?;
    eprintln!("both collections indexed after {:.1} s", indexed.as_secs_f64());
    b_runtime.block_on(set_a_quotas(&server, &args))?;

    let timeout = Duration::from_millis(args.timeout_ms);
    let queries = Arc::new(vectors.queries);
    let b_data = b_runtime
        .block_on(async { anyhow::Ok(client::data_plane(client::connect(server.address()).await?)) })?;
    let steady = SteadyLoad {
        runtime: &b_runtime,
        data: b_data,
        key: key_b,
        queries: Arc::clone(&queries),
        rate: args.b_rate,
        in_flight: args.b_in_flight,
        k: args.k,
        timeout,
    };

    eprintln!("warm-up: B alone for {} s", args.warmup_s);
    steady.run(args.warmup_s)?;
    eprintln!("phase alone: B at {}/s for {} s", args.b_rate, args.phase_s);
    let alone = measure("alone", &server, || steady.run(args.phase_s))?;

    eprintln!(
        "phase flooded: A with {} search and {} upsert streams, B at {}/s for {} s",
        args.a_search_streams, args.a_upsert_streams, args.b_rate, args.phase_s
    );
    let log_before = server.log_len();
    let stop = Arc::new(AtomicBool::new(false));
    let a_started = Instant::now();
    let flood = a_runtime.spawn(flood(
        server.address().to_owned(),
        key_a,
        Arc::clone(&queries),
        Arc::new(vectors.a),
        Arc::clone(&stop),
        FloodShape::new(&args, timeout),
    ));
    std::thread::sleep(Duration::from_secs_f64(args.ramp_s));
    let flooded = measure("flooded", &server, || steady.run(args.phase_s))?;
    stop.store(true, Ordering::Relaxed);
    let (searches, upserts, points_written) = a_runtime.block_on(flood)??;
    let flood = Flood { searches, upserts, points_written, elapsed: a_started.elapsed() };
    let complaints: Vec<String> = server
        .log_since(log_before)
        .into_iter()
        .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
        .collect();
    let load_last = load_average()?;
    // Reported even if the stop fails; the failure is the run's error afterwards.
    let stopped = server.stop();

    let report = Report {
        args: &args,
        source: &vectors.source,
        dim: vectors.dim,
        indexed,
        phases: [alone, flooded],
        flood,
        complaints,
        load_first,
        load_last,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        report.print();
    }
    stopped.context("stopping bulkhead serve")
}

/// Creates both tenants, their keys and collections, loads them, and waits until both are indexed.
/// Returns A's key, B's key and the time from the first upsert until both were indexed.
/// Sets tenant A's quotas in its policy, if any is asked for (after loading, which they would
/// otherwise slow down).
async fn set_a_quotas(server: &ServeProcess, args: &Args) -> Result<()> {
    let quotas = pb::TenantQuotas {
        requests_per_second: args.a_requests_per_second,
        write_bytes_per_second: args.a_write_bytes_per_second,
        max_concurrent_searches: args.a_max_concurrent_searches,
        ..pb::TenantQuotas::default()
    };
    if quotas == pb::TenantQuotas::default() {
        return Ok(());
    }
    let token = server.admin_token()?;
    let mut admin = client::admin(client::connect(server.address()).await?);
    let policy = pb::TenantPolicy { quotas: Some(quotas), ..pb::TenantPolicy::default() };
    let set = pb::SetPolicyRequest {
        tenant: "tenant-a".into(),
        policy: Some(policy),
        expected_version: 0,
        note: "noisy-neighbour benchmark".into(),
    };
    admin.set_policy(client::authorized(set, &token)?).await?;
    eprintln!("tenant A's quotas: {quotas:?}");
    Ok(())
}

async fn setup(server: &ServeProcess, vectors: &Vectors) -> Result<(Arc<str>, Arc<str>, Duration)> {
    let key_a: Arc<str> = server.tenant_with_key("tenant-a").await?.into();
    let key_b: Arc<str> = server.tenant_with_key("tenant-b").await?.into();
    let mut data = client::data_plane(client::connect(server.address()).await?);
    let create = |name: &str| -> Result<pb::CreateCollectionRequest> {
        Ok(pb::CreateCollectionRequest {
            name: name.into(),
            dimension: u32::try_from(vectors.dim)?,
            metric: pb::Metric::Cosine as i32,
        })
    };
    data.create_collection(client::authorized(create(INGEST)?, &key_a)?).await?;
    // Loads its (empty) search state, so that A's writes go through it and start index jobs.
    let load =
        pb::SearchRequest { collection: INGEST.into(), ..search_request(vectors.queries[0].clone(), 1) };
    data.search(client::authorized(load, &key_a)?).await?;
    let started = Instant::now();
    for (key, rows) in [(&key_a, &vectors.a), (&key_b, &vectors.b)] {
        data.create_collection(client::authorized(create(COLLECTION)?, key)?).await?;
        for (c, chunk) in rows.chunks(common::UPSERT_BATCH).enumerate() {
            let points = points(c * common::UPSERT_BATCH, chunk);
            data.upsert(client::authorized(
                pb::UpsertRequest { collection: COLLECTION.into(), points },
                key,
            )?)
            .await?;
        }
    }
    eprintln!(
        "uploaded {} + {} points in {:.1} s",
        vectors.a.len(),
        vectors.b.len(),
        started.elapsed().as_secs_f64()
    );
    for key in [&key_a, &key_b] {
        loop {
            let describe = pb::DescribeCollectionRequest { name: COLLECTION.into() };
            let collection = data.describe_collection(client::authorized(describe, key)?).await?.into_inner();
            let index = collection.index.context("no index status (a service key should see it)")?;
            if index.loaded && !index.building && index.delta_points < DELTA_LEFT {
                break;
            }
            ensure!(started.elapsed() < INDEX_TIMEOUT, "the collections were not indexed within 5 minutes");
            tokio::time::sleep(INDEX_POLL).await;
        }
    }
    Ok((key_a, key_b, started.elapsed()))
}

/// Points with ids `first`, `first + 1`, ... and these vectors (no text or metadata).
fn points(first: usize, rows: &[Vec<f32>]) -> Vec<pb::Point> {
    rows.iter()
        .enumerate()
        .map(|(i, v)| pb::Point { id: (first + i).to_string(), vector: v.clone(), ..Default::default() })
        .collect()
}

fn search_request(vector: Vec<f32>, k: u32) -> pb::SearchRequest {
    pb::SearchRequest { collection: COLLECTION.into(), vector, k, ..Default::default() }
}

/// One search with the call's deadline.
async fn search(data: &mut DataPlane, key: &str, vector: Vec<f32>, k: u32, timeout: Duration) -> Outcome {
    let mut request = client::authorized(search_request(vector, k), key).map_err(|_| Code::Internal)?;
    request.set_timeout(timeout);
    deadline(timeout, data.search(request)).await
}

/// `call`'s outcome, or `DEADLINE_EXCEEDED` once `timeout` has passed without an answer.
async fn deadline<T>(timeout: Duration, call: impl Future<Output = Result<T, client::Status>>) -> Outcome {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(status)) => Err(status.code()),
        Err(_) => Err(Code::DeadlineExceeded),
    }
}

/// B's open-loop load: `rate` searches a second on schedule, the queries in turn from the first,
/// at most `in_flight` in flight. The schedule is kept by the calling thread with
/// `std::thread::sleep` (tokio's timer rounds every deadline up to the next millisecond, which
/// would add up to a millisecond to every latency); the calls run on `runtime`.
struct SteadyLoad<'a> {
    runtime: &'a tokio::runtime::Runtime,
    data: DataPlane,
    key: Arc<str>,
    queries: Arc<Vec<Vec<f32>>>,
    rate: f64,
    in_flight: usize,
    k: u32,
    timeout: Duration,
}

impl SteadyLoad<'_> {
    /// Runs the load for `seconds`; returns every request's sample once the last one has its answer.
    fn run(&self, seconds: f64) -> Result<Vec<Sample>> {
        let total = (self.rate * seconds).round() as usize;
        let interval = Duration::from_secs_f64(1.0 / self.rate);
        let slots = Arc::new(Semaphore::new(self.in_flight.max(1)));
        let start = Instant::now();
        let mut requests = Vec::with_capacity(total);
        for i in 0..total {
            let scheduled = start + interval.mul_f64(i as f64);
            if let Some(early) = scheduled.checked_duration_since(Instant::now()) {
                std::thread::sleep(early);
            }
            let (mut data, key, slots) = (self.data.clone(), Arc::clone(&self.key), Arc::clone(&slots));
            let vector = self.queries[i % self.queries.len()].clone();
            let (k, timeout) = (self.k, self.timeout);
            requests.push(self.runtime.spawn(async move {
                let (slot, waited) = match Arc::clone(&slots).try_acquire_owned() {
                    Ok(slot) => (slot, false),
                    Err(_) => (slots.acquire_owned().await.map_err(|_| Code::Internal)?, true),
                };
                let lag = scheduled.elapsed();
                let outcome = search(&mut data, &key, vector, k, timeout).await;
                drop(slot);
                Ok::<_, Code>(Sample { latency: scheduled.elapsed(), lag, outcome, waited })
            }));
        }
        self.runtime.block_on(async {
            let mut samples = Vec::with_capacity(total);
            for request in requests {
                match request.await? {
                    Ok(sample) => samples.push(sample),
                    Err(code) => bail!("a request's slot was lost ({code:?})"),
                }
            }
            Ok(samples)
        })
    }
}

/// Runs `load` (one phase of B's) and measures the CPU and load average around it.
fn measure(
    name: &'static str,
    server: &ServeProcess,
    load: impl FnOnce() -> Result<Vec<Sample>>,
) -> Result<Phase> {
    let (load_start, server_cpu, client_cpu) =
        (load_average()?, server.cpu_time()?, process_cpu_time("/proc/self/stat")?);
    let started = Instant::now();
    let samples = load()?;
    Ok(Phase {
        name,
        samples,
        elapsed: started.elapsed(),
        server_cpu: server.cpu_time()?.saturating_sub(server_cpu),
        client_cpu: process_cpu_time("/proc/self/stat")?.saturating_sub(client_cpu),
        load_start,
        load_end: load_average()?,
    })
}

/// The shape of A's flood.
#[derive(Clone, Copy)]
struct FloodShape {
    search_streams: usize,
    upsert_streams: usize,
    batch: usize,
    connections: usize,
    backoff: Duration,
    k: u32,
    timeout: Duration,
}

impl FloodShape {
    fn new(args: &Args, timeout: Duration) -> FloodShape {
        FloodShape {
            search_streams: args.a_search_streams,
            upsert_streams: args.a_upsert_streams,
            batch: args.a_batch,
            connections: args.a_connections.max(1),
            backoff: Duration::from_millis(args.a_backoff_ms),
            k: args.k,
            timeout,
        }
    }
}

/// A's flood until `stop`: closed-loop searches and upserts on their streams, spread over A's
/// connections. Returns the searches' and upserts' tallies and the points A's upserts wrote.
async fn flood(
    address: String,
    key: Arc<str>,
    queries: Arc<Vec<Vec<f32>>>,
    rows: Arc<Vec<Vec<f32>>>,
    stop: Arc<AtomicBool>,
    shape: FloodShape,
) -> Result<(Tally, Tally, u64)> {
    let mut channels = Vec::new();
    for _ in 0..shape.connections {
        channels.push(client::connect(&address).await?);
    }
    let connections: Vec<DataPlane> = channels.iter().cloned().map(client::data_plane).collect();
    // A's batches, built and encoded once: sending one is then a copy of its bytes, so the
    // flood's own client spends the machine's cores on sending, not on encoding the same points
    // again (a real neighbour's client runs on its own machine).
    let batches: Arc<Vec<(client::EncodedUpsert, u64)>> = Arc::new(
        (0..rows.len().div_ceil(shape.batch))
            .map(|b| {
                let (start, end) = (b * shape.batch, ((b + 1) * shape.batch).min(rows.len()));
                let points = points(start, &rows[start..end]);
                let count = points.len() as u64;
                (client::EncodedUpsert::new(&pb::UpsertRequest { collection: INGEST.into(), points }), count)
            })
            .collect(),
    );
    let mut searches = JoinSet::new();
    for stream in 0..shape.search_streams {
        let mut data = connections[stream % connections.len()].clone();
        let (key, queries, stop) = (Arc::clone(&key), Arc::clone(&queries), Arc::clone(&stop));
        searches.spawn(async move {
            let mut tally = Tally::default();
            // Each stream starts at another query, so that A's streams do not search in lockstep.
            let mut q = stream * 61;
            while !stop.load(Ordering::Relaxed) {
                let vector = queries[q % queries.len()].clone();
                let outcome = search(&mut data, &key, vector, shape.k, shape.timeout).await;
                if outcome.is_err() {
                    tokio::time::sleep(shape.backoff).await;
                }
                tally.record(outcome);
                q += 1;
            }
            tally
        });
    }
    let mut upserts = JoinSet::new();
    for stream in 0..shape.upsert_streams {
        let channel = channels[(shape.search_streams + stream) % channels.len()].clone();
        let (key, batches, stop) = (Arc::clone(&key), Arc::clone(&batches), Arc::clone(&stop));
        upserts.spawn(async move {
            let (mut tally, mut written) = (Tally::default(), 0u64);
            // The streams write A's rows batch by batch in turn: stream s writes batches s,
            // s + streams, s + 2 streams, ... wrapping around to rewrite them.
            let mut n = stream;
            while !stop.load(Ordering::Relaxed) {
                let (upsert, count) = &batches[n % batches.len()];
                let count = *count;
                let outcome =
                    deadline(shape.timeout, upsert.send(channel.clone(), &key, shape.timeout)).await;
                match outcome {
                    Ok(()) => written += count,
                    Err(_) => tokio::time::sleep(shape.backoff).await,
                }
                tally.record(outcome);
                n += shape.upsert_streams;
            }
            (tally, written)
        });
    }
    let (mut search_tally, mut upsert_tally, mut written) = (Tally::default(), Tally::default(), 0);
    while let Some(tally) = searches.join_next().await {
        search_tally.add(tally?);
    }
    while let Some(done) = upserts.join_next().await {
        let (tally, points) = done?;
        upsert_tally.add(tally);
        written += points;
    }
    Ok((search_tally, upsert_tally, written))
}

/// `RESOURCE_EXHAUSTED` for `Code::ResourceExhausted`: the name the gRPC specification gives.
fn code_name(code: Code) -> String {
    let mut name = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// B's figures in one phase.
struct Summary {
    sent: usize,
    ok: usize,
    failed: BTreeMap<String, u64>,
    waited: usize,
    /// p50, p90, p99 and max of the successful requests.
    quantiles: [Duration; 4],
    /// p50 and p99 of every request's lag (scheduled time to sent).
    lag: [Duration; 2],
}

impl Summary {
    fn of(phase: &Phase) -> Summary {
        let mut ok: Vec<Duration> =
            phase.samples.iter().filter(|s| s.outcome.is_ok()).map(|s| s.latency).collect();
        ok.sort_unstable();
        let mut lag: Vec<Duration> = phase.samples.iter().map(|s| s.lag).collect();
        lag.sort_unstable();
        let mut failed = BTreeMap::new();
        for sample in &phase.samples {
            if let Err(code) = sample.outcome {
                *failed.entry(code_name(code)).or_default() += 1;
            }
        }
        Summary {
            sent: phase.samples.len(),
            ok: ok.len(),
            failed,
            waited: phase.samples.iter().filter(|s| s.waited).count(),
            quantiles: [0.5, 0.9, 0.99, 1.0].map(|q| quantile(&ok, q)),
            lag: [0.5, 0.99].map(|q| quantile(&lag, q)),
        }
    }

    fn p99(&self) -> Duration {
        self.quantiles[2]
    }
}

/// The nearest-rank quantile `q` of `sorted` (zero if it is empty).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Cores' worth of `cpu` over `wall`.
fn cores(cpu: Duration, wall: Duration) -> f64 {
    cpu.as_secs_f64() / wall.as_secs_f64().max(f64::MIN_POSITIVE)
}

fn codes(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts.iter().map(|(code, n)| format!("{code} {n}")).collect::<Vec<_>>().join(", ")
}

struct Report<'a> {
    args: &'a Args,
    source: &'a str,
    dim: usize,
    indexed: Duration,
    phases: [Phase; 2],
    flood: Flood,
    /// The server's warnings and errors logged during the flooded phase.
    complaints: Vec<String>,
    load_first: [f64; 3],
    load_last: [f64; 3],
}

impl Report<'_> {
    fn ratio(&self) -> f64 {
        let [alone, flooded] = &self.phases;
        ms(Summary::of(flooded).p99()) / ms(Summary::of(alone).p99()).max(f64::MIN_POSITIVE)
    }

    /// A's successful searches a second over B's scheduled rate.
    fn a_over_b(&self) -> f64 {
        self.flood.searches.ok as f64 / self.flood.elapsed.as_secs_f64() / self.args.b_rate
    }

    fn print(&self) {
        let a = self.args;
        println!(
            "noisy neighbour: B {} and A {} points of {} dimensions ({}), k {}; \
             indexed {:.1} s after the first upsert",
            a.b_points,
            a.a_points,
            self.dim,
            self.source,
            a.k,
            self.indexed.as_secs_f64()
        );
        println!(
            "B: {}/s on schedule (open loop, at most {} in flight), {} s a phase; latency from the \
             scheduled send, successful requests only",
            a.b_rate, a.b_in_flight, a.phase_s
        );
        if !a.serve_arg.is_empty() {
            println!("bulkhead serve arguments: {}", a.serve_arg.join(" "));
        }
        println!(
            "tenant A's policy quotas: requests/s {:?}, write bytes/s {:?}, searches at once {:?}",
            a.a_requests_per_second, a.a_write_bytes_per_second, a.a_max_concurrent_searches
        );
        if a.a_client_low_priority {
            println!("A's client threads at the lowest OS priority (--a-client-low-priority)");
        }
        let summaries = self.phases.each_ref().map(Summary::of);
        println!("\n{:<24} {:>12} {:>12}", "tenant B", self.phases[0].name, self.phases[1].name);
        let row = |label: &str, f: &dyn Fn(usize) -> String| {
            println!("{label:<24} {:>12} {:>12}", f(0), f(1));
        };
        row("sent", &|i| summaries[i].sent.to_string());
        row("ok", &|i| summaries[i].ok.to_string());
        row("failed", &|i| summaries[i].failed.values().sum::<u64>().to_string());
        row("waited for a slot", &|i| summaries[i].waited.to_string());
        for (j, label) in ["p50 ms", "p90 ms", "p99 ms", "max ms"].into_iter().enumerate() {
            row(label, &|i| format!("{:.2}", ms(summaries[i].quantiles[j])));
        }
        row("send lag p50 ms", &|i| format!("{:.2}", ms(summaries[i].lag[0])));
        row("send lag p99 ms", &|i| format!("{:.2}", ms(summaries[i].lag[1])));
        row("server CPU, cores", &|i| {
            format!("{:.2}", cores(self.phases[i].server_cpu, self.phases[i].elapsed))
        });
        row("client CPU, cores", &|i| {
            format!("{:.2}", cores(self.phases[i].client_cpu, self.phases[i].elapsed))
        });
        row("load average at start", &|i| format!("{:.2}", self.phases[i].load_start[0]));
        row("load average at end", &|i| format!("{:.2}", self.phases[i].load_end[0]));
        for (phase, summary) in self.phases.iter().zip(&summaries) {
            if !summary.failed.is_empty() {
                println!("B's failures {}: {}", phase.name, codes(&summary.failed));
            }
        }
        let f = &self.flood;
        println!(
            "\ntenant A, flooded phase ({:.1} s): {} search streams, {} upsert streams of {} points, \
             {} connections",
            f.elapsed.as_secs_f64(),
            a.a_search_streams,
            a.a_upsert_streams,
            a.a_batch,
            a.a_connections
        );
        println!("{:<10} {:>10} {:>10} {:>10}  refused by code", "", "sent", "ok", "throttled");
        for (label, tally) in [("searches", &f.searches), ("upserts", &f.upserts)] {
            println!(
                "{label:<10} {:>10} {:>10} {:>10}  {}",
                tally.sent,
                tally.ok,
                tally.throttled(),
                codes(&tally.refused)
            );
        }
        println!(
            "A: {:.0} searches/s ok ({:.1}x B's rate), {} points written ({:.0}/s)",
            f.searches.ok as f64 / f.elapsed.as_secs_f64(),
            self.a_over_b(),
            f.points_written,
            f.points_written as f64 / f.elapsed.as_secs_f64()
        );
        if !self.complaints.is_empty() {
            println!(
                "\nthe server logged {} warnings or errors during the flood; the first:",
                self.complaints.len()
            );
            for line in self.complaints.iter().take(5) {
                println!("  {line}");
            }
        }
        let lost = summaries[1].sent - summaries[1].ok;
        // Throttled: refused, or held to its request rate (a call over the rate waits its turn).
        let answered = (f.searches.ok + f.upserts.ok) as f64 / f.elapsed.as_secs_f64();
        println!(
            "\nB p99 flooded / alone: {:.2}x; B lost {lost} requests flooded; A throttled {} times, \
             A answered {answered:.0} calls/s against {:.0} sent/s (issue 9's bar: at most 1.5x, none \
             lost, A throttled)",
            self.ratio(),
            f.searches.throttled() + f.upserts.throttled(),
            (f.searches.sent + f.upserts.sent) as f64 / f.elapsed.as_secs_f64(),
        );
        println!(
            "load average (1, 5, 15 min): start {}, end {}",
            fmt_load(self.load_first),
            fmt_load(self.load_last)
        );
    }

    fn to_json(&self) -> Value {
        let a = self.args;
        let phase = |p: &Phase| {
            let s = Summary::of(p);
            json!({
                "sent": s.sent,
                "ok": s.ok,
                "failed": s.failed,
                "waited_for_slot": s.waited,
                "p50_ms": ms(s.quantiles[0]),
                "p90_ms": ms(s.quantiles[1]),
                "p99_ms": ms(s.quantiles[2]),
                "max_ms": ms(s.quantiles[3]),
                "send_lag_p50_ms": ms(s.lag[0]),
                "send_lag_p99_ms": ms(s.lag[1]),
                "seconds": p.elapsed.as_secs_f64(),
                "server_cpu_cores": cores(p.server_cpu, p.elapsed),
                "client_cpu_cores": cores(p.client_cpu, p.elapsed),
                "load_average_start": p.load_start,
                "load_average_end": p.load_end,
            })
        };
        let f = &self.flood;
        json!({
            "vectors": self.source,
            "dimension": self.dim,
            "b_points": a.b_points,
            "a_points": a.a_points,
            "k": a.k,
            "indexed_seconds": self.indexed.as_secs_f64(),
            "b_rate": a.b_rate,
            "b_in_flight": a.b_in_flight,
            "phase_seconds": a.phase_s,
            "timeout_ms": a.timeout_ms,
            "serve_args": a.serve_arg,
            "b": { "alone": phase(&self.phases[0]), "flooded": phase(&self.phases[1]) },
            "a": {
                "search_streams": a.a_search_streams,
                "upsert_streams": a.a_upsert_streams,
                "batch": a.a_batch,
                "connections": a.a_connections,
                "client_low_priority": a.a_client_low_priority,
                "seconds": f.elapsed.as_secs_f64(),
                "searches": f.searches.to_json(),
                "upserts": f.upserts.to_json(),
                "points_written": f.points_written,
                "search_rate_over_b_rate": self.a_over_b(),
            },
            "b_p99_ratio": self.ratio(),
            "server_warnings_during_flood": self.complaints.len(),
            "load_average_start": self.load_first,
            "load_average_end": self.load_last,
        })
    }
}

fn fmt_load(load: [f64; 3]) -> String {
    load.map(|l| format!("{l:.2}")).join(" ")
}
