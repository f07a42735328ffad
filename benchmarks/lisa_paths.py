"""LISA's two exact attention paths in training: codeword histograms vs pairwise.

    python benchmarks/lisa_paths.py [--dataset video-games] [--lisa-B 16] [--steps 6]
                                    [--json docs/benchmarks/lisa_paths.json]

With fixed hard codes (``lisa_codes: svd``/``random``, variant base) the attention can
run over (N, L, B, W) codeword histograms, O(L B W D), or pairwise over the visible
positions, O(L^2 B D) (``recbole_pq.layers.lisa.attention_context`` takes the pairwise
path when L < W).  Two measurements, each timing the two paths alternately on the same
inputs in one process (who goes first swaps every repeat), so the ratios are taken
within one run:

- layer: one CodewordHistogramAttention forward + backward, B x W = 16 x 256, D = 64,
  6,400 positions per batch (N = 6400 / L), L from 25 to 400;
- model: SASRecLISA-base training steps (forward, loss, backward, Adam) on real batches
  of ``--dataset`` at its quality-run sequence length, the path forced each way.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import recbole_pq.models.sasrec_lisa as sasrec_lisa  # noqa: E402
from recbole_pq.layers.lisa import CodewordHistogramAttention, attention_context  # noqa: E402
from recbole_pq.pipeline import setup  # noqa: E402
from benchmarks.quality import MAX_SEQ_LENGTH  # noqa: E402

TOKENS = 6400
LENGTHS = (25, 50, 100, 200, 400)


CONTEXTS = {path: functools.partial(attention_context, path=path) for path in ("histogram", "pairwise")}


def _alternate(run, repeats: int) -> dict[str, float]:
    """Median seconds of ``run(path)`` per path; the first round warms both up."""
    times: dict[str, list[float]] = {name: [] for name in CONTEXTS}
    for index in range(repeats + 1):
        order = list(CONTEXTS) if index % 2 == 0 else list(reversed(CONTEXTS))
        for name in order:
            start = time.perf_counter()
            run(name)
            if index:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def measure_layer(length: int, books: int, words: int, dim: int, repeats: int, gamma: float) -> list[dict]:
    torch.manual_seed(0)
    batch = max(1, TOKENS // length)
    attention = CodewordHistogramAttention(books, dim)
    codebooks = torch.randn(books, words, dim, requires_grad=True)
    lengths = torch.randint(1, length + 1, (batch,))
    present = torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)
    codes = torch.randint(0, words, (batch, length, books))
    assignments = F.one_hot(codes, words).float() * present[..., None, None]

    def run(name):
        histograms, pairs = CONTEXTS[name](assignments, codes, gamma=gamma)
        attention(assignments, histograms, codebooks, codes, pair_log_weights=pairs).sum().backward()

    seconds = _alternate(run, repeats)
    return [{"kind": "layer", "path": name, "length": length, "batch": batch, "B": books, "W": words, "dim": dim,
             "median_ms": round(1000 * s, 2)} for name, s in seconds.items()]


def measure_model(dataset: str, books: int, steps: int) -> list[dict]:
    settings = {"epochs": 1, "state": "WARNING", "seed": 2020, "reproducibility": True, "lisa_variant": "base",
                "lisa_codes": "svd", "lisa_B": books, "MAX_ITEM_LIST_LENGTH": MAX_SEQ_LENGTH.get(dataset, 200)}
    config, (train, _, _), model, _ = setup("SASRecLISA", dataset, config_dict=settings)
    batches = [b for _, b in zip(range(steps), train)]
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
    model.train()
    state = {"batch": 0}

    def run(name):
        sasrec_lisa.attention_context = CONTEXTS[name]
        optimizer.zero_grad()
        model.calculate_loss(batches[state["batch"] % len(batches)]).backward()
        optimizer.step()

    times: dict[str, list[float]] = {name: [] for name in CONTEXTS}
    try:
        for index in range(len(batches) + 1):
            state["batch"] = index
            seconds = _alternate(run, 1)
            if index:  # the first batch warms up both
                for name, s in seconds.items():
                    times[name].append(s)
    finally:
        sasrec_lisa.attention_context = attention_context
    return [{"kind": "model", "path": name, "dataset": dataset, "length": config["MAX_ITEM_LIST_LENGTH"],
             "batch": config["train_batch_size"], "B": books, "W": config["lisa_W"], "dim": config["hidden_size"],
             "n_items": model.n_items, "median_ms": round(1000 * statistics.median(t), 1)}
            for name, t in times.items()]


def summary_lines(records: list[dict]) -> list[str]:
    """One line per (kind, L): both paths' medians and their ratio."""
    lines = []
    for kind, length in sorted({(r["kind"], r["length"]) for r in records}):
        ms = {r["path"]: r["median_ms"] for r in records if r["kind"] == kind and r["length"] == length}
        lines.append(f"{kind} L={length}: histogram {ms['histogram']} ms, pairwise {ms['pairwise']} ms "
                     f"({ms['histogram'] / ms['pairwise']:.2f}x)")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="video-games")
    parser.add_argument("--lisa-B", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("docs/benchmarks/lisa_paths.json"))
    args = parser.parse_args(argv)
    records = [r for length in LENGTHS
               for r in measure_layer(length, args.lisa_B, 256, 64, args.repeats, gamma=math.exp(-0.3))]
    records += measure_model(args.dataset, args.lisa_B, args.steps)
    out = {"command": "python benchmarks/lisa_paths.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "machine": f"{platform.processor() or platform.machine()}, torch threads={torch.get_num_threads()}",
           "records": records}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print("\n".join(summary_lines(records)) + f"\n-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
