"""Ray Tune sweeps: results table, failing trials, resume after a kill, bad specs."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from recbole_pq.data.paths import PROJECT_ROOT
from recbole_pq.errors import ConfigError
from recbole_pq.pipeline import build_config
from recbole_pq.tuning.report import pareto_front
from recbole_pq.tuning.run import check_sweep_folder, sweep
from recbole_pq.tuning.spec import check_spec, load_tune_file

TINY = {"hidden_size": 16, "inner_size": 32, "n_layers": 1, "n_heads": 1, "MAX_ITEM_LIST_LENGTH": 20,
        "pq_b": 16, "epochs": 1, "eval_batch_size": 256}


def _tune_file(tmp_path, space, **extra):
    spec = {"name": "t", "metric": "ndcg@10", "scheduler": "fifo", "max_concurrent_trials": 1,
            "config": dict(TINY), "search_space": space, **extra}
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_two_trial_sweep_writes_table_best_yaml_and_plot(ml1m_slice, tmp_path):
    tune_file = _tune_file(tmp_path, {"pq_m": {"grid": [2, 4]}})
    table = sweep("SASRecJPQ", "ml-1m", tune_file, settings={"data_path": str(ml1m_slice)},
                  tune_dir=tmp_path / "runs")
    experiment = tmp_path / "runs" / "SASRecJPQ-ml-1m-t"
    csv = pd.read_csv(experiment / "results.csv")
    assert len(csv) == 2 and set(csv["status"]) == {"DONE"} and sorted(csv["pq_m"]) == [2, 4]
    for column in ("best_valid_ndcg_at_10", "test_ndcg_at_10", "test_recall_at_10", "item_table_mb",
                   "compression", "scoring_ms_per_user", "trial_dir", "error"):
        assert column in csv, column
    assert (csv["compression"] > 1).all() and csv["test_ndcg_at_10"].between(0, 1).all()
    best = yaml.safe_load((experiment / "best.yaml").read_text())
    assert best["pq_m"] in (2, 4) and best["hidden_size"] == 16
    assert (experiment / "pareto.png").stat().st_size > 0
    for trial_dir in csv["trial_dir"]:  # each trial keeps its config and best checkpoint
        assert (PROJECT_ROOT / trial_dir / "config.json").is_file() or os.path.isfile(os.path.join(trial_dir, "config.json"))
        assert any(p.suffix == ".pth" for p in (pd.io.common.Path(trial_dir) / "saved").iterdir())
    assert len(table) == 2


def test_failing_trial_is_reported_not_fatal(ml1m_slice, tmp_path):
    tune_file = _tune_file(tmp_path, {"pq_m": {"grid": [4, 3]}})  # hidden 16 is not divisible by 3
    table = sweep("SASRecJPQ", "ml-1m", tune_file, settings={"data_path": str(ml1m_slice)},
                  tune_dir=tmp_path / "runs")
    status = dict(zip(table["pq_m"], table["status"]))
    assert status == {4: "DONE", 3: "ERROR"}
    assert "pq_m=3" in table.loc[table["pq_m"] == 3, "error"].iloc[0]


def _terminated_trial_ids(experiment) -> list[str]:
    """Trials that Ray's own saved experiment state marks TERMINATED: the state a restore reads,
    so those trials are skipped on resume. A state file caught mid-write reads as no trial."""
    states = sorted(experiment.glob("experiment_state-*.json"))
    if not states:
        return []
    try:
        trial_data = json.loads(states[-1].read_text())["trial_data"]
        trials = [json.loads(trial_json) for trial_json, _ in trial_data]
    except (ValueError, KeyError):
        return []
    return [t["trial_id"] for t in trials if t.get("status") == "TERMINATED"]


def test_killed_sweep_resumes_without_rerunning_finished_trials(ml1m_slice, tmp_path):
    tune_file = _tune_file(tmp_path, {"pq_m": {"grid": [2, 4]}}, config={**TINY, "epochs": 3})
    runs = tmp_path / "runs"
    cmd = [sys.executable, str(PROJECT_ROOT / "run_recbole_pq.py"), "--model=SASRecJPQ", "--dataset=ml-1m",
           f"--data_path={ml1m_slice}", "--tune", str(tune_file), "--tune-dir", str(runs)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    experiment = runs / "SASRecJPQ-ml-1m-t"
    deadline = time.time() + 240
    terminated = []
    while time.time() < deadline and not terminated and proc.poll() is None:
        time.sleep(0.5)
        terminated = _terminated_trial_ids(experiment)
    os.killpg(proc.pid, signal.SIGKILL)  # as a crash would: no clean shutdown
    proc.wait()
    assert terminated, "no trial was recorded as finished before the deadline"
    [finished] = [p for p in experiment.glob(f"*{terminated[0]}*/result.json")]
    first_reports = finished.read_text().count('"checkpoint"')
    assert first_reports == 1, "a finished trial has exactly one final report"
    result = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    csv = pd.read_csv(experiment / "results.csv")
    assert len(csv) == 2 and set(csv["status"]) == {"DONE"}, csv
    assert finished.read_text().count('"checkpoint"') == first_reports  # not rerun
    subprocess.run(["ray", "stop", "--force"], capture_output=True)


def test_bad_specs_fail_before_ray(ml1m_slice, tmp_path):
    config = build_config("SASRecJPQ", "ml-1m", config_dict={"data_path": str(ml1m_slice)})

    def spec(**kw):
        return load_tune_file(_tune_file(tmp_path, **kw))

    with pytest.raises(ConfigError, match="'pq_mm' is not a config key of SASRecJPQ. Did you mean pq_m"):
        check_spec(spec(space={"pq_mm": {"grid": [2]}}), config)
    with pytest.raises(ConfigError, match="search space is empty"):
        check_spec(spec(space={}), config)
    with pytest.raises(ConfigError, match="metric 'auc' is not produced"):
        check_spec(spec(space={"pq_m": {"grid": [2]}}, metric="auc"), config)
    with pytest.raises(ConfigError, match="write one of"):
        check_spec(spec(space={"pq_m": [2, 4]}), config)
    with pytest.raises(ConfigError, match="no sweep to resume"):
        sweep("SASRecJPQ", "ml-1m", _tune_file(tmp_path, {"pq_m": {"grid": [2]}}),
              settings={"data_path": str(ml1m_slice)}, resume=True, tune_dir=tmp_path / "none")


def test_sweep_folder_left_empty_by_a_kill_is_reused_not_a_dead_end(tmp_path):
    experiment = tmp_path / "SASRecJPQ-ml-100k-t"
    experiment.mkdir()
    check_sweep_folder(experiment, resume=False)  # nothing to keep: a new sweep may start there
    with pytest.raises(ConfigError, match="no sweep to resume .*no state saved by Ray"):
        check_sweep_folder(experiment, resume=True)
    trial = experiment / "trial_0"
    trial.mkdir()
    (trial / "result.json").write_text('{"valid_ndcg_at_10": 0.1}\n')
    with pytest.raises(ConfigError, match="holds trial results but no state Ray can resume from"):
        check_sweep_folder(experiment, resume=False)


def test_pareto_front():
    points = [(1.0, 0.10), (2.0, 0.20), (3.0, 0.15), (0.5, 0.05), (2.0, 0.19)]
    assert sorted(pareto_front(points)) == [0, 1, 3]


def test_code_assignment_is_a_sweepable_key(tmp_path):
    config = build_config("SASRecJPQ", "ml-100k")
    check_spec(load_tune_file(_tune_file(tmp_path, {"code_assignment": {"grid": ["svd", "svd_pq", "bpr", "random"]}})),
               config)
    shipped = load_tune_file("jpq")  # a shipped search space by name
    assert shipped["name"] == "jpq" and "pq_b" in shipped["search_space"]
