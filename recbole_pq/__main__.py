"""``python -m recbole_pq``: the same command line as ``recbole-pq`` and ``run_recbole_pq.py``."""

import sys

from recbole_pq.cli import main

sys.exit(main())
