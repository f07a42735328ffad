"""Every shim that makes RecBole 1.2.1 run on the current stack, in one place.

Applied once by ``import recbole_pq`` (also inside Ray workers, which are fresh
processes that import our package).  Each shim is idempotent and has a test in
``tests/test_compat.py`` that fails without it.  Nothing else in the code patches
RecBole.
"""

from __future__ import annotations

import os
import sys
import types
from contextlib import contextmanager

import numpy as np
import torch

# numpy 2 removed these aliases; RecBole's Config.compatibility_settings reads them.
_NUMPY_ALIASES = {"float_": np.float64, "complex_": np.complex128, "unicode_": np.str_}


# RecBole models whose training reads only the input sequence and masks it itself (its
# MaskItemSequence transform): one row per user is their original paper's training, so
# train_mode=seq2seq is allowed for them although they do not score every position.
RECBOLE_SEQ2SEQ_MODELS = ("BERT4Rec",)


def _restore_numpy_aliases() -> None:
    for name, value in _NUMPY_ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, value)


def _silence_sine_anomaly_detection() -> None:
    """RecBole's SINE module turns on autograd anomaly detection for the whole process
    when ``recbole.model.sequential_recommender`` is imported (about 1.5x slower
    training).  Import it now, once, then switch detection back off; later imports
    hit the module cache and do not re-enable it."""
    import recbole.model.sequential_recommender  # noqa: F401

    torch.autograd.set_detect_anomaly(False)


class _TorchForRecBoleCheckpoints(types.ModuleType):
    """``torch`` as seen by RecBole's trainer and quick_start modules only.

    RecBole pickles whole Config objects into its checkpoints; torch >= 2.6 loads with
    ``weights_only=True`` by default and refuses them.  These files are written by
    RecBole itself in the run's own ``checkpoint_dir``, so RecBole's own loads keep the
    old default.  Our own checkpoint loading does not go through here."""

    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def load(f, *args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return torch.load(f, *args, **kwargs)


_RECBOLE_MODULES_THAT_LOAD_CHECKPOINTS = (
    "recbole.trainer.trainer",
    "recbole.quick_start.quick_start",
)


def _let_recbole_load_its_checkpoints() -> None:
    import importlib

    proxy = _TorchForRecBoleCheckpoints()
    for name in _RECBOLE_MODULES_THAT_LOAD_CHECKPOINTS:
        try:
            module = importlib.import_module(name)
        except ImportError:  # quick_start needs ray; absent without the tune extra
            continue
        module.torch = proxy


def _quiet_ray() -> None:
    # Ray writes an auth token under $HOME otherwise; we only run local or
    # explicitly addressed clusters.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def _count_every_interaction_in_pop() -> None:
    """RecBole 1.2.1's ``Pop`` adds one per batch: ``item_cnt[item] = item_cnt[item] + 1``
    writes each repeated index once, so its counts are the number of training batches an
    item occurs in and saturate for popular items (on ML-1M the top items tie).  Count
    every interaction instead; the rest of the model is unchanged."""
    from recbole.model.general_recommender.pop import Pop

    def calculate_loss(self, interaction):
        item = interaction[self.ITEM_ID]
        self.item_cnt.index_add_(0, item, torch.ones_like(item).unsqueeze(1))
        self.max_cnt = torch.max(self.item_cnt, dim=0)[0]
        return torch.nn.Parameter(torch.zeros(1)).to(self.device)

    Pop.calculate_loss = calculate_loss


def exclude_history_in_full_sort(model) -> None:
    """``eval_exclude_history: true`` for one of RecBole's own sequential models (e.g.
    BERT4Rec), which do not read the key: its ``full_sort_predict`` scores the items of the
    input sequence -inf, as the plugin's models do.  Patches this instance only."""
    full_sort_predict = model.full_sort_predict

    def without_history(interaction):
        scores = full_sort_predict(interaction)
        history = interaction[model.ITEM_SEQ]  # padding is id 0, never a real item
        return scores.scatter(1, history.clamp(min=0), float("-inf"))

    model.full_sort_predict = without_history


@contextmanager
def isolated_argv():
    """RecBole's Config parses ``--key=value`` from ``sys.argv`` by itself.  Our entry
    points hand it every setting explicitly, so it must see an empty command line
    (under pytest it would otherwise read pytest's own flags)."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


_applied = False


def apply() -> None:
    """Apply every shim once per process."""
    global _applied
    if _applied:
        return
    _restore_numpy_aliases()
    _quiet_ray()
    _silence_sine_anomaly_detection()
    _let_recbole_load_its_checkpoints()
    _count_every_interaction_in_pop()
    _applied = True
