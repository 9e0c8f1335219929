"""The lab's service paths: a ClusterIP-like VIP in the client's node namespace, reached through

* kube-proxy's DNAT (nft, or iptables KUBE-* chains), VIP :data:`SERVICE_VIP`;
* kube-router's IPVS service proxy (``--ipvs``), VIP :data:`IPVS_VIP`.

Both forward TCP and UDP on the iperf3 port to the server pod (iperf3's UDP test keeps its TCP
control connection beside the datagrams). Everything lives in the node namespace and goes with it.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

from pyroute2.netlink.exceptions import NetlinkError

from cnibench.lab.datapaths import kconfig
from cnibench.lab.nsutil import ipr_in, ns_exec, sysctl
from cnibench.lab.topology import probe_kernel_feature

if TYPE_CHECKING:
    from cnibench.lab.topology import Cluster

SERVICE_VIP = "10.96.0.10"
IPVS_VIP = "10.96.0.11"  # a second ClusterIP: the two proxies never match each other's traffic
# kube-router pkg/controllers/proxy/network_services_controller.go: KubeDummyIf = "kube-dummy-if", the
# link every ClusterIP is assigned to (/32, scope link) so that the node accepts it as local
KUBE_DUMMY_IF = "kube-dummy-if"
PROTOCOLS = ("tcp", "udp")
IPVS_NO_KERNEL = ("IPVS service path skipped: the kernel has no IPVS ({detail}); kube-router's service proxy "
                  "needs CONFIG_IP_VS (modules ip_vs, ip_vs_rr) and " + kconfig("dummy") + " (module dummy) for "
                  "kube-dummy-if, and the Debian package ipvsadm")


def _run(argv: list[str], stdin: str | None, what: str) -> None:
    p = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError(f"{what} with {argv[4]} failed: {p.stderr.strip()}")


def _nft_rules(port: int, target: str) -> str:
    rules = "".join(f"    ip daddr {SERVICE_VIP} {proto} dport {port} counter dnat to {target}\n" for proto in PROTOCOLS)
    return ("table ip cnibench_svc {\n"
            "  chain prerouting {\n"
            "    type nat hook prerouting priority dstnat; policy accept;\n"
            f"{rules}"
            "  }\n"
            "  chain output {\n"
            "    type nat hook output priority -100; policy accept;\n"
            f"{rules}"
            "  }\n"
            "}\n")


def install_dnat(cluster: Cluster, port: int, proxy: str = "nft") -> str:
    """DNAT ``SERVICE_VIP:port`` (TCP and UDP) to the server pod in the client's node namespace,
    as kube-proxy does on every node (PREROUTING for pod traffic, OUTPUT for host traffic)."""
    node = cluster.nodes[0]
    target = f"{cluster.server_ip}:{port}"
    if proxy == "nft":
        _run(ns_exec(node, ["nft", "-f", "-"]), _nft_rules(port, target), "installing the service DNAT")
        return SERVICE_VIP
    rules: list[list[str]] = [["-N", "KUBE-SERVICES"], ["-N", "KUBE-SVC-CNIBENCH"], ["-N", "KUBE-SEP-CNIBENCH"],
                              ["-A", "PREROUTING", "-j", "KUBE-SERVICES"], ["-A", "OUTPUT", "-j", "KUBE-SERVICES"]]
    for proto in PROTOCOLS:
        rules.append(["-A", "KUBE-SERVICES", "-d", f"{SERVICE_VIP}/32", "-p", proto, "--dport", str(port),
                      "-j", "KUBE-SVC-CNIBENCH"])
    rules.append(["-A", "KUBE-SVC-CNIBENCH", "-j", "KUBE-SEP-CNIBENCH"])
    for proto in PROTOCOLS:
        rules.append(["-A", "KUBE-SEP-CNIBENCH", "-p", proto, "-j", "DNAT", "--to-destination", target])
    for args in rules:
        _run(ns_exec(node, ["iptables", "-w", "-t", "nat", *args]), None, "installing the service DNAT")
    return SERVICE_VIP


def probe_ipvs(run_id: str) -> str | None:
    """None if the kernel has IPVS and dummy links (what :func:`install_ipvs` needs), else the
    skip reason. IPVS: its generic netlink family (the kernel loads ip_vs on the look-up when it
    is a module); dummy: a link made in a scratch namespace."""
    from pyroute2 import IPVS

    problems = []
    try:
        IPVS().close()
    except NetlinkError as exc:
        problems.append(f"no IPVS generic netlink family: {exc.args[1] if len(exc.args) > 1 else exc} "
                        f"(errno {exc.code})")
    dummy = probe_kernel_feature(run_id, "dummy")
    if dummy:
        problems.append(dummy)
    return IPVS_NO_KERNEL.format(detail="; ".join(problems)) if problems else None


def install_ipvs(cluster: Cluster, port: int) -> str:
    """kube-router's service proxy in the client's node namespace: the VIP on kube-dummy-if, an
    IPVS virtual service per protocol (round robin) and the server pod as its real server with
    masquerade (NAT) forwarding, ipvsadm's ``-m``: kube-router adds endpoints with IPVS's NAT
    forwarding unless a service is annotated for DSR. net.ipv4.vs.conntrack=1 as kube-router's
    ensureIpvsConntrack (network_services_controller.go), so netfilter keeps seeing the flows."""
    node = cluster.nodes[0]
    with ipr_in(node) as ipr:
        ipr.link("add", ifname=KUBE_DUMMY_IF, kind="dummy")
        idx = ipr.link_lookup(ifname=KUBE_DUMMY_IF)[0]
        ipr.addr("add", index=idx, address=IPVS_VIP, prefixlen=32, scope=253)
        ipr.link("set", index=idx, state="up")
    vip = f"{IPVS_VIP}:{port}"
    real = f"{cluster.server_ip}:{port}"
    for flag in ("-t", "-u"):
        _run(ns_exec(node, ["ipvsadm", "-A", flag, vip, "-s", "rr"]), None, "adding the IPVS service")
        _run(ns_exec(node, ["ipvsadm", "-a", flag, vip, "-r", real, "-m"]), None, "adding the IPVS real server")
    sysctl(node, "net.ipv4.vs.conntrack", 1)
    return IPVS_VIP


class ServicePaths:
    """One cluster's service VIPs, installed on first use; a failed installation is reported
    again for every test that needs it (not retried)."""

    def __init__(self, cluster: Cluster, port: int, proxy: str):
        self.cluster, self.port, self.proxy = cluster, port, proxy
        self._done: dict[bool, str | Exception] = {}

    def vip(self, ipvs: bool) -> str:
        if ipvs not in self._done:
            try:
                self._done[ipvs] = (install_ipvs(self.cluster, self.port) if ipvs
                                    else install_dnat(self.cluster, self.port, self.proxy))
            except (RuntimeError, OSError, NetlinkError) as exc:
                self._done[ipvs] = exc
        done = self._done[ipvs]
        if isinstance(done, Exception):
            raise RuntimeError(str(done)) from done
        return done

    def describe(self, ipvs: bool) -> str:
        return ("IPVS masquerade (kube-router style, kube-dummy-if)" if ipvs
                else f"{self.proxy} DNAT (kube-proxy style)")
