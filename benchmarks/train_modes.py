"""Epoch time of seq2seq training vs RecBole's prefix augmentation (SASRecJPQ, ml-100k).

    python benchmarks/train_modes.py [--epochs 2] [--json docs/benchmarks/train_modes.json]

Both modes train the same model on the same split; the ratio is taken within one run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from recbole_pq.pipeline import setup  # noqa: E402

MODES = {"seq2seq": {"train_batch_size": 128}, "prefix": {"train_batch_size": 256}}


def measure(mode: str, epochs: int, dataset: str) -> dict:
    settings = {"train_mode": mode, "epochs": epochs, "state": "WARNING", **MODES[mode]}
    config, (train, valid, _), _, trainer = setup("SASRecJPQ", dataset, config_dict=settings)
    times = []
    for epoch in range(epochs):
        start = time.perf_counter()
        trainer._train_epoch(train, epoch)
        times.append(time.perf_counter() - start)
    valid_result = trainer.evaluate(valid, load_best_model=False)
    return {"train_mode": mode, "dataset": dataset, "rows_per_epoch": len(train.dataset),
            "batches_per_epoch": len(train), "train_batch_size": settings["train_batch_size"],
            "epoch_seconds": times, "median_epoch_seconds": sorted(times)[len(times) // 2],
            f"valid_ndcg@10_after_{epochs}_epochs": float(valid_result["ndcg@10"])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--json", type=Path, default=Path("docs/benchmarks/train_modes.json"))
    args = parser.parse_args(argv)
    records = [measure(mode, args.epochs, args.dataset) for mode in MODES]
    ratio = records[1]["median_epoch_seconds"] / records[0]["median_epoch_seconds"]
    out = {"command": "python benchmarks/train_modes.py " + " ".join(argv or sys.argv[1:]),
           "machine": f"{platform.processor() or platform.machine()}, torch threads={torch.get_num_threads()}",
           "records": records, "prefix_over_seq2seq_epoch_time": ratio}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2))
    for r in records:
        print(f"{r['train_mode']:8s} rows={r['rows_per_epoch']:6d} epoch={r['median_epoch_seconds']:.2f}s")
    print(f"prefix / seq2seq epoch time: {ratio:.1f}x  -> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
