"""Shared fixtures: run the real Pulumi program under Pulumi's mocks for any stack file."""

from __future__ import annotations

import os

import pytest
from labgroup import check_lab_item, pytest_xdist_make_scheduler  # noqa: F401 (a hook)

from cnibench.mocks import OfflineRun, run_program
from cnibench.project import find_project_dir, stacks

ALL_STACKS = stacks(find_project_dir())


@pytest.fixture
def program():
    """``program(stack, overrides=None) -> OfflineRun``: a fresh offline run."""

    def _run(stack: str, overrides: dict | None = None) -> OfflineRun:
        return run_program(stack, overrides)

    return _run


def pytest_runtest_setup(item):
    """Under two workers (``-n 2 --dist loadgroup``, the README's command) the tests that build
    real lab topologies run on one worker, one after another (tests/labgroup.py)."""
    check_lab_item(item)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The random order's seed at the end of every run, also with -q (which hides the header
    where pytest-randomly prints it), so that a failing order can be repeated."""
    seed = getattr(config.option, "randomly_seed", None)
    if isinstance(seed, int):
        terminalreporter.write_line(f"test order: pytest-randomly seed {seed}; repeat it with --randomly-seed={seed}")


_CACHE: dict[str, OfflineRun] = {}


@pytest.fixture(scope="session")
def lab_quick_run(tmp_path_factory):
    """The session's one full quick run of `cnibench lab` (tests/labutil.py quick_run), shared by
    tests/test_lab.py and tests/test_lab_report.py; those run on one worker (tests/labgroup.py),
    which makes it once."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (network namespaces); CI runs the suite as root")
    import labutil

    return labutil.quick_run(tmp_path_factory.mktemp("lab"))


@pytest.fixture
def stack_run():
    """``stack_run(stack) -> OfflineRun`` for the stack file as shipped, cached per session
    (the run is deterministic; tests must not mutate it)."""

    def _run(stack: str) -> OfflineRun:
        if os.environ.get("CNIBENCH_TEST_NO_RUN_CACHE"):
            # scripts/mutation-score.py's coverage run: a cached run's lines would be credited to
            # the first test that asked for the stack only
            return run_program(stack)
        if stack not in _CACHE:
            _CACHE[stack] = run_program(stack)
        return _CACHE[stack]

    return _run


def public_ip(run: OfflineRun, role: str) -> str:
    """The public address of a role's machine as SSH and the Kubernetes API use it: the Elastic IP
    of the control plane's machine, the instance's own public IP otherwise."""
    (inst,) = [i for i in run.of_type("aws:ec2/instance:Instance") if i.inputs["tags"]["cnibench:role"] == role]
    eips = [e for e in run.of_type("aws:ec2/eip:Eip") if e.inputs["instance"] == inst.state["id"]]
    return eips[0].state["publicIp"] if eips else inst.state["publicIp"]
