"""Network namespace helpers, per-run naming, process tracking and leftover cleanup.

Every object a lab run creates is named after its run id:

* network namespaces ``cnb-<run>-<datapath>-<role>`` (``/run/netns``);
* the state directory ``/run/cnibench/<run>/`` (owner PID, CNI host-local IPAM data,
  nginx and iperf3 files);
* every spawned process carries the run id in its command line.

All devices, addresses, routes, FDB/neighbour entries and nft/iptables rules live inside
those namespaces, so deleting the namespaces (after killing the processes in them)
removes them. :func:`cleanup_run` does that for one run, :func:`cleanup_stale` for every
run whose owner process is gone: the owner record holds the PID and that process's start
time (``/proc/PID/stat`` field 22), so a PID the kernel has since given to another process
does not keep a dead run's leftovers alive.

pyroute2 forks a helper process to create a namespace and to open a socket inside one.
:func:`signals_blocked` holds the lab's stop signals over that fork (see there).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator

from pyroute2 import IPRoute
from pyroute2 import netns as _netns

NS_PREFIX = "cnb-"
NETNS_DIR = Path("/run/netns")
STATE_ROOT = Path("/run/cnibench")
RUN_ID_RE = re.compile(r"^[a-z0-9]{4,12}$")
_NS_RE = re.compile(r"^cnb-([a-z0-9]{4,12})-")
CLONE_NEWNET = 0x40000000
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # what stops a lab run

_libc = ctypes.CDLL(None, use_errno=True)


def new_run_id() -> str:
    return secrets.token_hex(3)


def ns_name(run_id: str, *parts: str) -> str:
    return "-".join((NS_PREFIX + run_id, *parts))


def run_namespaces(run_id: str) -> list[str]:
    prefix = ns_name(run_id) + "-"
    return sorted(n for n in _netns.listnetns() if n.startswith(prefix))


def all_lab_namespaces() -> list[str]:
    return sorted(n for n in _netns.listnetns() if _NS_RE.match(n))


# Set by the lab runner while a run is armed: raises for a stop signal whose exception was lost
# (see :func:`signals_blocked`); a no-op otherwise.
after_fork_check: Callable[[], None] = lambda: None


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP (``pthread_sigmask``) while the body, a pyroute2 call
    that forks, runs; a signal that arrives meanwhile stays pending until the block ends.

    ``os.fork()`` runs the at-fork hooks (logging's ``_acquireLock`` and ``_releaseLock``) as
    Python code, and an exception a signal handler raises inside a hook is printed as
    "Exception ignored" and dropped: the run went on and exited 0 (issue 15: 23 of 80 SIGTERMs
    sent during namespace creation). With the signals blocked no handler runs in the fork
    window; on leaving, ``signal.pthread_sigmask`` runs the pending handlers before it
    returns, so the exception is raised here, in the caller's frame. The mask is this
    thread's only: a process-directed signal can still go to another thread (numpy's and
    scipy's OpenBLAS pools exist until the first fork shuts them down) and the main thread
    then runs the handler anyway; the runner's handler only records a signal inside the
    at-fork hooks, and :data:`after_fork_check` raises it on leaving the block. The forked
    child inherits the mask: pyroute2's helper exits by itself (or by its SIGKILL)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        after_fork_check()


def ipr_in(ns: str) -> IPRoute:
    """``IPRoute(netns=ns)``: pyroute2 forks a helper that opens the socket inside ``ns``
    (signals held over the fork, see :func:`signals_blocked`)."""
    ipr = None
    try:
        with signals_blocked():
            ipr = IPRoute(netns=ns)
    except BaseException:
        if ipr is not None:  # the signal held over the fork is raised on leaving the block
            ipr.close()
        raise
    return ipr


def create_ns(name: str) -> None:
    if (NETNS_DIR / name).exists():
        raise RuntimeError(f"network namespace {name} already exists (run id collision?)")
    with signals_blocked():  # pyroute2 forks a helper that unshares and bind-mounts the namespace
        _netns.create(name)
    # loopback up: nginx/iperf3 bind to the namespace's own addresses only
    with ipr_in(name) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run the body (this thread) inside network namespace ``name``; sockets created in
    the body stay bound to it after the block."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(str(NETNS_DIR / name), os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


def sysctl(ns: str, key: str, value: str | int) -> None:
    """Write a per-namespace sysctl: /proc/sys/net resolves to the namespace of the
    thread that opens it."""
    with in_netns(ns):
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(str(value))


def sysctl_read(ns: str, key: str) -> str:
    with in_netns(ns):
        with open("/proc/sys/" + key.replace(".", "/")) as f:
            return f.read().strip()


def ns_exec(ns: str, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


# --------------------------------------------------------------------------- state


def state_dir(run_id: str) -> Path:
    return STATE_ROOT / run_id


def claim_run(run_id: str) -> Path:
    """Create the run's state directory, recording our PID and its start time; refuses a
    live duplicate id."""
    if not RUN_ID_RE.match(run_id):
        raise ValueError(f"run id {run_id!r} must be 4-12 lowercase letters/digits")
    d = state_dir(run_id)
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    try:
        d.mkdir()
    except FileExistsError:
        owner = read_owner(run_id)
        if owner and owner_alive(owner):
            raise RuntimeError(f"lab run {run_id} is already running (pid {owner['pid']})") from None
        cleanup_run(run_id)
        d.mkdir()
    tmp = d / f".owner.{os.getpid()}"
    tmp.write_text(json.dumps(owner_record()))
    tmp.rename(d / "owner.json")
    return d


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks after boot (``/proc/PID/stat`` field 22,
    ``starttime``); None if there is no such process. A PID can be reused, the pair
    (PID, start time) cannot while the machine runs."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # field 2 (comm) is in parentheses and may itself hold spaces and ')': split after the last one;
    # the rest starts at field 3 (state), so field 22 is its 20th entry
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def owner_record(pid: int | None = None) -> dict:
    """What ``owner.json`` holds: the owner's PID, its start time (field 22 of /proc/PID/stat)
    and the wall-clock time of the claim (for people)."""
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "starttime": process_start_time(pid), "started": time.time()}


def read_owner(run_id: str) -> dict | None:
    """The run's owner record, or None if it has none (or an unreadable one)."""
    try:
        rec = json.loads((state_dir(run_id) / "owner.json").read_text())
        rec["pid"] = int(rec["pid"])
        return rec
    except (OSError, ValueError, KeyError, TypeError):
        return None


def owner_alive(owner: dict) -> bool:
    """True while the process that claimed the run still runs: its PID is alive (not a zombie)
    and has the start time recorded with it. A record without a start time (written by an
    older cnibench) is judged by its PID alone."""
    pid = owner["pid"]
    if not _alive(pid):
        return False
    recorded = owner.get("starttime")
    return recorded is None or process_start_time(pid) == recorded


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# --------------------------------------------------------------------------- processes


def _ns_inode(name: str) -> int | None:
    try:
        return os.stat(NETNS_DIR / name).st_ino
    except OSError:
        return None


def run_processes(run_id: str) -> list[int]:
    """PIDs of processes that belong to a run: inside one of its namespaces, or carrying
    its state directory / run marker in their command line."""
    inodes = {i for i in (_ns_inode(n) for n in run_namespaces(run_id)) if i}
    marker = f"/run/cnibench/{run_id}".encode()
    marker2 = f"cnibench-run={run_id}".encode()
    marker3 = f"{NS_PREFIX}{run_id}-".encode()  # 'ip netns exec cnb-<run>-...' before it entered the namespace
    me = os.getpid()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        try:
            if inodes and os.stat(f"/proc/{pid}/ns/net").st_ino in inodes:
                pids.append(pid)
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            if marker in cmd or marker2 in cmd or marker3 in cmd:
                pids.append(pid)
        except OSError:
            continue
    return pids


def kill_pids(pids: list[int], grace: float = 1.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        live = []
        for pid in pids:
            try:
                os.kill(pid, sig)
                live.append(pid)
            except ProcessLookupError:
                pass
        if not live:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            live = [p for p in live if _alive(p)]
            if not live:
                return
            time.sleep(0.05)
        pids = live


def cleanup_run(run_id: str) -> list[str]:
    """Remove everything a run left: processes, namespaces (with their devices, routes
    and nft/iptables rules), the state directory (CNI IPAM data). Returns what it removed."""
    removed: list[str] = []
    for _ in range(3):
        pids = run_processes(run_id)
        if not pids:
            break
        kill_pids(pids)
        removed += [f"process {p}" for p in pids]
    for name in run_namespaces(run_id):
        try:
            _netns.remove(name)
            removed.append(f"netns {name}")
        except OSError:
            # keep going; a second pass below retries
            pass
    for name in run_namespaces(run_id):
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        removed.append(f"netns {name}")
    d = state_dir(run_id)
    if d.exists():
        shutil.rmtree(d, ignore_errors=True)
        removed.append(f"dir {d}")
    return removed


def stale_runs() -> list[str]:
    """Run ids with leftovers whose owner process is no longer alive: its PID is gone, is a
    zombie, or now belongs to a process with another start time (a reused PID)."""
    ids = {m.group(1) for n in all_lab_namespaces() if (m := _NS_RE.match(n))}
    if STATE_ROOT.exists():
        ids |= {p.name for p in STATE_ROOT.iterdir() if p.is_dir() and RUN_ID_RE.match(p.name)}
    out = []
    for rid in sorted(ids):
        owner = read_owner(rid)
        if owner is None:
            try:  # a run that is just claiming its directory has no owner.json for an instant
                if time.time() - state_dir(rid).stat().st_mtime < 30:
                    continue
            except OSError:
                pass
        elif owner_alive(owner):
            continue
        out.append(rid)
    return out


def cleanup_stale() -> dict[str, list[str]]:
    return {rid: cleanup_run(rid) for rid in stale_runs()}
