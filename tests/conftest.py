"""Shared fixtures: run the real Pulumi program under Pulumi's mocks for any stack file."""

from __future__ import annotations

import pytest

from cnibench.mocks import OfflineRun, run_program
from cnibench.project import find_project_dir, stacks

ALL_STACKS = stacks(find_project_dir())


@pytest.fixture
def program():
    """``program(stack, overrides=None) -> OfflineRun``: a fresh offline run."""

    def _run(stack: str, overrides: dict | None = None) -> OfflineRun:
        return run_program(stack, overrides)

    return _run


_CACHE: dict[str, OfflineRun] = {}


@pytest.fixture
def stack_run():
    """``stack_run(stack) -> OfflineRun`` for the stack file as shipped, cached per session
    (the run is deterministic; tests must not mutate it)."""

    def _run(stack: str) -> OfflineRun:
        if stack not in _CACHE:
            _CACHE[stack] = run_program(stack)
        return _CACHE[stack]

    return _run
