"""SASRecJPQ: RecBole's SASRec whose (tied) item table is RecJPQ sub-item ids."""

from __future__ import annotations

from recbole_pq.layers.item_codes import check_pq_config, item_code_embedding_from_config
from recbole_pq.layers.sasrec_encoder import SASRecEncoder
from recbole_pq.models.base import PQSequentialRecommender
from recbole_pq.registry import register


@register
class SASRecJPQ(PQSequentialRecommender):
    """SASRec with items as (N, m) codes + (m, b, d/m) sub-item embeddings, for input and output."""

    @classmethod
    def check_config(cls, config) -> None:
        super().check_config(config)
        check_pq_config(config)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.items = item_code_embedding_from_config(config, dataset)
        self.encoder = SASRecEncoder(config)
        self.encoder.apply(self._init_weights)
        self.log_item_memory()

    def encode(self, item_seq, item_seq_len):
        return self.encoder(self.items(item_seq), self.get_attention_mask(item_seq))
