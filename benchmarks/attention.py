"""LISA attention vs vanilla causal self-attention on the CPU, and the online step.

    python benchmarks/attention.py [--quick] [--json docs/benchmarks/attention.json]

Sequence benchmark: tokens per batch fixed (batch x L = 16,384, as the LISA paper
fixes the tokens per batch), L from 128 up; vanilla (torch's fused causal
scaled_dot_product_attention, one head of width D) up to L = 16K, LISA (the
CodewordHistogramAttention layer with B x W codewords) up to 64K; D in {128, 1024};
B x W in {128, 256} (8 x 16, 8 x 32).  Forward pass, median of 3 after a warm-up,
each configuration in a fresh process for its peak RSS; a configuration over
--timeout seconds is recorded as such.

Online step: a user with an L-long history gets one more item.  LISA updates its
(B, W) histogram and computes one position (O(B W D), independent of L); vanilla
attends one query over the L-long key/value cache (O(L D)).  L up to 1M.
Writes JSON + PNG.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout: recbole_pq, benchmarks
from benchmarks.harness import ROOT, machine, median_seconds  # noqa: E402

TOKENS = 16384


def one_sequence_config(method: str, length: int, dim: int, books: int, words: int) -> dict:
    import torch
    import torch.nn.functional as F

    from recbole_pq.layers.lisa import CodewordHistogramAttention, codeword_histogram

    torch.manual_seed(0)
    batch = max(1, TOKENS // length)
    with torch.no_grad():
        if method == "vanilla":
            q, k, v = (torch.randn(batch, 1, length, dim) for _ in range(3))
            seconds = median_seconds(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), 3)
        else:
            attention = CodewordHistogramAttention(books, dim).eval()
            codebooks = torch.randn(books, words, dim)
            assignments = F.one_hot(torch.randint(0, words, (batch, length, books)), words).float()
            seconds = median_seconds(lambda: attention(assignments, codeword_histogram(assignments), codebooks), 3)
    return {"benchmark": "sequence", "method": method, "length": length, "batch": batch, "dim": dim,
            "B": books, "W": words, "ms_per_batch": 1000 * seconds,
            "us_per_token": 1e6 * seconds / (batch * length),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def one_online_config(method: str, length: int, dim: int, books: int, words: int) -> dict:
    import torch
    import torch.nn.functional as F

    from recbole_pq.layers.lisa import CodewordHistogramAttention

    torch.manual_seed(0)
    with torch.no_grad():
        if method == "vanilla":
            cache_k, cache_v = torch.randn(1, 1, length, dim), torch.randn(1, 1, length, dim)
            query = torch.randn(1, 1, 1, dim)
            seconds = median_seconds(lambda: F.scaled_dot_product_attention(query, cache_k, cache_v), repeats=20)
        else:
            attention = CodewordHistogramAttention(books, dim).eval()
            codebooks = torch.randn(books, words, dim)
            histogram = torch.rand(1, 1, books, words) * length / words  # the state after `length` items
            new_item = F.one_hot(torch.randint(0, words, (1, 1, books)), words).float()

            def step():
                state = histogram + new_item  # constant-time update
                return attention(new_item, state, codebooks)

            seconds = median_seconds(step, repeats=50)
    return {"benchmark": "online", "method": method, "length": length, "dim": dim, "B": books, "W": words,
            "ms_per_step": 1000 * seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def plan(quick: bool):
    dims = [128] if quick else [128, 1024]
    books_words = [(8, 16)] if quick else [(8, 16), (8, 32)]
    lengths = [2**e for e in range(7, 15 if quick else 17)]  # 128 .. 16K (quick) or 64K
    jobs = []
    for dim in dims:
        for length in lengths:
            if length <= 16384:
                jobs.append(("sequence", "vanilla", length, dim, 8, 16))
            for books, words in books_words:
                jobs.append(("sequence", "lisa", length, dim, books, words))
        for length in [10**e for e in range(3, 5 if quick else 7)]:
            jobs.append(("online", "vanilla", length, dim, 8, 16))
            jobs.append(("online", "lisa", length, dim, 8, 16))
    return jobs


def plot(records, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r_key in sorted({(r["method"], r["dim"], r["B"] * r["W"]) for r in records if r["benchmark"] == "sequence"}):
        pts = sorted((r["length"], r["us_per_token"]) for r in records if r["benchmark"] == "sequence"
                     and (r["method"], r["dim"], r["B"] * r["W"]) == r_key and r.get("us_per_token"))
        label = f"{r_key[0]} D={r_key[1]}" + (f" BW={r_key[2]}" if r_key[0] == "lisa" else "")
        if pts:
            left.plot(*zip(*pts), "o-", label=label)
    left.set(xscale="log", yscale="log", xlabel="sequence length L", ylabel="µs per token (forward)",
             title=f"causal attention, {TOKENS} tokens per batch")
    for r_key in sorted({(r["method"], r["dim"]) for r in records if r["benchmark"] == "online"}):
        pts = sorted((r["length"], r["ms_per_step"]) for r in records if r["benchmark"] == "online"
                     and (r["method"], r["dim"]) == r_key and r.get("ms_per_step"))
        if pts:
            right.plot(*zip(*pts), "o-", label=f"{r_key[0]} D={r_key[1]}")
    right.set(xscale="log", yscale="log", xlabel="history length L", ylabel="ms per new item",
              title="online step: one new interaction")
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "benchmarks" / "attention.json")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        import torch

        torch.set_num_threads(args.threads)
        kind, method, length, dim, books, words = json.loads(args.one)
        fn = one_sequence_config if kind == "sequence" else one_online_config
        print(json.dumps(fn(method, length, dim, books, words)))
        return 0
    records = []
    for job in plan(args.quick):
        cmd = [sys.executable, __file__, "--one", json.dumps(job), "--threads", str(args.threads)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                                  env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
            lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
            record = json.loads(lines[-1]) if lines else {
                "note": f"failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:] or ''}"}
        except subprocess.TimeoutExpired:
            record = {"note": f"timeout: over {args.timeout:.0f} s"}
        kind, method, length, dim, books, words = job
        record = {"benchmark": kind, "method": method, "length": length, "dim": dim, "B": books, "W": words, **record}
        print(json.dumps(record), flush=True)
        records.append(record)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"command": "python benchmarks/attention.py " + " ".join(argv or sys.argv[1:]),
                                     "threads": args.threads, "machine": machine(), "tokens_per_batch": TOKENS,
                                     "records": records},
                                    indent=1))
    plot(records, args.json.with_suffix(".png"))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
