"""SASRecJPQ: RecBole's SASRec whose (tied) item table is RecJPQ sub-item ids."""

from __future__ import annotations

from torch import nn

from recbole_pq.layers.item_codes import item_code_embedding_from_config
from recbole_pq.layers.sasrec_encoder import SASRecEncoder
from recbole_pq.models.base import PQSequentialRecommender
from recbole_pq.registry import register


@register
class SASRecJPQ(PQSequentialRecommender):
    """SASRec with items as (N, m) codes + (m, b, d/m) sub-item embeddings, for input and output."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.initializer_range = config["initializer_range"]
        self.items = item_code_embedding_from_config(config, dataset)
        self.encoder = SASRecEncoder(config)
        self.encoder.apply(self._init_weights)
        self.log_item_memory()

    def _init_weights(self, module):
        """RecBole SASRec's initialisation."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    def encode(self, item_seq, item_seq_len):
        return self.encoder(self.items(item_seq), self.get_attention_mask(item_seq))
