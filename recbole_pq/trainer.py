"""PQTrainer: RecBole's Trainer whose full-sort evaluation asks the model for top-k.

RecBole's stock evaluation builds a users x items score matrix and a users x items
positive matrix.  Here the model returns only its top-k ids (``full_sort_topk``), and
the ``rec.topk`` structure RecBole's metrics read is built from those ids and the
positive items, so evaluation memory is O(users x k).  Metrics that need every score
(AUC, GAUC, ...) fall back to the stock path.
"""

from __future__ import annotations

import torch
from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.trainer import Trainer
from recbole.utils import set_color
from tqdm import tqdm

from recbole_pq.checkpoint import load_checkpoint, plain_config, save_checkpoint

# What the collector can be asked for that a top-k list can provide.
TOPK_STRUCTS = ("rec.topk", "rec.items")
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

    # -- evaluation ---------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if not eval_data:
            return None
        if not (self.uses_topk_path and isinstance(eval_data, FullSortEvalDataLoader)
                and hasattr(self.model, "full_sort_topk")):
            if load_best_model:
                self._load_model_weights(model_file or self.saved_model_file)
            return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        if load_best_model:
            self._load_model_weights(model_file or self.saved_model_file)
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
    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        state = {
            "config": plain_config(self.config),
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": float(self.best_valid_score),
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
        }
        save_checkpoint(state, path)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {path}")

    def _load_model_weights(self, path) -> dict:
        checkpoint = load_checkpoint(path, map_location=self.device)
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.logger.info(f"Loading model structure and parameters from {path}")
        return checkpoint

    def resume_checkpoint(self, resume_file):
        checkpoint = self._load_model_weights(resume_file)
        self.saved_model_file = str(resume_file)
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")
