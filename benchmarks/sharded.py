"""PQTopK sharded over Ray actors on one machine: the overhead of sharding, not a speed-up.

    python benchmarks/sharded.py [--sizes 1e4 1e8 1e9] [--shards 1 2 4] [--repeats 5]
                                 [--dir /tmp/recbole-pq-sharded] [--json PATH]

Synthetic uint8 codes (m = 8, b = 256, seeded) are written once per size to a ``.npy``
file, memory-mapped by every shard actor (each reads only its range).  Per size: the
in-process fused scan of the whole file (the single-process reference), then a local Ray
with S shard actors sharing this machine's cores (threads per shard = cores / S): median
time per one-user query (top-10) after a warm-up, and the bytes each query moves (one
float32 m x b table to every shard; k (value, id) pairs back from each).  On one machine
S shards split the same cores, so the ratio to the single-process scan is the cost of
Ray (task dispatch, serialisation, merge); on S machines each shard scans N/S items with
its own cores and memory bandwidth.  Writes docs/benchmarks/sharded.json; the PERFORMANCE
section is rendered by benchmarks/report.py.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout: recbole_pq, benchmarks
from benchmarks.harness import ROOT, cpu, median_seconds  # noqa: E402

M, B, K = 8, 256, 10
CHUNK = 50_000_000  # rows generated at a time (400 MB)


def write_codes(path: Path, n_items: int, seed: int = 0) -> None:
    """(n_items, 8) uint8 codes into a .npy file, in chunks (never all in memory)."""
    if path.is_file() and np.load(path, mmap_mode="r").shape == (n_items, M):
        return
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp.npy")
    codes = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n_items, M))
    for start in range(0, n_items, CHUNK):
        end = min(n_items, start + CHUNK)
        codes[start:end] = rng.integers(0, B, size=(end - start, M), dtype=np.uint8)
    codes.flush()
    del codes
    os.replace(tmp, path)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e4, 1e8, 1e9])
    parser.add_argument("--shards", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/recbole-pq-sharded"))
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "benchmarks" / "sharded.json")
    args = parser.parse_args(argv)

    import ray
    import torch

    from recbole_pq.items.kernels import scan
    from recbole_pq.serving.sharded import ShardPool, init_ray

    threads = os.cpu_count() or 1
    load_at_start = round(os.getloadavg()[0], 2)  # other jobs on the machine skew the times: say so
    torch.set_num_threads(threads)
    args.dir.mkdir(parents=True, exist_ok=True)
    tables = np.random.default_rng(1).standard_normal((1, M, B)).astype(np.float32)
    payload = {"query_bytes_per_shard": tables.nbytes, "reply_bytes_per_shard": K * (4 + 8)}
    init_ray()
    records = []
    for size in args.sizes:
        n_items = int(size)
        path = args.dir / f"codes-{n_items}.npy"
        start = time.perf_counter()
        write_codes(path, n_items)
        print(f"N={n_items:.0e}: codes ready in {time.perf_counter() - start:.0f} s", flush=True)
        codes = np.load(path, mmap_mode="r")
        single = 1000 * median_seconds(lambda: scan.fused_topk(tables, codes, K), args.repeats)
        print(f"  single process: {single:.2f} ms", flush=True)
        reference = scan.fused_topk(tables, codes, K)[1]
        for shards in args.shards:
            pool = ShardPool(path, shards)
            try:
                got = pool.topk(tables, K)[1].numpy()
                assert np.array_equal(np.sort(got, axis=1), np.sort(reference, axis=1)), "sharded top-k differs"
                ms = 1000 * median_seconds(lambda: pool.topk(tables, K), args.repeats)
            finally:
                pool.close()
            print(f"  {shards} shard(s): {ms:.2f} ms ({ms / single:.2f}x single process)", flush=True)
            records.append({"n_items": n_items, "shards": shards, "ms_per_query": round(ms, 3),
                            "single_process_ms": round(single, 3), "ratio_to_single_process": round(ms / single, 3),
                            "batch": 1, "k": K, "m": M, "b": B, "threads_per_shard": max(1, threads // shards),
                            **payload, "driver_peak_rss_mb": round(peak_rss_mb(), 1)})
        del codes
    ray.shutdown()
    out = {"command": "python benchmarks/sharded.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "threads": threads, "cpu": cpu()["cpu"],
           "load_average_at_start": load_at_start, "records": records}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
