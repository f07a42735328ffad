"""Shared fixtures: small real data sets and quick config helpers (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

import recbole_pq  # noqa: F401  (applies the compatibility shims first)
from recbole_pq.data.paths import SHARED_DATASETS
from recbole_pq.data.prepare import prepare

# Fast settings for CPU tests: tiny model, few epochs, no files left in the repo.
FAST = {
    "epochs": 1,
    "hidden_size": 16,
    "inner_size": 32,
    "n_layers": 1,
    "n_heads": 1,
    "MAX_ITEM_LIST_LENGTH": 20,
    "train_batch_size": 64,
    "eval_batch_size": 256,
    "show_progress": False,
    "state": "WARNING",
    "pq_m": 4,
    "pq_b": 16,
    # train_precision's default (auto) is bfloat16 on CPUs that have it: pinning float32 keeps
    # every test's numbers the same on every host; tests/test_training_speed.py covers bf16.
    "train_precision": "fp32",
}


@pytest.fixture(scope="session")
def ml1m_slice(tmp_path_factory) -> Path:
    """data_path holding ``ml-1m/ml-1m.inter``: the first 60 users of the shared ML-1M file."""
    source = SHARED_DATASETS / "ml-1m" / "ml-1m.txt"
    if not source.is_file():
        pytest.skip(f"shared ML-1M file not found at {source}")
    root = tmp_path_factory.mktemp("data")
    prepare("ml-1m", out_root=root, max_users=60)
    return root


@pytest.fixture(scope="session")
def fast() -> dict:
    return dict(FAST)


@pytest.fixture()
def fast_settings(tmp_path) -> dict:
    """FAST plus a private checkpoint dir (RecBole's file names have 1 s resolution)."""
    return {**FAST, "checkpoint_dir": str(tmp_path / "saved")}
