"""What a user gets with nothing but --model and --dataset: SASRecJPQ's sub-item table sizes
(issue 34) and code assignments (issue 33) against DenseSASRec, at one budget.

    python benchmarks/defaults.py --dataset video-games --epochs 10
    python benchmarks/defaults.py --dataset ml-100k --epochs 20 --variants today auto-b
    python benchmarks/defaults.py --dataset ml-1m --epochs 10 --variants today codes-svd_pq codes-bpr codes-qr
    python benchmarks/defaults.py --dataset video-games --rescore . ../other-checkout

Every row runs with nothing but the model, the data set, the budget (--epochs) and the
row's own sizes: what a user gets from ``--model=... --dataset=...``.  Rows: DenseSASRec;
SASRecJPQ with svd codes (the default assignment before svd_pq) and the long-standing sizes
(pq_m 8, pq_b 256); with ``pq_b: auto``; with ``pq_m: auto`` and ``pq_b: auto``; with
``pq_m: 2`` and ``pq_b: auto``; and, at today's sizes,
every code assignment (``codes-*``; qr with m = 2); and gBCE with negatives per sequence or
per position (``gbce-*``); DenseSASRec in float32 with and without length buckets
(``dense-fp32*``: what the training speed-ups do to quality).  Records best validation
NDCG@10 (the only number a choice may use), test NDCG@10, both also with the user's history
excluded from the ranking (the papers' protocol, the same checkpoint), the chosen m and b, the item
representation's MB and its compression, epochs and seconds.  The JSON
(docs/benchmarks/defaults.json) is written after every row; rows already in it are skipped,
so a killed run continues where it stopped.  ``--rescore`` adds the history-excluded ranking
and the diagnostics to rows measured before they existed, from each row's own best
checkpoint (found by its stored best validation score), without retraining.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout: recbole_pq, benchmarks
from benchmarks.harness import ROOT, commit, cpu  # noqa: E402

JSON_DEFAULT = ROOT / "docs" / "benchmarks" / "defaults.json"
VARIANTS = {  # name -> (model, overrides); svd_pq / svd_opq rows measured before pq_kmeans: auto pin flat
    "dense": ("DenseSASRec", {}),
    # the training speed-ups off (issue 28: quality unchanged by bf16 and length buckets)
    "dense-fp32": ("DenseSASRec", {"train_precision": "fp32"}),
    "dense-fp32-no-buckets": ("DenseSASRec", {"train_precision": "fp32", "train_length_buckets": 0}),
    "dense-buckets-4": ("DenseSASRec", {"train_length_buckets": 4}),  # smaller pools: closer to a plain shuffle
    # the table sizes with svd codes (the default assignment before svd_pq)
    "today": ("SASRecJPQ", {"pq_m": 8, "pq_b": 256, "code_assignment": "svd"}),
    "auto-b": ("SASRecJPQ", {"pq_m": 8, "pq_b": "auto", "code_assignment": "svd"}),
    "auto-mb": ("SASRecJPQ", {"pq_m": "auto", "pq_b": "auto", "code_assignment": "svd"}),
    "m2-auto-b": ("SASRecJPQ", {"pq_m": 2, "pq_b": "auto", "code_assignment": "svd"}),
    "codes-svd_pq": ("SASRecJPQ", {"pq_m": 8, "pq_b": 256, "code_assignment": "svd_pq", "pq_kmeans": "flat"}),
    "codes-bpr": ("SASRecJPQ", {"pq_m": 8, "pq_b": 256, "code_assignment": "bpr"}),
    "codes-random": ("SASRecJPQ", {"pq_m": 8, "pq_b": 256, "code_assignment": "random"}),
    "codes-qr": ("SASRecJPQ", {"pq_m": 2, "pq_b": "auto", "code_assignment": "qr"}),
    "auto-b-svd_pq": ("SASRecJPQ", {"pq_m": 8, "pq_b": "auto", "code_assignment": "svd_pq", "pq_kmeans": "flat"}),
    "auto-b-svd_pq-unique": ("SASRecJPQ", {"pq_m": 8, "pq_b": "auto", "code_assignment": "svd_pq",
                                           "unique_codes": True, "pq_kmeans": "flat"}),  # every item its own code tuple
    "auto-b-svd_pq-two-level": ("SASRecJPQ", {"pq_m": 8, "pq_b": "auto", "code_assignment": "svd_pq",
                                              "pq_kmeans": "two_level"}),  # k-means in two levels at every size
    "auto-b-svd_pq-two-level-unique": ("SASRecJPQ", {"pq_m": 8, "pq_b": "auto", "code_assignment": "svd_pq",
                                                     "pq_kmeans": "two_level", "unique_codes": True}),
    "codes-svd_opq": ("SASRecJPQ", {"pq_m": 8, "pq_b": 256, "code_assignment": "svd_opq", "pq_kmeans": "flat"}),
    "auto-b-svd_opq": ("SASRecJPQ", {"pq_m": 8, "pq_b": "auto", "code_assignment": "svd_opq", "pq_kmeans": "flat"}),
    # sampled gBCE with negatives per sequence (the default) or per position (issue 29)
    "gbce-sequence": ("SASRecJPQ", {"pq_m": 8, "pq_b": 256, "code_assignment": "svd", "loss_type": "gBCE",
                                    "neg_sampling": "sequence"}),
    "gbce-position": ("SASRecJPQ", {"pq_m": 8, "pq_b": 256, "code_assignment": "svd", "loss_type": "gBCE",
                                    "neg_sampling": "position"}),
    # a dense head: the most popular items' own residuals in what the 10x budget leaves
    # (pq_dense_head auto), beside b = 512 (what pq_b: auto gives Video Games without a head) or
    # b = 256 (uint8 codes: a larger head; what both auto give)
    "b512-svd_pq-two-level-head": ("SASRecJPQ", {"pq_m": 8, "pq_b": 512, "code_assignment": "svd_pq",
                                                 "pq_kmeans": "two_level", "pq_dense_head": "auto"}),
    "b256-svd_pq-two-level-head": ("SASRecJPQ", {"pq_m": 8, "pq_b": 256, "code_assignment": "svd_pq",
                                                 "pq_kmeans": "two_level", "pq_dense_head": "auto"}),
}
for _model, _overrides in VARIANTS.values():  # rows measured before the dense head existed have none
    if _model == "SASRecJPQ":
        _overrides.setdefault("pq_dense_head", 0)


def run_row(dataset: str, variant: str, epochs: int, seed: int) -> dict:
    from recbole_pq.pipeline import setup

    model, overrides = VARIANTS[variant]
    start = time.perf_counter()
    config, (train, valid, test), model_obj, trainer = setup(model, dataset, config_dict=row_settings(
        dataset, variant, epochs, seed))
    best_score, best_valid = trainer.fit(train, valid, saved=True, show_progress=False)
    test_result = trainer.evaluate(test, load_best_model=True, show_progress=False)
    items = model_obj.items
    return {"dataset": dataset, "variant": variant, "model": model, "overrides": overrides,
            "pq_m": getattr(items, "m", None), "pq_b": getattr(items, "b", None),
            "dense_head": getattr(items, "n_head", None), "hidden_size": config["hidden_size"], "n_items": items.n_items - 1,
            "dense_item_table_mb": items.n_items * config["hidden_size"] * 4 / 2**20,
            "valid_ndcg@10": round(float(best_valid["ndcg@10"]), 5), "test_ndcg@10": round(float(test_result["ndcg@10"]), 5),
            "test_recall@10": round(float(test_result["recall@10"]), 5), "epochs": epochs,
            "train_precision": config["train_precision"], "seconds": round(time.perf_counter() - start, 1),
            "code_assignment": config["code_assignment"] if model == "SASRecJPQ" else None,
            **trained_model_measures(model_obj, trainer, train, valid, test)}


def row_settings(dataset: str, variant: str, epochs: int, seed: int) -> dict:
    return {**VARIANTS[variant][1], "epochs": epochs, "seed": seed, "show_progress": False,
            "checkpoint_dir": str(ROOT / "saved" / "defaults" / dataset / variant)}


def trained_model_measures(model_obj, trainer, train, valid, test) -> dict:
    """What is measured on the trained model (its best weights loaded): the ranking with the
    user's history excluded (the papers' protocol), item-table diagnostics, cold/rest split."""
    import recbole_pq
    from recbole_pq.data.seq2seq import training_user_item
    from recbole_pq.items.diagnostics import item_memory, item_table_diagnostics, ndcg_by_popularity

    model_obj.eval_exclude_history = True  # the same checkpoint ranked as the papers do
    valid_excluded = trainer.evaluate(valid, load_best_model=False, show_progress=False)
    test_excluded = trainer.evaluate(test, load_best_model=False, show_progress=False)
    model_obj.eval_exclude_history = False  # the popularity split ranks with RecBole's protocol
    return {**item_memory(model_obj),
            "valid_ndcg@10_history_excluded": round(float(valid_excluded["ndcg@10"]), 5),
            "test_ndcg@10_history_excluded": round(float(test_excluded["ndcg@10"]), 5),
            "diagnostics": item_table_diagnostics(model_obj.items),
            "popularity_split": ndcg_by_popularity(model_obj, test, training_user_item(train._dataset, trainer.config)),
            **({"head_scan": head_scan(model_obj, test)} if getattr(model_obj.items, "n_head", 0) else {}),
            "recbole_pq": recbole_pq.__version__, "commit": commit()}


def head_scan(model_obj, test, k: int = 10) -> dict:
    """What a dense head costs the top-k on the trained model: ms per user of pqtopk's top-k
    with the head (scan of the tail's codes + the head's matmul + merge) against the plain
    scan of all codes for the same queries (one process, alternating; medians over batches)."""
    import statistics

    import torch

    from recbole_pq.items.scoring import make_scorer

    model_obj.eval()
    scorer = make_scorer("pqtopk")
    with_head, plain = [], []
    with torch.no_grad():
        for batch in test:
            interaction = batch[0]
            query = model_obj.forward(interaction[model_obj.ITEM_SEQ], interaction[model_obj.ITEM_SEQ_LEN])
            start = time.perf_counter()
            scorer.topk(query, model_obj.items, k)
            with_head.append((time.perf_counter() - start) / len(query))
            start = time.perf_counter()
            scorer._topk(query, model_obj.items, k)  # the codes alone: what the scan costs without a head
            plain.append((time.perf_counter() - start) / len(query))
    return {"k": k, "batches": len(plain), "batch_size": len(query),
            "ms_per_user_with_head": round(1000 * statistics.median(with_head), 4),
            "ms_per_user_scan_only": round(1000 * statistics.median(plain), 4)}


def rescore(record: dict, roots: list[Path]) -> dict:
    """A row measured before the history-excluded ranking or the diagnostics existed, from
    its own best checkpoint: the file under ROOT/saved/defaults/<dataset>/<variant>/ of one
    of ``roots`` whose stored best validation score is the record's (no retraining)."""
    from recbole_pq.pipeline import setup
    from recbole_pq.serving.checkpoint import load_checkpoint

    dataset, variant = record["dataset"], record["variant"]
    candidates = [path for root in roots for path in sorted((root / "saved" / "defaults" / dataset / variant).glob("*.pth"))
                  if not path.name.endswith("-last.pth")]
    matching = [(path, checkpoint) for path in candidates for checkpoint in [load_checkpoint(path)]
                if round(float(checkpoint["best_valid_score"]), 4) == round(record["valid_ndcg@10"], 4)]
    if not matching:
        raise SystemExit(f"[{dataset} {variant}] no checkpoint with best valid score {record['valid_ndcg@10']} among "
                         f"{[str(p) for p in candidates]}")
    path, checkpoint = matching[-1]
    _, (train, valid, test), model_obj, trainer = setup(
        VARIANTS[variant][0], dataset, config_dict=row_settings(dataset, variant, record["epochs"], record["seed"]))
    trainer._load_model_weights(str(path), checkpoint)  # the checkpoint read above, not a second read
    measures = trained_model_measures(model_obj, trainer, train, valid, test)
    return {**record, **measures, "rescored_from": str(path)}


def plot(data: dict, path: Path) -> None:
    """One panel per data set: test NDCG@10 of every row against its item-table MB (log x),
    dense as a dashed line, the cold/rest split as a second marker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({(r["dataset"], r["epochs"]) for r in data["records"]})
    fig, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 4.2), squeeze=False)
    for ax, (dataset, epochs) in zip(axes[0], keys):
        rows = [r for r in data["records"] if (r["dataset"], r["epochs"]) == (dataset, epochs)
                and not r["variant"].startswith("gbce")]
        for r in rows:
            mb = r["item_table_mb"] or r["dense_item_table_mb"]
            if r["model"] == "DenseSASRec":
                if r["variant"] != "dense":  # the float32 checks of issue 28 sit on it
                    continue
                ax.axhline(r["test_ndcg@10"], ls="--", c="k", lw=1, label=f"dense ({mb:.2g} MB)")
                continue
            ax.scatter(mb, r["test_ndcg@10"], s=30)
            ax.annotate(f"{r['variant']} (b={r['pq_b']})", (mb, r["test_ndcg@10"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        ax.set(xscale="log", xlabel="item representation (MB)", ylabel="test NDCG@10",
               title=f"{dataset}, {epochs} epochs: SASRecJPQ rows vs dense")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--json", type=Path, default=JSON_DEFAULT)
    parser.add_argument("--plot", action="store_true", help="only draw the PNG from the JSON")
    parser.add_argument("--rescore", type=Path, nargs="+", metavar="CHECKOUT",
                        help="add the history-excluded ranking and diagnostics (and a dense head's scan cost) to "
                             "--dataset's rows that lack them, "
                             "from their checkpoints in these checkouts (no training)")
    args = parser.parse_args(argv)
    if args.plot:
        plot(json.loads(args.json.read_text()), args.json.with_suffix(".png"))
        return 0
    data = json.loads(args.json.read_text()) if args.json.is_file() else {"records": []}
    data.update(cpu())
    data["command"] = "python benchmarks/defaults.py --dataset DATASET --epochs EPOCHS"
    if args.rescore:
        for index, record in enumerate(data["records"]):
            if record["dataset"] == args.dataset and ("test_ndcg@10_history_excluded" not in record
                                                      or (record.get("dense_head") and "head_scan" not in record)):
                data["records"][index] = rescore(record, args.rescore)
                args.json.write_text(json.dumps(data, indent=1) + "\n")
                print(f"[{args.dataset} {record['variant']}] rescored", flush=True)
        plot(data, args.json.with_suffix(".png"))
        return 0
    for variant in args.variants:
        key = (args.dataset, variant, args.epochs, args.seed)
        if any((r["dataset"], r["variant"], r["epochs"], r.get("seed")) == key for r in data["records"]):
            print(f"[{args.dataset} {variant}] already measured", flush=True)
            continue
        record = {**run_row(args.dataset, variant, args.epochs, args.seed), "seed": args.seed}
        data["records"].append(record)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=1) + "\n")
        print(f"[{args.dataset} {variant}] {record}", flush=True)
    plot(data, args.json.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
