"""gBERT4Rec and gBERT4RecJPQ: BERT4Rec trained with sampled negatives and gBCE.

Masked-item prediction over a bidirectional encoder (RecBole's Transformer blocks),
scored at the masked positions against the positive plus ``neg_samples`` uniform
negatives with the gBCE loss (Petrov & Macdonald, RecSys'23).  The two classes differ
only in the item table: dense (N, d) or RecJPQ sub-item ids.

The mask token has id N (one past the last item) and its own learned d-wide input
embedding, outside the item table: it is never scored, never sampled as a negative,
and needs no code.
"""

from __future__ import annotations

import torch
from torch import nn

from recbole_pq.errors import ConfigError
from recbole_pq.layers.sasrec_encoder import SASRecEncoder
from recbole_pq.models.base import PQSequentialRecommender


class gBERT4RecNetwork(PQSequentialRecommender):  # noqa: N801 (the paper's name)
    """BERT4Rec + gBCE over the item table its preset names (``item_table``), tied."""

    @classmethod
    def check_config(cls, config) -> None:
        super().check_config(config)
        if not 0.0 < float(config["mask_ratio"]) < 1.0:
            raise ConfigError(f"mask_ratio={config['mask_ratio']} must lie in (0, 1).")
        if not 0.0 <= float(config["next_item_rows"]) < 1.0:
            raise ConfigError(f"next_item_rows={config['next_item_rows']} must lie in [0, 1).")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.mask_ratio = config["mask_ratio"]
        self.next_item_rows = float(config["next_item_rows"])
        self.mask_token = self.n_items  # one past the last item id
        self.items = self.build_item_table(config, dataset)
        self.mask_embedding = nn.Parameter(torch.randn(config["hidden_size"]) * self.initializer_range)
        self.encoder = SASRecEncoder(config)
        self.encoder.apply(self._init_weights)
        self.log_item_memory()

    def embed(self, item_seq: torch.Tensor) -> torch.Tensor:
        """(B, L) ids, mask token included -> (B, L, d)."""
        is_mask = item_seq == self.mask_token
        emb = self.items(item_seq.masked_fill(is_mask, 0))
        return torch.where(is_mask.unsqueeze(-1), self.mask_embedding, emb)

    def encode(self, item_seq, item_seq_len):
        return self.encoder(self.embed(item_seq), self.get_attention_mask(item_seq, bidirectional=True))

    @staticmethod
    def append_item(item_seq, item_seq_len, items):
        """Put ``items`` (B,) after each row's last item; full rows shift left by one.

        Returns the new (B, L) sequence and the (B,) positions written."""
        max_len = item_seq.shape[1]
        full = item_seq_len >= max_len  # rows with no free slot
        shifted = torch.where(full.unsqueeze(1), torch.roll(item_seq, -1, dims=1), item_seq)
        position = torch.clamp(item_seq_len, max=max_len - 1)
        return shifted.scatter(1, position.unsqueeze(1), items.unsqueeze(1)), position

    def with_mask_appended(self, item_seq, item_seq_len):
        """The history followed by the mask token: (B, L) sequence, (B,) mask positions."""
        return self.append_item(item_seq, item_seq_len, torch.full_like(item_seq_len, self.mask_token))

    def last_states(self, item_seq, item_seq_len):
        """(B, L), (B,) -> (B, d): the state at a mask token appended after the history."""
        item_seq = self.trim_padding(item_seq_len, item_seq, spare=1)  # a free slot for the mask
        masked, position = self.with_mask_appended(item_seq, item_seq_len)
        return self.gather_indexes(self.encode(masked, item_seq_len), position)

    def full_training_sequence(self, interaction):
        """The row's training items as one (B, L) sequence + (B,) lengths.

        Both train modes keep the last target apart from ``item_id_list``: append it."""
        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        if self.train_mode == "seq2seq":
            targets = interaction[self.TARGET_SEQ]
            last = targets.gather(1, (item_seq_len - 1).unsqueeze(1)).squeeze(1)
        else:
            last = interaction[self.POS_ITEM_ID]
        item_seq = self.trim_padding(item_seq_len, item_seq, spare=1)  # a free slot for the last target
        seq, _ = self.append_item(item_seq, item_seq_len, last)
        return seq, torch.clamp(item_seq_len + 1, max=item_seq.shape[1])

    def training_positions(self, interaction):
        """Mask ``mask_ratio`` of the real items (at least one per row: the last); returns
        the (B, L, d) states, the (B, L) items and the (B, L) mask of the hidden ones.

        A share ``next_item_rows`` of the rows (of two items or more) instead ends at a
        random position e >= 1, with only item e masked and nothing after it: the test's
        case, a mask after the history with no right context, which the Cloze masks give
        almost never (on ML-1M about one target in 90 has no item to its right).  BERT4Rec
        (Sun et al., CIKM'19, section 3.6) adds rows that mask only the last item for this
        reason; a random end gives every position of a one-row-per-user sequence a turn."""
        seq, lengths = self.full_training_sequence(interaction)
        positions = torch.arange(seq.shape[1], device=seq.device).unsqueeze(0)
        real = positions < lengths.unsqueeze(1)
        masked = (torch.rand(seq.shape, device=seq.device) < self.mask_ratio) & real
        no_mask = ~masked.any(dim=1)
        masked[no_mask, lengths[no_mask] - 1] = True
        inputs = seq.masked_fill(masked, self.mask_token)
        if self.next_item_rows > 0.0:
            next_item = (torch.rand(lengths.shape, device=seq.device) < self.next_item_rows) & (lengths >= 2)
            end = 1 + (torch.rand(lengths.shape, device=seq.device) * (lengths - 1)).long()  # in [1, length - 1]
            end = torch.minimum(end, lengths - 1).unsqueeze(1)
            masked = torch.where(next_item.unsqueeze(1), positions == end, masked)
            next_inputs = seq.masked_fill(positions == end, self.mask_token).masked_fill(positions > end, 0)
            inputs = torch.where(next_item.unsqueeze(1), next_inputs, inputs)
            lengths = torch.where(next_item, end.squeeze(1) + 1, lengths)
        return self.encode(inputs, lengths), seq, masked


class gBERT4RecJPQ(gBERT4RecNetwork):  # noqa: N801
    """gBERT4Rec whose item table (input and output, tied) is RecJPQ sub-item ids."""

    item_table = "codes"


class gBERT4Rec(gBERT4RecNetwork):  # noqa: N801
    """gBERT4Rec with an (N, d) item table."""

    item_table = "dense"
    compressed_twin = "gBERT4RecJPQ"
