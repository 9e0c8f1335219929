"""Tags every AWS resource of a stack carries, and the explicit AWS provider that applies them.

The policy pack and the leftover sweep read these keys: ``cnibench:stack``, ``cnibench:variant``,
``cnibench:expires-at`` (UTC, ISO 8601), and on instances ``cnibench:role``. The tags are set
on each resource (so they are visible in the resource's own inputs) and again as the
provider's default tags (so nothing the provider creates is missed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Mapping

import pulumi_aws as aws

from cnibench.config import StackConfig

STACK_TAG = "cnibench:stack"
VARIANT_TAG = "cnibench:variant"
EXPIRES_TAG = "cnibench:expires-at"
ROLE_TAG = "cnibench:role"
REQUIRED_TAGS = (STACK_TAG, VARIANT_TAG, EXPIRES_TAG)


def expires_at(hours: int, now: datetime | None = None) -> str:
    """``now + hours`` as ``2026-01-31T17:00:00Z`` (whole minutes, so a re-run within the same
    minute yields the same tag)."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(second=0, microsecond=0)
    return (now + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def stack_tags(cfg: StackConfig, stack: str, now: datetime | None = None) -> dict[str, str]:
    """The tags of every resource: the user's ``extraTags`` first, ours win on a clash."""
    return {
        **cfg.tags,
        STACK_TAG: stack,
        VARIANT_TAG: cfg.variant,
        EXPIRES_TAG: expires_at(cfg.expiry_hours, now),
    }


@dataclass(frozen=True)
class Tagging:
    """Tags of one stack; ``for_(name)`` adds the AWS console ``Name`` (``<prefix>-<name>``)."""

    base: Mapping[str, str]
    prefix: str = ""

    def for_(self, name: str, **extra: str) -> dict[str, str]:
        shown = f"{self.prefix}-{name}" if self.prefix else name
        return {**self.base, "Name": shown, **extra}

    @classmethod
    def of_stack(cls, cfg: StackConfig, stack: str, now: datetime | None = None) -> "Tagging":
        return cls(stack_tags(cfg, stack, now), prefix=f"cnibench-{stack}")


def aws_provider(cfg: StackConfig, tags: Tagging) -> aws.Provider:
    """The one AWS provider of the stack: the configured region, our tags as default tags."""
    return aws.Provider(
        "aws",
        region=cfg.region,
        default_tags=aws.ProviderDefaultTagsArgs(tags=dict(tags.base)),
    )
