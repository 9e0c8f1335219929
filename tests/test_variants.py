from __future__ import annotations

import dataclasses
import re

import pytest

from cnibench.variants import (
    CATALOG,
    IamScope,
    InstallMethod,
    PortRule,
    Underlay,
    UnknownVariantError,
    get_variant,
    parse_kernel,
    thaw,
)

DESIGN_VARIANTS = {
    "flannel-vxlan", "flannel-host-gw", "flannel-ipip", "flannel-wireguard", "flannel-aws-vpc",
    "kube-router-overlay", "kube-router-native", "kube-router-proxy",
    "cilium-vxlan", "cilium-geneve", "cilium-native", "cilium-native-kpr", "cilium-eni", "ipvlan",
}
# The variants whose nodes must share one L2 segment (pod routes point at the peer node's address,
# which must be on-link): flannel host-gw (Documentation/backends.md @ v0.28.9: "Requires direct
# layer2 connectivity between hosts running flannel"); kube-router without an overlay
# (docs/user-guide.md, --enable-overlay: when false no tunnelling is used and the routing
# infrastructure is expected to route pod traffic between nodes in different subnets, which a VPC
# does not); cilium native routing with autoDirectNodeRoutes (chart values: "Enable installation of
# PodCIDR routes between worker nodes if worker nodes share a common L2 network segment"); ipvlan
# l2 on the node's own subnet (Linux Documentation/networking/ipvlan.rst, "4.1 L2 mode").
L2_VARIANTS = {"flannel-host-gw", "kube-router-native", "kube-router-proxy", "cilium-native",
               "cilium-native-kpr", "ipvlan"}

# The pinned release of each variant's CNI, written out (not read from the catalog):
# - flannel: tag v0.28.9 of flannel-io/flannel (Documentation/kube-flannel.yml there runs
#   ghcr.io/flannel-io/flannel:v0.28.9); aws-vpc: v0.19.2, the last tag with backend/awsvpc
#   (present at v0.19.2, absent at v0.20.0).
# - kube-router: tag v2.11.1 of cloudnativelabs/kube-router.
# - cilium: chart cilium 1.18.12 from https://helm.cilium.io/ (tests/data/cilium-chart-1.18.12-keys.txt).
# - ipvlan: the reference plugins, tag v1.9.1 of containernetworking/plugins, whose
#   .github/workflows/release.yaml names each tarball cni-plugins-linux-<goarch>-<tag>.tgz.
FLANNEL, FLANNEL_AWS_VPC, KUBE_ROUTER, CILIUM_CHART, CNI_PLUGINS = "v0.28.9", "v0.19.2", "v2.11.1", "1.18.12", "v1.9.1"
RELEASES = {
    "flannel-vxlan": FLANNEL, "flannel-host-gw": FLANNEL, "flannel-ipip": FLANNEL, "flannel-wireguard": FLANNEL,
    "flannel-aws-vpc": FLANNEL_AWS_VPC,
    "kube-router-overlay": KUBE_ROUTER, "kube-router-native": KUBE_ROUTER, "kube-router-proxy": KUBE_ROUTER,
    "cilium-vxlan": CILIUM_CHART, "cilium-geneve": CILIUM_CHART, "cilium-native": CILIUM_CHART,
    "cilium-native-kpr": CILIUM_CHART, "cilium-eni": CILIUM_CHART,
    "ipvlan": CNI_PLUGINS,
}

# The oldest kernel each variant runs on, with where that minimum comes from:
# - VXLAN: the Linux vxlan driver (torvalds/linux d342894c5d2f "vxlan: virtual extensible lan")
#   first shipped in Linux 3.7 (kernelnewbies.org/Linux_3.7, "Virtual extensible LAN tunneling protocol").
# - WireGuard: in-tree since Linux 5.6; flannel Documentation/backends.md @ v0.28.9: "Users of
#   kernels < 5.6 need to install an additional Wireguard package".
# - host-gw, ipip, aws-vpc: flannel states no minimum (backends.md @ v0.28.9, v0.19.2); 3.10 is
#   the catalog's own floor.
# - kube-router: no minimum stated either (docs/user-guide.md @ v2.11.1; docs/troubleshoot.md
#   "Required Kernel Modules": xt_set, ip_vs, ip_vs_rr, ip_vs_wrr, ip_vs_sh, ip_set,
#   br_netfilter); 4.19 is the catalog's own floor (the oldest LTS kernel still supported by the
#   distributions the cluster is built on).
# - cilium 1.18: Documentation/operations/system_requirements.rst, "Linux kernel >= 5.10 or
#   equivalent" (raised from 5.4 for v1.18 by cilium/cilium#38308).
# - ipvlan: the ipvlan driver (torvalds/linux 2ad7bf363841 "ipvlan: Initial check-in of the
#   IPVLAN driver") first shipped in Linux 3.19.
MIN_KERNELS = {
    "flannel-vxlan": (3, 7), "flannel-host-gw": (3, 10), "flannel-ipip": (3, 10), "flannel-wireguard": (5, 6),
    "flannel-aws-vpc": (3, 10),
    "kube-router-overlay": (4, 19), "kube-router-native": (4, 19), "kube-router-proxy": (4, 19),
    "cilium-vxlan": (5, 10), "cilium-geneve": (5, 10), "cilium-native": (5, 10), "cilium-native-kpr": (5, 10),
    "cilium-eni": (5, 10),
    "ipvlan": (3, 19),
}

# The bytes each variant's datapath adds to every packet between the nodes (written out, not read
# from the catalog):
# - flannel, flannel-io/flannel @ v0.28.9: pkg/backend/vxlan/vxlan_network.go encapOverhead = 50;
#   pkg/backend/ipip/ipip.go MTU - 20; pkg/backend/wireguard/wireguard_network.go overhead = 80
#   (room for an IPv6 outer header, as wg-quick allows); host-gw and aws-vpc (v0.19.2) only route.
# - kube-router v2.11.1 --overlay-encap=ipip: IP-in-IP adds one outer IPv4 header, 20 bytes (RFC
#   2003 section 3.1); native and proxy do not tunnel pod traffic (the proxy's DSR services use
#   IP-in-IP, docs/dsr.md, but pod-to-pod traffic does not).
# - cilium: cilium/cilium pkg/mtu/mtu.go TunnelOverheadIPv4 = 50 (outer IPv4 20 + UDP 8 +
#   VXLAN/Geneve 8 + inner Ethernet 14; TunnelOverhead in older releases), subtracted for either
#   tunnel protocol (DsrTunnelOverhead only with Geneve DSR, which no variant enables); native
#   routing and ENI IPAM add nothing.
# - ipvlan: an ipvlan slave sends the pod's own packets on the master (Linux
#   Documentation/networking/ipvlan.rst): nothing added.
ENCAP_OVERHEAD = {
    "flannel-vxlan": 50, "flannel-host-gw": 0, "flannel-ipip": 20, "flannel-wireguard": 80, "flannel-aws-vpc": 0,
    "kube-router-overlay": 20, "kube-router-native": 0, "kube-router-proxy": 0,
    "cilium-vxlan": 50, "cilium-geneve": 50, "cilium-native": 0, "cilium-native-kpr": 0, "cilium-eni": 0,
    "ipvlan": 0,
}
# The pod MTU on the VPC's underlay of 9001 bytes (EC2 User Guide, "Network maximum transmission
# unit (MTU) for your EC2 instance", "Jumbo frames (9001 MTU)": all current generation instance
# types support them; Pulumi.yaml's underlayMtu default), written out: 9001 minus the overhead above.
POD_MTU_9001 = {
    "flannel-vxlan": 8951, "flannel-host-gw": 9001, "flannel-ipip": 8981, "flannel-wireguard": 8921,
    "flannel-aws-vpc": 9001,
    "kube-router-overlay": 8981, "kube-router-native": 9001, "kube-router-proxy": 9001,
    "cilium-vxlan": 8951, "cilium-geneve": 8951, "cilium-native": 9001, "cilium-native-kpr": 9001,
    "cilium-eni": 9001,
    "ipvlan": 9001,
}

# The variants whose CNI replaces kube-proxy, so kubeadm skips its addon/kube-proxy phase: cilium
# with kubeProxyReplacement=true (cilium Documentation/network/kubernetes/kubeproxy-free.rst,
# "Quick-Start": "kubeadm init --skip-phases=addon/kube-proxy", then the chart with
# kubeProxyReplacement=true, k8sServiceHost and k8sServicePort), and kube-router with
# --run-service-proxy=true (docs/user-guide.md: "Enables Service Proxy -- sets up IPVS for
# Kubernetes Services", the section "trying kube-router as alternative to kube-proxy").
REPLACES_KUBE_PROXY = {"cilium-native-kpr", "kube-router-proxy"}

# The variants whose CNI reads instance metadata with a client that predates IMDSv2 session tokens:
# flannel v0.19.2 (aws-vpc) pins github.com/aws/aws-sdk-go v1.15.11 in its go.mod, whose
# ec2metadata client learned tokens only in aws/aws-sdk-go PR #2958 (2019-11-19).
NEEDS_IMDSV1 = {"flannel-aws-vpc"}

# Which local-lab datapath (cnibench/lab/datapaths.py; the table in cnibench/lab/README.md) stands
# in for each variant: the same packets on the wire between the nodes. None: the lab has no
# equivalent (no WireGuard datapath; ENI IPAM needs AWS).
LAB_DATAPATHS = {
    "flannel-vxlan": "vxlan", "flannel-host-gw": "host-gw", "flannel-ipip": "ipip", "flannel-wireguard": "wireguard",
    "flannel-aws-vpc": "host-gw",  # one route per node's pod range, via the node: what host-gw does
    "kube-router-overlay": "ipip", "kube-router-native": "host-gw", "kube-router-proxy": "host-gw",
    "cilium-vxlan": "vxlan", "cilium-geneve": "geneve", "cilium-native": "host-gw", "cilium-native-kpr": "host-gw",
    "cilium-eni": None,
    "ipvlan": "ipvlan",
}


def test_catalog_covers_the_design_table():
    assert set(CATALOG) == DESIGN_VARIANTS


@pytest.mark.parametrize("name", sorted(DESIGN_VARIANTS))
def test_record_is_complete(name):
    v = CATALOG[name]
    assert v.name == name
    assert v.cni in {"flannel", "kube-router", "cilium", "ipvlan"}
    assert v.cni_version and v.install.source.startswith("https://")
    assert isinstance(v.underlay, Underlay)
    assert all(isinstance(p, PortRule) for p in v.ports)
    assert v.min_kernel >= (3, 7)
    assert v.pod_mtu(9001) == POD_MTU_9001[name]
    assert v.pod_mtu(1500) == 1500 - ENCAP_OVERHEAD[name]
    if v.install.method is InstallMethod.HELM:
        assert v.install.chart and v.install.source == "https://helm.cilium.io/"


def test_underlay_requirements_match_the_design():
    assert {n for n, v in CATALOG.items() if v.needs_l2} == L2_VARIANTS
    assert CATALOG["flannel-aws-vpc"].underlay is Underlay.VPC_ROUTES
    assert CATALOG["cilium-eni"].underlay is Underlay.ENI
    # every direct-routing variant, and aws-vpc, needs the EC2 source/dest check off
    for name in L2_VARIANTS - {"ipvlan"} | {"flannel-aws-vpc"}:
        assert CATALOG[name].source_dest_check_off, name
    for name in ("flannel-vxlan", "cilium-vxlan", "cilium-geneve"):
        assert not CATALOG[name].source_dest_check_off, name
    # kube-router's overlay sends pod -> node traffic outside the tunnel, unmasqueraded
    # (pod_egress.go excludes the node IPs): its nodes forward pod-CIDR sources too
    overlay = CATALOG["kube-router-overlay"]
    assert overlay.source_dest_check_off and overlay.pod_source_to_nodes


def test_encapsulation_facts():
    assert {n: v.encap_overhead for n, v in CATALOG.items()} == ENCAP_OVERHEAD
    assert {n: 9001 - o for n, o in ENCAP_OVERHEAD.items()} == POD_MTU_9001  # the two tables agree
    labels = {n: {p.label for p in v.ports} for n, v in CATALOG.items()}
    assert "udp/8472" in labels["flannel-vxlan"] and "udp/8472" in labels["cilium-vxlan"]
    assert "udp/6081" in labels["cilium-geneve"]
    assert "ip-proto/4" in labels["flannel-ipip"] and "ip-proto/4" in labels["kube-router-overlay"]
    assert "tcp/179" in labels["kube-router-native"]
    assert "udp/51820" in labels["flannel-wireguard"]
    assert all("tcp/4240" in labels[n] for n in CATALOG if n.startswith("cilium"))


def test_kube_proxy_replacement_and_iam():
    assert {n for n, v in CATALOG.items() if v.replaces_kube_proxy} == REPLACES_KUBE_PROXY
    assert {n for n, v in CATALOG.items() if v.needs_imdsv1} == NEEDS_IMDSV1
    assert "ec2:CreateRoute" in CATALOG["flannel-aws-vpc"].iam_actions
    assert "ec2:CreateNetworkInterface" in CATALOG["cilium-eni"].iam_actions


def test_the_tables_cover_every_variant():
    assert set(RELEASES) == set(MIN_KERNELS) == set(LAB_DATAPATHS) == DESIGN_VARIANTS
    assert set(ENCAP_OVERHEAD) == set(POD_MTU_9001) == DESIGN_VARIANTS


def test_every_variant_pins_its_release():
    assert {n: v.cni_version for n, v in CATALOG.items()} == RELEASES


def test_the_cni_plugins_release_is_the_pinned_tarball():
    install = CATALOG["ipvlan"].install
    assert install.method is InstallMethod.NODE_CONFIG and install.version == "v1.9.1"
    # "{arch}" stays for the installer to fill in with the nodes' architecture
    assert install.source == ("https://github.com/containernetworking/plugins/releases/download/v1.9.1/"
                              "cni-plugins-linux-{arch}-v1.9.1.tgz")


def test_every_variant_states_its_kernel_minimum():
    assert {n: v.min_kernel for n, v in CATALOG.items()} == MIN_KERNELS


def test_every_variant_maps_to_its_lab_datapath():
    from cnibench.lab.datapaths import DATAPATHS

    assert {n: v.lab_datapath for n, v in CATALOG.items()} == LAB_DATAPATHS
    # each one a datapath the lab builds
    assert {d for d in LAB_DATAPATHS.values() if d} <= set(DATAPATHS)


def test_kube_router_overlay_tunnels_inside_one_subnet():
    args = CATALOG["kube-router-overlay"].datapath["args"]
    assert "--enable-overlay=true" in args and "--overlay-type=full" in args
    assert "--run-service-proxy=true" in CATALOG["kube-router-proxy"].datapath["args"]


def test_records_are_immutable():
    v = CATALOG["cilium-native"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.encap_overhead = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        v.datapath["values"]["routingMode"] = "tunnel"  # type: ignore[index]
    values = thaw(v.datapath["values"])
    values["routingMode"] = "tunnel"  # a thawed copy is the caller's own
    assert v.datapath["values"]["routingMode"] == "native"


def test_unknown_variant_lists_the_valid_ones():
    with pytest.raises(UnknownVariantError) as err:
        get_variant("calico")
    text = str(err.value)
    assert "calico" in text and "cnibench:variant" in text
    for name in DESIGN_VARIANTS:
        assert name in text


def test_port_rules_validate_their_shape():
    with pytest.raises(ValueError):
        PortRule("tcp")
    with pytest.raises(ValueError):
        PortRule("4", 1, 2)
    assert PortRule("udp", 30000, 32767).label == "udp/30000-32767"


def test_pod_mtu_refuses_an_impossible_underlay():
    with pytest.raises(ValueError, match="underlay MTU"):
        CATALOG["flannel-wireguard"].pod_mtu(600)


def test_kernel_versions():
    assert parse_kernel("6.8.0-1016-aws") == (6, 8)
    assert parse_kernel("5.15.0") == (5, 15)
    assert CATALOG["flannel-wireguard"].kernel_ok("5.6.0") and not CATALOG["flannel-wireguard"].kernel_ok("5.4.0-1")
    with pytest.raises(ValueError):
        parse_kernel("linux")


def test_pod_addressing_follows_underlay_and_encapsulation():
    from cnibench.variants import PodAddressing

    got = {name: v.pod_addressing for name, v in CATALOG.items()}
    assert got["cilium-eni"] is got["ipvlan"] is PodAddressing.VPC
    assert {n for n, a in got.items() if a is PodAddressing.POD_CIDR} == {
        "flannel-host-gw", "flannel-aws-vpc", "kube-router-native", "kube-router-proxy", "cilium-native", "cilium-native-kpr",
    }
    for name, addressing in got.items():
        assert (addressing is PodAddressing.ENCAPSULATED) == (ENCAP_OVERHEAD[name] > 0), name


# The prefix cilium gives every endpoint's host-side interface: cilium/cilium
# pkg/datapath/connector, HostInterfacePrefix = "lxc" (Endpoint2IfName names it lxc<hash>). The
# program's kube-proxy local-traffic detection by interface (detectLocalMode InterfaceNamePrefix,
# cnibench/program/cluster.py) relies on it for cilium-eni's VPC-addressed pods.
CILIUM_HOST_INTERFACE_PREFIX = "lxc"
CILIUM_VARIANTS = {"cilium-vxlan", "cilium-geneve", "cilium-native", "cilium-native-kpr", "cilium-eni"}


def test_cilium_variants_name_the_host_side_interface_prefix():
    assert {n for n, v in CATALOG.items() if v.cni == "cilium"} == CILIUM_VARIANTS
    assert {n: CATALOG[n].pod_host_interface_prefix for n in CILIUM_VARIANTS} == dict.fromkeys(
        CILIUM_VARIANTS, CILIUM_HOST_INTERFACE_PREFIX)


# The tunnel each encapsulating variant's summary must name, from its datapath setting: flannel
# Documentation/backends.md @ v0.28.9 backend types vxlan, ipip, wireguard; kube-router
# docs/user-guide.md @ v2.11.1 --overlay-encap=ipip (IP-in-IP); cilium chart 1.18.12 values.yaml
# tunnelProtocol vxlan / geneve.
SUMMARY_TUNNEL = {
    "flannel-vxlan": "VXLAN", "flannel-ipip": "IP-in-IP", "flannel-wireguard": "WireGuard",
    "kube-router-overlay": "IP-in-IP", "cilium-vxlan": "VXLAN", "cilium-geneve": "Geneve",
}
# The UDP port the flannel summaries state (flannel Documentation/backends.md: vxlan "Port ...
# Defaults to 8472"; wireguard "ListenPort ... Defaults to 51820").
SUMMARY_PORT = {"flannel-vxlan": "udp 8472", "flannel-wireguard": "udp 51820"}


def test_every_variant_has_a_summary_that_names_its_tunnel_and_ports():
    # the tunnels are exactly the encapsulating variants of the overhead table
    assert set(SUMMARY_TUNNEL) == {n for n, o in ENCAP_OVERHEAD.items() if o > 0}
    for name, v in CATALOG.items():
        assert v.summary.strip(), name
        if name in SUMMARY_TUNNEL:
            assert SUMMARY_TUNNEL[name] in v.summary, (name, v.summary)
        if name in SUMMARY_PORT:
            assert SUMMARY_PORT[name] in v.summary, (name, v.summary)
        # a port a summary names is one the variant's nodes must admit
        for port in re.findall(r"udp (\d+)", v.summary):
            assert f"udp/{port}" in {p.label for p in v.ports}, (name, v.summary)
        # the variants that replace kube-proxy say so, and only they
        assert ("kube-proxy" in v.summary) == (name in REPLACES_KUBE_PROXY), (name, v.summary)
    assert len({v.summary for v in CATALOG.values()}) == len(CATALOG)  # one description each


# Ubuntu 24.04 LTS, the nodes' image (cnibench/config.py: the latest Ubuntu 24.04 AMI), ships Linux
# 6.8 (Ubuntu 24.04 LTS release notes, "Linux kernel"), a release in Canonical's form.
UBUNTU_2404_KERNEL = "6.8.0-1016-aws"


@pytest.mark.parametrize("name", sorted(DESIGN_VARIANTS))
def test_kernel_check_accepts_the_minimum_and_newer_and_refuses_older(name):
    v = CATALOG[name]
    major, minor = MIN_KERNELS[name]
    assert v.kernel_ok(f"{major}.{minor}.0") and v.kernel_ok((major, minor))
    assert v.kernel_ok(f"{major}.{minor + 1}.0-1-generic") and v.kernel_ok(f"{major + 1}.0.0")
    assert v.kernel_ok(UBUNTU_2404_KERNEL)
    older = (major, minor - 1) if minor else (major - 1, 99)
    assert not v.kernel_ok(older) and not v.kernel_ok(f"{older[0]}.{older[1]}.0")


def test_iam_scopes_outside_iam_actions_are_refused_naming_each_action():
    base = CATALOG["flannel-aws-vpc"]
    with pytest.raises(ValueError) as err:
        dataclasses.replace(base, iam_actions=("ec2:DescribeInstances",),
                            iam_scopes={"ec2:DeleteRoute": IamScope.ROUTE_TABLE, "ec2:CreateRoute": IamScope.ROUTE_TABLE})
    # every stray action, sorted, separated as a list
    assert str(err.value) == ("flannel-aws-vpc: iam_scopes names actions outside iam_actions: "
                              "ec2:CreateRoute, ec2:DeleteRoute")
