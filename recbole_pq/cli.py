"""``run_recbole_pq.py``: RecBole's command-line conventions for the plugin.

    python run_recbole_pq.py --model=SASRecJPQ --dataset=ml-100k \
        [--config_files a.yaml b.yaml] [--KEY=VALUE ...]

Any config key is given as ``--key=value`` (RecBole converts the value's type);
``--config_files`` layers YAML files below the command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_MODEL = "SASRecJPQ"
DEFAULT_DATASET = "ml-100k"


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, dict[str, str]]:
    parser = argparse.ArgumentParser(
        prog="run_recbole_pq.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", "-m", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL})")
    parser.add_argument("--dataset", "-d", default=DEFAULT_DATASET, help=f"data set name (default {DEFAULT_DATASET})")
    parser.add_argument("--config_files", nargs="+", action="extend", default=None,
                        help="YAML files, later ones win; the flag may repeat, and a path with spaces is "
                             "given quoted (a single space-separated string of paths also works)")
    parser.add_argument("--tune", metavar="TUNE_YAML", help="run a Ray Tune sweep described by this file")
    parser.add_argument("--resume", nargs="?", const=True, default=None, metavar="LAST_CHECKPOINT",
                        help="training: continue from a run's '-last.pth' file; with --tune: continue a killed sweep")
    parser.add_argument("--ray-address", help="with --tune: an existing Ray cluster (auto or HOST:PORT)")
    parser.add_argument("--tune-dir", help="with --tune: where sweeps are kept (default ./ray_results)")
    args, rest = parser.parse_known_args(argv)
    if args.config_files:
        args.config_files = [f for item in args.config_files for f in config_file_paths(item)]
    return args, parse_key_values(rest)


def config_file_paths(item: str) -> list[str]:
    """One --config_files value: a path as given when it exists (it may hold spaces),
    otherwise RecBole's form, several paths separated by spaces."""
    return [item] if Path(item).exists() or not item.strip() else item.split()


def parse_key_values(rest: list[str]) -> dict[str, str]:
    """``--key=value`` flags as strings; RecBole's Config converts their types."""
    settings: dict[str, str] = {}
    for arg in rest:
        if not arg.startswith("--") or "=" not in arg:
            raise SystemExit(f"error: unrecognised argument '{arg}': settings are given as --key=value")
        key, value = arg[2:].split("=", 1)
        if not key:
            raise SystemExit(f"error: empty setting name in '{arg}'")
        if key in settings and settings[key] != value:
            raise SystemExit(f"error: --{key} is given twice with different values")
        settings[key] = value
    return settings


def main(argv: list[str] | None = None) -> int:
    args, settings = parse_args(sys.argv[1:] if argv is None else argv)
    from recbole_pq.errors import USER_ERRORS
    from recbole_pq.pipeline import run

    if (args.ray_address or args.tune_dir) and not args.tune:
        print("error: --ray-address and --tune-dir go with --tune", file=sys.stderr)
        return 2
    if args.resume is True and not args.tune:
        print("error: --resume needs the run's '-last.pth' checkpoint file (or --tune for sweeps)", file=sys.stderr)
        return 2
    try:
        if args.tune:
            from recbole_pq.tuning import sweep

            sweep(args.model, args.dataset, args.tune, args.config_files, settings, resume=bool(args.resume),
                  ray_address=args.ray_address, tune_dir=args.tune_dir)
        else:
            run(model=args.model, dataset=args.dataset, config_file_list=args.config_files, config_dict=settings,
                resume=args.resume)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
