"""Prepare RecBole atomic files from ../shared/datasets/ (see recbole_pq/data/prepare.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recbole_pq.data.prepare import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
