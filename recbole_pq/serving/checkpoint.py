"""Checkpoints that load with ``torch.load(weights_only=True)`` and are written atomically.

RecBole pickles its whole Config object; we store the config as plain data
(str/int/float/bool/list/dict) next to the state_dict, so loading never runs
arbitrary pickled code, and write through a temporary file + rename so a crash
mid-save never leaves a broken checkpoint behind.
"""

from __future__ import annotations

import enum
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from recbole_pq.errors import CheckpointError


REQUIRED_KEYS = ("config", "state_dict")
# Version of the checkpoint layout, written as "format" into every checkpoint.  1: config,
# state_dict (codes included), other_parameter, item_tokens, optimiser and training state
# (+ rng in -last files).  Files without the field were written before it existed and
# read as version 0 (same layout; see recommender.build_model for their older keys).
CHECKPOINT_FORMAT = 1


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
    """Write ``state`` to ``path`` atomically, stamped with CHECKPOINT_FORMAT."""
    state = {**state, "format": CHECKPOINT_FORMAT}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location=None) -> dict:
    """Load one of our checkpoints; CheckpointError naming the file if it is not one."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"Checkpoint {path} is a folder; give a .pth file written by recbole-pq "
                              f"(e.g. {path}/<Model>-<date>.pth).")
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:  # pickled objects: never ours, and never loaded unsafely
        raise CheckpointError(
            f"Checkpoint {path} is not a recbole-pq checkpoint: it holds pickled Python objects (a stock "
            f"RecBole checkpoint pickles its Config). recbole-pq checkpoints hold plain data and are never "
            f"unpickled; train the model with recbole-pq to get one.") from err
    except Exception as err:  # truncated zip, not a torch file, ...: all unusable
        first_line = str(err).splitlines()[0] if str(err) else ""
        raise CheckpointError(f"Checkpoint {path} cannot be read ({type(err).__name__}: {first_line}).") from err
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        raise CheckpointError(f"Checkpoint {path} is not a recbole-pq checkpoint (needs keys {list(REQUIRED_KEYS)}).")
    version = state.get("format", 0)
    if not isinstance(version, int) or version > CHECKPOINT_FORMAT:
        raise CheckpointError(f"Checkpoint {path} has format {version!r}, newer than this recbole-pq reads "
                              f"(up to {CHECKPOINT_FORMAT}): upgrade recbole-pq to load it.")
    return state


# Keys that decide the shapes of a model's weights: named first when weights do not fit.
SHAPE_KEYS = ("hidden_size", "inner_size", "n_layers", "n_heads", "MAX_ITEM_LIST_LENGTH", "pq_m", "pq_b",
              "code_assignment", "lisa_variant", "lisa_B", "lisa_W", "dataset")


def shape_key_differences(saved_config: dict, config) -> list[str]:
    """``key: saved -> now`` for the shape keys whose value differs between a checkpoint's
    config and the present run's config."""
    differences = []
    for key in SHAPE_KEYS:
        saved, now = saved_config.get(key), plain(config[key]) if key in config else None
        if saved != now:
            differences.append(f"{key}: {saved!r} -> {now!r}")
    return differences


def load_weights(model, checkpoint: dict, path, config) -> None:
    """``model.load_state_dict`` with a CheckpointError naming the settings that changed
    (instead of torch's raw 'size mismatch') when the weights do not fit."""
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        differences = shape_key_differences(checkpoint["config"], config)
        changed = f"settings changed since it was written: {'; '.join(differences)}" if differences else \
            f"{str(err).splitlines()[0]}"
        raise CheckpointError(f"Checkpoint {path} does not fit this model ({changed}). Run with the "
                              f"checkpoint's settings, or start a new run without --resume.") from err
