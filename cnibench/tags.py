"""One spelling for the names the whole project shares: AWS tag keys, node roles, Kubernetes labels.

The policy rules, the leftover sweep, the program and the benchmark suite all read these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

# AWS tags on every resource of a stack (and, on instances, the node's role).
STACK_TAG = "cnibench:stack"
VARIANT_TAG = "cnibench:variant"
EXPIRES_TAG = "cnibench:expires-at"
ROLE_TAG = "cnibench:role"
REQUIRED_TAGS = (STACK_TAG, VARIANT_TAG, EXPIRES_TAG)
# The AWS console's name of a resource (Tagging.for_) and the mark of the benchmark node that also
# runs the control plane (cnibench/program/nodes.py, controlPlaneOnBenchmarkNode).
NAME_TAG = "Name"
COMBINED_TAG = "cnibench:control-plane"
# Every tag key cnibench itself sets (an extraTags entry with one of them is overridden), and the
# most any one resource carries: the combined node's instance and root volume have the required
# tags + Name + role + the combined mark. AWS allows 50 tags per resource (EC2 User Guide, tag
# restrictions), so extraTags may add at most 50 - this many (cnibench/config.py).
PROJECT_TAG_KEYS = (*REQUIRED_TAGS, ROLE_TAG, COMBINED_TAG, NAME_TAG)
MAX_PROJECT_TAGS_PER_RESOURCE = len(REQUIRED_TAGS) + 3

# Node roles: the control plane and the two benchmark nodes of the matched pair.
CONTROL_PLANE = "control-plane"
CLIENT = "client"
SERVER = "server"
BENCHMARK_ROLES = (CLIENT, SERVER)

# Kubernetes node label that pins the benchmark pods (label-node.sh sets it, bench.sh selects on it).
ROLE_LABEL = "cnibench.io/role"


def stack_tags(extra: Mapping[str, str], stack: str, variant: str, expires_at: Any) -> dict[str, Any]:
    """The tags of every resource: the user's ``extraTags`` first, ours win on a clash.
    ``expires_at`` is the stack's expiry (a Pulumi output in the program: it is fixed when the
    stack is created, see cnibench/program/expiry.py)."""
    return {**extra, STACK_TAG: stack, VARIANT_TAG: variant, EXPIRES_TAG: expires_at}


@dataclass(frozen=True)
class Tagging:
    """Tags of one stack; ``for_(name)`` adds the AWS console ``Name`` (``<prefix>-<name>``)."""

    base: Mapping[str, Any]
    prefix: str = ""

    def for_(self, name: str, **extra: str) -> dict[str, Any]:
        shown = f"{self.prefix}-{name}" if self.prefix else name
        return {**self.base, NAME_TAG: shown, **extra}

    @classmethod
    def of_stack(cls, extra: Mapping[str, str], stack: str, variant: str, expires_at: Any) -> Tagging:
        return cls(stack_tags(extra, stack, variant, expires_at), prefix=f"cnibench-{stack}")
