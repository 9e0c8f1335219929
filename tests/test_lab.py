"""The local lab, for real: network namespaces, CNI plugins, iperf3, sockperf, nginx + wrk (needs root).

Runs `python -m cnibench.cli lab` (the `cnibench lab` command) as a subprocess with short
durations. Datapaths the kernel cannot build are reported as skipped, not passed.
Timings are only compared as ratios.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from labutil import QUICK, QUICK_RUN_LOADS, Snapshot, lab, new_id, subject

from cnibench import results
from cnibench.errors import ExitCode
from cnibench.lab import nsutil
from cnibench.lab.datapaths import DATAPATHS
from cnibench.suite.definition import BUSY_THRESHOLD

pytestmark = pytest.mark.lab
UDP_SIZE = min(1500 - d.encap_overhead for d in DATAPATHS.values()) - 28  # the quick run asks for every datapath


@pytest.fixture(autouse=True)
def _needs_root(request):
    """Every test here needs root, except those decorated with ``offline``."""
    if os.geteuid() != 0 and not getattr(request.function, "lab_offline", False):
        pytest.skip("lab tests need root (network namespaces); CI runs them as root")

# --------------------------------------------------------------------------- one full quick run


@pytest.fixture
def quick_run(lab_quick_run):
    """The session's one full quick run (tests/labutil.py quick_run)."""
    return lab_quick_run


def test_quick_run_succeeds_and_writes_valid_json_and_png(quick_run):
    proc = quick_run["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = quick_run["doc"]
    results.validate(doc)
    assert doc["origin"] == "lab" and doc["reference"] == "host"
    png = quick_run["out"] / f"lab-{quick_run['run_id']}.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    # live progress and the final table went to the terminal
    assert "rep 1 host" in proc.stderr and "ratio to host" in proc.stderr
    assert doc["schema_version"].startswith("2.") and doc["parameters"]["repetitions"]["done"] == 1
    assert doc["extra"]["contamination"]["repetitions"] == sum(1 for s in doc["subjects"] if s["status"] == "ok")


@pytest.mark.parametrize("name", list(DATAPATHS))
def test_each_supported_datapath_yields_throughput(quick_run, name):
    doc = quick_run["doc"]
    assert doc is not None, quick_run["proc"].stderr[-2000:]
    s = subject(doc, name)
    if s["status"] == "skipped":
        assert DATAPATHS[name].kernel_feature in s["skipped_reason"]
        assert "kernel" in s["skipped_reason"] and "CONFIG_" in s["skipped_reason"]
        pytest.skip(s["skipped_reason"])
    assert s["status"] == "ok", s.get("error")
    tests = {t["name"]: t for t in s["tests"]}
    # the same tests as the cloud suite, by name
    from cnibench.suite import definition

    settings = replace(definition.LAB_DEFAULTS, load_fractions=QUICK_RUN_LOADS)
    expected = [t.name for t in definition.suite_tests(settings, udp_size=UDP_SIZE, service=name != "host")]
    assert {"latency-tcp-5pct", "latency-udp-1000pct"} <= set(expected)
    assert list(tests) == expected
    for tname in ("tcp", "udp"):
        assert tests[tname]["stats"]["median"] > 0, tname
        assert tests[tname]["efficiency"] > 0
        assert tests[tname]["tool"].startswith("iperf 3")
    udp = tests["udp"]["repetitions"][0]["details"]
    # one datagram size for every datapath: the smallest configured MTU of the datapaths asked for
    # (wireguard 1420, also where this kernel cannot build it) - 28
    assert udp["block_size"] == UDP_SIZE == 1392
    assert udp["offered_mbit"] == 500 and udp["lost_percent"] is not None
    assert tests["tcp"]["path"] == ("node-to-node" if name == "host" else "pod-to-pod")
    if DATAPATHS[name].pods == "bridge":
        assert tests["tcp-service"]["path"] == "pod-to-service"
        assert tests["tcp-service"]["stats"]["median"] > 0
    for tname in ("tcp-rr-14B", "tcp-rr-1024B", "udp-rr-14B", "udp-rr-1024B"):
        t = tests[tname]
        assert t["unit"] == "µs" and t["status"] == "ok", t.get("validity")
        p = t["percentiles_us"]
        assert 0 < p["p50"] <= p["p90"] <= p["p99"]
        assert t["stats"]["median"] == p["p50"]
    for tname in ("tcp-crr", "http-350B", "http-4096B"):
        assert tests[tname]["stats"]["median"] > 0 and tests[tname]["closed_loop"] is True
    for t in s["tests"]:
        if t["kind"] in ("latency", "cpu"):
            # either a figure behind a passed gate, or invalid with its reason and no figure
            for r in t["repetitions"]:
                assert (r["valid"] and r["value"] > 0) or (r["value"] is None and r["invalid_reason"]), r


def test_the_gate_both_ways_in_a_real_run(quick_run, tmp_path):
    """A rate the generator reaches (5 % of the host's maximum) passes the gate; ten times the
    host's maximum cannot be reached and is recorded as invalid. (The host's maximum itself,
    once used here, was reached in one run of the full suite: not a rate that must fail. 1 %
    for one second, used before, gave 51 observations on a loaded machine, which the gate
    rightly refuses as too few for a p99.)

    Whether the reachable rate passes depends on the machine: with the suite's other worker
    busy it can miss replies (once 50 %), and the gate is right to refuse it then. So the pass
    direction must hold in one of three runs, the session's full run (both loads, every
    datapath) and up to two of the host alone; the refusal of the unreachable rate in every one.
    """
    assert QUICK_RUN_LOADS == (0.05, 10.0)
    refusals = []
    runs = [quick_run]
    for attempt in range(3):
        if attempt == len(runs):
            run_id = new_id()
            out = tmp_path / str(attempt)
            proc = lab(run_id, out, "-d", "host", "--quick", "--loads", "0.05,10", "--rr-duration", "2", "--no-udp",
                       "--no-service", "--no-cpu", "--no-chart")
            runs.append({"proc": proc, "doc": json.loads((out / f"lab-{run_id}.json").read_text())
                         if proc.returncode == 0 else None})
        proc, doc = runs[attempt]["proc"], runs[attempt]["doc"]
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "invalid" in proc.stderr
        passed = False
        for s in doc["subjects"]:
            if s["status"] != "ok":
                continue
            tests = {t["name"]: t for t in s["tests"]}
            low, high = tests["latency-tcp-5pct"], tests["latency-tcp-1000pct"]
            assert high["status"] == "invalid" and high["stats"]["median"] is None and high["samples"] == []
            assert "load generator behind" in high["validity"]["reason"]
            assert high["repetitions"][0]["value"] is None
            if low["status"] != "ok":
                assert low["stats"]["median"] is None and low["validity"]["reason"], low  # refused, with its reason
                refusals.append(f"{s['name']}: {low['validity']['reason']}")
                continue
            assert low["stats"]["median"] > 0
            rec = low["repetitions"][0]
            assert rec["details"]["achieved_rate"] >= 0.99 * rec["details"]["target_rate"]
            passed = True
        if passed:
            break
    else:
        pytest.fail(f"a reachable rate was refused in three runs: {refusals}")


def test_a_busy_machine_contaminates_the_run_and_withholds_the_ranking(tmp_path):
    """Two `yes > /dev/null` keep both cores busy: every repetition is flagged, the summary says so,
    and no figure of those repetitions is used."""
    run_id = new_id()
    hogs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(os.cpu_count() or 2)]
    try:
        time.sleep(0.5)
        proc = lab(run_id, tmp_path, "-d", "host", "-d", "host-gw", "--quick", "--no-latency", "--no-udp",
                   "--no-chart", "--busy-threshold", str(BUSY_THRESHOLD))  # the default guard
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    doc = json.loads((tmp_path / f"lab-{run_id}.json").read_text())
    cont = doc["extra"]["contamination"]
    assert cont["contaminated"] == cont["repetitions"] == 2
    assert doc["extra"]["ranking"]["allowed"] is False
    assert "no ranking" in proc.stderr and "contaminated" in proc.stderr
    for s in doc["subjects"]:
        for t in s["tests"]:
            assert t["samples"] == [] and t["status"] == "invalid", t
            assert all(r["contaminated"] for r in t["repetitions"])
            assert t["validity"]["contaminated_repetitions"] == len(t["repetitions"])
    # the CPU figure of a repetition is also refused on its own when the machine was saturated
    # during it (>= 95 % busy, docs/measurements.md); two `yes` keep the machine at 92-100 %,
    # so which side of that line a 1-second test falls on is the machine's: the rule is checked
    # against the busy share the repetition measured (once 92.5 %: a figure, flagged contaminated)
    for s in doc["subjects"]:
        cpu = next(t for t in s["tests"] if t["name"] == "cpu-tcp")
        for r in cpu["repetitions"]:
            saturated = r["details"]["machine_busy_fraction"] >= 0.95
            assert (r["value"] is None) == saturated or r["invalid_reason"], r
            if saturated:
                assert r["invalid_reason"].startswith("the machine was saturated"), r


def test_host_is_the_reference(quick_run):
    host = subject(quick_run["doc"], "host")
    tcp = next(t for t in host["tests"] if t["name"] == "tcp")
    assert tcp["efficiency"] == pytest.approx(1.0)


def test_vxlan_observed_mtu_is_50_below_host_gw(quick_run):
    doc = quick_run["doc"]
    hostgw, vxlan = subject(doc, "host-gw"), subject(doc, "vxlan")
    assert hostgw["observed_mtu"] == subject(doc, "host")["observed_mtu"] == 1500
    assert vxlan["observed_mtu"] == hostgw["observed_mtu"] - 50
    # observed on the path, by probing, per repetition
    mtu = next(t for t in vxlan["tests"] if t["kind"] == "mtu")
    assert all(r["observed_mtu"] == 1450 for r in mtu["repetitions"])


def test_no_leftovers_after_normal_run(quick_run):
    assert quick_run["proc"].returncode == 0
    quick_run["snap"].assert_clean(quick_run["run_id"])


# --------------------------------------------------------------------------- L2 rule


def test_host_gw_across_split_subnets_is_refused(tmp_path):
    run_id = new_id()
    snap = Snapshot()
    proc = lab(run_id, tmp_path, "--split-subnets", "-d", "host-gw", "-d", "vxlan", *QUICK, "--no-latency",
               "--no-udp", "--no-service", "--no-cpu", "--no-chart")
    assert proc.returncode == ExitCode.FAILED, proc.stderr[-3000:]
    assert "host-gw needs L2 adjacency" in proc.stderr
    doc = json.loads((tmp_path / f"lab-{run_id}.json").read_text())
    hg = subject(doc, "host-gw")
    assert hg["status"] == "error"
    assert "needs L2 adjacency" in hg["error"] and "Nexthop has invalid gateway" in hg["error"]
    assert hg["underlay_need"] == "same-l2-subnet"
    # an encapsulating datapath works across the router
    vx = subject(doc, "vxlan")
    assert vx["status"] == "ok"
    assert next(t for t in vx["tests"] if t["name"] == "tcp")["stats"]["median"] > 0
    snap.assert_clean(run_id)


# --------------------------------------------------------------------------- failure, interruption, concurrency


def test_failing_run_leaves_nothing(tmp_path):
    run_id = new_id()
    snap = Snapshot()
    proc = lab(run_id, tmp_path, "-d", "host-gw", "-d", "vxlan", *QUICK, env={"CNIBENCH_LAB_FAIL_AT": "measure"})
    assert proc.returncode == 1
    assert "injected failure" in proc.stderr and "removed" in proc.stderr
    snap.assert_clean(run_id)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_leaves_nothing(tmp_path, sig):
    run_id = new_id()
    snap = Snapshot()
    cmd = [sys.executable, "-m", "cnibench.cli", "lab", "--run-id", run_id, "--out", str(tmp_path), "-d", "vxlan",
           "--duration", "5", "--repeat", "2", "--no-latency"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # wait until the servers run and a measurement is under way
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(b"iperf3-client" in _cmdline(p) for p in nsutil.run_processes(run_id)):
                break
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        else:
            pytest.fail("the lab never started measuring")
        assert nsutil.run_namespaces(run_id), "namespaces should exist mid-run"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err
    snap.assert_clean(run_id)


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def test_two_concurrent_runs_do_not_collide(tmp_path):
    ids = [new_id(), new_id()]
    snap = Snapshot()
    # the second run uses kube-proxy-style iptables chains instead of nft for the service; each run
    # keeps the machine busy for the other, so the background-load guard is turned off (threshold 1.0)
    procs = [subprocess.Popen([sys.executable, "-m", "cnibench.cli", "lab", "--run-id", rid, "--out", str(tmp_path),
                               "-d", "host-gw", "-d", "vxlan", *QUICK, "--no-latency", "--no-udp",
                               "--no-cpu", "--no-chart", "--service-proxy", proxy, "--busy-threshold", "1.0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rid, proxy in zip(ids, ("nft", "iptables"))]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    for rid in ids:
        doc = json.loads((tmp_path / f"lab-{rid}.json").read_text())
        vx = subject(doc, "vxlan")
        assert vx["status"] == "ok"
        svc = next(t for t in vx["tests"] if t["name"] == "tcp-service")
        assert svc["stats"]["median"] > 0 and doc["parameters"]["extra"]["service_proxy"] in svc["parameters"]["proxy"]
        snap.assert_clean(rid)


def test_duplicate_run_id_of_a_live_run_is_refused():
    rid = new_id()
    nsutil.claim_run(rid)
    try:
        with pytest.raises(RuntimeError, match="already running"):
            nsutil.claim_run(rid)
    finally:
        nsutil.cleanup_run(rid)


# --------------------------------------------------------------------------- preflight and stale cleanup


def test_not_root_is_a_clear_error(tmp_path):
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                           "cnibench.cli", "lab", "--out", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "needs root" in proc.stderr


def test_missing_tool_names_the_debian_package(tmp_path):
    import shutil

    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("ip", "iperf3", "nginx", "nft", "wrk"):  # no sockperf
        os.symlink(shutil.which(tool), bindir / tool)
    proc = subprocess.run([sys.executable, "-m", "cnibench.cli", "lab", "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PATH": str(bindir), "COLUMNS": "200"})
    assert proc.returncode == 2
    assert "'sockperf' not found" in proc.stderr and "apt-get install sockperf" in proc.stderr


def test_cleanup_finds_leftovers_of_dead_runs():
    rid = new_id()
    d = nsutil.state_dir(rid)
    d.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (d / "owner.json").write_text(json.dumps({"pid": dead.pid}))
    ns = nsutil.ns_name(rid, "vxlan", "n1")
    nsutil.create_ns(ns)
    sleeper = subprocess.Popen(nsutil.ns_exec(ns, ["sleep", "300"]))
    try:
        deadline = time.monotonic() + 10
        while sleeper.pid not in nsutil.run_processes(rid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rid in nsutil.stale_runs()
        removed = nsutil.cleanup_stale()[rid]
        assert f"netns {ns}" in removed
        sleeper.wait(timeout=5)
        assert nsutil.run_namespaces(rid) == [] and not d.exists()
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        nsutil.cleanup_run(rid)


# --------------------------------------------------------------------------- without root


def offline(fn):
    """The test needs no root (pure logic of the lab)."""
    fn.lab_offline = True
    return fn


@offline
def test_datapath_table_states_the_catalogs_underlay_needs():
    from cnibench.variants import Underlay

    assert DATAPATHS["host-gw"].underlay_need == Underlay.L2.value
    assert DATAPATHS["ipvlan"].underlay_need == Underlay.L2.value
    for name in ("vxlan", "ipip", "geneve"):
        assert DATAPATHS[name].underlay_need == Underlay.L3.value
    assert DATAPATHS["vxlan"].encap_overhead == DATAPATHS["geneve"].encap_overhead == 50
    assert DATAPATHS["ipip"].encap_overhead == 20


@offline
def test_every_lab_datapath_takes_the_overhead_of_the_catalog_variants_it_reproduces():
    """The MTU the lab checks (1500 - overhead) is the catalog's prediction for those variants."""
    from cnibench.variants import CATALOG

    reproduced = {v.lab_datapath for v in CATALOG.values() if v.lab_datapath}
    assert reproduced == set(DATAPATHS) - {"host"}
    for v in CATALOG.values():
        if v.lab_datapath:
            assert DATAPATHS[v.lab_datapath].encap_overhead == v.encap_overhead, v.name


@offline
def test_l2_and_kernel_messages():
    from cnibench.lab.datapaths import KernelFeatureMissing, L2AdjacencyError

    msg = str(L2AdjacencyError("host-gw", "route refused"))
    assert "host-gw needs L2 adjacency" in msg and "same subnet" in msg and "--split-subnets" in msg
    msg = str(KernelFeatureMissing("ipip", "ipip", "Linux 6.1"))
    assert "skipped" in msg and "CONFIG_NET_IPIP" in msg


@offline
def test_options_validation():
    from cnibench.lab.runner import LabOptions

    with pytest.raises(ValueError, match="unknown datapath"):
        LabOptions(datapaths=("calico",)).validate()
    with pytest.raises(ValueError, match="repeat"):
        LabOptions(repeat=0).validate()
    q = LabOptions().quick()
    assert q.repeat == 1 and q.guard_retries == 0 and q.guard_seconds < LabOptions().guard_seconds
    # every value checked before anything is built, naming the option
    for bad, match in ((dict(duration=float("nan")), "--duration nan"), (dict(duration=float("inf")), "--duration"),
                       (dict(rr_duration=0), "--rr-duration"), (dict(latency_loads=(10.5,)), "--loads"),
                       (dict(latency_loads=()), "--loads"), (dict(streams=129), "iperf3 allows 1 to 128"),
                       (dict(repeat_min=5, repeat_max=3), "--repeat-min 5 / --repeat-max 3"),
                       (dict(busy_threshold=0), "--busy-threshold"), (dict(pin_cpu=999), "--pin-cpu 999")):
        with pytest.raises(ValueError, match=match.replace("(", r"\(")):
            LabOptions(**bad).validate()
    assert LabOptions().bounds == (3, 4) and LabOptions(repeat=2).bounds == (2, 2)


@offline
def test_preflight_names_packages(monkeypatch):
    import shutil

    from cnibench.lab import preflight

    real = shutil.which
    monkeypatch.setattr(preflight.shutil, "which", lambda t: None if t in ("wrk", "nginx") else real(t))
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 0)
    with pytest.raises(preflight.PreflightError) as err:
        preflight.check()
    assert "nginx-light" in str(err.value) and "apt-get install wrk" in str(err.value)
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 1000)
    with pytest.raises(preflight.PreflightError, match="needs root"):
        preflight.check()
