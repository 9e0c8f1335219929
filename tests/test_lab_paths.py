"""The lab's extra paths: the wireguard datapath, the IPVS service path (``--ipvs``), the
reverse throughput tests and UDP to the service (``--both-ways``) and the ``--functional``
preset. The runs are real (`cnibench lab` as a subprocess, needs root, marked ``lab``: they run
on the lab worker, tests/labgroup.py); the test definitions and options are checked offline.

Where this kernel cannot build wireguard or IPVS, the runs must report them as skipped with the
kernel option they need; where it can, they must pass traffic (the VM runs of the lab do that).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest
from labutil import Snapshot, lab, new_id, subject

from cnibench import results
from cnibench.lab import preflight, service
from cnibench.lab.runner import LabOptions
from cnibench.suite import definition

THROUGHPUT = ("tcp", "tcp-reverse", "udp", "udp-reverse")
SERVICE = ("tcp-service", "tcp-service-reverse", "udp-service", "udp-service-reverse")
IPVS = ("tcp-service-ipvs", "tcp-service-ipvs-reverse", "udp-service-ipvs", "udp-service-ipvs-reverse")


def root_only():
    if os.geteuid() != 0:
        pytest.skip("lab runs need root (network namespaces); CI runs them as root")


def _tests(doc: dict, name: str) -> dict[str, dict]:
    return {t["name"]: t for t in subject(doc, name)["tests"]}


def _passes_traffic(t: dict) -> None:
    assert t["status"] == "ok", t
    assert t["stats"]["median"] > 0 and t["efficiency"] > 0, t
    rec = t["repetitions"][0]
    assert rec["valid"] and rec["value"] > 0, rec


# --------------------------------------------------------------------------- real runs


@pytest.fixture(scope="module")
def functional_run(tmp_path_factory):
    """One --functional run of host-gw, vxlan and wireguard (the session's only one)."""
    root_only()
    out = tmp_path_factory.mktemp("functional")
    run_id = new_id()
    snap = Snapshot()
    proc = lab(run_id, out, "-d", "host-gw", "-d", "vxlan", "-d", "wireguard", "--functional", "--no-chart")
    path = out / f"lab-{run_id}.json"
    return {"proc": proc, "run_id": run_id, "snap": snap, "doc": json.loads(path.read_text()) if path.exists() else None}


@pytest.mark.lab
def test_functional_run_passes_traffic_both_ways_and_leaves_nothing(functional_run):
    proc, doc = functional_run["proc"], functional_run["doc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    results.validate(doc)
    functional_run["snap"].assert_clean(functional_run["run_id"])
    p = doc["parameters"]
    assert p["repetitions"]["done"] == 1 and p["suite"]["omit_s"] == 0 and p["duration_s"] == 1
    assert p["extra"]["both_ways"] is True and "ipvs" in p["extra"]
    host = _tests(doc, "host")
    assert list(host) == [*THROUGHPUT, "mtu"]  # no latency or CPU tests, no service on the reference
    for name in THROUGHPUT:
        _passes_traffic(host[name])
    for name in ("host-gw", "vxlan"):
        tests = _tests(doc, name)
        for t in (*THROUGHPUT, *SERVICE):
            _passes_traffic(tests[t])
        assert tests["udp-service"]["parameters"]["proxy"] == "nft DNAT (kube-proxy style)"
        assert tests["udp-service"]["parameters"]["service_ip"] == service.SERVICE_VIP
        # each ratio against the host test of the same protocol and direction
        assert {t: tests[t]["reference_test"] for t in (*THROUGHPUT, *SERVICE)} == {
            "tcp": "tcp", "tcp-reverse": "tcp-reverse", "udp": "udp", "udp-reverse": "udp-reverse",
            "tcp-service": "tcp", "tcp-service-reverse": "tcp-reverse", "udp-service": "udp",
            "udp-service-reverse": "udp-reverse"}
        assert tests["tcp-reverse"]["parameters"]["reverse"] is True
        assert tests["udp-service"]["repetitions"][0]["details"]["lost_percent"] < 100


@pytest.mark.lab
def test_ipvs_path_is_skipped_naming_the_kernel_option_or_passes_traffic(functional_run):
    doc = functional_run["doc"]
    assert doc is not None, functional_run["proc"].stderr[-3000:]
    reason = service.probe_ipvs(new_id())  # what this kernel has, asked the lab's own way
    for name in ("host-gw", "vxlan"):
        tests = _tests(doc, name)
        for t in IPVS:
            if reason is None:
                _passes_traffic(tests[t])
                assert tests[t]["parameters"]["service_ip"] == service.IPVS_VIP
                continue
            assert tests[t]["status"] == "skipped", tests[t]
            text = tests[t]["skipped_reason"]
            assert "CONFIG_IP_VS" in text and "ipvsadm" in text and "kernel" in text, text
            assert tests[t]["stats"]["median"] is None
    if reason is not None:
        assert "IPVS service path skipped" in functional_run["proc"].stderr
        assert doc["parameters"]["extra"]["ipvs"] == reason


@pytest.mark.lab
def test_wireguard_is_skipped_naming_the_kernel_option_or_has_mtu_1420(functional_run):
    doc = functional_run["doc"]
    assert doc is not None, functional_run["proc"].stderr[-3000:]
    wg = subject(doc, "wireguard")
    assert wg["encap_overhead"] == 80 and wg["configured_mtu"] == 1420 and wg["cni"] == "flannel wireguard"
    if wg["status"] == "skipped":
        text = wg["skipped_reason"]
        assert "CONFIG_WIREGUARD" in text and "kernel" in text and "wireguard" in text, text
        assert "skip wireguard skipped" in " ".join(functional_run["proc"].stderr.split())
        return
    assert wg["status"] == "ok", wg
    assert wg["observed_mtu"] == 1420
    tests = {t["name"]: t for t in wg["tests"]}
    for t in (*THROUGHPUT, *SERVICE):
        _passes_traffic(tests[t])


@pytest.mark.lab
def test_udp_service_through_iptables(tmp_path):
    root_only()
    run_id = new_id()
    snap = Snapshot()
    proc = lab(run_id, tmp_path, "-d", "host-gw", "--quick", "--both-ways", "--omit", "0", "--no-latency",
               "--no-cpu", "--no-chart", "--service-proxy", "iptables")
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((tmp_path / f"lab-{run_id}.json").read_text())
    tests = _tests(doc, "host-gw")
    for t in SERVICE:
        _passes_traffic(tests[t])
        assert tests[t]["parameters"]["proxy"] == "iptables DNAT (kube-proxy style)"
    assert not any(t.endswith("-ipvs") or "-ipvs-" in t for t in tests)  # --ipvs not given
    snap.assert_clean(run_id)


# --------------------------------------------------------------------------- offline


ALL = replace(definition.LAB_DEFAULTS, both_ways=True, ipvs=True)


def test_reference_test_is_the_host_test_of_the_same_protocol_and_direction():
    defs = definition.suite_tests(ALL, udp_size=1392)
    refs = {t.name: t.reference_test for t in defs if t.kind in ("tcp", "udp")}
    assert refs == {
        "tcp": "tcp", "tcp-reverse": "tcp-reverse",
        "tcp-service": "tcp", "tcp-service-reverse": "tcp-reverse",
        "tcp-service-ipvs": "tcp", "tcp-service-ipvs-reverse": "tcp-reverse",
        "udp": "udp", "udp-reverse": "udp-reverse",
        "udp-service": "udp", "udp-service-reverse": "udp-reverse",
        "udp-service-ipvs": "udp", "udp-service-ipvs-reverse": "udp-reverse",
    }
    host = {t.name for t in definition.suite_tests(ALL, udp_size=1392, service=False)}
    assert set(refs.values()) <= host  # every reference is measured on the host
    assert not any(t.service for t in definition.suite_tests(ALL, udp_size=1392, service=False))
    by = {t.name: t for t in defs}
    assert by["udp-service-ipvs-reverse"].ipvs and by["udp-service-ipvs-reverse"].reverse
    assert by["udp-service"].size == by["udp"].size == 1392 and by["tcp-service"].parameters["streams"] == 1


def test_without_the_options_the_suites_keep_their_tests():
    old = ["tcp", "tcp-service", "udp", "tcp-rr-14B", "tcp-rr-1024B", "udp-rr-14B", "udp-rr-1024B", "tcp-crr",
           "http-350B", "http-4096B"]
    lab_names = [t.name for t in definition.suite_tests(definition.LAB_DEFAULTS, udp_size=1422)]
    cloud_names = [t.name for t in definition.suite_tests(definition.CLOUD_DEFAULTS, udp_size=1422)]
    assert lab_names == [*old, "latency-tcp-30pct", "latency-udp-30pct", "cpu-tcp", "mtu"]
    assert cloud_names == [*old, "latency-tcp-30pct", "latency-tcp-50pct", "latency-udp-30pct",
                           "latency-udp-50pct", "cpu-tcp", "mtu"]
    assert not any(t.reverse or t.ipvs for t in definition.suite_tests(definition.CLOUD_DEFAULTS, udp_size=1422))
    # --both-ways without UDP or without the service: only what is left of them
    no_udp = replace(ALL, udp=False, service=False, latency=False, cpu=False)
    assert [t.name for t in definition.suite_tests(no_udp, udp_size=1392)] == ["tcp", "tcp-reverse", "mtu"]


def test_functional_preset_and_option_validation():
    f = LabOptions().functional()
    assert (f.repeat, f.duration, f.rr_duration, f.omit) == (1, 1.0, 1.0, 0)
    assert not f.latency and not f.cpu and f.both_ways and f.ipvs and f.service
    s = f.settings()
    assert s.both_ways and s.ipvs and not s.latency and not s.cpu and s.omit_s == 0
    f.validate()
    q = LabOptions().quick()
    assert not q.both_ways and not q.ipvs and q.latency and q.omit == LabOptions().omit  # --quick unchanged
    with pytest.raises(ValueError, match="--ipvs .*--no-service"):
        LabOptions(ipvs=True, service=False).validate()
    with pytest.raises(ValueError, match=r"--service-proxy 'ipvs'.*--ipvs"):
        LabOptions(service_proxy="ipvs").validate()
    LabOptions(both_ways=True, service=False, udp=False).validate()  # reverse TCP alone is fine


def test_wireguard_and_ipvsadm_are_needed_only_where_the_kernel_builds_them(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no tool at all
    preflight.check_feature_tools(["host", "vxlan"], ipvs=False)  # neither wg nor ipvsadm needed
    with pytest.raises(preflight.PreflightError) as err:
        preflight.check_feature_tools(["host", "wireguard"], ipvs=True)
    text = str(err.value)
    assert "'wg' not found" in text and "apt-get install wireguard-tools" in text
    assert "'ipvsadm' not found" in text and "apt-get install ipvsadm" in text
    assert preflight.required_tools(latency=True, service_proxy="nft") == ["ip", "iperf3", "nginx", "sockperf",
                                                                           "wrk", "nft"]
