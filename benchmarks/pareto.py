"""Quality vs item-table size: the front of the measured rows, dense and compressed.

    python benchmarks/pareto.py

No training: reads the rows already measured and groups them into panels of one data set
and one budget, so that every point of a panel was trained and ranked alike:
- docs/benchmarks/quality.json: the rows trained to convergence (``converged``), papers'
  protocol (history excluded);
- docs/benchmarks/quality_selection.json: the ``--set`` probes trained to convergence the same
  way (e.g. ``--set hidden_size=128 --converge 20``), labelled with their sizes;
- docs/benchmarks/defaults_seeds.json: benchmarks/defaults.py's rows at a fixed budget, each
  the mean over the seeds it shares with the dense row (test NDCG@10 with the history
  excluded, from the same checkpoints); its share of dense is over those seeds too.
A point is (bytes of the item representation as stored, test NDCG@10); the front of a panel
is the points that no point with fewer bytes beats.  Writes docs/benchmarks/pareto.json and
pareto.png (one panel per data set and budget).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import ROOT  # noqa: E402
from benchmarks.quality import converged_under_patience  # noqa: E402

QUALITY_JSON = ROOT / "docs" / "benchmarks" / "quality.json"
SEEDS_JSON = ROOT / "docs" / "benchmarks" / "defaults_seeds.json"
SELECTION_JSON = ROOT / "docs" / "benchmarks" / "quality_selection.json"  # --set probes, converged ones included
OUT = ROOT / "docs" / "benchmarks" / "pareto.json"
SIZE_KEYS = {"hidden_size": "d", "pq_m": "m", "pq_b": "b", "pq_dense_head": "head"}  # setting -> short label
PROTOCOL = "full_exclude_history"
# probes that change how a row is trained, not its item table: the front compares tables under one recipe
TRAINING_KEYS = ("loss_type", "neg_samples", "neg_sampling", "gbce_t")


def front(points: list[dict]) -> list[dict]:
    """The points no other point beats with fewer (or as many) bytes: ascending bytes, each
    strictly better than every smaller one.  Of equal bytes only the best can be on it."""
    best, out = float("-inf"), []
    for p in sorted(points, key=lambda p: (p["item_table_mb"], -p["ndcg@10"])):
        if p["ndcg@10"] > best:
            out.append(p)
            best = p["ndcg@10"]
    return out


def converged_points(records: list[dict], probes: bool = False) -> list[dict]:
    """One point per row of the papers' protocol trained to convergence (``--converge``) that has
    an item table (not Pop).  ``probes``: the records are ``--set`` probes (quality_selection.json),
    each labelled with its sizes, as one row may have been trained at several."""
    points = []
    for r in records:
        if ((r["protocol"], r["metric"]) != (PROTOCOL, "ndcg@10") or r.get("item_table_mb") is None
                or not converged_under_patience(r) or (probes and any(k in r["settings"] for k in TRAINING_KEYS))):
            continue
        sizes = {k: r["settings"][k] for k in SIZE_KEYS if k in r["settings"]}
        label = r["model"] + (" " + " ".join(f"{SIZE_KEYS[k]}={v}" for k, v in sizes.items()) if probes else "")
        points.append({"dataset": r["dataset"], "budget": "converged", "label": label, "sizes": sizes,
                       "kind": "dense" if r["compression"] == 1.0 else "compressed",
                       "item_table_mb": r["item_table_mb"], "compression": r["compression"], "ndcg@10": r["value"],
                       "valid_ndcg@10": (r.get("valid") or {}).get("ndcg@10")})
    return points


def seed_mean_points(data: dict) -> list[dict]:
    """One point per benchmarks/defaults.py row: its mean over the seeds that the dense row of
    the same data set and budget also ran (rows with none in common are left out)."""
    groups = {}
    for r in data["records"]:
        groups.setdefault((r["dataset"], r["epochs"], r["variant"]), {})[r["seed"]] = r
    points = []
    for (dataset, epochs, variant), by_seed in groups.items():
        seeds = sorted(set(by_seed) & set(groups.get((dataset, epochs, "dense"), {})))
        if not seeds:
            continue
        first = by_seed[seeds[0]]
        points.append({"dataset": dataset, "budget": f"{epochs} epochs, seed mean", "label": variant,
                       "seeds": seeds, "sizes": {"hidden_size": first["hidden_size"], "pq_m": first["pq_m"],
                                                 "pq_b": first["pq_b"], "pq_dense_head": first.get("dense_head")},
                       "kind": "dense" if first["model"] == "DenseSASRec" else "compressed",
                       "item_table_mb": first["item_table_mb"], "compression": first["compression"],
                       "ndcg@10": round(statistics.fmean(by_seed[s]["test_ndcg@10_history_excluded"] for s in seeds), 5),
                       "dense_ndcg@10": round(statistics.fmean(groups[(dataset, epochs, "dense")][s]
                                                               ["test_ndcg@10_history_excluded"] for s in seeds), 5)})
    return points


def panels(points: list[dict]) -> dict[tuple, list[dict]]:
    """(data set, budget) -> its points, each with its share of the panel's dense reference,
    how many times smaller than it it is, and whether it is on the panel's front.  The
    reference is the dense row with the best validation NDCG@10 (as settings are chosen: a
    dense row at another width is a point, and the reference only if validation prefers it);
    seed-mean points take dense's mean over their own seeds."""
    out = {}
    for p in points:
        out.setdefault((p["dataset"], p["budget"]), []).append(p)
    for group in out.values():
        dense = [p for p in group if p["kind"] == "dense"]
        reference = max(dense, key=lambda p: (p.get("valid_ndcg@10") or 0.0, p["ndcg@10"]), default=None)
        on_front = {id(p) for p in front(group)}
        for p in group:
            dense_ndcg = p.get("dense_ndcg@10", reference and reference["ndcg@10"])
            p["share_of_dense"] = round(p["ndcg@10"] / dense_ndcg, 4) if dense_ndcg else None
            p["dense_reference"] = reference and reference["label"]
            p["smaller_than_dense"] = round(reference["item_table_mb"] / p["item_table_mb"], 2) if reference else None
            p["on_front"] = id(p) in on_front
    return out


def plot(groups: dict[tuple, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.8), squeeze=False)
    for ax, ((dataset, budget), group) in zip(axes[0], sorted(groups.items())):
        for kind, marker in (("dense", "s"), ("compressed", "o")):
            mine = [p for p in group if p["kind"] == kind]
            ax.scatter([p["item_table_mb"] for p in mine], [p["ndcg@10"] for p in mine], marker=marker, label=kind)
        line = front(group)
        ax.step([p["item_table_mb"] for p in line], [p["ndcg@10"] for p in line], where="post", color="grey",
                alpha=0.6, label="front")
        for i, p in enumerate(sorted(group, key=lambda p: p["item_table_mb"])):
            # alternate above / below so that neighbouring labels do not print over each other
            ax.annotate(p["label"], (p["item_table_mb"], p["ndcg@10"]), fontsize=6, xytext=(3, 3 if i % 2 else -8),
                        textcoords="offset points")
        ax.set(xscale="log", xlabel="item representation, MB (log)", ylabel="test NDCG@10 (history excluded)",
               title=f"{dataset}, {budget}")
        ax.set_ylim(bottom=0)  # shares of dense read as heights
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=OUT)
    args = parser.parse_args(argv)
    points = converged_points(json.loads(QUALITY_JSON.read_text()) if QUALITY_JSON.is_file() else [])
    if SELECTION_JSON.is_file():
        points += converged_points(json.loads(SELECTION_JSON.read_text()), probes=True)
    if SEEDS_JSON.is_file():
        points += seed_mean_points(json.loads(SEEDS_JSON.read_text()))
    if not points:
        raise SystemExit(f"no measured rows in {QUALITY_JSON} or {SEEDS_JSON}: run benchmarks/quality.py first")
    groups = panels(points)
    data = {"command": "python benchmarks/pareto.py", "metric": "test NDCG@10, history excluded",
            "points": [p for _, group in sorted(groups.items()) for p in
                       sorted(group, key=lambda p: p["item_table_mb"])]}
    args.json.write_text(json.dumps(data, indent=1) + "\n")
    plot(groups, args.json.with_suffix(".png"))
    print(f"wrote {args.json} ({len(data['points'])} points, {len(groups)} panels)")
    return data


if __name__ == "__main__":
    main()
