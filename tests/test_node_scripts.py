"""The node scripts' own behaviour, run for real where this machine can: the pod-metadata block
that node-prereqs.sh installs, in two network namespaces with real iptables (root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

PREREQS = Path(__file__).resolve().parents[1] / "cnibench/program/scripts/node-prereqs.sh"
METADATA = "169.254.169.254"

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("iptables") is None, reason="needs root and iptables (network namespaces)"
)


def _installed_script() -> str:
    """The script node-prereqs.sh writes to /usr/local/sbin/cnibench-pod-metadata-block."""
    text = PREREQS.read_text()
    start = text.index("cat >/usr/local/sbin/cnibench-pod-metadata-block <<'SCRIPT'\n")
    body = text[start:].split("\n", 1)[1]
    return body[: body.index("\nSCRIPT\n") + 1]


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=30)


def _fetch(ns: str) -> subprocess.CompletedProcess:
    return _sh("ip", "netns", "exec", ns, "curl", "-s", "--noproxy", "*", "-m", "2", f"http://{METADATA}/", check=False)


@pytest.fixture
def node_and_pod():
    """Three namespaces as on EC2: "imds" holds the metadata address (an HTTP server) beyond the
    node's eth0, "node" routes to it, "pod" sits behind a veth with the node as its default
    route (the node forwards its packets, as it does a pod's)."""
    tag = f"imdsblk{os.getpid()}"
    imds, node, pod = f"{tag}-imds", f"{tag}-node", f"{tag}-pod"
    server = None
    try:
        for ns in (imds, node, pod):
            _sh("ip", "netns", "add", ns)
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
        _sh("ip", "-n", node, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", imds)
        _sh("ip", "-n", node, "link", "add", "veth-pod", "type", "veth", "peer", "name", "eth0", "netns", pod)
        for ns, dev, addr in ((node, "eth0", "10.0.0.10/24"), (imds, "eth0", f"{METADATA}/16"),
                              (node, "veth-pod", "10.244.0.1/24"), (pod, "eth0", "10.244.0.2/24")):
            _sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            _sh("ip", "-n", ns, "link", "set", dev, "up")
        _sh("ip", "-n", node, "route", "add", f"{METADATA}/32", "dev", "eth0")
        _sh("ip", "-n", imds, "route", "add", "10.0.0.0/24", "dev", "eth0")
        _sh("ip", "-n", imds, "route", "add", "10.244.0.0/24", "via", "10.0.0.10")
        _sh("ip", "-n", pod, "route", "add", "default", "via", "10.244.0.1")
        _sh("ip", "netns", "exec", node, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        server = subprocess.Popen(
            ["ip", "netns", "exec", imds, sys.executable, "-m", "http.server", "--bind", METADATA, "80"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for _ in range(50):
            if _fetch(node).returncode == 0:
                break
            time.sleep(0.1)
        yield node, pod
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        for ns in (pod, node, imds):
            _sh("ip", "netns", "delete", ns, check=False)


@needs_root
def test_metadata_block_drops_pod_traffic_and_keeps_the_nodes_own(node_and_pod, tmp_path):
    node, pod = node_and_pod
    script = tmp_path / "cnibench-pod-metadata-block"
    script.write_text(_installed_script())
    script.chmod(0o755)
    # without the rule both reach the service: the check below can tell a block from a broken setup
    assert _fetch(node).returncode == 0
    assert _fetch(pod).returncode == 0, _fetch(pod)
    for _ in range(2):  # idempotent: a second run (the unit after a reboot, a re-run) adds no rule
        _sh("ip", "netns", "exec", node, "sh", str(script))
    rules = _sh("ip", "netns", "exec", node, "iptables", "-t", "raw", "-S", "PREROUTING").stdout
    assert rules.count("cnibench-pod-metadata") == 1, rules
    assert f"-d {METADATA}/32" in rules and "-j DROP" in rules
    assert _fetch(pod).returncode != 0, "a pod still reaches the metadata service"
    assert _fetch(node).returncode == 0, "the node itself lost the metadata service"


def test_node_prereqs_installs_the_block_as_a_boot_unit():
    text = PREREQS.read_text()
    assert "systemctl enable --now cnibench-pod-metadata-block.service" in text
    assert "ExecStart=/usr/local/sbin/cnibench-pod-metadata-block" in text
    assert "Before=containerd.service kubelet.service" in text
    # iptables is installed before the unit runs it
    assert text.index("containerd iptables") < text.index("systemctl enable --now cnibench-pod-metadata-block")
