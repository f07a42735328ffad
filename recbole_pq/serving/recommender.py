"""Serving a trained plugin model: ``Recommender.load(checkpoint).recommend(histories, k)``.

No RecBole data set and no trainer: the checkpoint holds the plain config, the weights
(item codes included) and the item tokens, so histories and recommendations use the
data set's own item ids.  Scoring uses the fastest scorer for the item table (PQTopK
with the fused kernel for codes, matmul for dense tables), or PQTopK sharded over Ray
actors (``shards=S``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from recbole_pq.errors import CheckpointError, ConfigError
from recbole_pq.items.scoring import check_k, make_scorer
from recbole_pq.serving.checkpoint import load_checkpoint

logger = logging.getLogger(__name__)


class _InferenceConfig(dict):
    """A checkpoint's plain config read like RecBole's Config (a missing key reads None)."""

    def __getitem__(self, key):
        return self.get(key)


class _Catalogue:
    """What a model's constructor reads of RecBole's Dataset, from the checkpoint."""

    from_checkpoint = True  # no interactions: what data would choose (codes, dense head) comes from the weights

    def __init__(self, config, item_tokens: list[str]):
        self.item_field = config["ITEM_ID_FIELD"]
        self.field2id_token = {self.item_field: np.asarray(item_tokens, dtype=object)}

    def num(self, field_name: str) -> int:
        # Only the item count matters: codes come from the weights, not from the data.
        return len(self.field2id_token[self.item_field]) if field_name == self.item_field else 0


def build_model(checkpoint: dict, path) -> torch.nn.Module:
    """The plugin model of a checkpoint, weights loaded, in eval mode on CPU."""
    from recbole_pq.models import PLUGIN_MODELS

    config = _InferenceConfig(checkpoint["config"])
    name = config.get("model")
    if name not in PLUGIN_MODELS:
        raise CheckpointError(f"Checkpoint {path} holds model '{name}', which is not a recbole-pq model "
                              f"(serving supports {', '.join(sorted(PLUGIN_MODELS))}).")
    if "item_tokens" not in checkpoint:
        raise CheckpointError(f"Checkpoint {path} has no item tokens (written before recbole-pq saved them): "
                              f"train the model again to serve it.")
    # Codes assigned from data are a buffer of the weights: build with cheap random codes, then load.
    config.update(device="cpu", code_assignment="random")
    if name == "SASRecLISA":  # checkpoints from before lisa_codes existed learned their codes
        config["lisa_codes"] = "learned" if config.get("lisa_codes") in (None, "learned") else "random"
    model = PLUGIN_MODELS[name](config, _Catalogue(config, checkpoint["item_tokens"]))
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"Checkpoint {path}: weights do not fit model {name} ({err}).") from err
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return model.eval()


@dataclass
class OnlineUser:
    """A SASRecLISA user served online: the fixed-size state, plus the ids seen (for
    ``exclude_seen``; it grows with the history, the model state does not)."""

    state: object
    seen: set = field(default_factory=set)


class Recommender:
    """Top-k recommendations from a trained plugin model (see module doc)."""

    def __init__(self, model, scorer: str | None = None, shards: int | None = None,
                 ray_address: str | None = None, shard_dir: str | None = None):
        self.model = model
        self.tokens = np.asarray(model.item_tokens, dtype=object)
        self.token_to_id = {str(token): index for index, token in enumerate(self.tokens) if index > 0}
        has_codes = model.items.compressed
        if shards:
            from recbole_pq.serving.sharded import ShardedScorer

            model.scorer = ShardedScorer(model.items, shards, ray_address, shard_dir)
            return
        chosen = scorer if scorer not in (None, "auto") else ("pqtopk" if has_codes else "default")
        new_scorer = make_scorer(chosen)  # unknown names fail here, naming the allowed ones
        if chosen != "default" and not has_codes:
            raise ConfigError(f"scorer='{chosen}' needs compressed items; {type(model).__name__} "
                              f"has a dense table: use scorer='default'.")
        model.scorer = new_scorer

    @classmethod
    def load(cls, checkpoint: str | Path, scorer: str | None = None, shards: int | None = None,
             ray_address: str | None = None, shard_dir: str | None = None) -> "Recommender":
        """A Recommender from a checkpoint written by ``run_recbole_pq.py`` (best or -last file)."""
        state = load_checkpoint(checkpoint, map_location="cpu")
        return cls(build_model(state, checkpoint), scorer, shards, ray_address, shard_dir)

    @property
    def n_items(self) -> int:
        """Recommendable items (the padding id excluded)."""
        return len(self.tokens) - 1

    # -- tokens <-> ids ---------------------------------------------------------------
    def item_ids(self, history) -> list[int]:
        """Known items of one history as ids; unknown tokens are skipped with a warning."""
        if isinstance(history, (str, bytes)):
            raise ConfigError(f"a history is a list of item tokens, not the string {history!r} (split it first).")
        tokens = [str(token) for token in history]
        ids = [self.token_to_id.get(token) for token in tokens]
        unknown = [t for t, i in zip(tokens, ids) if i is None]
        known = [i for i in ids if i is not None]
        if not known:
            raise ConfigError(f"no item of the history {tokens[:10]} is in the catalogue of {self.n_items} items.")
        if unknown:
            logger.warning("skipped %d unknown item token(s): %s", len(unknown), ", ".join(unknown[:10]))
        return known

    def _batch(self, id_lists: list[list[int]]):
        """(B, L) left-aligned, zero-padded last-L ids and (B,) lengths, as the models take them."""
        max_len = self.model.max_seq_length
        item_seq = torch.zeros(len(id_lists), max_len, dtype=torch.long)
        lengths = torch.zeros(len(id_lists), dtype=torch.long)
        for row, ids in enumerate(id_lists):
            recent = ids[-max_len:]
            item_seq[row, :len(recent)] = torch.tensor(recent)
            lengths[row] = len(recent)
        return item_seq, lengths

    def _results(self, query, seen: list[set], k: int, exclude_seen: bool) -> list[dict]:
        check_k(k, len(self.tokens))
        if not isinstance(exclude_seen, bool):
            raise ConfigError(f"exclude_seen={exclude_seen!r} must be True or False.")
        exclude = None
        if exclude_seen:
            width = max((len(s) for s in seen), default=0)
            exclude = torch.zeros(len(seen), width, dtype=torch.long)
            for row, items in enumerate(seen):
                exclude[row, :len(items)] = torch.tensor(sorted(items), dtype=torch.long)
        values, ids = self.model.scorer.topk(query, self.model.items, k, exclude=exclude)
        out = []
        for row_values, row_ids in zip(values.tolist(), ids.tolist()):
            pairs = [(i, v) for i, v in zip(row_ids, row_values) if v != float("-inf")]
            out.append({"items": [str(self.tokens[i]) for i, _ in pairs], "scores": [float(v) for _, v in pairs]})
        return out

    # -- batch recommendations ------------------------------------------------------
    @torch.no_grad()
    def recommend(self, histories, k: int = 10, exclude_seen: bool = True) -> list[dict]:
        """Top-k for each history (a list of item tokens, oldest first).

        Returns one ``{"items": [token, ...], "scores": [float, ...]}`` per history, best
        first.  ``exclude_seen`` drops the history's own items (fewer than k remain only
        when the history covers nearly the whole catalogue)."""
        if isinstance(histories, (str, bytes)) or not isinstance(histories, Sequence):
            raise ConfigError(f"recommend takes a list of histories, not {type(histories).__name__} {histories!r}.")
        for index, history in enumerate(histories):
            if isinstance(history, (str, bytes)):
                continue  # item_ids names this mistake
            if not isinstance(history, (Sequence, np.ndarray)):
                raise ConfigError(f"histories[{index}] is {history!r} ({type(history).__name__}); each history is "
                                  f"a list of item tokens; for one user write recommend([[...]]).")
        if not histories:
            return []
        id_lists = [self.item_ids(history) for history in histories]
        item_seq, lengths = self._batch(id_lists)
        query = self.model.forward(item_seq, lengths)
        return self._results(query, [set(ids) for ids in id_lists], k, exclude_seen)

    # -- online mode (SASRecLISA) -------------------------------------------------------
    def _require_online(self) -> None:
        if not hasattr(self.model, "init_state"):
            raise ConfigError(f"online updates need SASRecLISA; this checkpoint holds {type(self.model).__name__}.")

    def start(self, history) -> OnlineUser:
        """A user's online state from a history of item tokens (one pass over it)."""
        self._require_online()
        ids = self.item_ids(history)
        return OnlineUser(self.model.init_state(ids), set(ids))

    def update(self, user: OnlineUser, item) -> OnlineUser:
        """Add one interaction to the user, in place, in constant time whatever the
        history's length; returns the user."""
        self._require_online()
        item_id = self.token_to_id.get(str(item))
        if item_id is None:
            raise ConfigError(f"item token {item!r} is not in the catalogue of {self.n_items} items.")
        user.state = self.model.advance(user.state, item_id)
        user.seen.add(item_id)
        return user

    @torch.no_grad()
    def recommend_online(self, user: OnlineUser, k: int = 10, exclude_seen: bool = True) -> dict:
        """Top-k for an online user (same format as one entry of ``recommend``)."""
        self._require_online()
        return self._results(self.model.state_output(user.state), [user.seen], k, exclude_seen)[0]
