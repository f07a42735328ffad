"""What every plugin model shares: item table, losses, scoring, RecBole's model API.

A subclass builds ``self.items`` (an item table with ``forward``/``reconstruct``/
``sub_item_scores``) and implements ``encode`` (all positions) -- the rest is here.
"""

from __future__ import annotations

from logging import getLogger

import torch
from torch import nn
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType

from recbole_pq.data.seq2seq import target_list_field
from recbole_pq.errors import ConfigError
from recbole_pq.items.dense import DenseItemEmbedding
from recbole_pq.items.diagnostics import code_usage
from recbole_pq.items.scoring import make_scorer
from recbole_pq.items.sub_item_table import check_pq_config, item_code_embedding_from_config
from recbole_pq.losses import (bpr_loss, check_loss_config, gbce_beta, gbce_loss, sample_negatives,
                               sampled_logit_offset, softmax_cross_entropy)
from recbole_pq.trainer import PQTrainer


def check_exclude_history(value) -> bool:
    """None (the key absent: a checkpoint or config from before it existed) is RecBole's ranking."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ConfigError(f"eval_exclude_history={value!r} must be true or false (true: rank without the "
                          f"items of the user's input history, as the RecJPQ and gSASRec papers do).")
    return value


# Evaluation batches are encoded this many rows at a time, sorted by length (``forward``).
EVAL_CHUNK_ROWS = 256
# Item tables a SASRec or gBERT4Rec network can be built with (config key ``item_table``).
ITEM_TABLES = ("dense", "codes")


class PQSequentialRecommender(SequentialRecommender):
    """Base of the plugin's sequential models (RecBole's four-method API + ``full_sort_topk``)."""

    input_type = InputType.POINTWISE
    supports_seq2seq = True  # scores every position: can train with train_mode=seq2seq
    trainer_class = PQTrainer
    # The preset's item table, which the ``item_table`` config key overrides (ITEM_TABLES);
    # None: the model builds its own (LISA's codebooks) and refuses the key.
    item_table: str | None = None
    compressed_twin: str | None = None  # a dense preset's sub-item-id preset, named in errors

    @classmethod
    def check_config(cls, config) -> None:
        """Checks that need no data: run by build_config, so a typo fails in the first second."""
        check_loss_config(config["loss_type"], config["gbce_t"], config["neg_samples"],
                          neg_sampling=config["neg_sampling"] or "sequence")
        check_exclude_history(config["eval_exclude_history"])
        make_scorer(cls.scorer_name(config), config["pq_chunk_size"], config["pq_backend"])
        kind = cls.table_kind(config)
        if kind == "codes":
            check_pq_config(config)
        elif kind == "dense":
            twin = f" ({cls.compressed_twin} has codes)" if cls.compressed_twin and kind == cls.item_table else ""
            cls.require_dense_scorer(config, f"{cls.__name__} has a dense item table{twin}")

    @classmethod
    def table_kind(cls, config) -> str | None:
        """The item table this configuration builds: the ``item_table`` key, else the preset's."""
        value = config["item_table"]
        if value is None:
            return cls.item_table
        if cls.item_table is None:
            raise ConfigError(f"item_table={value!r}: {cls.__name__} builds its own item table; the key applies to "
                              f"the SASRec and gBERT4Rec presets.")
        if value not in ITEM_TABLES:
            raise ConfigError(f"item_table={value!r} is not an item table: use one of {', '.join(ITEM_TABLES)} "
                              f"(dense: an (N, d) table; codes: RecJPQ sub-item ids).")
        return value

    @classmethod
    def compressed_items(cls, config) -> bool:
        """Whether this configuration's item table has codes (the PQ scorers need them)."""
        return cls.table_kind(config) == "codes"

    @classmethod
    def scorer_name(cls, config) -> str:
        """``scorer: auto`` (the default): the PQ scan for compressed tables, matmul for dense ones."""
        if config["scorer"] == "auto":
            return "pqtopk" if cls.compressed_items(config) else "default"
        return config["scorer"]

    def build_item_table(self, config, dataset):
        """The item table named by ``item_table`` (``table_kind``)."""
        if self.table_kind(config) == "codes":
            return item_code_embedding_from_config(config, dataset)
        return DenseItemEmbedding(self.n_items, config["hidden_size"], config["initializer_range"])

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.check_config(config)  # also for models built without build_config
        self.loss_type = config["loss_type"]
        self.neg_samples = config["neg_samples"]
        self.neg_sampling = config["neg_sampling"] or "sequence"  # absent in configs from before the key
        self.gbce_t = config["gbce_t"]
        check_loss_config(self.loss_type, self.gbce_t, self.neg_samples, self.n_items)  # the catalogue bound
        self.train_mode = config["train_mode"]
        # Length-bucketed batches hold rows of similar length, so one batch has 10x the loss
        # positions of another; a per-batch mean would then give a short row's position that
        # much more weight than a long row's.  Each batch's mean is weighed by its rows' lengths
        # over a mean training batch's, which keeps the per-position weights of a plain shuffle.
        self.mean_batch_length = None  # summed row lengths of an average training batch
        if config["train_length_buckets"] and self.train_mode == "seq2seq" and hasattr(dataset, "inter_feat"):
            lengths = dataset.inter_feat[self.ITEM_SEQ_LEN].float().clamp(max=self.max_seq_length)
            self.mean_batch_length = float(lengths.mean()) * config["train_batch_size"]
        self.TARGET_SEQ = target_list_field(config)
        self.scorer = make_scorer(self.scorer_name(config), config["pq_chunk_size"], config["pq_backend"])
        self.initializer_range = config["initializer_range"]
        self.eval_exclude_history = check_exclude_history(config["eval_exclude_history"])
        # Original item tokens by id (id 0 = padding): saved in checkpoints so a served
        # model speaks the data set's ids (recbole_pq.Recommender).
        self.item_tokens = dataset.field2id_token[self.ITEM_ID]

    @staticmethod
    def require_dense_scorer(config, why: str) -> None:
        """Dense item tables have no codes: only the ``default`` scorer can rank them."""
        if config["scorer"] not in ("default", "auto"):
            raise ConfigError(f"scorer='{config['scorer']}' needs compressed items, but {why}: use scorer=default.")

    def _init_weights(self, module):
        """RecBole SASRec's initialisation (apply it to the encoder)."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    # -- to implement -------------------------------------------------------------
    def encode(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """(B, L) item ids -> (B, L, d) user states, one per position."""
        raise NotImplementedError

    def check_item_ids(self, item_ids: torch.Tensor) -> None:
        """Ids outside [0, n_items) fail here, naming the id, not deep inside an index op."""
        if item_ids.numel() and (int(item_ids.min()) < 0 or int(item_ids.max()) >= self.n_items):
            bad = item_ids[(item_ids < 0) | (item_ids >= self.n_items)][0].item()
            raise ValueError(f"item id {bad} is outside the catalogue: ids are 0 (padding) to {self.n_items - 1}.")

    def trim_padding(self, item_seq_len: torch.Tensor, *sequences: torch.Tensor, spare: int = 0):
        """Drop the all-padding columns at the end of left-aligned (B, L) sequences: each
        becomes (B, L') with L' = min(L, longest row + ``spare``, MAX_ITEM_LIST_LENGTH).  Real
        positions keep their index (positions are learned per index), so a real position's
        state is unchanged: causal attention never looks right, bidirectional attention masks
        padding keys."""
        length = sequences[0].shape[1]
        keep = min(length, int(item_seq_len.max()) + spare, self.max_seq_length) if item_seq_len.numel() else length
        trimmed = tuple(seq[:, :keep] for seq in sequences)
        return trimmed[0] if len(trimmed) == 1 else trimmed

    # -- RecBole API ------------------------------------------------------------
    def forward(self, item_seq, item_seq_len):
        """(B, L), (B,) -> (B, d): the state after the last real item.

        Outside training a large batch (RecBole evaluates 4096 users at a time) is encoded
        in chunks of ``EVAL_CHUNK_ROWS`` rows of similar length, each trimmed to its longest
        row: the Transformer then never runs on most of the padding, and a chunk's
        activations stay in cache.  A row's state does not depend on the other rows."""
        self.check_item_ids(item_seq)
        if self.training or len(item_seq) <= EVAL_CHUNK_ROWS:
            return self.last_states(item_seq, item_seq_len)
        order = torch.argsort(item_seq_len, stable=True)
        sorted_states = torch.cat([self.last_states(item_seq[rows], item_seq_len[rows])
                                   for rows in order.split(EVAL_CHUNK_ROWS)])
        return sorted_states[torch.argsort(order)]  # back to the batch's order

    def last_states(self, item_seq, item_seq_len):
        """``forward`` of one chunk: (B, L), (B,) -> (B, d), trimmed to the longest row."""
        item_seq = self.trim_padding(item_seq_len, item_seq)
        return self.gather_indexes(self.encode(item_seq, item_seq_len), item_seq_len - 1)

    def training_positions(self, interaction):
        """(B, L, d) states, (B, L) target ids and a (B, L) mask of the positions that have a
        loss (prefix mode: L = 1, the last position)."""
        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        if self.train_mode == "seq2seq":
            item_seq, targets = self.trim_padding(item_seq_len, item_seq, interaction[self.TARGET_SEQ])
            return self.encode(item_seq, item_seq_len), targets, targets > 0
        targets = interaction[self.POS_ITEM_ID].unsqueeze(1)
        return self.forward(item_seq, item_seq_len).unsqueeze(1), targets, torch.ones_like(targets, dtype=torch.bool)

    def calculate_loss(self, interaction):
        return self.loss_from_positions(*self.training_positions(interaction)) * self.batch_weight(interaction)

    def batch_weight(self, interaction) -> float:
        """This batch's summed row lengths over an average training batch's (1.0 outside
        length-bucketed training): a batch's mean loss then counts as its share of the
        epoch's positions, whatever its rows' lengths."""
        if not (self.training and self.mean_batch_length):
            return 1.0
        return float(interaction[self.ITEM_SEQ_LEN].clamp(max=self.max_seq_length).sum()) / self.mean_batch_length

    def loss_from_positions(self, states, targets, mask):
        """Loss over the masked positions of (B, L, d) states with (B, L) targets."""
        query, positives = states[mask], targets[mask]
        if self.loss_type == "CE":
            return softmax_cross_entropy(query, self.items.reconstruct(), positives)
        if self.neg_sampling == "position":  # (P, k) negatives: (P, k, d) item vectors
            negatives = sample_negatives((query.shape[0], self.neg_samples), self.n_items, device=states.device)
            neg_logits = torch.bmm(self.items(negatives), query.unsqueeze(2)).squeeze(2).float()  # (P, k)
        else:
            # Each row (one user's sequence) draws its own k uniform negatives, shared by its
            # positions: (B, k, d) embeddings and one batched product, not (P, k, d).  Negatives
            # shared by a whole batch made sampled-loss training fail (ml-100k: gBERT4Rec valid
            # NDCG@10 0.003 after 20 epochs, vs 0.02 with CE).
            negatives = sample_negatives((states.shape[0], self.neg_samples), self.n_items, device=states.device)
            neg_logits = torch.bmm(states, self.items(negatives).transpose(1, 2))[mask].float()  # (P, k)
        pos_logits = (query * self.items(positives)).sum(-1).float()  # the loss in float32 under autocast
        if self.loss_type == "BPR":
            return bpr_loss(pos_logits, neg_logits)
        beta = 1.0 if self.loss_type == "BCE" else gbce_beta(self.neg_samples, self.n_items - 1, self.gbce_t)
        offset = sampled_logit_offset(beta, self.neg_samples)
        return gbce_loss(pos_logits + offset, neg_logits + offset, beta)

    def predict(self, interaction):
        """(R,) scores of (history, item) rows.  RecBole's sampled evaluation repeats each
        history once per candidate (101 times for uni100): encode each distinct one once."""
        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        unique_seq, inverse = torch.unique(item_seq, dim=0, return_inverse=True)
        first = torch.zeros(len(unique_seq), dtype=torch.long, device=item_seq.device)
        first.scatter_(0, inverse, torch.arange(len(inverse), device=item_seq.device))
        query = self.forward(unique_seq, item_seq_len[first])[inverse]
        self.check_item_ids(interaction[self.ITEM_ID])
        return (query * self.items(interaction[self.ITEM_ID])).sum(-1)

    def full_sort_predict(self, interaction):
        """(B, N) scores from the configured scorer (RecBole's stock evaluation path); with
        ``eval_exclude_history`` the input history's items score -inf."""
        item_seq = interaction[self.ITEM_SEQ]
        scores = self.scorer.scores(self.forward(item_seq, interaction[self.ITEM_SEQ_LEN]), self.items)
        if self.eval_exclude_history:
            history = torch.where(item_seq > 0, item_seq, torch.zeros_like(item_seq))
            scores = scores.scatter(1, history, float("-inf"))  # column 0 (padding) is never ranked
        return scores

    def full_sort_topk(self, interaction, k: int):
        """(values, ids), each (B, k): the top-k items without a (B, N) score matrix; with
        ``eval_exclude_history`` none of the input history's items."""
        item_seq = interaction[self.ITEM_SEQ]
        query = self.forward(item_seq, interaction[self.ITEM_SEQ_LEN])
        return self.scorer.topk(query, self.items, k, exclude=item_seq if self.eval_exclude_history else None)

    def log_item_memory(self) -> None:
        mem = self.items.memory_bytes()
        if not self.items.compressed:
            getLogger().info("item representation: dense %d x %d float32 = %.3f MB (stored as is)",
                             self.items.n_items, self.items.dim, mem["dense"] / 2**20)
            return
        head = mem.get("dense_head", 0)
        getLogger().info(
            "item representation: dense %d x %d float32 = %.3f MB; codes + sub-item tables%s = %.3f MB "
            "(%.3f + %.3f%s); compression %.1fx",
            self.items.n_items, self.items.dim, mem["dense"] / 2**20,
            f" + dense head of {self.items.n_head} items" if head else "", mem["compressed"] / 2**20,
            mem["codes"] / 2**20, mem["sub_item_tables"] / 2**20, f" + {head / 2**20:.3f}" if head else "",
            mem["dense"] / mem["compressed"])
        if self.items.compressed:
            getLogger().info("item codes: %s", code_usage(self.items.codes[1:].cpu().numpy(), self.items.b))
