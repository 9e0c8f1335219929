"""Leftover matrix stacks past their expiry: find them, destroy and remove them."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Callable, Sequence

from cnibench.matrix.backend import StackBackend, short_error
from cnibench.matrix.names import parse_stack_name
from cnibench.matrix.runner import DEFAULT_EXPIRY_HOURS, MatrixOptions, MatrixRunner, VariantRun


@dataclass
class Leftover:
    name: str
    variant: str
    created: _dt.datetime
    expires: _dt.datetime
    resource_count: int | None
    update_in_progress: bool | None


def find_leftovers(backend: StackBackend, now: _dt.datetime | None = None, include_unexpired: bool = False) -> list[Leftover]:
    """Matrix stacks (by name) past their expiry: last update (or creation) + their
    ``cnibench:expiryHours`` (the default when the stack's config cannot be read)."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    found = []
    for info in backend.list_stacks():
        parsed = parse_stack_name(info.name)
        if parsed is None:
            continue
        hours = DEFAULT_EXPIRY_HOURS
        try:
            value = backend.select(info.name).config_value("expiryHours")
            if value:
                hours = int(value)
        except Exception:  # noqa: BLE001 - unreadable config: use the default
            pass
        base = max(parsed.created, info.last_update or parsed.created)
        expires = base + _dt.timedelta(hours=hours)
        if include_unexpired or expires <= now:
            found.append(Leftover(info.name, parsed.variant, parsed.created, expires,
                                  info.resource_count, info.update_in_progress))
    return found


def cleanup(backend: StackBackend, leftovers: Sequence[Leftover], log: Callable[[str], None] = print,
            destroy_timeout: float = 45 * 60.0, kill_grace: float = 300.0) -> list[VariantRun]:
    """Destroy (refresh-then-destroy on failure) and remove each leftover stack."""
    out = []
    runner = MatrixRunner(backend, MatrixOptions(variants=(), destroy_timeout=destroy_timeout, kill_grace=kill_grace))
    for left in leftovers:
        run = VariantRun(left.variant, left.name)
        if left.update_in_progress:
            run.status, run.error = "skipped", "an update is in progress (another run?); not touched"
            log(f"{left.name}: {run.error}")
            out.append(run)
            continue
        try:
            handle = backend.select(left.name)
        except Exception as exc:  # noqa: BLE001
            run.status, run.error = "failed", f"cannot select: {short_error(exc)}"
            log(f"{left.name}: {run.error}")
            out.append(run)
            continue
        log(f"{left.name}: destroying ({left.resource_count if left.resource_count is not None else '?'} resources)")
        def log_step(line: str, n: str = left.name) -> None:
            if line.startswith("#"):
                log(f"{n}: {line}")

        runner._teardown(run, handle, log_step)
        run.status = "ok" if run.removed else ("destroyed" if run.destroyed else "left behind")
        log(f"{left.name}: {run.status}")
        out.append(run)
    return out
