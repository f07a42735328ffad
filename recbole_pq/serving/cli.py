"""Recommendations from a saved model, as JSON:

    python -m recbole_pq.serving CHECKPOINT --history "i1 i2 i3" [--history "..."] --k 10

Each ``--history`` is one user's item tokens (as in the data set's files), oldest first,
separated by spaces.  Prints a JSON list with one ``{"history", "items", "scores"}``
object per history.
"""

from __future__ import annotations

import argparse
import json
import sys

from recbole_pq.errors import USER_ERRORS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="recbole-pq-recommend", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a .pth file written by run_recbole_pq.py for a plugin model")
    parser.add_argument("--history", action="append", required=True, help="item tokens separated by spaces")
    parser.add_argument("--k", type=int, default=10, help="recommendations per history (default 10)")
    parser.add_argument("--keep-seen", action="store_true", help="may recommend items of the history")
    parser.add_argument("--scorer", help="auto | default | recjpq | pqtopk | prune (auto, the default: pqtopk for compressed items, "
                                             "default for dense ones)")
    parser.add_argument("--shards", type=int, help="score with the codes sharded over this many Ray actors")
    parser.add_argument("--ray-address", help="a running Ray cluster (default: a local Ray)")
    args = parser.parse_args(argv)

    import recbole_pq  # noqa: F401  (compatibility shims)
    from recbole_pq.serving.recommender import Recommender

    try:
        recommender = Recommender.load(args.checkpoint, scorer=args.scorer, shards=args.shards,
                                       ray_address=args.ray_address)
        histories = [h.split() for h in args.history]
        results = recommender.recommend(histories, k=args.k, exclude_seen=not args.keep_seen)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = [{"history": h, **r} for h, r in zip(histories, results)]
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
