from __future__ import annotations

import dataclasses

import pytest

from cnibench.variants import (
    CATALOG,
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
L2_VARIANTS = {"flannel-host-gw", "kube-router-native", "kube-router-proxy", "cilium-native",
               "cilium-native-kpr", "ipvlan"}


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
    assert v.pod_mtu(9001) == 9001 - v.encap_overhead
    assert v.pod_mtu(1500) == 1500 - v.encap_overhead
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
    overhead = {n: v.encap_overhead for n, v in CATALOG.items()}
    assert overhead["flannel-vxlan"] == overhead["cilium-vxlan"] == overhead["cilium-geneve"] == 50
    assert overhead["flannel-ipip"] == overhead["kube-router-overlay"] == 20
    assert overhead["flannel-wireguard"] == 80
    assert overhead["flannel-host-gw"] == overhead["cilium-native"] == overhead["ipvlan"] == 0
    labels = {n: {p.label for p in v.ports} for n, v in CATALOG.items()}
    assert "udp/8472" in labels["flannel-vxlan"] and "udp/8472" in labels["cilium-vxlan"]
    assert "udp/6081" in labels["cilium-geneve"]
    assert "ip-proto/4" in labels["flannel-ipip"] and "ip-proto/4" in labels["kube-router-overlay"]
    assert "tcp/179" in labels["kube-router-native"]
    assert "udp/51820" in labels["flannel-wireguard"]
    assert all("tcp/4240" in labels[n] for n in CATALOG if n.startswith("cilium"))


def test_kube_proxy_replacement_and_versions():
    assert {n for n, v in CATALOG.items() if v.replaces_kube_proxy} == {"cilium-native-kpr", "kube-router-proxy"}
    assert CATALOG["flannel-aws-vpc"].cni_version == "v0.19.2"
    assert CATALOG["flannel-vxlan"].cni_version != "v0.19.2"
    assert "ec2:CreateRoute" in CATALOG["flannel-aws-vpc"].iam_actions
    assert "ec2:CreateNetworkInterface" in CATALOG["cilium-eni"].iam_actions
    assert CATALOG["flannel-wireguard"].min_kernel == (5, 6)


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
        assert (addressing is PodAddressing.ENCAPSULATED) == (CATALOG[name].encap_overhead > 0), name
