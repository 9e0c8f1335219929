"""Rules on the node network: L2 adjacency, VPC routes, encapsulation ports, IAM, CIDRs."""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from cnibench.policy_rules.model import (
    HELM_RELEASE,
    REMOTE_COMMAND,
    ROUTE,
    ROUTE_TABLE,
    SECURITY_GROUP,
    SG_INGRESS,
    SG_RULE,
    SUBNET,
    UNKNOWN,
    VPC,
    NotApplicable,
    Ref,
    Res,
    Stack,
    Violation,
    known,
)
from cnibench.variants import PodAddressing, PortRule, Underlay, Variant, alternatives

DEFAULT_ROUTE_TABLE = "aws:ec2/defaultRouteTable:DefaultRouteTable"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
IAM_POLICY = "aws:iam/policy:Policy"
IAM_ROLE = "aws:iam/role:Role"


def source_dest_check_violations(stack: Stack, variant: Variant) -> Iterator[Violation]:
    """Every node forwards pod addresses that are not its own: the EC2 source/dest check must be off."""
    if not variant.source_dest_check_off:
        return
    for node in stack.nodes:
        if node.props.get("sourceDestCheck") is not False:
            yield Violation(
                f"{variant.name}: {node.label()} (role {node.role}) keeps the EC2 source/destination check "
                f"on (sourceDestCheck={node.props.get('sourceDestCheck')!r}), so AWS drops the pod traffic it "
                "forwards. Fix: set source_dest_check=False on every node instance.",
                node.urn,
            )


# ---------------------------------------------------------------------------------------
def l2_adjacency(stack: Stack) -> Iterator[Violation]:
    """Variants that route pods directly to the peer node's IP need that IP on-link."""
    variant = stack.require_variant()
    if not variant.needs_l2:
        raise NotApplicable(f"{variant.name} does not route pods directly between nodes ({variant.underlay.value})")
    nodes = stack.require_benchmark_nodes()
    first, first_ref = nodes[0], stack.ref(nodes[0], "subnetId", SUBNET)
    fix = (
        "Fix: put both benchmark nodes in one subnet (cnibench:splitSubnets=false), or benchmark an "
        f"encapsulating variant instead ({alternatives(variant)})."
    )
    for other in nodes[1:]:
        same = first_ref.same(stack.ref(other, "subnetId", SUBNET))
        if same is not True:
            where = "cannot be shown to share a subnet" if same is None else "are in different subnets"
            yield Violation(
                f"L2 adjacency: {variant.name} routes pod traffic directly between nodes (the next hop is the "
                f"peer node's IP), which needs all benchmark nodes in one subnet (one L2 segment); "
                f"{first.label()} and {other.label()} {where} "
                f"({_show(first.props.get('subnetId'))} vs {_show(other.props.get('subnetId'))}). {fix}",
                other.urn,
            )
    yield from source_dest_check_violations(stack, variant)


def _show(value: Any) -> str:
    return "unknown at preview" if value is UNKNOWN else repr(value)


# ---------------------------------------------------------------------------------------
def _route_tables(stack: Stack) -> list[Res]:
    return stack.of_type(ROUTE_TABLE, DEFAULT_ROUTE_TABLE)


def aws_vpc_routes(stack: Stack) -> Iterator[Violation]:
    """flannel aws-vpc writes one route per node into a VPC route table (AWS default quota: 50)."""
    variant = stack.require_variant()
    if variant.underlay is not Underlay.VPC_ROUTES:
        raise NotApplicable(f"{variant.name} does not program VPC routes")
    quota = int(stack.setting("routeTableQuota", 50))
    nodes = stack.nodes
    routes = stack.of_type(ROUTE)
    tables = _route_tables(stack)
    # (table label, routes already in it): the local route, inline routes, Route resources on it
    loads: list[tuple[str, int, str | None]] = []
    for table in tables:
        inline = table.props.get("routes")
        count = 1 + (len(inline) if isinstance(inline, (list, tuple)) else 0)
        own = stack.own_ref(table)
        count += sum(1 for r in routes if stack.ref(r, "routeTableId", table.type).same(own))
        loads.append((table.label(), count, table.urn))
    if not tables:  # the VPC's main route table, outside this stack
        loads.append(("the VPC's main route table", 1 + len(routes), None))
    for label, existing, urn in loads:
        total = existing + len(nodes)
        if total > quota:
            yield Violation(
                f"aws-vpc: {variant.name} adds one VPC route per node: {len(nodes)} node(s) + {existing} route(s) "
                f"already in {label} = {total}, over the route table quota of {quota}. Fix: use fewer nodes "
                "(cnibench:controlPlaneOnBenchmarkNode=true), remove routes from that table, or raise the "
                "'Routes per route table' quota in AWS Service Quotas and set cnibench:routeTableQuota.",
                urn,
            )
    yield from source_dest_check_violations(stack, variant)


# ---------------------------------------------------------------------------------------
def _policy_documents(stack: Stack) -> Iterator[tuple[Res, Any]]:
    for res in stack.of_type(ROLE_POLICY, IAM_POLICY):
        yield res, res.props.get("policy")
    for res in stack.of_type(IAM_ROLE):
        for inline in res.props.get("inlinePolicies") or ():
            if isinstance(inline, Mapping):
                yield res, inline.get("policy")


def _allow_statements(document: Any) -> list[Mapping[str, Any]]:
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError:
            return []
    if not isinstance(document, Mapping):
        return []
    statements = document.get("Statement") or []
    if isinstance(statements, Mapping):
        statements = [statements]
    return [st for st in statements if isinstance(st, Mapping) and st.get("Effect") == "Allow"]


def _strings(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [v for v in value or () if isinstance(v, str)]


def _allowed_actions(document: Any) -> list[str]:
    return [a for st in _allow_statements(document) for a in _strings(st.get("Action"))]


def iam_actions(stack: Stack) -> Iterator[Violation]:
    """The node role grants every EC2 action the variant's controller calls."""
    variant = stack.require_variant()
    if not variant.iam_actions:
        raise NotApplicable(f"{variant.name} calls no AWS API")
    granted = [a.lower() for _, doc in _policy_documents(stack) for a in _allowed_actions(doc)]
    missing = [a for a in variant.iam_actions if not any(fnmatch.fnmatchcase(a.lower(), g) for g in granted)]
    if missing:
        yield Violation(
            f"IAM: {variant.name} needs the node role to allow {', '.join(missing)} (no IAM policy in the stack "
            "grants them). Fix: add them to the node role's policy (aws.iam.RolePolicy attached to the "
            "instance profile's role)."
        )


def iam_scope(stack: Stack) -> Iterator[Violation]:
    """No action the catalog scopes (``variant.iam_scopes``: flannel aws-vpc's route writes,
    cilium's ENI tagging) is allowed on ``Resource: "*"``: with IMDSv1 (flannel v0.19.2), any pod
    on the node could otherwise rewrite every route table of the account."""
    variant = stack.require_variant()
    if not variant.iam_scopes:
        raise NotApplicable(f"{variant.name} has no scoped IAM actions")
    for res, doc in _policy_documents(stack):
        for st in _allow_statements(doc):
            if "*" not in _strings(st.get("Resource")):
                continue
            granted = [g.lower() for g in _strings(st.get("Action"))]
            wide = [a for a in variant.iam_scopes if any(fnmatch.fnmatchcase(a.lower(), g) for g in granted)]
            if wide:
                yield Violation(
                    f"IAM: {res.label()} allows {', '.join(sorted(wide))} on every resource (\"Resource\": \"*\"); "
                    f"{variant.name} needs them only on "
                    + "; ".join(sorted({f"{a}: {variant.iam_scopes[a].value}" for a in wide}))
                    + " of this stack. Fix: grant them as cnibench/program/nodes.py iam_policy() does.",
                    res.urn,
                )


# ---------------------------------------------------------------------------------------
_PROTO = {"tcp": "6", "udp": "17", "icmp": "1", "-1": "all", "all": "all"}


def _proto(value: Any) -> str:
    text = str(value).strip().lower()
    return _PROTO.get(text, text)


@dataclass(frozen=True)
class Ingress:
    res: Res
    group: Ref  # the security group the rule belongs to
    protocol: str  # normalised: "6", "17", "1", "4", "all"
    from_port: int | None
    to_port: int | None
    cidrs: tuple[str, ...]
    source_group: Ref | None

    def covers_ports(self, need: PortRule) -> bool:
        if self.protocol == "all":
            return True
        if self.protocol != _proto(need.protocol):
            return False
        lo, hi = self.from_port, self.to_port
        if need.protocol in ("tcp", "udp"):
            if lo in (None, -1) and hi in (None, -1):
                return True
            return lo is not None and hi is not None and lo <= (need.from_port or 0) and hi >= (need.to_port or 0)
        if need.protocol == "icmp":  # cilium-health sends echo requests (type 8)
            return lo in (None, -1, 8)
        return True


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _strs(*values: Any) -> tuple[str, ...]:
    out: list[str] = []
    for v in values:
        if isinstance(v, str) and v:
            out.append(v)
        elif isinstance(v, (list, tuple)):
            out.extend(x for x in v if isinstance(x, str) and x)
    return tuple(out)


def ingress_rules(stack: Stack) -> list[Ingress]:
    """Ingress rules in all three shapes pulumi-aws offers (standalone v7 rules, inline, legacy)."""
    out: list[Ingress] = []
    for r in stack.of_type(SG_INGRESS):
        source: Ref | None = stack.ref(r, "referencedSecurityGroupId", SECURITY_GROUP)
        out.append(Ingress(
            r, stack.ref(r, "securityGroupId", SECURITY_GROUP), _proto(r.props.get("ipProtocol")),
            _int(r.props.get("fromPort")), _int(r.props.get("toPort")),
            _strs(r.props.get("cidrIpv4"), r.props.get("cidrIpv6")), source or None,
        ))
    for r in stack.of_type(SG_RULE):
        if r.props.get("type") != "ingress":
            continue
        group = stack.ref(r, "securityGroupId", SECURITY_GROUP)
        source = group if r.props.get("self") else stack.ref(r, "sourceSecurityGroupId", SECURITY_GROUP)
        out.append(Ingress(
            r, group, _proto(r.props.get("protocol")), _int(r.props.get("fromPort")), _int(r.props.get("toPort")),
            _strs(r.props.get("cidrBlocks"), r.props.get("ipv6CidrBlocks")), source or None,
        ))
    for sg in stack.of_type(SECURITY_GROUP):
        own = stack.own_ref(sg)
        for item in sg.props.get("ingress") or ():
            if not isinstance(item, Mapping):
                continue
            groups = _strs(item.get("securityGroups"))
            source = own if item.get("self") else (Ref(frozenset(groups), frozenset()) if groups else None)
            out.append(Ingress(
                sg, own, _proto(item.get("protocol")), _int(item.get("fromPort")), _int(item.get("toPort")),
                _strs(item.get("cidrBlocks"), item.get("ipv6CidrBlocks")), source,
            ))
    return out


def _network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not isinstance(value, str):
        return None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def node_networks(stack: Stack, nodes: list[Res]) -> list[ipaddress.IPv4Network]:
    """The address ranges the nodes' traffic comes from: their subnets, else the VPC CIDR."""
    nets: list[Any] = []
    subnets = stack.of_type(SUBNET)
    for node in nodes:
        ref = stack.ref(node, "subnetId", SUBNET)
        for subnet in subnets:
            if ref.same(stack.own_ref(subnet)):
                net = _network(subnet.props.get("cidrBlock"))
                if net is not None:
                    nets.append(net)
    if not nets:
        net = _network(vpc_cidr(stack))
        if net is not None:
            nets.append(net)
    return nets


def _admits_from(rule: Ingress, node_groups: list[Ref], sources: list[Any]) -> bool:
    if rule.source_group is not None and any(rule.source_group.same(g) for g in node_groups):
        return True
    nets = [n for n in (_network(c) for c in rule.cidrs) if n is not None]
    return bool(sources) and all(
        any(src.version == net.version and src.subnet_of(net) for net in nets) for src in sources
    )


def routes_pod_addresses(variant: Variant) -> bool:
    """Unencapsulated pod traffic between nodes carries pod-range addresses (not VPC addresses);
    so does an overlay's pod -> node traffic when it leaves outside the tunnel (catalog)."""
    return variant.pod_addressing is PodAddressing.POD_CIDR or variant.pod_source_to_nodes


def encap_ports(stack: Stack) -> Iterator[Violation]:
    """The nodes' security group admits the variant's tunnel/peering traffic from the other nodes,
    and, for unencapsulated pod routing, the pod range itself."""
    variant = stack.require_variant()
    pod_traffic = routes_pod_addresses(variant)
    if not variant.ports and not pod_traffic:
        raise NotApplicable(f"{variant.name} needs no port or protocol beyond Kubernetes' own")
    nodes = stack.require_benchmark_nodes()
    rules = ingress_rules(stack)
    sources = node_networks(stack, nodes)
    groups = [stack.ref(n, "vpcSecurityGroupIds", SECURITY_GROUP) for n in nodes]
    pod = _network(pod_cidr(stack))
    for node, node_group in zip(nodes, groups):
        mine = [r for r in rules if r.group.same(node_group)]
        for need in variant.ports:
            if not any(r.covers_ports(need) and _admits_from(r, groups, sources) for r in mine):
                yield Violation(
                    f"encapsulation ports: {variant.name} needs {need.label} ({need.description}) between nodes, "
                    f"but no ingress rule of {node.label()}'s security group admits it from the other nodes. "
                    f"Fix: add a vpc.SecurityGroupIngressRule with ip_protocol={need.protocol!r}"
                    + (f", from_port={need.from_port}, to_port={need.to_port}" if need.protocol in ("tcp", "udp") else "")
                    + " and referenced_security_group_id set to the nodes' security group.",
                    node.urn,
                )
        if pod_traffic and pod is not None and not any(
            r.protocol == "all" and _admits_from(r, [], [pod]) for r in mine
        ):
            yield Violation(
                f"pod traffic: {variant.name} routes pods without encapsulation, so packets between nodes carry "
                f"pod addresses ({pod}); no ingress rule of {node.label()}'s security group admits them. Fix: add "
                "a vpc.SecurityGroupIngressRule with ip_protocol='-1' and cidr_ipv4 set to the pod CIDR.",
                node.urn,
            )


def pod_cidr(stack: Stack) -> str | None:
    return _from_commands(stack, (_POD_FLAG, _POD_CFG)) or stack.setting("podCidr")


# ---------------------------------------------------------------------------------------
_POD_FLAG = re.compile(r"--pod-network-cidr[= ]+['\"]?([0-9a-fA-F.:/]+)")
_SVC_FLAG = re.compile(r"--service-cidr[= ]+['\"]?([0-9a-fA-F.:/]+)")
_POD_CFG = re.compile(r"podSubnet:\s*['\"]?([0-9a-fA-F.:/]+)")
_SVC_CFG = re.compile(r"serviceSubnet:\s*['\"]?([0-9a-fA-F.:/]+)")


def kubeadm_commands(stack: Stack) -> list[Res]:
    """Remote commands that run ``kubeadm init`` (the control-plane bootstrap)."""
    return [c for c in stack.of_type(REMOTE_COMMAND) if "kubeadm init" in script_code(c.props.get("create"))]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def script_code(value: Any) -> str:
    """A command's ``create`` text without full-line shell comments (which may quote flags)."""
    return "\n".join(line for line in _text(value).splitlines() if not line.lstrip().startswith("#"))


def _from_commands(stack: Stack, patterns: tuple[re.Pattern[str], ...]) -> str | None:
    for cmd in stack.of_type(REMOTE_COMMAND):
        text = script_code(cmd.props.get("create"))
        for pattern in patterns:
            m = pattern.search(text)
            if m:
                return m.group(1)
    return None


def vpc_cidr(stack: Stack) -> str | None:
    for vpc in stack.of_type(VPC):
        cidr = vpc.props.get("cidrBlock")
        if known(cidr):
            return cidr
    return stack.setting("vpcCidr")


def cilium_values(stack: Stack) -> list[tuple[Res, Mapping[str, Any]]]:
    out = []
    for rel in stack.of_type(HELM_RELEASE):
        if str(rel.props.get("chart", "")).split("/")[-1] != "cilium":
            continue
        values = rel.props.get("values")
        out.append((rel, values if isinstance(values, Mapping) else {}))
    return out


def _get(values: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    """``a.b.c`` from nested values, or a flat ``"a.b.c"`` key (Helm --set style)."""
    if dotted in values:
        return values[dotted]
    cur: Any = values
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return default
        cur = cur[part]
    return cur


# Cilium chart 1.18.12 values.yaml: ipam.mode defaults to cluster-pool and
# ipam.operator.clusterPoolIPv4PodCIDRList to ["10.0.0.0/8"]; templates/cilium-configmap.yaml
# fails "ipv4NativeRoutingCIDR must be set when routingMode is native" unless ipam is eni
# (notes in /tmp/research/cilium.md, "cilium-native" and "Cluster-pool IPAM").
CILIUM_DEFAULT_CLUSTER_POOL = ("10.0.0.0/8",)


def cidrs(stack: Stack) -> Iterator[Violation]:
    """Pod, service and VPC ranges are disjoint; the native-routing CIDR covers the pod CIDR."""
    found = {
        "pod CIDR": pod_cidr(stack),
        "service CIDR": _from_commands(stack, (_SVC_FLAG, _SVC_CFG)) or stack.setting("serviceCidr"),
        "VPC CIDR": vpc_cidr(stack),
    }
    nets = {k: _network(v) for k, v in found.items() if v}
    for key, value in found.items():
        if value and nets.get(key) is None:
            yield Violation(f"CIDRs: the {key} {value!r} is not a valid network.")
    names = [k for k, v in nets.items() if v is not None]
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            net_a, net_b = nets[a], nets[b]
            assert net_a is not None and net_b is not None  # names holds only the keys of valid networks
            if net_a.overlaps(net_b):
                yield Violation(
                    f"CIDRs: the {a} {nets[a]} overlaps the {b} {nets[b]}; pod, service and VPC ranges must be "
                    "disjoint. Fix: change cnibench:podCidr / cnibench:serviceCidr / cnibench:vpcCidr."
                )
    pod = nets.get("pod CIDR")
    for rel, values in cilium_values(stack):
        native = _get(values, "ipv4NativeRoutingCIDR")
        ipam_mode = _get(values, "ipam.mode", "cluster-pool")
        if _get(values, "routingMode") == "native" and ipam_mode != "eni" and not native:
            yield Violation(
                f"CIDRs: {rel.label()} uses native routing without ipv4NativeRoutingCIDR (the cilium chart "
                "refuses it). Fix: set ipv4NativeRoutingCIDR to a range covering the pod CIDR.", rel.urn,
            )
        native_net = _network(native) if native else None
        if native and native_net is None:
            yield Violation(f"CIDRs: ipv4NativeRoutingCIDR {native!r} of {rel.label()} is not a network.", rel.urn)
        if native_net is not None and pod is not None and not (
            pod.version == native_net.version and pod.subnet_of(native_net)  # type: ignore[arg-type]
        ):
            yield Violation(
                f"CIDRs: ipv4NativeRoutingCIDR {native_net} of {rel.label()} does not cover the pod CIDR {pod}; "
                "pod traffic outside it is masqueraded. Fix: set ipv4NativeRoutingCIDR to the pod CIDR.", rel.urn,
            )
        if ipam_mode == "cluster-pool":
            pool = _get(values, "ipam.operator.clusterPoolIPv4PodCIDRList", CILIUM_DEFAULT_CLUSTER_POOL)
            for cidr in ([pool] if isinstance(pool, str) else list(pool or ())):
                net = _network(cidr)
                for other in ("service CIDR", "VPC CIDR"):
                    if net is not None and nets.get(other) is not None and net.overlaps(nets[other]):  # type: ignore[arg-type]
                        yield Violation(
                            f"CIDRs: cilium's cluster-pool range {net} ({rel.label()}) overlaps the {other} "
                            f"{nets[other]}. Fix: set ipam.operator.clusterPoolIPv4PodCIDRList to the pod CIDR.",
                            rel.urn,
                        )
