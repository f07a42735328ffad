"""The plugin's models; importing this package registers them by class name."""

from recbole_pq.models.dense_sasrec import DenseSASRec
from recbole_pq.models.gbert4rec import gBERT4Rec, gBERT4RecJPQ
from recbole_pq.models.sasrec_jpq import SASRecJPQ
from recbole_pq.models.sasrec_lisa import SASRecLISA

__all__ = ["DenseSASRec", "SASRecJPQ", "SASRecLISA", "gBERT4Rec", "gBERT4RecJPQ"]
