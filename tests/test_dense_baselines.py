"""The dense baselines of the quality comparison: DenseSASRec and RecBole's BERT4Rec on
one row per user, and the quality benchmark's records."""

import json
import sys

import pytest

from recbole_pq.errors import ConfigError
from recbole_pq.pipeline import build_config, setup


def test_dense_sasrec_trains_and_has_a_dense_table(ml1m_slice, fast_settings):
    config, (train, valid, _), model, trainer = setup("DenseSASRec", "ml-1m", config_dict={
        **fast_settings, "data_path": str(ml1m_slice), "epochs": 3})
    assert config["train_mode"] == "seq2seq"
    assert model.items.weight.shape == (model.n_items, fast_settings["hidden_size"])
    trainer.fit(train, valid, saved=False)
    losses = [trainer.train_loss_dict[epoch] for epoch in range(3)]
    assert losses[2] < losses[1] < losses[0], losses


def test_dense_sasrec_refuses_pq_scorers():
    with pytest.raises(ConfigError, match="scorer='pqtopk'.*dense"):
        build_config("DenseSASRec", "ml-100k", config_dict={"scorer": "pqtopk"})


def test_recbole_bert4rec_trains_on_one_row_per_user(ml1m_slice, fast_settings):
    settings = {**fast_settings, "data_path": str(ml1m_slice), "train_mode": "seq2seq"}
    _, (train, _, _), _, _ = setup("BERT4Rec", "ml-1m", config_dict=settings)
    assert len(train.dataset) == 60  # one row per user, not one per interaction
    _, (train, valid, _), _, trainer = setup("BERT4Rec", "ml-1m", config_dict={**settings, "epochs": 3})
    trainer.fit(train, valid, saved=False)
    losses = [trainer.train_loss_dict[epoch] for epoch in range(3)]
    assert losses[2] < losses[0], losses


def test_quality_benchmark_writes_records_and_asserts_scorers(tmp_path, monkeypatch):
    sys.path.insert(0, str(__import__("recbole_pq.data.paths").data.paths.PROJECT_ROOT))
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
    # --progress: finished rows from the JSON, a row still training from its folder's curve
    folder = quality.row_folder(quality.spec_named("SASRecJPQ-random", "full"), "ml-100k",
                                quality.parse_args(argv + ["--models", "SASRecJPQ-random"]))
    folder.mkdir(parents=True)
    (folder / "valid_curve.json").write_text('[{"epoch": 1, "valid_score": 0.01, "seconds": 5.0}]')
    progress = tmp_path / "progress.json"
    quality.main(argv[:4] + ["SASRecJPQ-random"] + argv[4:] + ["--progress", str(progress)])
    data = json.loads(progress.read_text())
    assert [(r["model"], r["status"].split(":")[0]) for r in data["rows"]] == [
        ("SASRec", "stopped (epoch cap)"), ("SASRecJPQ-svd", "stopped (epoch cap)"), ("SASRecJPQ-random", "in progress")]
    assert data["rows"][2]["valid_curve"] == [{"epoch": 1, "valid_score": 0.01, "seconds": 5.0}]
    assert "--progress" not in data["command"] and progress.with_suffix(".png").is_file()
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
    assert f"| ml-100k | SASRecJPQ-svd | pq_m=4 | 1 epoch | {probe[0]['valid']['ndcg@10']:.4f} |" in md.read_text()
    assert md.read_text().split("## Settings chosen on validation")[1].count("| yes |") == 1


def test_quality_longer_budget_goes_to_its_own_file_and_section(tmp_path, monkeypatch):
    sys.path.insert(0, str(__import__("recbole_pq.data.paths").data.paths.PROJECT_ROOT))
    from benchmarks import quality

    monkeypatch.setattr(quality, "ROOT", tmp_path)
    monkeypatch.setattr(quality, "SELECTION_JSON", tmp_path / "selection.json")
    table, longer, md = tmp_path / "q.json", tmp_path / "long.json", tmp_path / "Q.md"
    converged = tmp_path / "converged.json"
    monkeypatch.setattr(quality, "JSON_DEFAULT", converged)
    monkeypatch.setattr(quality, "FIXED_JSON", table)
    monkeypatch.setattr(quality, "LONG_JSON", longer)
    monkeypatch.setattr(quality, "PARETO_JSON", tmp_path / "pareto.json")
    common = ["--dataset", "ml-100k", "--models", "SASRec", "--max-seq-length", "20", "--md", str(md)]
    quality.main(common + ["--epochs", "1"])
    rows = json.loads(table.read_text())
    assert not converged.exists()  # a fixed budget never lands among the converged rows
    quality.main(common + ["--epochs", "2", "--longer"])
    assert json.loads(table.read_text()) == rows  # the equal-budget table is untouched
    long_rows = json.loads(longer.read_text())
    assert {r["budget"]["epochs"] for r in long_rows} == {2} and {r["model"] for r in long_rows} == {"SASRec"}
    assert md.read_text().startswith("# Quality on real data")  # the converged summary (none yet)
    text = (tmp_path / "QUALITY_DETAILS.md").read_text()
    assert "## ml-100k: full ranking\n" in text and "## ml-100k: full ranking, longer budget (2 epochs)" in text
    assert text.count("| SASRec |") == 2
    # A longer run never resumes the shorter run's checkpoint: each budget has its own folder.
    assert len(list((tmp_path / "saved" / "quality" / "ml-100k" / "SASRec").iterdir())) == 2


def test_popularity_floor_ranks_by_training_counts(ml1m_slice, capsys):
    """benchmarks/popularity.py: RecBole's Pop on the quality split (with compat's fix of its
    counts: RecBole 1.2.1 counts batches, here every hit would be lost).  Reference: per user,
    unseen items ranked by training count (leave-one-out by time; RecBole masks a general
    model's history), so the test target's rank lies between 1 + the unseen items counted
    more often and that plus the items counted as often; HR@10 must lie within the bounds."""
    import collections

    from benchmarks import popularity

    result = popularity.main(["--dataset", "ml-1m", "--data-path", str(ml1m_slice)])
    out = capsys.readouterr().out
    assert "Pop ml-1m test, history removed: ndcg@10" in out and "Pop ml-1m test, history left in: ndcg@10" in out

    sequences = collections.defaultdict(list)
    with open(ml1m_slice / "ml-1m" / "ml-1m.inter") as f:
        next(f)
        for line in f:
            user, item, time = line.split("\t")
            sequences[user].append((float(time), item))
    sequences = {u: [i for _, i in sorted(s)] for u, s in sequences.items()}
    counts = collections.Counter(i for s in sequences.values() for i in s[:-2])
    catalogue = {i for s in sequences.values() for i in s}
    surely = possibly = 0
    for items in sequences.values():
        target, seen = items[-1], set(items[:-1])
        unseen = [counts[i] for i in catalogue - seen]
        above = sum(c > counts[target] for c in unseen)
        tied = sum(c == counts[target] for c in unseen)
        surely += above + tied <= 10
        possibly += above + 1 <= 10
    hit_rate = result["test_result"]["hit@10"]  # RecBole rounds metrics to 4 decimals
    assert surely / len(sequences) - 5e-5 <= hit_rate <= possibly / len(sequences) + 5e-5 and surely > 0


def test_popularity_with_history_left_in_by_hand(tmp_path):
    """Train counts a 4, b 2, c 2, d 0: the top-2 is (a, b), b before c by first appearance.
    User 4 (two items) gives only a test target, user 5 (one item) only a training item.
    Validation targets c, b, d: one hit at rank 2; test targets d, d, c, b: one hit at rank 2."""
    import math

    from benchmarks.popularity import popularity_unremoved

    rows = {"1": "abcd", "2": "acbd", "3": "badc", "4": "ab", "5": "c"}
    inter = tmp_path / "toy.inter"
    inter.write_text("user_id:token\titem_id:token\ttimestamp:float\n" + "".join(
        f"{user}\t{item}\t{t}\n" for user, items in rows.items() for t, item in enumerate(items)))
    result = popularity_unremoved(inter, k=2)
    assert result["valid"] == {"ndcg@2": pytest.approx(1 / math.log2(3) / 3), "recall@2": pytest.approx(1 / 3),
                               "hit@2": pytest.approx(1 / 3)}  # one target per user: hit rate = recall
    assert result["test"] == {"ndcg@2": pytest.approx(1 / math.log2(3) / 4), "recall@2": pytest.approx(1 / 4),
                              "hit@2": pytest.approx(1 / 4)}


def test_quality_converge_records_curve_steps_and_stop_reason(tmp_path, monkeypatch):
    sys.path.insert(0, str(__import__("recbole_pq.data.paths").data.paths.PROJECT_ROOT))
    from benchmarks import quality

    monkeypatch.setattr(quality, "ROOT", tmp_path)
    monkeypatch.setattr(quality, "SELECTION_JSON", tmp_path / "selection.json")
    monkeypatch.setattr(quality, "LONG_JSON", tmp_path / "long.json")
    out, md = tmp_path / "q.json", tmp_path / "Q.md"
    quality.main(["--dataset", "ml-100k", "--protocol", "full_exclude_history", "--models", "SASRec",
                  "--epochs", "3", "--converge", "1", "--max-seq-length", "20", "--json", str(out), "--md", str(md)])
    records = json.loads(out.read_text())
    assert {r["protocol"] for r in records} == {"full_exclude_history"}
    r = records[0]
    assert r["settings"]["eval_exclude_history"] is True
    assert r["budget"]["eval_step"] == 1 and r["budget"]["stopping_step"] == 1
    assert [c["epoch"] for c in r["valid_curve"]] == list(range(r["epochs"]))  # one validation per epoch
    assert r["steps"] == r["epochs"] * 8  # 943 users, 128 per batch
    scores = [c["valid_score"] for c in r["valid_curve"]]
    # patience 1: stopped when two validations in a row stayed below the best before them
    assert r["converged"] == (len(scores) >= 3 and max(scores[-2:]) < max(scores[:-2]))
    assert "full_exclude_history" in md.read_text()


def test_quality_hours_stops_a_row_unconverged_and_the_same_command_resumes_it(tmp_path, monkeypatch):
    sys.path.insert(0, str(__import__("recbole_pq.data.paths").data.paths.PROJECT_ROOT))
    from benchmarks import quality

    monkeypatch.setattr(quality, "ROOT", tmp_path)
    monkeypatch.setattr(quality, "SELECTION_JSON", tmp_path / "selection.json")
    out = tmp_path / "q.json"
    argv = ["--dataset", "ml-100k", "--protocol", "full_exclude_history", "--models", "SASRec", "--epochs", "3",
            "--converge", "5", "--max-seq-length", "20", "--json", str(out), "--md", str(tmp_path / "Q.md")]
    quality.main(argv + ["--hours", "0"])  # out of time at once: one epoch, so there is a checkpoint to test
    stopped = json.loads(out.read_text())[0]
    assert (stopped["epochs"], stopped["converged"], stopped["stopped_by"]) == (1, False, "time limit")
    assert [c["epoch"] for c in stopped["valid_curve"]] == [0]
    assert "no (time limit)" in (tmp_path / "Q.md").read_text()
    quality.main(argv + ["--force"])  # the same command resumes from the stopped row's checkpoint, up to the cap
    resumed = json.loads(out.read_text())[0]
    assert (resumed["epochs"], resumed["converged"], resumed["stopped_by"]) == (3, False, "epoch cap")
    assert resumed["valid_curve"][0] == stopped["valid_curve"][0]  # epoch 0 was not trained again
    assert [c["epoch"] for c in resumed["valid_curve"]] == [0, 1, 2]


def test_defaults_table_shows_both_protocols_and_leaves_older_rows_blank():
    sys.path.insert(0, str(__import__("recbole_pq.data.paths").data.paths.PROJECT_ROOT))
    from benchmarks import quality

    def row(variant, model, test, excluded=None):
        r = {"dataset": "d", "epochs": 2, "variant": variant, "model": model, "n_items": 10, "pq_m": None,
             "pq_b": None, "item_table_mb": 0.1, "compression": 10.0, "dense_item_table_mb": 1.0, "valid_ndcg@10": test,
             "test_ndcg@10": test, "overrides": {}, "code_assignment": None}
        return {**r, **({"test_ndcg@10_history_excluded": excluded} if excluded is not None else {})}

    lines = quality.defaults_lines({"command": "c", "records": [
        row("dense", "DenseSASRec", 0.1, 0.2), row("codes-x", "SASRecJPQ", 0.05, 0.15),
        row("old", "SASRecJPQ", 0.04)]})
    cells = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in lines if line.startswith("| ")}
    header = cells["row"]
    column = next(i for i, name in enumerate(header) if "history excluded" in name)
    assert cells["dense"][column] == "0.2000 (100%)"
    assert cells["codes-x"][column] == "0.1500 (75%)"
    assert cells["old"][column] == ""


def test_converged_rows_rank_with_history_from_the_same_checkpoint(tmp_path, monkeypatch):
    """--rank-with-history: a row trained under the papers' protocol gets its `full` (RecBole's)
    records from the same best checkpoint, which must first reproduce the recorded metrics."""
    sys.path.insert(0, str(__import__("recbole_pq.data.paths").data.paths.PROJECT_ROOT))
    from benchmarks import quality

    monkeypatch.setattr(quality, "ROOT", tmp_path)
    monkeypatch.setattr(quality, "SELECTION_JSON", tmp_path / "selection.json")
    monkeypatch.setattr(quality, "LONG_JSON", tmp_path / "long.json")
    out, md = tmp_path / "c.json", tmp_path / "C.md"
    argv = ["--dataset", "ml-100k", "--protocol", "full_exclude_history", "--models", "SASRecJPQ-svd_pq",
            "--converge", "1", "--epochs", "3", "--max-seq-length", "20", "--json", str(out), "--md", str(md)]
    quality.main(argv)
    excluded = {r["metric"]: r for r in json.loads(out.read_text())}
    assert {r["protocol"] for r in excluded.values()} == {"full_exclude_history"}
    assert all(r["settings"]["eval_exclude_history"] is True for r in excluded.values())
    quality.main(argv + ["--rank-with-history"])
    rows = json.loads(out.read_text())
    kept = {r["metric"]: r for r in rows if r["protocol"] == "full"}
    assert set(kept) == {"ndcg@10", "recall@10", "hit@10"}
    for metric, record in kept.items():
        assert record["selected_on"] == "full_exclude_history" and "eval_exclude_history" not in record["settings"]
        assert record["epochs"] == excluded[metric]["epochs"] and record["steps"] == excluded[metric]["steps"]
        # ml-100k repeats no (user, item) pair: removing the history's items can only lift the target
        assert record["value"] <= excluded[metric]["value"]
    assert kept["ndcg@10"]["value"] < excluded["ndcg@10"]["value"]  # popular history items outrank targets
    text = md.read_text()
    assert "## ml-100k: RecBole's protocol (history kept)" in text and "checkpoint chosen on full_exclude_history" in text
    assert "## ml-100k: the papers' protocol (history excluded)" in text

    tampered = [dict(r, value=r["value"] + 0.01) if (r["protocol"], r["metric"]) == ("full_exclude_history", "ndcg@10")
                else r for r in rows]
    out.write_text(json.dumps(tampered))
    with pytest.raises(RuntimeError, match="not the recorded checkpoint"):
        quality.main(argv + ["--rank-with-history"])
    with pytest.raises(SystemExit):  # ranks rows of the papers' protocol only
        quality.parse_args(["--dataset", "ml-100k", "--protocol", "full", "--rank-with-history"])
