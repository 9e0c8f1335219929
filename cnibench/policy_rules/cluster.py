"""Rules on the nodes and the cluster bootstrap: kernel, kube-proxy replacement, matched pair."""

from __future__ import annotations

import re
from typing import Any, Iterator, Mapping

from cnibench.policy_rules.model import (
    CONFIGMAP,
    DAEMONSET,
    PLACEMENT_GROUP,
    REMOTE_COMMAND,
    UNKNOWN,
    NotApplicable,
    Res,
    Stack,
    Violation,
    known,
)
from cnibench.policy_rules.network import _get, cilium_values, kubeadm_commands, script_code
from cnibench.variants import Variant, parse_kernel

# ---------------------------------------------------------------------------------------
# Kernel of an AMI, inferred from its name. The kernel of an AMI id cannot be known at preview;
# the name (tag cnibench:ami-name, or the documented default image) tells the Ubuntu release,
# whose GA kernel series is fixed (HWE/cloud kernels only move forward: a lower bound):
#   24.04 "noble": 6.8 (packages.ubuntu.com/noble/linux-source: 6.8.0-*)
#   22.04 "jammy": 5.15 (Canonical kernel team, phoronix.com/news/Ubuntu-22.04-LTS-Linux-5.15)
#   20.04 "focal": 5.4 (Canonical's Brad Figg on the kernel list, omgubuntu.co.uk 2020/02)
# Other images are "unknown at preview" (advisory).
AMI_KERNELS: tuple[tuple[re.Pattern[str], tuple[int, int]], ...] = (
    (re.compile(r"ubuntu-noble-24\.04|ubuntu/images/.*24\.04"), (6, 8)),
    (re.compile(r"ubuntu-jammy-22\.04|ubuntu/images/.*22\.04"), (5, 15)),
    (re.compile(r"ubuntu-focal-20\.04|ubuntu/images/.*20\.04"), (5, 4)),
)
# What the program uses when cnibench:amiId is empty (see cnibench/config.py, amiId).
DEFAULT_AMI_NAME = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
TAG_AMI_NAME = "cnibench:ami-name"
TAG_KERNEL = "cnibench:kernel"


def kernel_of(stack: Stack, node: Res) -> tuple[tuple[int, int], str] | None:
    """(kernel lower bound, where it came from), or None when it cannot be known at preview."""
    tags = node.tags
    if isinstance(tags.get(TAG_KERNEL), str):
        return parse_kernel(tags[TAG_KERNEL]), f"tag {TAG_KERNEL}={tags[TAG_KERNEL]}"
    name = tags.get(TAG_AMI_NAME)
    source = f"AMI name {name!r}"
    if not isinstance(name, str) and not stack.setting("amiId") and "amiId" in stack.settings:
        name, source = DEFAULT_AMI_NAME, "the default AMI (Ubuntu 24.04, cnibench:amiId empty)"
    if isinstance(name, str):
        for pattern, kernel in AMI_KERNELS:
            if pattern.search(name):
                return kernel, source
    return None


def _kernel_scope(stack: Stack) -> tuple[Variant, list[Res]]:
    variant = stack.require_variant()
    nodes = stack.nodes
    if not nodes:
        raise NotApplicable("no node instances (tag cnibench:role) in the stack")
    return variant, nodes


def kernel_minimum(stack: Stack) -> Iterator[Violation]:
    """A node whose AMI's kernel is known to be older than the variant's minimum."""
    variant, nodes = _kernel_scope(stack)
    for node in nodes:
        found = kernel_of(stack, node)
        if found is not None and found[0] < variant.min_kernel:
            kernel, source = found
            yield Violation(
                f"kernel: {variant.name} needs Linux >= {variant.min_kernel_label}, but {node.label()} runs "
                f"{kernel[0]}.{kernel[1]} ({source}). Fix: use a newer AMI (cnibench:amiId empty selects "
                "Ubuntu 24.04, kernel 6.8).",
                node.urn,
            )


def kernel_unverified(stack: Stack) -> Iterator[Violation]:
    """Advisory: the AMI's kernel cannot be known at preview."""
    variant, nodes = _kernel_scope(stack)
    for node in nodes:
        if kernel_of(stack, node) is None:
            yield Violation(
                f"kernel: cannot tell the kernel of {node.label()}'s AMI {node.props.get('ami')!r} before it "
                f"boots; {variant.name} needs Linux >= {variant.min_kernel_label}. Check the AMI, or tag the "
                f"instance {TAG_AMI_NAME}=<AMI name> / {TAG_KERNEL}=<version> so this can be verified.",
                node.urn,
            )


# ---------------------------------------------------------------------------------------
_SKIP_FLAG = re.compile(r"--skip-phases[= ]+['\"]?[^\s'\"]*addon/kube-proxy")
_SKIP_CFG = re.compile(r"skipPhases:[^\n]*(\n\s*-\s*[^\n]+)*")


def kube_proxy_skipped(stack: Stack) -> bool | None:
    """True/False from the bootstrap commands; None when there is no kubeadm init in the stack."""
    commands = kubeadm_commands(stack)
    if not commands:
        return None
    for cmd in stack.of_type(REMOTE_COMMAND):
        text = script_code(cmd.props.get("create"))
        if _SKIP_FLAG.search(text):
            return True
        m = _SKIP_CFG.search(text)
        if m and "addon/kube-proxy" in m.group(0):
            return True
    return False


def _api_server_given(stack: Stack, variant: Variant) -> list[str]:
    """Where the API server host/port reach the CNI; empty when they do not."""
    found: list[str] = []
    for rel, values in cilium_values(stack):
        # UNKNOWN at preview: computed from the control plane's address, so it is given
        host, port = _get(values, "k8sServiceHost"), _get(values, "k8sServicePort")
        if host not in (None, "", "auto") and port not in (None, ""):
            found.append(f"{rel.label()} k8sServiceHost/k8sServicePort")
    for ds in stack.of_type(DAEMONSET):
        for container in _containers(ds):
            args = [a for a in (container.get("args") or []) + (container.get("command") or []) if isinstance(a, str)]
            env = {e.get("name"): e.get("value") for e in container.get("env") or [] if isinstance(e, Mapping)}
            if any(a.startswith("--master=") and len(a) > len("--master=") for a in args):
                found.append(f"{ds.label()} --master")
            elif env.get("KUBERNETES_SERVICE_HOST") and env.get("KUBERNETES_SERVICE_PORT"):
                found.append(f"{ds.label()} KUBERNETES_SERVICE_HOST/PORT")
    for cm in stack.of_type(CONFIGMAP):
        data = cm.props.get("data")
        if isinstance(data, Mapping) and any(
            (isinstance(v, str) and re.search(r"server:\s*https://[^\s%]+", v))
            or (v is UNKNOWN and "kubeconfig" in str(k))  # rendered from the API server address
            for k, v in data.items()
        ):
            found.append(f"{cm.label()} kubeconfig server")
    return found


def _containers(ds: Res) -> list[Mapping[str, Any]]:
    spec = ds.get("spec", "template", "spec", default={})
    if not isinstance(spec, Mapping):
        return []
    out: list[Mapping[str, Any]] = []
    for key in ("containers", "initContainers"):
        out.extend(c for c in spec.get(key) or [] if isinstance(c, Mapping))
    return out


def kube_proxy_replacement(stack: Stack) -> Iterator[Violation]:
    """kube-proxy-replacing variants: no kube-proxy, and the CNI reaches the API server directly."""
    variant = stack.require_variant()
    skipped = kube_proxy_skipped(stack)
    if skipped is None:
        if any(c.props.get("create") is UNKNOWN for c in stack.of_type(REMOTE_COMMAND)):
            raise NotApplicable(
                "the kubeadm init script is computed from values unknown at preview (node addresses); "
                "`cnibench check` verifies it offline"
            )
        raise NotApplicable("no kubeadm init command in the stack")
    if not variant.replaces_kube_proxy:
        if skipped:
            yield Violation(
                f"kube-proxy: the cluster is bootstrapped without kube-proxy, but {variant.name} does not replace "
                "it (Services would not work). Fix: drop --skip-phases=addon/kube-proxy for this variant."
            )
        return
    if not skipped:
        yield Violation(
            f"kube-proxy: {variant.name} replaces kube-proxy, but kubeadm init still installs it (two service "
            "proxies fight over the same rules). Fix: run kubeadm init with --skip-phases=addon/kube-proxy "
            "(or skipPhases: [addon/kube-proxy] in its config)."
        )
    if not _api_server_given(stack, variant):
        yield Violation(
            f"kube-proxy: without kube-proxy the {variant.cni} agents cannot reach the API server through its "
            "ClusterIP; the API server host and port must be given to the CNI. Fix: set k8sServiceHost/"
            "k8sServicePort (cilium) or the kubeconfig server / --master (kube-router) to the control plane's "
            "private IP and port 6443."
        )


# ---------------------------------------------------------------------------------------
def matched_pair(stack: Stack) -> Iterator[Violation]:
    """Both benchmark nodes: same instance type, AMI, AZ and placement group."""
    client, server = stack.node("client"), stack.node("server")
    if client is None or server is None:
        raise NotApplicable("the stack has no client/server instance pair (tag cnibench:role)")
    for prop, what in (("instanceType", "instance type"), ("ami", "AMI"), ("availabilityZone", "availability zone")):
        a, b = client.props.get(prop), server.props.get(prop)
        if prop == "ami" and not (known(a) and known(b)):
            same = stack.ref(client, prop).same(stack.ref(server, prop))
        else:
            same = known(a) and a == b
        if not same:
            yield Violation(
                f"matched pair: the client and server differ in {what} ({a!r} vs {b!r}) or it is not set; a "
                f"comparison needs identical nodes. Fix: give both the same {prop}.", server.urn,
            )
    pa, pb = stack.ref(client, "placementGroup", PLACEMENT_GROUP), stack.ref(server, "placementGroup", PLACEMENT_GROUP)
    if not pa or not pb or pa.same(pb) is not True:
        yield Violation(
            "matched pair: the client and server are not in one placement group "
            f"({client.props.get('placementGroup')!r} vs {server.props.get('placementGroup')!r}); outside a "
            "cluster placement group one flow is capped at 5 Gbit/s instead of 10. Fix: put both in the same "
            "aws.ec2.PlacementGroup(strategy='cluster').", server.urn,
        )
    for pg in stack.of_type(PLACEMENT_GROUP):
        if pa.same(stack.own_ref(pg)) and pg.props.get("strategy") != "cluster":
            yield Violation(
                f"matched pair: {pg.label()} has strategy {pg.props.get('strategy')!r}; use 'cluster' so the pair "
                "shares a low-latency network segment.", pg.urn,
            )


# Sizes sold with "Up to N Gigabit" network performance, i.e. a baseline plus burst credits
# (docs.aws.amazon.com/ec2/latest/instancetypes/gp.html and co.html, "Network specifications";
# e.g. c5.4xlarge "Up to 10 Gigabit", c5.9xlarge "10 Gigabit"; c6i.4xlarge "Up to 12.5",
# c6i.8xlarge "12.5"; c5n.4xlarge "Up to 25", c5n.9xlarge "50"; t2/t3/t3a/t4g: all "Up to").
# In the current generations the burst sizes are the ones up to 4xlarge.
BURSTABLE_FAMILIES = re.compile(r"^t\d+[a-z]*$")
BURST_SIZES = frozenset({"nano", "micro", "small", "medium", "large", "xlarge", "2xlarge", "4xlarge"})
NITRO_FAMILIES = re.compile(r"^[cmr][5-8][a-z]*$")


def burst_bandwidth_type(instance_type: str) -> bool:
    family, _, size = instance_type.partition(".")
    if BURSTABLE_FAMILIES.match(family):
        return True
    return bool(NITRO_FAMILIES.match(family)) and size in BURST_SIZES


def burst_bandwidth(stack: Stack) -> Iterator[Violation]:
    """Advisory: benchmark nodes on a size with "up to" bandwidth measure a credit bucket."""
    nodes = stack.require_benchmark_nodes()
    for node in nodes:
        itype = node.props.get("instanceType")
        if isinstance(itype, str) and burst_bandwidth_type(itype):
            yield Violation(
                f"burst bandwidth: {node.label()} is a {itype}, sold with 'up to' network bandwidth: after the "
                "burst credits run out it drops to its baseline, so the benchmark measures the credit bucket. "
                "Fix: use a size with sustained bandwidth (e.g. c6i.8xlarge or larger) for cnibench:instanceType.",
                node.urn,
            )
