"""run_recbole_pq.py as a user runs it (subprocess)."""

import subprocess
import sys
from pathlib import Path

import torch

from recbole_pq.cli import parse_args
from recbole_pq.data.paths import PROJECT_ROOT
from recbole_pq.pipeline import build_config


def _run(*args, timeout=300):
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "run_recbole_pq.py"), *args],
                          capture_output=True, text=True, timeout=timeout)


def test_stock_recbole_model_through_runner(ml1m_slice, tmp_path):
    result = _run("--model=SASRec", "--dataset=ml-1m", f"--data_path={ml1m_slice}", "--epochs=1",
                  "--hidden_size=16", "--inner_size=32", "--n_layers=1", "--MAX_ITEM_LIST_LENGTH=20",
                  f"--checkpoint_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    log = result.stdout + result.stderr
    assert "best valid" in log and "test result" in log and "ndcg@10" in log


def test_plugin_model_with_config_file(ml1m_slice, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text("hidden_size: 16\ninner_size: 32\nn_layers: 1\npq_m: 4\npq_b: 16\nMAX_ITEM_LIST_LENGTH: 20\n")
    result = _run("--model=SASRecJPQ", "--dataset=ml-1m", f"--data_path={ml1m_slice}", "--epochs=1",
                  "--config_files", str(config), f"--checkpoint_dir={tmp_path}", "--scorer=recjpq", "--gpu_id=0")
    assert result.returncode == 0, result.stderr[-2000:]
    log = result.stdout + result.stderr
    assert "test result" in log and "item representation: dense" in log and "scorer = recjpq" in log
    if not torch.cuda.is_available():  # RecBole falls back to the CPU silently; we say so
        assert "gpu_id=0 was given but CUDA is not available here: training runs on the CPU" in log


def test_unknown_model_is_a_one_line_error():
    result = _run("--model=SASRecJQP", timeout=60)
    assert result.returncode == 2
    assert "error: Unknown model 'SASRecJQP'" in result.stderr and "Traceback" not in result.stderr


def test_missing_dataset_is_a_one_line_error(tmp_path):
    result = _run("--model=SASRecJPQ", "--dataset=beauty", f"--data_path={tmp_path}", timeout=60)
    assert result.returncode == 2
    assert "python dataset/prepare.py beauty" in result.stderr and "Traceback" not in result.stderr


def test_negative_epochs_fail_before_anything_is_written(tmp_path):
    result = _run("--model=SASRecJPQ", "--epochs=-1", f"--checkpoint_dir={tmp_path / 'saved'}", timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: epochs=-1 is not allowed: must be an integer >= 1" in result.stderr
    assert not (tmp_path / "saved").exists()


def test_setting_without_equals_sign_is_rejected():
    result = _run("--epochs", "2", timeout=60)
    assert result.returncode != 0 and "--key=value" in result.stderr


def test_parse_args_defaults_and_config_file_forms():
    args, settings = parse_args(["--config_files", "a.yaml b.yaml", "c.yaml", "--pq_m=4", "--lr=1e-3"])
    assert (args.model, args.dataset) == ("SASRecJPQ", "ml-100k")
    assert args.config_files == ["a.yaml", "b.yaml", "c.yaml"]
    assert settings == {"pq_m": "4", "lr": "1e-3"}


def test_config_file_paths_with_spaces_and_repeated_flags(tmp_path):
    spaced = tmp_path / "my configs" / "a b.yaml"
    spaced.parent.mkdir()
    spaced.write_text("pq_m: 4\n")
    args, _ = parse_args(["--config_files", str(spaced), "--config_files", "c.yaml d.yaml"])
    assert args.config_files == [str(spaced), "c.yaml", "d.yaml"]


def test_users_own_ml100k_wins_over_the_bundled_copy(ml1m_slice, tmp_path):
    own = tmp_path / "ml-100k"
    own.mkdir()
    (own / "ml-100k.inter").write_text((ml1m_slice / "ml-1m" / "ml-1m.inter").read_text())
    config = build_config("SASRecJPQ", "ml-100k", config_dict={"data_path": str(tmp_path)})
    assert Path(config["data_path"]) == own
    bundled = build_config("SASRecJPQ", "ml-100k", config_dict={"data_path": str(tmp_path / "none")})
    assert "dataset_example" in bundled["data_path"]  # RecBole's copy, and setup() logs a warning
