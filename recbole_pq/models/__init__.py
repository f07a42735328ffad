"""The plugin's models, and ``PLUGIN_MODELS``: the names RecBole users give as ``--model``."""

from recbole_pq.models.gbert4rec import gBERT4Rec, gBERT4RecJPQ
from recbole_pq.models.sasrec import DenseSASRec, SASRecJPQ
from recbole_pq.models.sasrec_lisa import SASRecLISA

PLUGIN_MODELS: dict[str, type] = {
    model.__name__: model for model in (DenseSASRec, SASRecJPQ, SASRecLISA, gBERT4Rec, gBERT4RecJPQ)
}

__all__ = ["PLUGIN_MODELS", "DenseSASRec", "SASRecJPQ", "SASRecLISA", "gBERT4Rec", "gBERT4RecJPQ"]
