"""Safe dynamic pruning (scorer ``prune``) vs the fused PQTopK scan, on trained and random tables.

    python benchmarks/prune.py [--epochs 5] [--sizes 1e6,1e7] [--users 32]
    python benchmarks/prune.py --checkpoint saved/.../SASRecJPQ-....pth --codes derived --redraw 0.25

"trained": SASRecJPQ is trained on ML-1M (prepared with `python dataset/prepare.py ml-1m`);
its sub-item embeddings (m = 8, b = 256, d = 64) and the user vectors of test users are
scored against synthetic uniform codes for N items, so the pruning sees real sub-item
score skew at a large catalogue.  "random": the same code tables with random N(0, 1)
sub-item embeddings.  One user at a time (batch 1), median over users of the median of 3
runs; both methods score each user back to back (which goes first alternates), and the
prune record's ``fused_over_prune`` is the median over users of that user's ratio, so
load from other jobs on a shared machine cancels.  Records (method prune / pqtopk_fused, tables trained / random) are merged into
docs/benchmarks/scoring.json; re-render docs/PERFORMANCE.md with benchmarks/report.py.

``--checkpoint``: the tables, codes and user vectors of a trained SASRecJPQ checkpoint instead
(users: the last histories of its data set's users).  ``--codes derived``: the N synthetic
items are not uniform but copies of the trained model's real (svd) item codes, each split
redrawn uniformly with probability ``--redraw``: a catalogue whose code distribution has the
real one's structure (items that share sub-ids), which is what pruning feeds on.  Uniform
codes are the worst case for pruning: no item is close to a user's best sub-items.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def trained_tables(epochs: int, users: int, retrain: bool = False):
    """(sub-item embeddings, user vectors) of SASRecJPQ trained on ML-1M, cached in saved/."""
    import torch

    from recbole_pq.pipeline import setup

    cache = ROOT / "saved" / "prune-benchmark" / f"tables-{epochs}ep.pt"
    if cache.is_file() and not retrain:
        tables = torch.load(cache, weights_only=True)
        return tables["sub_item_embeddings"], tables["queries"][:users]

    config, (train, valid, test), model, trainer = setup("SASRecJPQ", "ml-1m", config_dict={
        "epochs": epochs, "pq_m": 8, "pq_b": 256, "hidden_size": 64, "state": "WARNING",
        "checkpoint_dir": str(ROOT / "saved" / "prune-benchmark")})
    trainer.fit(train, valid, saved=False)
    sub_items, queries = tables_and_user_vectors(model, test, users)
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"sub_item_embeddings": sub_items, "queries": queries}, cache)
    return sub_items, queries


def checkpoint_tables(path: Path, users: int):
    """(sub-item embeddings, user vectors, real codes) of a trained SASRecJPQ checkpoint;
    user vectors of test users of its data set (rebuilt with the checkpoint's config)."""
    from recbole_pq.pipeline import setup
    from recbole_pq.serving.checkpoint import load_checkpoint

    from scoring import M, B

    state = load_checkpoint(path)
    saved = state["config"]
    if saved["model"] != "SASRecJPQ" or (saved["pq_m"], saved["pq_b"]) != (M, B):
        raise SystemExit(f"{path}: a {saved['model']} with pq_m={saved.get('pq_m')}, pq_b={saved.get('pq_b')}; "
                         f"this benchmark's synthetic codes need a SASRecJPQ with pq_m={M}, pq_b={B}.")
    keys = ("hidden_size", "n_layers", "n_heads", "inner_size", "pq_m", "pq_b", "MAX_ITEM_LIST_LENGTH",
            "code_assignment", "seed")
    _, (_, _, test), model, _ = setup(saved["model"], saved["dataset"], config_dict={
        **{k: saved[k] for k in keys}, "state": "WARNING", "checkpoint_dir": str(ROOT / "saved" / "prune-benchmark")})
    model.load_state_dict(state["state_dict"])
    return (*tables_and_user_vectors(model, test, users), model.items.codes.numpy())


def tables_and_user_vectors(model, test, users: int):
    """(m, b, d/m) sub-item embeddings and the (users, d) vectors of the first test users."""
    import torch

    model.eval()
    with torch.no_grad():
        batch = next(iter(test))[0]
        queries = model.forward(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])[:users]
    return model.items.sub_item_embeddings.detach().clone(), queries


def derived_codes(real_codes, n_items: int, redraw: float, seed: int = 0):
    """(n_items, m) codes: copies of random real items' codes, each split redrawn uniformly
    with probability ``redraw`` (item 0, padding, excluded from the copies)."""
    import numpy as np

    from scoring import B

    rng = np.random.default_rng(seed)
    source = real_codes[1:][rng.integers(0, len(real_codes) - 1, size=n_items)]
    fresh = rng.integers(0, B, size=source.shape, dtype=source.dtype)
    return np.where(rng.random(source.shape) < redraw, fresh, source).astype(np.uint8)


def prune_scorer(budget):
    from recbole_pq.items.scoring import make_scorer

    scorer = make_scorer("prune")
    if budget is not None:
        scorer.budget = budget
    return scorer


def time_user(scorer, query, layer, k=10, repeats=3):
    """Median seconds of ``repeats`` calls after a warm-up, and what prune did in each call
    (its ``last_scored``: items scored, -1 gave up, -2 skipped by the back-off)."""
    import torch

    outcomes = []
    with torch.no_grad():
        scorer.topk(query, layer, k)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            scorer.topk(query, layer, k)
            times.append(time.perf_counter() - start)
            if getattr(scorer, "last_scored", None) is not None:
                outcomes.append(int(scorer.last_scored[0]))
    return statistics.median(times), outcomes


def main(argv=None) -> int:
    import torch

    from recbole_pq.items.scoring import make_scorer
    from recbole_pq.items.sub_item_table import ItemCodeEmbedding
    from scoring import M, B, generate_codes

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--sizes", type=lambda s: [int(float(x)) for x in s.split(",")], default=[10**6, 10**7])
    parser.add_argument("--budget", type=float, default=None, help="prune budget (share of items) to use")
    parser.add_argument("--retrain", action="store_true", help="ignore the cached trained tables")
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "benchmarks" / "scoring.json")
    parser.add_argument("--checkpoint", type=Path, help="trained SASRecJPQ checkpoint (m = 8, b = 256)")
    parser.add_argument("--codes", choices=("uniform", "derived"), default="uniform")
    parser.add_argument("--redraw", type=float, default=0.25, help="derived codes: share of splits redrawn")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    if args.checkpoint:
        trained, queries, real_codes = checkpoint_tables(args.checkpoint, args.users)
    else:
        trained, queries = trained_tables(args.epochs, args.users, args.retrain)
        real_codes = None
    if args.codes == "derived" and real_codes is None:
        parser.error("--codes derived needs --checkpoint (the real codes to derive from)")
    codes_name = "uniform" if args.codes == "uniform" else f"derived (redraw {args.redraw})"
    random_tables = torch.randn_like(trained)
    command = "python benchmarks/prune.py " + " ".join(argv if argv is not None else sys.argv[1:])
    records = []
    for n in args.sizes:
        codes = generate_codes(n) if args.codes == "uniform" else derived_codes(real_codes, n, args.redraw)
        for tables_name, tables in (("trained", trained), ("random", random_tables)):
            layer = ItemCodeEmbedding(codes, B, tables.shape[0] * tables.shape[2])
            layer.requires_grad_(False)
            layer.sub_item_embeddings.copy_(tables)
            users = queries if tables_name == "trained" else torch.randn_like(queries)
            scorers = {"pqtopk_fused": make_scorer("pqtopk", backend="numba"), "prune": prune_scorer(args.budget)}
            per_user = {method: [] for method in scorers}
            scored = []
            for u in range(len(users)):  # users one after another, as a server meets them
                # Both methods on the same user back to back, which goes first alternating:
                # load from other jobs then hits both, and the per-user ratio cancels it.
                for method in (list(scorers) if u % 2 == 0 else list(scorers)[::-1]):
                    seconds, outcomes = time_user(scorers[method], users[u:u + 1], layer)
                    per_user[method].append(seconds)
                    if method == "prune":
                        scored += outcomes
            for method, scorer in scorers.items():
                seconds = statistics.median(per_user[method])
                record = {"method": method, "tables": tables_name, "n_items": n, "dim": layer.dim, "m": M, "b": B,
                          "batch": 1, "k": 10, "ms_per_user": 1000 * seconds, "items_per_second": n / seconds,
                          "users": len(users), "peak_rss_mb": None, "codes": codes_name, "command": command,
                          "source": str(args.checkpoint) if args.checkpoint else f"{args.epochs}-epoch ML-1M run"}
                if method == "prune":
                    record["budget"] = scorer.budget
                    # median over users of (fused seconds / prune seconds) for the same user
                    record["fused_over_prune"] = statistics.median(
                        f / p for f, p in zip(per_user["pqtopk_fused"], per_user["prune"]))
                    gave_up, skipped = sum(s == -1 for s in scored), sum(s == -2 for s in scored)
                    pruned = [s for s in scored if s >= 0]
                    record["note"] = (f"of {len(scored)} timed calls: {len(pruned)} pruned"
                                      + (f" (median {statistics.median(pruned) / n:.2%} of the items scored)" if pruned else "")
                                      + f", {gave_up} gave up and scanned, {skipped} scanned at once (back-off)")
                print(json.dumps(record), flush=True)
                records.append(record)
    data = json.loads(args.json.read_text())
    same_codes = lambda r: r.get("codes", "uniform") == codes_name  # noqa: E731
    dims = {r["dim"] for r in records}  # a run replaces its own codes x d records only
    keep = [r for r in data["records"] if not (same_codes(r) and r["dim"] in dims and (
        r.get("tables") == "trained" or r["method"] == "prune" or (r.get("users") and r["n_items"] in args.sizes)))]
    data["records"] = keep + records
    args.json.write_text(json.dumps(data, indent=1))
    print(f"merged into {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
