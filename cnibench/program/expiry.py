"""The stack's expiry time, fixed when the stack is created.

The ``cnibench:expires-at`` tag used to be "now + expiryHours" at every ``pulumi up``, so each
update planned a tag change on every AWS resource and hid real drift. Here the creation time
comes from a ``command.local.Command`` that prints the clock when the stack is created. Its
inputs never change (constant command text, no triggers), and pulumi-command runs nothing for a
resource whose inputs are unchanged (pulumi-command v1.2.1, ``local.Command.update``: "Note that
this command will not run if the resource's inputs are unchanged"), so the stdout kept in the
stack's state, and the tag, stay the same across updates, a new ``benchmarkRun`` included. Should
an update run anyway, its ``update`` command prints the previous stdout again
(``PULUMI_COMMAND_STDOUT``, same docstring). Changing ``expiryHours`` changes the tag, as the user
asked.

``date -u +%s`` is understood by GNU, BSD (macOS) and busybox ``date``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pulumi
import pulumi_command as command

CREATED_AT_COMMAND = "date -u +%s"
KEEP_CREATED_AT = 'printf "%s" "$PULUMI_COMMAND_STDOUT"'


def format_expiry(created_epoch: str, hours: int) -> str:
    """``"1767225600"`` + 8 hours -> ``"2026-01-01T08:00:00Z"``."""
    try:
        created = datetime.fromtimestamp(int(created_epoch.strip()), tz=timezone.utc)
    except ValueError:
        raise ValueError(f"the stack's creation time {created_epoch!r} is not a Unix time "
                         f"(output of {CREATED_AT_COMMAND!r})") from None
    return (created + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def expires_at(hours: int) -> pulumi.Output[str]:
    """The ``cnibench:expires-at`` value: the stack's creation time + ``hours``."""
    created = command.local.Command("created-at", create=CREATED_AT_COMMAND, update=KEEP_CREATED_AT)
    return created.stdout.apply(lambda out: format_expiry(out, hours))
