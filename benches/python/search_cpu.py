#!/usr/bin/env python3
"""The server CPU of one search, for A/B runs of two `bulkhead` binaries on the same data.

    python benches/python/search_cpu.py load DATA_DIR            # once: a server loads debian-minilm
    python benches/python/search_cpu.py ab DATA_DIR BIN_A BIN_B --rounds 3

`load` starts `BULKHEAD_BIN` (default: the release build) on a fresh DATA_DIR, creates tenant
`bench` and collection `minilm`, upserts the 61,666 points 1,000 per call with a short text each,
waits until they are indexed and stops the server. `ab` starts each binary in turn on DATA_DIR
(alternating, `--rounds` times), warms it up with 3 s of searches, then searches for `--seconds`
from one client (k = 10, ef 32, the hit texts returned) and prints the queries/s and the server's
CPU (user + system, from /proc/PID/stat) per search. Uses the stubs that ../shared/bench/
side_by_side.py generates (BENCH_SCRATCH, default /tmp/bulkhead-bench/stubs) and its dataset.
Extra environment for the servers: `--env NAME=VALUE` (e.g. TOKIO_WORKER_THREADS=1), given to B.
"""

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

STUBS = Path(os.environ.get("BENCH_SCRATCH", "/tmp/bulkhead-bench")) / "stubs"
DATASET = Path(os.environ.get("BENCH_DATASET", Path(__file__).resolve().parents[2] / "../shared/datasets/debian-minilm"))
DEFAULT_BIN = Path(os.environ.get("BULKHEAD_BIN", Path.home() / ".cache/bulkhead/target/release/bulkhead"))
sys.path.insert(0, str(STUBS))
import grpc  # noqa: E402
from bulkhead.v1 import bulkhead_pb2 as pb, bulkhead_pb2_grpc as pbg  # noqa: E402


def vecs(path):
    raw = np.fromfile(path, dtype="<i4")
    return raw.reshape(-1, raw[0] + 1)[:, 1:].view("<f4")


def start(binary, data_dir, env=None):
    log = open(data_dir.parent / f"{data_dir.name}-serve.log", "w")
    proc = subprocess.Popen(
        [str(binary), "--data-dir", str(data_dir), "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "off"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )
    for _ in range(300):
        found = re.search(r"address=([0-9.:]+)", Path(log.name).read_text())
        if found:
            channel = grpc.insecure_channel(found.group(1))
            grpc.channel_ready_future(channel).result(timeout=30)
            admin = (("authorization", f"Bearer {(data_dir / 'dev-admin.token').read_text().strip()}"),)
            return proc, channel, admin
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start: see " + log.name)


def key(channel, admin):
    issue = pb.IssueApiKeyRequest(tenant="bench", role=pb.ROLE_TENANT_ADMIN, label="search-cpu")
    return (("authorization", f"Bearer {pbg.AdminStub(channel).IssueApiKey(issue, metadata=admin).token}"),)


def load(data_dir, binary):
    proc, channel, admin = start(binary, data_dir)
    try:
        pbg.AdminStub(channel).CreateTenant(pb.CreateTenantRequest(name="bench"), metadata=admin)
        auth, data, base = key(channel, admin), pbg.DataPlaneStub(channel), vecs(DATASET / "base.fvecs")
        create = pb.CreateCollectionRequest(name="minilm", dimension=base.shape[1], metric=pb.METRIC_COSINE)
        data.CreateCollection(create, metadata=auth)
        started = time.perf_counter()
        for s in range(0, len(base), 1000):
            points = [pb.Point(id=str(s + j), vector=r.tolist(), text=f"doc-{s + j}") for j, r in enumerate(base[s : s + 1000])]
            data.Upsert(pb.UpsertRequest(collection="minilm", points=points), metadata=auth)
        while True:
            index = data.DescribeCollection(pb.DescribeCollectionRequest(name="minilm"), metadata=auth).index
            if index.loaded and index.delta_points == 0 and not index.building:
                break
            time.sleep(0.1)
        print(f"loaded and indexed in {time.perf_counter() - started:.1f} s")
    finally:
        proc.terminate()
        proc.wait()


def cpu_ticks(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def measure(binary, data_dir, seconds, env):
    proc, channel, admin = start(binary, data_dir, env)
    try:
        auth, data = key(channel, admin), pbg.DataPlaneStub(channel)
        queries = [q.tolist() for q in vecs(DATASET / "query.fvecs")]

        def run(duration):
            n, begun = 0, time.perf_counter()
            while time.perf_counter() - begun < duration:
                data.Search(pb.SearchRequest(collection="minilm", vector=queries[n % len(queries)], k=10, ef=32), metadata=auth)
                n += 1
            return n, time.perf_counter() - begun

        run(3)
        ticks = cpu_ticks(proc.pid)
        n, elapsed = run(seconds)
        cpu_s = (cpu_ticks(proc.pid) - ticks) / os.sysconf("SC_CLK_TCK")
        return n / elapsed, cpu_s / n * 1e6
    finally:
        proc.terminate()
        proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    load_cmd = sub.add_parser("load")
    load_cmd.add_argument("data_dir", type=Path)
    ab = sub.add_parser("ab")
    ab.add_argument("data_dir", type=Path)
    ab.add_argument("a", type=Path)
    ab.add_argument("b", type=Path)
    ab.add_argument("--rounds", type=int, default=3)
    ab.add_argument("--seconds", type=float, default=10.0)
    ab.add_argument("--env", action="append", default=[], help="NAME=VALUE for B's server")
    args = parser.parse_args()
    if args.command == "load":
        load(args.data_dir.resolve(), DEFAULT_BIN)
        return
    env_b = dict(item.split("=", 1) for item in args.env)
    for round_ in range(args.rounds):
        for label, binary, env in (("A", args.a, {}), ("B", args.b, env_b)):
            qps, cpu_us = measure(binary, args.data_dir.resolve(), args.seconds, env)
            load_avg = Path("/proc/loadavg").read_text().split()[0]
            print(f"round {round_ + 1} {label}: {qps:.0f} searches/s, {cpu_us:.0f} us server CPU a search (load {load_avg})")


if __name__ == "__main__":
    main()
