"""Find a model class by name: the plugin's models first, then all of RecBole's built-ins.

RecBole's own ``get_model`` only looks inside the ``recbole`` package, so the plugin's
names (``recbole_pq.models.PLUGIN_MODELS``, an explicit mapping) are looked up here and
everything else is delegated to RecBole.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import recbole
from recbole.utils import get_model as recbole_get_model

from recbole_pq.errors import ConfigError

from recbole_pq.models import PLUGIN_MODELS


def recbole_model_names() -> list[str]:
    """RecBole's built-in model names (each has a YAML file of defaults in the wheel)."""
    model_dir = Path(recbole.__file__).parent / "properties" / "model"
    return sorted(p.stem for p in model_dir.glob("*.yaml"))


def available_models() -> list[str]:
    return sorted(PLUGIN_MODELS) + [n for n in recbole_model_names() if n not in PLUGIN_MODELS]


def get_model_class(name: str) -> type:
    """The class for ``name``; ValueError naming close matches when there is none."""
    if name in PLUGIN_MODELS:
        return PLUGIN_MODELS[name]
    if name in recbole_model_names():
        return recbole_get_model(name)
    names = available_models()
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"Unknown model '{name}'.{hint} Plugin models: {', '.join(sorted(PLUGIN_MODELS))}; "
        f"RecBole models: {', '.join(recbole_model_names())}."
    )

