"""The readiness gate's script, run by bash against a recorded stand-in for kubectl.

The stand-in replays what a real kubectl prints for the calls the script makes (and records
the calls), so the script's own logic is exercised: which calls, in which order, and the
failure message that names the variant and the pods that are not ready.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from cnibench.program.cni.base import SCRIPTS
from cnibench.program.cni.ipvlan import MASTER_TOKEN, conflist

GATE = SCRIPTS / "cni-ready.sh"

# what `kubectl get pods -A -o jsonpath=...` prints with the script's template:
# namespace/name, phase, node, container readiness
PODS = "\n".join([
    "kube-flannel/kube-flannel-ds-abcde\tRunning\tip-10-20-0-20\ttrue",
    "kube-flannel/kube-flannel-ds-fghij\tRunning\tip-10-20-0-30\tfalse",
    "kube-system/coredns-1\tPending\t\t",
    "kube-system/job-done\tSucceeded\tip-10-20-0-20\tfalse",
    "kube-system/etcd-cp\tRunning\tip-10-20-0-10\ttrue true",
])

KUBECTL = r"""#!/usr/bin/env bash
echo "$*" >> "$KUBECTL_LOG"
case "$*" in
    *"rollout status"*) exit "${ROLLOUT_RC:-0}" ;;
    *"wait --for=condition=Ready"*) exit "${WAIT_RC:-0}" ;;
    "get node "*) exit "${NODE_RC:-0}" ;;
    *"get pods"*) printf '%s\n' "$PODS" ;;
    *"get nodes -o wide"*) echo "NAME STATUS"; echo "ip-10-20-0-30 NotReady" ;;
    *"get events"*) echo "Warning BackOff pod/kube-flannel-ds-fghij" ;;
esac
exit 0
"""


@pytest.fixture
def gate_env(tmp_path: Path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    kubectl = bindir / "kubectl"
    kubectl.write_text(KUBECTL)
    kubectl.chmod(0o755)
    log = tmp_path / "kubectl.log"
    env = {
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "KUBECTL_LOG": str(log),
        "PODS": PODS,
        "CNIBENCH_VARIANT": "flannel-vxlan",
        "CNI_NAMESPACE": "kube-flannel",
        "CNI_WORKLOADS": "daemonset/kube-flannel-ds",
        "CNI_NODES": "ip-10-20-0-20 ip-10-20-0-30",
        "CNI_TIMEOUT": "60",
    }

    def run(**overrides: str) -> tuple[subprocess.CompletedProcess, list[str]]:
        result = subprocess.run(
            ["bash", str(GATE)], env={**env, **overrides}, capture_output=True, text=True, timeout=60
        )
        calls = log.read_text().splitlines() if log.exists() else []
        return result, calls

    return run


def test_gate_passes_when_rolled_out_and_ready(gate_env):
    result, calls = gate_env()
    assert result.returncode == 0, result.stderr
    assert "flannel-vxlan ready" in result.stdout
    rollout = [c for c in calls if "rollout status" in c]
    assert rollout and rollout[0].startswith("-n kube-flannel rollout status daemonset/kube-flannel-ds --timeout=")
    waits = [c for c in calls if c.startswith("wait --for=condition=Ready")]
    assert [w.split()[2] for w in waits] == ["node/ip-10-20-0-20", "node/ip-10-20-0-30"]
    assert calls.index(rollout[0]) < calls.index(waits[0])


def test_gate_timeout_names_the_variant_and_the_pods_not_ready(gate_env):
    result, _ = gate_env(ROLLOUT_RC="1")
    assert result.returncode == 1
    err = result.stderr
    assert "CNI variant flannel-vxlan is not ready after 60s" in err
    assert "kube-flannel/daemonset/kube-flannel-ds is not rolled out" in err
    assert "kube-flannel/kube-flannel-ds-fghij phase=Running node=ip-10-20-0-30 ready=false" in err
    assert "kube-system/coredns-1 phase=Pending node=<none> ready=<none>" in err
    assert "kube-flannel-ds-abcde" not in err  # ready
    assert "job-done" not in err and "etcd-cp" not in err  # finished / ready
    assert "ip-10-20-0-30 NotReady" in err


def test_gate_fails_on_a_node_that_stays_not_ready(gate_env):
    result, calls = gate_env(WAIT_RC="1", CNI_WORKLOADS="")
    assert result.returncode == 1
    assert "node ip-10-20-0-20 is not Ready" in result.stderr
    assert not any("rollout status" in c for c in calls)  # node-config variants have no workload


def test_gate_fails_when_a_node_never_registers(gate_env):
    result, _ = gate_env(NODE_RC="1", CNI_TIMEOUT="0")
    assert result.returncode == 1
    assert "node ip-10-20-0-20 has not registered" in result.stderr


def test_gate_requires_its_inputs(gate_env):
    result, calls = gate_env(CNIBENCH_VARIANT="")
    assert result.returncode != 0 and "CNIBENCH_VARIANT" in result.stderr
    assert calls == []


# --- ipvlan node script ------------------------------------------------------------------------
NODE = SCRIPTS / "ipvlan-node.sh"
VERSION = "v1.9.1"

# what `ip` prints on an AWS node with DHCP on ens5 (subnet 10.20.0.0/24); 10.20.0.81 is a pod
# address that cloud-init put on the interface
IP = r"""#!/usr/bin/env bash
echo "$*" >> "$IP_LOG"
case "$*" in
    "-4 route show default") echo "default via 10.20.0.1 dev ens5 proto dhcp src 10.20.0.20 metric 100" ;;
    "-4 route show dev ens5 proto kernel scope link") echo "10.20.0.0/24 proto kernel scope link src 10.20.0.20 metric 100" ;;
    "-4 -o addr show dev ens5")
        echo "2: ens5    inet 10.20.0.20/24 metric 100 brd 10.20.0.255 scope global dynamic ens5"
        echo "2: ens5    inet 10.20.0.81/24 brd 10.20.0.255 scope global secondary ens5" ;;
esac
exit 0
"""
# serves the release tarball and its .sha256 from $RELEASE_DIR by file name
CURL = r"""#!/usr/bin/env bash
out=""; url=""
while [ $# -gt 0 ]; do
    case "$1" in -o) out=$2; shift 2 ;; -*) [ "$1" = --retry ] || [ "$1" = --retry-delay ] && shift; shift ;; *) url=$1; shift ;; esac
done
echo "$url" >> "$CURL_LOG"
cp "$RELEASE_DIR/${url##*/}" "$out"
"""


def _release(tmp_path: Path, corrupt: bool = False) -> Path:
    """The plugin release as GitHub serves it: the tarball and its .sha256."""
    release = tmp_path / "release"
    release.mkdir(exist_ok=True)
    name = f"cni-plugins-linux-amd64-{VERSION}.tgz"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for plugin in ("ipvlan", "host-local", "loopback", "bridge"):
            body = f"#!/bin/sh\necho 'CNI {plugin} plugin {VERSION}'\n".encode()
            info = tarfile.TarInfo(f"./{plugin}")
            info.size, info.mode = len(body), 0o755
            tar.addfile(info, io.BytesIO(body))
    data = buf.getvalue()
    (release / name).write_bytes(data)
    digest = hashlib.sha256(b"other" if corrupt else data).hexdigest()
    (release / f"{name}.sha256").write_text(f"{digest}  {name}\n")
    return release


@pytest.fixture
def node_env(tmp_path: Path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, body in (("ip", IP), ("curl", CURL)):
        (bindir / name).write_text(body)
        (bindir / name).chmod(0o755)
    ips = ["10.20.0.80", "10.20.0.81"]
    conf = conflist({"plugin": "ipvlan", "mode": "l2", "ipam": "host-local"}, ips,
                    ipaddress.ip_network("10.20.0.0/24"), None)
    env = {
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "IP_LOG": str(tmp_path / "ip.log"),
        "CURL_LOG": str(tmp_path / "curl.log"),
        "CNI_BIN_DIR": str(tmp_path / "opt-cni-bin"),
        "CNI_PLUGINS_URL": f"https://example.invalid/{VERSION}/cni-plugins-linux-amd64-{VERSION}.tgz",
        "CNI_PLUGINS_VERSION": VERSION,
        "CNI_CONFLIST": json.dumps(conf, sort_keys=True),
        "CNI_MASTER_TOKEN": MASTER_TOKEN,
        "CNI_CONF_FILE": str(tmp_path / "net.d" / "10-ipvlan.conflist"),
        "CNI_POD_IPS": " ".join(ips),
    }

    def run(corrupt: bool = False, **overrides: str) -> subprocess.CompletedProcess:
        env["RELEASE_DIR"] = str(_release(tmp_path, corrupt))
        return subprocess.run(["bash", str(NODE)], env={**env, **overrides}, capture_output=True, text=True, timeout=60)

    return run, tmp_path


def test_ipvlan_node_script_installs_plugins_and_writes_the_conflist(node_env):
    run, tmp = node_env
    result = run()
    assert result.returncode == 0, result.stderr
    assert (tmp / "opt-cni-bin" / "ipvlan").exists()
    conf = json.loads((tmp / "net.d" / "10-ipvlan.conflist").read_text())
    plugin = conf["plugins"][0]
    assert plugin["master"] == "ens5"  # the default route's interface
    assert [r["rangeStart"] for r in plugin["ipam"]["ranges"][0]] == ["10.20.0.80", "10.20.0.81"]
    # the pod address cloud-init had put on the host interface is taken off it; the other is not there
    ip_calls = (tmp / "ip.log").read_text().splitlines()
    assert "addr del 10.20.0.81/24 dev ens5" in ip_calls
    assert not any(c.startswith("addr del 10.20.0.80") for c in ip_calls)
    # a second run finds the pinned version installed and downloads nothing
    downloads = len((tmp / "curl.log").read_text().splitlines())
    assert run().returncode == 0
    assert len((tmp / "curl.log").read_text().splitlines()) == downloads == 2


def test_ipvlan_node_script_refuses_a_bad_checksum(node_env):
    run, tmp = node_env
    result = run(corrupt=True)
    assert result.returncode == 1 and "checksum mismatch" in result.stderr
    assert not (tmp / "net.d" / "10-ipvlan.conflist").exists()


def test_ipvlan_node_script_refuses_a_conflist_for_another_subnet(node_env):
    run, tmp = node_env
    other = json.dumps({"plugins": [{"ipam": {"ranges": [[{"subnet": "10.20.1.0/24"}]]}}]})
    result = run(CNI_CONFLIST=other)
    assert result.returncode == 1 and "differs from ens5's subnet 10.20.0.0/24" in result.stderr
    assert not (tmp / "net.d" / "10-ipvlan.conflist").exists()
