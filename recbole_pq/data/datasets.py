"""Where a run's data set lives, and a clear error before RecBole starts when it is missing."""

from __future__ import annotations

import os
from pathlib import Path

from recbole_pq.data.paths import DATASET_ROOT, PROJECT_ROOT
from recbole_pq.data.prepare import PREPARABLE
from recbole_pq.errors import DatasetNotFoundError


def prepared_datasets(data_root: Path = DATASET_ROOT) -> list[str]:
    """Names of the data sets that have an ``<name>/<name>.inter`` file under ``data_root``."""
    if not data_root.is_dir():
        return []
    return sorted(p.name for p in data_root.iterdir() if (p / f"{p.name}.inter").is_file())


def check_dataset_files(name: str, data_path: str) -> None:
    """Fail before RecBole starts: RecBole would otherwise try to download from the
    internet, which this project never does."""
    inter_file = Path(data_path) / f"{name}.inter"
    if inter_file.is_file():
        return
    if name in PREPARABLE:
        raise DatasetNotFoundError(
            f"Data set '{name}' is not prepared: expected the RecBole atomic file {inter_file}. "
            f"Create it with `python dataset/prepare.py {name}` in a checkout, or `recbole-pq-prepare {name} "
            f"--out {Path(data_path).parent}` (reads {PREPARABLE[name].source_hint})."
        )
    known = sorted({"ml-100k", *PREPARABLE, *prepared_datasets(Path(data_path).parent)})
    raise DatasetNotFoundError(
        f"Unknown data set '{name}': no file {inter_file}. Known data sets: {', '.join(known)}. "
        f"For your own data, put RecBole atomic files at {Path(data_path)}/{name}.inter "
        f"(columns user_id:token item_id:token timestamp:float)."
    )


def resolve_data_path(data_path: str) -> str:
    """A relative ``data_path`` is tried against the working directory first, then (in a
    source checkout) the project root."""
    if os.path.isabs(data_path) or os.path.exists(data_path):
        return data_path
    candidate = PROJECT_ROOT / data_path
    return str(candidate) if candidate.exists() else data_path
