"""Length-bucketed training batches: rows of similar length share a batch.

A batch costs as much as its longest row (the models trim the padding columns at the end
of a batch, ``PQSequentialRecommender.trim_padding``).  Under a plain shuffle nearly every
ML-1M batch holds a 200-item user, so most of the work is padding.  ``LengthBucketSampler``
keeps the epoch random -- every row once, a fresh permutation each epoch, batches in random
order -- but sorts rows by length inside pools of a few batches before cutting them.
"""

from __future__ import annotations

from logging import getLogger

import torch
from torch.utils.data import Sampler

from recbole_pq.errors import ConfigError


class LengthBucketSampler(Sampler[int]):
    """Row indices whose consecutive ``batch_size`` chunks hold rows of similar length.

    Each epoch: a random permutation of the rows, cut into pools of ``pool_batches`` batches;
    each pool sorted by length and cut into batches; the batches shuffled.  A short batch
    (fewer rows than ``batch_size``) goes last, so the loader's fixed-size chunking of this
    order gives exactly these batches.  ``generator`` is the loader's own, so a seeded or
    resumed run draws the same epochs.
    """

    def __init__(self, lengths: torch.Tensor, batch_size: int, pool_batches: int, generator: torch.Generator):
        super().__init__()
        self.lengths = torch.as_tensor(lengths).flatten()
        self.batch_size = int(batch_size)
        self.pool_batches = int(pool_batches)
        self.generator = generator

    def __len__(self) -> int:
        return len(self.lengths)

    def batches(self) -> list[torch.Tensor]:
        """One epoch's batches of row indices, in training order."""
        order = torch.randperm(len(self.lengths), generator=self.generator)
        pool = self.batch_size * self.pool_batches
        batches = []
        for start in range(0, len(order), pool):
            rows = order[start:start + pool]
            rows = rows[torch.argsort(self.lengths[rows], stable=True)]
            batches.extend(rows.split(self.batch_size))
        full = [b for b in batches if len(b) == self.batch_size]
        short = [b for b in batches if len(b) < self.batch_size]
        shuffled = [full[i] for i in torch.randperm(len(full), generator=self.generator)]
        if short:  # at most one pool is short, so at most one batch: it goes last
            shuffled.append(torch.cat(short))
        return shuffled

    def __iter__(self):
        for batch in self.batches():
            yield from batch.tolist()


def check_bucket_config(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"train_length_buckets={value!r} must be an integer >= 0 "
                          f"(0: plain shuffle; n: sort rows by length within pools of n batches).")
    return value


def bucket_by_length(train_loader, config) -> None:
    """Make a RecBole training loader draw length-bucketed batches (``train_length_buckets``
    batches per pool; 0 leaves RecBole's shuffle).  The loader's ``batch_sampler`` cuts the
    sampler's order into ``step``-sized batches, so replacing its index sampler is enough."""
    pool_batches = check_bucket_config(config["train_length_buckets"])
    if pool_batches == 0 or not train_loader.shuffle:
        return
    lengths = train_loader._dataset.inter_feat[config["ITEM_LIST_LENGTH_FIELD"]]
    train_loader.batch_sampler.sampler = LengthBucketSampler(
        lengths, train_loader.batch_sampler.batch_size, pool_batches, train_loader.generator)
    getLogger().debug("training batches bucketed by length (pools of %d batches)", pool_batches)
