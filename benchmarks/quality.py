"""Quality on real data: compressed vs dense models, same seed, split and stopping rule.

    python benchmarks/quality.py --dataset ml-1m --protocol full_exclude_history --models SASRec SASRecJPQ-svd_pq
                                 --converge 20 --epochs 400 [--progress docs/benchmarks/quality_progress.json]
    python benchmarks/quality.py --dataset ml-1m --protocol full_exclude_history --models SASRec SASRecJPQ-svd_pq
                                 --converge 20 --epochs 400 --rank-with-history
    python benchmarks/quality.py --dataset ml-1m [--protocol full|uni100|all] [--models A B]
                                 [--epochs 10] [--force] [--json PATH] [--md PATH] [--set KEY=VALUE]
                                 [--longer --epochs 30]

Protocols (leave-one-out by time, RecBole's split, full ranking unless said):
- ``full_exclude_history``: the papers' (RecJPQ's and gSASRec's): the items of the user's
  input sequence are removed from the ranking (``eval_exclude_history: true``).
- ``full``: RecBole's sequential evaluation, history kept; NDCG@10 / Recall@10 / HR@10: SASRec
  (dense twin) vs SASRecJPQ (svd, svd_pq, random codes); gBERT4Rec (dense) vs gBERT4RecJPQ;
  RecBole's BERT4Rec as reference.
- ``uni100``: 100 uniform negatives, HR / NDCG @5 / @10: the 1-layer 1-head Transformer
  vs SASRecLISA base / soft / mini (LISA's protocol).

``--converge PATIENCE`` trains each row until validation NDCG@10 has not improved for
PATIENCE epochs (validation every epoch; ``--epochs`` is the cap) and writes
docs/benchmarks/quality.json, one record per dataset x protocol x model x metric with
``epochs``, ``steps``, ``train_seconds`` and ``converged``; docs/QUALITY.md is rendered from it.
``--rank-with-history`` then ranks those rows' best checkpoints with the history kept: their
``full`` records, without training again.  Popularity (the row ``Pop``) comes from
benchmarks/popularity.py --json.  Without ``--converge`` the rows train for a fixed number of
epochs (``--epochs``) into docs/benchmarks/quality_fixed_budget.json, rendered with the notes
into docs/QUALITY_DETAILS.md.

Every model trains one row per user (``train_mode: seq2seq``) with the same seed, batch
size and learning rate, and the best validation checkpoint is evaluated on test.  Nothing is
tuned on the test set.  Resumable: each finished model's records are merged into the
JSON at once and skipped on the next run (``--force`` re-runs them); a model interrupted
mid-training resumes from its ``-last.pth`` checkpoint.  For compressed models with the
``pqtopk`` scorer, the test set is evaluated a second time with the ``default`` scorer and
the run fails if any metric differs.

Settings a row needs per data set (e.g. ``pq_m`` for >= 10x compression on a small
catalogue) are chosen on validation only: ``--set pq_m=4`` trains a probe into
docs/benchmarks/quality_selection.json (with its best validation metrics, never into the
table); benchmarks/quality_settings.yaml holds the choice, and the probe of the chosen setting and budget
becomes the row without training again.

``--longer --epochs 30 --models SASRec SASRecJPQ-svd``: does a gap close with training?  A
budget beyond the tables' goes to docs/benchmarks/quality_long.json and a section of its own.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.harness import cpu  # noqa: E402

PROPERTIES = ROOT / "properties"
JSON_DEFAULT = ROOT / "docs" / "benchmarks" / "quality.json"
MD_DEFAULT = ROOT / "docs" / "QUALITY.md"
NOTES = ROOT / "docs" / "benchmarks" / "quality_notes.md"
SELECTION_JSON = ROOT / "docs" / "benchmarks" / "quality_selection.json"
LONG_JSON = ROOT / "docs" / "benchmarks" / "quality_long.json"  # --longer: budgets beyond the tables'
# without --converge: a fixed budget (the 10-epoch tables), kept apart from the converged rows
FIXED_JSON = ROOT / "docs" / "benchmarks" / "quality_fixed_budget.json"
DETAILS_MD = ROOT / "docs" / "QUALITY_DETAILS.md"
FINDINGS = ROOT / "docs" / "benchmarks" / "quality_findings.md"  # what the converged tables say, written after reading them
PARETO_JSON = ROOT / "docs" / "benchmarks" / "pareto.json"  # benchmarks/pareto.py
DEFAULTS_JSON = ROOT / "docs" / "benchmarks" / "defaults.json"  # benchmarks/defaults.py
DEFAULTS_SEEDS_JSON = ROOT / "docs" / "benchmarks" / "defaults_seeds.json"  # benchmarks/defaults.py, several seeds
DATASETS = ("ml-1m", "video-games", "ml-100k")  # ml-100k: a smoke run (bundled with RecBole)
# Longest history per data set unless --max-seq-length says otherwise: ML-1M's sequences are long
# (median 96), Amazon's short (mean 9), as in SASRec's and LISA's set-ups.
MAX_SEQ_LENGTH = {"ml-1m": 200, "video-games": 50, "ml-100k": 200}
PROTOCOL_METRICS = {
    "full": ("ndcg@10", "recall@10", "hit@10"),
    "full_exclude_history": ("ndcg@10", "recall@10", "hit@10"),
    "uni100": ("hit@10", "ndcg@10", "hit@5", "ndcg@5"),
}


@dataclass(frozen=True)
class Spec:
    """One row of a quality table: the name in the JSON, the ``--model`` it runs, its overrides."""

    name: str
    protocol: str
    model: str
    config: dict = field(default_factory=dict)
    config_files: tuple = ()

    def config_file_paths(self) -> list[str]:
        files = [PROPERTIES / f for f in self.config_files]
        if self.protocol == "uni100":
            files.insert(0, PROPERTIES / "protocol" / "uni100.yaml")
        return [str(f) for f in files]


SPECS = [
    Spec("SASRec", "full", "DenseSASRec"),
    Spec("SASRecJPQ-svd", "full", "SASRecJPQ", {"code_assignment": "svd"}),
    Spec("SASRecJPQ-random", "full", "SASRecJPQ", {"code_assignment": "random"}),
    # the default assignment: k-means of SVD item vectors, centroids starting the tables
    Spec("SASRecJPQ-svd_pq", "full", "SASRecJPQ", {"code_assignment": "svd_pq"}),
    # what no flags give (issue 34): pq_b auto with the dense head for the most popular items
    Spec("SASRecJPQ-defaults", "full", "SASRecJPQ", {"pq_dense_head": "auto"}),
    Spec("BERT4Rec", "full", "BERT4Rec", {"train_mode": "seq2seq"}),
    Spec("gBERT4Rec", "full", "gBERT4Rec"),
    Spec("gBERT4RecJPQ", "full", "gBERT4RecJPQ"),
    # RecJPQ's own BERT4Rec-JPQ set-up: full-softmax CE over the sub-item items, 3 blocks, lr 1e-4
    # (RecJPQ also caps the masked items per sequence at 20; here mask_ratio's 20% of them)
    Spec("BERT4Rec-JPQ-CE", "full", "gBERT4RecJPQ", {"loss_type": "CE", "n_layers": 3, "learning_rate": 1e-4}),
    # LISA's "Transformer": SASRec with 1 block and 1 head, in LISA's shell settings.
    Spec("SASRec-1layer", "uni100", "DenseSASRec", {"n_layers": 1, "n_heads": 1}),
    Spec("SASRecLISA-base", "uni100", "SASRecLISA", {"lisa_variant": "base"}),
    Spec("SASRecLISA-soft", "uni100", "SASRecLISA", config_files=("model/SASRecLISA-soft.yaml",)),
    Spec("SASRecLISA-mini", "uni100", "SASRecLISA", config_files=("model/SASRecLISA-mini.yaml",)),
]

BEFORE_DENSE_HEAD = {"SASRecJPQ": {"pq_dense_head": 0}}

# The papers' protocol: full ranking without the user's history items (RecJPQ's and gSASRec's
# filter_seen); its rows are the full-ranking specs with eval_exclude_history on.
EXCLUDE_HISTORY = "full_exclude_history"


def specs_for(protocol: str) -> list[Spec]:
    """The rows of one protocol ("all": full ranking and uni100, RecBole's protocols)."""
    if protocol == EXCLUDE_HISTORY:
        return [replace(s, protocol=EXCLUDE_HISTORY, config={**s.config, "eval_exclude_history": True})
                for s in SPECS if s.protocol == "full"]
    return [s for s in SPECS if protocol in ("all", s.protocol)]


def spec_named(name: str, protocol: str) -> Spec:
    return next(s for s in specs_for(protocol) if s.name == name)


# Published numbers (same data set names; each from the paper named in the column).
PUBLISHED = {
    ("ml-1m", "SASRec", "ndcg@10"): ("0.131 (RecJPQ); 0.1726 (gSASRec, gBCE)",
                                     "RecJPQ (WSDM'24), SASRec; gSASRec-pytorch (RecSys'23), ML-1M"),
    ("ml-1m", "SASRecJPQ-svd", "ndcg@10"): ("0.125-0.130", "RecJPQ, SASRec-JPQ"),
    ("ml-1m", "SASRecJPQ-svd_pq", "ndcg@10"): ("0.125-0.130 (SASRec-JPQ)", "RecJPQ, SASRec-JPQ"),
    ("ml-1m", "BERT4Rec", "ndcg@10"): (0.157, "RecJPQ, BERT4Rec"),
    ("ml-1m", "gBERT4RecJPQ", "ndcg@10"): ("0.154-0.156", "RecJPQ, BERT4Rec-JPQ"),
    ("ml-1m", "BERT4Rec-JPQ-CE", "ndcg@10"): ("0.154-0.156", "RecJPQ, BERT4Rec-JPQ"),
    ("ml-1m", "SASRec-1layer", "hit@10"): (0.7914, "LISA (WWW'21), Transformer"),
    ("ml-1m", "SASRec-1layer", "ndcg@10"): (0.5725, "LISA, Transformer"),
    ("ml-1m", "SASRecLISA-base", "hit@10"): (0.7962, "LISA-Base"),
    ("ml-1m", "SASRecLISA-base", "ndcg@10"): (0.5740, "LISA-Base"),
    ("ml-1m", "SASRecLISA-soft", "hit@10"): (0.7887, "LISA-Soft"),
    ("ml-1m", "SASRecLISA-soft", "ndcg@10"): (0.5587, "LISA-Soft"),
    ("ml-1m", "SASRecLISA-mini", "hit@10"): (0.7886, "LISA-Mini"),
    ("ml-1m", "SASRecLISA-mini", "ndcg@10"): (0.5644, "LISA-Mini"),
    ("video-games", "SASRec-1layer", "hit@10"): (0.6583, "LISA, Transformer"),
    ("video-games", "SASRec-1layer", "ndcg@10"): (0.4680, "LISA, Transformer"),
    ("video-games", "SASRecLISA-base", "hit@10"): (0.7338, "LISA-Base"),
    ("video-games", "SASRecLISA-base", "ndcg@10"): (0.5157, "LISA-Base"),
    ("video-games", "SASRecLISA-soft", "hit@10"): (0.7035, "LISA-Soft"),
    ("video-games", "SASRecLISA-soft", "ndcg@10"): (0.4944, "LISA-Soft"),
    ("video-games", "SASRecLISA-mini", "hit@10"): (0.7102, "LISA-Mini"),
    ("video-games", "SASRecLISA-mini", "ndcg@10"): (0.4881, "LISA-Mini"),
}

SETTINGS_YAML = ROOT / "benchmarks" / "quality_settings.yaml"


def dataset_settings(path: Path = SETTINGS_YAML) -> dict[tuple[str, str], dict]:
    """(data set, row name) -> the row's settings chosen on validation (the YAML says how)."""
    import yaml

    return {(dataset, row): dict(settings) for dataset, rows in yaml.safe_load(path.read_text()).items()
            for row, settings in rows.items()}


DATASET_SETTINGS = dataset_settings()


# (compressed, dense reference, metric, protocol, share): the targets.
TARGETS = [
    ("SASRecJPQ-svd", "SASRec", "ndcg@10", 0.98),
    ("gBERT4RecJPQ", "gBERT4Rec", "ndcg@10", 0.98),
    ("gBERT4Rec", "BERT4Rec", "ndcg@10", 1.0),
    ("SASRecLISA-base", "SASRec-1layer", "hit@10", 0.98),
]


def budget_config(args) -> dict:
    """The settings every model shares (the 'same budget')."""
    return {
        "epochs": args.epochs, "eval_step": args.eval_step, "stopping_step": args.stopping_step,
        "train_batch_size": args.batch_size, "eval_batch_size": args.eval_batch_size,
        "learning_rate": args.learning_rate, "seed": args.seed, "reproducibility": True,
        "MAX_ITEM_LIST_LENGTH": args.max_seq_length or MAX_SEQ_LENGTH[args.dataset], "state": "INFO", "show_progress": False,
    }


def item_table_bytes(model) -> tuple[int, int]:
    """(bytes of the item representation as stored, bytes of a dense float32 table)."""
    if hasattr(model, "items") and hasattr(model.items, "memory_bytes"):
        mem = model.items.memory_bytes()
        return mem["compressed"], mem["dense"]
    dense = model.item_embedding.weight.numel() * 4  # RecBole's own models
    return dense, dense


def metric_values(result: dict, protocol: str) -> dict[str, float]:
    return {name: round(float(result[name]), 6) for name in PROTOCOL_METRICS[protocol]}


def row_settings(spec: Spec, dataset: str, overrides: dict) -> dict:
    """What this row sets beyond the shared budget: the spec's own keys, the data set's
    validation-chosen settings, then a probe's ``--set`` overrides."""
    return {**spec.config, **DATASET_SETTINGS.get((dataset, spec.name), {}), **overrides}


def row_folder(spec: Spec, dataset: str, args) -> Path:
    """The row's checkpoint folder.  Every setting and budget gets its own: a run must never
    resume the -last.pth of another setting (a probe) or of another budget (e.g. --epochs 30)."""
    probe_tag = "-".join(f"{k}={v}" for k, v in sorted(args.overrides.items()))
    budget_tag = hashlib.sha1(settings_key({**budget_config(args), **row_settings(spec, dataset, args.overrides)})
                              .encode()).hexdigest()[:10]
    return ROOT / "saved" / "quality" / dataset / (spec.name + (f"@{probe_tag}" if probe_tag else "")) / budget_tag


def progress(specs: list[Spec], args) -> dict:
    """The validation curves of this command's rows so far: finished rows from the JSON, rows
    still training (or stopped) from their checkpoint folder's valid_curve.json."""
    finished = {r["model"]: r for r in load_records(args.json)
                if r["dataset"] == args.dataset and r["protocol"] == specs[0].protocol}
    rows = []
    for spec in specs:
        curve_file = row_folder(spec, args.dataset, args) / "valid_curve.json"
        if spec.name in finished:
            record = finished[spec.name]
            rows.append({"model": spec.name, "valid_curve": record.get("valid_curve", []),
                         "status": "converged" if record.get("converged")
                         else f"stopped ({stop_reason(record)})"})
        elif curve_file.is_file():
            rows.append({"model": spec.name, "status": "in progress: resumes from " + str(curve_file.parent.relative_to(ROOT)),
                         "valid_curve": json.loads(curve_file.read_text())})
    return {"dataset": args.dataset, "protocol": specs[0].protocol, "valid_metric": "NDCG@10", "machine": cpu(),
            "seconds": "cumulative training + validation seconds of each row (other jobs may have shared the cores)",
            "command": "python benchmarks/quality.py " + " ".join(progress_free(sys.argv[1:])),
            "rows": rows}


def progress_free(argv: list[str]) -> list[str]:
    """The command line without ``--progress JSON``: the command that trains (and resumes) the rows."""
    out, skip = [], False
    for arg in argv:
        if skip or arg == "--progress" or arg.startswith("--progress="):
            skip = arg == "--progress" and not skip
            continue
        out.append(arg)
    return out


def plot_progress(data: dict, path: Path) -> None:
    """Validation NDCG@10 by epoch, one line per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for row in data["rows"]:
        ax.plot([c["epoch"] for c in row["valid_curve"]], [c["valid_score"] for c in row["valid_curve"]],
                marker=".", label=f"{row['model']} ({row['status'].split(':')[0]})")
    ax.set(xlabel="epoch", ylabel=f"valid {data['valid_metric']}", title=f"{data['dataset']}, {data['protocol']}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def stop_reason(record: dict) -> str:
    """What ended a row's training: patience, epoch cap or time limit (records from before
    ``stopped_by`` existed are unconverged only by the cap)."""
    return record.get("stopped_by") or ("patience" if record.get("converged") else "epoch cap")


class TimeLimitReached(Exception):
    """--hours ran out: the row stops after its last evaluated epoch, unconverged and resumable."""


def train_one(spec: Spec, dataset: str, args) -> list[dict]:
    from recbole_pq.items.scoring import make_scorer
    from recbole_pq.pipeline import setup

    settings = row_settings(spec, dataset, args.overrides)
    checkpoint_dir = row_folder(spec, dataset, args)
    budget = budget_config(args)
    # the rows of these tables were measured before SASRecJPQ's default dense head: they keep none (outside the
    # settings that name the row's folder, so its checkpoints still resume); a --set probe may give one
    config_dict = {**budget, **BEFORE_DENSE_HEAD.get(spec.model, {}), **settings, "checkpoint_dir": str(checkpoint_dir)}
    config, (train, valid, test), model, trainer = setup(spec.model, dataset, spec.config_file_paths(), config_dict)
    # RecBole names a run's files by its start time, so an interrupted run's -last.pth has
    # another name than this run's: take the newest one in this row's own folder.
    lasts = sorted(checkpoint_dir.glob("*-last.pth"), key=lambda p: p.stat().st_mtime)
    last = lasts[-1] if lasts and hasattr(trainer, "last_checkpoint_file") else Path("/nonexistent")
    curve_file = checkpoint_dir / "valid_curve.json"  # survives a resume, as the checkpoint does
    curve = []
    if last.is_file():
        print(f"[{spec.name}] resuming from {last}", flush=True)
        trainer.resume_checkpoint(str(last), train)
        curve = [c for c in load_records(curve_file) if c["epoch"] < trainer.start_epoch]
    epochs_run = [trainer.start_epoch if last.is_file() else 0]
    train_epoch = trainer._train_epoch

    deadline = time.time() + args.hours * 3600 if args.hours is not None else None

    def counting_train_epoch(train_data, epoch_idx, *a, **kw):
        if deadline is not None and epoch_idx > 0 and time.time() >= deadline:
            raise TimeLimitReached  # before the epoch, so there is always a trained, checkpointed one
        epochs_run[0] = max(epochs_run[0], epoch_idx + 1)
        return train_epoch(train_data, epoch_idx, *a, **kw)

    trainer._train_epoch = counting_train_epoch
    start = time.perf_counter() - (curve[-1]["seconds"] if curve else 0.0)

    def record_validation(epoch_idx, valid_score):
        curve.append({"epoch": epoch_idx, "valid_score": round(float(valid_score), 5),
                      "seconds": round(time.perf_counter() - start, 1)})
        curve_file.write_text(json.dumps(curve) + "\n")

    try:
        _, best_valid = trainer.fit(train, valid, saved=True, show_progress=False, callback_fn=record_validation)
        # the patience rule stopped it before the cap (budget["epochs"]), or the cap did
        stopped_by = "patience" if trainer.cur_step > budget["stopping_step"] else "epoch cap"
    except TimeLimitReached:
        stopped_by, best_valid = "time limit", trainer.best_valid_result
        print(f"[{spec.name}] --hours {args.hours}: stopped after {epochs_run[0]} epochs; the same command "
              f"resumes from {checkpoint_dir}", flush=True)
    train_seconds = time.perf_counter() - start
    test_result = trainer.evaluate(test, load_best_model=True, show_progress=False)
    values = metric_values(test_result, spec.protocol)

    scorers_agree = None
    scorer_used = type(model).scorer_name(config) if hasattr(model, "scorer_name") else config["scorer"] or "default"
    if spec.protocol != "uni100" and scorer_used != "default":
        fast_scorer = model.scorer
        default_scorer = make_scorer("default", config["pq_chunk_size"], config["pq_backend"])
        model.scorer = default_scorer
        default_values = metric_values(trainer.evaluate(test, load_best_model=False, show_progress=False),
                                       spec.protocol)
        model.scorer = fast_scorer
        # Items that share a code tuple score exactly alike, and which of such tied items
        # fill the last top-k slots may differ between scorers: the scorers agree when every
        # user's top-k scores are equal, even if the metrics then differ slightly.
        scorers_agree = default_values == values or same_topk_scores(model, test, fast_scorer, default_scorer,
                                                                      max(config["topk"]))
        if not scorers_agree:
            print(f"[{spec.name}] WARNING: scorer {scorer_used} gives {values}, default {default_values} "
                  "with different top-k scores", flush=True)
    stored, dense = item_table_bytes(model)
    base = {
        "dataset": dataset, "protocol": spec.protocol, "model": spec.name, "run_model": spec.model,
        "epochs": epochs_run[0], "steps": epochs_run[0] * len(train), "train_seconds": round(train_seconds, 1),
        "converged": stopped_by == "patience", "stopped_by": stopped_by,
        "valid_curve": curve, "valid_metric": config["valid_metric"],
        "train_precision": config["train_precision"], "train_length_buckets": config["train_length_buckets"],
        "item_table_mb": round(stored / 2**20, 4), "dense_item_table_mb": round(dense / 2**20, 4),
        "compression": round(dense / stored, 2), "scorer": scorer_used,
        "scorers_agree": scorers_agree, "budget": budget, "settings": settings,
        "valid": metric_values(best_valid or {}, spec.protocol) if best_valid else None,
    }
    return [{**base, "metric": metric, "value": value} for metric, value in values.items()]


def rank_with_history(spec: Spec, dataset: str, args, source: dict) -> list[dict]:
    """RecBole's ranking (``full``: the history's items stay rankable) of a row trained under the
    papers' protocol: the same best checkpoint, so the row is not trained twice; its epochs and
    stopping point were chosen on the papers' validation (``selected_on``).  ``source`` is the
    row's ndcg@10 record: the checkpoint must reproduce it with the history excluded, or this
    is not the checkpoint that record was measured on."""
    from recbole_pq.pipeline import setup
    from recbole_pq.serving.checkpoint import load_checkpoint

    settings = row_settings(spec, dataset, args.overrides)
    folder = row_folder(spec, dataset, args)
    lasts = sorted(folder.glob("*-last.pth"), key=lambda p: p.stat().st_mtime)
    if not lasts:
        raise FileNotFoundError(f"{spec.name}: no -last.pth in {folder}; train the row with the same command first")
    best = folder / Path(load_checkpoint(str(lasts[-1]), map_location="cpu")["best_model_file"]).name
    config_dict = {**budget_config(args), **BEFORE_DENSE_HEAD.get(spec.model, {}), **settings,
                   "checkpoint_dir": str(folder)}
    _, (_, valid, test), model, trainer = setup(spec.model, dataset, spec.config_file_paths(), config_dict)
    if not hasattr(model, "eval_exclude_history") and "full_sort_predict" not in vars(model):
        raise ValueError(f"{spec.name} ({spec.model}) ranks without the history by no switch this can turn off")
    excluded = metric_values(trainer.evaluate(test, model_file=str(best), show_progress=False), EXCLUDE_HISTORY)
    if abs(excluded["ndcg@10"] - source["value"]) > 1e-4:
        raise RuntimeError(f"{spec.name}: {best} gives test ndcg@10 {excluded['ndcg@10']} with the history excluded, "
                           f"the record says {source['value']}: not the recorded checkpoint")
    if hasattr(model, "eval_exclude_history"):
        model.eval_exclude_history = False
    else:  # one of RecBole's models: drop recbole_pq.compat's history mask from the instance
        del model.full_sort_predict
    values = metric_values(trainer.evaluate(test, load_best_model=False, show_progress=False), "full")
    valid_values = metric_values(trainer.evaluate(valid, load_best_model=False, show_progress=False), "full")
    full_settings = row_settings(spec_named(spec.name, "full"), dataset, args.overrides)
    base = {**{k: v for k, v in source.items() if k not in ("metric", "value")}, "protocol": "full",
            "settings": full_settings, "valid": valid_values, "selected_on": EXCLUDE_HISTORY,
            "checkpoint": str(best.relative_to(ROOT)) if best.is_relative_to(ROOT) else str(best)}
    return [{**base, "metric": metric, "value": value} for metric, value in values.items()]


def same_topk_scores(model, data, scorer, other, k: int, atol: float = 1e-4) -> bool:
    """Whether two scorers give every user of ``data`` the same top-k scores."""
    import torch

    fast = model.scorer
    model.eval()
    try:
        with torch.no_grad():
            for batch in data:
                interaction = batch[0].to(next(model.parameters()).device)
                model.scorer = scorer
                first = model.full_sort_topk(interaction, k)[0]
                model.scorer = other
                if not torch.allclose(first, model.full_sort_topk(interaction, k)[0], atol=atol):
                    return False
    finally:
        model.scorer = fast
    return True


def load_records(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.is_file() else []


def settings_key(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True)


def record_key(record: dict, with_settings: bool = True) -> tuple:
    """(dataset, protocol, model[, settings]). Records written before settings were stored
    ran with their spec's own keys only."""
    key = (record["dataset"], record["protocol"], record["model"])
    if not with_settings:
        return key
    settings = record.get("settings")
    if settings is None:
        spec = next((s for s in SPECS if s.name == record["model"]), None)
        settings = spec.config if spec else {}
    return key + (settings_key(settings),)


def merge(records: list[dict], new: list[dict], by_settings: bool = False) -> list[dict]:
    """New records replace old ones of the same dataset, protocol and model (and settings,
    for probes: a selection keeps one record set per setting tried)."""
    keys = {record_key(r, by_settings) for r in new}
    return [r for r in records if record_key(r, by_settings) not in keys] + new


def save_records(path: Path, new: list[dict], by_settings: bool = False) -> None:
    """Merge ``new`` into the record file at ``path`` (see ``merge``) and write it back."""
    records = merge(load_records(path), new, by_settings=by_settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1) + "\n")


def fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


# The dense reference of each compressed or variant row (the "% of dense" column and the targets).
DENSE_OF = {"SASRecJPQ-svd": "SASRec", "SASRecJPQ-svd_pq": "SASRec", "SASRecJPQ-random": "SASRec",
            "SASRecJPQ-defaults": "SASRec",
            "gBERT4RecJPQ": "gBERT4Rec", "BERT4Rec-JPQ-CE": "BERT4Rec"}
BERT_FAMILY = ("BERT4Rec", "gBERT4Rec", "gBERT4RecJPQ", "BERT4Rec-JPQ-CE")
PROTOCOL_TITLES = {EXCLUDE_HISTORY: "the papers' protocol (history excluded)", "full": "RecBole's protocol (history kept)"}


def render_summary(records: list[dict], pareto: dict | None = None) -> str:
    """QUALITY.md: how the rows were trained and ranked, the targets, the tables of the rows
    trained to convergence (and Pop), the curves, the size/quality front and the findings."""
    lines = ["# Quality on real data", "",
             "- **Split**: leave-one-out by time (RecBole's `LS` split, `TO` order): each user's last item is the "
             "test target, the one before it the validation target.",
             "- **Ranking**: every item of the catalogue. Two protocols: `full_exclude_history`, the papers' (RecJPQ's "
             "and gSASRec's `filter_seen`): the items of the user's input sequence are removed from the ranking "
             "(`eval_exclude_history: true`); `full`, RecBole's sequential evaluation (history kept, the default).",
             "- **Training to convergence**: `python benchmarks/quality.py --dataset D --protocol full_exclude_history "
             "--models ... --converge 20 --epochs 400` validates every epoch and stops when validation NDCG@10 (papers' "
             "protocol) has not improved for 20 epochs (cap 400); the best validation checkpoint is evaluated on test. "
             "The BERT family trains under RecJPQ's own rule, `--converge 200 --epochs 4000`: a Cloze-trained model "
             "learns from ~20% of positions, and an ML-1M epoch is only 48 steps (4000 epochs: the papers' ~200K). "
             "Resumable: each row checkpoints every epoch and resumes where it stopped; `--hours H` ends a row "
             "after H hours as 'no (time limit)' and the same command with `--force` continues it. The `full` rows are the same "
             "checkpoints ranked with the history kept (`--rank-with-history`): each model is trained once.",
             "- **Settings**: per data set and row in `benchmarks/quality_settings.yaml`, chosen on validation only; the "
             "compressed twin keeps the dense row's backbone and differs in the item table alone. `Pop` ranks items by "
             "training count (`python benchmarks/popularity.py --dataset D --json docs/benchmarks/quality.json`).",
             "- **Machine**: 2 CPU cores shared with other jobs (hours are upper bounds). Published numbers come from "
             "GPU runs of the papers' code.", ""]
    lines += ["## Targets (issue 29)", ""] + summary_target_lines(records, pareto) + [""]
    for dataset in sorted({r["dataset"] for r in records}):
        for protocol in (EXCLUDE_HISTORY, "full"):
            rows = [r for r in records if r["dataset"] == dataset and r["protocol"] == protocol]
            if rows:
                lines += converged_table_lines(dataset, protocol, rows)
    curves = sorted(p.name for p in (ROOT / "docs" / "benchmarks").glob("quality_progress*.png"))
    if curves:
        lines += ["## Validation curves", "", "Validation NDCG@10 (papers' protocol) per epoch of each row; written by "
                  "`--progress docs/benchmarks/quality_progress[_DATASET].json` while the rows train.", ""]
        lines += [f"![{name}](benchmarks/{name})" for name in curves] + [""]
    if pareto:
        lines += pareto_lines(pareto)
    if FINDINGS.is_file():
        lines += [FINDINGS.read_text().strip(), ""]
    lines += ["The fixed-budget tables (10 epochs) that came before, the probes behind the settings, the defaults "
              "tables and the notes of earlier runs: [QUALITY_DETAILS.md](QUALITY_DETAILS.md).", ""]
    return "\n".join(lines)


def converged_table_lines(dataset: str, protocol: str, rows: list[dict]) -> list[str]:
    """One table of a data set and protocol: metrics, share of the dense twin and of Pop, table
    size, and how long each row trained."""
    value = {(r["model"], r["metric"]): r["value"] for r in rows}
    models = [s.name for s in specs_for(protocol) if any(r["model"] == s.name for r in rows)]
    models += ["Pop"] if any(r["model"] == "Pop" for r in rows) else []
    lines = [f"## {dataset}: {PROTOCOL_TITLES[protocol]}", "",
             "| model | NDCG@10 | Recall@10 | HR@10 | % of dense | × Pop | item table MB (× smaller) | converged | "
             "epochs | steps | hours | published NDCG@10 |", "|---|" + "---|" * 11]
    for model in models:
        mine = {r["metric"]: r for r in rows if r["model"] == model}
        first = mine.get("ndcg@10") or next(iter(mine.values()))
        dense = DENSE_OF.get(model)
        share = (f"{100 * value[(model, 'ndcg@10')] / value[(dense, 'ndcg@10')]:.0f}% of {dense}"
                 if (dense, "ndcg@10") in value and (model, "ndcg@10") in value else "")
        pop = value.get(("Pop", "ndcg@10"))
        times_pop = f"{value[(model, 'ndcg@10')] / pop:.1f}×" if pop and (model, "ndcg@10") in value else ""
        size = ("" if first.get("item_table_mb") is None else
                f"{first['item_table_mb']:.3g} ({first['compression']:.1f}×)")
        converged = ("counts" if model == "Pop" else "yes" if first.get("converged")
                     else f"no ({stop_reason(first)})")
        if first.get("selected_on"):
            converged += f"; checkpoint chosen on {first['selected_on']}"
        hours = f"{first['train_seconds'] / 3600:.1f}" if first.get("train_seconds") and model != "Pop" else ""
        published = PUBLISHED.get((dataset, model, "ndcg@10"), ("-",))[0] if protocol == EXCLUDE_HISTORY else "-"
        lines.append(f"| {model} | " + " | ".join(fmt(mine[m]["value"]) if m in mine else "-"
                                                  for m in ("ndcg@10", "recall@10", "hit@10"))
                     + f" | {share} | {times_pop} | {size} | {converged} | {first.get('epochs', '')} | "
                       f"{first.get('steps') or ''} | {hours} | {fmt(published)} |")
    return lines + [""]


def summary_target_lines(records: list[dict], pareto: dict | None) -> list[str]:
    """Issue 29's targets, each met, missed or not measured yet, from the converged records."""
    def ndcg(dataset, model, protocol=EXCLUDE_HISTORY):
        return next((r for r in records if (r["dataset"], r["protocol"], r["model"], r["metric"])
                     == (dataset, protocol, model, "ndcg@10")), None)

    def verdict(ok: bool, *rows) -> str:
        if not all(r.get("converged") for r in rows):
            return "not yet converged"
        return "met" if ok else "**missed**"

    out = []
    dense = ndcg("ml-1m", "SASRec")
    if dense:
        out.append(f"- ML-1M DenseSASRec NDCG@10 >= 0.131 (RecJPQ's SASRec): {dense['value']:.4f} "
                   f"({verdict(dense['value'] >= 0.131, dense)}); {100 * dense['value'] / 0.1726:.0f}% of gSASRec's 0.1726.")
    else:
        out.append("- ML-1M DenseSASRec NDCG@10 >= 0.131: not measured yet.")
    for model in ("SASRecJPQ-svd_pq", "SASRecJPQ-svd"):
        row = ndcg("ml-1m", model)
        if dense and row:
            share = row["value"] / dense["value"]
            out.append(f"- ML-1M {model} >= 95% of DenseSASRec with a >= 10× smaller item table: {100 * share:.1f}% at "
                       f"{row['compression']:.1f}× ({verdict(share >= 0.95 and row['compression'] >= 10, dense, row)}).")
    pop = ndcg("ml-1m", "Pop")
    for model in BERT_FAMILY:
        row = ndcg("ml-1m", model)
        state = (f"{row['value'] / pop['value']:.1f}× ({verdict(row['value'] >= 5 * pop['value'], row)})"
                 if row and pop else "not measured yet at convergence")
        out.append(f"- ML-1M {model} >= 5× Pop's NDCG@10: {state}.")
    pair = ndcg("ml-1m", "gBERT4RecJPQ"), ndcg("ml-1m", "gBERT4Rec")
    out.append("- ML-1M gBERT4RecJPQ >= 95% of gBERT4Rec: " + (
        f"{100 * pair[0]['value'] / pair[1]['value']:.1f}% ({verdict(pair[0]['value'] >= 0.95 * pair[1]['value'], *pair)})."
        if all(pair) else "not measured yet at convergence."))
    ce = ndcg("ml-1m", "BERT4Rec-JPQ-CE")
    out.append("- ML-1M BERT4Rec-JPQ trained as RecJPQ (full-softmax CE) against RecJPQ's 0.154-0.156: " + (
        f"{ce['value']:.4f} ({verdict(ce['value'] >= 0.154, ce)})." if ce else "not measured yet at convergence."))
    vg_dense = ndcg("video-games", "SASRec")
    for model in ("SASRecJPQ-svd_pq", "SASRecJPQ-defaults"):
        vg_pq = ndcg("video-games", model)
        if vg_pq or model == "SASRecJPQ-svd_pq":
            out.append(f"- Video Games {model} >= DenseSASRec: " + (
                f"{100 * vg_pq['value'] / vg_dense['value']:.1f}% of dense at {vg_pq['compression']:.1f}× "
                f"({verdict(vg_pq['value'] >= vg_dense['value'], vg_dense, vg_pq)})." if vg_dense and vg_pq
                else "not measured yet at convergence."))
    if pareto:
        near = [p for p in pareto["points"] if p["kind"] == "compressed" and p.get("share_of_dense", 0) >= 0.98
                and smaller_than_dense(p) >= 10]
        out.append("- A compressed point within 2% of dense at >= 10× smaller (quality vs size front): "
                   + (", ".join(f"{p['label']} ({p['dataset']}, {p['budget']}: {100 * p['share_of_dense']:.0f}% at "
                                f"{smaller_than_dense(p):.1f}×)" for p in near) + " (met)" if near
                      else "none among the points measured (**missed** so far; see the front below)") + ".")
    return out


def smaller_than_dense(point: dict) -> float:
    """How many times smaller than its panel's dense reference a front point is (a panel without a
    dense row, or a pareto.json written before the reference: against the dense table of its own width)."""
    return point.get("smaller_than_dense") or point.get("compression") or 0.0


def pareto_lines(pareto: dict) -> list[str]:
    lines = ["## Quality vs item-table size", "", f"Written by `{pareto['command']}` from the measured rows "
             "(no new training). Each panel is one data set and budget; a point is one row's test NDCG@10 (history "
             "excluded) against the bytes of its item representation (fixed-budget rows: the mean over the seeds they "
             "share with dense, whose mean over the same seeds gives the % of dense); % of dense and × smaller are "
             "against the panel's dense row with the best validation NDCG@10 (dense rows at other widths are points "
             "of their own); the front joins the rows no other row beats at fewer bytes.", "",
             "![quality vs item-table size](benchmarks/pareto.png)", "",
             "| data set | budget | row | seeds | item MB | × smaller | test NDCG@10 | % of dense | on the front |",
             "|---|---|---|---|---|---|---|---|---|"]
    for p in pareto["points"]:
        seeds = ", ".join(map(str, p.get("seeds") or [])) or "2020"
        lines.append(f"| {p['dataset']} | {p['budget']} | {p['label']} | {seeds} | {p['item_table_mb']:.3g} | "
                     f"{smaller_than_dense(p):.1f}× | {p['ndcg@10']:.4f} | {100 * p['share_of_dense']:.0f}% | "
                     f"{'yes' if p['on_front'] else ''} |")
    return lines + [""]


def render_details(records: list[dict], longer: list[dict] = ()) -> str:
    """quality_details.md: the fixed-budget tables of ``records``, then the longer-budget
    comparisons (``--longer``), the probes behind the chosen settings and the notes."""
    lines = ["# Quality at fixed budgets, settings and notes", "",
             "The converged tables are in [QUALITY.md](QUALITY.md); this page holds the runs before them.",
             "Produced by `python benchmarks/quality.py --dataset <name> --epochs 10` (re-rendered from",
             "`docs/benchmarks/quality_fixed_budget.json` after every model). Leave-one-out by time; every model",
             "trains one row per user (seq2seq) with the same seed, epochs, batch size and learning rate;",
             "the best validation checkpoint is evaluated on test. `SASRec` is `DenseSASRec`: RecBole's",
             "SASRec network with a dense tied table, trained exactly like SASRecJPQ (RecBole's own",
             "`SASRec` trains one row per target item: ~160x more rows per epoch on ML-1M, beyond a",
             "2-core session). `BERT4Rec` is RecBole's, trained on the same one-row-per-user sequences",
             "with its own masking. Published numbers come from longer training on GPUs.", ""]
    for dataset in sorted({r["dataset"] for r in records}):
        seconds = sum({(r["protocol"], r["model"]): r["train_seconds"] for r in records
                       if r["dataset"] == dataset}.values())
        lines += [f"Training time for {dataset}, all models below: {seconds / 60:.0f} min (fit + validation, "
                  "2 CPU cores; the machine also ran other jobs, so times are upper bounds).", ""]
        for protocol in (EXCLUDE_HISTORY, "full", "uni100"):
            rows = [r for r in records if r["dataset"] == dataset and r["protocol"] == protocol]
            if rows:
                lines += table_lines(dataset, protocol, rows, "")
    lines += ["Sources of the published numbers: " + "; ".join(sorted({v[1] for v in PUBLISHED.values()})) + ".", ""]
    groups = {}
    for r in longer:
        groups.setdefault((r["dataset"], r["protocol"], r["budget"]["epochs"]), []).append(r)
    for (dataset, protocol, epochs), rows in sorted(groups.items()):
        lines += table_lines(dataset, protocol, rows, f", longer budget ({epochs} epochs)")
    lines += selection_lines(load_records(SELECTION_JSON))
    if DEFAULTS_JSON.is_file():
        lines += defaults_lines(json.loads(DEFAULTS_JSON.read_text()))
    if DEFAULTS_SEEDS_JSON.is_file():
        lines += seed_mean_lines(json.loads(DEFAULTS_SEEDS_JSON.read_text()))
    if NOTES.is_file():  # the analysis of a run, written after reading it
        lines += [NOTES.read_text().strip(), ""]
    return "\n".join(lines)


def defaults_lines(data: dict) -> list[str]:
    """The rows of benchmarks/defaults.py: SASRecJPQ's table sizes and code assignments with
    nothing but --model and --dataset, against DenseSASRec at the same budget."""
    lines = ["## Defaults: what `--model` and `--dataset` alone give", "",
             f"Written by `{data['command']}` (CPU: {data.get('cpu', '?')}). Every row: the plugin's YAML defaults "
             "(d = 64, RecBole's ranking protocol, history kept), the same seed and epochs, plus only the row's "
             "settings; rows measured since the column exists are also ranked without the user's history (the "
             "papers' protocol) from the same checkpoint; the best validation NDCG@10 picks the checkpoint and is the only number a default may be "
             "chosen on. % of dense: test NDCG@10 over DenseSASRec's in the same table. Diagnostics of the trained "
             "item table: mean share of the b codes used per split, items sharing their whole code tuple with "
             "another item, effective rank of the (N, d) item matrix (d = 64 at most). Cold: the 20% of test "
             "cases whose target items are least popular in training; rest: the others.", ""]
    for dataset, epochs in sorted({(r["dataset"], r["epochs"]) for r in data["records"]}):
        rows = [r for r in data["records"] if (r["dataset"], r["epochs"]) == (dataset, epochs)]
        dense = next((r for r in rows if r["variant"] == "dense"), None)  # the dense-fp32* rows are checks
        lines += [f"**{dataset}**, {epochs} epochs, {rows[0]['n_items']:,} items", "",
                  "| row | m | b | codes | item MB (× smaller) | valid NDCG@10 | test NDCG@10 | % of dense | "
                  "test NDCG@10, history excluded (% of dense) | test NDCG@10 cold / rest | codes used | "
                  "items sharing a tuple | eff. rank |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            diag = r.get("diagnostics") or {}
            share = f"{100 * r['test_ndcg@10'] / dense['test_ndcg@10']:.0f}%" if dense and dense["test_ndcg@10"] else ""
            mb = (f"{r['item_table_mb']:.3g} ({r['compression']:.1f}×)" if r["model"] != "DenseSASRec"
                  else f"{r['dense_item_table_mb']:.3g} (dense)")
            used = f"{100 * diag['codes_used_fraction']:.0f}%" if "codes_used_fraction" in diag else ""
            split = r.get("popularity_split") or {}
            cold = f"{split['ndcg@10_cold']:.4f} / {split['ndcg@10_rest']:.4f}" if split else ""
            excluded = _history_excluded_cell(r, dense)
            lines.append(f"| {r['variant']} | {r['pq_m'] or ''} | {r['pq_b'] or ''} | {r.get('code_assignment') or ''} | "
                         f"{mb} | {r['valid_ndcg@10']:.4f} | {r['test_ndcg@10']:.4f} | {share} | {excluded} | {cold} | {used} | "
                         f"{diag.get('items_sharing_a_code_tuple', '')} | {diag.get('effective_rank', '')} |")
        sizes = [r for r in rows if r["variant"] in SIZE_ROWS]
        if len(sizes) > 1:
            best = max(sizes, key=lambda r: r["valid_ndcg@10"])
            lines += ["", f"Best table size on validation: `{best['variant']}` (m = {best['pq_m']}, b = {best['pq_b']}, "
                          f"valid NDCG@10 {best['valid_ndcg@10']:.4f})."]
        compressed = [r for r in rows if r["model"] == "SASRecJPQ" and r.get("overrides", {}).get("loss_type") is None]
        if compressed:
            best = max(compressed, key=lambda r: r["valid_ndcg@10"])
            lines += ["", f"Best SASRecJPQ row on validation: `{best['variant']}` ({best['code_assignment']} codes, "
                          f"m = {best['pq_m']}, b = {best['pq_b']}, valid NDCG@10 {best['valid_ndcg@10']:.4f}, test "
                          f"{100 * best['test_ndcg@10'] / dense['test_ndcg@10']:.0f}% of dense)." if dense else ""]
        lines.append("")
    return lines + ["![defaults](benchmarks/defaults.png)", "",
                    "SASRecJPQ's defaults are `pq_b: auto` and `pq_dense_head: auto` with `pq_m: 8`, "
                    "`code_assignment: svd_pq` and `pq_kmeans: auto` (`today` is the earlier default, svd codes with "
                    "b = 256). On catalogues of up to ~4K items at d = 64 (ml-100k, ML-1M) they give b = 256 and no "
                    "head (codes and tables use the 10x budget), so there `codes-svd_pq` is the default model. From "
                    "16,384 items on (Video Games) the k-means runs in two levels, and wherever the budget leaves room "
                    "b stays 256 and the most popular items get a dense head: on Video Games the "
                    "`b256-svd_pq-two-level-head` rows of \"Defaults over seeds\" (1,353 head items). The rows of this "
                    "table ran without a head (their variants pin `pq_dense_head: 0`); the svd_pq and svd_opq "
                    "rows were measured with flat k-means (their variants pin `pq_kmeans: flat`).", ""]


def seed_mean_lines(data: dict) -> list[str]:
    """benchmarks/defaults.py rows measured at several seeds: each seed's validation NDCG@10, the
    means, and the compressed rows' share of dense's mean; the default is picked on the mean
    validation NDCG@10 only."""
    lines = ["## Defaults over seeds", "",
             f"Written by `python benchmarks/defaults.py --dataset DATASET --epochs EPOCHS --seed SEED --json "
             f"docs/benchmarks/defaults_seeds.json` (CPU: {data.get('cpu', '?')}); code: "
             f"{', '.join(sorted({str(r.get('commit', '?')) for r in data['records']}))}. Rows as in the table above "
             "(RecBole's ranking; history excluded from the same checkpoint), each at every seed listed; "
             "% of dense: a row's mean test NDCG@10 over DenseSASRec's mean, both over the seeds they share "
             "(named when that is not all of the row's).", ""]
    for dataset, epochs in sorted({(r["dataset"], r["epochs"]) for r in data["records"]}):
        rows = [r for r in data["records"] if (r["dataset"], r["epochs"]) == (dataset, epochs)]
        variants = list(dict.fromkeys(r["variant"] for r in rows))
        seeds = sorted({r["seed"] for r in rows})
        by_variant = {v: sorted((r for r in rows if r["variant"] == v), key=lambda r: r["seed"]) for v in variants}
        mean = {v: {key: statistics.fmean(r[key] for r in group) for key in
                    ("valid_ndcg@10", "test_ndcg@10", "test_ndcg@10_history_excluded")}
                for v, group in by_variant.items()}
        dense_by_seed = {r["seed"]: r for r in by_variant.get("dense", [])}

        def share(group: list[dict], key: str) -> str:
            common = [r for r in group if r["seed"] in dense_by_seed]
            if not common:
                return ""
            ratio = statistics.fmean(r[key] for r in common) / statistics.fmean(dense_by_seed[r["seed"]][key]
                                                                                 for r in common)
            named = "" if len(common) == len(group) else f", seed {' / '.join(str(r['seed']) for r in common)}"
            return f"({100 * ratio:.0f}%{named})"
        lines += [f"**{dataset}**, {epochs} epochs, {rows[0]['n_items']:,} items, seeds "
                  f"{', '.join(map(str, seeds))}", "",
                  "| row | m | b | codes | item MB (× smaller) | seeds | valid NDCG@10 per seed | valid mean | "
                  "test mean (% of dense) | test, history excluded: mean (% of dense) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for variant, group in by_variant.items():
            first, values = group[0], mean[variant]
            codes = " ".join([first.get("code_assignment") or ""]
                             + (["two-level"] if first["overrides"].get("pq_kmeans") == "two_level" else [])
                             + (["unique"] if first["overrides"].get("unique_codes") else [])
                             + ([f"+ dense head {first['dense_head']}"] if first.get("dense_head") else []))
            mb = (f"{first['item_table_mb']:.3g} ({first['compression']:.1f}×)" if first["model"] != "DenseSASRec"
                  else f"{first['dense_item_table_mb']:.3g} (dense)")
            shares = [share(group, key) for key in ("test_ndcg@10", "test_ndcg@10_history_excluded")]
            lines.append(f"| {variant} | {first['pq_m'] or ''} | {first['pq_b'] or ''} | {codes} | {mb} | "
                         f"{', '.join(str(r['seed']) for r in group)} | "
                         f"{' / '.join(format(r['valid_ndcg@10'], '.4f') for r in group)} | "
                         f"{values['valid_ndcg@10']:.4f} | {values['test_ndcg@10']:.4f} {shares[0]} | "
                         f"{values['test_ndcg@10_history_excluded']:.4f} {shares[1]} |")
        complete = [v for v in variants if v != "dense" and len(by_variant[v]) == len(seeds)]
        if complete:
            best = max(complete, key=lambda v: mean[v]["valid_ndcg@10"])
            lines += ["", f"Best compressed row on mean validation NDCG@10 (every seed measured): `{best}`."]
        lines.append("")
    return lines


def _history_excluded_cell(row: dict, dense: dict | None) -> str:
    """Test NDCG@10 of a defaults row ranked without the history's items, and its share of dense's."""
    key = "test_ndcg@10_history_excluded"
    if key not in row:
        return ""
    share = f" ({100 * row[key] / dense[key]:.0f}%)" if dense and dense.get(key) else ""
    return f"{row[key]:.4f}{share}"


SIZE_ROWS = ("today", "auto-b", "auto-mb", "m2-auto-b")  # with svd codes  # benchmarks/defaults.py's table-size rows


def table_lines(dataset: str, protocol: str, rows: list[dict], heading_suffix: str) -> list[str]:
    """One table: the rows of a data set and protocol (one budget), with the target verdicts."""
    metrics = PROTOCOL_METRICS[protocol]
    budget = rows[0]["budget"]
    title = {"full": "full ranking",
             EXCLUDE_HISTORY: f"full ranking without the history's items ({EXCLUDE_HISTORY}, the papers' protocol)",
             "uni100": "100 sampled negatives (LISA's protocol)"}[protocol]
    lines = [f"## {dataset}: {title}{heading_suffix}", "",
             f"Budget: {budget['epochs']} epochs max, validation every {budget['eval_step']}, "
             f"early stop after {budget['stopping_step']} validations without gain, batch "
             f"{budget['train_batch_size']}, lr {budget['learning_rate']}, max sequence length "
             f"{budget['MAX_ITEM_LIST_LENGTH']}, seed {budget['seed']}.", "",
             "| model | " + " | ".join(metrics) + " | published | epochs | train s | item table MB | compression |",
             "|---|" + "---|" * (len(metrics) + 5)]
    for model in [s.name for s in specs_for(protocol)]:
        mine = {r["metric"]: r for r in rows if r["model"] == model}
        if not mine:
            continue
        first = next(iter(mine.values()))
        published = "; ".join(f"{m} {fmt(PUBLISHED[(dataset, model, m)][0])}" for m in metrics
                              if (dataset, model, m) in PUBLISHED) or "-"
        spec = spec_named(model, protocol)
        chosen = {k: v for k, v in (first.get("settings") or {}).items() if spec.config.get(k) != v}
        label = model + (" (" + ", ".join(f"{k}={v}" for k, v in chosen.items()) + ")" if chosen else "")
        lines.append(f"| {label} | " + " | ".join(fmt(mine[m]["value"]) if m in mine else "-" for m in metrics)
                     + f" | {published} | {first['epochs']} | {first['train_seconds']:.0f} | "
                     f"{first['item_table_mb']:.3f} | {first['compression']:.1f}x |")
    return lines + [""] + target_lines(rows) + [""]


def converged_under_patience(record: dict) -> bool:
    """Trained with ``--converge`` (validation every epoch) until the patience rule stopped it; a
    fixed-budget run that RecBole's early stop ended is not converged in this sense."""
    return bool(record.get("converged")) and record.get("budget", {}).get("eval_step") == 1


def selection_lines(probes: list[dict]) -> list[str]:
    """The probes (``--set``) behind DATASET_SETTINGS: one row per setting tried, validation only."""
    if not probes:
        return []
    lines = ["## Settings chosen on validation", "",
             "Probes written by `python benchmarks/quality.py --dataset <name> --models <model> --set KEY=VALUE`",
             "(same budget as the table; only validation metrics decide). Rule: the dense row takes the backbone",
             "(dropout, hidden size) with the best validation NDCG@10; its compressed twin keeps that backbone and",
             "takes the item-table settings with the best validation NDCG@10 among those at least 10x smaller than",
             "the dense table, so the two rows differ in the item table only.", "",
             "| dataset | model | settings | budget | valid ndcg@10 | compression | chosen |",
             "|---|---|---|---|---|---|---|"]
    seen = set()
    for r in sorted(probes, key=lambda r: (r["dataset"], r["model"])):
        key = record_key(r)
        if key in seen or not r.get("valid"):
            continue
        seen.add(key)
        spec = spec_named(r["model"], r["protocol"])
        chosen = {**spec.config, **DATASET_SETTINGS.get((r["dataset"], r["model"]), {})} == r["settings"]
        settings = ", ".join(f"{k}={v}" for k, v in r["settings"].items() if spec.config.get(k) != v) or "(spec's own)"
        budget = (f"converged ({r['epochs']} epochs)" if converged_under_patience(r)
                  else f"time limit ({r['epochs']} epochs)" if stop_reason(r) == "time limit"
                  else f"{r['budget']['epochs']} epoch{'s' if r['budget']['epochs'] != 1 else ''}")
        lines.append(f"| {r['dataset']} | {r['model']} | {settings} | {budget} | {fmt(r['valid']['ndcg@10'])} | "
                     f"{r['compression']:.1f}x | {'yes' if chosen else ''} |")
    return lines + [""]


def target_lines(rows: list[dict]) -> list[str]:
    value = {(r["model"], r["metric"]): r["value"] for r in rows}
    out = []
    for compressed, reference, metric, share in TARGETS:
        if (compressed, metric) in value and (reference, metric) in value:
            ratio = value[(compressed, metric)] / value[(reference, metric)] if value[(reference, metric)] else float("nan")
            verdict = "met" if ratio >= share else "**missed**"
            out.append(f"- Target {compressed} {metric} >= {share:.0%} of {reference}: {ratio:.1%} ({verdict}).")
    agree = [r for r in rows if r.get("scorers_agree") is not None]
    if agree:
        ok = all(r["scorers_agree"] for r in agree)
        models = sorted({r["model"] for r in agree})
        out.append(f"- PQTopK and default scoring give the same test top-k (identical metrics, or identical top-k "
                   f"scores where items share a code tuple) for {', '.join(models)}: "
                   f"{'yes (checked in the run)' if ok else '**no**'}.")
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=DATASETS)
    parser.add_argument("--protocol", choices=("full", "uni100", "all", EXCLUDE_HISTORY), default="all",
                        help=f"all: full and uni100 (RecBole's protocols); {EXCLUDE_HISTORY}: full ranking without "
                             "the history's items (the RecJPQ / gSASRec papers' protocol)")
    parser.add_argument("--models", nargs="*", help="names as in the JSON (default: all of the protocol)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs (with --converge: the cap)")
    parser.add_argument("--converge", type=int, metavar="PATIENCE",
                        help="train until validation NDCG@10 has not improved for PATIENCE validations (one per "
                             "epoch), at most --epochs; records the whole validation curve")
    parser.add_argument("--eval-step", type=int, default=2)
    parser.add_argument("--stopping-step", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--eval-batch-size", type=int, default=1024)
    parser.add_argument("--learning-rate", type=float, default=0.001)
    parser.add_argument("--max-seq-length", type=int, help="default: 200 for ml-1m and ml-100k, 50 for video-games")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--hours", type=float, metavar="H",
                        help="stop each row after its first epoch that starts past H hours of this command (0: "
                             "evaluate a stopped row at once); the row is recorded unconverged "
                             "(stopped_by 'time limit') and the same command with --force resumes it")
    parser.add_argument("--force", action="store_true", help="re-run models that already have records")
    parser.add_argument("--json", type=Path, default=JSON_DEFAULT)
    parser.add_argument("--md", type=Path, default=MD_DEFAULT)
    parser.add_argument("--render", action="store_true", help="only re-render the markdown from the JSON")
    parser.add_argument("--progress", type=Path, metavar="JSON",
                        help="only write the rows' validation curves so far (finished and in progress) to JSON + PNG")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="probe a setting (e.g. pq_m=4) for choosing it on validation; the records go to "
                             "--json (default then docs/benchmarks/quality_selection.json), never to the quality table")
    parser.add_argument("--rank-with-history", action="store_true",
                        help=f"with --protocol {EXCLUDE_HISTORY}: rank the finished rows' best checkpoints with the "
                             "history kept (RecBole's protocol, 'full') instead of training them again")
    parser.add_argument("--longer", action="store_true",
                        help="a budget beyond the tables' (e.g. --epochs 30 for a pair of models): the records go to "
                             "--json (default then docs/benchmarks/quality_long.json) and their own section of the "
                             "markdown, never into the equal-budget tables")
    args = parser.parse_args(argv)
    args.overrides = parse_overrides(parser, args.overrides)
    if args.converge is not None:
        if args.converge < 1:
            parser.error(f"--converge {args.converge}: the patience must be >= 1 validations")
        args.eval_step, args.stopping_step = 1, args.converge
    # The markdown always shows the equal-budget tables and the longer-budget sections.
    args.long_json = LONG_JSON
    if args.longer:
        if args.json == JSON_DEFAULT:
            args.json = LONG_JSON
        args.long_json = args.json
    elif args.converge is None and not args.overrides and not args.rank_with_history and args.json == JSON_DEFAULT:
        args.json = FIXED_JSON  # a fixed budget never mixes with the converged rows
    if args.overrides:
        if args.json == JSON_DEFAULT:
            args.json = SELECTION_JSON
        args.md = None
    if not args.dataset and not args.render:
        parser.error("--dataset is required (or --render)")
    if args.rank_with_history and args.protocol != EXCLUDE_HISTORY:
        parser.error(f"--rank-with-history ranks rows trained under --protocol {EXCLUDE_HISTORY}, "
                     f"not {args.protocol}")
    known = {s.name for s in SPECS}
    unknown = sorted(set(args.models or []) - known)
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(s.name for s in SPECS)}")
    return args


def probe_records(key: tuple, budget: dict) -> list[dict]:
    """The selection probe's records for this (dataset, protocol, model, settings) and budget."""
    return [r for r in load_records(SELECTION_JSON) if record_key(r) == key and r["budget"] == budget]


def parse_overrides(parser, items: list[str]) -> dict:
    """``KEY=VALUE`` strings -> dict; values read as YAML scalars (``4`` -> 4, ``svd`` -> 'svd')."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--set {item!r}: expected KEY=VALUE, e.g. --set pq_m=4")
        out[key] = yaml.safe_load(value)
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    specs = [s for s in specs_for(args.protocol) if not args.models or s.name in args.models]
    records = load_records(args.json)
    if args.render:
        write_markdown(args)
        return
    if args.progress:
        data = progress(specs, args)
        args.progress.write_text(json.dumps(data, indent=1) + "\n")
        plot_progress(data, args.progress.with_suffix(".png"))
        print(f"wrote {args.progress} ({len(data['rows'])} rows)")
        return
    if args.rank_with_history:
        rank_finished_with_history(specs, records, args)
        return
    done = {record_key(r) for r in records}
    for spec in specs:
        key = (args.dataset, spec.protocol, spec.name, settings_key(row_settings(spec, args.dataset, args.overrides)))
        if key in done and not args.force:  # a row whose settings changed since is re-run
            print(f"[{spec.name}] already in {args.json}; skipped (--force re-runs it)", flush=True)
            continue
        adopted = [] if args.overrides else probe_records(key, budget_config(args))
        if adopted:  # the probe that chose this setting ran this very row: it is not trained twice
            print(f"[{spec.name}] taken from the probe of the same settings and budget in {SELECTION_JSON}", flush=True)
            new = adopted
        else:
            print(f"[{spec.name}] training on {args.dataset} ({spec.protocol})", flush=True)
            new = train_one(spec, args.dataset, args)
        print(f"[{spec.name}] " + ", ".join(f"{r['metric']}={r['value']}" for r in new)
              + f" in {new[0]['train_seconds']} s", flush=True)
        save_records(args.json, new, by_settings=bool(args.overrides))
        if args.md:
            write_markdown(args)


def rank_finished_with_history(specs: list[Spec], records: list[dict], args) -> None:
    """``--rank-with-history``: a ``full`` row from each finished row of the papers' protocol."""
    for spec in specs:
        source = next((r for r in records if (r["dataset"], r["protocol"], r["model"], r["metric"])
                       == (args.dataset, EXCLUDE_HISTORY, spec.name, "ndcg@10")), None)
        if source is None:
            print(f"[{spec.name}] not finished under {EXCLUDE_HISTORY} in {args.json}; skipped", flush=True)
            continue
        new = rank_with_history(spec, args.dataset, args, source)
        print(f"[{spec.name}] full (history kept): " + ", ".join(f"{r['metric']}={r['value']}" for r in new), flush=True)
        save_records(args.json, new)
    if args.md:
        write_markdown(args)


def write_markdown(args) -> None:
    """The project's JSON files render both pages: QUALITY.md from the converged rows and, beside
    it, QUALITY_DETAILS.md from the fixed-budget ones.  Another --json renders its own page: as
    the converged summary for --converge runs, as the fixed-budget tables otherwise."""
    pareto = json.loads(PARETO_JSON.read_text()) if PARETO_JSON.is_file() else None
    details_md = args.md.with_name(DETAILS_MD.name)
    if args.json in (JSON_DEFAULT, FIXED_JSON, LONG_JSON):
        args.md.write_text(render_summary(load_records(JSON_DEFAULT), pareto))
        details_md.write_text(render_details(load_records(FIXED_JSON), load_records(args.long_json)))
    elif args.converge is not None or args.rank_with_history:
        args.md.write_text(render_summary(load_records(args.json)))
    else:
        args.md.write_text(render_details(load_records(args.json), load_records(args.long_json)))


if __name__ == "__main__":
    main()
