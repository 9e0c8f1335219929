"""Names of the matrix's ephemeral stacks: ``cnibench-<variant>-<UTC stamp>-<hex>``, and their parsing."""

from __future__ import annotations

import datetime as _dt
import re
import secrets
from dataclasses import dataclass

STACK_PREFIX = "cnibench-"
_STAMP_FORMAT = "%Y%m%dt%H%Mz"
# cnibench-<variant>-<yyyymmddtHHMMz>-<4 hex>; the variant itself contains hyphens.
_NAME = re.compile(r"^cnibench-(?P<variant>[a-z0-9][a-z0-9-]*)-(?P<stamp>\d{8}t\d{4}z)-(?P<rand>[0-9a-f]{4})$")


def stack_name(variant: str, now: _dt.datetime | None = None, rand: str | None = None) -> str:
    """``cnibench-<variant>-<UTC minute>-<4 hex>``: unique, sortable, and it carries its creation
    time so ``--cleanup`` can date a stack on any backend without reading its config."""
    now = (now or _dt.datetime.now(_dt.timezone.utc)).astimezone(_dt.timezone.utc)
    return f"{STACK_PREFIX}{variant}-{now.strftime(_STAMP_FORMAT)}-{rand or secrets.token_hex(2)}"


@dataclass(frozen=True)
class ParsedName:
    variant: str
    created: _dt.datetime


def parse_stack_name(name: str) -> ParsedName | None:
    """The variant and creation time of a matrix stack name, or None for any other stack
    (the long-lived per-variant stacks such as ``cilium-native`` are never touched)."""
    m = _NAME.match(name.rsplit("/", 1)[-1])
    if not m:
        return None
    try:
        created = _dt.datetime.strptime(m["stamp"], _STAMP_FORMAT).replace(tzinfo=_dt.timezone.utc)
    except ValueError:  # the shape of a stamp but no date (month 13, 25:00): not a name stack_name makes
        return None
    return ParsedName(m["variant"], created)
