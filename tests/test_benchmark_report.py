"""benchmarks/report.py pairs each prune record with the fused record it was measured against."""

import sys

import recbole_pq.data

sys.path.insert(0, str(recbole_pq.data.PROJECT_ROOT))
from benchmarks.report import prune_pairs  # noqa: E402


def _record(method, tables, dim, ms, **extra):
    return {"method": method, "tables": tables, "n_items": 10**6, "dim": dim, "codes": "uniform", "users": 16,
            "ms_per_user": ms, **extra}


def test_prune_pairs_match_tables_and_dim_and_prefer_the_per_user_ratio():
    records = [
        _record("pqtopk_fused", "trained", 64, 2.0),
        _record("prune", "trained", 64, 1.0),  # older run: no per-user ratio -> ratio of medians
        _record("pqtopk_fused", "trained", 128, 3.0),
        _record("prune", "trained", 128, 1.0, fused_over_prune=1.5),
        _record("prune", "random", 128, 1.0),  # no fused record at these settings: no pair
        {"method": "pqtopk_fused", "n_items": 10**6, "dim": 64, "batch": 1, "ms_per_user": 1.0},  # scoring.py's
    ]
    pairs = {(p["tables"], p["dim"]): (f["ms_per_user"], ratio) for p, f, ratio in prune_pairs(records)}
    assert pairs == {("trained", 64): (2.0, 2.0), ("trained", 128): (3.0, 1.5)}
