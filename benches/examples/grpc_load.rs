//! The server path against the in-process path, on debian-minilm: bulk load over gRPC (1,000 points
//! per request) until the HNSW segment serves, then the 2,000 queries (k = 10, default ef) from 1 and
//! 4 concurrent clients, through `bulkhead serve`'s gRPC service on loopback and through the embedded
//! API on as many threads, side by side. Prints queries/s, p50/p99 latency and recall@10.
//!
//! ```text
//! . scripts/env.sh && cargo run -p bulkhead-benches --example grpc_load --release
//! ```
#![expect(clippy::print_stdout, reason = "a harness whose output is its report")]

mod common;

use anyhow::{Context, Result};
use bulkhead_query::{Database, Role, TenantName};
use bulkhead_server::proto as pb;
use bulkhead_server::{AdminToken, Server, ServerLimits, client};
use common::{Dataset, TempDatabase};
use std::sync::Arc;
use std::time::{Duration, Instant};

const K: usize = 10;
const CONCURRENCY: [usize; 2] = [1, 4];

struct Run {
    qps: f64,
    p50: Duration,
    p99: Duration,
    recall: f64,
}

fn summarise(mut latencies: Vec<Duration>, elapsed: Duration, found: usize, queries: usize) -> Run {
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    Run {
        qps: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
        recall: found as f64 / (queries * K) as f64,
    }
}

fn main() -> Result<()> {
    let Dataset { base, queries, gt, .. } = Dataset::load()?;
    let truth: Arc<Vec<Vec<String>>> = Arc::new(
        (0..queries.len())
            .map(|q| Ok(gt.row(q).context("truth")?[..K].iter().map(|t| t.to_string()).collect()))
            .collect::<Result<_>>()?,
    );
    let queries: Arc<Vec<Vec<f32>>> = Arc::new(queries.rows().map(<[f32]>::to_vec).collect());
    let temp = TempDatabase::new()?;
    // The default threshold: the collection gets its segment in the background during the load.
    let db = Arc::new(temp.open(bulkhead_query::DEFAULT_GRAPH_THRESHOLD)?);
    let name = TenantName::new("bench")?;
    db.operator().create_tenant(&name)?;
    let token = db.operator().issue_api_key(&name, Role::TenantAdmin, "bench", None)?.token;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let address = listener.local_addr()?.to_string();
    let server = Server::new(Arc::clone(&db), AdminToken::generate(), ServerLimits::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = runtime.spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));
    println!("active ISA: {}; server on {address}", bulkhead_distance::active_isa());

    // Bulk load over gRPC, then wait for the segment.
    let started = Instant::now();
    runtime.block_on(async {
        let mut data = client::data_plane(client::connect(&address).await?);
        let create = pb::CreateCollectionRequest {
            name: "docs".into(),
            dimension: base.dim() as u32,
            metric: pb::Metric::Cosine as i32,
        };
        data.create_collection(client::authorized(create, &token)?).await?;
        let rows: Vec<&[f32]> = base.rows().collect();
        for (c, chunk) in rows.chunks(1000).enumerate() {
            let points = chunk
                .iter()
                .enumerate()
                .map(|(j, v)| pb::Point {
                    id: (c * 1000 + j).to_string(),
                    vector: v.to_vec(),
                    text: String::new(),
                    ..Default::default()
                })
                .collect();
            data.upsert(client::authorized(pb::UpsertRequest { collection: "docs".into(), points }, &token)?)
                .await?;
        }
        anyhow::Ok(())
    })?;
    let uploaded = started.elapsed();
    let scope = db.operator().authenticate(&token)?;
    let tenant = db.tenant(&scope)?;
    tenant.search("docs", &queries[0], 1)?;
    loop {
        let status = tenant.graph_status("docs")?;
        if status.delta_points == 0 && !status.building {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "bulk load over gRPC: {:.1} s upload, {:.1} s until the whole collection is in the segment",
        uploaded.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    drop(tenant);

    println!(
        "\n{:>8} {:>10} {:>10} {:>10} {:>8} {:>8}",
        "clients", "path", "q/s", "p50 µs", "p99 µs", "recall"
    );
    for clients in CONCURRENCY {
        let local = in_process(&db, &token, &queries, &truth, clients)?;
        let remote = runtime.block_on(over_grpc(&address, &token, &queries, &truth, clients))?;
        for (path, run) in [("embedded", &local), ("gRPC", &remote)] {
            println!(
                "{clients:>8} {path:>10} {:>10.0} {:>10} {:>8} {:>8.4}",
                run.qps,
                run.p50.as_micros(),
                run.p99.as_micros(),
                run.recall
            );
        }
        println!("{clients:>8} {:>10} {:>10.2}", "ratio", remote.qps / local.qps);
    }
    let _ = stop.send(());
    runtime.block_on(serving)??;
    Ok(())
}

/// The queries split over `clients` threads calling the embedded API (each with its own scope).
fn in_process(
    db: &Arc<Database>,
    token: &str,
    queries: &Arc<Vec<Vec<f32>>>,
    truth: &Arc<Vec<Vec<String>>>,
    clients: usize,
) -> Result<Run> {
    let started = Instant::now();
    let results: Vec<Result<(Vec<Duration>, usize)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                s.spawn(move || -> Result<(Vec<Duration>, usize)> {
                    let scope = db.operator().authenticate(token)?;
                    let tenant = db.tenant(&scope)?;
                    let (mut latencies, mut found) = (Vec::new(), 0);
                    for q in (c..queries.len()).step_by(clients) {
                        let t = Instant::now();
                        let hits = tenant.search("docs", &queries[q], K)?;
                        latencies.push(t.elapsed());
                        found += hits.iter().filter(|h| truth[q].iter().any(|t| t == h.id.as_str())).count();
                    }
                    Ok((latencies, found))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("panicked")))).collect()
    });
    collect(results, started.elapsed(), queries.len())
}

/// The queries split over `clients` concurrent gRPC clients, each with its own connection.
async fn over_grpc(
    address: &str,
    token: &str,
    queries: &Arc<Vec<Vec<f32>>>,
    truth: &Arc<Vec<Vec<String>>>,
    clients: usize,
) -> Result<Run> {
    let mut connections = Vec::new();
    for _ in 0..clients {
        connections.push(client::data_plane(client::connect(address).await?));
    }
    let started = Instant::now();
    let tasks: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(c, mut data)| {
            let (queries, truth, token) = (Arc::clone(queries), Arc::clone(truth), token.to_owned());
            tokio::spawn(async move {
                let (mut latencies, mut found) = (Vec::new(), 0);
                for q in (c..queries.len()).step_by(clients) {
                    let request = pb::SearchRequest {
                        collection: "docs".into(),
                        vector: queries[q].clone(),
                        k: K as u32,
                        ..Default::default()
                    };
                    let t = Instant::now();
                    let hits = data.search(client::authorized(request, &token)?).await?.into_inner().hits;
                    latencies.push(t.elapsed());
                    found += hits.iter().filter(|h| truth[q].contains(&h.id)).count();
                }
                anyhow::Ok((latencies, found))
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await?);
    }
    collect(results, started.elapsed(), queries.len())
}

fn collect(results: Vec<Result<(Vec<Duration>, usize)>>, elapsed: Duration, queries: usize) -> Result<Run> {
    let (mut latencies, mut found) = (Vec::new(), 0);
    for result in results {
        let (l, f) = result?;
        latencies.extend(l);
        found += f;
    }
    Ok(summarise(latencies, elapsed, found, queries))
}
