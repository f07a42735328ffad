"""PQTrainer: RecBole's Trainer whose full-sort evaluation asks the model for top-k.

RecBole's stock evaluation builds a users x items score matrix and a users x items
positive matrix.  Here the model returns only its top-k ids (``full_sort_topk``), and
the ``rec.topk`` structure RecBole's metrics read is built from those ids and the
positive items, so evaluation memory is O(users x k).  Metrics that need every score
(AUC, GAUC, ...) fall back to the stock path.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.trainer import Trainer
from recbole.utils import set_color
from tqdm import tqdm

from recbole_pq.precision import autocast_dtype
from recbole_pq.serving.checkpoint import CheckpointError, load_checkpoint, load_weights, plain, plain_config, save_checkpoint

# What the collector can be asked for that a top-k list cannot provide.
SCORE_STRUCTS = ("rec.meanrank", "rec.score", "data.label")


def topk_struct(topk_ids: torch.Tensor, positive_u: torch.Tensor, positive_i: torch.Tensor) -> torch.Tensor:
    """RecBole's ``rec.topk``: (B, k) hit flags followed by a (B, 1) count of positives."""
    n_users = topk_ids.shape[0]
    # Top-k ids are distinct and so are a user's positives: each slot matches at most once.
    matches = (topk_ids[positive_u] == positive_i.unsqueeze(1)).int()  # (P, k)
    hits = torch.zeros_like(topk_ids, dtype=torch.int).index_add_(0, positive_u, matches)
    pos_len = torch.bincount(positive_u, minlength=n_users).to(torch.int).unsqueeze(1)
    return torch.cat([hits, pos_len], dim=1)


class PQTrainer(Trainer):
    """Trainer for the plugin's models: top-k evaluation and safe checkpoints."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.max_k = max(config["topk"])
        self.uses_topk_path = not any(self.eval_collector.register.need(s) for s in SCORE_STRUCTS)
        if not self.uses_topk_path:
            self.logger.info(
                "PQTrainer: metrics %s need every item's score; evaluating with the stock "
                "users x items path.", config["metrics"])
        self.autocast_dtype = autocast_dtype(config["train_precision"], self.device)
        self.logger.info("training precision: %s (train_precision=%s)",
                         "float32" if self.autocast_dtype is None else f"{self.autocast_dtype} autocast",
                         config["train_precision"])

    # -- training -----------------------------------------------------------------
    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        """RecBole's epoch, with the loss computed under ``train_precision``'s autocast."""
        loss_func = loss_func or self.model.calculate_loss
        if self.autocast_dtype is not None:
            loss_func = self._autocast(loss_func)
        return super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)

    def _autocast(self, loss_func):
        def loss_in_precision(interaction):
            with torch.autocast(self.device.type, dtype=self.autocast_dtype):
                return loss_func(interaction).float()
        return loss_in_precision

    # -- evaluation ---------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if not eval_data:
            return None
        if load_best_model:
            self._load_model_weights(model_file or self.saved_model_file)
        if not (self.uses_topk_path and isinstance(eval_data, FullSortEvalDataLoader)
                and hasattr(self.model, "full_sort_topk")):
            return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        self.model.eval()
        batches = tqdm(eval_data, total=len(eval_data), ncols=100,
                       desc=set_color("Evaluate   ", "pink")) if show_progress else eval_data
        collector = self.eval_collector
        for interaction, history_index, positive_u, positive_i in batches:
            if history_index is not None:
                raise NotImplementedError("PQTrainer evaluates sequential data (no history masking).")
            _, topk_ids = self.model.full_sort_topk(interaction.to(self.device), self.max_k)
            topk_ids = topk_ids.cpu()
            if collector.register.need("rec.items"):
                collector.data_struct.update_tensor("rec.items", topk_ids)
            if collector.register.need("rec.topk"):
                collector.data_struct.update_tensor("rec.topk", topk_struct(topk_ids, positive_u, positive_i))
        collector.model_collect(self.model)
        result = self.evaluator.evaluate(collector.get_data_struct())
        self.wandblogger.log_eval_metrics(result, head="eval")
        return result

    # -- checkpoints --------------------------------------------------------------
    def _checkpoint_state(self, epoch) -> dict:
        """What every checkpoint holds: plain config, weights, optimiser, early-stopping state."""
        return {
            "config": plain_config(self.config),
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": float(self.best_valid_score),
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
            "item_tokens": [str(token) for token in self.model.item_tokens],
        }

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        save_checkpoint(self._checkpoint_state(epoch), path)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {path}")

    def _load_model_weights(self, path, checkpoint=None) -> dict:
        checkpoint = checkpoint or load_checkpoint(path, map_location=self.device)
        load_weights(self.model, checkpoint, path, self.config)
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.logger.info(f"Loading model structure and parameters from {path}")
        return checkpoint

    # -- resuming an interrupted run ---------------------------------------------------
    @property
    def last_checkpoint_file(self) -> str:
        """Written after every evaluated epoch: everything needed to continue exactly."""
        return self.saved_model_file[: -len(".pth")] + "-last.pth"

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        def after_epoch(epoch_idx, valid_score):
            if saved:
                self._save_resume_state(epoch_idx, train_data)
            if callback_fn:
                callback_fn(epoch_idx, valid_score)

        return super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn=after_epoch)

    def _save_resume_state(self, epoch, train_data) -> None:
        state = self._checkpoint_state(epoch)
        state.update(
            best_valid_result=plain(dict(self.best_valid_result or {})),
            best_model_file=self.saved_model_file,
            rng={"torch": torch.get_rng_state(), "numpy": _numpy_state(), "python": _python_state(),
                 "loader": train_data.generator.get_state()},
        )
        save_checkpoint(state, self.last_checkpoint_file)

    def resume_checkpoint(self, resume_file, train_data=None):
        """Continue from a ``-last.pth`` file: weights, optimiser, early-stopping state and
        every random generator, so the run ends as an uninterrupted one would."""
        checkpoint = load_checkpoint(resume_file, map_location=self.device)
        if "rng" not in checkpoint:
            raise CheckpointError(f"{resume_file} is a best-model checkpoint; resume from the run's '-last.pth' file.")
        if checkpoint["config"].get("model") != self.config["model"]:
            raise CheckpointError(f"{resume_file} was written by model {checkpoint['config'].get('model')}, "
                                  f"not {self.config['model']}.")
        self._load_model_weights(resume_file, checkpoint)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        # stored as plain floats; back to the evaluator's own type, so the resumed run's
        # "best valid" line reads as an unbroken run's
        self.best_valid_result = OrderedDict((key, np.float64(value))
                                             for key, value in (checkpoint["best_valid_result"] or {}).items()) or None
        # The stored name, in the resume file's own folder: a run whose folder was moved or
        # copied keeps writing there, not to the folder it was first started in.
        self.saved_model_file = str(Path(resume_file).with_name(Path(checkpoint["best_model_file"]).name))
        rng = checkpoint["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(_numpy_state_from(rng["numpy"]))
        random.setstate(_python_state_from(rng["python"]))
        if train_data is not None:
            train_data.generator.set_state(rng["loader"])
        self.logger.info(f"Checkpoint {resume_file} loaded. Resume training from epoch {self.start_epoch}")


# numpy's and Python's generator states as plain data (weights-only loadable).
def _numpy_state():
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _numpy_state_from(state):
    return (state["name"], state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"], state["cached"])


def _python_state():
    version, internal, gauss = random.getstate()
    return {"version": version, "internal": list(internal), "gauss": gauss}


def _python_state_from(state):
    return (state["version"], tuple(state["internal"]), state["gauss"])
