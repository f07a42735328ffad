"""Training-step time with the tied softmax cross-entropy vs torch's on materialised logits.

    python benchmarks/training_step.py [--dataset ml-1m] [--models DenseSASRec SASRecJPQ]
                                       [--steps 8] [--json docs/benchmarks/training_step.json]

One step = forward, CE loss over every position, backward and Adam, on real batches of the
data set (seq2seq rows, batch 128, the models' defaults).  ``fused`` is the models' loss
(``recbole_pq.losses.softmax_cross_entropy``); ``materialised`` is the former one:
``logits = states @ items.T``, padding column at -inf, ``F.cross_entropy``.  The two are
timed alternately on the same batches in one process, so the ratio is taken within one run.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import recbole_pq.models.base as model_base  # noqa: E402
from recbole_pq.losses import softmax_cross_entropy  # noqa: E402
from recbole_pq.pipeline import setup  # noqa: E402


def materialised_cross_entropy(query, table, targets):
    logits = query @ table.T
    logits[:, 0] = float("-inf")
    return F.cross_entropy(logits, targets)


LOSSES = {"fused": softmax_cross_entropy, "materialised": materialised_cross_entropy}


def measure(model_name: str, dataset: str, steps: int, max_seq_length: int | None) -> list[dict]:
    settings = {"epochs": 1, "state": "WARNING", "seed": 2020, "reproducibility": True}
    if max_seq_length:
        settings["MAX_ITEM_LIST_LENGTH"] = max_seq_length
    config, (train, _, _), model, _ = setup(model_name, dataset, config_dict=settings)
    batches = [b for _, b in zip(range(steps + 1), train)]
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
    model.train()
    times: dict[str, list[float]] = {name: [] for name in LOSSES}
    for index, batch in enumerate(batches):
        order = list(LOSSES.items())
        if index % 2:  # alternate who goes first: both see the same load and allocator state
            order.reverse()
        for name, loss_fn in order:
            model_base.softmax_cross_entropy = loss_fn
            start = time.perf_counter()
            optimizer.zero_grad()
            model.calculate_loss(batch).backward()
            optimizer.step()
            if index:  # the first batch warms up both
                times[name].append(time.perf_counter() - start)
    model_base.softmax_cross_entropy = softmax_cross_entropy
    positions = int((batches[0][model.TARGET_SEQ] > 0).sum())
    return [{"model": model_name, "dataset": dataset, "loss": name, "batch_users": config["train_batch_size"],
             "max_seq_length": config["MAX_ITEM_LIST_LENGTH"], "n_items": model.n_items,
             "positions_first_batch": positions, "steps": len(t),
             "median_step_ms": round(1000 * statistics.median(t), 1)} for name, t in times.items()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--models", nargs="+", default=["DenseSASRec", "SASRecJPQ"])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--max-seq-length", type=int)
    parser.add_argument("--json", type=Path, default=Path("docs/benchmarks/training_step.json"))
    args = parser.parse_args(argv)
    records = [r for name in args.models for r in measure(name, args.dataset, args.steps, args.max_seq_length)]
    out = {"command": "python benchmarks/training_step.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "machine": f"{platform.processor() or platform.machine()}, torch threads={torch.get_num_threads()}",
           "records": records}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    for name in args.models:
        by_loss = {r["loss"]: r["median_step_ms"] for r in records if r["model"] == name}
        print(f"{name}: fused {by_loss['fused']} ms/step, materialised {by_loss['materialised']} ms/step "
              f"({by_loss['materialised'] / by_loss['fused']:.2f}x)")
    print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
