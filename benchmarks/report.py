"""Render docs/PERFORMANCE.md from the JSON the benchmarks wrote (no number typed by hand).

    python benchmarks/report.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "docs" / "benchmarks"


def _ms(value) -> str:
    if value is None:
        return "—"
    return f"{value:.3g}" if value < 100 else f"{value:,.0f}"


def scoring_section(data: dict) -> list[str]:
    records = [r for r in data["records"] if "users" not in r]  # the prune benchmark's records: own section
    methods = ["pqtopk_fused", "faiss", "pqtopk_torch", "recjpq", "default"]
    lines = ["## Scoring: ms per user vs catalogue size", "",
             f"Command: `{data['command']}` — {data['threads']} threads, CPU: {data['cpu']}. "
             "Synthetic uint8 codes, m = 8, b = 256, top-10, median of ≥ 5 timed runs after a warm-up "
             "(slow calls: one run, noted in the JSON). `default` is a dense model: the (N, d) matrix is "
             "materialised once (warm-up), then matmul + top-k. `—`: does not fit the 12 GiB budget or "
             "skipped (expected > 60 s per call; the JSON says which).", "",
             "![scoring](benchmarks/scoring.png)", ""]
    for dim in sorted({r["dim"] for r in records}):
        for batch in sorted({r["batch"] for r in records}):
            sizes = sorted({r["n_items"] for r in records if r["dim"] == dim and r["batch"] == batch})
            if not sizes:
                continue
            lines += [f"**d = {dim}, batch = {batch}** (ms per user)", "",
                      "| method | " + " | ".join(f"{n:.0e}" for n in sizes) + " |",
                      "|---|" + "---|" * len(sizes)]
            for method in methods:
                cells = []
                for n in sizes:
                    hit = [r for r in records if (r["method"], r["dim"], r["batch"], r["n_items"]) == (method, dim, batch, n)]
                    cells.append(_ms(hit[0]["ms_per_user"]) if hit else "")
                lines.append(f"| {method} | " + " | ".join(cells) + " |")
            lines.append("")

    def ms(method, n, dim, batch):
        return _scoring_ms(records, method, n, dim, batch)

    lines += ["### Ratios at 10^6 items (same run)", "", "| d | batch | fused ms/user | default ÷ fused | recjpq ÷ fused | FAISS ÷ fused |",
              "|---|---|---|---|---|---|"]
    for dim in sorted({r["dim"] for r in records}):
        for batch in sorted({r["batch"] for r in records}):
            fused = ms("pqtopk_fused", 10**6, dim, batch)
            if not fused:
                continue
            ratio = [f"{ms(m, 10**6, dim, batch) / fused:.1f}×" if ms(m, 10**6, dim, batch) else "—"
                     for m in ("default", "recjpq", "faiss")]
            lines.append(f"| {dim} | {batch} | {fused:.3f} | " + " | ".join(ratio) + " |")
    machine = data.get("machine") or {}
    gbs, mhz, threads = machine.get("read_bandwidth_gbs"), machine.get("cpu_mhz"), machine.get("threads", 1)
    largest = max((r for r in records if r["method"] == "pqtopk_fused" and r["batch"] == 1 and r["ms_per_user"]),
                  key=lambda r: r["n_items"], default=None)
    if largest and gbs and mhz:
        seconds = largest["ms_per_user"] / 1000
        read = largest["n_items"] * largest["m"] / seconds / 1e9
        cycles = seconds * mhz * 1e6 * threads / largest["n_items"]
        batched = ms("pqtopk_fused", largest["n_items"], largest["dim"], 64)
        lines += ["", "### Distance to the machine's limits", "",
                  f"Fused PQTopK, one user, N = {largest['n_items']:.0e}, d = {largest['dim']}: "
                  f"{largest['ms_per_user']:.1f} ms, i.e. {read:.1f} GB/s of codes read against a measured read "
                  f"ceiling of {gbs:.1f} GB/s ({100 * read / gbs:.0f} %), and {cycles:.1f} cycles per item "
                  f"({threads} threads at {mhz:.0f} MHz) against ~{largest['m'] / 2:.0f}–{largest['m']:.0f} cycles for "
                  f"{largest['m']} table lookups at 1–2 loads per cycle. One pass over the "
                  f"{largest['n_items'] * largest['m'] / 1e9:.3g} GB of codes cannot take less than "
                  f"{largest['n_items'] * largest['m'] / gbs / 1e6:.0f} ms at that ceiling: below it, a faster "
                  "kernel cannot help, only more memory bandwidth (more cores or machines)."]
        if batched:
            batch_cycles = batched / 1000 * 64 * mhz * 1e6 * threads / largest["n_items"]
            row_loads = largest["m"] * 64 * 4 // 64  # m rows of 64 float32 scores, in 64-byte loads
            lines += ["", f"A batch of 64 users sharing each pass over the codes: {batched:.1f} ms per user "
                      f"({largest['ms_per_user'] / batched:.1f}× the single-user throughput): the codes are read "
                      f"once per batch, and the per-user cost is then the lookups alone: {batch_cycles:.0f} cycles "
                      f"per item for all 64 users, against {row_loads} 64-byte loads of score rows per item "
                      f"({largest['m']} rows of 64 float32 scores) at one such load per cycle: "
                      f"{100 * row_loads / batch_cycles:.0f} % of that limit."]
    paper = data.get("paper_ms_per_user_d512", {})
    if paper:
        lines += ["", "### Against the PQTopK paper (d = 512, one user; paper: 16-core Ryzen 5950X, here: "
                  f"{threads} threads)", "", "| N | paper PQTopK ms | ours fused ms | paper RecJPQ ms | ours recjpq ms |",
                  "|---|---|---|---|---|"]
        for n in sorted({float(k) for k in paper.get("pqtopk", {})}):
            lines.append(f"| {n:.0e} | {paper['pqtopk'].get(str(n), paper['pqtopk'].get(n))} | "
                         f"{_ms(ms('pqtopk_fused', int(n), 512, 1))} | {paper['recjpq'].get(str(n), paper['recjpq'].get(n))} | "
                         f"{_ms(ms('recjpq', int(n), 512, 1))} |")
    return lines


def prune_pairs(records):
    """(prune record, fused record, fused ÷ prune) per tables × codes × d × N of the prune
    benchmark; the ratio is the per-user one when the run recorded it (both methods timed on
    each user back to back), else the ratio of the medians."""
    runs = [r for r in records if "users" in r]
    key = lambda r: (r["tables"], r.get("codes", "uniform"), r["dim"], r["n_items"])  # noqa: E731
    pairs = []
    for r in sorted((r for r in runs if r["method"] == "prune"),
                    key=lambda r: (r.get("codes", "uniform"), r["dim"], r["tables"] != "trained", r["n_items"])):
        fused = [f for f in runs if f["method"] == "pqtopk_fused" and key(f) == key(r)]
        if fused:
            pairs.append((r, fused[0], r.get("fused_over_prune") or fused[0]["ms_per_user"] / r["ms_per_user"]))
    return pairs


def prune_section(data: dict) -> list[str]:
    records = [r for r in data["records"] if "users" in r]
    if not records:
        return []
    commands = sorted({r.get("command", data.get("prune_command", "python benchmarks/prune.py")) for r in records})
    lines = ["## Safe dynamic pruning (scorer `prune`) vs the fused scan", "",
             "Commands: " + "; ".join(f"`{c}`" for c in commands) + f". One user at a time; median over "
             f"{records[0]['users']} users. *trained*: sub-item embeddings and user vectors of a SASRecJPQ trained on "
             "ML-1M (a 5-epoch run of the benchmark, or the checkpoint named in the command: "
             "`python run_recbole_pq.py --model=SASRecJPQ --dataset=ml-1m --epochs=10 --pq_m=8 --pq_b=256 "
             "--hidden_size=<d> --checkpoint_dir=saved/prune-ckpt<d>`); *random*: N(0, 1) tables "
             "and users. *uniform* codes: N synthetic items with uniform codes (the worst case for pruning); "
             "*derived*: copies of the trained model's real svd item codes with a share of splits redrawn. "
             "Budget: the share of items pruning may score before it gives up and scans. fused ÷ prune: the "
             "median over users of each user's ratio where both methods scored every user back to back "
             "(load from other jobs cancels), else the ratio of the two medians.", "",
             "| tables | codes | d | N | budget | fused ms/user | prune ms/user | fused ÷ prune | prune |",
             "|---|---|---|---|---|---|---|---|---|"]
    for prune, fused, ratio in prune_pairs(records):
        lines.append(f"| {prune['tables']} | {prune.get('codes', 'uniform')} | {prune['dim']} | {prune['n_items']:.0e} | "
                     f"{prune.get('budget', 0):.1%} | {fused['ms_per_user']:.3g} | {prune['ms_per_user']:.3g} | "
                     f"{ratio:.2f}× | {prune.get('note', '')} |")
    return lines + ["", prune_model_check(records)]


# The profile of one pruned call (AMD EPYC, 2 threads, 1M items, d = 64) is text: it explains
# the table and no benchmark writes it.  The shares and ratios it is checked against are read
# from the records (prune_model_check).
PRUNE_TIME = (
    "Where a pruned call's time goes (profiled at 1M items, d = 64, 2 threads): a fixed ~90-110 us "
    "per call, measured on a table where one sub-item decides the top-k (3,960 items scored): the "
    "sub-item scores (a (1, m, b) bmm, 12-21 us), numpy's argsort of the m x b scores (12 us), the "
    "kernel's launch, bounds and merge of the item ranges (~25 us) and the scorer's bookkeeping "
    "(~10 us); then each item scored costs about as much as a scanned one (1.0-1.15x: both are bound by "
    "the 8 table lookups plus one code load per item on two load ports). So fused ÷ prune is about "
    "1 / (1.1 x share scored + 0.1) at 1M: ")
PRUNE_ORDER = (
    " What bounds the uniform codes is the share that must be scored: the list order used (steepest "
    "bound drop per item, `PRUNE_LOOKAHEAD`) came within ~2% of the fewest posting lists that prove the "
    "top-k (an offline dynamic programme that knows the final k-th score), so with this bound no order "
    "scores fewer. At 10M the fixed cost is spread over 10x the items and the shares fall")


def scored_share(record) -> float | None:
    """The median share of the items a prune record's pruned calls scored (from its note)."""
    import re

    found = re.search(r"median ([0-9.]+)% of the items scored", record.get("note", ""))
    return float(found.group(1)) / 100 if found else None


def prune_model_check(records) -> str:
    """PRUNE_TIME's model against the trained-table records: predicted and measured ratios."""
    checks, tens = [], []
    for prune, _, ratio in prune_pairs(records):
        share = scored_share(prune)
        if prune["tables"] != "trained" or share is None:
            continue
        if prune["n_items"] == 1e6 and prune["dim"] == 64:
            checks.append(f"a median {share:.0%} of the items scored (d = 64, {prune.get('codes', 'uniform')} codes) "
                          f"predicts {1 / (1.1 * share + 0.1):.1f}x, measured {ratio:.2f}x")
        if prune["n_items"] == 1e7:
            tens.append((share, ratio))
    text = PRUNE_TIME + "; ".join(checks) + "." + PRUNE_ORDER
    if tens:
        text += (f" ({min(s for s, _ in tens):.0%}-{max(s for s, _ in tens):.0%}), hence "
                 f"{min(r for _, r in tens):.1f}-{max(r for _, r in tens):.1f}x there.")
    return text


def _scoring_ms(records, method, n, dim, batch):
    hit = [r["ms_per_user"] for r in records if "users" not in r
           and (r["method"], r["n_items"], r["dim"], r["batch"]) == (method, n, dim, batch)]
    return hit[0] if hit else None


def targets_section(data: dict) -> list[str]:
    """The scale issue's targets, each against the number measured for it (ratios within one run)."""
    records = data["records"]
    ms = lambda method, n, dim, batch: _scoring_ms(records, method, n, dim, batch)  # noqa: E731
    rows = []

    def target(name, value, goal, unit, at_most):
        if value is None:
            return
        met = value <= goal if at_most else value >= goal
        rows.append(f"| {name} | {'≤' if at_most else '≥'} {goal:g}{unit} | {value:.3g}{unit} | "
                    f"{'met' if met else '**missed**'} |")

    for dim in (64, 512):
        fused = ms("pqtopk_fused", 10**6, dim, 1)
        target(f"1M items, one user, d={dim}: fused", fused, 1.0, " ms", True)
        if fused:
            for method, goal in (("default", 30 if dim == 512 else 10), ("recjpq", 10), ("faiss", 4)):
                other = ms(method, 10**6, dim, 1)
                target(f"1M, one user, d={dim}: {method} ÷ fused", other / fused if other else None, goal, "×", False)
        target(f"1M items, batch 64, d={dim}: fused per user", ms("pqtopk_fused", 10**6, dim, 64), 0.4, " ms", True)
    for dim in (64, 512):
        target(f"1e9 items, one user, d={dim}", ms("pqtopk_fused", 10**9, dim, 1), 700, " ms", True)
        target(f"1e9 items, batch 64, d={dim}: per user", ms("pqtopk_fused", 10**9, dim, 64), 250, " ms", True)
    for r, _, ratio in prune_pairs(records):
        if r["n_items"] != 10**6:
            continue
        where = f"{r.get('codes', 'uniform')} codes, d={r['dim']}, 1M"
        if r["tables"] == "trained":
            target(f"prune, trained tables, {where}: fused ÷ prune", ratio, 3, "×", False)
        else:
            target(f"prune, random tables, {where}: prune ÷ fused", 1 / ratio, 1.2, "×", True)
    if not rows:
        return []
    return ["## Scale targets (issue 6) against this run", "",
            f"CPU: {data['cpu']}, {data['threads']} threads. Absolute times depend on the host and its "
            "memory bandwidth (earlier runs, in the git history of `docs/benchmarks/scoring.json`, were on other "
            "hosts and older kernels); the ratios are within one run.", "",
            "| target | goal | measured | |", "|---|---|---|---|"] + rows + [""]


def batches_section(data: dict) -> list[str]:
    rows = sorted((r for r in data["records"] if r["ms_per_user"]), key=lambda r: r["batch"])
    if not rows:
        return []
    single = next((r["ms_per_user"] for r in rows if r["batch"] == 1), None)
    lines = ["## Fused PQTopK: users per call", "",
             f"Command: `{data['command']}` — {data['threads']} threads, CPU: {data['cpu']}. From "
             "`recbole_pq.items.kernels.scan.USERS_INNER_FROM` users on, a call scans with the users-inner layout "
             "(one pass over the codes for all users, sums vectorised across users; for m = 8 from "
             "`USERS_TILES_FROM` users on in tiles of `USERS_TILE` users, each block of codes scanned by every "
             "tile while it sits in cache); below it, one scan per user.", "",
             "| users per call | ms per user | vs one user |", "|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['batch']} | {r['ms_per_user']:.3g} | "
                     + (f"{single / r['ms_per_user']:.1f}× |" if single else "— |"))
    return lines + [""]


def train_modes_section(data: dict) -> list[str]:
    rows = data["records"]
    lines = ["## Training: seq2seq vs RecBole's prefix augmentation", "",
             f"Command: `{data['command']}` ({data['machine']}). SASRecJPQ on ml-100k.", "",
             "| train_mode | rows per epoch | batches | batch size | epoch seconds (median) |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['train_mode']} | {r['rows_per_epoch']:,} | {r['batches_per_epoch']} | "
                     f"{r['train_batch_size']} | {r['median_epoch_seconds']:.2f} |")
    steps = {r["train_mode"]: r["batches_per_epoch"] for r in rows}
    lines += ["", f"An epoch of prefix training takes {data['prefix_over_seq2seq_epoch_time']:.0f}× longer: it repeats "
              f"every sequence once per item. Per epoch it also takes {steps['prefix'] / steps['seq2seq']:.0f}× more "
              "optimiser steps, so compare quality at equal time, not equal epochs."]
    return lines


def training_step_section(data: dict) -> list[str]:
    rows = data["records"]
    first = rows[0]
    lines = ["## Training: the tied softmax cross-entropy", "",
             f"Command: `{data['command']}` ({data['machine']}). One step = forward, CE over every position, "
             f"backward, Adam; {first['dataset']}, {first['batch_users']} users per batch, sequences up to "
             f"{first['max_seq_length']}, {first['n_items'] - 1:,} items; median of {first['steps']} steps, the two "
             "losses timed alternately on the same batches (which one goes first swaps every step).", "",
             "| model | fused CE ms/step | materialised logits + F.cross_entropy ms/step | ratio |", "|---|---|---|---|"]
    for model in dict.fromkeys(r["model"] for r in rows):
        ms = {r["loss"]: r["median_step_ms"] for r in rows if r["model"] == model}
        lines.append(f"| {model} | {ms['fused']:.0f} | {ms['materialised']:.0f} | "
                     f"{ms['materialised'] / ms['fused']:.2f}× |")
    lines += ["", "The fused loss (`recbole_pq.losses.softmax_cross_entropy`) writes each block of logits once and "
              "turns it into probabilities in place while it is in cache; the backward is two matrix products over "
              "them. `F.cross_entropy` on materialised logits passes over the (positions × items) data about eight "
              "times."]
    return lines


def _machine_line(machine: dict) -> str:
    flags = ", ".join(f for f, on in machine["flags"].items() if on) or "none of avx2/avx512/bf16/amx"
    return f"{machine['cpu']}, {machine['torch_threads']} torch threads, torch {machine['torch']}; CPU flags: {flags}"


def training_epochs_section(data: dict) -> list[str]:
    """Whole epochs of the headline rows: this tree's variants against the baseline tree's code."""
    rows = data["records"]
    lines = ["## Training: whole epochs against the previous main", "",
             f"Command: `{data['command']}` ({_machine_line(data['machine'])}). Every batch of one shuffled epoch is "
             "timed (forward, loss, backward, Adam; collation excluded); `main@…` is the same measurement with the "
             "code of that commit, run in a subprocess of the same run.", "",
             "| data set | model | d | variant | precision | epoch s | speed-up | rows/s | padding share | GFLOP/s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for key in dict.fromkeys((r["dataset"], r["model"], r["hidden_size"]) for r in rows):
        mine = [r for r in rows if (r["dataset"], r["model"], r["hidden_size"]) == key]
        base = next((r for r in mine if r["variant"].startswith("main@")), mine[0])
        for r in mine:
            share = "-" if r["padding_share"] is None else f"{r['padding_share']:.0%}"
            lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {r['variant']} | {r['precision']} | {r['epoch_s']:.1f} | "
                         f"{base['epoch_s'] / r['epoch_s']:.2f}× | {r['rows_per_s']:.0f} | {share} | "
                         f"{r['achieved_gflops']:.0f} |")
    lines += [""] + training_target_lines(rows)
    return lines


# (data set, what, best variant's speed-up over the baseline tree at least)
TRAINING_TARGETS = (("ml-1m", "ML-1M DenseSASRec d = 256, one epoch, where bf16 is available", 3.0),
                    ("video-games", "Amazon Video Games (L = 50), one epoch", 5.0))


def training_target_lines(rows: list[dict]) -> list[str]:
    out = []
    for dataset, what, goal in TRAINING_TARGETS:
        mine = [r for r in rows if r["dataset"] == dataset]
        base = next((r for r in mine if r["variant"].startswith("main@")), None)
        if not base or len(mine) < 2:
            continue
        best = min((r for r in mine if r is not base), key=lambda r: r["epoch_s"])
        ratio = base["epoch_s"] / best["epoch_s"]
        out.append(f"- Target {what}: >= {goal:.0f}× faster than {base['variant']}: {ratio:.2f}× with "
                   f"`{best['variant']}` ({'met' if ratio >= goal else '**missed**'}).")
    return out


def training_section(data: dict) -> list[str]:
    """The model x data set x width grid, the matmul peak and the profile."""
    rows = data["records"]
    peak = data.get("matmul_peak_gflops", {})
    lines = ["## Training throughput per model", "",
             f"Command: `{data['command']}` ({_machine_line(data['machine'])}). Epoch seconds are estimated from "
             "the first batches of a shuffled epoch (a random sample of its batches; `batches_timed`), so "
             "compare variants of one row, not rows; with length buckets the batches differ in length, so a few "
             "batches estimate a bucketed epoch coarsely (the whole-epoch measurement is the section \"Training: "
             "whole epochs against the previous main\"). GFLOP/s counts the matrix products of forward and backward "
             "(torch's FlopCounterMode) over the timed steps.", ""]
    if peak:
        lines += ["Matmul peak of the same process (large GEMMs): " + ", ".join(
            f"{name} {value:.0f} GFLOP/s" for name, value in peak.items()) + ".", ""]
    lines += ["| data set | model | d | variant | step s (median) | epoch s | speed-up | loss positions/s | "
              "GFLOP/step | GFLOP/s | % of peak |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key in dict.fromkeys((r["dataset"], r["model"], r["hidden_size"]) for r in rows):
        mine = [r for r in rows if (r["dataset"], r["model"], r["hidden_size"]) == key]
        base = next((r for r in mine if r["variant"].startswith("main@")),
                    next((r for r in mine if r["variant"] == "plain"), mine[0]))
        for r in mine:
            top = peak.get("bf16" if r["precision"] == "bfloat16" else "fp32")
            share = f"{r['achieved_gflops'] / top:.0%}" if top else "-"
            lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {r['variant']} | {r['median_step_s']:.3f} | "
                         f"{r['epoch_s']:.1f} | {base['epoch_s'] / r['epoch_s']:.2f}× | {r['loss_positions_per_s']:.0f} | "
                         f"{r['gflop_per_step']:.1f} | {r['achieved_gflops']:.0f} | {share} |")
    if data.get("profile"):
        groups = list(dict.fromkeys(g for p in data["profile"] for g in p["self_cpu_share"]))
        first = data["profile"][0]
        lines += ["", f"Where a step's time goes (torch profiler, self CPU time of aten ops; {first['model']} on "
                  f"{first['dataset']}, d = {first['hidden_size']}):", "",
                  "| variant | s/step | " + " | ".join(groups) + " |", "|---|---|" + "---|" * len(groups)]
        for p in data["profile"]:
            lines.append(f"| {p['variant']} | {p['seconds_per_step']:.2f} | "
                         + " | ".join(f"{p['self_cpu_share'].get(g, 0):.0%}" for g in groups) + " |")
    lines += ["", "What bounds the rest: the full-softmax cross-entropy multiplies every loss position by the "
              "whole (N, d) item table three times (logits, and the two gradient products), whatever the "
              "padding; trimming and buckets remove only the Transformer's work on padding. On ML-1M (3,416 "
              "items) the loss is about half of a float32 step's products, on Video Games (23,715 items, ~9 "
              "items per user) most of them, so there an epoch is bounded by P × N × d × 6 FLOPs at the "
              "products' speed: bfloat16 raises that speed, and only a sampled loss (`loss_type: gBCE`, the "
              "`buckets+bf16+gBCE` variant, another loss with other quality) removes the N. The element-wise "
              "share is dropout masks, LayerNorm, GELU, the attention softmax and autocast's casts; the "
              "optimiser (Adam over ~2M weights) is a few percent."]
    return lines


def lisa_paths_section(data: dict) -> list[str]:
    rows = data["records"]
    layer = [r for r in rows if r["kind"] == "layer"]
    model = [r for r in rows if r["kind"] == "model"]
    first = layer[0]
    lines = ["## Training: LISA's histogram and pairwise paths", "",
             f"Command: `{data['command']}` ({data['machine']}). With codes fixed before training, LISA-Base's "
             "attention is exact either over (N, L, B, W) codeword histograms, O(L B W D), or pairwise over the "
             "visible positions, O(L² B D); the layer takes the pairwise path when L < W "
             "(`recbole_pq.layers.lisa.attention_context`). Both paths timed alternately on the same inputs. "
             f"Layer: one attention forward + backward, B × W = {first['B']} × {first['W']}, D = {first['dim']}, "
             f"{first['length'] * first['batch']:,} positions per batch.", "",
             "| L | histogram ms | pairwise ms | histogram / pairwise |", "|---|---|---|---|"]
    for length in dict.fromkeys(r["length"] for r in layer):
        ms = {r["path"]: r["median_ms"] for r in layer if r["length"] == length}
        lines.append(f"| {length} | {ms['histogram']:.0f} | {ms['pairwise']:.0f} | "
                     f"{ms['histogram'] / ms['pairwise']:.2f}× |")
    if model:
        ms = {r["path"]: r["median_ms"] for r in model}
        m = model[0]
        lines += ["", f"Whole training step (forward, loss, backward, Adam) of SASRecLISA-base on {m['dataset']}, "
                  f"L = {m['length']}, {m['batch']} users per batch, B × W = {m['B']} × {m['W']}, "
                  f"{m['n_items'] - 1:,} items: histogram {ms['histogram']:.0f} ms, pairwise {ms['pairwise']:.0f} ms "
                  f"({ms['histogram'] / ms['pairwise']:.2f}×)."]
    return lines


def attention_section(data: dict) -> list[str]:
    records = data["records"]
    lines = ["## LISA attention vs vanilla causal attention", "",
             f"Command: `{data['command']}` — {data['threads']} threads, {data['tokens_per_batch']:,} tokens per "
             "batch (batch = tokens / L), forward pass, median of 3 after a warm-up. Vanilla is torch's fused "
             "causal `scaled_dot_product_attention` (one head of width D); LISA is `CodewordHistogramAttention` "
             "(histograms + tables + weights + values).", "", "![attention](benchmarks/attention.png)", ""]
    seq = [r for r in records if r["benchmark"] == "sequence"]
    for dim in sorted({r["dim"] for r in seq}):
        lengths = sorted({r["length"] for r in seq if r["dim"] == dim})
        variants = sorted({(r["method"], r["B"] * r["W"]) for r in seq if r["dim"] == dim})
        lines += [f"**D = {dim}** (ms per batch of {data['tokens_per_batch']:,} tokens; L ≥ tokens: one sequence)", "",
                  "| method | " + " | ".join(f"L={n:,}" for n in lengths) + " |", "|---|" + "---|" * len(lengths)]
        for method, bw in variants:
            cells = []
            for n in lengths:
                hit = [r for r in seq if (r["method"], r["B"] * r["W"], r["dim"], r["length"]) == (method, bw, dim, n)]
                if method == "vanilla":
                    hit = [r for r in seq if (r["method"], r["dim"], r["length"]) == (method, dim, n)]
                cells.append(f"{hit[0]['ms_per_batch']:.3g}" if hit and hit[0].get("ms_per_batch")
                             else (hit[0].get("note", "—") if hit else ""))
            label = method if method == "vanilla" else f"lisa B·W={bw}"
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    for dim in sorted({r["dim"] for r in seq}):
        van = [r for r in seq if r["method"] == "vanilla" and r["dim"] == dim and r.get("ms_per_batch")]
        if not van:
            continue
        top = max(van, key=lambda r: r["length"])
        for bw in sorted({r["B"] * r["W"] for r in seq if r["method"] == "lisa"}):
            lisa = [r for r in seq if r["method"] == "lisa" and r["dim"] == dim and r["B"] * r["W"] == bw
                    and r["length"] == top["length"] and r.get("ms_per_batch")]
            if lisa:
                lines.append(f"- L = {top['length']:,}, D = {dim}, B·W = {bw}: LISA is "
                             f"{top['ms_per_batch'] / lisa[0]['ms_per_batch']:.1f}× faster than vanilla "
                             f"(peak RSS {lisa[0]['peak_rss_mb']:.0f} MB vs {top['peak_rss_mb']:.0f} MB).")
    online = [r for r in records if r["benchmark"] == "online"]
    if online:
        lengths = sorted({r["length"] for r in online})
        lines += ["", "**Online step** (ms per new interaction for a user with an L-long history)", "",
                  "| method | D | " + " | ".join(f"L={n:,}" for n in lengths) + " |", "|---|---|" + "---|" * len(lengths)]
        for method, dim in sorted({(r["method"], r["dim"]) for r in online}):
            cells = []
            for n in lengths:
                hit = [r for r in online if (r["method"], r["dim"], r["length"]) == (method, dim, n)]
                cells.append(f"{hit[0]['ms_per_step']:.3g}" if hit and hit[0].get("ms_per_step")
                             else (hit[0].get("note", "—") if hit else ""))
            lines.append(f"| {method} | {dim} | " + " | ".join(cells) + " |")
        lines += ["", "LISA's step updates a (B, W) histogram and computes one position: its cost does not grow "
                  "with L. Vanilla attends one query over the whole L-long key/value cache."]
    return lines


def _load_note(data: dict) -> str:
    load = data.get("load_average_at_start")
    if load is None:
        return ""
    busy = load >= 0.5 * data["threads"]
    return (f"Load average when the run started: {load} on {data['threads']} cores"
            + (" — other jobs were running, so single-process and sharded times were not taken under the same "
               "load and their ratios are noisy." if busy else "."))


def sharded_section(data: dict) -> list[str]:
    records = data["records"]
    lines = ["## PQTopK sharded over Ray actors (one machine)", "",
             f"Command: `{data['command']}` — {data['threads']} cores shared by the shards, CPU: {data['cpu']}. "
             "Synthetic uint8 codes (m = 8, b = 256) in one memory-mapped `.npy` file; each shard actor scans its "
             "range with the fused kernel and returns its top-10; the driver merges (`recbole_pq.serving.sharded`). "
             "One user per query, median after a warm-up; the merged top-10 is checked against the "
             f"single-process scan. {_load_note(data)}", "",
             "| items | shards | ms per query | single process ms | ratio |", "|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['n_items']:.0e} | {r['shards']} | {_ms(r['ms_per_query'])} | "
                     f"{_ms(r['single_process_ms'])} | {r['ratio_to_single_process']:.2f}× |")
    first = records[0]
    lines += ["", f"Per query each shard receives one float32 m × b table ({first['query_bytes_per_shard']:,} bytes) "
              f"and sends back k (score, id) pairs ({first['reply_bytes_per_shard']} bytes), whatever the catalogue "
              "size. On one machine the shards split the same cores and memory bandwidth, so these ratios show "
              "Ray's cost (dispatch, serialisation, merge: the small-catalogue rows), not a speed-up. On S machines "
              "each shard scans N/S items with its own cores and bandwidth: a query costs about the "
              "single-process time of N/S items plus that fixed overhead and one network round trip of a few KB, "
              "so S machines divide the latency of scan-bound catalogues (1e8 items and up) by nearly S, and hold "
              "S times the codes."]
    return lines


def scoring_load_section(data: dict) -> list[str]:
    loads = [c for c in data["records"][0]["ms_per_user"] if c != "quiet"]
    flags = ", ".join(f for f, on in data["flags"].items() if on)
    lines = ["## Scoring under load: another process on the cores", "",
             f"Command: `{data['command']}` — CPU: {data['cpu']} ({flags}), {data['cpu_count']} cores, "
             f"{data['threads']} scan threads. Fused scan, {data['n_items']:,} items, d = {data['dim']}, one user, "
             "top-10; each variant in its own process, quiet and loaded blocks alternating (medians). "
             f"Target: {data['target']}.", "",
             "| variant | quiet ms | " + " | ".join(f"{c} ms (× quiet)" for c in loads) + " |",
             "|---|---|" + "---|" * len(loads)]
    for r in data["records"]:
        ms = r["ms_per_user"]
        lines.append(f"| {r['variant']} | {ms['quiet']:.3g} | "
                     + " | ".join(f"{ms[c]:.3g} ({r['slowdown'][c]:.2f}×)" for c in loads) + " |")
    return lines + ["", "The default starts numba's OpenMP threads with `OMP_WAIT_POLICY=passive` (threads sleep "
                    "between scans instead of spinning against the process that shares their core; torch's own "
                    "OpenMP runtime and child processes keep their settings; a user's own `OMP_WAIT_POLICY` wins) "
                    "and hands item ranges to threads one at a time, so a thread on a busy core takes fewer "
                    "ranges (`recbole_pq/items/kernels/scan.py`).", "", "![scoring under load](benchmarks/scoring_load.png)"]


def scoring_tables_section(data: dict) -> list[str]:
    batches = sorted({r["batch"] for r in data["records"]})
    lines = ["## Scoring with larger sub-item tables (pq_b / pq_m / pq_dense_head: auto)", "",
             f"Command: `{data['command']}` — CPU: {data['cpu']}, {data['threads']} threads. Fused scan over "
             f"{data['n_items']:,} items, d = {data['dim']}, top-{data['k']}, random codes; every size measured in "
             f"one process, alternating (medians). Dense float32 items: {data['dense_mb']:.0f} MB. Dense head: "
             "random head items with large residuals (they fill the top-k by their exact scores); the scan reads "
             "the codes of the items outside the head, then the head's matmul and a merge."
             + (f" Note: {data['note']}." if data.get("note") else ""), "",
             "| m | b | dense head | sizes | code bytes | item MB | "
             + " | ".join(f"ms/user, batch {b}" for b in batches)
             + " | × today (batch 1) |", "|---|---|---|---|---|---|" + "---|" * len(batches) + "---|"]

    def key(r):
        return r["m"], r["b"], r.get("dense_head", 0)
    today = next(r["ms_per_user"] for r in data["records"] if key(r) == (8, 256, 0) and r["batch"] == batches[0])
    for m, b, head in dict.fromkeys(key(r) for r in data["records"]):
        rows = {r["batch"]: r for r in data["records"] if key(r) == (m, b, head)}
        first = rows[batches[0]]
        lines.append(f"| {m} | {b:,} | {format(head, ',') if head else ''} | {first.get('sizes', '')} | {first['code_bytes']} | "
                     f"{first['item_mb']:.1f} | "
                     + " | ".join(f"{rows[batch]['ms_per_user']:.3g}" for batch in batches)
                     + f" | {first['ms_per_user'] / today:.1f}× |")
    return lines + ["", "b = 256 keeps one-byte codes and the packed, user-tiled kernels; beyond it codes take two "
                    "bytes and the m × b score table outgrows the L1/L2 caches (b = 32,768: 1 MB per user for m = 8), "
                    "so each lookup may miss. A dense head adds one (batch, H) matmul and a merge; while it serves, the "
                    "scan keeps a copy of the codes of the items outside the head."]


def assignment_section(data: dict) -> list[str]:
    """benchmarks/assignment.py: seconds of the default code assignment before training, by catalogue size."""
    lines = ["## Code assignment before training (svd_pq, pq_b: auto)", "",
             f"Command: `{data['command']}` — CPU: {data['cpu']}, {data.get('torch_threads', '?')} threads, load "
             f"average {data.get('load_average', '?')} (one run per size). Synthetic interactions: N / 2 users, "
             "10 items each, item popularity ~ 1 / rank; d = 64, m = 8. k-means: `pq_kmeans: auto` (two levels from "
             "16,384 items or 2^26 point-centroid distances per iteration on, flat below); flat and two_level both "
             "timed where N x b allows. Quantisation error: squared error of the PQ reconstruction, % of the SVD vectors' energy.",
             "", "| items N | b | SVD s | k-means s (auto) | flat s | two-level s | error (auto) | error flat | "
             "error two-level | items sharing a tuple | unique_codes s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in data["records"]:
        seconds, errors = r["seconds"], r["quantisation_error"]

        def share(name):
            if name not in errors:
                return ""
            percent = 100 * errors[name] / r["vector_energy"]
            return f"{percent:.1f}%" if percent >= 1 else f"{percent:.2f}%"
        lines.append(f"| {r['n_items']:,} | {r['pq_b']:,} | {seconds['svd']:.1f} | {seconds['k_means']:.1f} | "
                     f"{seconds.get('k_means_flat', '')} | {seconds.get('k_means_two_level', '')} | {share('auto')} | "
                     f"{share('flat')} | "
                     f"{share('two_level')} | {r['items_sharing_a_tuple']:,} | {unique_cell(r)} |")
    return lines + ["", "unique_codes ranks all m × b single-split moves of every item that shares its tuple; where "
                    "that is more cost entries than the run's `--unique-limit` it was not timed (skipped: the entries "
                    "it would rank). It is off by default.", "", "![assignment time](benchmarks/assignment.png)"]


def unique_cell(record: dict) -> str:
    seconds = record["seconds"].get("unique_codes")
    if seconds is not None:
        return f"{seconds:.1f}"
    return f"skipped ({record['unique_codes_cost_entries']:.1e} cost entries)"


def main() -> int:
    parts = ["# Performance", "", "Every number below is rendered by `python benchmarks/report.py` from the JSON "
             "files in `docs/benchmarks/`, which the commands shown wrote. Ratios are taken within one run; the "
             "machine is shared and noisy, so absolute times vary by run.", ""]
    for name, section in (("scoring.json", targets_section), ("scoring.json", scoring_section),
                          ("scoring-batches.json", batches_section), ("scoring.json", prune_section),
                          ("scoring_load.json", scoring_load_section),
                          ("scoring_tables.json", scoring_tables_section),
                          ("attention.json", attention_section),
                          ("sharded.json", sharded_section),
                          ("training_epochs.json", training_epochs_section),
                          ("training.json", training_section),
                          ("train_modes.json", train_modes_section),
                          ("training_step.json", training_step_section),
                          ("lisa_paths.json", lisa_paths_section),
                          ("assignment.json", assignment_section)):
        path = BENCH / name
        if path.is_file():
            parts += section(json.loads(path.read_text())) + [""]
    (ROOT / "docs" / "PERFORMANCE.md").write_text("\n".join(parts))
    print(f"wrote {ROOT / 'docs' / 'PERFORMANCE.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
