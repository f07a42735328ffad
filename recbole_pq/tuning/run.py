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

import json
import os
import time
from pathlib import Path

from recbole_pq.errors import ConfigError
from recbole_pq.items.diagnostics import item_memory
from recbole_pq.tuning.report import results_table, write_outputs
from recbole_pq.tuning.spec import check_spec, load_tune_file, metric_key, ray_space


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
