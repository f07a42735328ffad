"""SASRecJPQ: RecBole's SASRec whose (tied) item table is RecJPQ sub-item ids."""

from __future__ import annotations

from recbole_pq.models.dense_sasrec import DenseSASRec


class SASRecJPQ(DenseSASRec):
    """SASRec with items as (N, m) codes + (m, b, d/m) sub-item embeddings, for input and output."""

    item_table = "codes"
