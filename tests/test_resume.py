"""A training run killed mid-way and resumed with --resume ends as an uninterrupted run."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from recbole_pq.data.paths import PROJECT_ROOT
from recbole_pq.serving.checkpoint import load_checkpoint

EPOCHS = 8


def _cmd(ml1m_slice, checkpoint_dir, *extra):
    return [sys.executable, str(PROJECT_ROOT / "run_recbole_pq.py"), "--model=SASRecJPQ", "--dataset=ml-1m",
            f"--data_path={ml1m_slice}", f"--epochs={EPOCHS}", "--hidden_size=16", "--inner_size=32",
            "--n_layers=1", "--pq_m=4", "--pq_b=16", "--MAX_ITEM_LIST_LENGTH=20", "--stopping_step=100",
            # no dense head: with one, this 60-user slice's test and best validation results happen to coincide
            # (both 1 hit in 60), and the last check below needs them apart
            "--pq_dense_head=0",
            f"--checkpoint_dir={checkpoint_dir}", *extra]


def _best_valid(log: str) -> str:
    return re.search(r"best valid\s*: (.*)", log).group(1)


def _valid_curve(log: str) -> dict[int, str]:
    """Epoch -> logged valid score, for every evaluated epoch of a run's log."""
    return {int(e): score for e, score in re.findall(r"epoch (\d+) evaluating \[.*?valid_score: ([\d.]+)\]", log)}


def test_killed_run_resumes_to_the_same_result(ml1m_slice, tmp_path):
    full = subprocess.run(_cmd(ml1m_slice, tmp_path / "full"), capture_output=True, text=True, timeout=300)
    assert full.returncode == 0, full.stderr[-2000:]

    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(ml1m_slice, killed_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    last = []
    while time.time() < deadline and not last and proc.poll() is None:
        last = list(killed_dir.glob("*-last.pth"))
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert last, "the run wrote no -last.pth before it ended"
    epoch = load_checkpoint(last[0])["epoch"]
    assert epoch < EPOCHS - 1, "the run finished before it could be killed"

    resumed = subprocess.run(_cmd(ml1m_slice, killed_dir, "--resume", str(last[0])),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    log = resumed.stdout + resumed.stderr
    assert f"Resume training from epoch {epoch + 1}" in log
    full_log = full.stdout + full.stderr
    full_curve, resumed_curve = _valid_curve(full_log), _valid_curve(log)
    assert sorted(resumed_curve) == list(range(epoch + 1, EPOCHS))  # every epoch after the kill, once
    assert resumed_curve == {e: full_curve[e] for e in resumed_curve}  # the same validation curve
    assert _best_valid(log) == _best_valid(full_log)
    full_test = re.search(r"test result: (.*)", full_log).group(1)
    assert re.search(r"test result: (.*)", log).group(1) == full_test
    assert full_test != _best_valid(full_log)  # test is evaluated on its own split, not on validation


def test_resume_refuses_a_best_model_file(ml1m_slice, tmp_path):
    import recbole_pq
    from recbole_pq.errors import CheckpointError

    settings = {"data_path": str(ml1m_slice), "epochs": 1, "hidden_size": 16, "inner_size": 32, "n_layers": 1,
                "pq_m": 4, "pq_b": 16, "MAX_ITEM_LIST_LENGTH": 20, "checkpoint_dir": str(tmp_path), "state": "WARNING"}
    best = recbole_pq.run("SASRecJPQ", "ml-1m", config_dict=settings)["saved_model_file"]
    with pytest.raises(CheckpointError, match="best-model checkpoint; resume from the run's '-last.pth'"):
        recbole_pq.run("SASRecJPQ", "ml-1m", config_dict=settings, resume=best)
    with pytest.raises(CheckpointError, match="written by model SASRecJPQ, not gBERT4RecJPQ"):
        recbole_pq.run("gBERT4RecJPQ", "ml-1m", config_dict={**settings, "neg_samples": 8},
                       resume=best.replace(".pth", "-last.pth"))
    assert torch.equal(load_checkpoint(best)["state_dict"]["items.codes"],
                       load_checkpoint(best.replace(".pth", "-last.pth"))["state_dict"]["items.codes"])


def test_resumed_run_writes_to_the_folder_it_was_resumed_from(ml1m_slice, tmp_path):
    """A run's folder moved or copied elsewhere: resuming from the copy writes the next
    checkpoints into the copy, never back into the folder the run started in."""
    import shutil

    import recbole_pq

    settings = {"data_path": str(ml1m_slice), "hidden_size": 16, "inner_size": 32, "n_layers": 1, "pq_m": 4,
                "pq_b": 16, "MAX_ITEM_LIST_LENGTH": 20, "stopping_step": 100, "state": "WARNING"}
    started = tmp_path / "started"
    recbole_pq.run("SASRecJPQ", "ml-1m", config_dict={**settings, "epochs": 2, "checkpoint_dir": str(started)})
    moved = tmp_path / "moved"
    shutil.copytree(started, moved)
    before = {path.name: path.stat().st_mtime_ns for path in started.iterdir()}
    (last,) = moved.glob("*-last.pth")
    result = recbole_pq.run("SASRecJPQ", "ml-1m", config_dict={**settings, "epochs": 3, "checkpoint_dir": str(moved)},
                            resume=str(last))
    assert {path.name: path.stat().st_mtime_ns for path in started.iterdir()} == before
    assert load_checkpoint(last)["epoch"] == 2
    assert result["saved_model_file"] == str(last).replace("-last.pth", ".pth")
