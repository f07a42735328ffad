"""How long the default code assignment takes before training, as the catalogue grows.

    python benchmarks/assignment.py [--sizes 1e4 1e5 1e6] [--per-user 10]

SASRecJPQ's defaults (``code_assignment: svd_pq``, ``pq_m: 8``, ``pq_b: auto``, d = 64) run a
truncated SVD of the training user x item matrix and one k-means of b centroids per split
before the first epoch; ``pq_b: auto`` grows b with the catalogue (2^15 at 1M items), and
k-means costs N x b x d per iteration (``pq_kmeans: auto`` switches to two levels from 16,384
items or 2^26 distances per iteration on).  With ``unique_codes`` the ties are then broken.  Where a flat k-means
is affordable (N x b <= ``--flat-limit``) both quantisers run, and the JSON has each one's
seconds and squared quantisation error of the SVD vectors.
Each size gets synthetic interactions: N / 2 users with ``--per-user`` items each, item
popularity Zipf-like (exponent 1, as in real catalogues: a long tail of rarely seen items,
whose SVD vectors coincide -- what the tie breaking works on).  One run per size (a
one-time cost before training; the machine's load is in the JSON).  Writes
docs/benchmarks/assignment.json and .png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout: recbole_pq, benchmarks
from benchmarks.harness import ROOT, commit, machine  # noqa: E402

JSON_DEFAULT = ROOT / "docs" / "benchmarks" / "assignment.json"
DIM, SPLITS = 64, 8  # the YAML defaults


def synthetic_interactions(n_items: int, per_user: int, seed: int):
    """(user_ids, item_ids, n_users): n_items / 2 users, ``per_user`` distinct-ish items each,
    item ids 1..n_items-1 drawn with probability ~ 1 / rank (id 0 is RecBole's padding)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n_users = max(2, n_items // 2)
    weights = 1.0 / np.arange(1, n_items)
    items = rng.choice(np.arange(1, n_items), size=n_users * per_user, p=weights / weights.sum())
    users = np.repeat(np.arange(n_users), per_user)
    return users, items, n_users


def measure(n_items: int, per_user: int, seed: int, flat_limit: float, unique_limit: float) -> dict:
    import numpy as np

    from recbole_pq.items import assignment
    from recbole_pq.items.diagnostics import code_usage
    from recbole_pq.items.sizing import auto_codes_per_split

    b = auto_codes_per_split(n_items, DIM, SPLITS)
    users, items, n_users = synthetic_interactions(n_items, per_user, seed)
    seconds = {}
    start = time.perf_counter()
    vectors = assignment.svd_item_vectors(users, items, n_users, n_items, DIM, seed)
    seconds["svd"] = time.perf_counter() - start
    errors = {}
    quantisers = ["auto"] + (["flat", "two_level"] if n_items * b <= flat_limit else [])
    for quantiser in quantisers:
        start = time.perf_counter()
        quantised = assignment.product_quantise(vectors, SPLITS, b, seed, quantiser)
        seconds["k_means" if quantiser == "auto" else f"k_means_{quantiser}"] = time.perf_counter() - start
        errors[quantiser] = float(((vectors - assignment.pq_reconstruction(*quantised)) ** 2).sum())
        if quantiser == "auto":
            codes, centroids = quantised
    # unique_codes ranks the m x b single-split moves of every item that shares its tuple: skip
    # it (recorded as null) where that is more cost entries than --unique-limit
    sharing = code_usage(codes, b)["items_sharing_a_code_tuple"]
    unique = None
    if sharing * SPLITS * b <= unique_limit:
        start = time.perf_counter()
        unique = assignment.break_code_ties(codes, vectors, centroids)
        seconds["unique_codes"] = time.perf_counter() - start
    return {"n_items": n_items, "pq_m": SPLITS, "pq_b": b, "hidden_size": DIM, "users": n_users,
            "interactions": len(items), "seen_items": int(len(np.unique(items))),
            "seconds": {"unique_codes": None, **{k: round(v, 2) for k, v in seconds.items()}},
            "quantisation_error": {k: round(v, 2) for k, v in errors.items()},
            "vector_energy": round(float((vectors ** 2).sum()), 2),
            "items_sharing_a_tuple": sharing, "unique_codes_cost_entries": sharing * SPLITS * b,
            "items_moved_by_unique_codes": None if unique is None else int((unique != codes).any(1).sum()),
            "tuples_after_unique_codes": None if unique is None else int(len(np.unique(unique, axis=0)))}


def plot(records: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["n_items"] for r in records]
    fig, ax = plt.subplots(figsize=(6, 4))
    for part in ("svd", "k_means", "unique_codes"):
        measured = [(r["n_items"], r["seconds"][part]) for r in records if r["seconds"].get(part) is not None]
        ax.plot(*zip(*measured), marker="o", label=part) if measured else None
    ax.set(xscale="log", yscale="log", xlabel="items N (pq_b: auto)", ylabel="seconds (one run)",
           title="svd_pq code assignment before training, d = 64, m = 8")
    for r in records:
        ax.annotate(f"b={r['pq_b']}", (r["n_items"], r["seconds"]["k_means"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e4, 1e5, 1e6])
    parser.add_argument("--per-user", type=int, default=10)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--flat-limit", type=float, default=2**31,
                        help="also time flat and two-level k-means where N x b is at most this")
    parser.add_argument("--unique-limit", type=float, default=2**31,
                        help="time unique_codes where (items sharing a tuple) x m x b is at most this")
    parser.add_argument("--json", type=Path, default=JSON_DEFAULT)
    args = parser.parse_args(argv)
    import numpy as np
    import torch  # noqa: F401  (so machine() records its version and threads)

    from recbole_pq.items.assignment import kmeans

    kmeans(np.random.default_rng(0).normal(size=(4096, 8)).astype(np.float32), 64, seed=0)  # warm-up: first torch calls
    records = []
    for size in args.sizes:
        records.append(measure(int(size), args.per_user, args.seed, args.flat_limit, args.unique_limit))
        print(json.dumps(records[-1]), flush=True)
        data = {**machine(), "commit": commit(), "records": records,
                "command": "python benchmarks/assignment.py " + " ".join(sys.argv[1:] if argv is None else argv)}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=1) + "\n")
    plot(records, args.json.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
