"""The Python load benchmark of issue 6: `bulkhead serve` driven by the plain grpcio client that users
of Qdrant run, on debian-minilm, reported beside Qdrant 1.17.1's figures measured on this machine.

1. Bulk load: starts the release binary (`harness.BulkheadServer`: fresh data directory, ephemeral
   port), creates a tenant, a tenant-admin key and one cosine collection, and upserts the 61,666 base
   vectors (ids "0".., no text or metadata) through `Upsert` in batches of 1,000. Then it waits, as any
   client can, by polling `DescribeCollection` every 100 ms until the index status says every point
   is in the HNSW segment and no build runs. The upload's own writes load the collection's search
   state and start the graph builds (no search is needed to start them). Reported: the
   upload time and the time until indexed, both from the first `Upsert`.
2. Search: the 2,000 queries (k = 10) at each ef, from 1 client and from N client processes
   (multiprocessing spawn, one channel each: Python's GIL makes threads a poor stand-in), each
   process walking its share of the queries `--passes` times after an untimed warm-up of 50 queries.
   Reported: queries/s over the wall time from the first timed call to the last, p50 and p99 of the
   per-call latency (`time.perf_counter` around the blocking stub call), and recall@10 against
   gt.ivecs.
3. Where the time goes (`--breakdown`): from one process, 2,000 calls each of `Count` (gRPC plus
   authentication, almost no work) and of a search at each ef, with the median wall time per call
   and the CPU time per call of the client process and of the server process (/proc); and the
   client's protobuf work alone (build and serialise a request, parse a 10-hit response).

    scripts/bench-python.sh [--ef 32,64] [--clients 1,4] [--passes 3] [--breakdown]

Nothing here prints a credential: the admin token and the API key live in variables only.
"""

import argparse
import json
import multiprocessing
import os
import queue
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "clients" / "python"))
import harness  # noqa: E402

COLLECTION = "minilm"
K = 10
UPSERT_BATCH = 1000
WARMUP_QUERIES = 50


def read_vecs(path, dtype):
    """fvecs/ivecs: each row is a little-endian int32 dimension, then that many 4-byte values."""
    raw = np.fromfile(path, dtype="<i4")
    dim = int(raw[0])
    rows = raw.reshape(-1, dim + 1)
    if not (rows[:, 0] == dim).all():
        raise ValueError(f"{path}: rows of different dimensions")
    return np.ascontiguousarray(rows[:, 1:]).view(dtype)


def default_dataset():
    beside = REPO.parent / "shared" / "datasets" / "debian-minilm"
    return beside if beside.exists() else Path("/work/shared/datasets/debian-minilm")


def bulk_load(pb, pb_grpc, channel, token, base):
    """Uploads every base row, then waits until the HNSW segment covers them all. Returns
    (upload seconds, seconds until indexed), both from the first Upsert."""
    data = pb_grpc.DataPlaneStub(channel)
    auth = harness.bearer(token)
    data.CreateCollection(
        pb.CreateCollectionRequest(name=COLLECTION, dimension=base.shape[1], metric=pb.METRIC_COSINE), metadata=auth
    )
    started = time.perf_counter()
    for start in range(0, len(base), UPSERT_BATCH):
        rows = base[start : start + UPSERT_BATCH]
        points = [pb.Point(id=str(start + j), vector=row.tolist()) for j, row in enumerate(rows)]
        data.Upsert(pb.UpsertRequest(collection=COLLECTION, points=points), metadata=auth)
    uploaded = time.perf_counter() - started
    while True:
        index = data.DescribeCollection(pb.DescribeCollectionRequest(name=COLLECTION), metadata=auth).index
        if index.loaded and index.delta_points == 0 and not index.building:
            break
        time.sleep(0.1)
    indexed = time.perf_counter() - started
    if index.graph_points != len(base):
        raise RuntimeError(f"the segment covers {index.graph_points} of {len(base)} points")
    return uploaded, indexed


def search_worker(stubs_dir, address, token, worker, workers, ef, passes, queries, truth, ready, results):
    """One client process: its own channel, its share of the queries `passes` times."""
    pb, pb_grpc = harness.import_stubs(stubs_dir)
    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=30)
    data = pb_grpc.DataPlaneStub(channel)
    auth = harness.bearer(token)
    mine = list(range(worker, len(queries), workers))
    vectors = [queries[q].tolist() for q in mine]
    truths = [set(truth[q, :K].tolist()) for q in mine]
    for vector in vectors[:WARMUP_QUERIES]:
        data.Search(pb.SearchRequest(collection=COLLECTION, vector=vector, k=K, ef=ef), metadata=auth)
    # Every process starts timing together, once all are connected and warm.
    ready.wait(timeout=300)
    latencies, found = [], 0
    first = time.perf_counter()
    for _ in range(passes):
        for vector, expected in zip(vectors, truths):
            t = time.perf_counter()
            hits = data.Search(
                pb.SearchRequest(collection=COLLECTION, vector=vector, k=K, ef=ef), metadata=auth
            ).hits
            latencies.append(time.perf_counter() - t)
            found += sum(1 for h in hits if int(h.id) in expected)
    last = time.perf_counter()
    channel.close()
    # perf_counter is CLOCK_MONOTONIC on Linux: comparable across the processes of one machine.
    results.put((first, last, latencies, found))


def measure(context, stubs_dir, address, token, queries, truth, ef, clients, passes):
    ready = context.Barrier(clients)
    results = context.Queue()
    workers = [
        context.Process(
            target=search_worker,
            args=(stubs_dir, address, token, w, clients, ef, passes, queries, truth, ready, results),
        )
        for w in range(clients)
    ]
    for w in workers:
        w.start()
    collected = []
    try:
        while len(collected) < len(workers):
            try:
                collected.append(results.get(timeout=1))
            except queue.Empty:
                if any(w.exitcode not in (None, 0) for w in workers):
                    raise RuntimeError("a client process failed") from None
    finally:
        for w in workers:
            w.join(timeout=10)
            if w.is_alive():
                w.terminate()
    if any(w.exitcode != 0 for w in workers):
        raise RuntimeError("a client process failed")
    first = min(r[0] for r in collected)
    last = max(r[1] for r in collected)
    latencies = sorted(l for r in collected for l in r[2])
    found = sum(r[3] for r in collected)
    at = lambda q: latencies[int((len(latencies) - 1) * q)]  # noqa: E731
    return {
        "ef": ef,
        "clients": clients,
        "queries": len(latencies),
        "qps": len(latencies) / (last - first),
        "p50_ms": at(0.5) * 1e3,
        "p99_ms": at(0.99) * 1e3,
        "recall": found / (len(latencies) * K),
    }


def process_cpu_s(pid):
    """User plus system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def breakdown(pb, pb_grpc, channel, token, queries, server_pid, efs, calls=2000):
    """Where one call's time goes, from one process: for a Count (gRPC and authentication, almost no
    work) and a search at each ef, the median wall time per call, and the CPU time per call spent by
    this client process and by the server process. Plus the client's protobuf cost alone."""
    data = pb_grpc.DataPlaneStub(channel)
    auth = harness.bearer(token)
    vectors = [queries[i % len(queries)].tolist() for i in range(calls)]

    def per_call(fn):
        samples = []
        client_cpu, server_cpu = time.process_time(), process_cpu_s(server_pid)
        for v in vectors:
            t = time.perf_counter()
            fn(v)
            samples.append(time.perf_counter() - t)
        client_cpu = time.process_time() - client_cpu
        server_cpu = process_cpu_s(server_pid) - server_cpu
        return {
            "wall_p50_us": statistics.median(samples) * 1e6,
            "client_cpu_us": client_cpu / calls * 1e6,
            "server_cpu_us": server_cpu / calls * 1e6,
        }

    rows = {"Count": per_call(lambda v: data.Count(pb.CountRequest(collection=COLLECTION), metadata=auth))}
    for ef in efs:
        rows[f"Search ef {ef}"] = per_call(
            lambda v: data.Search(pb.SearchRequest(collection=COLLECTION, vector=v, k=K, ef=ef), metadata=auth)
        )
    wire = data.Search(pb.SearchRequest(collection=COLLECTION, vector=vectors[0], k=K), metadata=auth)
    wire = wire.SerializeToString()

    def protobuf_only(v):
        pb.SearchRequest(collection=COLLECTION, vector=v, k=K, ef=efs[0]).SerializeToString()
        pb.SearchResponse.FromString(wire)

    rows["protobuf only (no call)"] = per_call(protobuf_only)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=default_dataset())
    parser.add_argument("--bin", type=Path, default=harness.default_binary(), help="the bulkhead binary")
    parser.add_argument("--ef", default="32,64", help="comma-separated ef values")
    parser.add_argument("--clients", default="1,4", help="comma-separated client process counts")
    parser.add_argument("--passes", type=int, default=3, help="times each client walks its queries")
    parser.add_argument("--breakdown", action="store_true", help="also measure where a call's time goes")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    harness.sigterm_raises()
    efs = [int(e) for e in args.ef.split(",")]
    client_counts = [int(c) for c in args.clients.split(",")]

    base = read_vecs(args.dataset / "base.fvecs", "<f4")
    queries = read_vecs(args.dataset / "query.fvecs", "<f4")
    truth = read_vecs(args.dataset / "gt.ivecs", "<i4")
    print(f"dataset: {args.dataset} ({base.shape[0]} x {base.shape[1]}, {queries.shape[0]} queries)")
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}, {os.cpu_count()} CPUs")

    results = {"dataset": str(args.dataset), "searches": []}
    with tempfile.TemporaryDirectory(prefix="bulkhead-pybench-") as tmp:
        stubs_dir = Path(tmp) / "stubs"
        pb, pb_grpc = harness.generate_stubs(stubs_dir)
        with harness.BulkheadServer(args.bin, Path(tmp) / "data") as server:
            channel = grpc.insecure_channel(server.address)
            grpc.channel_ready_future(channel).result(timeout=30)
            admin = pb_grpc.AdminStub(channel)
            operator = harness.bearer(server.admin_token())
            admin.CreateTenant(pb.CreateTenantRequest(name="bench"), metadata=operator)
            token = admin.IssueApiKey(
                pb.IssueApiKeyRequest(tenant="bench", role=pb.ROLE_TENANT_ADMIN, label="python bench"),
                metadata=operator,
            ).token
            simd = next((part for part in server.log().split() if part.startswith("simd=")), "simd=?")
            print(f"server: {server.address} ({simd}); grpcio {grpc.__version__}")

            uploaded, indexed = bulk_load(pb, pb_grpc, channel, token, base)
            results.update(upload_s=uploaded, load_and_index_s=indexed)
            print(f"bulk load: {uploaded:.1f} s upload ({UPSERT_BATCH} points per Upsert), {indexed:.1f} s until indexed")

            context = multiprocessing.get_context("spawn")
            print(f"\n{'ef':>4} {'clients':>7} {'queries':>8} {'q/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'recall@10':>9}")
            for ef in efs:
                for clients in client_counts:
                    run = measure(context, stubs_dir, server.address, token, queries, truth, ef, clients, args.passes)
                    results["searches"].append(run)
                    print(
                        f"{ef:>4} {clients:>7} {run['queries']:>8} {run['qps']:>8.0f} {run['p50_ms']:>8.2f}"
                        f" {run['p99_ms']:>8.2f} {run['recall']:>9.4f}",
                        flush=True,
                    )
            if args.breakdown:
                rows = breakdown(pb, pb_grpc, channel, token, queries, server.process.pid, efs)
                print("\nper call, one client process, 2,000 calls each: median wall, CPU of client and server")
                for name, row in rows.items():
                    print(
                        f"  {name:<40.40} {row['wall_p50_us']:>7.0f} µs  client {row['client_cpu_us']:>5.0f} µs"
                        f"  server {row['server_cpu_us']:>5.0f} µs"
                    )
                results["breakdown"] = rows
            channel.close()
            server.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
