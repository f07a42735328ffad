"""Training throughput against the machine's limits: seconds per step and per epoch, rows
and loss positions per second, achieved GFLOP/s against a matmul peak of the same process.

    python benchmarks/training.py [--datasets ml-1m video-games] [--dims 64 256]
        [--models DenseSASRec SASRecJPQ gBERT4RecJPQ SASRecLISA-base]
        [--variants plain buckets buckets+bf16] [--batches 8] [--full-epoch]
        [--baseline-tree DIR] [--anchor] [--profile] [--json docs/benchmarks/training.json]

A variant is a set of training keys (``VARIANTS``): ``plain`` is RecBole's shuffle in
float32, ``buckets`` adds length-bucketed batches, ``buckets+bf16`` bfloat16 autocast.
``--baseline-tree DIR`` also runs the ``plain`` measurement with the code of another
checkout (e.g. ``git worktree add ../base <commit>``) in a subprocess of this run, so
speed-ups are ratios measured in one run on one host.  Each measurement times the first
``--batches`` batches of a shuffled epoch (a random sample of its batches) and scales the
mean step to the epoch; ``--full-epoch`` times every batch.  FLOPs are counted by torch's
FlopCounterMode on the same batches in a separate, untimed pass.  ``--anchor`` adds
RecBole's own SASRec (prefix rows, CE) per loss position; ``--profile`` splits a
DenseSASRec step into matmuls, softmax/CE, attention, element-wise and optimiser time.
Writes JSON with the CPU model and flags, and a PNG of epoch time per variant.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout: benchmarks (recbole_pq: see --baseline-tree)
from benchmarks.harness import ROOT, machine  # noqa: E402
from benchmarks.harness import commit as checkout_commit  # noqa: E402

JSON_DEFAULT = ROOT / "docs" / "benchmarks" / "training.json"
SEQ_LENGTH = {"ml-1m": 200, "video-games": 50, "ml-100k": 50}
MODELS = {  # name -> (--model, its keys)
    "DenseSASRec": ("DenseSASRec", {}),
    "SASRecJPQ": ("SASRecJPQ", {}),
    "gBERT4RecJPQ": ("gBERT4RecJPQ", {}),
    "SASRecLISA-base": ("SASRecLISA", {"lisa_variant": "base"}),
}
VARIANTS = {
    "plain": {"train_length_buckets": 0, "train_precision": "fp32"},
    "buckets": {"train_length_buckets": 16, "train_precision": "fp32"},
    "buckets+bf16": {"train_length_buckets": 16, "train_precision": "bf16"},
    # Not a pure speed-up (another loss, so other quality): what sampled negatives save where
    # the full softmax over the catalogue dominates.  Only when named in --variants.
    "buckets+bf16+gBCE": {"train_length_buckets": 16, "train_precision": "bf16", "loss_type": "gBCE",
                          "neg_samples": 256},
}
DEFAULT_VARIANTS = ("plain", "buckets", "buckets+bf16")


def matmul_peak(dtype_name: str, repeats: int = 5) -> float:
    """Best GFLOP/s of large matrix products in ``dtype_name`` in this process."""
    import torch

    dtype = getattr(torch, {"fp32": "float32", "bf16": "bfloat16"}[dtype_name])
    best = 0.0
    for n, k, m in ((2048, 2048, 2048), (8192, 256, 2048)):
        a, b = torch.randn(n, k).to(dtype), torch.randn(k, m).to(dtype)
        a @ b
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = max(best, 2 * n * k * m / (time.perf_counter() - start) / 1e9)
    return round(best, 1)


def build(model_name: str, dataset: str, dim: int, variant: dict, data_path: str):
    """(config, train loader, model, trainer) for one measurement."""
    from recbole_pq.pipeline import setup

    run_model, keys = MODELS.get(model_name, (model_name, {}))
    settings = {"epochs": 1, "state": "WARNING", "seed": 2020, "reproducibility": False, "hidden_size": dim,
                "MAX_ITEM_LIST_LENGTH": SEQ_LENGTH.get(dataset, 50), "data_path": data_path, **keys, **variant}
    if run_model == "SASRec":  # RecBole's own: prefix rows, its default batch
        settings.update(train_mode="prefix", loss_type="CE", train_neg_sample_args=None)
    config, (train, _, _), model, trainer = setup(run_model, dataset, config_dict=settings)
    return config, train, model, trainer


def step_function(model, trainer):
    import torch

    loss_fn = model.calculate_loss
    dtype = getattr(trainer, "autocast_dtype", None)

    def step(batch):
        trainer.optimizer.zero_grad()
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = loss_fn(batch)
        loss.float().backward()
        trainer.optimizer.step()

    return step


def count_flops(model, batch, dtype) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as counter:
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = model.calculate_loss(batch)
        loss.float().backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def measure(model_name: str, dataset: str, dim: int, variant_name: str, batches: int, full_epoch: bool,
            data_path: str, apply_variant: bool = True) -> dict:
    import torch

    variant = VARIANTS[variant_name] if apply_variant else {}
    config, train, model, trainer = build(model_name, dataset, dim, variant, data_path)
    model.train()
    step = step_function(model, trainer)
    # one shuffled epoch (or its first batches), collated up front: collation is not timed
    n_batches = len(train)
    epoch = [b for _, b in zip(range(n_batches if full_epoch else batches + 1), train)]
    timed = epoch
    step(timed[0])  # warm-up (allocator, oneDNN kernels)
    times = []
    for batch in timed[1:] if not full_epoch else timed:
        start = time.perf_counter()
        step(batch)
        times.append(time.perf_counter() - start)
    measured = timed[1:] if not full_epoch else timed
    dtype = getattr(trainer, "autocast_dtype", None)
    flop_batches = measured[:min(len(measured), 4)]
    flops = [count_flops(model, b, dtype) for b in flop_batches]
    seq_field = config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]
    target = config["ITEM_ID_FIELD"] + "_target_list"
    rows = [len(b) for b in measured]
    positions = [int((b[target] > 0).sum()) if target in b else len(b) for b in measured]
    padded = [int(b[config["ITEM_LIST_LENGTH_FIELD"]].max()) * len(b) for b in measured]
    real = [int(b[config["ITEM_LIST_LENGTH_FIELD"]].sum()) for b in measured]
    mean_step = statistics.fmean(times)
    return {
        "dataset": dataset, "model": model_name, "hidden_size": dim, "variant": variant_name,
        "train_length_buckets": config["train_length_buckets"] if "train_length_buckets" in config else None,
        "precision": str(dtype or torch.float32).replace("torch.", ""),
        "max_seq_length": config["MAX_ITEM_LIST_LENGTH"], "batch_rows": config["train_batch_size"],
        "batches_per_epoch": n_batches, "batches_timed": len(times), "full_epoch": full_epoch,
        "median_step_s": round(statistics.median(times), 4), "mean_step_s": round(mean_step, 4),
        "epoch_s": round(sum(times) if full_epoch else mean_step * n_batches, 2),
        "rows_per_s": round(sum(rows) / sum(times), 1),
        "loss_positions_per_s": round(sum(positions) / sum(times), 1),
        "padding_share": round(1 - sum(real) / max(1, sum(padded)), 3) if seq_field in epoch[0] else None,
        "gflop_per_step": round(statistics.fmean(flops) / 1e9, 2),
        "achieved_gflops": round(sum(flops) / sum(times[:len(flops)]) / 1e9, 1),
    }


PROFILE_GROUPS = (  # (group, substrings of aten op names), first match wins
    ("optimiser", ("_foreach", "adam", "lerp", "addcdiv", "addcmul", "sqrt")),
    ("softmax/CE", ("exp", "amax", "softmax", "log_softmax", "_TiedSoftmaxCE", "logsigmoid")),
    ("attention", ("scaled_dot_product", "flash_attention", "bmm", "baddbmm")),
    ("matmuls", ("aten::mm", "addmm", "matmul", "linear")),
)


def profile_step(model_name: str, dataset: str, dim: int, variant_name: str, data_path: str, steps: int = 3) -> dict:
    """Self CPU time of one step's aten ops, grouped (share of the total)."""
    from torch.profiler import ProfilerActivity, profile

    _, train, model, trainer = build(model_name, dataset, dim, VARIANTS[variant_name], data_path)
    model.train()
    step = step_function(model, trainer)
    batches = [b for _, b in zip(range(steps + 1), train)]
    step(batches[0])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for b in batches[1:]:
            step(b)
    groups: dict[str, float] = {}
    for event in prof.key_averages():
        if not event.key.startswith("aten::"):
            continue
        name = event.key.lower()
        group = next((g for g, keys in PROFILE_GROUPS if any(k.lower() in name for k in keys)), "element-wise/other")
        groups[group] = groups.get(group, 0.0) + event.self_cpu_time_total
    total = sum(groups.values())
    return {"dataset": dataset, "model": model_name, "hidden_size": dim, "variant": variant_name,
            "self_cpu_share": {g: round(t / total, 3) for g, t in sorted(groups.items(), key=lambda x: -x[1])},
            "seconds_per_step": round(total / 1e6 / steps, 3)}


def baseline_records(tree: Path, args) -> list[dict]:
    """The ``plain`` measurements with another checkout's code, in a subprocess."""
    commit = checkout_commit(tree)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "baseline.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--code-tree", str(tree), "--variants", "plain",
                   "--datasets", *args.datasets, "--dims", *map(str, args.dims), "--models", *args.models,
                   "--batches", str(args.batches), "--json", str(out), "--no-peak"]
        if args.full_epoch:
            command.append("--full-epoch")
        subprocess.run(command, check=True)
        records = json.loads(out.read_text())["records"]
    for record in records:
        record["variant"] = f"main@{commit}"
    return records


def plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({(r["dataset"], r["model"], r["hidden_size"]) for r in records if r.get("model") != "SASRec"})
    variants = list(dict.fromkeys(r["variant"] for r in records))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(keys)), 4))
    width = 0.8 / max(1, len(variants))
    for i, variant in enumerate(variants):
        heights = [next((r["epoch_s"] for r in records if (r["dataset"], r["model"], r["hidden_size"]) == key
                         and r["variant"] == variant), 0) for key in keys]
        ax.bar([k + i * width for k in range(len(keys))], heights, width, label=variant)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(keys))])
    ax.set_xticklabels([f"{d}\n{m}\nd={h}" for d, m, h in keys], fontsize=7)
    ax.set_ylabel("seconds per epoch")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.set_title("Training epoch time (2-core CPU; lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["ml-1m", "video-games"])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--dims", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--batches", type=int, default=8, help="batches timed per measurement")
    parser.add_argument("--full-epoch", action="store_true", help="time every batch of an epoch")
    parser.add_argument("--baseline-tree", type=Path, help="a checkout whose code is measured as the baseline")
    parser.add_argument("--anchor", action="store_true", help="also RecBole's own SASRec (prefix rows, CE)")
    parser.add_argument("--profile", action="store_true", help="group a DenseSASRec step's time by op kind")
    parser.add_argument("--data-path", default=str(ROOT / "dataset"))
    parser.add_argument("--json", type=Path, default=JSON_DEFAULT)
    parser.add_argument("--code-tree", type=Path, help=argparse.SUPPRESS)  # used by --baseline-tree
    parser.add_argument("--no-peak", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    code_root = args.code_tree.resolve() if args.code_tree else ROOT
    sys.path.insert(0, str(code_root))
    bf16 = False
    if not args.code_tree:  # another checkout may predate train_precision
        import torch

        from recbole_pq.precision import bf16_supported

        bf16 = bf16_supported(torch.device("cpu"))[0]
    variants = [v for v in args.variants if bf16 or "bf16" not in v]
    records = []
    for dataset in args.datasets:
        for dim in args.dims:
            for model_name in args.models:
                for variant in variants:
                    record = measure(model_name, dataset, dim, variant, args.batches, args.full_epoch, args.data_path,
                                     apply_variant=not args.code_tree)
                    records.append(record)
                    write_json(args, argv, records)
                    print(f"{dataset:12s} {model_name:16s} d={dim:<4d} {variant:13s} step {record['median_step_s']:.3f}s "
                          f"epoch {record['epoch_s']:.1f}s  {record['achieved_gflops']} GFLOP/s", flush=True)
            if args.anchor:  # RecBole's batches are 2048 rows: a few steps say enough
                record = measure("SASRec", dataset, dim, "plain", min(args.batches, 2), False, args.data_path,
                                 apply_variant=False)
                record["variant"] = "RecBole SASRec (prefix)"
                records.append(record)
                write_json(args, argv, records)
    if args.baseline_tree:
        records += baseline_records(args.baseline_tree.resolve(), args)
    extra = {}
    if not args.no_peak:
        extra["matmul_peak_gflops"] = {"fp32": matmul_peak("fp32")}
        if bf16:
            extra["matmul_peak_gflops"]["bf16"] = matmul_peak("bf16")
    if args.profile and not args.code_tree:
        extra["profile"] = [profile_step("DenseSASRec", args.datasets[0], max(args.dims), v, args.data_path)
                            for v in variants]
    write_json(args, argv, records, extra)
    if not args.code_tree:
        plot(records, args.json.with_suffix(".png"))
        print(json.dumps({"speed-ups (epoch)": speedups(records)}, indent=2))
    print(f"-> {args.json}")
    return 0


def write_json(args, argv, records, extra: dict | None = None) -> None:
    out = {"command": "python benchmarks/training.py " + " ".join(argv), "machine": machine(),
           "records": records, **(extra or {})}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")


def speedups(records: list[dict]) -> dict:
    """epoch_s of the first variant (the baseline tree when given, else ``plain``) / each other."""
    out = {}
    for key in sorted({(r["dataset"], r["model"], r["hidden_size"]) for r in records}):
        rows = {r["variant"]: r["epoch_s"] for r in records if (r["dataset"], r["model"], r["hidden_size"]) == key}
        base_name = next((v for v in rows if v.startswith("main@")), "plain")
        if base_name in rows:
            out["/".join(map(str, key))] = {v: round(rows[base_name] / s, 2) for v, s in rows.items() if v != base_name}
    return out


if __name__ == "__main__":
    sys.exit(main())
