"""End-to-end response time per user: backbone + scoring (the PQTopK paper's Table 2 analogue).

    python benchmarks/response_time.py [--users 20]

SASRecJPQ and gBERT4RecJPQ (d = 64, m = 8, b = 256, history of 50 items, 2 threads) with
catalogues the size of Gowalla (1,271,638 items) and Booking.com (34,742 items), synthetic
uniform codes and untrained weights (timing does not depend on training, except for
``prune``, whose gain needs trained tables: see docs/PERFORMANCE.md).  One user per
request; median over users of the median of 3.  Writes docs/benchmarks/response_time.json
and response_time.md.
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

CATALOGUES = {"gowalla-size": 1_271_638, "booking-size": 34_742}
SCORERS = [("default", "auto"), ("recjpq", "auto"), ("pqtopk", "torch"), ("pqtopk", "numba"), ("prune", "auto")]


def build(model_name: str, n_items: int):
    """A model of the real architecture whose item table holds n_items synthetic items."""
    import numpy as np

    from recbole_pq.items.sub_item_table import ItemCodeEmbedding
    from recbole_pq.pipeline import setup

    _, (_, _, test), model, _ = setup(model_name, "ml-100k", config_dict={
        "state": "WARNING", "MAX_ITEM_LIST_LENGTH": 50, "neg_samples": 16,
        "checkpoint_dir": str(ROOT / "saved" / "response-time")})
    codes = np.random.default_rng(0).integers(0, 256, size=(n_items, 8), dtype=np.uint8)
    model.items = ItemCodeEmbedding(codes, 256, model.items.dim)  # the history's ids stay < ml-100k's count
    model.eval()
    return model, next(iter(test))[0]


def main(argv=None) -> int:
    import torch

    from recbole_pq.items.scoring import make_scorer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "response_time")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    records = []
    for model_name in ("SASRecJPQ", "gBERT4RecJPQ"):
        for catalogue, n_items in CATALOGUES.items():
            model, batch = build(model_name, n_items)
            for name, backend in SCORERS:
                model.scorer = make_scorer(name, backend=backend)
                per_user, backbone = [], []
                with torch.no_grad():
                    for u in range(args.users):
                        seq, length = batch[model.ITEM_SEQ][u:u + 1], batch[model.ITEM_SEQ_LEN][u:u + 1]
                        model.scorer.topk(model.forward(seq, length), model.items, 10)  # warm-up
                        runs, enc = [], []
                        for _ in range(3):
                            start = time.perf_counter()
                            query = model.forward(seq, length)
                            middle = time.perf_counter()
                            model.scorer.topk(query, model.items, 10)
                            runs.append(time.perf_counter() - start)
                            enc.append(middle - start)
                        per_user.append(statistics.median(runs))
                        backbone.append(statistics.median(enc))
                label = name if name != "pqtopk" else f"pqtopk ({backend})"
                record = {"model": model_name, "catalogue": catalogue, "n_items": n_items, "scorer": label,
                          "ms_per_user": 1000 * statistics.median(per_user),
                          "backbone_ms": 1000 * statistics.median(backbone), "users": args.users}
                print(json.dumps(record), flush=True)
                records.append(record)
    command = "python benchmarks/response_time.py " + " ".join(argv if argv is not None else sys.argv[1:])
    args.out.with_suffix(".json").write_text(json.dumps({"command": command, "records": records}, indent=1))
    lines = ["# Response time per user (backbone + top-10 scoring)", "",
             f"Command: `{command}`; 2 threads; d = 64, m = 8, b = 256, 50-item histories; synthetic codes, untrained "
             "weights (`prune` therefore falls back to the scan here). Median over users, ms.", "",
             "| model | catalogue | items | " + " | ".join(r["scorer"] for r in records[:len(SCORERS)]) +
             " | backbone alone |", "|---|---|---|" + "---|" * (len(SCORERS) + 1)]
    for model_name in ("SASRecJPQ", "gBERT4RecJPQ"):
        for catalogue, n_items in CATALOGUES.items():
            rows = [r for r in records if r["model"] == model_name and r["catalogue"] == catalogue]
            lines.append(f"| {model_name} | {catalogue} | {n_items:,} | " +
                         " | ".join(f"{r['ms_per_user']:.2f}" for r in rows) +
                         f" | {statistics.median(r['backbone_ms'] for r in rows):.2f} |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out.with_suffix('.json')} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
