"""The plugin's models; importing this package registers them by class name."""

from recbole_pq.models.sasrec_jpq import SASRecJPQ

__all__ = ["SASRecJPQ"]
