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


def public_ip(run: OfflineRun, role: str) -> str:
    """The public address of a role's machine as SSH and the Kubernetes API use it: the Elastic IP
    of the control plane's machine, the instance's own public IP otherwise."""
    (inst,) = [i for i in run.of_type("aws:ec2/instance:Instance") if i.inputs["tags"]["cnibench:role"] == role]
    eips = [e for e in run.of_type("aws:ec2/eip:Eip") if e.inputs["instance"] == inst.state["id"]]
    return eips[0].state["publicIp"] if eips else inst.state["publicIp"]
