"""benchmarks/train_curves.py: per-epoch loss of quality rows, with their own settings."""

import json
import math
import sys

import recbole_pq.data.paths

sys.path.insert(0, str(recbole_pq.data.paths.PROJECT_ROOT))
from benchmarks.train_curves import main, merge  # noqa: E402


def test_curves_keep_each_rows_settings_and_a_loss_per_epoch(tmp_path):
    out = tmp_path / "curves.json"
    main(["--dataset", "ml-100k", "--models", "SASRec", "SASRecJPQ-svd", "--epochs", "2",
          "--set", "hidden_size=16", "--set", "MAX_ITEM_LIST_LENGTH=20", "--json", str(out)])
    records = {r["model"]: r for r in json.loads(out.read_text())}
    assert set(records) == {"SASRec", "SASRecJPQ-svd"}
    assert records["SASRecJPQ-svd"]["settings"]["code_assignment"] == "svd"
    assert records["SASRecJPQ-svd"]["run_model"] == "SASRecJPQ"
    for record in records.values():
        losses = record["mean_batch_loss"]
        assert len(losses) == 2 and record["batches_per_epoch"] > 0
        # a mean per batch of the softmax cross-entropy: near log(#items) after one epoch
        # (a per-position sum or a per-epoch total would be far off)
        assert abs(losses[0] - math.log(1683)) < 1.0
        assert 0 <= record["valid"]["ndcg@10"] <= record["valid"]["recall@10"] <= 1


def test_a_rerun_replaces_its_record_and_keeps_the_others():
    old = [{"dataset": "ml-1m", "model": "SASRec", "epochs": 4, "v": 1},
           {"dataset": "ml-1m", "model": "SASRecJPQ-svd", "epochs": 4, "v": 1}]
    merged = merge(old, {"dataset": "ml-1m", "model": "SASRec", "epochs": 4, "v": 2})
    assert sorted((r["model"], r["v"]) for r in merged) == [("SASRec", 2), ("SASRecJPQ-svd", 1)]
