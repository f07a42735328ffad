"""Sequence-to-sequence training rows, and the training interactions of a split.

RecBole's ``SequentialDataset`` turns every training interaction into one row
("prefix augmentation": a user with n items yields n-1 rows).  The original SASRec,
gSASRec and RecJPQ code instead trains one row per user and puts the loss on every
position.  ``Seq2SeqDataset`` keeps RecBole's loading, filtering and leave-one-out
split untouched and only rewrites the *training* split into that form; validation
and test rows are RecBole's own.
"""

from __future__ import annotations

import numpy as np
import torch
from recbole.data.dataset import SequentialDataset
from recbole.data.interaction import Interaction
from recbole.utils.enum_type import FeatureSource, FeatureType


TRAIN_MODES = ("seq2seq", "prefix")
# Suffix of the field that holds, for every input position, the item that follows it.
TARGET_LIST_SUFFIX = "_target_list"


def target_list_field(config) -> str:
    return config["ITEM_ID_FIELD"] + TARGET_LIST_SUFFIX


def to_seq2seq(train_dataset, config):
    """Rewrite a prefix-augmented training split into one row per user.

    Input ``item_id_list`` (B, L): the user's last L training inputs, left-aligned,
    zero-padded.  ``item_id_target_list`` (B, L): at position t the item that followed
    input t (0 = padding, no loss).  ``item_id`` stays the last target.
    """
    feat = train_dataset.inter_feat
    uid_field = config["USER_ID_FIELD"]
    iid_field = config["ITEM_ID_FIELD"]
    seq_field = iid_field + config["LIST_SUFFIX"]
    len_field = config["ITEM_LIST_LENGTH_FIELD"]
    users = feat[uid_field].numpy()
    if len(users) == 0:
        raise ValueError("The training split is empty: every user has fewer than 3 interactions.")

    # Every training interaction (for code assignment): all targets plus each user's first item.
    first_rows = _first_row_per_user(users)
    all_users = np.concatenate([users, users[first_rows]])
    all_items = np.concatenate([feat[iid_field].numpy(), feat[seq_field][first_rows, 0].numpy()])

    # RecBole sorted by (user, time) and the split keeps that order within a user,
    # so the last row of each user holds the longest, latest window.
    last_rows = np.flatnonzero(np.r_[users[1:] != users[:-1], True])
    rows = feat[torch.from_numpy(last_rows)]
    inputs = rows[seq_field]
    lengths = rows[len_field]
    targets = torch.zeros_like(inputs)
    targets[:, :-1] = inputs[:, 1:]
    targets[torch.arange(len(lengths)), lengths - 1] = rows[iid_field]
    positions = torch.arange(inputs.size(1)).unsqueeze(0)
    targets[positions >= lengths.unsqueeze(1)] = 0

    target_field = target_list_field(config)
    rows.update(Interaction({target_field: targets}))
    seq2seq = train_dataset.copy(rows)
    seq2seq.set_field_property(
        target_field, FeatureType.TOKEN_SEQ, FeatureSource.INTERACTION, inputs.size(1)
    )
    seq2seq.train_user_item = (all_users, all_items)
    return seq2seq


def _first_row_per_user(users: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.r_[True, users[1:] != users[:-1]])


def training_user_item(dataset, config) -> tuple[np.ndarray, np.ndarray]:
    """(user ids, item ids) of every training interaction, whatever the train mode."""
    if hasattr(dataset, "train_user_item"):
        return dataset.train_user_item
    feat = dataset.inter_feat
    users = feat[config["USER_ID_FIELD"]].numpy()
    items = feat[config["ITEM_ID_FIELD"]].numpy()
    seq_field = config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]
    if seq_field not in feat:
        return users, items
    first_rows = _first_row_per_user(users)
    return (
        np.concatenate([users, users[first_rows]]),
        np.concatenate([items, feat[seq_field][first_rows, 0].numpy()]),
    )


class Seq2SeqDataset(SequentialDataset):
    """RecBole's SequentialDataset whose training split is one row per user (see module doc)."""

    def build(self):
        train, valid, test = super().build()
        return [to_seq2seq(train, self.config), valid, test]
