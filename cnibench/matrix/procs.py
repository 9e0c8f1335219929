"""Processes of the matrix: who owns a run (PID + start time), and the Pulumi CLI children.

Start time. A PID alone does not name a process: it is reused. The owner of a run and each CLI
child are recorded with their start time: ``/proc/<pid>/stat`` field 22 (clock ticks since
boot) with the boot id (``/proc/sys/kernel/random/boot_id``) where there is ``/proc``, else
``ps -o lstart= -p <pid>`` (macOS, the BSDs: the start as a date to the second), else nothing
(``source: none``: the PID alone is checked and the record says so).

Children. Every Pulumi CLI process of the matrix is started in its own session and process
group (``start_new_session=True``), so a Ctrl-C in the terminal (delivered to the foreground
process group) or a signal to this process's group reaches only the runner, which decides what
each child gets: the ``up`` is cancelled with SIGINT, then SIGTERM, then SIGKILL; a ``destroy``
or ``refresh`` is never interrupted by a Ctrl-C. The registry keeps the ``Popen`` handle of each
child by stack name, so signals need no ``/proc`` (macOS) and reach the whole group (the CLI
and its plugins, as a terminal's Ctrl-C would).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

PROC = Path("/proc")


@dataclass(frozen=True)
class StartTime:
    """When a process started, as one source tells it: ``proc-stat`` (ticks since boot, with
    the boot id), ``ps-lstart`` (a date to the second), or ``none``."""

    source: str
    value: str | None = None
    boot_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> StartTime:
        if not isinstance(data, dict):
            return cls("none")
        return cls(str(data.get("source") or "none"), data.get("value"), data.get("boot_id"))


def boot_id(proc: Path = PROC) -> str | None:
    try:
        return (proc / "sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _proc_start(pid: int, proc: Path) -> str | None:
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is parenthesised and may hold spaces and ')'
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if len(fields) > 19 else None  # field 22 overall = index 19 after the name


def _ps_start(pid: int) -> str | None:
    try:
        out = subprocess.run(["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    text = " ".join(out.stdout.split())
    return text or None


def start_time(pid: int, proc: Path = PROC) -> StartTime:
    """The start time of ``pid`` from the best source this system has."""
    if proc.is_dir():
        value = _proc_start(pid, proc)
        if value is not None:
            return StartTime("proc-stat", value, boot_id(proc))
    value = _ps_start(pid)
    if value is not None:
        return StartTime("ps-lstart", value)
    return StartTime("none")


def _zombie(pid: int, proc: Path) -> bool:
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[:1] in (["Z"], ["X"])


def pid_exists(pid: int, proc: Path = PROC) -> bool:
    """Does ``pid`` run? A zombie (ended, not yet reaped) does not."""
    if pid <= 0:
        return False
    if _zombie(pid, proc):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


def is_alive(pid: int, recorded: StartTime, host: str | None = None, proc: Path = PROC) -> bool | None:
    """Is the process recorded as (``pid``, ``recorded``) on ``host`` still running?

    True/False when this machine can tell; None when it cannot (another host). A PID that
    exists with another start time is a reused PID: False. Without a recorded start time the
    PID alone decides (True when it exists: the conservative answer).
    """
    if host is not None and host != hostname():
        return None
    if recorded.source == "proc-stat" and recorded.boot_id and boot_id(proc) not in (None, recorded.boot_id):
        return False  # rebooted since: nothing of that boot runs
    if not pid_exists(pid, proc):
        return False
    if recorded.source == "none" or recorded.value is None:
        return True
    now = start_time(pid, proc)
    if now.source != recorded.source or now.value is None:
        return True  # cannot compare: treat as alive, never destroy a live run's stacks
    return now.value == recorded.value


def hostname() -> str:
    return socket.gethostname()


# --------------------------------------------------------------------------- CLI children


@dataclass
class Child:
    stack: str | None
    op: str
    process: subprocess.Popen
    start: StartTime


Listener = Callable[[str, Child], None]  # ("started" | "exited", child)


def command_of(args: Sequence[str]) -> tuple[str, str | None]:
    """(subcommand, stack) of a Pulumi CLI argument list: ``["--non-interactive", "up", "--yes",
    "--stack", "s"]`` -> ``("up", "s")``."""
    op = next((a for a in args if not a.startswith("-")), "?")
    stack = None
    for i, a in enumerate(args):
        if a == "--stack" and i + 1 < len(args):
            stack = args[i + 1]
        elif a.startswith("--stack="):
            stack = a.split("=", 1)[1]
    return op, stack


class ChildRegistry:
    """The CLI children of this process by stack, and the signals sent to them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._children: list[Child] = []
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def stop() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return stop

    def _tell(self, event: str, child: Child) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event, child)
            except Exception:  # noqa: BLE001 - a record that cannot be written must not stop a CLI call
                pass

    def spawn(self, cmd: Sequence[str], **popen: Any) -> subprocess.Popen:
        """``Popen(cmd, start_new_session=True, **popen)``, registered until :meth:`done`."""
        process = subprocess.Popen(list(cmd), start_new_session=True, **popen)
        op, stack = command_of(list(cmd)[1:])
        child = Child(stack, op, process, start_time(process.pid))
        with self._lock:
            self._children.append(child)
        self._tell("started", child)
        return process

    def done(self, process: subprocess.Popen) -> None:
        with self._lock:
            found = [c for c in self._children if c.process is process]
            self._children = [c for c in self._children if c.process is not process]
        for child in found:
            self._tell("exited", child)

    def running(self, stack: str | None = None) -> list[Child]:
        with self._lock:
            return [c for c in self._children if (stack is None or c.stack == stack) and c.process.poll() is None]

    def signal(self, stack: str, sig: int, ops: Sequence[str] | None = None) -> bool:
        """Send ``sig`` to the process group of each running child for ``stack`` (only the
        subcommands in ``ops`` when given). True when at least one was signalled."""
        sent = False
        for child in self.running(stack):
            if ops is not None and child.op not in ops:
                continue
            sent = signal_group(child.process.pid, sig) or sent
        return sent


def signal_group(pid: int, sig: int) -> bool:
    """``sig`` to the process group led by ``pid`` (a child started with its own session), or
    to the process alone when it has no group of its own. False when it is gone."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


CHILDREN = ChildRegistry()

ESCALATION = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
