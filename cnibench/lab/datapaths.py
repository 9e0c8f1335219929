"""The lab's datapath table: what each datapath builds and what it needs from the underlay.

``underlay_need`` uses the values of :class:`cnibench.variants.Underlay` (the catalog's
enum) so the lab and the policy pack state the same L2 rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnibench.variants import CATALOG, Underlay  # the catalog states the underlay needs and overheads

L2 = Underlay.L2.value
L3 = Underlay.L3.value


@dataclass(frozen=True)
class Datapath:
    name: str
    description: str
    underlay_need: str  # L2 or L3
    encap_overhead: int  # bytes taken from the underlay MTU
    kernel_feature: str | None  # link kind that must exist ("vxlan", "ipip"...), None for none
    pods: str | None  # how pods are attached: "bridge" (CNI bridge), "ipvlan" (CNI ipvlan), None (host)
    like: str  # which real CNI setups use this datapath

    @property
    def needs_l2(self) -> bool:
        return self.underlay_need == L2


DATAPATHS: dict[str, Datapath] = {
    d.name: d
    for d in (
        Datapath("host", "node to node over the underlay, no pod network (the reference)", L3, 0, None, None,
                 "hostNetwork pods"),
        Datapath("host-gw", "pods on a bridge, route to the peer's pod range via its node IP", L2, 0, None, "bridge",
                 "flannel host-gw, kube-router without overlay, cilium native routing"),
        Datapath("vxlan", "pods on a bridge, vxlan device (VNI 1, udp 8472) with FDB and neighbour entries, MTU 1450",
                 L3, 50, "vxlan", "bridge", "flannel vxlan, cilium vxlan"),
        Datapath("ipip", "pods on a bridge, ipip device without remote, onlink routes via the peer node IP, MTU 1480",
                 L3, 20, "ipip", "bridge", "flannel ipip, kube-router overlay"),
        Datapath("geneve", "pods on a bridge, geneve device (VNI 1, udp 6081) to the peer node, MTU 1450", L3, 50,
                 "geneve", "bridge", "cilium geneve"),
        Datapath("ipvlan", "pods are ipvlan (L2 mode) slaves of the node NIC, routes via the peer node IP", L2, 0,
                 "ipvlan", "ipvlan", "reference CNI ipvlan plugin"),
        # the catalog's overhead (flannel pkg/backend/wireguard/wireguard_network.go: 80 bytes)
        Datapath("wireguard", "pods on a bridge, wireguard device flannel-wg (udp 51820, a key pair per run) to the "
                 "peer node, MTU 1420", L3, CATALOG["flannel-wireguard"].encap_overhead, "wireguard", "bridge",
                 "flannel wireguard"),
    )
}

DEFAULT_DATAPATHS = tuple(DATAPATHS)


class L2AdjacencyError(RuntimeError):
    """The kernel refused a route whose gateway is not on-link: the datapath needs L2."""

    def __init__(self, datapath: str, detail: str):
        self.datapath = datapath
        super().__init__(
            f"{datapath} needs L2 adjacency (both nodes in the same subnet, "
            f"underlay '{L2}'): {detail}. Encapsulating datapaths (vxlan, ipip, geneve, wireguard) work "
            f"across subnets; run without --split-subnets to measure {datapath}."
        )


class KernelFeatureMissing(RuntimeError):
    """The running kernel cannot create the device this datapath needs."""

    def __init__(self, datapath: str, feature: str, detail: str):
        self.datapath = datapath
        self.feature = feature
        super().__init__(
            f"{datapath} skipped: the kernel cannot create '{feature}' devices ({detail}); it needs "
            f"{kconfig(feature)} (module {feature})"
        )


_KCONFIG = {"ipip": "NET_IPIP", "geneve": "GENEVE", "ipvlan": "IPVLAN", "vxlan": "VXLAN", "veth": "VETH",
            "bridge": "BRIDGE", "wireguard": "WIREGUARD", "dummy": "DUMMY"}


def kconfig(feature: str) -> str:
    """The kernel option that provides a link kind (``CONFIG_...``)."""
    return f"CONFIG_{_KCONFIG.get(feature, feature.upper())}"
