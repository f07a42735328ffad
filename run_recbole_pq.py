"""Train and evaluate a model with the recbole-pq plugin (see ``recbole_pq/cli.py``)."""

import sys

from recbole_pq.cli import main

if __name__ == "__main__":
    sys.exit(main())
