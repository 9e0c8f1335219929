"""The nodes: two identical benchmark instances and a control-plane node.

Fairness is the point of this component: the client and the server are the same instance
type, from the same AMI, in the same availability zone and the same cluster placement group,
and in the same subnet unless ``splitSubnets`` asks for two. Everything a variant needs from
the machines (source/dest check, IAM actions, secondary addresses) comes from the catalog.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import sys
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pulumi
import pulumi_aws as aws
import pulumi_command as command
import pulumi_tls as tls

from cnibench import hostkeys
from cnibench.config import ConfigError, StackConfig, key_of
from cnibench.program.network import Network
from cnibench.tags import BENCHMARK_ROLES, CLIENT, CONTROL_PLANE, ROLE_TAG, SERVER, STACK_TAG, Tagging
from cnibench.variants import IamScope, Variant

SSH_USER = "ubuntu"  # the login of Canonical's Ubuntu images
# Canonical's AWS account (https://documentation.ubuntu.com/aws/en/latest/aws-how-to/instances/find-ubuntu-images/)
CANONICAL_OWNER = "099720109477"
UBUNTU_IMAGE = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{arch}-server-*"
# EC2 architecture names -> Ubuntu image architecture names
_ARCH = {"x86_64": "amd64", "arm64": "arm64"}
ROOT_VOLUME_GIB = 40

# Host addresses inside each node subnet (AWS reserves .0-.3 and the last one). Explicit
# addresses keep the secondary ranges of one node from being handed to another at launch.
_HOST_OFFSET = {CONTROL_PLANE: 10, CLIENT: 20, SERVER: 30}
_SECONDARY_OFFSET = {CONTROL_PLANE: 40, CLIENT: 80, SERVER: 120}
_MAX_SECONDARY = 32

# Which nodes run the component that calls the AWS API with ``variant.iam_actions``: flannel's
# aws-vpc backend runs in the flannel DaemonSet (every node); cilium's ENI IPAM calls come from
# cilium-operator, which the CNI install pins to the control plane.
_IAM_ROLES_BY_CNI: dict[str, tuple[str, ...]] = {"cilium": (CONTROL_PLANE,)}
_ALL_ROLES = (CONTROL_PLANE, CLIENT, SERVER)


def iam_roles(variant: Variant) -> tuple[str, ...]:
    """The node roles whose instance profile carries ``variant.iam_actions`` (none without)."""
    if not variant.iam_actions:
        return ()
    return _IAM_ROLES_BY_CNI.get(variant.cni, _ALL_ROLES)


def scoped_statements(
    scope: IamScope, actions: Sequence[str], partition: str, region: str, stack: str
) -> list[dict]:
    """The statements that grant ``actions`` on the resources of ``scope`` only.

    Route tables are named by the stack's tag, not by ARN: the tag (``cnibench:stack``, on every
    resource of the stack) is known at preview, so the policy pack can read the policy before
    anything is created, while a route table's ARN is not. EC2 accepts ``ec2:ResourceTag/KEY`` on
    the route-table resource of CreateRoute/DeleteRoute (service authorization reference,
    "Actions defined by Amazon EC2"); the node role has no ec2:CreateTags, so no node can tag
    another table into its reach. The route's target ENI is a resource of the same request and
    carries no stack tag (the instance's primary ENI is created by RunInstances untagged), so it is
    granted in a statement of its own, for these route actions only."""
    arn = f"arn:{partition}:ec2:{region}:*"
    actions = sorted(actions)
    sid = "".join(part.capitalize() for part in scope.value.split("-"))
    if scope is IamScope.ROUTE_TABLE:
        return [
            {
                "Sid": f"{sid}OfTheStack",
                "Effect": "Allow",
                "Action": actions,
                "Resource": f"{arn}:route-table/*",
                "Condition": {"StringEquals": {f"ec2:ResourceTag/{STACK_TAG}": stack}},
            },
            {"Sid": f"{sid}Targets", "Effect": "Allow", "Action": actions, "Resource": f"{arn}:network-interface/*"},
        ]
    if scope is IamScope.NETWORK_INTERFACES:
        return [{"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": f"{arn}:network-interface/*"}]
    raise ValueError(f"unknown IAM scope {scope!r}")


def iam_policy(variant: Variant, partition: str, region: str, stack: str) -> dict:
    """The inline policy: exactly ``variant.iam_actions``; those the catalog scopes
    (``variant.iam_scopes``) on the stack's resources only (``scoped_statements``); the rest
    (EC2's Describe* calls, which support no resource-level permissions) on ``*``."""
    statements: list[dict] = []
    unscoped = sorted(a for a in variant.iam_actions if a not in variant.iam_scopes)
    if unscoped:
        statements.append({"Sid": "Unscoped", "Effect": "Allow", "Action": unscoped, "Resource": "*"})
    for scope in IamScope:
        actions = [a for a, s in variant.iam_scopes.items() if s is scope]
        if actions:
            statements.extend(scoped_statements(scope, actions, partition, region, stack))
    return {"Version": "2012-10-17", "Statement": statements}


# the local command that prints a node's SSH host key: this Python (the program's virtualenv,
# where cnibench is installed) running cnibench/hostkeys.py
HOST_KEY_COMMAND = f"{shlex.quote(sys.executable)} -m cnibench.hostkeys"


ASSUME_ROLE_EC2 = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }],
}


@dataclass(frozen=True)
class Address:
    private_ip: str
    secondary_ips: tuple[str, ...]


def address_plan(
    subnets: dict[str, str], secondary_counts: dict[str, int]
) -> dict[str, Address]:
    """Primary and secondary private addresses of each role, from the CIDR of its subnet."""
    plan = {}
    for role, cidr in subnets.items():
        secondary_count = secondary_counts.get(role, 0)
        if secondary_count > _MAX_SECONDARY:
            raise ValueError(f"at most {_MAX_SECONDARY} secondary addresses per node, {secondary_count} asked")
        net = ipaddress.IPv4Network(cidr)
        last = _SECONDARY_OFFSET[role] + secondary_count
        if last >= net.num_addresses - 1:
            raise ValueError(f"subnet {cidr} is too small for the address plan of {role}")
        plan[role] = Address(
            private_ip=str(net[_HOST_OFFSET[role]]),
            secondary_ips=tuple(str(net[_SECONDARY_OFFSET[role] + i]) for i in range(secondary_count)),
        )
    return plan


@dataclass
class Node:
    """One machine of the cluster, as the cluster, CNI and benchmark components see it."""

    role: str  # control-plane | client | server (the combined node is listed under two roles)
    instance: aws.ec2.Instance
    private_ip: pulumi.Output[str]
    public_ip: pulumi.Output[str]
    node_name: pulumi.Output[str]  # the Kubernetes node name (the instance's private DNS name)
    secondary_private_ips: pulumi.Output[list[str]]
    subnet_id: pulumi.Output[str]
    instance_type: str
    ami: pulumi.Output[str]
    availability_zone: str
    benchmark_role: str | None = None  # client/server for benchmark nodes
    architecture: str = "amd64"  # Ubuntu/Go name: amd64 or arm64
    # "ssh-ed25519 BASE64", read from the instance's console output (cnibench/hostkeys.py): every
    # SSH connection to the node verifies it
    host_key: pulumi.Output[str] | None = None


def check_secondary_ips(cfg: StackConfig, variant: Variant, infos: dict[str, Any]) -> None:
    """The benchmark nodes' secondary addresses must fit on one interface of their type: EC2
    refuses ``RunInstances`` otherwise (the per-interface limit counts the primary address;
    EC2 User Guide, "IP addresses per network interface per instance type")."""
    wanted = variant.node_secondary_ips
    info = infos.get("instance_type")
    if not wanted or info is None:
        return
    limit = info.maximum_ipv4_addresses_per_interface
    if limit is None:
        pulumi.log.warn(f"{key_of('instance_type')} {cfg.instance_type!r}: AWS reported no per-interface IPv4 limit; "
                        f"{variant.name} needs {wanted} secondary addresses per benchmark node (not checked)")
        return
    if wanted > limit - 1:
        raise ConfigError([
            f"{key_of('instance_type')}: {cfg.instance_type!r} allows {limit} IPv4 addresses per network interface "
            f"(1 primary + {limit - 1} secondary); {variant.name} gives each benchmark node {wanted} secondary "
            f"addresses for its pods: pick an instance type with at least {wanted + 1} addresses per interface"
        ])


def node_architecture(cfg: StackConfig, infos: dict[str, Any]) -> str:
    """The Ubuntu/Go name (amd64, arm64) of the one architecture all nodes share: every node
    boots one AMI, and binaries downloaded to the nodes (ipvlan's CNI plugins) must match it."""
    arches = {}
    for key, info in infos.items():
        supported = [a for a in (info.supported_architectures or []) if a in _ARCH]
        if not supported:
            raise ConfigError([
                f"{key_of(key)}: {getattr(cfg, key)!r} supports none of {sorted(_ARCH)} "
                f"(it reports {info.supported_architectures})"
            ])
        arches[key] = supported[0]
    if len(set(arches.values())) > 1:
        raise ConfigError([
            f"{key_of('control_plane_instance_type')}: {cfg.control_plane_instance_type!r} is "
            f"{arches['control_plane_instance_type']} but {key_of('instance_type')} "
            f"{cfg.instance_type!r} is {arches['instance_type']}; all nodes share one AMI: "
            "pick instance types of one architecture"
        ])
    return _ARCH[arches["instance_type"]]


def _pick_ami(cfg: StackConfig, arch: str, parent: pulumi.Resource) -> str:
    """``amiId``, or the latest Ubuntu 24.04 for ``arch`` (amd64, arm64)."""
    if cfg.ami_id:
        return cfg.ami_id
    ami = aws.ec2.get_ami(
        most_recent=True,
        owners=[CANONICAL_OWNER],
        filters=[
            aws.ec2.GetAmiFilterArgs(name="name", values=[UBUNTU_IMAGE.format(arch=arch)]),
            aws.ec2.GetAmiFilterArgs(name="virtualization-type", values=["hvm"]),
            aws.ec2.GetAmiFilterArgs(name="root-device-type", values=["ebs"]),
        ],
        opts=pulumi.InvokeOptions(parent=parent),
    )
    return ami.id


def _host_key(name: str, instance: aws.ec2.Instance, cfg: StackConfig, parent: pulumi.Resource) -> pulumi.Output[str]:
    """The instance's SSH host key, read on the operator's machine from its console output by
    ``python -m cnibench.hostkeys`` (boto3 ``GetConsoleOutput`` with the operator's credentials and
    profile) once per instance: a replaced instance has new keys and is read again."""
    environment = {hostkeys.ENV_INSTANCE: instance.id, hostkeys.ENV_REGION: cfg.region}
    profile = pulumi.Config("aws").get("profile")
    if profile:
        environment["AWS_PROFILE"] = profile
    read = command.local.Command(
        f"{name}-host-key",
        create=HOST_KEY_COMMAND,
        environment=environment,
        triggers=[instance.id],
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return read.stdout.apply(lambda out: out.strip())


class NodePair(pulumi.ComponentResource):
    """Two matched benchmark instances and the control plane (separate by default).

    Contract: ``nodes`` (roles ``control-plane``, ``client``, ``server``; with
    ``controlPlaneOnBenchmarkNode`` the control plane is the client node), ``private_key``
    (secret), ``ssh_user``.
    """

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        network: Network,
        tags: Tagging,
        instance_types: Mapping[str, Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("cnibench:index:NodePair", name, None, opts)
        variant = cfg.variant_record
        self.variant = variant
        child = pulumi.ResourceOptions(parent=self)
        self.ssh_user = SSH_USER

        key = tls.PrivateKey(f"{name}-ssh", algorithm="ED25519", opts=child)
        self.private_key: pulumi.Output[str] = pulumi.Output.secret(key.private_key_openssh)
        key_pair = aws.ec2.KeyPair(
            f"{name}-ssh",
            public_key=key.public_key_openssh,
            tags=tags.for_(f"{name}-ssh"),
            opts=child,
        )
        # looked up (and refused when unknown) by the preflight, before the first AWS resource
        infos = dict(instance_types)
        check_secondary_ips(cfg, variant, infos)
        self.architecture = node_architecture(cfg, infos)
        self.ami_id = _pick_ami(cfg, self.architecture, self)

        placement = aws.ec2.PlacementGroup(
            f"{name}-benchmark",
            strategy="cluster",
            tags=tags.for_(f"{name}-benchmark"),
            opts=child,
        )
        self.placement_group = placement

        # subnet of each machine: the server takes the second subnet with splitSubnets
        subnet_index = {CONTROL_PLANE: 0, CLIENT: 0, SERVER: 1 if cfg.split_subnets else 0}
        machines = [CLIENT, SERVER] if cfg.control_plane_on_benchmark_node else [CONTROL_PLANE, CLIENT, SERVER]
        # secondary addresses only where pods take them: the benchmark nodes (the control plane
        # runs no ipvlan pod, and a t3.medium could not hold them: 6 addresses per interface)
        plan = address_plan(
            {role: network.subnet_cidrs[subnet_index[role]] for role in machines},
            {role: variant.node_secondary_ips if role in BENCHMARK_ROLES else 0 for role in machines},
        )

        profiles = self._instance_profiles(name, cfg, tags)
        self.nodes: dict[str, Node] = {}
        for role in machines:
            benchmark = role in BENCHMARK_ROLES
            instance_type = cfg.instance_type if benchmark else cfg.control_plane_instance_type
            role_tags = {ROLE_TAG: role}
            if cfg.control_plane_on_benchmark_node and role == CLIENT:
                role_tags["cnibench:control-plane"] = "true"
            addr = plan[role]
            instance_name = f"{name}-{role}"
            # the combined node gets the control plane's instance profile too
            profile = profiles.get(role) or (
                profiles.get(CONTROL_PLANE) if cfg.control_plane_on_benchmark_node and role == CLIENT else None
            )
            instance = aws.ec2.Instance(
                instance_name,
                ami=self.ami_id,
                instance_type=instance_type,
                availability_zone=cfg.az,
                subnet_id=network.benchmark_subnet_ids[subnet_index[role]],
                private_ip=addr.private_ip,
                secondary_private_ips=list(addr.secondary_ips) or None,
                vpc_security_group_ids=[network.security_group_id],
                associate_public_ip_address=True,
                key_name=key_pair.key_name,
                placement_group=placement.name if benchmark else None,
                # off where the datapath routes pod addresses through the node (catalog)
                source_dest_check=not variant.source_dest_check_off,
                iam_instance_profile=profile.name if profile is not None else None,
                metadata_options=aws.ec2.InstanceMetadataOptionsArgs(
                    http_endpoint="enabled",
                    # IMDSv2 only, unless the CNI's metadata client predates session tokens (catalog)
                    http_tokens="optional" if variant.needs_imdsv1 else "required",
                    # 1 hop: the agents that read metadata (flannel, cilium) use the host network
                    http_put_response_hop_limit=1,
                ),
                root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
                    encrypted=True,
                    volume_type="gp3",
                    volume_size=ROOT_VOLUME_GIB,
                    delete_on_termination=True,
                    tags=tags.for_(f"{instance_name}-root", **role_tags),
                ),
                tags=tags.for_(instance_name, **role_tags),
                # fixed private addresses: the old instance must go before its replacement comes.
                # A looked-up AMI is resolved once: a newer Ubuntu image on a later `up` (e.g. a
                # benchmark-only re-run) must not replace the nodes; an explicit amiId still does.
                opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True,
                                            ignore_changes=None if cfg.ami_id else ["ami"]),
            )
            public_ip: pulumi.Output[str] = instance.public_ip
            if role == CONTROL_PLANE or (cfg.control_plane_on_benchmark_node and role == CLIENT):
                # The API server's public endpoint must not move: an instance-type change stops
                # and starts the instance, which gives it a new auto-assigned public IP that the
                # API certificate (certSANs) and the exported kubeconfig do not name. An Elastic
                # IP stays; it follows a replaced instance (the association is an in-place update).
                eip = aws.ec2.Eip(
                    f"{name}-api",
                    domain="vpc",
                    instance=instance.id,
                    tags=tags.for_(f"{name}-api", **role_tags),
                    opts=child,
                )
                self.api_eip = eip
                public_ip = eip.public_ip
            node = Node(
                role=role,
                instance=instance,
                host_key=_host_key(instance_name, instance, cfg, self),
                private_ip=instance.private_ip,
                public_ip=public_ip,
                node_name=instance.private_dns,
                secondary_private_ips=pulumi.Output.from_input(list(addr.secondary_ips)),
                subnet_id=instance.subnet_id,
                instance_type=instance_type,
                ami=instance.ami,
                availability_zone=cfg.az,
                benchmark_role=role if benchmark else None,
                architecture=self.architecture,
            )
            self.nodes[role] = node
        if cfg.control_plane_on_benchmark_node:
            self.nodes[CONTROL_PLANE] = self.nodes[CLIENT]
        self.register_outputs({})

    def _instance_profiles(self, name: str, cfg: StackConfig, tags: Tagging) -> dict[str, aws.iam.InstanceProfile]:
        """One role + inline policy (exactly ``variant.iam_actions``, scoped as ``iam_policy``
        says) + instance profile, for the node roles that run the API caller; nothing for
        variants without IAM actions."""
        variant = cfg.variant_record
        roles = iam_roles(variant)
        if not roles:
            return {}
        child = pulumi.ResourceOptions(parent=self)
        partition = aws.get_partition(opts=pulumi.InvokeOptions(parent=self)).partition
        role = aws.iam.Role(
            f"{name}-{variant.cni}",
            assume_role_policy=json.dumps(ASSUME_ROLE_EC2),
            description=f"cnibench {variant.name}: AWS calls of the CNI",
            tags=tags.for_(f"{name}-{variant.cni}"),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-{variant.cni}",
            role=role.id,
            policy=json.dumps(iam_policy(variant, partition, cfg.region, str(tags.base[STACK_TAG]))),
            opts=child,
        )
        profile = aws.iam.InstanceProfile(
            f"{name}-{variant.cni}",
            role=role.name,
            tags=tags.for_(f"{name}-{variant.cni}"),
            opts=child,
        )
        self.iam_role = role
        return {r: profile for r in roles}

    @property
    def benchmark_nodes(self) -> list[Node]:
        return [self.nodes[CLIENT], self.nodes[SERVER]]

    @property
    def machines(self) -> list[Node]:
        """Each instance once (the combined control plane/client node appears once)."""
        seen: dict[int, Node] = {}
        for node in self.nodes.values():
            seen.setdefault(id(node.instance), node)
        return list(seen.values())

    def outputs(self) -> dict[str, pulumi.Output[dict]]:
        """Per role: role, Kubernetes node name, instance id and type, AMI, AZ, subnet, addresses."""
        return {role: self._output_of(role, node) for role, node in self.nodes.items()}

    @staticmethod
    def _output_of(role: str, node: Node) -> pulumi.Output[dict]:
        def describe(v: list[Any]) -> dict[str, Any]:
            return {
                "role": role,
                "name": v[0],
                "instanceId": v[1],
                "instanceType": node.instance_type,
                "ami": v[2],
                "availabilityZone": node.availability_zone,
                "subnetId": v[3],
                "privateIp": v[4],
                "publicIp": v[5],
                "secondaryPrivateIps": v[6],
            }

        return pulumi.Output.all(
            node.node_name, node.instance.id, node.ami, node.subnet_id,
            node.private_ip, node.public_ip, node.secondary_private_ips,
        ).apply(describe)

    def ssh_commands(self, key_file: str) -> dict[str, pulumi.Output[str]]:
        """Per role: the command that opens a shell on the node with the stack's key."""
        return {
            role: node.public_ip.apply(
                lambda ip: f"ssh -i {key_file} -o StrictHostKeyChecking=accept-new {self.ssh_user}@{ip}"
            )
            for role, node in self.nodes.items()
        }
