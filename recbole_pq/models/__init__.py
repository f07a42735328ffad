"""The plugin's models; importing this package registers them by class name."""

from recbole_pq.models.gbert4rec import gBERT4Rec, gBERT4RecJPQ
from recbole_pq.models.sasrec_jpq import SASRecJPQ

__all__ = ["SASRecJPQ", "gBERT4Rec", "gBERT4RecJPQ"]
