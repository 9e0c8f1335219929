"""The owner record of a matrix run: which stacks it plans, who runs it, what its CLI children are.

Written (mode 600, atomically: temporary file + rename) before the first stack is created, and
rewritten at every status change and every Pulumi CLI child that starts or ends. A run that
ends with every stack removed deletes its record; one that leaves a stack behind keeps it,
marked ``finished``. ``cnibench matrix --cleanup`` reads the records: a stack whose owner is
dead (the PID is gone, or it is now another process: the start time differs, or the machine
rebooted) is a leftover at once, not at its expiry; a stack whose owner is alive is never
touched, also not with ``--all``.

Where: ``$CNIBENCH_STATE_DIR`` or ``--state-dir``, else ``$XDG_STATE_HOME/cnibench/matrix``,
else ``~/.local/state/cnibench/matrix``; one ``<run id>.json`` per run. The record is per
machine: a stack made on another machine has no record here (unless the directory is shared)
and is judged by its expiry, as before.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from cnibench.files import write_atomically
from cnibench.matrix import procs

STATE_ENV = "CNIBENCH_STATE_DIR"
RECORD_VERSION = 1


def default_state_dir() -> Path:
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cnibench" / "matrix"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (mode 600 from the first byte:
    a temporary file made with 0600 in the same directory, then renamed over ``path``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text, 0o600)


@dataclass
class OwnerRecord:
    run_id: str
    path: Path
    pid: int
    start: procs.StartTime
    host: str
    created: str
    backend: str | None = None
    stacks: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {variant, status}
    children: dict[str, dict[str, Any]] = field(default_factory=dict)  # pid -> {stack, op, start}
    finished: bool = False
    errors: list[str] = field(default_factory=list)  # writes that failed (kept in memory)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._stop_listening: Any = None

    # ---- making and saving
    @classmethod
    def begin(cls, stacks: Mapping[str, str], state_dir: Path | None = None, backend: str | None = None,
              now: _dt.datetime | None = None) -> OwnerRecord:
        """The record of this process for ``stacks`` (name -> variant), written to disk. Raises
        OSError when it cannot be written: the run must not start without it."""
        now = now or _dt.datetime.now(_dt.timezone.utc)
        run_id = f"{now:%Y%m%dT%H%M%SZ}-{os.getpid()}-{secrets.token_hex(3)}"
        directory = state_dir if state_dir is not None else default_state_dir()
        rec = cls(run_id=run_id, path=directory / f"{run_id}.json", pid=os.getpid(),
                  start=procs.start_time(os.getpid()), host=procs.hostname(),
                  created=now.isoformat(timespec="seconds"), backend=backend,
                  stacks={name: {"variant": variant, "status": "planned"} for name, variant in stacks.items()})
        rec._write()
        return rec

    def to_json(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION, "run_id": self.run_id, "pid": self.pid, "start": self.start.to_json(),
            "host": self.host, "created": self.created, "backend": self.backend, "finished": self.finished,
            "stacks": self.stacks, "children": self.children,
        }

    def _write(self) -> None:
        write_private(self.path, json.dumps(self.to_json(), indent=2) + "\n")

    def save(self) -> bool:
        """Rewrite the record; never raises (a full disk must not stop a teardown). False, and
        the error kept in ``errors``, when the write failed."""
        with self._lock:
            try:
                self._write()
                return True
            except Exception as exc:  # noqa: BLE001 - OSError mostly; nothing here may stop a teardown
                self.errors.append(f"owner record {self.path}: {exc}")
                return False

    # ---- updates from the runner
    def set_status(self, stack: str, status: str) -> None:
        with self._lock:
            entry = self.stacks.setdefault(stack, {"variant": None, "status": status})
            if entry.get("status") == status:
                return
            entry["status"] = status
            self.save()

    def on_child(self, event: str, child: procs.Child) -> None:
        if child.stack is None or child.stack not in self.stacks:
            return
        key = str(child.process.pid)
        with self._lock:
            if event == "started":
                self.children[key] = {"stack": child.stack, "op": child.op, "start": child.start.to_json()}
            else:
                self.children.pop(key, None)
            self.save()

    def follow_children(self, registry: procs.ChildRegistry | None = None) -> None:
        self._stop_listening = (registry or procs.CHILDREN).listen(self.on_child)

    def finish(self, left_behind: Iterable[str]) -> None:
        """End of the run: delete the record when nothing is left, else keep it as ``finished``
        (its stacks are then leftovers of a dead owner for ``--cleanup``)."""
        if self._stop_listening:
            self._stop_listening()
        left = list(left_behind)
        if not left:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.errors.append(f"owner record {self.path}: {exc}")
            return
        with self._lock:
            self.finished = True
            self.save()

    # ---- reading
    @classmethod
    def load(cls, path: Path) -> OwnerRecord | None:
        try:
            data = json.loads(path.read_text())
            rec = cls(run_id=str(data["run_id"]), path=path, pid=int(data["pid"]),
                      start=procs.StartTime.from_json(data.get("start")), host=str(data.get("host") or ""),
                      created=str(data.get("created") or ""), backend=data.get("backend"),
                      stacks=dict(data.get("stacks") or {}), children=dict(data.get("children") or {}),
                      finished=bool(data.get("finished")))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return rec

    def alive(self) -> bool | None:
        """Is the owner still running? True / False, or None when this machine cannot tell
        (the record was written on another host). A run that ended (``finished``) is dead."""
        if self.finished:
            return False
        return procs.is_alive(self.pid, self.start, self.host)

    def live_children(self, stack: str) -> list[tuple[int, str]]:
        """(pid, op) of the recorded CLI children of ``stack`` that still run (same start time)."""
        out = []
        for pid, info in self.children.items():
            if info.get("stack") != stack:
                continue
            if procs.is_alive(int(pid), procs.StartTime.from_json(info.get("start")), self.host):
                out.append((int(pid), str(info.get("op") or "?")))
        return out

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} (run {self.run_id}, started {self.created})"


def load_records(state_dir: Path | None = None) -> list[OwnerRecord]:
    directory = state_dir if state_dir is not None else default_state_dir()
    if not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.glob("*.json")):
        rec = OwnerRecord.load(path)
        if rec is not None:
            out.append(rec)
    return out


def owners_by_stack(records: Iterable[OwnerRecord]) -> dict[str, OwnerRecord]:
    out: dict[str, OwnerRecord] = {}
    for rec in records:
        for name in rec.stacks:
            out[name] = rec
    return out
