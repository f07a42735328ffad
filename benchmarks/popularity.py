"""The popularity floor of a quality table: RecBole's ``Pop`` on the same split.

    python benchmarks/popularity.py --dataset ml-1m

Pop ranks items by their training-set count, with each user's history masked, under the
same leave-one-out-by-time, full-ranking protocol as ``benchmarks/quality.py``'s ``full``
tables (properties/overall.yaml + the data set's YAML).  A sequential model below this
line has not yet learned more than item popularity.  Prints the validation and test
NDCG@10 / Recall@10 / HR@10.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-1m", choices=["ml-1m", "video-games"])
    args = parser.parse_args(argv)

    import recbole_pq.compat  # noqa: F401  (RecBole's numpy-2 shims, applied on import)
    from recbole.quick_start import run_recbole
    from recbole_pq.data import check_dataset_files

    check_dataset_files(args.dataset, str(ROOT / "dataset" / args.dataset))
    with tempfile.TemporaryDirectory() as saved:
        result = run_recbole(
            model="Pop", dataset=args.dataset,
            config_file_list=[str(ROOT / "properties" / "overall.yaml"),
                              str(ROOT / "properties" / "dataset" / f"{args.dataset}.yaml")],
            config_dict={"epochs": 1, "data_path": str(ROOT / "dataset"), "checkpoint_dir": saved,
                         "state": "WARNING", "show_progress": False},
        )
    for split in ("best_valid_result", "test_result"):
        metrics = result[split]
        print(f"Pop {args.dataset} {split.split('_')[-2]}: "
              + ", ".join(f"{name} {float(metrics[name]):.4f}" for name in ("ndcg@10", "recall@10", "hit@10")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
