"""LISA's item codes, learned vs assigned before training: churn, collapse and accuracy.

    python benchmarks/lisa_codes.py --dataset ml-100k --epochs 6

Trains SASRecLISA (base, LISA's uni100 protocol) once per ``lisa_codes`` value with the
same seed and budget and, after every epoch, records the validation NDCG@10 / HR@10, the
share of items whose codes changed since the previous epoch (churn) and the largest share
of items on one codeword of the first codebook (collapse).  Fixed codes (svd, random)
never change, by construction; learned codes are re-picked from learned item vectors.
Writes ``docs/benchmarks/lisa_codes.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def code_stats(codes: torch.Tensor, previous: torch.Tensor | None) -> dict:
    """(N, B) codes of the real items -> churn vs ``previous`` and codebook-0 collapse."""
    first = torch.bincount(codes[:, 0].long())
    return {"changed_share": None if previous is None else round((codes != previous).any(1).float().mean().item(), 4),
            "top_codeword_share": round(first.max().item() / len(codes), 4)}


def train(dataset: str, lisa_codes: str, epochs: int, variant: str, max_seq_length: int | None) -> list[dict]:
    from recbole_pq.pipeline import setup

    settings = {"lisa_variant": variant, "lisa_codes": lisa_codes, "epochs": epochs, "state": "WARNING",
                "show_progress": False}
    if max_seq_length:
        settings["MAX_ITEM_LIST_LENGTH"] = max_seq_length
    # The epoch loop saves nothing, but RecBole's trainer creates its checkpoint folder.
    with tempfile.TemporaryDirectory() as checkpoint_dir:
        _, (train_data, valid_data, _), model, trainer = setup(
            "SASRecLISA", dataset, [str(ROOT / "properties" / "protocol" / "uni100.yaml")],
            {**settings, "checkpoint_dir": checkpoint_dir})
    rows, previous = [], None
    for epoch in range(epochs):
        start = time.perf_counter()
        trainer._train_epoch(train_data, epoch, show_progress=False)
        seconds = time.perf_counter() - start
        result = trainer.evaluate(valid_data, load_best_model=False, show_progress=False)
        model.eval()
        codes = model.items.codes[1:].clone()  # padding excluded
        rows.append({"dataset": dataset, "variant": variant, "lisa_codes": lisa_codes, "epoch": epoch + 1,
                     "train_seconds": round(seconds, 1), "valid_ndcg@10": float(result["ndcg@10"]),
                     "valid_hit@10": float(result["hit@10"]), **code_stats(codes, previous)})
        previous = codes
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--variant", default="base", choices=["base", "mini"])
    parser.add_argument("--codes", nargs="+", default=["learned", "random", "svd"])
    parser.add_argument("--max-seq-length", type=int, help="default: the data set's MAX_ITEM_LIST_LENGTH")
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "benchmarks" / "lisa_codes.json")
    args = parser.parse_args(argv)
    rows = [row for codes in args.codes for row in train(args.dataset, codes, args.epochs, args.variant, args.max_seq_length)]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
