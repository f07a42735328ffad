"""PQTopK scaling benchmark: ms per user vs catalogue size (the PQTopK paper's experiment).

    python benchmarks/scoring.py            # N = 1e4 .. 1e9, d = 64 and 512, batch 1 and 64
    python benchmarks/scoring.py --quick    # under 2 minutes: N <= 1e6, batch 1
    python benchmarks/scoring.py --json PATH --max-n 1e8
    python benchmarks/scoring.py --load     # 1M items, quiet vs another process busy (scoring_load.json)
    python benchmarks/scoring.py --table-sizes   # 1M items: m = 8, b = 256 vs pq_b/pq_m: auto (scoring_tables.json)

Synthetic, seeded codes (m = 8, b = 256, uint8) and random sub-item tables.  Each
catalogue size runs in a fresh process (so peak RSS is per size); every method is
warmed up once, then timed >= 5 times (median).  A method that cannot fit in the
memory budget is recorded with ms_per_user = null and a note, not run.
Writes docs/benchmarks/scoring.json and docs/benchmarks/scoring.png.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout: recbole_pq, benchmarks
from benchmarks.harness import ROOT, cpu  # noqa: E402

M, B, K = 8, 256, 10
SEED = 0
# PQTopK paper, Table 1 (Ryzen 5950X, 16 cores, d = 512, m = 8, one user): ms per user.
PAPER_MS = {
    "default": {1e6: 111.6, 1e7: 1112.0},
    "recjpq": {1e6: 20.5, 1e7: 253.0, 1e8: 2516.0, 1e9: 24319.0},
    "pqtopk": {1e6: 9.0, 1e7: 147.0, 1e8: 1408.0, 1e9: 13573.0},
}
METHODS = ("pqtopk_fused", "faiss", "pqtopk_torch", "recjpq", "default")
SLOW_SECONDS = 10.0  # a warm-up slower than this is timed once more only
CALL_CAP_SECONDS = 60.0  # skip a method at N when 10x its time at N/10 would exceed this per call


def generate_codes(n_items: int, seed: int = SEED):
    import numpy as np

    codes = np.empty((n_items, M), dtype=np.uint8)
    rng = np.random.default_rng(seed)
    step = 10_000_000
    for start in range(0, n_items, step):
        end = min(n_items, start + step)
        codes[start:end] = rng.integers(0, B, size=(end - start, M), dtype=np.uint8)
    return codes


def np_load(path):
    import numpy as np

    return np.load(path, mmap_mode="r")  # shared page cache: every method's process maps the same file


MMAP_FROM = 10**8  # from this size on, codes are written once to disk and each method runs in its own process


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fits(method: str, n: int, dim: int, batch: int, budget: float) -> str | None:
    """None if the method fits in ``budget`` bytes, else why not."""
    need = {"default": n * dim * 4 + 2 * batch * n * 4, "recjpq": 2 * batch * n * 4,
            "faiss": n * M}.get(method, 0)
    if need > budget:
        return f"does not fit: needs ~{need / 2**30:.1f} GiB over the {budget / 2**30:.0f} GiB budget"
    return None


def make_runner(method, codes, dim, batch):
    """A zero-argument function that scores one batch of users (top-10)."""
    import torch

    from recbole_pq.items.scoring import make_scorer
    from recbole_pq.items.sub_item_table import ItemCodeEmbedding

    torch.manual_seed(SEED)
    layer = ItemCodeEmbedding(codes, B, dim, init_std=1.0)  # shares the uint8 codes, no copy
    layer.requires_grad_(False)
    query = torch.randn(batch, dim)
    if method == "faiss":
        import faiss

        index = faiss.IndexPQ(dim, M, 8, faiss.METRIC_INNER_PRODUCT)
        faiss.copy_array_to_vector(layer.sub_item_embeddings.numpy().ravel(), index.pq.centroids)
        index.is_trained = True
        index.add_sa_codes(codes)  # our codes, as they are (a copy inside FAISS)
        q = query.numpy()
        return lambda: index.search(q, K)
    scorer = {"default": ("default", "auto"), "recjpq": ("recjpq", "auto"),
              "pqtopk_torch": ("pqtopk", "torch"), "pqtopk_fused": ("pqtopk", "numba")}[method]
    scorer = make_scorer(scorer[0], chunk_size=1 << 20, backend=scorer[1])

    def run():
        with torch.no_grad():
            return scorer.topk(query, layer, K)

    return run


def time_method(method, codes, dim, batch, repeats, budget):
    n = len(codes)
    record = {"method": method, "tables": "random", "n_items": n, "dim": dim, "m": M, "b": B, "batch": batch,
              "k": K, "ms_per_user": None, "items_per_second": None}
    reason = fits(method, n, dim, batch, budget)
    if method == "faiss" and importlib.util.find_spec("faiss") is None:
        reason = "not run: faiss-cpu is not installed (pip install -e '.[bench]')"
    if reason:
        record.update(note=reason, peak_rss_mb=round(peak_rss_mb(), 1))
        return record
    run = make_runner(method, codes, dim, batch)
    start = time.perf_counter()
    run()  # warm-up (also numba compilation / cache load)
    warm = time.perf_counter() - start
    times = []
    for _ in range(1 if warm > SLOW_SECONDS else repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    record.update(ms_per_user=1000 * seconds / batch, items_per_second=n * batch / seconds, repeats=len(times),
                  peak_rss_mb=round(peak_rss_mb(), 1))
    if len(times) == 1:
        record["note"] = f"timed once: the warm-up took {warm:.1f} s"
    return record


def worker(args) -> None:
    """One catalogue size, all dims, batches and methods; prints one JSON record per line."""
    import torch

    torch.set_num_threads(args.threads)
    n = int(float(args.n))
    previous = json.loads(args.previous) if args.previous else {}
    codes = np_load(args.codes_file) if args.codes_file else generate_codes(n)
    for dim in args.dims:
        for batch in args.batches:
            for method in args.methods:
                key = f"{method}/{dim}/{batch}"
                last_ms = previous.get(key)
                if key in previous and last_ms is None and fits(method, n, dim, batch, args.budget_gb * 2**30) is None:
                    record = {"method": method, "tables": "random", "n_items": n, "dim": dim, "m": M, "b": B,
                              "batch": batch, "k": K, "ms_per_user": None, "items_per_second": None,
                              "peak_rss_mb": round(peak_rss_mb(), 1),
                              "note": "skipped: skipped or did not fit at N/10"}
                elif last_ms is not None and last_ms * batch * 10 / 1000 > CALL_CAP_SECONDS:
                    record = {"method": method, "tables": "random", "n_items": n, "dim": dim, "m": M, "b": B,
                              "batch": batch, "k": K, "ms_per_user": None, "items_per_second": None,
                              "peak_rss_mb": round(peak_rss_mb(), 1),
                              "note": f"skipped: ~{last_ms * batch * 10 / 1000:.0f} s per call expected from "
                                      f"N/10 (cap {CALL_CAP_SECONDS:.0f} s)"}
                else:
                    record = time_method(method, codes, dim, batch, args.repeats, args.budget_gb * 2**30)
                print(json.dumps(record), flush=True)


def run_size(n: int, args, env, last: dict) -> list[dict]:
    """All methods at one size: one process per size, or per method (sharing a memory-mapped
    code file) from MMAP_FROM on, so that no method's memory adds to another's."""
    import tempfile

    import numpy as np

    common = ["--dims", ",".join(map(str, args.dims)), "--batches", ",".join(map(str, args.batches)),
              "--repeats", str(args.repeats), "--threads", str(args.threads), "--budget-gb", str(args.budget_gb),
              "--previous", json.dumps(last)]
    groups = [args.methods] if n < MMAP_FROM else [[m] for m in args.methods]
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        extra = []
        if n >= MMAP_FROM:
            path = Path(tmp) / "codes.npy"
            codes = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, M))
            rng = np.random.default_rng(SEED)  # the same draws, in the same order, as generate_codes
            for start in range(0, n, 10_000_000):
                end = min(n, start + 10_000_000)
                codes[start:end] = rng.integers(0, B, size=(end - start, M), dtype=np.uint8)
            codes.flush()
            del codes
            extra = ["--codes-file", str(path)]
        for methods in groups:
            cmd = [sys.executable, __file__, "--worker", "--n", str(n), "--methods", ",".join(methods), *common, *extra]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
            if proc.returncode != 0:
                print(f"N={n} {methods}: worker failed ({proc.returncode}): {proc.stderr[-500:]}", file=sys.stderr)
            for r in lines:
                ms = r.get("note", "") if r["ms_per_user"] is None else f"{r['ms_per_user']:.3f} ms/user"
                print(f"N={r['n_items']:>10} d={r['dim']:>3} batch={r['batch']:>2} {r['method']:>13}: {ms}",
                      flush=True)
            records += lines
    return records


def plot(records, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = sorted({r["dim"] for r in records})
    batches = sorted({r["batch"] for r in records})
    fig, axes = plt.subplots(len(batches), len(dims), figsize=(6 * len(dims), 4.5 * len(batches)), squeeze=False)
    colours = dict(zip(METHODS, ("C0", "C1", "C2", "C3", "C4")))
    for row, batch in enumerate(batches):
        for col, dim in enumerate(dims):
            ax = axes[row][col]
            for method in METHODS:
                pts = sorted((r["n_items"], r["ms_per_user"]) for r in records
                             if r["method"] == method and r["dim"] == dim and r["batch"] == batch and r["ms_per_user"])
                if pts:
                    ax.plot(*zip(*pts), "o-", color=colours[method], label=method)
            if dim == 512 and batch == 1:
                for (name, points), colour in zip(PAPER_MS.items(), ("C4", "C3", "C0")):
                    ax.plot(list(points), list(points.values()), "--", color=colour, alpha=0.6,
                            label=f"paper {name} (16 cores)")
            ax.set(xscale="log", yscale="log", xlabel="items N", ylabel="ms per user",
                   title=f"d = {dim}, batch = {batch}, m = {M}, b = {B}, top-{K}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N <= 1e6, batch 1 (under 2 minutes)")
    parser.add_argument("--max-n", type=float, default=1e9)
    parser.add_argument("--dims", type=lambda s: [int(x) for x in s.split(",")], default=[64, 512])
    parser.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=None)
    parser.add_argument("--methods", type=lambda s: s.split(","), default=list(METHODS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget-gb", type=float, default=12.0, help="memory budget per method")
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "benchmarks" / "scoring.json")
    parser.add_argument("--sizes", type=lambda s: [int(float(x)) for x in s.split(",")],
                        help="catalogue sizes to run (default: powers of ten from 1e4 to --max-n)")
    parser.add_argument("--merge", action="store_true",
                        help="replace only the records measured again (same size, method, dim, batch) in --json")
    parser.add_argument("--limits", action="store_true",
                        help="only measure the machine's ceilings and store them in the existing --json file")
    parser.add_argument("--load", action="store_true",
                        help="scan 1M items quiet and with another process busy; writes scoring_load.json")
    parser.add_argument("--load-worker", choices=("balanced", "static"), help=argparse.SUPPRESS)
    parser.add_argument("--table-sizes", action="store_true",
                        help="1M items: m = 8, b = 256 against the auto sizes; writes scoring_tables.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n", help=argparse.SUPPRESS)
    parser.add_argument("--previous", help=argparse.SUPPRESS)
    parser.add_argument("--codes-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batches is None:
        args.batches = [1] if args.quick else [1, 64]
    if args.worker:
        worker(args)
        return 0
    if args.load_worker:
        print(json.dumps(load_worker(LOAD_N_ITEMS, args.load_worker, repeats=max(50, args.repeats * 20), rounds=3)))
        return 0
    if args.load:
        return load_benchmark(args)
    if args.table_sizes:
        os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
        return table_sizes_benchmark(args)
    if args.limits:
        data = json.loads(args.json.read_text())
        data["machine"] = machine_limits(args.threads)
        args.json.write_text(json.dumps(data, indent=1))
        print(f"machine limits: {data['machine']} -> {args.json}")
        return 0
    sizes = args.sizes or [10**e for e in range(4, 10) if 10**e <= (1e6 if args.quick else args.max_n)]
    env = {**os.environ, "NUMBA_NUM_THREADS": str(args.threads), "OMP_NUM_THREADS": str(args.threads)}
    records = []
    for n in sizes:
        earlier = records if any(r["n_items"] == n // 10 for r in records) else (
            json.loads(args.json.read_text())["records"] if args.merge and args.json.is_file() else [])
        # ms per user at N/10; None where it was skipped or did not fit there (then skip at N too)
        last = {f"{r['method']}/{r['dim']}/{r['batch']}": r["ms_per_user"] for r in earlier if r["n_items"] == n // 10}
        records += run_size(n, args, env, last)
    command = "python benchmarks/scoring.py " + " ".join(argv if argv is not None else sys.argv[1:])
    out = {"command": command, "threads": args.threads, "cpu": cpu()["cpu"], "machine": machine_limits(args.threads),
           "paper_ms_per_user_d512": PAPER_MS, "records": records}
    if args.json.is_file():
        old = json.loads(args.json.read_text())
        new_keys = {record_key(r) for r in records}
        # --merge keeps every record not measured again; a full run still keeps the prune
        # benchmark's records (benchmarks/prune.py writes them into the same file).
        kept = [r for r in old["records"] if record_key(r) not in new_keys and (args.merge or "users" in r)]
        out["records"] = sorted(kept + records, key=lambda r: (r["n_items"], r["dim"], r["batch"]))
        if args.merge:
            out["command"] = f"{old['command']}; then {command}"
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))
    plot([r for r in out["records"] if "users" not in r], args.json.with_suffix(".png"))
    print(f"wrote {args.json} and {args.json.with_suffix('.png')}")
    return 0


# Another process competing for the cores while the scan runs (each started afresh per block).
LOADS = {
    "one core busy": "while True: pass",
    "torch matmul, 2 threads": "import torch\ntorch.set_num_threads(2)\na = torch.randn(512, 512)\nwhile True: a @ a",
}
LOAD_VARIANTS = {  # name -> (environment, kernel range hand-out)
    "default": ({}, "balanced"),
    # An empty OMP_WAIT_POLICY is "set" for recbole-pq (so it keeps its hands off) and
    # ignored by OpenMP: the runtime's own default, threads spinning before they sleep.
    "before: OpenMP's default wait, static split": ({"OMP_WAIT_POLICY": ""}, "static"),
}


def load_worker(n_items: int, schedule: str, repeats: int, rounds: int) -> dict:
    """ms per user of the fused scan (batch 1): quiet, and under each of LOADS, in
    alternating blocks so that drifts of the machine hit every condition alike."""
    import numpy as np
    import torch

    from recbole_pq.items.kernels import scan
    from recbole_pq.items.scoring import make_scorer
    from recbole_pq.items.sub_item_table import ItemCodeEmbedding

    if schedule == "static":
        scan.PARALLEL_CHUNK = 0
    items = ItemCodeEmbedding(generate_codes(n_items), B, 64)
    scorer = make_scorer("pqtopk", 16384, "numba")
    query = torch.randn(1, 64, generator=torch.Generator().manual_seed(SEED))
    scorer.topk(query, items, K)

    def block() -> list[float]:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            scorer.topk(query, items, K)
            times.append(1000 * (time.perf_counter() - start))
        return times

    samples = {"quiet": [], **{name: [] for name in LOADS}}
    for _ in range(rounds):
        samples["quiet"] += block()
        for name, code in LOADS.items():
            busy = subprocess.Popen([sys.executable, "-c", code])
            time.sleep(1.0)  # the busy process is running (and torch's threads started)
            samples[name] += block()
            busy.kill()
            busy.wait()
    return {name: round(statistics.median(times), 3) for name, times in samples.items()}


def load_benchmark(args) -> int:
    """Scoring under load: every LOAD_VARIANTS entry in its own process, in one run."""
    records = []
    for variant, (extra_env, schedule) in LOAD_VARIANTS.items():
        env = {**os.environ, "NUMBA_NUM_THREADS": str(args.threads), **extra_env}
        if not extra_env:
            env.pop("OMP_WAIT_POLICY", None)
        out = subprocess.run([sys.executable, __file__, "--load-worker", schedule, "--repeats", str(args.repeats)],
                             env=env, capture_output=True, text=True, check=True)
        ms = json.loads(out.stdout.strip().splitlines()[-1])
        records.append({"variant": variant, "ms_per_user": ms,
                        "slowdown": {name: round(ms[name] / ms["quiet"], 2) for name in LOADS}})
        print(records[-1], flush=True)
    flags = set(next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), []))
    result = {"command": "python benchmarks/scoring.py --load" + (f" --repeats {args.repeats}" if args.repeats != 5
                                                                    else ""),
              "cpu": cpu()["cpu"], "cpu_count": os.cpu_count(), "threads": args.threads,
              "flags": {f: f in flags for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")},
              "n_items": LOAD_N_ITEMS, "dim": 64, "batch": 1, "m": M, "b": B, "k": K,
              "target": "loaded <= 1.5x quiet with one core busy (issue 32)", "records": records}
    path = args.json.with_name("scoring_load.json")
    path.write_text(json.dumps(result, indent=1) + "\n")
    plot_load(result, path.with_suffix(".png"))
    print(f"wrote {path} and {path.with_suffix('.png')}")
    return 0


LOAD_N_ITEMS = 1_000_000


def table_sizes_benchmark(args) -> int:
    """Fused scan at 1M items, d = 64, for today's m = 8, b = 256 and the sizes pq_b: auto /
    pq_m: auto choose there, and with the dense head pq_dense_head: auto adds (random head
    items with large residuals, so they fill the top-k; the scan reads the tail's codes),
    measured in one process, alternating, batch 1 and 64."""
    import numpy as np
    import torch

    from recbole_pq.items.assignment import code_dtype
    from recbole_pq.items.scoring import make_scorer
    from recbole_pq.items.sizing import auto_codes_per_split, auto_dense_head, auto_splits
    from recbole_pq.items.sub_item_table import ItemCodeEmbedding

    n, dim = LOAD_N_ITEMS, 64
    auto_b = auto_codes_per_split(n, dim, 8)
    # today's sizes, two in between (where the m x b table still fits the L2 cache), the auto sizes, with a head
    sizes = [(8, 256, 0), (8, 1024, 0), (8, 4096, 0), (8, auto_b, 0),
             (auto_splits(dim), auto_codes_per_split(n, dim, auto_splits(dim)), 0),
             (8, auto_b, auto_dense_head(n, dim, 8, auto_b)), (8, 256, auto_dense_head(n, dim, 8, 256))]  # both auto: b 256
    rng = np.random.default_rng(SEED)
    layers = {}
    for m, b, head in sizes:
        head_ids = np.sort(rng.choice(np.arange(1, n), size=head, replace=False))
        layers[(m, b, head)] = layer = ItemCodeEmbedding(rng.integers(0, b, size=(n, m)).astype(code_dtype(b)), b, dim,
                                                         init_std=1.0, head_ids=head_ids)
        with torch.no_grad():
            layer.head_residuals.normal_(0.0, 2.0)
    scorers = {key: make_scorer("pqtopk", 16384, "numba") for key in layers}
    times = {(*key, batch): [] for key in layers for batch in args.batches}
    queries = {batch: torch.randn(batch, dim, generator=torch.Generator().manual_seed(batch)) for batch in args.batches}
    with torch.no_grad():
        for key, layer in layers.items():
            for batch in args.batches:
                scorers[key].topk(queries[batch], layer, K)  # warm-up (compiles the kernel for this code type)
        for _ in range(max(5, args.repeats)):
            for key, layer in layers.items():
                for batch in args.batches:
                    start = time.perf_counter()
                    scorers[key].topk(queries[batch], layer, K)
                    times[(*key, batch)].append(1000 * (time.perf_counter() - start) / batch)
    auto = {(8, auto_b, 0): "pq_b: auto, no head",
            (auto_splits(dim), auto_codes_per_split(n, dim, auto_splits(dim)), 0): "pq_m, pq_b: auto, no head",
            (8, 256, 0): "today", sizes[-2]: "pq_dense_head: auto, pq_b as auto without a head",
            sizes[-1]: "pq_b, pq_dense_head: auto"}
    records = [{"m": m, "b": b, "dense_head": head, "sizes": auto.get((m, b, head), ""), "batch": batch,
                "code_bytes": int(code_dtype(b).itemsize),
                "item_mb": round(layers[(m, b, head)].memory_bytes()["compressed"] / 2**20, 2),
                "ms_per_user": round(statistics.median(times[(m, b, head, batch)]), 3)}
               for (m, b, head, batch) in times]
    result = {"command": "python benchmarks/scoring.py --table-sizes", "cpu": cpu()["cpu"], "threads": args.threads,
              "n_items": n, "dim": dim, "k": K, "dense_mb": round(n * dim * 4 / 2**20, 2), "records": records}
    path = args.json.with_name("scoring_tables.json")
    path.write_text(json.dumps(result, indent=1) + "\n")
    for record in records:
        print(record)
    print(f"wrote {path}")
    return 0


def plot_load(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conditions = ["quiet", *LOADS]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(result["records"])
    for i, record in enumerate(result["records"]):
        ax.bar([c + i * width for c in range(len(conditions))], [record["ms_per_user"][c] for c in conditions],
               width, label=record["variant"])
    ax.set_xticks([c + width * (len(result["records"]) - 1) / 2 for c in range(len(conditions))], conditions)
    ax.set(ylabel="ms per user (median)", title=f"fused scan, {result['n_items']:,} items, batch 1, "
                                                 f"{result['threads']} threads: {result['cpu']}"[:90])
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def record_key(r: dict) -> tuple:
    """What one record measures: --merge replaces a record only by one with the same key."""
    return (r["n_items"], r["method"], r["dim"], r["batch"], r.get("tables", "random"), r.get("codes", "uniform"),
            "users" in r)


def read_bandwidth_gbs(n_bytes: int = 2 << 30, repeats: int = 5) -> float:
    """Measured ceiling: GB/s of one parallel pass that only reads (XOR-reduces) memory,
    split into item-range-like parts the way the fused scan splits its work."""
    import numba
    import numpy as np

    from recbole_pq.items.kernels.scan import _part_bounds

    @numba.njit(parallel=True, nogil=True)
    def xor_reduce(words, n_parts):
        acc = np.zeros(n_parts, dtype=np.uint64)
        for p in numba.prange(n_parts):
            start, end = _part_bounds(p, n_parts, words.shape[0])
            x = np.uint64(0)
            for i in range(start, end):
                x ^= words[i]
            acc[p] = x
        return acc

    words = np.ones(n_bytes // 8, dtype=np.uint64)
    n_parts = numba.get_num_threads() * 4
    xor_reduce(words, n_parts)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        xor_reduce(words, n_parts)
        best = min(best, time.perf_counter() - start)
    return words.nbytes / best / 1e9


def machine_limits(threads: int) -> dict:
    """The ceilings the fused kernel is compared with: read bandwidth and clock."""
    os.environ["NUMBA_NUM_THREADS"] = str(threads)
    from recbole_pq.items.kernels import scan

    mhz = None
    try:
        mhz = float(next(line.split(":")[1] for line in Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith("cpu MHz")))
    except (OSError, StopIteration, ValueError):
        pass
    gbs = read_bandwidth_gbs() if scan.available() else None
    return {"read_bandwidth_gbs": gbs, "cpu_mhz": mhz, "threads": threads,
            "note": "bandwidth: best of 5 parallel read-only passes over 2 GiB"}


if __name__ == "__main__":
    sys.exit(main())
