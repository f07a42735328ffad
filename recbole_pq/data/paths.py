"""Where things live: the source checkout (when there is one), data sets, and the raw files
that prepare reads.  Nothing else in the package depends on the location of the source tree."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Where data sets are found when no data_path is given, and where prepare writes them:
# $RECBOLE_PQ_DATA, else ./dataset of the working directory (in a checkout: its dataset/).
DATA_ENV = "RECBOLE_PQ_DATA"
DATASET_ROOT = Path(os.environ.get(DATA_ENV) or "dataset")
# The raw files prepare reads: $RECBOLE_PQ_SOURCES, else the shared/datasets folder beside a checkout.
SOURCES_ENV = "RECBOLE_PQ_SOURCES"
SHARED_DATASETS = Path(os.environ.get(SOURCES_ENV) or PROJECT_ROOT.parent / "shared" / "datasets")
# The YAML layers ship inside the package (the repository's top-level properties/ is a
# link to this folder: one copy, editable in a checkout, installed with the wheel).
PROPERTIES = Path(str(resources.files("recbole_pq") / "properties"))
