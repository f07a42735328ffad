"""The plugin as a user installs it: a wheel in a fresh virtual environment, run from an
empty directory, with the console scripts (nothing may depend on the source checkout)."""

import os
import shutil
import subprocess
import sys

import pytest

from recbole_pq.data.paths import PROJECT_ROOT

RATING_FREE_HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin folder, empty working directory) with the wheel of this checkout installed."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy: the build writes build/ and egg-info next to the sources
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        source.mkdir(exist_ok=True)
        shutil.copy(PROJECT_ROOT / name, source / name)
    shutil.copytree(PROJECT_ROOT / "recbole_pq", source / "recbole_pq",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(root / "dist"), str(source)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    [wheel] = (root / "dist").glob("recbole_pq-*.whl")
    # the dependencies come from this interpreter's site-packages; the plugin only from the wheel
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(root / "venv")], check=True,
                   timeout=300)
    bin_dir = root / "venv" / "bin"
    install = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                              str(wheel)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    work = root / "work"
    work.mkdir()
    return bin_dir, work


def _run(installed, *args, timeout=600):
    bin_dir, work = installed
    env = {k: v for k, v in os.environ.items() if k not in ("RECBOLE_PQ_DATA", "PYTHONPATH")}
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=work, capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_the_wheel_is_what_runs(installed):
    bin_dir, _ = installed
    result = _run(installed, "python", "-c", "import recbole_pq, pathlib; print(pathlib.Path(recbole_pq.__file__))")
    assert result.returncode == 0, result.stderr[-2000:]
    assert str(bin_dir.parent) in result.stdout and str(PROJECT_ROOT) not in result.stdout
    help_text = _run(installed, "recbole-pq", "--help")
    assert help_text.returncode == 0 and "SASRecJPQ" in help_text.stdout and "--pq_b" in help_text.stdout
    for script in ("recbole-pq-recommend", "recbole-pq-prepare"):
        assert _run(installed, script, "--help").returncode == 0, script


def test_bundled_data_with_the_packaged_yaml_layers(installed):
    result = _run(installed, "recbole-pq", "--model=SASRecJPQ", "--dataset=ml-100k", "--epochs=1")
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    # values that only the plugin's YAML layers set (RecBole has no pq_m; its loss_type default is CE too,
    # but its train_mode has no seq2seq and its valid_metric is MRR@10)
    for line in ("pq_m = 8", "loss_type = CE", "train_mode = seq2seq", "valid_metric = NDCG@10"):
        assert line in log, line
    assert "summary: SASRecJPQ on ml-100k | best epoch 0" in log and "item table" in log


def test_users_own_three_column_data_set(installed):
    _, work = installed
    folder = work / "dataset" / "mine"
    folder.mkdir(parents=True)
    rows = [f"u{u}\ti{(u * 7 + t * 13) % 150}\t{u * 100 + t}" for u in range(120) for t in range(12)]
    (folder / "mine.inter").write_text(RATING_FREE_HEADER + "\n".join(rows) + "\n")
    result = _run(installed, "recbole-pq", "--model=SASRecJPQ", "--dataset=mine", "--epochs=1", "--pq_b=16")
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    [summary] = [line for line in log.splitlines() if "summary: SASRecJPQ on mine" in line]
    assert "| test recall@10" in summary and " ndcg@10 " in summary and "checkpoint saved/" in summary
