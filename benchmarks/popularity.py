"""The popularity floor of a quality table: RecBole's ``Pop`` on the same split.

    python benchmarks/popularity.py --dataset ml-1m

Pop ranks items by their training-set count under the same leave-one-out-by-time,
full-ranking split as ``benchmarks/quality.py``'s ``full`` tables (properties/overall.yaml +
the data set's YAML).  RecBole removes a general model's history from its ranking, which
its sequential evaluation (the tables' protocol) does not; so the same counts are also
scored with the history left in (``unremoved``).  A sequential model below these lines has
not yet learned more than item popularity.  Prints validation and test NDCG@10 /
Recall@10 / HR@10 for both and, with ``--json``, merges them as the row ``Pop`` into the
quality table's JSON: protocol ``full_exclude_history`` (history removed, the papers') and
``full`` (history left in, RecBole's sequential ranking).  (RecBole 1.2.1's Pop counts
batches, not interactions; ``recbole_pq.compat`` fixes that.)
"""

from __future__ import annotations

import argparse
import collections
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.quality import PROTOCOL_METRICS, save_records  # noqa: E402

METRICS = PROTOCOL_METRICS["full"]  # the same three for both protocols


def popularity_unremoved(inter_file: Path, k: int = 10) -> dict:
    """{"valid"|"test": {"ndcg@10", "recall@10", "hit@10"}} of one global top-k by training count,
    history not removed.  Leave-one-out by time, as RecBole splits: per user the last item
    is the test target, the one before it the validation target, the rest train (a user of
    two items gives no validation target, one of a single item only a training item).
    Equal counts rank in order of first appearance in the file."""
    sequences = collections.defaultdict(list)
    first_seen = {}
    with open(inter_file) as f:
        next(f)  # header
        for line in f:
            user, item, time = line.rstrip("\n").split("\t")
            sequences[user].append((float(time), item))
            first_seen.setdefault(item, len(first_seen))
    counts = collections.Counter()
    targets = {"valid": [], "test": []}
    for events in sequences.values():
        items = [item for _, item in sorted(events, key=lambda e: e[0])]
        held_out = min(2, len(items) - 1)  # RecBole's leave-one-out: short users give less
        counts.update(items[:len(items) - held_out])
        if held_out == 2:
            targets["valid"].append(items[-2])
        if held_out >= 1:
            targets["test"].append(items[-1])
    top = sorted(first_seen, key=lambda item: (-counts[item], first_seen[item]))[:k]
    rank = {item: r for r, item in enumerate(top)}
    result = {}
    for split, items in targets.items():
        gains = [1.0 / math.log2(rank[t] + 2) if t in rank else 0.0 for t in items]
        hits = sum(t in rank for t in items) / len(items)  # one target per user: recall = hit rate
        result[split] = {f"ndcg@{k}": sum(gains) / len(items), f"recall@{k}": hits, f"hit@{k}": hits}
    return result


def pop_records(dataset: str, removed: dict, unremoved: dict, seconds: float) -> list[dict]:
    """The ``Pop`` rows of docs/benchmarks/quality.json: removed = {"valid"|"test": metrics} with
    the history removed (protocol full_exclude_history), unremoved = the same with it left in
    (full).  Counting is exact after one pass: nothing to converge."""
    out = []
    for protocol, result in (("full_exclude_history", removed), ("full", unremoved)):
        base = {"dataset": dataset, "protocol": protocol, "model": "Pop", "run_model": "Pop", "epochs": 1,
                "steps": None, "train_seconds": round(seconds, 1), "converged": True, "valid_curve": [],
                "item_table_mb": None, "dense_item_table_mb": None, "compression": None, "scorer": "training counts",
                "budget": {"epochs": 1}, "settings": {"eval_exclude_history": protocol == "full_exclude_history"},
                "valid": {m: round(float(result["valid"][m]), 6) for m in METRICS}}
        out += [{**base, "metric": m, "value": round(float(result["test"][m]), 6)} for m in METRICS]
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-1m", choices=["ml-1m", "video-games"])
    parser.add_argument("--data-path", default=str(ROOT / "dataset"),
                        help="folder holding <dataset>/<dataset>.inter (default: dataset/)")
    parser.add_argument("--json", type=Path, help="merge the Pop rows into this quality JSON "
                                                   "(e.g. docs/benchmarks/quality.json)")
    args = parser.parse_args(argv)

    import recbole_pq.compat  # noqa: F401  (RecBole's shims, Pop's count fix among them, applied on import)
    from recbole.quick_start import run_recbole
    from recbole_pq.data.datasets import check_dataset_files

    check_dataset_files(args.dataset, str(Path(args.data_path) / args.dataset))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as saved:
        result = run_recbole(
            model="Pop", dataset=args.dataset,
            config_file_list=[str(ROOT / "properties" / "overall.yaml"),
                              str(ROOT / "properties" / "dataset" / f"{args.dataset}.yaml")],
            config_dict={"epochs": 1, "data_path": args.data_path, "checkpoint_dir": saved,
                         "state": "WARNING", "show_progress": False},
        )
    for split in ("best_valid_result", "test_result"):
        metrics = result[split]
        print(f"Pop {args.dataset} {split.split('_')[-2]}, history removed: "
              + ", ".join(f"{name} {float(metrics[name]):.4f}" for name in METRICS))
    result["unremoved"] = popularity_unremoved(Path(args.data_path) / args.dataset / f"{args.dataset}.inter")
    for split, metrics in result["unremoved"].items():
        print(f"Pop {args.dataset} {split}, history left in: "
              + ", ".join(f"{name} {value:.4f}" for name, value in metrics.items()))
    if args.json:
        removed = {"valid": result["best_valid_result"], "test": result["test_result"]}
        new = pop_records(args.dataset, removed, result["unremoved"], time.perf_counter() - start)
        save_records(args.json, new)
        print(f"merged {len(new)} Pop records into {args.json}")
    return result


if __name__ == "__main__":
    main()
