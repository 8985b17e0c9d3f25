"""hnswlib 0.8.0 on debian-minilm, as the peer for the `hnsw_recall` example of bulkhead-benches.

Same protocol: M=16, ef_construction=200, inner product, build on all threads, then recall@10
against gt.ivecs and single-thread queries/s (one warm-up pass, one timed pass) at ef=16..128.

    pip install numpy hnswlib==0.8.0
    python3 benches/peers/hnswlib_minilm.py [DATASET_DIR]
"""

import os
import sys
import time

import hnswlib
import numpy as np


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    dim = raw[0]
    return raw.reshape(-1, dim + 1)[:, 1:].copy().view(dtype)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(here, "../../../shared/datasets/debian-minilm")
    folder = sys.argv[1] if len(sys.argv) > 1 else default
    base = read_vecs(os.path.join(folder, "base.fvecs"), np.float32)
    queries = read_vecs(os.path.join(folder, "query.fvecs"), np.float32)
    gt = read_vecs(os.path.join(folder, "gt.ivecs"), np.int32)[:, :10]
    index = hnswlib.Index(space="ip", dim=base.shape[1])
    index.init_index(max_elements=len(base), M=16, ef_construction=200, random_seed=100)
    started = time.perf_counter()
    index.add_items(base, np.arange(len(base)), num_threads=os.cpu_count())
    print(f"hnswlib build: {time.perf_counter() - started:.1f} s on {os.cpu_count()} threads")
    index.set_num_threads(1)
    for ef in (16, 32, 64, 128):
        index.set_ef(ef)
        # One call for all queries on one thread, so Python's per-call overhead is not timed.
        # A warm-up pass, then the best of three (the machine is shared), as the Rust harness does.
        elapsed = float("inf")
        for attempt in range(4):
            started = time.perf_counter()
            labels, _ = index.knn_query(queries, k=10, num_threads=1)
            if attempt > 0:
                elapsed = min(elapsed, time.perf_counter() - started)
        found = sum(len(set(row.tolist()) & set(truth.tolist())) for row, truth in zip(labels, gt))
        print(f"hnswlib ef {ef:>4}: recall {found / gt.size:.4f}  {len(queries) / elapsed:>8.0f} q/s")


if __name__ == "__main__":
    main()
