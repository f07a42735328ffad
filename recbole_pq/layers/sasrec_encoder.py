"""SASRec's sequence encoder (RecBole's TransformerEncoder + positions), reused by the JPQ models."""

from __future__ import annotations

import torch
from recbole.model.layers import TransformerEncoder
from torch import nn

from recbole_pq.layers.fast_blocks import speed_up_blocks


class SASRecEncoder(nn.Module):
    """(B, L, d) item embeddings + (B, 1, L, L) additive attention mask -> (B, L, d) states.

    The same blocks as RecBole's SASRec: learned positions, LayerNorm, dropout, then
    RecBole's TransformerEncoder.  The mask decides causal (SASRec) or bidirectional
    (BERT4Rec) attention.
    """

    def __init__(self, config):
        super().__init__()
        hidden = config["hidden_size"]
        self.position_embedding = nn.Embedding(config["MAX_ITEM_LIST_LENGTH"], hidden)
        self.trm_encoder = TransformerEncoder(
            n_layers=config["n_layers"],
            n_heads=config["n_heads"],
            hidden_size=hidden,
            inner_size=config["inner_size"],
            hidden_dropout_prob=config["hidden_dropout_prob"],
            attn_dropout_prob=config["attn_dropout_prob"],
            hidden_act=config["hidden_act"],
            layer_norm_eps=config["layer_norm_eps"],
        )
        self.LayerNorm = nn.LayerNorm(hidden, eps=config["layer_norm_eps"])
        self.dropout = nn.Dropout(config["hidden_dropout_prob"])
        speed_up_blocks(self)  # same blocks, faster dropout and gelu on the CPU

    def forward(self, item_emb: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(item_emb.shape[1], device=item_emb.device)
        hidden = self.dropout(self.LayerNorm(item_emb + self.position_embedding(positions)))
        return self.trm_encoder(hidden, attention_mask, output_all_encoded_layers=False)[-1]
