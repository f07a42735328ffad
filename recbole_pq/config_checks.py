"""Checks of a run's config before any data is loaded: typed keys, config files, names.

RecBole turns ``--key=value`` strings into Python values with ``eval`` and hands them on
unchecked, so ``--hidden_size=abc`` or ``--epochs=1.5`` end in a traceback deep inside
torch (or, for ``--epochs=0``, in a silently untrained model).  Every key below is checked
here once, with one message form: key, value, and what is allowed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from recbole_pq.errors import ConfigError


@dataclass(frozen=True)
class Number:
    """An int or float key with an allowed range (``None``: unbounded on that side)."""

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def allowed(self) -> str:
        word = "an integer" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{word} in {left}{self.low}, {self.high}{right}"
        if self.low is not None:
            return f"{word} {'>' if self.low_open else '>='} {self.low}"
        return word

    def accepts(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))


POSITIVE_INT = Number(int, 1)
PROBABILITY = Number(float, 0, 1, high_open=True)

# Keys RecBole or the plugin read as numbers.  Keys with a model-specific rule (pq_b against
# the catalogue, neg_samples, gbce_t, lisa_*) are checked by the model's own check_config.
NUMERIC_KEYS = {
    "epochs": POSITIVE_INT,
    "train_batch_size": POSITIVE_INT,
    "eval_batch_size": POSITIVE_INT,
    "hidden_size": POSITIVE_INT,
    "inner_size": POSITIVE_INT,
    "n_layers": POSITIVE_INT,
    "n_heads": POSITIVE_INT,
    "MAX_ITEM_LIST_LENGTH": POSITIVE_INT,
    "pq_m": POSITIVE_INT,
    "eval_step": Number(int, 0),
    "stopping_step": Number(int, 0),
    "seed": Number(int),
    "learning_rate": Number(float, 0, low_open=True),
    "weight_decay": Number(float, 0),
    "hidden_dropout_prob": PROBABILITY,
    "attn_dropout_prob": PROBABILITY,
    "layer_norm_eps": Number(float, 0, low_open=True),
}

# Keys that also take "auto" (sized from the catalogue when the model is built: items/sizing.py).
AUTO_KEYS = {"pq_m"}

# A data set name becomes a folder and a log-file name: one plain path component.
DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_dataset_name(name) -> None:
    if not isinstance(name, str) or not DATASET_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"dataset={name!r} is not a data set name: use letters, digits, '.', '_' and '-' only "
            f"(no path; put the files under --data_path=DIR as DIR/NAME/NAME.inter)."
        )


def check_numeric_keys(config) -> None:
    """Every key of NUMERIC_KEYS that the config holds has the right type and range."""
    for key, rule in NUMERIC_KEYS.items():
        value = config[key]
        if value is None or (key in AUTO_KEYS and value == "auto"):
            continue
        if not rule.accepts(value):
            raise ConfigError(f"{key}={value!r} is not allowed: must be {rule.allowed()}"
                              f"{' or auto' if key in AUTO_KEYS else ''}.")
    topk = config["topk"]
    topk_list = topk if isinstance(topk, list) else [topk]
    if not topk_list or not all(POSITIVE_INT.accepts(k) for k in topk_list):
        raise ConfigError(f"topk={topk!r} is not allowed: must be a positive integer or a list of them, e.g. [10, 20].")


def check_valid_metric(config) -> None:
    """The metric early stopping watches must be one the evaluator computes (RecBole would
    only find out after the first epoch, with a KeyError, having saved nothing)."""
    valid_metric = config["valid_metric"]
    metrics = config["metrics"]
    metrics = metrics if isinstance(metrics, list) else [metrics]
    topk = config["topk"] if isinstance(config["topk"], list) else [config["topk"]]
    produced = [f"{m.lower()}@{k}" for m in metrics for k in topk]
    if not isinstance(valid_metric, str) or valid_metric.lower() not in produced + [m.lower() for m in metrics]:
        raise ConfigError(f"valid_metric={valid_metric!r} is not computed by the evaluator (metrics={metrics}, "
                          f"topk={topk}); choose one of {produced} or add it to metrics/topk.")


def read_config_file(path, what: str = "Config file") -> dict:
    """One YAML config file as a dict; ConfigError naming the file and line if it is not one.
    ``what`` names the kind of file in the messages."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} '{path}' is a folder; give a YAML file.")
    if not path.is_file():
        raise ConfigError(f"{what} '{path}' does not exist.")
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise ConfigError(f"{what} '{path}' is not a text file ({err}).") from err
    try:
        content = yaml.load(text, Loader=yaml.FullLoader)  # RecBole's loader family
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        hint = " (YAML indents with spaces, not tabs)" if "\\t" in problem or "\t" in problem else ""
        raise ConfigError(f"{what} '{path}' is not valid YAML{where}: {problem}{hint}.") from err
    if content is None:
        raise ConfigError(f"{what} '{path}' is empty: write one 'key: value' per line, or leave the file out.")
    if not isinstance(content, dict):
        raise ConfigError(f"{what} '{path}' must hold 'key: value' lines; line 1 starts a "
                          f"{type(content).__name__}, not a mapping.")
    return content


def check_run_names(config_files: dict[str, dict], model: str, dataset: str) -> None:
    """A config file (path -> contents, ``read_config_file``) that names another model or data
    set than the run would be ignored by RecBole (the run's names win): say so instead."""
    for path, content in config_files.items():
        for key, actual in (("model", model), ("dataset", dataset)):
            if key in content and content[key] != actual:
                raise ConfigError(f"Config file '{path}' sets {key}: {content[key]} but this run's {key} is "
                                  f"{actual!r}; give --{key}={content[key]} on the command line or remove the line.")
