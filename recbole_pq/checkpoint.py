"""Checkpoints that load with ``torch.load(weights_only=True)`` and are written atomically.

RecBole pickles its whole Config object; we store the config as plain data
(str/int/float/bool/list/dict) next to the state_dict, so loading never runs
arbitrary pickled code, and write through a temporary file + rename so a crash
mid-save never leaves a broken checkpoint behind.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path

import numpy as np
import torch

from recbole_pq.errors import CheckpointError


REQUIRED_KEYS = ("config", "state_dict")


def plain(value):
    """Config values -> weights-only-loadable plain data."""
    if isinstance(value, np.generic):  # before float: np.float64 is a float subclass
        return value.item()
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return str(value)  # torch.device, classes, ...: kept for the record


def plain_config(config) -> dict:
    return {key: plain(value) for key, value in config.final_config_dict.items()}


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location=None) -> dict:
    """Load one of our checkpoints; CheckpointError naming the file if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, foreign pickle, ...: all unusable
        raise CheckpointError(f"Checkpoint {path} cannot be read ({type(err).__name__}: {err}).") from err
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        raise CheckpointError(f"Checkpoint {path} is not a recbole-pq checkpoint (needs keys {list(REQUIRED_KEYS)}).")
    return state
