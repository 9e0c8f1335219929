"""Resource names and type tokens are part of users' state: every stack's URNs stay as recorded.

``tests/data/urns.json`` was recorded under the mocks before the code moved from ``components/``
into ``cnibench/program`` (issue 11) and matched after it. A change here replaces or orphans
resources in every existing stack: it needs a migration note (Pulumi ``aliases``) and a new
recording, never a silent update of the file.

Re-recorded in issue 12: two additions per stack (``bench-host-nodes-tcp-11111`` and
``-udp-11111``, the hostNetwork sockperf servers' security-group rules); nothing renamed or removed.

Re-recorded in issue 13, additions only: ``created-at`` (the local command that fixes the expiry
tag at creation), ``nodes-api`` (the control plane's Elastic IP) in every stack, and
``net-in-pods-all`` (the pod-CIDR rule) for kube-router-overlay. Later in issue 13, additions only:
``nodes-<role>-host-key`` (the local command that reads each machine's SSH host key from its
console output) in every stack.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ALL_STACKS

RECORDED = json.loads((Path(__file__).parent / "data" / "urns.json").read_text())


def test_every_stack_is_recorded():
    assert sorted(RECORDED) == sorted(ALL_STACKS)


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_urns_are_unchanged(stack_run, stack):
    assert sorted(r.urn for r in stack_run(stack)) == RECORDED[stack]
