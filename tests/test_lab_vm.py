"""The lab in a guest with Debian's kernel, for real (issue 16): every datapath and the service
paths in functional mode, and nothing left on the host after a normal run, a failing run, a
timeout, and SIGINT/SIGTERM during boot and during measurement.

Each test boots one qemu guest (emulated here: no hardware KVM); the image is built once and
cached (scripts/setup.sh --vm installs qemu; the first test downloads the kernel, ~70 MB).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cnibench import results
from cnibench.lab import nsutil
from cnibench.lab.datapaths import DATAPATHS
from cnibench.lab.vm import annotate, host
from tests.labutil import Snapshot, new_id, run_cli, stop

pytestmark = [pytest.mark.lab, pytest.mark.vm]
ROOT = Path(__file__).resolve().parent.parent
FAST = ("--functional",)  # one repetition of 1 s tests, every path both ways (LabOptions.functional)


def _need_vm() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    missing = [t for t in host.VM_TOOLS if __import__("shutil").which(t) is None]
    if missing or host.static_busybox() is None:
        pytest.fail(f"the VM mode's tools are missing ({missing or 'busybox-static'}): scripts/setup.sh --vm "
                    "installs them (CI does)", pytrace=False)


def _argv(run_id: str, out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "cnibench.cli", "lab", "--vm", "--run-id", run_id, "--out", str(out),
            "--busy-threshold", "1.0", *args]


def _qemu_of(run_id: str) -> list[int]:
    """qemu processes of the run (by its marker in their command line)."""
    pids = []
    for pid in nsutil.run_processes(run_id):
        try:
            if b"qemu-system" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.append(pid)
        except OSError:
            pass
    return pids


def _assert_nothing_left(snap: Snapshot, run_id: str) -> None:
    assert _qemu_of(run_id) == [], "the guest (qemu) is still running"
    snap.assert_clean(run_id)  # processes with the run's marker, namespaces, state dir (incl. the share)


@pytest.fixture(scope="module")
def functional_run(tmp_path_factory):
    _need_vm()
    out = tmp_path_factory.mktemp("vm")
    run_id = new_id()
    snap = Snapshot()
    t0 = time.monotonic()
    proc = run_cli(_argv(run_id, out, "--functional"), timeout=1500, cwd=ROOT)
    wall = time.monotonic() - t0
    doc_path = out / f"lab-{run_id}.json"
    return {"proc": proc, "run_id": run_id, "snap": snap, "wall": wall, "out": out,
            "doc": results.read_document(doc_path) if doc_path.exists() else None}


def _tests(doc: dict, name: str) -> dict[str, dict]:
    return {t["name"]: t for t in next(s for s in doc["subjects"] if s["name"] == name)["tests"]}


def test_every_datapath_runs_in_the_guest_and_is_marked_functional_only(functional_run):
    proc, doc = functional_run["proc"], functional_run["doc"]
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert doc is not None
    vm = doc["environment"]["extra"]["vm"]
    assert doc["environment"]["kernel"] == vm["kernel_release"] != os.uname().release
    assert vm["accelerator"] == "tcg" and vm["guest_leftovers"] == {"namespaces": [], "processes": [], "state": []}
    assert doc["extra"]["ranking"]["allowed"] is False
    subjects = {s["name"]: s for s in doc["subjects"]}
    assert set(subjects) == set(DATAPATHS)
    assert {n: s["status"] for n, s in subjects.items()} == {n: "ok" for n in DATAPATHS}
    for s in doc["subjects"]:
        for t in s["tests"]:
            assert t["caveats"][0].startswith("functional only"), (s["name"], t["name"])
    print(f"\nguest functional run of {len(subjects)} datapaths: {functional_run['wall']:.0f} s wall")


@pytest.mark.parametrize("name", sorted(set(DATAPATHS) - {"host"}))
def test_each_tunnel_shows_the_mtu_the_catalog_predicts(functional_run, name):
    doc = functional_run["doc"]
    assert doc is not None, functional_run["proc"].stderr[-3000:]
    subject = next(s for s in doc["subjects"] if s["name"] == name)
    assert subject["observed_mtu"] == 1500 - DATAPATHS[name].encap_overhead == subject["configured_mtu"]


@pytest.mark.parametrize("name", sorted(set(DATAPATHS) - {"host"}))
def test_tcp_and_udp_pass_both_ways_pod_to_pod_and_pod_to_service(functional_run, name):
    doc = functional_run["doc"]
    assert doc is not None, functional_run["proc"].stderr[-3000:]
    tests = _tests(doc, name)
    want = ["tcp", "tcp-reverse", "udp", "udp-reverse"]
    if DATAPATHS[name].pods != "ipvlan":  # ipvlan l2 has no service path (skipped with its reason)
        want += [f"{proto}-service{proxy}{way}" for proto in ("tcp", "udp") for proxy in ("", "-ipvs")
                 for way in ("", "-reverse")]
    else:
        assert all(t["status"] == "skipped" and t["skipped_reason"] for n, t in tests.items() if "service" in n)
    for test_name in want:
        t = tests[test_name]
        assert t["status"] == "ok" and t["validity"]["status"] == "valid", (test_name, t.get("error"), t["validity"])
        assert t["stats"]["median"] > 0, test_name


def test_the_run_left_nothing_on_the_host(functional_run):
    _assert_nothing_left(functional_run["snap"], functional_run["run_id"])
    assert not any(p.name.startswith(".build-") for p in host.image_mod.cache_dir().iterdir())
    log = functional_run["out"] / f"lab-{functional_run['run_id']}-vm-console.log"
    assert "cnibench-vm: init: guest command exit status 0" in log.read_text()


def _start(run_id: str, out: Path, *args: str, env: dict | None = None) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen(_argv(run_id, out, *args), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "COLUMNS": "200", **(env or {})})
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    _STARTED.append(proc)
    return proc, lines


_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _stop_what_a_failed_test_left_running():
    """A test that fails (or is interrupted) with its run still going stops it with SIGTERM, so that
    the run kills its guest and cleans up (a SIGKILL would leave qemu running)."""
    yield
    while _STARTED:
        stop(_STARTED.pop())


def _wait_for(lines: list[str], text: str, proc: subprocess.Popen, timeout: float = 600) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(text in ln for ln in lines):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    pytest.fail(f"never saw {text!r}; output:\n{''.join(lines)[-3000:]}")


@pytest.mark.parametrize(("sig", "when"), [(signal.SIGINT, "vm: booting"), (signal.SIGTERM, "vm: booting"),
                                           (signal.SIGINT, " rep 1 host "), (signal.SIGTERM, " rep 1 host ")])
def test_a_signal_during_boot_or_measurement_kills_the_guest_and_leaves_nothing(tmp_path, sig, when):
    _need_vm()
    run_id = new_id()
    snap = Snapshot()
    proc, lines = _start(run_id, tmp_path, *FAST, "-d", "vxlan")
    _wait_for(lines, when, proc)
    if when == "vm: booting":
        time.sleep(1.0)  # qemu started, the kernel is booting
        assert _qemu_of(run_id), "no qemu process carries the run's marker"
    proc.send_signal(sig)
    assert proc.wait(60) == 130, "".join(lines)[-3000:]
    _assert_nothing_left(snap, run_id)
    assert any("interrupted" in ln for ln in lines)


def test_a_failing_guest_run_is_reported_and_leaves_nothing(tmp_path):
    _need_vm()
    run_id = new_id()
    snap = Snapshot()
    proc, lines = _start(run_id, tmp_path, *FAST, "-d", "vxlan", env={"CNIBENCH_LAB_FAIL_AT": "measure"})
    assert proc.wait(900) == 1
    time.sleep(0.2)
    text = "".join(lines)
    assert "injected failure" in text and "wrote no result document" in text, text[-3000:]
    _assert_nothing_left(snap, run_id)


def test_a_guest_past_its_timeout_is_killed_and_leaves_nothing(tmp_path):
    _need_vm()
    run_id = new_id()
    snap = Snapshot()
    t0 = time.monotonic()
    proc, lines = _start(run_id, tmp_path, *FAST, "-d", "vxlan", "--vm-timeout", "15")
    assert proc.wait(300) == 1
    assert time.monotonic() - t0 < 120
    time.sleep(0.2)
    assert "did not finish within --vm-timeout 15 s" in "".join(lines), "".join(lines)[-3000:]
    _assert_nothing_left(snap, run_id)


def test_the_functional_caveat_reaches_the_json_output(functional_run):
    doc = functional_run["doc"]
    assert doc is not None
    assert json.loads(functional_run["proc"].stdout or "null") is None  # no --json: nothing on stdout
    assert annotate.NO_RANKING in doc["extra"]["ranking"]["reason"]
