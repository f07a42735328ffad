"""recbole-pq: sub-item ids (RecJPQ), PQTopK scoring and LISA attention for RecBole."""

from recbole_pq import compat

compat.apply()

from recbole_pq.pipeline import build_config, run  # noqa: E402
from recbole_pq.registry import get_model_class  # noqa: E402
from recbole_pq.serving.recommender import Recommender  # noqa: E402

__all__ = ["Recommender", "build_config", "get_model_class", "run"]
__version__ = "0.1.0"
