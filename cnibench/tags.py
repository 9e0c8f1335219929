"""One spelling for the names the whole project shares: AWS tag keys, node roles, Kubernetes labels.

The policy rules, the leftover sweep, the program and the benchmark suite all read these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Mapping

# AWS tags on every resource of a stack (and, on instances, the node's role).
STACK_TAG = "cnibench:stack"
VARIANT_TAG = "cnibench:variant"
EXPIRES_TAG = "cnibench:expires-at"
ROLE_TAG = "cnibench:role"
REQUIRED_TAGS = (STACK_TAG, VARIANT_TAG, EXPIRES_TAG)

# Node roles: the control plane and the two benchmark nodes of the matched pair.
CONTROL_PLANE = "control-plane"
CLIENT = "client"
SERVER = "server"
BENCHMARK_ROLES = (CLIENT, SERVER)

# Kubernetes node label that pins the benchmark pods (label-node.sh sets it, bench.sh selects on it).
ROLE_LABEL = "cnibench.io/role"


def expires_at(hours: int, now: datetime | None = None) -> str:
    """``now + hours`` as ``2026-01-31T17:00:00Z`` (whole minutes, so a re-run within the same
    minute yields the same tag)."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(second=0, microsecond=0)
    return (now + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def stack_tags(extra: Mapping[str, str], stack: str, variant: str, expiry_hours: int,
               now: datetime | None = None) -> dict[str, str]:
    """The tags of every resource: the user's ``extraTags`` first, ours win on a clash."""
    return {**extra, STACK_TAG: stack, VARIANT_TAG: variant, EXPIRES_TAG: expires_at(expiry_hours, now)}


@dataclass(frozen=True)
class Tagging:
    """Tags of one stack; ``for_(name)`` adds the AWS console ``Name`` (``<prefix>-<name>``)."""

    base: Mapping[str, str]
    prefix: str = ""

    def for_(self, name: str, **extra: str) -> dict[str, str]:
        shown = f"{self.prefix}-{name}" if self.prefix else name
        return {**self.base, "Name": shown, **extra}

    @classmethod
    def of_stack(cls, extra: Mapping[str, str], stack: str, variant: str, expiry_hours: int,
                 now: datetime | None = None) -> Tagging:
        return cls(stack_tags(extra, stack, variant, expiry_hours, now), prefix=f"cnibench-{stack}")
