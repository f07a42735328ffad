"""What every benchmark shares: the machine's facts and a median timer.

Each script is run by path (``python benchmarks/NAME.py``) from a checkout, so it puts the
checkout on ``sys.path`` itself (one line) and then imports this module as
``benchmarks.harness``; tests import the scripts the same way.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")  # what decides our kernels' speed


def cpu() -> dict:
    """The CPU's model name, core count and the flags in CPU_FLAGS (a speed-up is only ever
    claimed between runs on the same kind of CPU)."""
    model, flags = platform.processor() or platform.machine(), []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "flags": {f: f in flags for f in CPU_FLAGS}}


def commit(tree: Path = ROOT) -> str:
    """The short commit a checkout's code is at (its path when it is not a git checkout)."""
    import subprocess

    return subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip() or str(tree)


def machine() -> dict:
    """``cpu()`` plus torch's version and threads and the load average when measured (other
    jobs on the machine skew times: the JSON says how busy it was)."""
    facts = cpu()
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        facts.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    facts["load_average"] = round(os.getloadavg()[0], 2)
    return facts


def median_seconds(call, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``call()`` over ``repeats`` runs, after ``warmup`` untimed ones
    (compilation, page faults, caches)."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
