"""A sweep's tune file: read, checked against the run's config before Ray starts, and turned into Ray's search space."""

from __future__ import annotations

import difflib
from pathlib import Path

from recbole_pq.errors import ConfigError


SPACE_KINDS = ("grid", "choice", "uniform", "loguniform", "randint")
TUNE_KEYS = {"metric", "mode", "num_samples", "scheduler", "cpus_per_trial", "max_concurrent_trials",
             "grace_period", "reduction_factor", "config", "search_space", "name"}


def metric_key(metric: str) -> str:
    """Ray-friendly name of a RecBole metric: 'ndcg@10' -> 'valid_ndcg_at_10'."""
    return "valid_" + metric.lower().replace("@", "_at_")


def load_tune_file(path) -> dict:
    from recbole_pq.config_checks import read_config_file
    from recbole_pq.data.paths import PROPERTIES

    path = Path(path)
    packaged = PROPERTIES / "tune" / (path.name if path.suffix == ".yaml" else f"{path.name}.yaml")
    if not path.exists() and path.parent == Path(".") and packaged.is_file():
        path = packaged  # a shipped search space by name: --tune jpq
    spec = read_config_file(path, what="Tune file")
    unknown = set(spec) - TUNE_KEYS
    if unknown:
        raise ConfigError(f"Tune file {path}: unknown keys {sorted(unknown)}; allowed: {sorted(TUNE_KEYS)}.")
    spec.setdefault("name", path.stem)
    spec.setdefault("metric", "ndcg@10")
    spec.setdefault("mode", "max")
    spec.setdefault("num_samples", 1)
    spec.setdefault("scheduler", "asha")
    spec.setdefault("cpus_per_trial", 1)
    spec.setdefault("grace_period", 1)
    spec.setdefault("reduction_factor", 2)
    spec.setdefault("config", {})
    if spec["mode"] not in ("max", "min"):
        raise ConfigError(f"mode='{spec['mode']}' must be max or min.")
    if spec["scheduler"] not in ("asha", "fifo"):
        raise ConfigError(f"scheduler='{spec['scheduler']}' must be asha or fifo.")
    return spec


def check_spec(spec: dict, config) -> None:
    """Fail before Ray starts: empty space, unknown keys, unknown or unproduced metric."""
    space = spec.get("search_space") or {}
    if not space:
        raise ConfigError("The search space is empty: give at least one key under search_space.")
    known = set(config.final_config_dict)
    for key, rule in space.items():
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"search_space key '{key}' is not a config key of {config['model']}.{hint}")
        if not (isinstance(rule, dict) and len(rule) == 1 and next(iter(rule)) in SPACE_KINDS):
            raise ConfigError(f"search_space '{key}': write one of {list(SPACE_KINDS)}, e.g. {{grid: [4, 8]}}; got {rule}.")
        check_rule_arguments(key, *next(iter(rule.items())))
    for key in spec["config"]:
        if key not in known:
            raise ConfigError(f"config key '{key}' in the tune file is not a config key of {config['model']}.")
    produced = [f"{m.lower()}@{k}" for m in config["metrics"] for k in config["topk"]]
    if spec["metric"].lower() not in produced:
        raise ConfigError(f"metric '{spec['metric']}' is not produced by the evaluator; it produces {produced}.")


def check_rule_arguments(key: str, kind: str, args) -> None:
    """grid/choice take a non-empty list; uniform/loguniform/randint take [low, high], low < high."""
    if kind in ("grid", "choice"):
        if not isinstance(args, list) or not args:
            raise ConfigError(f"search_space '{key}': {kind} takes a non-empty list of values, e.g. {{{kind}: [4, 8]}}; "
                              f"got {args!r}.")
        return
    number = int if kind == "randint" else (int, float)
    ok = (isinstance(args, list) and len(args) == 2 and all(isinstance(a, number) and not isinstance(a, bool)
                                                            for a in args) and args[0] < args[1])
    if ok and kind == "loguniform":
        ok = args[0] > 0
    if not ok:
        lower = " > 0" if kind == "loguniform" else ""
        raise ConfigError(f"search_space '{key}': {kind} takes [low, high] with low{lower} < high"
                          f"{' (integers)' if kind == 'randint' else ''}; got {args!r}.")


def ray_space(space: dict) -> dict:
    from ray import tune

    def one(rule):
        kind, args = next(iter(rule.items()))
        if kind == "grid":
            return tune.grid_search(list(args))
        if kind == "choice":
            return tune.choice(list(args))
        return {"uniform": tune.uniform, "loguniform": tune.loguniform, "randint": tune.randint}[kind](*args)

    return {key: one(rule) for key, rule in space.items()}
