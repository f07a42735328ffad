"""A finished (or stopped) sweep's results: the table, the best config as YAML, the Pareto plot."""

from __future__ import annotations

import math
from pathlib import Path

import yaml

_NON_PARAM_COLUMNS = {"status", "epochs_run", "item_table_mb", "compression", "scoring_ms_per_user", "checkpoint",
                      "error", "trial_dir"}


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
