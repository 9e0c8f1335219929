"""Leftover matrix stacks: find them (expiry, or an owner record whose owner is dead), destroy
and remove them; stale locks are cancelled first.

Which stacks (``find_leftovers``):

* owner record, owner alive (same PID and start time): never touched, also not with ``--all``;
* owner record, owner dead (killed, OOM, CI cancel, or a run that ended leaving a stack): a
  leftover at once;
* no record here (another machine, or a record removed): a leftover past its expiry (last
  update or creation + ``cnibench:expiryHours``), or with ``--all``.

Locks (an update in progress, :class:`StackLocked`): stale, so ``pulumi cancel`` then destroy,
when the owner is dead and none of its recorded CLI children still runs, or when the stack is
past its expiry (the expiry outlasts any run's timeout and destroy). A recorded ``pulumi up`` of
a dead owner that still runs is stopped first (SIGINT, SIGTERM, SIGKILL); a recorded destroy or
refresh that still runs is left to finish. A stack of unknown owner that is not expired keeps
its lock (it may be a run on another machine): it is reported, and becomes stale at its expiry.
"""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from cnibench.matrix import procs
from cnibench.matrix.backend import StackBackend, short_error
from cnibench.matrix.names import parse_stack_name
from cnibench.matrix.owner import OwnerRecord, load_records, owners_by_stack
from cnibench.matrix.runner import DEFAULT_EXPIRY_HOURS, MatrixOptions, MatrixRunner, VariantRun


@dataclass
class Leftover:
    name: str
    variant: str
    created: _dt.datetime
    expires: _dt.datetime
    resource_count: int | None
    update_in_progress: bool | None
    reason: str = "expired"  # expired | owner dead | --all
    owner: OwnerRecord | None = None
    owner_alive: bool | None = None  # None: no record, or a record of another host
    expired: bool = True

    @property
    def owner_text(self) -> str:
        if self.owner is None:
            return "no record"
        state = {True: "alive", False: "dead", None: "unknown (other host)"}[self.owner_alive]
        return f"{state}: pid {self.owner.pid}@{self.owner.host}"


@dataclass
class Untouched:
    """A matrix stack that ``--cleanup`` leaves alone, and why."""

    name: str
    why: str


def find_leftovers(backend: StackBackend, now: _dt.datetime | None = None, include_unexpired: bool = False,
                   records: Iterable[OwnerRecord] | None = None,
                   untouched: list[Untouched] | None = None) -> list[Leftover]:
    """Matrix stacks (by name) to destroy: see the module. ``records``: the owner records
    (default: none, i.e. expiry alone). Stacks of a live owner are appended to ``untouched``."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    owners = owners_by_stack(records or ())
    alive_cache: dict[str, bool | None] = {}
    found = []
    for info in backend.list_stacks():
        parsed = parse_stack_name(info.name)
        if parsed is None:
            continue
        short = info.name.rsplit("/", 1)[-1]
        owner = owners.get(info.name) or owners.get(short)
        alive = None
        if owner is not None:
            if owner.run_id not in alive_cache:
                alive_cache[owner.run_id] = owner.alive()
            alive = alive_cache[owner.run_id]
            if alive:
                if untouched is not None:
                    untouched.append(Untouched(info.name, f"its run is alive ({owner.describe()}): stop that run "
                                                          "(it destroys its own stacks) or wait for it"))
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
        expired = expires <= now
        if owner is not None and alive is False:
            reason = "owner dead"
        elif expired:
            reason = "expired"
        elif include_unexpired:
            reason = "--all"
        else:
            continue
        found.append(Leftover(info.name, parsed.variant, parsed.created, expires, info.resource_count,
                              info.update_in_progress, reason, owner, alive, expired))
    return found


def stop_process(pid: int, start: procs.StartTime, host: str | None, graces: Sequence[float] = (30.0, 10.0, 5.0),
                 log: Callable[[str], None] = print, poll: float = 0.2) -> bool:
    """Stop a process that is not our child (a CLI child of a dead run): SIGINT, SIGTERM,
    SIGKILL to its group, each followed by its grace. True when it is gone."""
    for sig, grace in zip(procs.ESCALATION, graces):
        if not procs.is_alive(pid, start, host):
            return True
        log(f"  pid {pid}: {sig.name}")
        procs.signal_group(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not procs.is_alive(pid, start, host):
                return True
            time.sleep(poll)
    return not procs.is_alive(pid, start, host)


def lock_decision(left: Leftover) -> tuple[bool, str]:
    """May the lock on ``left`` be cancelled, and why (see the module)."""
    if left.owner is not None and left.owner_alive is False:
        return True, f"its run is dead ({left.owner.describe()})"
    if left.expired:
        return True, f"the stack expired at {left.expires:%Y-%m-%d %H:%M}Z, so no run of it can still be updating"
    return False, (f"an update may be running elsewhere (no owner record here); it is stale from its expiry "
                   f"{left.expires:%Y-%m-%d %H:%M}Z, or stop that run")


def cleanup(backend: StackBackend, leftovers: Sequence[Leftover], log: Callable[[str], None] = print,
            destroy_timeout: float = 45 * 60.0, kill_grace: float = 300.0,
            stop_graces: Sequence[float] = (30.0, 10.0, 5.0)) -> list[VariantRun]:
    """Destroy (cancel a stale lock, refresh-then-destroy on failure) and remove each leftover."""
    out = []
    runner = MatrixRunner(backend, MatrixOptions(variants=(), destroy_timeout=destroy_timeout, kill_grace=kill_grace),
                          runs=[])
    for left in leftovers:
        run = VariantRun(left.variant, left.name, created=True)
        out.append(run)
        if left.owner is not None and left.owner_alive is False:
            children = left.owner.live_children(left.name)
            busy = [(pid, op) for pid, op in children if op in ("destroy", "refresh", "cancel")]
            if busy:
                run.status = "skipped"
                run.error = ("a " + busy[0][1] + f" of its dead run still runs (pid {busy[0][0]}); "
                             "run --cleanup again when it has ended")
                log(f"{left.name}: {run.error}")
                continue
            for pid, op in children:
                info = left.owner.children.get(str(pid), {})
                log(f"{left.name}: stopping the `pulumi {op}` of its dead run (pid {pid})")
                if not stop_process(pid, procs.StartTime.from_json(info.get("start")), left.owner.host,
                                    stop_graces, log):
                    run.status, run.error = "skipped", f"pid {pid} (pulumi {op}) did not stop"
                    log(f"{left.name}: {run.error}")
                    break
            if run.status == "skipped":
                continue
        try:
            handle = backend.select(left.name)
        except Exception as exc:  # noqa: BLE001
            run.status, run.error = "failed", f"cannot select: {short_error(exc)}"
            log(f"{left.name}: {run.error}")
            continue
        log(f"{left.name}: destroying ({left.resource_count if left.resource_count is not None else '?'} resources; "
            f"{left.reason})")

        def log_step(line: str, n: str = left.name) -> None:
            if line.startswith("#"):
                log(f"{n}: {line}")

        decision = lock_decision(left)

        def may_cancel(r: VariantRun, d: tuple[bool, str] = decision) -> tuple[bool, str]:
            return d

        runner._teardown(run, handle, log_step, may_cancel=may_cancel)
        run.status = "ok" if run.removed else ("destroyed" if run.destroyed else "left behind")
        log(f"{left.name}: {run.status}")
    return out


def prune_records(records: Iterable[OwnerRecord], existing: Iterable[str], backend_url: str | None) -> list[Path]:
    """Delete the records of dead owners whose stacks no longer exist on this backend (a
    record names the backend it was made for; one of another backend is kept). Returns the
    paths deleted."""
    names = set(existing) | {n.rsplit("/", 1)[-1] for n in existing}
    deleted = []
    for rec in records:
        if rec.alive() is not False:
            continue
        if rec.backend and backend_url and rec.backend != backend_url:
            continue
        if any(name in names for name in rec.stacks):
            continue
        try:
            rec.path.unlink()
            deleted.append(rec.path)
        except OSError:
            pass
    return deleted


def default_records(state_dir: Path | None = None) -> list[OwnerRecord]:
    return load_records(state_dir)
