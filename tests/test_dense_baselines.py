"""The dense baselines of the quality comparison: DenseSASRec and RecBole's BERT4Rec on
one row per user, and the quality benchmark's records."""

import json
import sys

import pytest

from recbole_pq.errors import ConfigError
from recbole_pq.pipeline import build_config, run, setup


def test_dense_sasrec_trains_and_has_a_dense_table(ml1m_slice, fast_settings):
    config, _, model, _ = setup("DenseSASRec", "ml-1m", config_dict={**fast_settings, "data_path": str(ml1m_slice)})
    assert config["train_mode"] == "seq2seq"
    assert model.items.weight.shape == (model.n_items, fast_settings["hidden_size"])
    result = run("DenseSASRec", "ml-1m", config_dict={**fast_settings, "data_path": str(ml1m_slice)})
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0


def test_dense_sasrec_refuses_pq_scorers():
    with pytest.raises(ConfigError, match="scorer='pqtopk'.*dense"):
        build_config("DenseSASRec", "ml-100k", config_dict={"scorer": "pqtopk"})


def test_recbole_bert4rec_trains_on_one_row_per_user(ml1m_slice, fast_settings):
    settings = {**fast_settings, "data_path": str(ml1m_slice), "train_mode": "seq2seq"}
    _, (train, _, _), _, _ = setup("BERT4Rec", "ml-1m", config_dict=settings)
    assert len(train.dataset) == 60  # one row per user, not one per interaction
    result = run("BERT4Rec", "ml-1m", config_dict=settings)
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0


def test_quality_benchmark_writes_records_and_asserts_scorers(tmp_path, monkeypatch):
    sys.path.insert(0, str(__import__("recbole_pq").data.PROJECT_ROOT))
    from benchmarks import quality

    monkeypatch.setattr(quality, "ROOT", tmp_path)  # checkpoints go under tmp_path/saved
    selection = tmp_path / "selection.json"
    monkeypatch.setattr(quality, "SELECTION_JSON", selection)
    monkeypatch.setattr(quality, "LONG_JSON", tmp_path / "long.json")
    out, md = tmp_path / "q.json", tmp_path / "Q.md"
    argv = ["--dataset", "ml-100k", "--models", "SASRec", "SASRecJPQ-svd", "--epochs", "1",
            "--max-seq-length", "20", "--json", str(out), "--md", str(md)]
    quality.main(argv)
    records = json.loads(out.read_text())
    assert {r["model"] for r in records} == {"SASRec", "SASRecJPQ-svd"}
    assert {r["metric"] for r in records} == {"ndcg@10", "recall@10", "hit@10"}
    for r in records:
        assert {"dataset", "protocol", "model", "metric", "value", "epochs", "train_seconds", "item_table_mb"} <= set(r)
        assert r["dataset"] == "ml-100k" and r["protocol"] == "full" and r["epochs"] == 1
    jpq = next(r for r in records if r["model"] == "SASRecJPQ-svd")
    dense = next(r for r in records if r["model"] == "SASRec")
    assert jpq["scorers_agree"] is True and jpq["item_table_mb"] < dense["item_table_mb"]
    assert "| SASRecJPQ-svd |" in md.read_text()
    quality.main(argv)  # resumable: a second run skips what is done
    assert json.loads(out.read_text()) == records

    # A probe (--set) goes to the selection file only, with its settings and validation metrics.
    quality.main(argv[:-4] + ["--models", "SASRecJPQ-svd", "--set", "pq_m=4"])
    assert json.loads(out.read_text()) == records and "pq_m=4" not in md.read_text()
    probe = json.loads(selection.read_text())
    assert {r["metric"] for r in probe} == {"ndcg@10", "recall@10", "hit@10"}
    assert all(r["settings"] == {"code_assignment": "svd", "pq_m": 4} for r in probe)
    assert all(set(r["valid"]) == {"ndcg@10", "recall@10", "hit@10"} for r in probe)
    assert probe[0]["compression"] > jpq["compression"]  # 4 codes per item instead of 8

    # Choosing that setting makes the stored row stale; the probe of the same budget becomes the row.
    monkeypatch.setitem(quality.DATASET_SETTINGS, ("ml-100k", "SASRecJPQ-svd"), {"pq_m": 4})
    monkeypatch.setattr(quality, "train_one", lambda *a: pytest.fail("the probe's row was trained again"))
    quality.main(argv)
    rows = json.loads(out.read_text())
    assert sorted((r["model"], r["metric"]) for r in rows) == sorted((r["model"], r["metric"]) for r in records)
    assert [r for r in rows if r["model"] == "SASRecJPQ-svd"] == probe
    assert "| SASRecJPQ-svd (pq_m=4) |" in md.read_text()
    # The report lists the probe behind the choice, marked as chosen.
    assert f"| ml-100k | SASRecJPQ-svd | pq_m=4 | {probe[0]['valid']['ndcg@10']:.4f} |" in md.read_text()
    assert md.read_text().split("## Settings chosen on validation")[1].count("| yes |") == 1


def test_quality_longer_budget_goes_to_its_own_file_and_section(tmp_path, monkeypatch):
    sys.path.insert(0, str(__import__("recbole_pq").data.PROJECT_ROOT))
    from benchmarks import quality

    monkeypatch.setattr(quality, "ROOT", tmp_path)
    monkeypatch.setattr(quality, "SELECTION_JSON", tmp_path / "selection.json")
    table, longer, md = tmp_path / "q.json", tmp_path / "long.json", tmp_path / "Q.md"
    monkeypatch.setattr(quality, "JSON_DEFAULT", table)
    monkeypatch.setattr(quality, "LONG_JSON", longer)
    common = ["--dataset", "ml-100k", "--models", "SASRec", "--max-seq-length", "20", "--md", str(md)]
    quality.main(common + ["--epochs", "1"])
    rows = json.loads(table.read_text())
    quality.main(common + ["--epochs", "2", "--longer"])
    assert json.loads(table.read_text()) == rows  # the equal-budget table is untouched
    long_rows = json.loads(longer.read_text())
    assert {r["budget"]["epochs"] for r in long_rows} == {2} and {r["model"] for r in long_rows} == {"SASRec"}
    text = md.read_text()
    assert "## ml-100k: full ranking\n" in text and "## ml-100k: full ranking, longer budget (2 epochs)" in text
    assert text.count("| SASRec |") == 2
    # A longer run never resumes the shorter run's checkpoint: each budget has its own folder.
    assert len(list((tmp_path / "saved" / "quality" / "ml-100k" / "SASRec").iterdir())) == 2
