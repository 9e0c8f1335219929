"""Build one lab "cluster" per datapath: underlay, two nodes, two pods, datapath devices.

Layout (every box is a network namespace named ``cnb-<run>-<datapath>-<role>``)::

    pod p1 --(CNI)-- node n1 --veth-- [ ul: bridge br0 (one L2 segment) ] --veth-- node n2 --(CNI)-- pod p2

With ``split_subnets`` the underlay namespace ``ul`` holds two bridges, one per node,
and routes between them (a router): the nodes are in two subnets, reachable at L3 only.

Nothing is created in the root namespace and no namespace has a route to the outside.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from cnibench.lab import cni
from cnibench.lab.datapaths import DATAPATHS, Datapath, KernelFeatureMissing, L2AdjacencyError
from cnibench.lab.nsutil import NETNS_DIR, create_ns, ipr_in, ns_exec, ns_name, sysctl
from cnibench.variants import CATALOG

UNDERLAY_MTU = 1500
POD_CIDRS = ("10.244.1.0/24", "10.244.2.0/24")
VXLAN_PORT = 8472  # flannel's default
GENEVE_PORT = 6081
# flannel Documentation/backends.md, wireguard: "ListenPort ... Defaults to 51820" (the catalog's net-conf)
WG_PORT = int(CATALOG["flannel-wireguard"].datapath["Backend"]["ListenPort"])
WG_DEV = "flannel-wg"  # flannel's device name (pkg/backend/wireguard)


@dataclass(frozen=True)
class Addressing:
    split: bool

    @property
    def node_subnets(self) -> tuple[str, str]:
        return ("192.168.101.0/24", "192.168.102.0/24") if self.split else ("192.168.100.0/24",) * 2

    @property
    def node_ips(self) -> tuple[str, str]:
        return ("192.168.101.11", "192.168.102.12") if self.split else ("192.168.100.11", "192.168.100.12")

    @property
    def router_ips(self) -> tuple[str, str]:
        return ("192.168.101.1", "192.168.102.1")


def _ipr(ns: str) -> IPRoute:
    return ipr_in(ns)  # pyroute2 forks to open the socket in ns: stop signals held over the fork


def _idx(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise RuntimeError(f"link {ifname} not found")
    return found[0]


def _mac(ipr: IPRoute, ifname: str) -> str:
    return ipr.get_links(_idx(ipr, ifname))[0].get_attr("IFLA_ADDRESS")


# --------------------------------------------------------------------------- kernel features


def probe_kernel_feature(run_id: str, kind: str) -> str | None:
    """Try to create a ``kind`` device in a scratch namespace; return None if the kernel can,
    else a description of the failure."""
    ns = ns_name(run_id, "probe", kind)
    create_ns(ns)
    try:
        with _ipr(ns) as ipr:
            ipr.link("add", ifname="m0", kind="veth", peer={"ifname": "m1"})
            ipr.addr("add", index=_idx(ipr, "m0"), address="198.18.0.1", prefixlen=24)
            m0 = _idx(ipr, "m0")
            args: dict = {"ifname": "t0", "kind": kind}
            if kind == "vxlan":
                args.update(vxlan_id=1, vxlan_link=m0, vxlan_local="198.18.0.1", vxlan_port=VXLAN_PORT)
            elif kind == "ipip":
                args.update(ipip_local="198.18.0.1")
            elif kind == "geneve":
                args.update(geneve_id=1, geneve_remote="198.18.0.2", geneve_port=GENEVE_PORT)
            elif kind in ("ipvlan", "macvlan"):
                args.update(link=m0)
                if kind == "ipvlan":
                    args.update(ipvlan_mode=0)
            try:
                ipr.link("add", **args)
            except NetlinkError as exc:
                return f"creating a {kind} link failed: {exc.args[1] if len(exc.args) > 1 else exc} (errno {exc.code})"
        return None
    finally:
        from pyroute2 import netns

        netns.remove(ns)


# --------------------------------------------------------------------------- cluster


@dataclass
class Cluster:
    run_id: str
    datapath: Datapath
    state: Path
    split: bool = False
    namespaces: list[str] = field(default_factory=list)
    pod_ips: list[str] = field(default_factory=list)
    pod_confs: list[tuple[dict, str, str, str]] = field(default_factory=list)  # conf, node, pod, id

    def __post_init__(self) -> None:
        self.addr = Addressing(self.split)
        short = self.datapath.name
        self.ul = ns_name(self.run_id, short, "ul")
        self.nodes = (ns_name(self.run_id, short, "n1"), ns_name(self.run_id, short, "n2"))
        self.pods = (ns_name(self.run_id, short, "p1"), ns_name(self.run_id, short, "p2")) if self.datapath.pods else ()

    # what the measurement uses
    @property
    def client_ns(self) -> str:
        return self.pods[0] if self.pods else self.nodes[0]

    @property
    def server_ns(self) -> str:
        return self.pods[1] if self.pods else self.nodes[1]

    @property
    def server_ip(self) -> str:
        return self.pod_ips[1] if self.pods else self.addr.node_ips[1]

    @property
    def path(self) -> str:
        return "pod-to-pod" if self.pods else "node-to-node"

    @property
    def configured_mtu(self) -> int:
        return UNDERLAY_MTU - self.datapath.encap_overhead

    def _new_ns(self, name: str) -> None:
        create_ns(name)
        self.namespaces.append(name)

    # ------------------------------------------------------------------ underlay
    def build_underlay(self) -> None:
        a = self.addr
        self._new_ns(self.ul)
        for n in self.nodes:
            self._new_ns(n)
        # one IPRoute at a time: pyroute2 sockets must not be nested in one thread
        bridges = ("br1", "br2") if self.split else ("br0",)
        with _ipr(self.ul) as ul:
            for br in bridges:
                ul.link("add", ifname=br, kind="bridge")
                ul.link("set", index=_idx(ul, br), state="up", mtu=UNDERLAY_MTU)
            if self.split:
                for br, rip in zip(bridges, a.router_ips):
                    ul.addr("add", index=_idx(ul, br), address=rip, prefixlen=24)
        ul_fd = os.open(NETNS_DIR / self.ul, os.O_RDONLY)
        try:
            for i, node in enumerate(self.nodes):
                with _ipr(node) as nr:
                    nr.link("add", ifname="eth0", kind="veth", mtu=UNDERLAY_MTU,
                            peer={"ifname": f"n{i + 1}", "net_ns_fd": ul_fd, "mtu": UNDERLAY_MTU})
                    eth0 = _idx(nr, "eth0")
                    nr.addr("add", index=eth0, address=a.node_ips[i], prefixlen=24)
                    nr.link("set", index=eth0, state="up")
        finally:
            os.close(ul_fd)
        with _ipr(self.ul) as ul:
            for i in range(2):
                ul.link("set", index=_idx(ul, f"n{i + 1}"), master=_idx(ul, bridges[i if self.split else 0]),
                        state="up")
        if self.split:
            sysctl(self.ul, "net.ipv4.ip_forward", 1)
            for i, node in enumerate(self.nodes):
                peer_subnet = a.node_subnets[1 - i]
                with _ipr(node) as nr:
                    nr.route("add", dst=peer_subnet, gateway=a.router_ips[i])

    # ------------------------------------------------------------------ pods
    def _pod_ipam(self, i: int, gateway: bool) -> dict:
        net = ipaddress.ip_network(POD_CIDRS[i])
        return cni.host_local_ipam(
            str(net), self.state / "ipam",
            gateway=str(net.network_address + 1) if gateway else None,
            range_start=str(net.network_address + 2),
            routes=[{"dst": "0.0.0.0/0"}] if gateway else None,
        )

    def attach_pods(self) -> None:
        dp = self.datapath
        for i, (node, pod) in enumerate(zip(self.nodes, self.pods)):
            self._new_ns(pod)
            sysctl(node, "net.ipv4.ip_forward", 1)
            if dp.pods == "bridge":
                conf = cni.bridge_conf(f"cnb-{self.run_id}-{dp.name}", self._pod_ipam(i, True),
                                       mtu=self.configured_mtu)
            else:
                conf = cni.ipvlan_conf(f"cnb-{self.run_id}-{dp.name}", self._pod_ipam(i, False), master="eth0")
            cid = f"cnb{self.run_id}{dp.name.replace('-', '')}p{i + 1}"
            result = cni.add(conf, node_ns=node, pod_ns=pod, container_id=cid)
            self.pod_confs.append((conf, node, pod, cid))
            ips = result.get("ips") or []
            if not ips:
                raise cni.CNIError(f"CNI {conf['type']} returned no IP for {pod}: {result}")
            self.pod_ips.append(ips[0]["address"].split("/")[0])

    def release_pods(self) -> None:
        """CNI DEL for each pod (best effort: the namespaces are deleted anyway)."""
        for conf, node, pod, cid in reversed(self.pod_confs):
            try:
                cni.delete(conf, node_ns=node, pod_ns=pod, container_id=cid, timeout=10)
            except Exception:  # noqa: BLE001 - best-effort CNI DEL while tearing down; the namespace goes next
                pass
        self.pod_confs.clear()

    # ------------------------------------------------------------------ datapaths
    def _route_via_peer_node(self, ns: str, dst: str, gateway: str, dev: str, what: str) -> None:
        """Route ``dst`` via the peer node IP, without 'onlink': the kernel accepts it only if
        the gateway is directly reachable, i.e. the nodes share an L2 segment."""
        with _ipr(ns) as ipr:
            try:
                ipr.route("add", dst=dst, gateway=gateway, oif=_idx(ipr, dev))
            except NetlinkError as exc:
                if exc.code == errno.ENETUNREACH:
                    raise L2AdjacencyError(
                        self.datapath.name,
                        f"the kernel refused the {what} route {dst} via {gateway} dev {dev} in {ns} "
                        f"(Nexthop has invalid gateway, ENETUNREACH: {gateway} is not on-link)",
                    ) from exc
                raise

    def configure_datapath(self) -> None:
        dp = self.datapath.name
        a = self.addr
        if dp == "host":
            return
        if dp == "host-gw":
            for i, node in enumerate(self.nodes):
                self._route_via_peer_node(node, POD_CIDRS[1 - i], a.node_ips[1 - i], "eth0", "host-gw")
            return
        if dp == "ipvlan":
            for i, pod in enumerate(self.pods):
                with _ipr(pod) as pr:
                    # the pod sits on the node's L2 segment through the ipvlan slave
                    pr.route("add", dst=a.node_subnets[i], oif=_idx(pr, "eth0"), scope=253)
                self._route_via_peer_node(pod, POD_CIDRS[1 - i], a.node_ips[1 - i], "eth0", "ipvlan pod")
            return
        if dp == "vxlan":
            self._configure_vxlan()
        elif dp == "ipip":
            self._configure_ipip()
        elif dp == "geneve":
            self._configure_geneve()
        elif dp == "wireguard":
            self._configure_wireguard()
        else:  # pragma: no cover
            raise ValueError(f"unknown datapath {dp}")

    def _tunnel_addr(self, i: int) -> str:
        return str(ipaddress.ip_network(POD_CIDRS[i]).network_address)  # flannel: .0/32 on the tunnel device

    def _feature_error(self, exc: NetlinkError, kind: str) -> Exception:
        if exc.code in (errno.EOPNOTSUPP, errno.ENOTSUP):
            return KernelFeatureMissing(self.datapath.name, kind, f"Linux {os.uname().release}")
        return exc

    def _configure_vxlan(self) -> None:
        """As flannel's vxlan backend: flannel.1 (VNI 1, udp 8472, nolearning, MTU 1450),
        .0/32 on it, route to the peer pod range via the peer's .0 onlink, a permanent
        neighbour entry (peer .0 -> peer VTEP MAC) and an FDB entry (peer VTEP MAC -> peer node IP)."""
        a = self.addr
        macs = []
        for i, node in enumerate(self.nodes):
            with _ipr(node) as nr:
                try:
                    nr.link("add", ifname="flannel.1", kind="vxlan", vxlan_id=1, vxlan_local=a.node_ips[i],
                            vxlan_link=_idx(nr, "eth0"), vxlan_port=VXLAN_PORT, vxlan_learning=0,
                            mtu=self.configured_mtu)
                except NetlinkError as exc:
                    raise self._feature_error(exc, "vxlan") from exc
                idx = _idx(nr, "flannel.1")
                nr.addr("add", index=idx, address=self._tunnel_addr(i), prefixlen=32)
                nr.link("set", index=idx, state="up")
                macs.append(_mac(nr, "flannel.1"))
        for i, node in enumerate(self.nodes):
            peer = 1 - i
            with _ipr(node) as nr:
                idx = _idx(nr, "flannel.1")
                nr.neigh("add", dst=self._tunnel_addr(peer), lladdr=macs[peer], ifindex=idx, state="permanent")
                nr.fdb("add", ifindex=idx, lladdr=macs[peer], dst=a.node_ips[peer])
                nr.route("add", dst=POD_CIDRS[peer], gateway=self._tunnel_addr(peer), oif=idx, flags=4)  # RTNH_F_ONLINK

    def _configure_ipip(self) -> None:
        """As flannel's ipip backend: an ipip device with only a local address; routes to the
        peer pod range via the peer node IP, onlink, through the tunnel (MTU 1480)."""
        a = self.addr
        for i, node in enumerate(self.nodes):
            with _ipr(node) as nr:
                try:
                    nr.link("add", ifname="flannel.ipip", kind="ipip", ipip_local=a.node_ips[i],
                            ipip_link=_idx(nr, "eth0"), mtu=self.configured_mtu)
                except NetlinkError as exc:
                    raise self._feature_error(exc, "ipip") from exc
                idx = _idx(nr, "flannel.ipip")
                nr.addr("add", index=idx, address=self._tunnel_addr(i), prefixlen=32)
                nr.link("set", index=idx, state="up")
                nr.route("add", dst=POD_CIDRS[1 - i], gateway=a.node_ips[1 - i], oif=idx, flags=4)

    def _configure_geneve(self) -> None:
        """A geneve device (VNI 1, udp 6081) to the peer node, MTU 1450; addressed like
        flannel.1 with a permanent neighbour entry for the peer's tunnel address."""
        a = self.addr
        macs = []
        for i, node in enumerate(self.nodes):
            with _ipr(node) as nr:
                try:
                    nr.link("add", ifname="gnv0", kind="geneve", geneve_id=1, geneve_remote=a.node_ips[1 - i],
                            geneve_port=GENEVE_PORT, mtu=self.configured_mtu)
                except NetlinkError as exc:
                    raise self._feature_error(exc, "geneve") from exc
                idx = _idx(nr, "gnv0")
                nr.addr("add", index=idx, address=self._tunnel_addr(i), prefixlen=32)
                nr.link("set", index=idx, state="up")
                macs.append(_mac(nr, "gnv0"))
        for i, node in enumerate(self.nodes):
            peer = 1 - i
            with _ipr(node) as nr:
                idx = _idx(nr, "gnv0")
                nr.neigh("add", dst=self._tunnel_addr(peer), lladdr=macs[peer], ifindex=idx, state="permanent")
                nr.route("add", dst=POD_CIDRS[peer], gateway=self._tunnel_addr(peer), oif=idx, flags=4)

    def _wg_keypair(self, i: int) -> tuple[Path, str]:
        """A fresh private key (file, mode 0600, in the run's state directory) and its public key."""
        def wg(*args: str, stdin: str | None = None) -> str:
            p = subprocess.run(["wg", *args], input=stdin, capture_output=True, text=True, timeout=10)
            if p.returncode != 0:
                raise RuntimeError(f"wg {args[0]} failed: {p.stderr.strip()}")
            return p.stdout.strip()

        private = wg("genkey")
        keydir = self.state / "wireguard"
        keydir.mkdir(mode=0o700, exist_ok=True)
        path = keydir / f"{self.datapath.name}-n{i + 1}.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(private + "\n")
        return path, wg("pubkey", stdin=private + "\n")

    def _configure_wireguard(self) -> None:
        """As flannel's wireguard backend (pkg/backend/wireguard/device.go): a wireguard device
        flannel-wg per node, MTU 1500 - 80, the node's .0/32 on it, one peer per other node
        (its public key, endpoint <node IP>:51820, allowed IPs its pod range), a route via the
        device (flannel routes its whole network; here the peer's pod range). Keys are made per
        run with ``wg genkey``, as flannel generates one when /run/flannel/wgkey does not exist."""
        if shutil.which("wg") is None:
            raise RuntimeError("'wg' not found: install the Debian package wireguard-tools "
                               "(apt-get install wireguard-tools)")
        a = self.addr
        keys = [self._wg_keypair(i) for i in range(2)]
        for i, node in enumerate(self.nodes):
            with _ipr(node) as nr:
                try:
                    nr.link("add", ifname=WG_DEV, kind="wireguard", mtu=self.configured_mtu)
                except NetlinkError as exc:
                    raise self._feature_error(exc, "wireguard") from exc
                nr.addr("add", index=_idx(nr, WG_DEV), address=self._tunnel_addr(i), prefixlen=32)
        for i, node in enumerate(self.nodes):
            peer = 1 - i
            argv = ns_exec(node, ["wg", "set", WG_DEV, "listen-port", str(WG_PORT), "private-key", str(keys[i][0]),
                                  "peer", keys[peer][1], "endpoint", f"{a.node_ips[peer]}:{WG_PORT}",
                                  "allowed-ips", f"{POD_CIDRS[peer]},{self._tunnel_addr(peer)}/32"])
            p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            if p.returncode != 0:
                raise RuntimeError(f"wg set {WG_DEV} in {node} failed: {p.stderr.strip()}")
            with _ipr(node) as nr:
                idx = _idx(nr, WG_DEV)
                nr.link("set", index=idx, state="up")
                nr.route("add", dst=POD_CIDRS[peer], oif=idx, scope=253)  # scope link, as flannel's route

    # ------------------------------------------------------------------ all
    def build(self) -> None:
        self.build_underlay()
        if self.pods:
            self.attach_pods()
        self.configure_datapath()


def datapath(name: str) -> Datapath:
    try:
        return DATAPATHS[name]
    except KeyError:
        raise ValueError(f"unknown datapath {name!r}; known: {', '.join(DATAPATHS)}") from None
