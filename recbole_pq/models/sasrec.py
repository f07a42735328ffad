"""SASRec with the plugin's item tables: SASRecJPQ (RecJPQ sub-item ids) and DenseSASRec
(an (N, d) table), two presets of one network.

The network is RecBole's SASRec (its Transformer blocks, learned positions, tied item
table) trained the way the plugin models are (``train_mode: seq2seq`` with a loss at every
position, CE/BCE/gBCE/BPR, top-k evaluation).  DenseSASRec is the baseline that isolates
what sub-item ids cost: RecBole's own ``SASRec`` trains one row per target item, which on
ML-1M is ~160x more rows per epoch than seq2seq.
"""

from __future__ import annotations

from recbole_pq.layers.sasrec_encoder import SASRecEncoder
from recbole_pq.models.base import PQSequentialRecommender


class SASRecNetwork(PQSequentialRecommender):
    """SASRec over the item table its preset names (``item_table``), tied for input and output."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.items = self.build_item_table(config, dataset)
        self.encoder = SASRecEncoder(config)
        self.encoder.apply(self._init_weights)
        self.log_item_memory()

    def encode(self, item_seq, item_seq_len):
        return self.encoder(self.items(item_seq), self.get_attention_mask(item_seq))


class SASRecJPQ(SASRecNetwork):
    """SASRec with items as (N, m) codes + (m, b, d/m) sub-item embeddings."""

    item_table = "codes"


class DenseSASRec(SASRecNetwork):
    """SASRec with an (N, d) item table."""

    item_table = "dense"
    compressed_twin = "SASRecJPQ"
