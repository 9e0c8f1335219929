"""The CNI of every variant, as the real program declares it under Pulumi's mocks.

Each test reads the resource inputs the engine received (stack_run: the shipped stack files)
and checks them against the settings written out below from the CNIs' own sources (not read from
the catalog) and the cluster's values.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from test_variants import ENCAP_OVERHEAD, POD_MTU_9001, RELEASES

from cnibench.mocks import OfflineRun
from cnibench.program.cni import INSTALLERS, flannel, kube_router, readiness
from cnibench.program.cni.base import SCRIPTS
from cnibench.variants import CATALOG
from tests.conftest import public_ip

DATA = Path(__file__).resolve().parent / "data"
ROOT = Path(__file__).resolve().parent.parent

# --- what each variant must set, from the CNIs' sources ----------------------------------------
# flannel Documentation/backends.md @ v0.28.9 (v0.19.2 for aws-vpc), "Type and options": vxlan VNI
# "defaults to 1", Port the kernel default 8472; wireguard ListenPort "Default is 51820"; aws-vpc
# gets RouteTableID (the stack's own table) filled in by the program.
FLANNEL_BACKENDS = {
    "flannel-vxlan": {"Type": "vxlan", "VNI": 1, "Port": 8472},
    "flannel-host-gw": {"Type": "host-gw"},
    "flannel-ipip": {"Type": "ipip"},
    "flannel-wireguard": {"Type": "wireguard", "ListenPort": 51820},
    "flannel-aws-vpc": {"Type": "aws-vpc"},
}
# How each variant is installed (the upstream's own way): flannel's Documentation/kube-flannel.yml
# (v0.28.9; v0.19.2 for aws-vpc) and kube-router's daemonset/generic-kuberouter-all-features.yaml
# (v2.11.1) as typed Kubernetes objects; cilium's Helm chart "cilium" from https://helm.cilium.io/;
# ipvlan, a plugin of containernetworking/plugins v1.9.1 with no Kubernetes objects of its own: the
# plugin binaries and a conflist written on each node.
INSTALL = {
    "flannel-vxlan": "manifest", "flannel-host-gw": "manifest", "flannel-ipip": "manifest",
    "flannel-wireguard": "manifest", "flannel-aws-vpc": "manifest",
    "kube-router-overlay": "manifest", "kube-router-native": "manifest", "kube-router-proxy": "manifest",
    "cilium-vxlan": "helm", "cilium-geneve": "helm", "cilium-native": "helm", "cilium-native-kpr": "helm",
    "cilium-eni": "helm",
    "ipvlan": "node-config",
}
# The variants without a pod-to-service path: ipvlan in l2 mode, whose slaves' packets never pass
# the node's netfilter hooks, so kube-proxy's ClusterIP DNAT never applies (Linux
# Documentation/networking/ipvlan.rst, "4.1 L2 mode", "4.3 L3S mode": only l3s passes
# netfilter/conntrack).
NO_SERVICE_PATH = {"ipvlan"}

# what flannel subtracts from the external MTU, flannel-io/flannel @ v0.28.9:
# pkg/backend/vxlan/vxlan_network.go encapOverhead = 50; pkg/backend/ipip/ipip.go MTU - 20;
# pkg/backend/wireguard/wireguard_network.go overhead = 80; routing backends nothing
FLANNEL_OVERHEAD = {"flannel-vxlan": 50, "flannel-host-gw": 0, "flannel-ipip": 20, "flannel-wireguard": 80,
                    "flannel-aws-vpc": 0}

# kube-router docs/user-guide.md @ v2.11.1: --run-router (iBGP pod routes), --run-firewall
# (network policy), --run-service-proxy (IPVS), --enable-overlay, --overlay-type subnet|full,
# --overlay-encap ipip|fou
KUBE_ROUTER_ARGS = {
    "kube-router-overlay": ["--run-router=true", "--run-firewall=true", "--run-service-proxy=false",
                            "--enable-overlay=true", "--overlay-type=full", "--overlay-encap=ipip"],
    "kube-router-native": ["--run-router=true", "--run-firewall=true", "--run-service-proxy=false",
                           "--enable-overlay=false"],
    "kube-router-proxy": ["--run-router=true", "--run-firewall=true", "--run-service-proxy=true",
                          "--enable-overlay=false"],
}

# Helm values of chart cilium 1.18.12 (install/kubernetes/cilium/values.yaml, keys in
# data/cilium-chart-1.18.12-keys.txt): routingMode "tunnel" | "native", tunnelProtocol "vxlan" |
# "geneve", autoDirectNodeRoutes (routes to the other nodes' pod ranges: needs L2), bpf.masquerade,
# kubeProxyReplacement the string "true" or "false" (values.yaml: 'Valid options are "true" or
# "false"'); ENI IPAM (Documentation/network/concepts/ipam/eni.rst): ipam.mode eni and, with
# Helm, eni.enabled=true; native routing explicit (an empty routingMode renders as tunnel).
CILIUM_VALUES = {
    "cilium-vxlan": {"routingMode": "tunnel", "tunnelProtocol": "vxlan", "kubeProxyReplacement": "false"},
    "cilium-geneve": {"routingMode": "tunnel", "tunnelProtocol": "geneve", "kubeProxyReplacement": "false"},
    "cilium-native": {"routingMode": "native", "autoDirectNodeRoutes": True, "kubeProxyReplacement": "false"},
    "cilium-native-kpr": {"routingMode": "native", "autoDirectNodeRoutes": True, "kubeProxyReplacement": "true",
                          "bpf": {"masquerade": True}},
    "cilium-eni": {"routingMode": "native", "eni": {"enabled": True}, "ipam": {"mode": "eni"},
                   "kubeProxyReplacement": "false"},
}
AUTO_DIRECT_NODE_ROUTES = {"cilium-native", "cilium-native-kpr"}

# The EC2 actions of cilium's operator in ENI IPAM mode: cilium
# Documentation/network/concepts/ipam/eni.rst, "Required Privileges". The copy at v1.18.12 itself
# could not be read (only copies of cilium/cilium's main branch are stored); the always-required
# list is the one of every copy from after cilium/cilium#36922 (DescribeInstanceTypes always) and
# #37229 (route-table-aware subnet selection: DescribeRouteTables), both merged for v1.18.
CILIUM_ENI_REQUIRED = {
    "ec2:DeleteNetworkInterface", "ec2:DescribeInstanceTypes", "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets", "ec2:DescribeVpcs", "ec2:DescribeRouteTables", "ec2:DescribeSecurityGroups",
    "ec2:CreateNetworkInterface", "ec2:AttachNetworkInterface", "ec2:ModifyNetworkInterfaceAttribute",
    "ec2:AssignPrivateIpAddresses", "ec2:CreateTags",
}
# granted by the catalog; the program enables ENI GC (the default) but sets neither
# --aws-release-excess-ips nor --instance-tags-filter
CILIUM_ENI_CONDITIONAL = {
    "ec2:DescribeTags",  # "If ENI GC is enabled (which is the default)"
    "ec2:UnassignPrivateIpAddresses",  # "If releasing excess IPs is enabled"
    "ec2:DescribeInstances",  # "If --instance-tags-filter is used"
}
# Not granted: ec2:DescribeManagedPrefixLists and ec2:GetManagedPrefixListEntries. Only the newest
# stored copy of eni.rst (cilium/cilium main @ 0e22bde581f1) lists them, added with
# cilium/cilium#45806 "feat: Support AWS prefix lists in Cilium policies" (opened 2026-05-06,
# merged into main after 2026-07-20, when #45805 still calls it in progress: a feature, not
# backported to v1.18), which
# resolves AWS prefix lists named in a policy's toGroups/fromGroups. A main copy newer than v1.18
# but without that PR (it already has the multi-pool based ENI allocator) lists neither, nor does
# any older copy; the program writes no such policy.
CILIUM_ENI_NOT_GRANTED = {"ec2:DescribeManagedPrefixLists", "ec2:GetManagedPrefixListEntries"}
CILIUM_ENI_IAM = CILIUM_ENI_REQUIRED | CILIUM_ENI_CONDITIONAL

# The EC2 source/destination check must be off where a node sends or receives packets whose
# addresses are not its own (EC2 API ModifyInstanceAttribute, SourceDestCheck: the checks "ensure
# that the instance is either the source or the destination of any traffic that it receives"):
# pod-CIDR routing (host-gw, aws-vpc, kube-router, cilium native; kube-router-overlay's pod -> node
# traffic leaves the tunnel unmasqueraded). ipvlan pods use the ENI's own secondary addresses, yet
# the policy issue asks for the check off on every direct-routing variant: off there too.
SOURCE_DEST_CHECK_OFF = {
    "flannel-host-gw", "flannel-aws-vpc", "kube-router-overlay", "kube-router-native", "kube-router-proxy",
    "cilium-native", "cilium-native-kpr", "ipvlan",
}

FLANNEL = sorted(FLANNEL_BACKENDS)
KUBE_ROUTER = sorted(KUBE_ROUTER_ARGS)
CILIUM = sorted(CILIUM_VALUES)

K8S_TYPED = ("kubernetes:core/", "kubernetes:apps/", "kubernetes:rbac.authorization.k8s.io/")


# --- helpers ---------------------------------------------------------------------------------
def k8s_objects(run: OfflineRun) -> list:
    return [r for r in run.resources if r.type.startswith(K8S_TYPED)]


def named(run: OfflineRun, kind: str) -> dict:
    """kind (e.g. "ConfigMap") -> the one object of that kind the CNI declared (inputs)."""
    found = [r for r in k8s_objects(run) if r.inputs.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind}, found {[r.name for r in found]}"
    return found[0].inputs


def instance(run: OfflineRun, role: str):
    found = [r for r in run.of_type("aws:ec2/instance:Instance") if r.inputs["tags"]["cnibench:role"] == role]
    assert len(found) == 1, role
    return found[0]


def env_of(create: str) -> dict[str, str]:
    """The ``K=V`` assignments of a ``sudo env K=V ... bash -s`` command line."""
    words = shlex.split(create.split("\n", 1)[0])
    assert words[:2] == ["sudo", "env"], create[:80]
    env = {}
    for word in words[2:]:
        if "=" not in word:
            break
        key, value = word.split("=", 1)
        env[key] = value
    return env


def host_of(command) -> str:
    """The SSH host of a remote command (the connection arrives wrapped as a secret)."""
    conn = command.inputs["connection"]
    conn = conn.get("value", conn) if "host" not in conn else conn
    return conn["host"]


def gate(run: OfflineRun):
    return run.one("command:remote:Command", "cni-ready")


# --- dispatch and the thin main ---------------------------------------------------------------
def test_every_catalog_cni_has_an_installer():
    assert {v.cni for v in CATALOG.values()} == set(INSTALLERS)


def test_the_tables_cover_every_variant_of_their_cni():
    for cni, table in (("flannel", FLANNEL_BACKENDS), ("kube-router", KUBE_ROUTER_ARGS), ("cilium", CILIUM_VALUES)):
        assert set(table) == {n for n, v in CATALOG.items() if v.cni == cni}, cni
    assert set(INSTALL) == set(CATALOG) and NO_SERVICE_PATH <= set(CATALOG)


def test_main_has_no_per_variant_branches():
    main = (ROOT / "cnibench" / "program" / "__init__.py").read_text()
    assert 'install_cni("cni", cfg, cluster, nodes, network)' in main
    for word in [*CATALOG, *INSTALLERS]:
        assert f'"{word}"' not in main and f"'{word}'" not in main, word


@pytest.mark.parametrize("stack", sorted(CATALOG))
def test_cni_output_names_the_install(stack_run, stack):
    run = stack_run(stack)
    out = run.outputs["cni"]
    assert out["variant"] == stack and out["version"] == RELEASES[stack]
    assert out["install"] == INSTALL[stack] == CATALOG[stack].install.method.value
    assert run.config["underlayMtu"] == 9001  # the shipped stacks run on the VPC's jumbo frames
    assert out["podMtu"] == POD_MTU_9001[stack]
    explicit = {"kube-router-overlay"}  # the only CNI whose own MTU computation differs
    assert (out["podMtuSetBy"].startswith(("--auto-mtu=false", "cni-conf", "MTU=", "conflist"))) is (stack in explicit)


# --- flannel ---------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", FLANNEL)
def test_flannel_net_conf_carries_the_backend(stack_run, stack):
    run = stack_run(stack)
    data = named(run, "ConfigMap")["data"]
    net = json.loads(data["net-conf.json"])
    assert net["Network"] == run.config["podCidr"] == "10.244.0.0/16"
    expected = dict(FLANNEL_BACKENDS[stack])
    if expected["Type"] == "aws-vpc":
        table = run.one("aws:ec2/routeTable:RouteTable")
        expected["RouteTableID"] = table.state["id"]
        assert net["Backend"]["RouteTableID"].startswith("routetable-")
    assert net["Backend"] == expected
    # flannel computes the pod MTU itself: its backend overhead is the catalog's and the program's
    assert flannel.FLANNEL_OVERHEAD[expected["Type"]] == CATALOG[stack].encap_overhead == FLANNEL_OVERHEAD[stack]
    cni = json.loads(data["cni-conf.json"])
    assert [p["type"] for p in cni["plugins"]] == ["flannel", "portmap"]
    assert "mtu" not in cni["plugins"][0]["delegate"]


def test_flannel_vxlan_backend_options(stack_run):
    net = json.loads(named(stack_run("flannel-vxlan"), "ConfigMap")["data"]["net-conf.json"])
    assert net["Backend"] == {"Type": "vxlan", "VNI": 1, "Port": 8472}
    assert net["EnableNFTables"] is False
    wg = json.loads(named(stack_run("flannel-wireguard"), "ConfigMap")["data"]["net-conf.json"])
    assert wg["Backend"] == {"Type": "wireguard", "ListenPort": 51820}


@pytest.mark.parametrize("stack", FLANNEL)
def test_flannel_daemonset_follows_the_pinned_manifest(stack_run, stack):
    run = stack_run(stack)
    version = RELEASES[stack]
    ds = named(run, "DaemonSet")
    assert ds["metadata"]["name"] == "kube-flannel-ds" and ds["metadata"]["namespace"] == "kube-flannel"
    pod = ds["spec"]["template"]["spec"]
    main = pod["containers"][0]
    assert main["image"].endswith(f"flannel:{version}")
    assert main["args"][:2] == ["--ip-masq", "--kube-subnet-mgr"]
    assert pod["hostNetwork"] is True and pod["serviceAccountName"] == "flannel"
    assert [c["name"] for c in pod["initContainers"]] == ["install-cni-plugin", "install-cni"]
    assert {v["name"]: v for v in pod["volumes"]}["flannel-cfg"]["configMap"]["name"] == "kube-flannel-cfg"
    assert named(run, "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    rules = named(run, "ClusterRole")["rules"]
    assert {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]} in rules


def test_flannel_aws_vpc_uses_the_last_release_with_that_backend(stack_run):
    ds = named(stack_run("flannel-aws-vpc"), "DaemonSet")
    main = ds["spec"]["template"]["spec"]["containers"][0]
    assert main["image"] == "docker.io/rancher/mirrored-flannelcni-flannel:v0.19.2"
    assert "--healthz-port=8081" not in main["args"]  # v0.19.2 has no health endpoint
    assert main["resources"]["limits"] == {"cpu": "100m", "memory": "50Mi"}
    net = json.loads(named(stack_run("flannel-aws-vpc"), "ConfigMap")["data"]["net-conf.json"])
    assert "EnableNFTables" not in net  # unknown to v0.19.2
    newest = named(stack_run("flannel-vxlan"), "DaemonSet")["spec"]["template"]["spec"]["containers"][0]
    assert newest["image"] == "ghcr.io/flannel-io/flannel:v0.28.9"


def test_flannel_unknown_release_is_refused():
    with pytest.raises(ValueError, match="v0.19.2, v0.28.9"):
        flannel.release_of("v0.20.0")


# --- kube-router -----------------------------------------------------------------------------
@pytest.mark.parametrize("stack", KUBE_ROUTER)
def test_kube_router_args_and_kubeconfig(stack_run, stack):
    run = stack_run(stack)
    ds = named(run, "DaemonSet")
    container = ds["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert container["image"] == "docker.io/cloudnativelabs/kube-router:v2.11.1"
    for arg in KUBE_ROUTER_ARGS[stack]:
        assert arg in args
    assert "--kubeconfig=/var/lib/kube-router/kubeconfig" in args
    assert f"--service-cluster-ip-range={run.config['serviceCidr']}" in args
    assert not any(a.startswith("--cluster-cidr") for a in args)  # no such flag in v2.11.1
    kubeconfig = yaml.safe_load(named(run, "ConfigMap")["data"]["kubeconfig"])
    cp = instance(run, "control-plane")
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://{cp.state['privateIp']}:6443"
    assert kubeconfig["clusterCIDR"] == run.config["podCidr"]
    assert "%" not in json.dumps(kubeconfig)


def test_kube_router_flags_per_variant(stack_run):
    args = {s: named(stack_run(s), "DaemonSet")["spec"]["template"]["spec"]["containers"][0]["args"]
            for s in KUBE_ROUTER}
    assert "--enable-overlay=true" in args["kube-router-overlay"]
    assert "--overlay-type=full" in args["kube-router-overlay"]
    assert "--enable-overlay=false" in args["kube-router-native"]
    assert "--run-service-proxy=true" in args["kube-router-proxy"]
    assert "--run-service-proxy=false" in args["kube-router-native"]


@pytest.mark.parametrize("stack", KUBE_ROUTER)
def test_kube_proxy_absent_where_kube_router_replaces_it(stack_run, stack):
    run = stack_run(stack)
    init = run.one("command:remote:Command", "k8s-init").inputs["create"]
    words = shlex.split(init.split(" <<'", 1)[0])
    script_args = words[words.index("-s") + 2:]  # after `bash -s --`
    assert ("--skip-phases=addon/kube-proxy" in script_args) is (stack == "kube-router-proxy")
    # nothing of ours reads the kube-proxy ConfigMap (the kubeadm-* manifests would)
    assert "kube-proxy" not in json.dumps(named(run, "DaemonSet"))


def test_kube_router_proxy_admits_ip_in_ip_without_an_overlay(stack_run):
    # kube-router docs/dsr.md @ v2.11.1: DSR services reach their pods over "an ipip tunnel", so
    # the IPVS proxy variant admits IP protocol 4 between the nodes though it runs no overlay
    run = stack_run("kube-router-proxy")
    args = named(run, "DaemonSet")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--enable-overlay=false" in args and not any(a.startswith("--overlay-") for a in args)
    network = run.one("cnibench:index:Network")
    rules = run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert "4" in {r.inputs["ipProtocol"] for r in rules if r.parent == network.urn}


def test_kube_router_overlay_mtu_is_explicit(stack_run):
    # --auto-mtu subtracts nothing for IP-in-IP since v1.6.0: the overlay gets the catalog's MTU
    run = stack_run("kube-router-overlay")
    args = named(run, "DaemonSet")["spec"]["template"]["spec"]["containers"][0]["args"]
    bridge = json.loads(named(run, "ConfigMap")["data"]["cni-conf.json"])["plugins"][0]
    assert "--auto-mtu=false" in args
    assert bridge["type"] == "bridge" and bridge["mtu"] == POD_MTU_9001["kube-router-overlay"] == 8981
    for stack in ("kube-router-native", "kube-router-proxy"):
        run = stack_run(stack)
        assert "--auto-mtu=false" not in named(run, "DaemonSet")["spec"]["template"]["spec"]["containers"][0]["args"]
        assert "mtu" not in json.loads(named(run, "ConfigMap")["data"]["cni-conf.json"])["plugins"][0]


def test_kube_router_overlay_mtu_follows_the_underlay(program):
    run = program("kube-router-overlay", {"underlayMtu": 1500})
    bridge = json.loads(named(run, "ConfigMap")["data"]["cni-conf.json"])["plugins"][0]
    assert bridge["mtu"] == 1480


def test_kube_router_catalog_cannot_fight_the_explicit_mtu():
    with pytest.raises(ValueError, match="auto-mtu"):
        kube_router.router_args(("--auto-mtu=true",), "10.96.0.0/12", 8981)


# --- cilium ----------------------------------------------------------------------------------
def cilium_release(run: OfflineRun):
    return run.one("kubernetes:helm.sh/v3:Release").inputs


def flatten(values: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            keys.extend(flatten(value, path))
        else:
            keys.append(path)
    return keys


# Values whose entries are free-form (label names), not chart keys: only the map itself must
# exist in the chart.
FREE_FORM = ("operator.nodeSelector",)


def unknown_keys(used: list[str], keys: set[str]) -> list[str]:
    out = []
    for key in used:
        free = next((f for f in FREE_FORM if key.startswith(f + ".")), None)
        if (free or key) not in keys:
            out.append(key)
    return sorted(out)


def chart_keys() -> tuple[str, set[str]]:
    lines = (DATA / "cilium-chart-1.18.12-keys.txt").read_text().splitlines()
    header = lines[0]
    return header, {line.strip() for line in lines[1:] if line.strip() and not line.startswith("#")}


@pytest.mark.parametrize("stack", CILIUM)
def test_cilium_release_is_the_pinned_chart(stack_run, stack):
    release = cilium_release(stack_run(stack))
    assert release["chart"] == "cilium" and release["version"] == "1.18.12"
    assert release["repositoryOpts"]["repo"] == "https://helm.cilium.io/"
    assert release["namespace"] == "kube-system"


@pytest.mark.parametrize("stack", CILIUM)
def test_every_cilium_value_key_exists_in_the_pinned_chart(stack_run, stack):
    header, keys = chart_keys()
    assert "cilium chart 1.18.12 " in header and "values.yaml" in header
    assert len(keys) > 1000 and "routingMode" in keys
    used = flatten(cilium_release(stack_run(stack))["values"])
    assert used, "no values rendered"
    assert unknown_keys(used, keys) == []


def test_the_key_check_catches_a_removed_value():
    _, keys = chart_keys()
    assert "tunnel" not in keys  # `tunnel: disabled` is gone since 1.15
    used = flatten({"tunnel": "disabled", "routingMode": "native", "bpf": {"masqurade": True},
                    "operator": {"nodeSelector": {"a/b": ""}, "replica": 1}})
    assert unknown_keys(used, keys) == ["bpf.masqurade", "operator.replica", "tunnel"]


@pytest.mark.parametrize("stack", CILIUM)
def test_cilium_values_per_variant(stack_run, stack):
    run = stack_run(stack)
    values = cilium_release(run)["values"]
    # the variant's values are all there, unchanged
    for key, value in CILIUM_VALUES[stack].items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                assert values[key][sub] == subvalue, f"{key}.{sub}"
        else:
            assert values[key] == value, key
    # and nothing of another mode: no tunnel protocol when routing natively, direct node routes
    # only where the nodes share an L2 subnet
    assert ("tunnelProtocol" in values) is (values["routingMode"] == "tunnel")
    assert values.get("autoDirectNodeRoutes", False) is (stack in AUTO_DIRECT_NODE_ROUTES)
    cp = instance(run, "control-plane")
    assert values["k8sServiceHost"] == cp.state["privateIp"]
    assert values["k8sServicePort"] == "6443"
    mode = values.get("ipam", {}).get("mode", "cluster-pool")
    vpc = ipaddress.ip_network(run.config["vpcCidr"])
    if mode == "cluster-pool":
        pool = values["ipam"]["operator"]["clusterPoolIPv4PodCIDRList"]
        assert pool == [run.config["podCidr"]]
        assert not any(ipaddress.ip_network(c).overlaps(vpc) for c in pool)
        assert values["ipam"]["operator"]["clusterPoolIPv4MaskSize"] == run.config["nodePodMaskSize"]
    if values.get("routingMode") == "native" and mode != "eni":
        assert values["ipv4NativeRoutingCIDR"] == run.config["podCidr"]
    else:
        assert "ipv4NativeRoutingCIDR" not in values
    assert "MTU" not in values  # the agent's detection (tunnel: -50) is the catalog's pod MTU
    # the operator runs once, on the control plane (the node with the ENI IAM actions)
    assert values["operator"]["replicas"] == 1
    assert values["operator"]["nodeSelector"]["node-role.kubernetes.io/control-plane"] == ""


def test_cilium_modes(stack_run):
    values = {s: cilium_release(stack_run(s))["values"] for s in CILIUM}
    assert values["cilium-vxlan"]["routingMode"] == "tunnel" and values["cilium-vxlan"]["tunnelProtocol"] == "vxlan"
    assert values["cilium-geneve"]["tunnelProtocol"] == "geneve"
    assert values["cilium-native"]["routingMode"] == "native" and values["cilium-native"]["autoDirectNodeRoutes"] is True
    kpr = values["cilium-native-kpr"]
    assert kpr["kubeProxyReplacement"] == "true" and kpr["bpf"]["masquerade"] is True
    eni = values["cilium-eni"]
    assert eni["eni"]["enabled"] is True and eni["ipam"]["mode"] == "eni" and eni["routingMode"] == "native"
    assert "clusterPoolIPv4PodCIDRList" not in json.dumps(eni)
    run = stack_run("cilium-eni")
    subnets = sorted(s.state["id"] for s in run.of_type("aws:ec2/subnet:Subnet"))
    assert sorted(eni["eni"]["subnetIDsFilter"]) == subnets


def test_cilium_eni_operator_gets_the_documented_ec2_actions(stack_run):
    assert set(CATALOG["cilium-eni"].iam_actions) == CILIUM_ENI_IAM
    doc = json.loads(stack_run("cilium-eni").one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    granted = [a for st in doc["Statement"] if st["Effect"] == "Allow" for a in st["Action"]]
    assert sorted(granted) == sorted(CILIUM_ENI_IAM)  # each once, nothing else
    assert not CILIUM_ENI_NOT_GRANTED & set(granted)


@pytest.mark.parametrize("stack", sorted(CATALOG))
def test_source_dest_check_is_off_where_nodes_forward_foreign_addresses(stack_run, stack):
    nodes = stack_run(stack).of_type("aws:ec2/instance:Instance")
    assert nodes and {i.inputs["sourceDestCheck"] for i in nodes} == {stack not in SOURCE_DEST_CHECK_OFF}


# --- ipvlan ----------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["client", "server"])
def test_ipvlan_conflist_uses_exactly_the_nodes_secondary_ips(stack_run, role):
    run = stack_run("ipvlan")
    node = instance(run, role)
    secondary = node.inputs["secondaryPrivateIps"]
    assert len(secondary) == 8
    cmd = run.one("command:remote:Command", f"cni-ipvlan-{role}")
    env = env_of(cmd.inputs["create"])
    assert env["CNI_POD_IPS"].split() == list(secondary)
    # containernetworking/plugins v1.9.1, .github/workflows/release.yaml: cni-plugins-linux-<goarch>-<tag>.tgz
    assert env["CNI_PLUGINS_URL"] == ("https://github.com/containernetworking/plugins/releases/download/"
                                      "v1.9.1/cni-plugins-linux-amd64-v1.9.1.tgz")
    assert (SCRIPTS / "ipvlan-node.sh").read_text().strip() in cmd.inputs["create"]
    conf = json.loads(env["CNI_CONFLIST"])
    (plugin,) = conf["plugins"]
    assert plugin["type"] == "ipvlan" and plugin["mode"] == "l2" and plugin["master"] == env["CNI_MASTER_TOKEN"]
    assert "mtu" not in plugin  # an ipvlan slave inherits the master's MTU: the catalog's (0 overhead)
    ipam = plugin["ipam"]
    assert ipam["type"] == "host-local" and ipam["routes"] == [{"dst": "0.0.0.0/0"}]
    (range_set,) = ipam["ranges"]  # one range set: one address per pod
    subnet = [s.inputs["cidrBlock"] for s in run.of_type("aws:ec2/subnet:Subnet")
              if s.state["id"] == node.inputs["subnetId"]]
    assert len(subnet) == 1
    net = ipaddress.ip_network(subnet[0])
    assert sorted(r["rangeStart"] for r in range_set) == sorted(secondary)
    for r in range_set:
        assert r["rangeStart"] == r["rangeEnd"]
        assert r["subnet"] == str(net) and r["gateway"] == str(net.network_address + 1)
        assert ipaddress.ip_address(r["rangeStart"]) in net
    assert node.state["privateIp"] not in secondary


def test_ipvlan_plugins_match_the_nodes_architecture(program):
    run = program("ipvlan", {"instanceType": "c7g.8xlarge", "controlPlaneInstanceType": "t4g.medium"})
    for role in ("client", "server"):
        env = env_of(run.one("command:remote:Command", f"cni-ipvlan-{role}").inputs["create"])
        assert env["CNI_PLUGINS_URL"] == ("https://github.com/containernetworking/plugins/releases/download/"
                                          "v1.9.1/cni-plugins-linux-arm64-v1.9.1.tgz")


def test_ipvlan_runs_on_the_benchmark_nodes_only(stack_run):
    run = stack_run("ipvlan")
    cmds = [r for r in run.of_type("command:remote:Command") if r.name.startswith("cni-ipvlan-")]
    assert sorted(r.name for r in cmds) == ["cni-ipvlan-client", "cni-ipvlan-server"]
    for r in cmds:
        role = r.name.rsplit("-", 1)[1]
        assert host_of(r) == public_ip(run, role)
        # after the node joined
        assert run.depends_on(r, run.one("command:remote:Command", f"k8s-{role}-label"))
    assert k8s_objects(run) == []


# --- readiness gate --------------------------------------------------------------------------
@pytest.mark.parametrize("stack", sorted(CATALOG))
def test_readiness_gate_waits_for_the_cni_and_both_nodes(stack_run, stack):
    run = stack_run(stack)
    ready = gate(run)
    env = env_of(ready.inputs["create"])
    assert env["CNIBENCH_VARIANT"] == stack
    assert int(env["CNI_TIMEOUT"]) > 0
    names = {instance(run, r).state["privateDns"] for r in ("client", "server")}
    assert set(env["CNI_NODES"].split()) == names and len(names) == 2
    assert host_of(ready) == public_ip(run, "control-plane")
    assert (SCRIPTS / "cni-ready.sh").read_text().strip() in ready.inputs["create"]
    installed = [r for r in run.resources
                 if r.type.startswith(("kubernetes:core/", "kubernetes:apps/", "kubernetes:rbac",
                                       "kubernetes:helm")) or r.name.startswith("cni-ipvlan-")]
    assert installed
    for res in installed:
        assert run.depends_on(ready, res), res
    workloads = env["CNI_WORKLOADS"].split()
    if INSTALL[stack] == "node-config":
        assert workloads == []
    else:
        assert any(w.startswith("daemonset/") for w in workloads)
        for kind_name in workloads:
            kind, name = kind_name.split("/")
            if kind == "daemonset" and not stack.startswith("cilium"):
                assert named(run, "DaemonSet")["metadata"]["name"] == name


def test_gate_waits_for_ciliums_agent_and_operator(stack_run):
    env = env_of(gate(stack_run("cilium-vxlan")).inputs["create"])
    assert env["CNI_WORKLOADS"].split() == ["daemonset/cilium", "deployment/cilium-operator"]
    assert env["CNI_NAMESPACE"] == "kube-system"


@pytest.mark.parametrize("stack", ["flannel-vxlan", "kube-router-native"])
def test_pulumi_does_not_wait_for_the_daemonset_itself(stack_run, stack):
    # the gate waits, and on a timeout names the variant and the pods that are not ready
    ds = named(stack_run(stack), "DaemonSet")
    assert ds["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"


def test_gate_skips_the_service_checks_for_ipvlan_with_the_catalogs_reason(stack_run):
    env = env_of(gate(stack_run("ipvlan")).inputs["create"])
    assert env["CNI_SKIP_CHECKS"] == "coredns pod-to-service dns"
    # the reason is the catalog's wording (prose, not a fact to pin); the fact it states is NO_SERVICE_PATH's
    assert env["CNI_SKIP_REASON"] == CATALOG["ipvlan"].no_service_path
    assert "ClusterIP DNAT never applies" in env["CNI_SKIP_REASON"]


def test_only_the_variants_without_a_service_path_have_a_reason():
    assert {n for n, v in CATALOG.items() if v.no_service_path} == NO_SERVICE_PATH


@pytest.mark.parametrize("stack", sorted(CATALOG))
def test_gate_skips_nothing_where_the_variant_has_a_service_path(stack_run, stack):
    env = env_of(gate(stack_run(stack)).inputs["create"])
    if stack not in NO_SERVICE_PATH:
        assert env["CNI_SKIP_CHECKS"] == "" and env["CNI_SKIP_REASON"] == ""
    else:
        assert env["CNI_SKIP_CHECKS"] and env["CNI_SKIP_REASON"] == CATALOG[stack].no_service_path
    if stack == "flannel-vxlan":
        assert env["CNI_SKIP_CHECKS"] == ""


def test_gate_skips_only_checks_its_script_knows():
    text = (SCRIPTS / "cni-ready.sh").read_text()
    known = re.search(r'^CHECKS="([^"]*)"$', text, re.M)
    assert known, "cni-ready.sh lists its CHECKS"
    assert set(readiness.NO_SERVICE_PATH_SKIPS) <= set(known.group(1).split())


# --- Kubernetes schema -----------------------------------------------------------------------
def test_kubernetes_validate_knows_the_configured_version(stack_run):
    version = stack_run("flannel-vxlan").config["kubernetesVersion"]
    assert any(v.startswith(f"{version}.") for v in kubernetes_validate.utils.all_versions())


@pytest.mark.parametrize("stack", sorted(n for n, method in INSTALL.items() if method == "manifest"))
def test_every_object_validates_against_the_cluster_version(stack_run, stack):
    run = stack_run(stack)
    objects = k8s_objects(run)
    kinds = sorted(o.inputs["kind"] for o in objects)
    assert {"ConfigMap", "DaemonSet", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"} <= set(kinds)
    for obj in objects:
        kubernetes_validate.validate(obj.inputs, run.config["kubernetesVersion"], strict=True)


def test_the_schema_check_catches_a_bad_object(stack_run):
    ds = json.loads(json.dumps(named(stack_run("flannel-vxlan"), "DaemonSet")))
    ds["spec"]["template"]["spec"]["hostNetwrok"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, "1.33", strict=True)


# --- README ----------------------------------------------------------------------------------
# The README's variant table is written by hand (no generator renders it from the catalog), so it
# is checked against the upstream facts (ENCAP_OVERHEAD, RELEASES) and against the catalog alike.
def test_readme_variant_table_matches_the_sources_and_the_catalog():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Variant table", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in CATALOG:
            rows[cells[0]] = cells
    assert set(rows) == set(CATALOG) == set(ENCAP_OVERHEAD)
    for name, (_, _sets, _, encap) in rows.items():
        assert int(encap.split()[0]) == ENCAP_OVERHEAD[name] == CATALOG[name].encap_overhead, name
    # the first row of each CNI names its pinned release (the others say only what differs)
    for name in ("flannel-vxlan", "flannel-aws-vpc", "kube-router-overlay", "cilium-vxlan", "ipvlan"):
        assert RELEASES[name] in rows[name][1], name
    assert "RouteTableID" in rows["flannel-aws-vpc"][1]


@pytest.mark.parametrize("stack", ["ipvlan", "cilium-eni", "kube-router-proxy"])
def test_control_plane_on_a_benchmark_node(program, stack):
    run = program(stack, {"controlPlaneOnBenchmarkNode": True})
    ready = gate(run)
    env = env_of(ready.inputs["create"])
    client, server = (instance(run, r) for r in ("client", "server"))
    assert env["CNI_NODES"].split() == [client.state["privateDns"], server.state["privateDns"]]
    assert host_of(ready) == public_ip(run, "client")  # the control plane is the client node
    if stack == "ipvlan":
        cmds = sorted(r.name for r in run.of_type("command:remote:Command") if r.name.startswith("cni-ipvlan-"))
        assert cmds == ["cni-ipvlan-client", "cni-ipvlan-server"]


# --- a changed CNI setting reaches the running pods ----------------------------------------------
@pytest.mark.parametrize("stack,configmap_keys", [
    ("flannel-vxlan", ("cni-conf.json", "net-conf.json")),
    ("kube-router-native", ("cni-conf.json", "kubeconfig")),
])
def test_daemonset_pods_roll_when_their_configmap_changes(program, stack, configmap_keys):
    def checksum_and_data(run):
        ds, cm = named(run, "DaemonSet"), named(run, "ConfigMap")
        annotations = ds["spec"]["template"]["metadata"]["annotations"]
        return annotations["cnibench.io/config-checksum"], {k: cm["data"][k] for k in configmap_keys}

    a_sum, a_data = checksum_and_data(program(stack))
    b_sum, b_data = checksum_and_data(program(stack, {"podCidr": "10.128.0.0/16"}))  # a new pod range in the conf
    assert a_data != b_data and a_sum != b_sum
    assert len(a_sum) == 16 and all(c in "0123456789abcdef" for c in a_sum)
    same_sum, _ = checksum_and_data(program(stack, {"benchmarkRun": "9"}))  # the config did not change
    assert same_sum == a_sum


def test_kube_router_rewrites_its_cni_files_at_every_pod_start(stack_run):
    init = named(stack_run("kube-router-native"), "DaemonSet")["spec"]["template"]["spec"]["initContainers"][0]
    script = init["command"][2]
    assert "if [ ! -f" not in script  # the manifest's "only if absent" kept a stale config
    assert "mv ${TMP} /etc/cni/net.d/10-kuberouter.conflist;" in script
    assert "mv ${TMP} /var/lib/kube-router/kubeconfig;" in script


@pytest.mark.parametrize("stack", ["cilium-vxlan", "cilium-native", "cilium-eni"])
def test_cilium_rolls_its_pods_when_its_configmap_changes(stack_run, stack):
    values = cilium_release(stack_run(stack))["values"]
    assert values["rollOutCiliumPods"] is True and values["operator"]["rollOutPods"] is True
