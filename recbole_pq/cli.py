"""Train, evaluate or tune a model: ``recbole-pq`` (installed), ``python -m recbole_pq``, or
``python run_recbole_pq.py`` in a checkout -- RecBole's command-line conventions.

    recbole-pq --model=SASRecJPQ --dataset=ml-100k \
        [--config_files a.yaml b.yaml] [--KEY=VALUE ...]
    recbole-pq --model=SASRecJPQ --dataset=ml-100k --tune jpq     # a shipped search space, or a YAML path

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
        prog=program_name(), description=__doc__,
        epilog=models_and_keys() if {"-h", "--help"} & set(argv) else None,  # imports the models: only for help
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


# The keys users change most; every key and its default is in recbole_pq/properties/*.yaml.
COMMON_KEYS = (
    ("epochs", "training epochs (early stopping may end sooner: stopping_step)"),
    ("hidden_size", "embedding width d"),
    ("pq_m", "sub-item ids: splits per item (SASRecJPQ, gBERT4RecJPQ)"),
    ("pq_b", "sub-item ids: codes per split"),
    ("pq_dense_head", "sub-item ids: the N most popular items also own a vector (auto | N | 0)"),
    ("code_assignment", "svd_pq | svd | svd_opq | bpr | qr | random: how items get their codes"),
    ("learning_rate", "optimiser step size"),
    ("train_batch_size", "rows per training batch"),
    ("MAX_ITEM_LIST_LENGTH", "history length L the model reads"),
    ("data_path", "root folder of DATA/NAME.inter (else $RECBOLE_PQ_DATA, else ./dataset)"),
    ("eval_exclude_history", "true: rank without the user's history (the papers' protocol)"),
    ("train_precision", "auto | fp32 | bf16"),
    ("checkpoint_dir", "where checkpoints go (default ./saved)"),
)


def program_name() -> str:
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return "python -m recbole_pq" if name in ("__main__.py", "-c", "") else name


def models_and_keys() -> str:
    """--help epilog: the models and the most used keys."""
    from recbole_pq.models import PLUGIN_MODELS

    keys = "\n".join(f"  --{key}=...".ljust(40) + text for key, text in COMMON_KEYS)
    return (f"plugin models: {', '.join(sorted(PLUGIN_MODELS))}; every RecBole model name works too.\n"
            f"most used settings (any config key works as --key=value):\n{keys}")


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
            from recbole_pq.tuning.run import sweep

            sweep(args.model, args.dataset, args.tune, args.config_files, settings, resume=bool(args.resume),
                  ray_address=args.ray_address, tune_dir=args.tune_dir)
        else:
            run(model=args.model, dataset=args.dataset, config_file_list=args.config_files, config_dict=settings,
                resume=args.resume)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
