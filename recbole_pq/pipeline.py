"""The one training/evaluation path: ``run(model, dataset, ...) -> results``.

Config layers, lowest to highest priority (later wins):
RecBole defaults -> properties/overall.yaml -> properties/model/<Model>.yaml ->
properties/dataset/<dataset>.yaml -> config_file_list -> config_dict (the CLI's
``--key=value`` flags arrive here).
"""

from __future__ import annotations

import difflib
import functools
import os
import sys
from logging import getLogger
from pathlib import Path

import yaml
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_trainer, init_logger, init_seed, set_color

from recbole_pq import compat
from recbole_pq.config_checks import (
    check_dataset_name,
    check_numeric_keys,
    check_run_names,
    check_valid_metric,
    read_config_file,
)
from recbole_pq.data.batching import bucket_by_length, check_bucket_config
from recbole_pq.data.datasets import check_dataset_files, resolve_data_path
from recbole_pq.data.paths import DATA_ENV, PROPERTIES
from recbole_pq.data.seq2seq import TRAIN_MODES, Seq2SeqDataset
from recbole_pq.data.user_files import user_load_columns
from recbole_pq.errors import ConfigError
from recbole_pq.items.table import ItemTable
from recbole_pq.precision import check_precision_config
from recbole_pq.registry import get_model_class


def property_files(model_class: type, dataset: str) -> list[str]:
    """Our YAML layers that exist for this model and data set, in priority order
    (RecBole's own defaults sit below all of them).  A dense preset's file sits on its
    compressed twin's, so ``item_table: codes`` finds the sub-item table's defaults."""
    twin = getattr(model_class, "compressed_twin", None)
    files = [PROPERTIES / "overall.yaml", *([PROPERTIES / "model" / f"{twin}.yaml"] if twin else []),
             PROPERTIES / "model" / f"{model_class.__name__}.yaml", PROPERTIES / "dataset" / f"{dataset}.yaml"]
    return [str(f) for f in files if f.is_file()]


def user_config_files(config_file_list) -> dict[str, dict]:
    """The user's --config_files, path -> contents, each read once and checked to be a YAML
    mapping (file and line named if not)."""
    return {str(f): read_config_file(f) for f in config_file_list or []}


def known_config_keys(config: Config, our_files: list[str]) -> set[str]:
    """Keys RecBole or our property files define for this model and data set."""
    from recbole.utils import argument_list

    keys = set(config.internal_config_dict)
    for group in ("general_arguments", "training_arguments", "evaluation_arguments", "dataset_arguments"):
        keys.update(getattr(argument_list, group))
    for path in our_files:
        keys.update(yaml.safe_load(Path(path).read_text()) or {})
    return keys | {"model", "dataset", "config_files"}


def check_user_keys(config: Config, our_files: list[str]) -> None:
    """A user key that is not known but close to a known one is a typo: fail naming both.
    Unknown keys with no close match may be a custom model's: they are logged."""
    known = known_config_keys(config, our_files)
    user_keys = set(config.file_config_dict) | set(config.variable_config_dict)
    for key in sorted(user_keys - known):
        close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.8)
        if close:
            raise ConfigError(f"Unknown config key '{key}' for {config['model']}. Did you mean {', '.join(close)}?")
        getLogger().warning("config key '%s' is not a RecBole or recbole-pq key of %s; passed on as given.",
                            key, config["model"])


def build_config(model: str, dataset: str, config_file_list=None, config_dict=None) -> Config:
    """RecBole Config with the plugin's layers; checks the plugin-level keys."""
    check_dataset_name(dataset)
    model_class = get_model_class(model)
    ours = property_files(model_class, dataset)
    user_files = user_config_files(config_file_list)
    check_run_names(user_files, model, dataset)
    with compat.isolated_argv():
        try:
            config = Config(model=model_class, dataset=dataset, config_file_list=ours + list(user_files),
                            config_dict=dict(config_dict or {}))
        except ConfigError:
            raise
        except ValueError as err:  # RecBole's own value checks (topk, metrics, ...) name the value
            raise ConfigError(f"{err}") from err
    check_user_keys(config, ours)
    check_numeric_keys(config)
    check_valid_metric(config)
    if hasattr(model_class, "check_config"):
        model_class.check_config(config)
    if dataset != "ml-100k":
        root = _user_data_path(config) or os.environ.get(DATA_ENV)
        config["data_path"] = resolve_data_path(str(Path(root) / dataset) if root else config["data_path"])
    else:  # RecBole reads ml-100k from its wheel whatever data_path says: a user's own copy wins
        user_copy = _user_ml100k(config)
        if user_copy:
            config["data_path"] = user_copy
    _check_train_mode(config, model_class)
    if config["show_progress"] == "auto":  # bars on a terminal only: not in CI logs or redirected output
        config["show_progress"] = sys.stdout.isatty() and not os.environ.get("CI")
    check_bucket_config(config["train_length_buckets"])
    check_precision_config(config["train_precision"])
    return config


def _check_train_mode(config: Config, model_class: type) -> None:
    mode = config["train_mode"]
    if mode not in TRAIN_MODES:
        raise ConfigError(f"train_mode='{mode}' is not supported; use one of {list(TRAIN_MODES)}.")
    seq2seq_ok = getattr(model_class, "supports_seq2seq", False) or config["model"] in compat.RECBOLE_SEQ2SEQ_MODELS
    if mode == "seq2seq" and not seq2seq_ok:
        raise ConfigError(
            f"train_mode='seq2seq' needs a model that scores every position; "
            f"{model_class.__name__} does not. Use train_mode=prefix."
        )


def load_data(config: Config):
    """(train, valid, test) dataloaders, after checking that the files exist."""
    check_dataset_files(config["dataset"], config["data_path"])
    if "dataset_example" not in str(config["data_path"]):  # RecBole's bundled ml-100k has its settings
        user_keys = set(config.file_config_dict) | set(config.variable_config_dict)
        user_load_columns(config, Path(config["data_path"]) / f"{config['dataset']}.inter", user_keys)
    if config["train_mode"] == "seq2seq":
        dataset = Seq2SeqDataset(config)
    else:
        dataset = create_dataset(config)
    getLogger().info(dataset)
    train, valid, test = data_preparation(config, dataset)
    if _is_plugin_model(config):  # our models trim padding; RecBole's keep RecBole's batches
        bucket_by_length(train, config)
    return train, valid, test


def _is_plugin_model(config: Config) -> bool:
    from recbole_pq.models.base import PQSequentialRecommender

    return isinstance(config.model_class, type) and issubclass(config.model_class, PQSequentialRecommender)


def make_trainer(config: Config, model):
    trainer_class = getattr(type(model), "trainer_class", None) or get_trainer(
        config["MODEL_TYPE"], config["model"]
    )
    return trainer_class(config, model)


def setup(model: str, dataset: str, config_file_list=None, config_dict=None):
    """Everything before training: (config, (train, valid, test), model, trainer)."""
    config = build_config(model, dataset, config_file_list, config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(sys.argv)
    logger.info(config)
    _say_where_training_runs(config)
    _say_which_data(config)
    data = load_data(config)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model_obj = config.model_class(config, data[0]._dataset).to(config["device"])
    if config["eval_exclude_history"] and not hasattr(model_obj, "eval_exclude_history"):
        if not hasattr(model_obj, "ITEM_SEQ"):  # RecBole's general models: its evaluation removes the history itself
            logger.info("eval_exclude_history: %s's full-sort evaluation removes the training history", config["model"])
        else:
            compat.exclude_history_in_full_sort(model_obj)
    logger.info(model_obj)
    return config, data, model_obj, make_trainer(config, model_obj)


@functools.cache
def _overall_defaults() -> dict:
    """properties/overall.yaml, read once."""
    return yaml.safe_load((PROPERTIES / "overall.yaml").read_text()) or {}


def _user_data_path(config: Config) -> str | None:
    """data_path when the user set it (command line or their files), not overall.yaml's default."""
    given = {**config.file_config_dict, **config.variable_config_dict}.get("data_path")
    return given if given and given != _overall_defaults().get("data_path") else None


def _user_ml100k(config: Config) -> str | None:
    """The user's ml-100k folder when their data_path (or $RECBOLE_PQ_DATA) holds ml-100k/ml-100k.inter."""
    given = _user_data_path(config) or os.environ.get(DATA_ENV)
    if not given:
        return None
    folder = resolve_data_path(str(Path(given) / "ml-100k"))
    return folder if (Path(folder) / "ml-100k.inter").is_file() else None


def _say_which_data(config: Config) -> None:
    if config["dataset"] != "ml-100k" or not _user_data_path(config):
        return
    if _user_ml100k(config) == config["data_path"]:
        getLogger().warning("ml-100k: using your files in %s, not RecBole's bundled copy.", config["data_path"])
    else:
        getLogger().warning("data_path=%s holds no ml-100k/ml-100k.inter: using RecBole's bundled ml-100k at %s.",
                            _user_data_path(config), config["data_path"])


def _say_where_training_runs(config: Config) -> None:
    """RecBole falls back to the CPU without a word when a GPU was asked for but CUDA is absent."""
    import torch

    asked = {**config.file_config_dict, **config.variable_config_dict}.get("gpu_id")
    if asked not in (None, "") and not torch.cuda.is_available():
        getLogger().warning("gpu_id=%s was given but CUDA is not available here: training runs on the CPU.", asked)


def run(model: str, dataset: str, config_file_list=None, config_dict=None, saved: bool = True,
        resume: str | None = None) -> dict:
    """Train and evaluate one model; returns RecBole's result dict (+ the checkpoint path).

    ``resume``: a ``-last.pth`` file of an interrupted run of the same configuration."""
    config, (train_data, valid_data, test_data), _, trainer = setup(model, dataset, config_file_list, config_dict)
    if resume:
        if not hasattr(trainer, "last_checkpoint_file"):
            raise ConfigError(f"--resume needs a plugin model; {config['model']} trains with RecBole's own trainer.")
        trainer.resume_checkpoint(resume, train_data)
    best_epoch = []

    def note_best(epoch_idx, valid_score):  # RecBole resets cur_step when this epoch is the new best
        if trainer.cur_step == 0:
            best_epoch[:] = [epoch_idx]

    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"], callback_fn=note_best
    )
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    logger = getLogger()
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    if isinstance(getattr(trainer.model, "items", None), ItemTable):
        from recbole_pq.items.diagnostics import item_table_diagnostics

        logger.info("item table after training: %s", item_table_diagnostics(trainer.model.items))
    logger.info(run_summary(config, trainer, best_epoch[0] if best_epoch else None, best_valid_result, test_result,
                            saved))
    return {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "saved_model_file": trainer.saved_model_file if saved else None,
    }


def run_summary(config: Config, trainer, best_epoch, best_valid: dict | None, test: dict | None, saved: bool) -> str:
    """One line that says how the run ended: best epoch, test metrics, checkpoint, item table."""
    from recbole_pq.items.diagnostics import item_memory

    metric = config["valid_metric"].lower()
    parts = [f"{config['model']} on {config['dataset']}"]
    if best_valid:
        epoch = f"best epoch {best_epoch}" if best_epoch is not None else "best epoch before the resume"
        parts.append(f"{epoch} (valid {metric} {float(best_valid.get(metric, float('nan'))):.4f})")
    if test:
        parts.append("test " + " ".join(f"{key} {float(value):.4f}" for key, value in test.items()))
    parts.append(f"checkpoint {trainer.saved_model_file}" if saved else "no checkpoint (saved=False)")
    memory = item_memory(trainer.model)
    if memory["item_table_mb"] is not None:
        parts.append(f"item table {memory['item_table_mb']:.3g} MB ({memory['compression']:.1f}x smaller than dense)")
    return "summary: " + " | ".join(parts)
