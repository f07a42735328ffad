"""pq_b: auto / pq_m: auto -- sub-item tables sized from the catalogue -- and the starvation warning."""

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recbole_pq.errors import ConfigError
from recbole_pq.items.assignment import code_dtype
from recbole_pq.items.sizing import (
    COMPRESSION_TARGET,
    MAX_CODES,
    MIN_CODES,
    auto_codes_per_split,
    auto_splits,
    representation_bytes,
    starvation_warnings,
)
from recbole_pq.pipeline import build_config, setup


@settings(max_examples=200, deadline=None)
@given(n_items=st.integers(3, 10**9), dim=st.sampled_from([16, 32, 64, 128, 256, 512]), m=st.sampled_from([1, 2, 4, 8]))
def test_auto_b_is_the_largest_power_of_two_within_the_budget(n_items, dim, m):
    b = auto_codes_per_split(n_items, dim, m)
    assert 2 <= b <= min(MAX_CODES, n_items - 1)
    dense = n_items * dim * 4
    if b > MIN_CODES:  # grown: within the budget, and doubling once more would break it (or the cap)
        assert b & (b - 1) == 0
        assert representation_bytes(n_items, dim, m, b) * COMPRESSION_TARGET <= dense
        assert b == MAX_CODES or representation_bytes(n_items, dim, m, 2 * b) * COMPRESSION_TARGET > dense
    else:  # small catalogues keep the long-standing 256 (or every item its own code)
        assert b == min(MIN_CODES, n_items - 1)


def test_auto_b_examples_and_code_types():
    assert auto_codes_per_split(1683, 64, 8) == 256  # ml-100k, ML-1M: unchanged
    assert auto_codes_per_split(3707, 64, 8) == 256
    assert auto_codes_per_split(23_715, 64, 8) == 512  # Amazon Video Games
    assert auto_codes_per_split(10**6, 64, 8) == MAX_CODES
    assert code_dtype(auto_codes_per_split(10**6, 64, 8)) == np.int16
    b = auto_codes_per_split(10**6, 64, 8)
    assert 10**6 * 64 * 4 / representation_bytes(10**6, 64, 8, b) >= COMPRESSION_TARGET


def test_auto_m_gives_16_wide_sub_items_where_d_allows():
    assert [auto_splits(d) for d in (8, 16, 48, 64, 100, 256)] == [1, 1, 3, 4, 5, 16]


def test_starvation_warning_says_what_to_change():
    [crowded] = starvation_warnings(10**6, 64, 8, 256)
    assert "3906 items share each sub-item id" in crowded and "pq_b=32768, or pq_b=auto" in crowded
    [narrow] = starvation_warnings(1000, 64, 16, 256)
    assert "sub-item embeddings are 4 wide" in narrow and "pq_m=4" in narrow
    assert starvation_warnings(3707, 64, 8, 256) == []
    [lisa] = starvation_warnings(10**5, 64, 8, 256, names=("lisa_B", "lisa_W"), split_dims=False)
    assert "raise lisa_W (e.g. lisa_W=" in lisa and "auto" not in lisa  # LISA's codewords are D wide: no width check


def test_auto_sizes_are_resolved_logged_and_saved(ml1m_slice, fast_settings, caplog):
    settings_ = {**fast_settings, "data_path": str(ml1m_slice), "pq_m": "auto", "pq_b": "auto", "state": "INFO"}
    with caplog.at_level(logging.INFO):
        config, _, model, trainer = setup("SASRecJPQ", "ml-1m", config_dict=settings_)
    n_items = model.items.n_items
    assert (model.items.m, model.items.b) == (1, min(MIN_CODES, n_items - 1))  # d = 16: one 16-wide split
    assert (config["pq_m"], config["pq_b"]) == (model.items.m, model.items.b)  # what the checkpoint records
    assert "(auto;" in caplog.text and f"pq_b={model.items.b}" in caplog.text


@pytest.mark.parametrize("value", ["big", 1.5, 0])
def test_bad_auto_values(value):
    with pytest.raises(ConfigError, match="pq_m"):
        build_config("SASRecJPQ", "ml-100k", config_dict={"pq_m": value, "pq_b": "auto"})
