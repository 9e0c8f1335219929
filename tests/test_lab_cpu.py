"""The lab's CPU clocks, for real: the machine's busy time and a process's own runtime follow the
CPU this test process actually burns (the lab's cpu-tcp figure and its background-load guard
are built on them)."""

from __future__ import annotations

import os
import time

import pytest

from cnibench.lab import measure


def _burn(seconds: float) -> float:
    """Spin until this process has used ``seconds`` of CPU; returns the CPU time it used."""
    start = time.process_time()
    while time.process_time() - start < seconds:
        sum(range(1000))
    return time.process_time() - start


def test_the_machine_clock_counts_at_least_what_this_process_burned():
    before = measure.CpuSnapshot.take()
    used = _burn(0.3)
    after = measure.CpuSnapshot.take()
    if not measure.CPUACCT_USAGE.exists():
        pytest.skip(f"no {measure.CPUACCT_USAGE} here: the lab falls back to /proc/stat ticks "
                    f"(source {before.source!r}), which this test cannot bound")
    assert before.source.startswith("cpuacct.usage")
    busy = measure.busy_seconds(before, after)
    # every other task only adds to the machine's busy time
    assert busy >= 0.95 * used, (busy, used)


def test_a_process_clock_follows_its_runtime():
    pid = os.getpid()
    t0 = measure.process_cpu_seconds(pid)
    used = _burn(0.2)
    t1 = measure.process_cpu_seconds(pid)
    assert t0 is not None and t1 is not None
    # the process's own clock: neither less than what it used nor much more (other threads of
    # pytest are idle)
    assert 0.9 * used <= t1 - t0 <= used + 0.1, (t1 - t0, used)


def test_a_gone_process_has_no_clock():
    assert measure.process_cpu_seconds(2**22 + 12345) is None


def test_the_guard_sample_is_a_share_of_all_cores():
    s = measure.sample_load(0.2)
    assert 0.0 <= s["busy_fraction"] <= 1.0
    assert s["cpus"] == (os.cpu_count() or 1) and s["seconds"] >= 0.2
    assert s["source"]
