"""The network of a stack: VPC, subnet(s), internet gateway, route table, security group.

What the security group admits is derived from the variant's catalog record, never from
per-variant code: node-to-node rules are exactly ``KUBERNETES_NODE_PORTS`` + ``variant.ports``
(each rule references the group itself), plus

* pod-to-pod traffic, for variants that put pod addresses on the wire unencapsulated
  (Kubernetes' network model: pods reach each other on any port without NAT). Its source is
  the pod CIDR for routed pod ranges (L2 / VPC route-table underlays) and the node subnets for
  variants whose pods take VPC addresses (ENI IPAM, secondary IPs). Encapsulating variants
  need nothing here: the tunnel's own port carries pod traffic.
* SSH and the Kubernetes API (tcp 6443, for the stack's kubeconfig) from ``sshIngressCidr`` only.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Sequence

import pulumi
import pulumi_aws as aws

from cnibench import addresses
from cnibench.addresses import API_SERVER_PORT, SSH_PORT
from cnibench.config import NODE_SUBNET_PREFIX, ConfigError, StackConfig, key_of
from cnibench.tags import Tagging
from cnibench.variants import KUBERNETES_NODE_PORTS, PodAddressing, PortRule, Variant

# Our subnets are /24s: room for the nodes, their secondary addresses and ENI-IPAM pods
# (config.py refuses a vpcCidr without room for them).
SUBNET_PREFIX = NODE_SUBNET_PREFIX

# Where a rule's traffic may come from.
FROM_NODES = "nodes"  # the security group itself
FROM_OPERATOR = "operator"  # sshIngressCidr
FROM_PODS = "pods"  # the pod address range of the variant


@dataclass(frozen=True)
class IngressRule:
    """One security-group ingress rule, before it becomes a ``vpc.SecurityGroupIngressRule``."""

    protocol: str  # tcp | udp | icmp | an IP protocol number | -1 (all)
    from_port: int | None
    to_port: int | None
    source: str  # FROM_NODES | FROM_OPERATOR | FROM_PODS
    description: str
    cidrs: tuple[str, ...] = ()  # FROM_OPERATOR / FROM_PODS

    @property
    def key(self) -> str:
        """A stable, unique resource-name suffix, e.g. ``nodes-udp-8472``."""
        if self.protocol in ("tcp", "udp"):
            ports = f"{self.from_port}" if self.from_port == self.to_port else f"{self.from_port}-{self.to_port}"
            return f"{self.source}-{self.protocol}-{ports}"
        proto = "all" if self.protocol == "-1" else self.protocol if self.protocol == "icmp" else f"proto{self.protocol}"
        return f"{self.source}-{proto}"


def _from_port_rule(rule: PortRule, source: str) -> IngressRule:
    if rule.protocol in ("tcp", "udp"):
        return IngressRule(rule.protocol, rule.from_port, rule.to_port, source, rule.description)
    if rule.protocol == "icmp":
        # for ICMP, from_port/to_port are the ICMP type/code; -1/-1 is every type. That admits
        # cilium-health's echo requests and "fragmentation needed", which path-MTU discovery
        # across the tunnel's smaller MTU relies on.
        return IngressRule("icmp", -1, -1, source, rule.description)
    # an IP protocol number (4 = IP-in-IP): no ports (pulumi-aws rejects ports for it)
    return IngressRule(rule.protocol, None, None, source, rule.description)


def node_port_rules(variant: Variant) -> list[PortRule]:
    """Kubernetes' own node ports plus the variant's, without duplicates, in catalog order."""
    seen: set[tuple] = set()
    out = []
    for rule in (*KUBERNETES_NODE_PORTS, *variant.ports):
        ident = (rule.protocol, rule.from_port, rule.to_port)
        if ident not in seen:
            seen.add(ident)
            out.append(rule)
    return out


def pod_traffic_sources(variant: Variant, pod_cidr: str, subnet_cidrs: Sequence[str]) -> tuple[str, ...]:
    """Where pod packets come from when they cross the underlay unencapsulated; ``()`` if they
    are encapsulated (the tunnel's port, already a node rule, carries them)."""
    if variant.pod_addressing is PodAddressing.VPC:
        return tuple(subnet_cidrs)  # pods hold VPC addresses of the node subnets
    if variant.pod_addressing is PodAddressing.POD_CIDR or variant.pod_source_to_nodes:
        # routed pod ranges (or pod -> node traffic outside the tunnel): pod-CIDR source addresses
        return (pod_cidr,)
    return ()


def ingress_rules(
    variant: Variant, ssh_cidr: str, pod_cidr: str, subnet_cidrs: Sequence[str]
) -> list[IngressRule]:
    """Every ingress rule of the node security group for ``variant``."""
    rules = [_from_port_rule(r, FROM_NODES) for r in node_port_rules(variant)]
    rules.append(IngressRule("tcp", SSH_PORT, SSH_PORT, FROM_OPERATOR, "SSH from sshIngressCidr", (ssh_cidr,)))
    rules.append(IngressRule(
        "tcp", API_SERVER_PORT, API_SERVER_PORT, FROM_OPERATOR,
        "Kubernetes API from sshIngressCidr (the stack's kubeconfig)", (ssh_cidr,),
    ))
    pods = pod_traffic_sources(variant, pod_cidr, subnet_cidrs)
    if pods:
        rules.append(IngressRule("-1", None, None, FROM_PODS, f"{variant.name}: pod-to-pod traffic", pods))
    return rules


def subnet_cidrs(vpc_cidr: str, count: int, from_end: bool = False) -> list[str]:
    """``count`` /24 blocks of ``vpc_cidr``: the first ones for a VPC we create, the last ones
    in an existing VPC (whose low blocks are where AWS and most tools put their subnets)."""
    vpc = ipaddress.IPv4Network(vpc_cidr)
    prefix = max(SUBNET_PREFIX, vpc.prefixlen + 1)
    if prefix > 28:
        raise ValueError(f"VPC {vpc_cidr} is too small for node subnets")
    blocks = list(vpc.subnets(new_prefix=prefix))
    if len(blocks) < count:
        raise ValueError(f"VPC {vpc_cidr} holds {len(blocks)} /{prefix} subnet(s), {count} needed")
    chosen = blocks[-count:] if from_end else blocks[:count]
    return [str(b) for b in chosen]


def _node_subnets(vpc_cidr: str, count: int, from_end: bool = False) -> list[str]:
    """:func:`subnet_cidrs`, with a VPC too small for them reported as the config error it is."""
    try:
        return subnet_cidrs(vpc_cidr, count, from_end)
    except ValueError as exc:
        raise ConfigError([
            f"{key_of('vpc_cidr')}: {exc}; cnibench puts each node subnet in a /{SUBNET_PREFIX}: use a VPC of "
            f"/{SUBNET_PREFIX - 1} or larger"
        ]) from None


class Network(pulumi.ComponentResource):
    """VPC (new, or existing by ``vpcId``), node subnet(s), route table, node security group.

    Attributes (the agreed contract): ``vpc_id``, ``benchmark_subnet_ids`` (one, or two with
    ``splitSubnets``), ``control_plane_subnet_id``, ``security_group_id``, ``route_table_id``
    (the route table of the nodes' subnets; flannel's aws-vpc backend writes to it).
    """

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        tags: Tagging,
        ssh_cidr: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("cnibench:index:Network", name, None, opts)
        self.variant = cfg.variant_record
        child = pulumi.ResourceOptions(parent=self)
        subnet_count = 2 if cfg.split_subnets else 1

        if cfg.vpc_id:
            vpc_cidr, igw_id = _existing_vpc(cfg, self)
            self.vpc_id: pulumi.Output[str] = pulumi.Output.from_input(cfg.vpc_id)
            cidrs = _node_subnets(vpc_cidr, subnet_count, from_end=True)
        else:
            vpc = aws.ec2.Vpc(
                f"{name}-vpc",
                cidr_block=cfg.vpc_cidr,
                enable_dns_support=True,
                enable_dns_hostnames=True,
                tags=tags.for_(f"{name}-vpc"),
                opts=child,
            )
            igw = aws.ec2.InternetGateway(
                f"{name}-igw", vpc_id=vpc.id, tags=tags.for_(f"{name}-igw"), opts=child
            )
            self.vpc_id = vpc.id
            igw_id = igw.id
            cidrs = _node_subnets(cfg.vpc_cidr, subnet_count)
        self.subnet_cidrs: list[str] = cidrs

        # Our own route table (not the VPC's main one): flannel aws-vpc adds one route per node
        # to it. Routes are separate resources, never inline `routes`, so that Pulumi does not
        # treat the routes the CNI writes as drift to remove.
        table = aws.ec2.RouteTable(
            f"{name}-routes", vpc_id=self.vpc_id, tags=tags.for_(f"{name}-routes"), opts=child
        )
        aws.ec2.Route(
            f"{name}-default-route",
            route_table_id=table.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=igw_id,
            opts=child,
        )
        self.route_table_id: pulumi.Output[str] = table.id

        self.subnets: list[aws.ec2.Subnet] = []
        for index, cidr in enumerate(cidrs):
            suffix = "ab"[index]
            subnet = aws.ec2.Subnet(
                f"{name}-nodes-{suffix}",
                vpc_id=self.vpc_id,
                cidr_block=cidr,
                availability_zone=cfg.az,  # both subnets in one AZ: the placement group needs it
                map_public_ip_on_launch=False,  # instances ask for a public address themselves
                tags=tags.for_(f"{name}-nodes-{suffix}"),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-nodes-{suffix}", subnet_id=subnet.id, route_table_id=table.id, opts=child
            )
            self.subnets.append(subnet)
        self.benchmark_subnet_ids: list[pulumi.Output[str]] = [s.id for s in self.subnets]
        self.control_plane_subnet_id: pulumi.Output[str] = self.subnets[0].id

        sg = aws.ec2.SecurityGroup(
            f"{name}-nodes",
            vpc_id=self.vpc_id,
            description=f"cnibench nodes ({self.variant.name})",
            tags=tags.for_(f"{name}-nodes"),
            opts=child,
        )
        self.security_group_id: pulumi.Output[str] = sg.id
        self._tags = tags
        self._name = name
        self.rules = ingress_rules(self.variant, ssh_cidr, cfg.pod_cidr, cidrs)
        if cfg.allow_ssh_from_anywhere and addresses.world_open(ssh_cidr):
            # accepted, but never silently: name every port the override opens
            pulumi.log.warn(
                f"{key_of('allow_ssh_from_anywhere')}=true: {key_of('ssh_ingress_cidr')} {ssh_cidr} opens "
                f"{addresses.operator_ports_text()} on every node to {addresses.public_addresses(ssh_cidr):,} "
                "public addresses", sg)
        self.ingress = [self._ingress(rule) for rule in self.rules]
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-egress-all",
            security_group_id=sg.id,
            ip_protocol="-1",
            cidr_ipv4="0.0.0.0/0",
            description="packages, images, AWS APIs",
            tags=tags.for_(f"{name}-egress-all"),
            opts=child,
        )
        self.register_outputs({
            "vpcId": self.vpc_id,
            "routeTableId": self.route_table_id,
            "securityGroupId": self.security_group_id,
        })

    def _ingress(self, rule: IngressRule) -> list[aws.vpc.SecurityGroupIngressRule]:
        common = dict(
            security_group_id=self.security_group_id,
            ip_protocol=rule.protocol,
            from_port=rule.from_port,
            to_port=rule.to_port,
            description=rule.description,
        )
        name = f"{self._name}-in-{rule.key}"
        opts = pulumi.ResourceOptions(parent=self)
        if rule.source == FROM_NODES:
            return [aws.vpc.SecurityGroupIngressRule(
                name, referenced_security_group_id=self.security_group_id,
                tags=self._tags.for_(name), opts=opts, **common,
            )]
        out = []
        for index, cidr in enumerate(rule.cidrs):
            rname = name if len(rule.cidrs) == 1 else f"{name}-{index}"
            out.append(aws.vpc.SecurityGroupIngressRule(
                rname, cidr_ipv4=cidr, tags=self._tags.for_(rname), opts=opts, **common,
            ))
        return out

    def allow_between_nodes(
        self, name: str, rules: Iterable[PortRule], opts: pulumi.ResourceOptions | None = None
    ) -> list[aws.vpc.SecurityGroupIngressRule]:
        """Extra node-to-node rules for another component (e.g. the benchmark's host-network
        servers), tagged like the rest."""
        out = []
        for rule in rules:
            ingress = _from_port_rule(rule, FROM_NODES)
            rname = f"{name}-{ingress.key}"
            out.append(aws.vpc.SecurityGroupIngressRule(
                rname,
                security_group_id=self.security_group_id,
                referenced_security_group_id=self.security_group_id,
                ip_protocol=ingress.protocol,
                from_port=ingress.from_port,
                to_port=ingress.to_port,
                description=ingress.description,
                tags=self._tags.for_(rname),
                opts=pulumi.ResourceOptions.merge(pulumi.ResourceOptions(parent=self), opts),
            ))
        return out


def _existing_vpc(cfg: StackConfig, parent: pulumi.Resource) -> tuple[str, pulumi.Input[str]]:
    """CIDR and internet gateway of the VPC named by ``vpcId`` (looked up at deploy time)."""
    invoke = pulumi.InvokeOptions(parent=parent)
    vpc = aws.ec2.get_vpc(id=cfg.vpc_id, opts=invoke)
    if vpc.cidr_block != cfg.vpc_cidr:
        # the pod/service overlap checks ran against vpcCidr: they must see the real range
        raise ConfigError([
            f"{key_of('vpc_cidr')}: {cfg.vpc_cidr!r} is not the CIDR of {key_of('vpc_id')} "
            f"{cfg.vpc_id} ({vpc.cidr_block}); set {key_of('vpc_cidr')} to {vpc.cidr_block}"
        ])
    try:
        gateway = aws.ec2.get_internet_gateway(
            filters=[aws.ec2.GetInternetGatewayFilterArgs(name="attachment.vpc-id", values=[cfg.vpc_id])],
            opts=invoke,
        )
    except Exception as exc:  # noqa: BLE001 - the provider raises a bare error for "no matching Internet Gateway found"
        raise ConfigError([
            f"{key_of('vpc_id')}: found no internet gateway attached to VPC {cfg.vpc_id} ({exc}); "
            "the nodes need one to install packages and to be reached over SSH "
            "(or leave vpcId empty to create a VPC)"
        ]) from None
    return vpc.cidr_block, gateway.internet_gateway_id
