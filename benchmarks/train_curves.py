"""Training-loss curves of quality-table rows, epoch by epoch, in one run.

    python benchmarks/train_curves.py --dataset ml-1m --models SASRec SASRecJPQ-svd --epochs 4
                                      [--json docs/benchmarks/train_curves.json]

Answers "does the compressed model train more slowly, or does it fit less?": each row
trains with exactly the settings and budget of its ``benchmarks/quality.py`` row (its
validation-chosen settings of benchmarks/quality_settings.yaml included) for exactly ``--epochs`` epochs, and the record
keeps the mean training loss of every epoch and the validation metrics after the last.
The loss is the models' shared tied softmax cross-entropy, so rows of one data set
compare directly.  Appends to (replaces the same dataset x model x epochs in) the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.quality import (DATASETS, SPECS, budget_config, metric_values, parse_overrides,  # noqa: E402
                                row_settings)
from benchmarks.quality import parse_args as quality_args  # noqa: E402

JSON_DEFAULT = ROOT / "docs" / "benchmarks" / "train_curves.json"


def train_curve(spec, dataset: str, budget: dict, overrides: dict) -> dict:
    """Train one quality row for ``budget['epochs']`` epochs: its per-epoch mean batch loss
    and its validation metrics at the end (no early stopping, no checkpoint)."""
    from recbole_pq.pipeline import setup

    settings = row_settings(spec, dataset, overrides)
    config_dict = {**budget, **settings}
    _, (train, valid, _), _, trainer = setup(spec.model, dataset, spec.config_file_paths(), config_dict)
    losses = []
    start = time.perf_counter()
    for epoch in range(budget["epochs"]):
        total = trainer._train_epoch(train, epoch, show_progress=False)
        total = sum(total) if isinstance(total, tuple) else total  # RecBole returns a tuple for multi-part losses
        losses.append(round(float(total) / len(train), 4))
    seconds = time.perf_counter() - start
    _, valid_result = trainer._valid_epoch(valid, show_progress=False)
    return {
        "dataset": dataset, "model": spec.name, "run_model": spec.model, "protocol": spec.protocol,
        "settings": settings, "epochs": budget["epochs"], "batches_per_epoch": len(train),
        "mean_batch_loss": losses, "valid": metric_values(valid_result, spec.protocol),
        "train_seconds": round(seconds, 1),
    }


def merge(records: list[dict], new: dict) -> list[dict]:
    key = (new["dataset"], new["model"], new["epochs"])
    return [r for r in records if (r["dataset"], r["model"], r["epochs"]) != key] + [new]


def save(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--models", nargs="+", required=True, help="names as in benchmarks/quality.py")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--max-seq-length", type=int, help="default: the quality run's for the data set")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra settings for every row (e.g. hidden_size=16 for a smoke run)")
    parser.add_argument("--json", type=Path, default=JSON_DEFAULT)
    args = parser.parse_args(argv)
    specs = {s.name: s for s in SPECS}
    unknown = [m for m in args.models if m not in specs]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(specs)}")
    overrides = parse_overrides(parser, args.overrides)
    # quality.py's shared budget (its defaults), run for exactly --epochs: no validation before the end
    length = ["--max-seq-length", str(args.max_seq_length)] if args.max_seq_length else []
    budget = budget_config(quality_args(["--dataset", args.dataset, "--epochs", str(args.epochs),
                                         "--eval-step", str(args.epochs), *length]))
    records = json.loads(args.json.read_text()) if args.json.is_file() else []
    for name in args.models:
        record = train_curve(specs[name], args.dataset, budget, overrides)
        print(f"[{name}] loss per epoch {record['mean_batch_loss']}, valid {record['valid']}, "
              f"{record['train_seconds']} s", flush=True)
        records = merge(records, record)
        save(args.json, records)  # after each row: a long run keeps what it has measured
    print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
