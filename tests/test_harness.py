"""The benchmarks' shared harness: machine facts and the median timer."""

import sys

import recbole_pq.data.paths

sys.path.insert(0, str(recbole_pq.data.paths.PROJECT_ROOT))
from benchmarks import harness  # noqa: E402


def test_median_seconds_times_only_the_timed_calls(monkeypatch):
    clock = iter([0.0, 1.0, 1.0, 4.0, 4.0, 6.0])  # the timed calls take 1, 3 and 2 seconds
    monkeypatch.setattr(harness.time, "perf_counter", lambda: next(clock))
    calls = []
    assert harness.median_seconds(lambda: calls.append(1), repeats=3, warmup=2) == 2.0
    assert len(calls) == 5  # 2 untimed warm-ups, 3 timed


def test_machine_names_the_cpu_and_its_flags():
    facts = harness.machine()
    assert facts["cpu"] and facts["cores"] >= 1 and facts["load_average"] >= 0
    assert set(facts["flags"]) == set(harness.CPU_FLAGS) and all(isinstance(v, bool) for v in facts["flags"].values())
    flags = open("/proc/cpuinfo").read().split("flags", 1)[1].split("\n", 1)[0].split()
    assert facts["flags"]["avx2"] == ("avx2" in flags)
