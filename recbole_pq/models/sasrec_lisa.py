"""SASRecLISA: SASRec with LISA's codeword-histogram attention (Base, Soft, Mini).

- ``base``: one item codebook set (lisa_B x lisa_W); the attention histograms and the
  item vectors (input and target) are its hard codes, so served items are codes +
  codebooks and full-sort scoring is PQTopK over composed codewords.
- ``soft``: a small sequence codebook (lisa_seq_B x lisa_seq_W) whose softmax
  assignments form the histograms; items keep full embeddings (scored densely) and a
  reconstruction loss (weight ``lisa_recon_weight``) pulls them toward their codes.
- ``mini``: a small hard sequence codebook for the histograms plus a separate large
  item codebook (lisa_B x lisa_W) for input and target items: compressed like base.
- ``lisa_codes`` (base, mini): how items get their item-codebook codes.  ``learned``
  (the paper's, LightRec-style): picked from a learned item vector by a bilinear
  similarity, straight-through in training.  ``svd`` / ``random``: assigned once before
  training, as RecJPQ's sub-item ids (``recbole_pq.items.assignment``), and kept; only the
  codewords learn.  Learned codes churn (on ml-100k about 97% of the items changed
  codes in every epoch, and one codeword took most items), so the codewords chase
  moving targets; fixed codes learn much faster (docs/benchmarks/quality_notes.md).

Online use: ``init_state(history)`` and ``step(state, item)`` keep a (B, W) histogram
per user and answer in time independent of the history's length.  Positions beyond
MAX_ITEM_LIST_LENGTH - 1 are clamped to the last one, both in ``encode`` and online,
so a step equals a full recomputation over the whole history.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from logging import getLogger

import torch
from torch import nn

from recbole_pq.errors import ConfigError
from recbole_pq.items.assignment import CODE_ASSIGNMENTS
from recbole_pq.items.codebooks import CodebookQuantizer, QuantizedItemTable
from recbole_pq.items.dense import DenseItemEmbedding
from recbole_pq.items.sizing import starvation_warnings
from recbole_pq.items.sub_item_table import codes_for_dataset
from recbole_pq.layers.lisa import LISAEncoder, attention_context, codeword_histogram
from recbole_pq.models.base import PQSequentialRecommender

LISA_VARIANTS = ("base", "soft", "mini")
LISA_CODES = ("learned",) + CODE_ASSIGNMENTS
# float32 tensors of (batch x L x B x W) alive at once in a training step (histograms,
# logits, weights, their gradients) and in an evaluation step (no gradients): used to
# refuse configurations that cannot fit.
LIVE_TENSORS_TRAIN, LIVE_TENSORS_EVAL = 8, 3


@dataclass
class LISAState:
    """A user's online state: O(B x W) numbers, whatever the history's length."""

    histogram: torch.Tensor  # (B, W) codeword histogram of the history
    last_item: int  # id of the latest item (its codes are the attention query)
    length: int  # number of items seen (sets the clamped position)


class SASRecLISA(PQSequentialRecommender):
    """SASRec whose self-attention is LISA's linear-time codeword-histogram attention."""

    @staticmethod
    def codebook_sizes(config):
        """((item B, W), (sequence B, W)): base uses the item codebooks for both."""
        item_books = (config["lisa_B"], config["lisa_W"])
        return item_books, item_books if config["lisa_variant"] == "base" else (config["lisa_seq_B"], config["lisa_seq_W"])

    @classmethod
    def compressed_items(cls, config) -> bool:
        return config["lisa_variant"] != "soft"  # soft learns a full embedding per item

    @classmethod
    def check_config(cls, config) -> None:
        super().check_config(config)
        variant = config["lisa_variant"]
        if variant not in LISA_VARIANTS:
            raise ConfigError(f"lisa_variant='{variant}' is not supported; use one of {list(LISA_VARIANTS)}.")
        if config["lisa_codes"] not in LISA_CODES:
            raise ConfigError(f"lisa_codes='{config['lisa_codes']}' is not supported; use one of {list(LISA_CODES)}.")
        if float(config["lisa_decay"]) < 0:
            raise ConfigError(f"lisa_decay={config['lisa_decay']} must be >= 0 (0 = no decay, the paper).")
        if variant == "soft":
            cls.require_dense_scorer(config, "lisa_variant=soft scores full item embeddings (base and mini are compressed)")
        item_books, seq_books = cls.codebook_sizes(config)
        for name, (b, w) in (("lisa_B/lisa_W", item_books), ("lisa_seq_B/lisa_seq_W", seq_books)):
            if not (isinstance(b, int) and isinstance(w, int) and b >= 1 and w >= 2):
                raise ConfigError(f"{name}={b}/{w}: need integers B >= 1 and W >= 2.")
        b, w = seq_books
        limit = float(config["lisa_memory_limit_gb"]) * 2**30
        for phase, batch, tensors in (("train", config["train_batch_size"], LIVE_TENSORS_TRAIN),
                                      ("eval", config["eval_batch_size"], LIVE_TENSORS_EVAL)):
            estimate = batch * config["MAX_ITEM_LIST_LENGTH"] * b * w * 4 * tensors
            if estimate > limit:
                raise ConfigError(
                    f"LISA histograms need about {estimate / 2**30:.1f} GiB in {phase} ({phase}_batch_size={batch} x "
                    f"length {config['MAX_ITEM_LIST_LENGTH']} x B={b} x W={w} x {tensors} float32 tensors), over "
                    f"lisa_memory_limit_gb={config['lisa_memory_limit_gb']}: lower B, W, the batch or the length.")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)  # runs check_config before anything is allocated
        self.variant = config["lisa_variant"]
        dim, std, tau = config["hidden_size"], config["initializer_range"], config["lisa_tau"]
        self.causal = bool(config["lisa_causal"])
        self.gamma = math.exp(-float(config["lisa_decay"]))
        self.recon_weight = float(config["lisa_recon_weight"])
        item_books, seq_books = self.codebook_sizes(config)
        if self.variant == "soft":
            self.seq_quantizer = CodebookQuantizer(*seq_books, dim, tau, std)
            self.items = DenseItemEmbedding(self.n_items, dim, std)
        else:
            method = config["lisa_codes"]
            fixed = None if method == "learned" else codes_for_dataset(method, *item_books, config, dataset)
            self.items = QuantizedItemTable(self.n_items, CodebookQuantizer(*item_books, dim, tau, std), std, fixed)
            self.seq_quantizer = self.items.quantizer if self.variant == "base" else \
                CodebookQuantizer(*seq_books, dim, tau, std)
            # codewords are D wide and summed (no d/m splits): only the sharing can starve them
            for message in starvation_warnings(self.n_items, dim, *item_books, names=("lisa_B", "lisa_W"),
                                               split_dims=False):
                getLogger().warning("%s.", message)
        self.encoder = LISAEncoder(config, n_codebooks=seq_books[0])
        self.encoder.apply(self._init_weights)
        self.log_item_memory()

    # -- sequence side --------------------------------------------------------------
    def sequence_codes(self, item_seq):
        """(N, L) ids -> (input vectors (N, L, D), assignments (N, L, B, W) zero at padding,
        hard codes (N, L, B) or None for soft assignments)."""
        if self.variant == "soft":
            vectors = self.items(item_seq)
            assignments = self.seq_quantizer.assign(vectors, soft=True)[0]
            inputs, codes = vectors, None
        elif self.variant == "base":
            if self.training and self.items.learned:
                assignments, codes, inputs = self.seq_quantizer.assign(self.items.vectors[item_seq])
            else:
                inputs, codes = self.items(item_seq), self.items.codes[item_seq].long()
                assignments = nn.functional.one_hot(codes, self.items.b).to(inputs.dtype)
        else:  # mini: the sequence codebook quantises the item's vector (learned E, or its codewords)
            vectors = self.items.vectors[item_seq] if self.items.learned else self.items(item_seq)
            assignments, codes, _ = self.seq_quantizer.assign(vectors)
            inputs = self.items(item_seq)
        return inputs, assignments * (item_seq != 0).unsqueeze(-1).unsqueeze(-1).to(assignments.dtype), codes

    def encode(self, item_seq, item_seq_len):
        inputs, assignments, codes = self.sequence_codes(item_seq)
        histograms, pair_log_weights = attention_context(assignments, codes, causal=self.causal, gamma=self.gamma)
        return self.encoder(inputs, assignments, histograms, self.seq_quantizer.codebooks, codes=codes,
                            pair_log_weights=pair_log_weights)

    def calculate_loss(self, interaction):
        loss = super().calculate_loss(interaction)
        if self.variant == "soft" and self.recon_weight > 0:
            ids = interaction[self.ITEM_SEQ].unique()
            vectors = self.items(ids[ids > 0])
            loss = loss + self.recon_weight * (vectors - self.seq_quantizer.assign(vectors, soft=True)[2]).pow(2).sum(-1).mean()
        return loss

    # -- online mode -----------------------------------------------------------------
    def _item_assignment(self, item: int) -> torch.Tensor:
        ids = torch.tensor([[item]], device=self.encoder.position_embedding.weight.device)
        return self.sequence_codes(ids)[1][0, 0]  # (B, W)

    @torch.no_grad()
    def init_state(self, history) -> LISAState:
        """A user's state from a non-empty history of item ids (one pass over it)."""
        self.eval()
        history = torch.as_tensor(history, dtype=torch.long).flatten()
        if history.numel() == 0 or int(history.min()) < 1 or int(history.max()) >= self.n_items:
            raise ValueError(f"history must be non-empty item ids in [1, {self.n_items - 1}], got {history.tolist()[:10]}")
        _, assignments, _ = self.sequence_codes(history.unsqueeze(0))
        histogram = codeword_histogram(assignments, causal=True, gamma=self.gamma)[0, -1]
        return LISAState(histogram.clone(), int(history[-1]), int(history.numel()))

    @torch.no_grad()
    def advance(self, state: LISAState, item: int) -> LISAState:
        """The state after one more interaction, in O(B W D) whatever the history's length."""
        if not 1 <= int(item) < self.n_items:
            raise ValueError(f"item id {item} is outside the catalogue [1, {self.n_items - 1}]")
        self.eval()
        histogram = self.gamma * state.histogram + self._item_assignment(int(item))
        return LISAState(histogram, int(item), state.length + 1)

    def step(self, state: LISAState, item: int, k: int = 10):
        """Add one interaction and return (new state, (values, ids) top-k)."""
        new_state = self.advance(state, item)
        return new_state, self.recommend(new_state, k)

    @torch.no_grad()
    def state_output(self, state: LISAState) -> torch.Tensor:
        """(1, D) user vector after the state's history."""
        if not self.causal:
            raise ValueError("the online step needs lisa_causal: true")
        ids = torch.tensor([[state.last_item]], device=state.histogram.device)
        inputs, assignment, codes = self.sequence_codes(ids)
        position = self.encoder.positions(state.length, ids.device)[-1:]
        return self.encoder(inputs, assignment, state.histogram.view(1, 1, *state.histogram.shape),
                            self.seq_quantizer.codebooks, positions=position, codes=codes)[:, 0]

    def recommend(self, state: LISAState, k: int = 10):
        """Top-k (values, ids) for the next item after the state's history."""
        return self.scorer.topk(self.state_output(state), self.items, k)
