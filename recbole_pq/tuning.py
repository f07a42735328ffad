"""Ray Tune sweeps over codebook sizes (and any other config key) of the plugin's models.

    python run_recbole_pq.py --model=SASRecJPQ --dataset=ml-100k --tune properties/tune/jpq.yaml
        [--resume] [--ray-address auto|HOST:PORT] [--tune-dir DIR] [--KEY=VALUE ...]

Every trial is a normal run of the plugin (``pipeline.setup`` + RecBole's trainer): its
log, config and best checkpoint stay in the trial directory.  The valid metric is
reported every evaluation, so ASHA stops bad trials early; the final report adds the
test metrics of the best checkpoint, the item-representation memory and the scoring
time per user.  At the end: a table (printed and CSV), the best config as YAML and a
PNG of NDCG vs item-table memory with the Pareto front.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import time
from pathlib import Path

import yaml

from recbole_pq.code_diagnostics import item_memory
from recbole_pq.errors import ConfigError

SPACE_KINDS = ("grid", "choice", "uniform", "loguniform", "randint")
TUNE_KEYS = {"metric", "mode", "num_samples", "scheduler", "cpus_per_trial", "max_concurrent_trials",
             "grace_period", "reduction_factor", "config", "search_space", "name"}


def metric_key(metric: str) -> str:
    """Ray-friendly name of a RecBole metric: 'ndcg@10' -> 'valid_ndcg_at_10'."""
    return "valid_" + metric.lower().replace("@", "_at_")


def load_tune_file(path) -> dict:
    from recbole_pq.config_checks import read_config_file
    from recbole_pq.paths import PROPERTIES

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


def run_trial(params: dict, model: str, dataset: str, config_files: list, fixed: dict, metric: str, threads: int):
    """One trial: a plugin run reporting the valid metric each evaluation, then the test."""
    import torch
    from ray import tune

    import recbole_pq  # noqa: F401  (a Ray worker is a fresh process: apply the shims)
    from recbole_pq.pipeline import setup

    torch.set_num_threads(threads)
    trial_dir = Path(tune.get_context().get_trial_dir())
    settings = {**fixed, **params, "valid_metric": metric, "checkpoint_dir": str(trial_dir / "saved"),
                "show_progress": False}
    config, (train, valid, test), model_obj, trainer = setup(model, dataset, config_files, settings)
    (trial_dir / "config.json").write_text(json.dumps({"model": model, "dataset": dataset, **settings}, indent=1,
                                                      default=str))
    key = metric_key(metric)
    memory = item_memory(model_obj)  # known from the start: stopped trials have it too

    def report(epoch, valid_score):
        tune.report({key: float(valid_score), "epoch": epoch, **memory})

    best_score, best_valid = trainer.fit(train, valid, saved=True, callback_fn=report)
    test_result = trainer.evaluate(test, load_best_model=True)
    final = {key: float(best_score), "epoch": trainer.epochs, "checkpoint": trainer.saved_model_file}
    final.update({f"test_{k.replace('@', '_at_')}": float(v) for k, v in test_result.items()})
    final.update(memory, scoring_ms_per_user=scoring_ms_per_user(model_obj, test))
    tune.report(final)


def scoring_ms_per_user(model, test_data) -> float | None:
    import torch

    if not hasattr(model, "full_sort_topk"):
        return None
    batch = next(iter(test_data))[0]
    model.eval()
    with torch.no_grad():
        query = model.forward(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
        model.scorer.topk(query, model.items, 10)  # warm-up
        start = time.perf_counter()
        model.scorer.topk(query, model.items, 10)
    return 1000 * (time.perf_counter() - start) / len(query)


def sweep(model: str, dataset: str, tune_file, config_files=None, settings=None, resume=False,
          ray_address=None, tune_dir=None):
    """Run (or resume) a sweep; returns the results table as a DataFrame."""
    from recbole_pq.pipeline import build_config

    spec = load_tune_file(tune_file)
    config_files = [str(Path(f).resolve()) for f in (config_files or [])]
    fixed = {**spec["config"], **(settings or {})}
    config = build_config(model, dataset, config_files, fixed)  # checks names before Ray starts
    check_spec(spec, config)
    storage = Path(tune_dir or "ray_results").resolve()
    name = f"{model}-{dataset}-{spec['name']}"
    experiment = storage / name
    check_sweep_folder(experiment, resume)

    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=ray_address, include_dashboard=False, logging_level="WARNING", log_to_driver=False,
                 **({} if ray_address else {"num_cpus": os.cpu_count()}))
    try:
        trainable = tune.with_parameters(
            run_trial, model=model, dataset=dataset, config_files=config_files, fixed=fixed,
            metric=spec["metric"], threads=spec["cpus_per_trial"])
        trainable = tune.with_resources(trainable, {"cpu": spec["cpus_per_trial"]})
        key = metric_key(spec["metric"])
        if resume:
            tuner = tune.Tuner.restore(str(experiment), trainable, resume_unfinished=True, resume_errored=False,
                                       restart_errored=False)
        else:
            # one report per epoch, then the final (test) report: a trial that reaches the last epoch
            # is never stopped before that final report.
            scheduler = ASHAScheduler(max_t=int(config["epochs"]) + 1, grace_period=spec["grace_period"],
                                      reduction_factor=spec["reduction_factor"]) \
                if spec["scheduler"] == "asha" else FIFOScheduler()
            tuner = tune.Tuner(
                trainable, param_space=ray_space(spec["search_space"]),
                tune_config=tune.TuneConfig(metric=key, mode=spec["mode"], num_samples=spec["num_samples"],
                                            scheduler=scheduler,
                                            max_concurrent_trials=spec.get("max_concurrent_trials")),
                run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=1))
        grid = tuner.fit()
    finally:
        if started_here:
            ray.shutdown()
    table = results_table(grid, list(spec["search_space"]), key, spec["mode"])
    write_outputs(table, experiment, model, dataset, fixed, key, spec["mode"])
    return table


def check_sweep_folder(experiment: Path, resume: bool) -> None:
    """--resume needs Ray's saved state; a new sweep never writes over one that has any.
    A folder left by a sweep killed before Ray saved anything holds nothing to keep: a new
    sweep reuses it (telling the user to --resume would be a dead end)."""
    from ray import tune

    restorable = experiment.is_dir() and tune.Tuner.can_restore(str(experiment))
    if resume and not restorable:
        where = "nothing there" if not experiment.is_dir() else "no state saved by Ray there (tuner.pkl)"
        raise ConfigError(f"--resume: no sweep to resume at {experiment} ({where}); run without --resume "
                          f"to start it.")
    if not resume and experiment.is_dir():
        if restorable:
            raise ConfigError(f"A sweep already exists at {experiment}: pass --resume to continue it, "
                              f"or --tune-dir for a new place (nothing is overwritten).")
        if any(p.stat().st_size for p in experiment.glob("*/result.json")):
            raise ConfigError(f"{experiment} holds trial results but no state Ray can resume from; move it "
                              f"away or pass --tune-dir for a new place (nothing is overwritten).")


def results_table(grid, params: list, key: str, mode: str):
    import pandas as pd

    rows = []
    for result in grid:
        config = result.config or {}
        row = {p: config.get(p) for p in params}
        metrics = result.metrics or {}
        history = result.metrics_dataframe
        if history is not None and key in history:
            best = history[key].max() if mode == "max" else history[key].min()
        else:
            best = metrics.get(key)
        done = "checkpoint" in metrics  # the final report (test metrics) arrived
        reports = metrics.get("training_iteration") or 0
        row.update({"status": "ERROR" if result.error else ("DONE" if done else "STOPPED"),
                    "best_" + key: best, "epochs_run": reports - 1 if done else reports})
        row.update({k: v for k, v in metrics.items() if k.startswith("test_")})
        for extra in ("item_table_mb", "compression", "scoring_ms_per_user", "checkpoint"):
            row[extra] = metrics.get(extra)
        row["error"] = error_message(result.error)
        row["trial_dir"] = result.path
        rows.append(row)
    return pd.DataFrame(rows)


def error_message(error) -> str:
    """The trial's own exception (Ray wraps it), as one line."""
    if not error:
        return ""
    cause = getattr(error, "cause", None) or error
    return f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1][:300]}"


def write_outputs(table, experiment: Path, model, dataset, fixed, key, mode) -> None:
    experiment.mkdir(parents=True, exist_ok=True)
    table.to_csv(experiment / "results.csv", index=False)
    print(table.drop(columns=["trial_dir", "checkpoint"], errors="ignore").to_string(index=False))
    print(f"results: {experiment / 'results.csv'}")
    done = table[table["status"] == "DONE"]
    if len(done):
        best = done.sort_values("best_" + key, ascending=(mode == "min")).iloc[0]
        params = {c: _plain(best[c]) for c in table.columns if c not in _NON_PARAM_COLUMNS and not c.startswith("test_")
                  and c != "best_" + key}
        best_yaml = experiment / "best.yaml"
        best_yaml.write_text(f"# Best trial of the sweep ({key} = {best['best_' + key]:.4f}); use with\n"
                             f"# python run_recbole_pq.py --model={model} --dataset={dataset} --config_files {best_yaml}\n"
                             + yaml.safe_dump({**{k: _plain(v) for k, v in fixed.items()}, **params}, sort_keys=False))
        print(f"best config: {best_yaml}")
    plot_pareto(table, experiment / "pareto.png", key)


_NON_PARAM_COLUMNS = {"status", "epochs_run", "item_table_mb", "compression", "scoring_ms_per_user", "checkpoint",
                      "error", "trial_dir"}


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of (memory, quality) points no other point beats on both (less memory, more quality)."""
    front = []
    for i, (mem_i, q_i) in enumerate(points):
        if not any((mem_j <= mem_i and q_j >= q_i) and (mem_j < mem_i or q_j > q_i)
                   for j, (mem_j, q_j) in enumerate(points) if j != i):
            front.append(i)
    return front


def plot_pareto(table, path: Path, key: str) -> None:
    """Best valid metric vs item-table memory of every trial (stopped ones too), Pareto front marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quality = "best_" + key
    rows = table.dropna(subset=[quality, "item_table_mb"]) if "item_table_mb" in table else table.iloc[0:0]
    fig, ax = plt.subplots(figsize=(6, 4))
    if len(rows):
        points = list(zip(rows["item_table_mb"].astype(float), rows[quality].astype(float)))
        done = (rows["status"] == "DONE").tolist()
        ax.scatter([p[0] for p, d in zip(points, done) if d], [p[1] for p, d in zip(points, done) if d],
                   label="finished trials")
        ax.scatter([p[0] for p, d in zip(points, done) if not d], [p[1] for p, d in zip(points, done) if not d],
                   facecolors="none", edgecolors="C0", label="stopped early (ASHA)")
        front = sorted(points[i] for i in pareto_front(points))
        ax.plot(*zip(*front), "rx--", markersize=10, label="Pareto front")
        ax.legend(fontsize=8)
    ax.set(xlabel="item representation (MB)", ylabel=quality.replace("_at_", "@"),
           title="quality vs item-table memory")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
