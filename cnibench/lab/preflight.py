"""Checks before a lab run: root, tools (naming the Debian package), CNI plugins."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from cnibench.lab import cni

# tool -> Debian package that provides it
TOOLS = {
    "ip": "iproute2",
    "iperf3": "iperf3",
    "nginx": "nginx-light",
    "sockperf": "sockperf",
    "wrk": "wrk",
    "nft": "nftables",
    "iptables": "iptables",
    "wg": "wireguard-tools",
    "ipvsadm": "ipvsadm",
}
# needed only where the kernel can build what they configure (checked after the kernel probes)
DATAPATH_TOOLS = {"wireguard": ("wg",)}
IPVS_TOOLS = ("ipvsadm",)
CNI_PLUGINS = ("bridge", "host-local", "ipvlan")


class PreflightError(RuntimeError):
    pass


def required_tools(*, latency: bool, service_proxy: str) -> list[str]:
    tools = ["ip", "iperf3"]
    if latency:
        tools += ["nginx", "sockperf", "wrk"]
    tools.append("nft" if service_proxy == "nft" else "iptables")
    return tools


def check(*, latency: bool = True, service_proxy: str = "nft", need_root: bool = True) -> None:
    problems: list[str] = []
    if need_root and os.geteuid() != 0:
        raise PreflightError(
            "cnibench lab needs root: it creates network namespaces, veth/bridge/vxlan devices and "
            "nft rules (inside its own namespaces). Run it as root, e.g. 'sudo .venv/bin/cnibench lab' "
            "(plain 'sudo cnibench' misses the virtualenv: sudo's secure_path replaces PATH)."
        )
    problems += _missing(required_tools(latency=latency, service_proxy=service_proxy))
    missing_cni = [p for p in CNI_PLUGINS if not os.access(Path(cni.CNI_PATH) / p, os.X_OK)]
    if missing_cni:
        problems.append(
            f"CNI plugins {', '.join(missing_cni)} not found in {cni.CNI_PATH}: install the Debian package "
            "containernetworking-plugins (apt-get install containernetworking-plugins)"
        )
    if not Path("/proc/self/ns/net").exists():
        problems.append("this kernel has no network namespaces (CONFIG_NET_NS)")
    if problems:
        raise PreflightError("cannot run the lab:\n  - " + "\n  - ".join(problems))


def _missing(tools: list[str]) -> list[str]:
    return [f"'{tool}' not found: install the Debian package {TOOLS[tool]} (apt-get install {TOOLS[tool]})"
            for tool in tools if shutil.which(tool) is None]


def check_feature_tools(datapaths: list[str], ipvs: bool) -> None:
    """The tools of the datapaths (and of the IPVS service path) this kernel can build: a
    wireguard datapath the kernel cannot make is skipped, and needs no ``wg``."""
    tools = [t for d in datapaths for t in DATAPATH_TOOLS.get(d, ())] + (list(IPVS_TOOLS) if ipvs else [])
    problems = _missing(list(dict.fromkeys(tools)))
    if problems:
        raise PreflightError("cannot run the lab:\n  - " + "\n  - ".join(problems))
