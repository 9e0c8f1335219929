"""What the real-lab tests share: a run of `cnibench lab` as a subprocess, a snapshot of the
machine's namespaces, links and processes to find leftovers, and the one full quick run of the
session (the `lab_quick_run` fixture of tests/conftest.py), which tests/test_lab.py checks
from every side and tests/test_lab_report.py reports on, so the suite pays for it once."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from cnibench.lab import nsutil

QUICK = ["--quick"]
ROOT_LINK_NAMES = {"eth0", "cni0", "flannel.1", "flannel.ipip", "gnv0", "flannel-wg", "kube-dummy-if", "br0", "br1", "br2",
                   "n1", "n2", "m0", "m1", "t0"}


def new_id() -> str:
    return "t" + secrets.token_hex(3)


# The background-load guard is off in the runs that test what the lab builds and measures: the
# suite runs on two workers, and the other worker is exactly the busy neighbour the guard flags.
# The guard itself is tested by tests/test_lab.py's busy-machine test (its own load, the default threshold)
# and, both ways, in test_benchmark.py (a quiet and a contaminated block of the suite); whether a
# quiet machine's run stays unflagged is a property of the machine, reported by
# scripts/lab-stability.py, not a test.
GUARD_OFF = ("--busy-threshold", "1.0")


def lab(run_id: str, out: Path, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    guard = () if "--busy-threshold" in args else GUARD_OFF
    cmd = [sys.executable, "-m", "cnibench.cli", "lab", "--run-id", run_id, "--out", str(out), *args, *guard]
    return run_cli(cmd, env=env, timeout=timeout)


def run_cli(cmd: list[str], *, timeout: float, env: dict | None = None, cwd: Path | None = None,
            ) -> subprocess.CompletedProcess:
    """subprocess.run for a lab command, except on the way out: a timeout or Ctrl-C on pytest stops
    it with SIGTERM, so that it cleans up after itself (subprocess.run would SIGKILL it and leave
    its namespaces, or a guest's qemu, in place)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                            env={**os.environ, "COLUMNS": "200", **(env or {})})
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        stop(proc)
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def stop(proc: subprocess.Popen, grace: float = 120) -> None:
    """End a lab command that is still running: SIGTERM (it cleans up), SIGKILL after ``grace`` s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def orphan_netns_processes() -> set[int]:
    """Processes in a network namespace that is neither the root one nor a named one."""
    root = os.stat("/proc/self/ns/net").st_ino  # the test runs in the root namespace
    named = set()
    for n in os.listdir("/run/netns") if os.path.isdir("/run/netns") else []:
        try:
            named.add(os.stat(f"/run/netns/{n}").st_ino)
        except OSError:
            pass
    pids = set()
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                ino = os.stat(f"/proc/{p}/ns/net").st_ino
            except OSError:
                continue
            if ino != root and ino not in named:
                pids.add(int(p))
    return pids


class Snapshot:
    def __init__(self) -> None:
        self.links = root_links()
        self.orphans = orphan_netns_processes()

    def assert_clean(self, run_id: str) -> None:
        assert nsutil.run_namespaces(run_id) == [], "lab namespaces left behind"
        assert nsutil.run_processes(run_id) == [], "lab processes left behind"
        assert not nsutil.state_dir(run_id).exists(), "state directory (CNI IPAM data) left behind"
        new_links = (root_links() - self.links) & ROOT_LINK_NAMES
        assert not new_links, f"links appeared in the root namespace: {new_links}"
        new_orphans = {p for p in orphan_netns_processes() - self.orphans if _alive(p)}
        assert not new_orphans, f"processes left in deleted namespaces: {new_orphans}"
        nft = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
        assert "cnibench" not in nft, "nft table created in the root namespace"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# The session's full run: every datapath, the lab's defaults but one repetition (--quick), and two
# latency loads that test the gate both ways (test_lab.py test_the_gate_both_ways_in_a_real_run):
# 5 % of the host's maximum message rate, which the generator reaches on a quiet machine, and ten
# times the maximum, which it cannot reach on any. iperf3 counts from the first second (--omit 0):
# the tests check what is built and measured, not the figures, and each iperf3 test
# of the run is a second shorter.
QUICK_RUN_LOADS = (0.05, 10.0)


def quick_run(out: Path) -> dict:
    run_id = new_id()
    snap = Snapshot()
    proc = lab(run_id, out, *QUICK, "--omit", "0", "--loads", ",".join(f"{x:g}" for x in QUICK_RUN_LOADS))
    doc_path = out / f"lab-{run_id}.json"
    return {"proc": proc, "out": out, "run_id": run_id, "snap": snap,
            "doc": json.loads(doc_path.read_text()) if doc_path.exists() else None}


def subject(doc: dict, name: str) -> dict:
    return next(s for s in doc["subjects"] if s["name"] == name)
