"""``python -m recbole_pq.serving``: the same command line as ``recbole-pq-recommend``."""

import sys

from recbole_pq.serving.cli import main

sys.exit(main())
