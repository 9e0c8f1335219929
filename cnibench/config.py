"""The stack configuration: one typed object, validated before any resource is declared.

Keys are the ``cnibench:<key>`` entries of a stack file (``stacks/Pulumi.<variant>.yaml``).
The defaults here are the same as the ones declared in ``Pulumi.yaml`` (the Pulumi CLI
applies those; Pulumi's mocks do not): ``tests/test_config.py`` keeps the two equal.

Every error names the key, the bad value and what would be valid, and all problems of a
config are reported at once.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from typing import Any, Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cnibench import addresses, tags
from cnibench.errors import InputError
from cnibench.variants import CATALOG, Variant, alternatives, get_variant

NAMESPACE = "cnibench"

# The placeholder that stands for "the public address of the machine running pulumi".
SSH_AUTO = "auto"

# The regions of AWS's commercial partition ("aws"): the "regions" of partition "aws" in botocore's
# endpoint data (botocore 1.44.8, botocore/data/endpoints.json; tests/test_config_aws.py keeps this
# list equal to the installed botocore's). The other partitions (aws-cn, aws-us-gov, aws-iso*, ...)
# are not offered: the nodes boot Canonical's images looked up under owner 099720109477
# (cnibench/program/nodes.py), an account of the commercial partition. The program looks up the
# region's zones at deploy time (cnibench/program/preflight.py); a region added after this list
# needs a line here.
AWS_REGIONS = frozenset({
    "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
    "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
    "ap-southeast-5", "ap-southeast-6", "ap-southeast-7", "ca-central-1", "ca-west-1", "eu-central-1",
    "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3",
    "il-central-1", "me-central-1", "me-south-1", "mx-central-1", "sa-east-1", "us-east-1", "us-east-2",
    "us-west-1", "us-west-2",
})
# "The code for an Availability Zone is its Region code followed by a letter identifier"
# (AWS Regions and Availability Zones guide, docs.aws.amazon.com/global-infrastructure/latest/regions/
# aws-availability-zones.html). Which letters a region has, for this account, only the zone lookup
# knows (aws.get_availability_zones, cnibench/program/preflight.py).
_ZONE_LETTER = re.compile(r"^[a-z]$")
# EC2 instance type names are <family>.<size> (c6i.8xlarge, u-6tb1.metal, c7gn.16xlarge); whether
# one exists in the region only DescribeInstanceTypes can tell (aws.ec2.get_instance_type in
# cnibench/program/nodes.py).
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
# EC2 resource IDs: a prefix, a hyphen and 8 (the short format) or 17 (the long format) hexadecimal
# characters (EC2 User Guide, "Resource IDs": "ami-" / "vpc-" ... "17-character IDs").
_EC2_ID = {"ami_id": re.compile(r"^ami-(?:[0-9a-f]{8}|[0-9a-f]{17})$"),
           "vpc_id": re.compile(r"^vpc-(?:[0-9a-f]{8}|[0-9a-f]{17})$")}

# Tag limits (EC2 User Guide, "Tag your Amazon EC2 resources", tag restrictions): at most 50 tags per
# resource; a key of 1-128 and a value of 0-256 Unicode characters; the prefix aws: (in any case) is
# reserved for AWS and cannot be used in keys or values.
MAX_TAGS_PER_RESOURCE = 50
MAX_TAG_KEY_CHARS = 128
MAX_TAG_VALUE_CHARS = 256
RESERVED_TAG_PREFIX = "aws:"
# The same page: "the allowed characters across all AWS services are: letters (a-z, A-Z), numbers
# (0-9), and spaces representable in UTF-8, and the following characters: + - = . _ : / @" (EC2
# itself allows any character, but the provider puts these tags on the IAM role and instance
# profile too, and IAM refuses others mid-deployment).
_TAG_TEXT = re.compile(r"[\w +\-=.:/@]*")
# Amazon VPC quotas, "Routes per route table (non-propagated routes)": 50 by default, adjustable
# up to 1,000.
MAX_ROUTE_TABLE_QUOTA = 1000

_K8S_MINOR = re.compile(r"1\.([0-9]+)")  # ASCII digits only
# The Kubernetes minors with a package repository on pkgs.k8s.io (one repository per minor,
# https://pkgs.k8s.io/core:/stable:/v1.<minor>/deb/; node-prereqs.sh installs kubeadm, kubelet and
# kubectl from it), in one place:
# - the oldest is v1.24: the community repositories start there (Kubernetes blog 2023-08-15,
#   "pkgs.k8s.io: Introducing Kubernetes Community-Owned Package Repositories");
# - the newest is v1.37: the latest release series on https://kubernetes.io/releases/ (1.37.1
#   released 2026-09-15; 1.35 is supported until 2027-02-28, https://kubernetes.io/releases/1.35/).
#   A newer minor needs this line changed (and a look at cnibench/program/cluster.py's kubeadm API).
OLDEST_KUBERNETES_MINOR = 24
NEWEST_KUBERNETES_MINOR = 37
KUBERNETES_MINORS = tuple(range(OLDEST_KUBERNETES_MINOR, NEWEST_KUBERNETES_MINOR + 1))

# Network ranges.
# - "The allowed block size is between a /16 netmask (65,536 IP addresses) and /28 netmask (16 IP
#   addresses)" (Amazon VPC User Guide, "VPC CIDR blocks"; the same in the EC2 API's CreateVpc).
#   cnibench puts its node subnet(s) in /24 blocks of the VPC (cnibench/program/network.py
#   SUBNET_PREFIX; the node addresses use host numbers up to .151, cnibench/program/nodes.py), so
#   the VPC must hold one /24 per subnet: /23 or larger.
AWS_VPC_PREFIXES = (16, 28)
NODE_SUBNET_PREFIX = 24
# - kube-apiserver refuses a service range of more than 20 host bits ("specified
#   --service-cluster-ip-range is too large", kubernetes/kubernetes
#   cmd/kube-apiserver/app/options/validation.go, validateClusterIPFlags: bits-ones > 20; its test
#   text: "for 32-bit addresses, the mask must be >= 12").
# - The range must hold the kubernetes service (its first address) and the cluster DNS service:
#   kubeadm gives kube-dns the 10th address ("GetDNSIP returns a dnsIP, which is 10th IP in
#   svcSubnet CIDR range", kubernetes/kubernetes cmd/kubeadm/app/constants/constants.go), which a
#   /29 (8 addresses) does not have: /28 at most.
SERVICE_PREFIXES = (12, 28)
KUBEADM_DNS_SERVICE_INDEX = 10

# Bounds of the benchmark keys (cnibench/suite/plan.py): iperf3 accepts at most 128 parallel
# streams (MAX_STREAMS in esnet/iperf src/iperf.h, "#define MAX_STREAMS 128"); a test longer than an
# hour or more than 100 repetitions would not fit any benchmarkTimeout worth waiting for (the whole
# plan is compared with benchmarkTimeout before anything is created, cnibench/program/preflight.py).
MAX_BENCHMARK_DURATION_S = 3600
MAX_BENCHMARK_REPEAT = 100
MAX_BENCHMARK_STREAMS = 128
# The server pod writes one file per HTTP response size before nginx serves it (pod-setup.sh:
# `head -c <size> /dev/zero | tr ... >/srv/cnibench/<size>`, in the container's writable layer on
# the node's 40 GiB root volume, ROOT_VOLUME_GIB in cnibench/program/nodes.py), and wrk fetches it
# over and over with keep-alive: 16 MiB is far beyond the references' sizes (350 B, 4 KiB) and
# written in a moment; a 1 TB file would not fit on the node's disk at all.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
# expiryHours dates the cnibench:expires-at tag that marks leftovers for `cnibench matrix --cleanup`:
# a stack kept for a month of re-runs is the longest use worth supporting (720 hours = 30 days);
# beyond that the tag no longer marks leftovers (and 10**9 hours overflows Python's datetime).
MAX_EXPIRY_HOURS = 30 * 24
# benchmarkTimeout: a week is beyond any plan the bounds above allow to finish.
MAX_BENCHMARK_TIMEOUT_S = 7 * 24 * 3600


class ConfigError(InputError):
    """One or more invalid config values; ``problems`` holds one line per key."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid cnibench configuration:\n{lines}")


class StackConfig(BaseModel):
    """The ``cnibench:*`` keys of a stack. Field aliases are the config key names."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    variant: str = Field("", description="CNI variant to benchmark (one of the catalog's variants)")
    region: str = Field("us-east-1", description="AWS region")
    availability_zone: str = Field(
        "", alias="availabilityZone",
        description="Availability zone of the node pair; empty means the region's 'a' zone",
    )
    instance_type: str = Field(
        "c6i.8xlarge", alias="instanceType",
        description="Instance type of both benchmark nodes (prefer sizes with sustained, not 'up to', bandwidth)",
    )
    control_plane_instance_type: str = Field(
        "t3.medium", alias="controlPlaneInstanceType",
        description="Instance type of the separate control-plane node",
    )
    control_plane_on_benchmark_node: bool = Field(
        False, alias="controlPlaneOnBenchmarkNode",
        description="Run the control plane on the first benchmark node instead of a separate node",
    )
    ami_id: str = Field(
        "", alias="amiId", description="AMI of all nodes; empty means the latest Ubuntu 24.04 LTS from Canonical",
    )
    kubernetes_version: str = Field(
        "1.33", alias="kubernetesVersion", description="Kubernetes minor version (pkgs.k8s.io repository)",
    )
    vpc_id: str = Field("", alias="vpcId", description="Use this existing VPC instead of creating one")
    vpc_cidr: str = Field("10.20.0.0/16", alias="vpcCidr", description="CIDR of the VPC")
    pod_cidr: str = Field("10.244.0.0/16", alias="podCidr", description="Pod CIDR (kubeadm --pod-network-cidr)")
    service_cidr: str = Field("10.96.0.0/12", alias="serviceCidr", description="Service CIDR")
    node_pod_mask_size: int = Field(
        24, alias="nodePodMaskSize", description="Prefix length of each node's pod range",
    )
    underlay_mtu: int = Field(9001, alias="underlayMtu", description="MTU of the node network (9001 inside a VPC)")
    split_subnets: bool = Field(
        False, alias="splitSubnets",
        description="Put the two benchmark nodes in two subnets (L2-dependent variants are refused by the policy pack)",
    )
    ssh_ingress_cidr: str = Field(
        SSH_AUTO, alias="sshIngressCidr",
        description="Who may SSH to the nodes; 'auto' means this machine's public address /32",
    )
    allow_ssh_from_anywhere: bool = Field(
        False, alias="allowSshFromAnywhere", description="Accept a world-open sshIngressCidr (more than a /16 of public addresses): it opens tcp/22 and tcp/6443",
    )
    benchmark_duration: int = Field(
        10, alias="benchmarkDuration",
        description="Seconds each test measures (iperf3 runs 1 s more, omitted; sockperf and wrk run this long)",
    )
    benchmark_repeat: int = Field(
        5, alias="benchmarkRepeat", description="Repetitions of every test (host and variant interleaved)",
    )
    benchmark_streams: int = Field(
        1, alias="benchmarkStreams", description="Parallel TCP streams of the tcp test (iperf3 -P)",
    )
    benchmark_load_levels: tuple[int, ...] = Field(
        (30, 50), alias="benchmarkLoadLevels",
        description="Constant-load latency levels in percent of the host network's maximum message rate",
    )
    benchmark_response_sizes: tuple[int, ...] = Field(
        (350, 4096), alias="benchmarkResponseSizes", description="HTTP response sizes in bytes (http-<size>B tests)",
    )
    benchmark_run: str = Field(
        "1", alias="benchmarkRun", description="Change this value to re-run the benchmark without rebuilding",
    )
    benchmark_timeout: int = Field(
        3600, alias="benchmarkTimeout", description="Seconds before the whole benchmark is abandoned",
    )
    expiry_hours: int = Field(
        8, alias="expiryHours", description="Hours after the stack's creation at which its resources count as leftovers (the cnibench:expires-at tag, fixed at creation)",
    )
    route_table_quota: int = Field(
        50, alias="routeTableQuota", description="Routes per VPC route table (AWS default 50)",
    )
    extra_tags: tuple[str, ...] = Field(
        (), alias="extraTags", description="Extra tags on every resource, as key=value strings",
    )

    # --- derived -----------------------------------------------------------------
    @property
    def variant_record(self) -> Variant:
        return get_variant(self.variant)

    @property
    def az(self) -> str:
        return self.availability_zone or f"{self.region}a"

    @property
    def node_count(self) -> int:
        return 2 if self.control_plane_on_benchmark_node else 3

    @property
    def pod_mtu(self) -> int:
        return self.variant_record.pod_mtu(self.underlay_mtu)

    @property
    def tags(self) -> dict[str, str]:
        return dict(tag.split("=", 1) for tag in self.extra_tags)


def key_of(field_name: str) -> str:
    """``pod_cidr`` -> ``cnibench:podCidr``."""
    info = StackConfig.model_fields[field_name]
    return f"{NAMESPACE}:{info.alias or field_name}"


def config_keys() -> dict[str, Any]:
    """Every config key (without namespace) with its field info, in declaration order."""
    return {(info.alias or name): info for name, info in StackConfig.model_fields.items()}


def _network(problems: list[str], field_name: str, value: str) -> ipaddress.IPv4Network | None:
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        problems.append(
            f"{key_of(field_name)}: {value!r} is not a valid IPv4 CIDR ({exc}); "
            "expected a network address with a prefix, e.g. 10.244.0.0/16"
        )
        return None


# Ranges that are not unicast host addresses a node, pod or service can have (IANA IPv4
# Special-Purpose Address Registry, RFC 6890, and the IPv4 Multicast Address Space Registry):
# none of them can be a VPC, pod or service range.
NOT_UNICAST = (
    (ipaddress.IPv4Network("0.0.0.0/8"), "'this network' (RFC 791, RFC 6890)"),
    (ipaddress.IPv4Network("127.0.0.0/8"), "loopback (RFC 1122)"),
    (ipaddress.IPv4Network("169.254.0.0/16"), "link-local (RFC 3927; EC2's instance metadata service is 169.254.169.254)"),
    (ipaddress.IPv4Network("224.0.0.0/4"), "multicast (RFC 5771)"),
    (ipaddress.IPv4Network("240.0.0.0/4"), "reserved for future use and the broadcast address (RFC 1112, RFC 919)"),
)


def not_unicast(net: ipaddress.IPv4Network) -> str | None:
    """The special-purpose range ``net`` overlaps, described; None for a unicast range."""
    for block, what in NOT_UNICAST:
        if net.overlaps(block):
            return f"{block} {what}"
    return None


def _check_place(cfg: StackConfig, problems: list[str]) -> None:
    """Region, zone, instance types, AMI and VPC ids: the static part (the zone and type
    lookups of the program check the rest)."""
    if cfg.region not in AWS_REGIONS:
        problems.append(
            f"{key_of('region')}: {cfg.region!r} is not a region of AWS's commercial partition; valid regions: "
            f"{', '.join(sorted(AWS_REGIONS))}"
        )
    zone = cfg.availability_zone
    if zone and not (zone.startswith(cfg.region) and _ZONE_LETTER.fullmatch(zone[len(cfg.region):])):
        problems.append(
            f"{key_of('availability_zone')}: {zone!r} is not a zone of region {cfg.region!r}: a zone is the "
            f"region followed by one letter (e.g. {cfg.region}a), or empty for {cfg.region}a"
        )
    for name in ("instance_type", "control_plane_instance_type"):
        value = getattr(cfg, name)
        if not _INSTANCE_TYPE.fullmatch(value):
            shown = repr(value) if value else "(empty)"
            problems.append(
                f"{key_of(name)}: {shown} is not an EC2 instance type name; expected <family>.<size>, "
                f"e.g. {StackConfig.model_fields[name].default}"
            )
    for name, example in (("ami_id", "ami-0123456789abcdef0"), ("vpc_id", "vpc-0123456789abcdef0")):
        value = getattr(cfg, name)
        if value and not _EC2_ID[name].fullmatch(value):
            prefix = example.split("-")[0]
            problems.append(
                f"{key_of(name)}: {value!r} is not an EC2 {prefix} id: {prefix}- followed by 8 or 17 lowercase "
                f"hexadecimal digits (e.g. {example}), or empty"
                + (" for the latest Ubuntu 24.04 image" if name == "ami_id" else " to create a VPC")
            )
    if kubernetes_minor(cfg.kubernetes_version) is None:
        problems.append(
            f"{key_of('kubernetes_version')}: {cfg.kubernetes_version!r} is not a Kubernetes minor version with a "
            f"pkgs.k8s.io repository; valid: 1.{OLDEST_KUBERNETES_MINOR} to 1.{NEWEST_KUBERNETES_MINOR} "
            "(major.minor, e.g. 1.33)"
        )


def _check_networks(cfg: StackConfig, problems: list[str]) -> None:
    nets = {
        name: _network(problems, name, getattr(cfg, name))
        for name in ("vpc_cidr", "pod_cidr", "service_cidr")
    }
    for name, net in nets.items():
        special = not_unicast(net) if net is not None else None
        if net is not None and special:
            problems.append(
                f"{key_of(name)}: {net} overlaps {special}, not unicast addresses for nodes, pods or services; "
                "use a private range (RFC 1918: 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)"
            )
            nets[name] = None  # one problem per key
    vpc = nets["vpc_cidr"]
    subnets = 2 if cfg.split_subnets else 1
    # cnibench/program/network.py subnet_cidrs takes /24 blocks from a VPC of /23 or larger (and
    # halves a smaller one, whose node subnets would miss the host numbers nodes.py assigns)
    longest = NODE_SUBNET_PREFIX - 1
    low, high = AWS_VPC_PREFIXES
    if vpc is not None and not low <= vpc.prefixlen <= high:
        problems.append(
            f"{key_of('vpc_cidr')}: {vpc} is a /{vpc.prefixlen}; AWS accepts VPC CIDRs from /{low} to /{high} "
            f"(Amazon VPC User Guide), and cnibench needs /{low} to /{longest} for its node subnet(s)"
        )
    elif vpc is not None and vpc.prefixlen > longest:
        problems.append(
            f"{key_of('vpc_cidr')}: {vpc} is a /{vpc.prefixlen}: too small for cnibench's {subnets} node subnet(s) "
            f"of /{NODE_SUBNET_PREFIX} each; valid: /{low} to /{longest}"
        )
    svc = nets["service_cidr"]
    low, high = SERVICE_PREFIXES
    if svc is not None and svc.prefixlen < low:
        problems.append(
            f"{key_of('service_cidr')}: {svc} is a /{svc.prefixlen}; kube-apiserver refuses a service range "
            f"wider than /{low} (at most 20 host bits); valid: /{low} to /{high}"
        )
    elif svc is not None and svc.prefixlen > high:
        problems.append(
            f"{key_of('service_cidr')}: {svc} holds {svc.num_addresses} address(es), too few for the kubernetes "
            f"service (the 1st address) and the cluster DNS, which kubeadm puts at the {KUBEADM_DNS_SERVICE_INDEX}th; "
            f"valid: /{low} to /{high}"
        )
    pairs = (("pod_cidr", "service_cidr"), ("pod_cidr", "vpc_cidr"), ("service_cidr", "vpc_cidr"))
    for a, b in pairs:
        na, nb = nets[a], nets[b]
        if na and nb and na.overlaps(nb):
            problems.append(
                f"{key_of(a)}: {na} overlaps {key_of(b)} {nb}; pod, service and VPC ranges must be disjoint"
            )
    pod = nets["pod_cidr"]
    if not 16 <= cfg.node_pod_mask_size <= 28:
        problems.append(f"{key_of('node_pod_mask_size')}: {cfg.node_pod_mask_size} must be between 16 and 28")
    elif pod is not None:
        if pod.prefixlen > cfg.node_pod_mask_size:
            capacity = 0
        else:
            capacity = 2 ** (cfg.node_pod_mask_size - pod.prefixlen)
        if capacity < cfg.node_count:
            need = cfg.node_pod_mask_size - math.ceil(math.log2(cfg.node_count))
            problems.append(
                f"{key_of('pod_cidr')}: {pod} holds {capacity} node range(s) of "
                f"/{cfg.node_pod_mask_size} but the cluster has {cfg.node_count} nodes; "
                f"use a prefix of /{need} or shorter"
            )

    if cfg.ssh_ingress_cidr != SSH_AUTO:
        ssh = _network(problems, "ssh_ingress_cidr", cfg.ssh_ingress_cidr)
        if ssh is not None and addresses.world_open(ssh) and not cfg.allow_ssh_from_anywhere:
            problems.append(
                f"{key_of('ssh_ingress_cidr')}: {ssh} admits {addresses.public_addresses(ssh):,} public addresses "
                f"(more than a /16's {addresses.WORLD_OPEN_PUBLIC_ADDRESSES:,}) to "
                f"{addresses.operator_ports_text()}; use your address /32 (or 'auto'), or set "
                f"{key_of('allow_ssh_from_anywhere')}=true to accept that exposure of both ports"
            )


def _check_benchmark(cfg: StackConfig, problems: list[str]) -> None:
    for name in ("benchmark_duration", "benchmark_repeat", "benchmark_streams", "benchmark_timeout",
                 "expiry_hours", "route_table_quota"):
        value = getattr(cfg, name)
        if value <= 0:
            problems.append(f"{key_of(name)}: {value} must be a positive whole number")
    for name, high, why in (("benchmark_duration", MAX_BENCHMARK_DURATION_S, "seconds"),
                            ("benchmark_repeat", MAX_BENCHMARK_REPEAT, "repetitions"),
                            ("benchmark_streams", MAX_BENCHMARK_STREAMS, "streams (iperf3's MAX_STREAMS)"),
                            ("benchmark_timeout", MAX_BENCHMARK_TIMEOUT_S, "seconds (one week)"),
                            ("expiry_hours", MAX_EXPIRY_HOURS, "hours (30 days; the expiry tag marks leftovers)"),
                            ("route_table_quota", MAX_ROUTE_TABLE_QUOTA,
                             "routes (the most AWS grants per route table)")):
        value = getattr(cfg, name)
        if value > high:
            problems.append(f"{key_of(name)}: {value} is too large; valid: 1..{high} {why}")
    if 0 < cfg.benchmark_timeout < cfg.benchmark_duration:
        problems.append(
            f"{key_of('benchmark_timeout')}: {cfg.benchmark_timeout}s is shorter than one test "
            f"({key_of('benchmark_duration')}={cfg.benchmark_duration}s)"
        )
    if not cfg.benchmark_load_levels:
        problems.append(f"{key_of('benchmark_load_levels')}: give at least one load level (percent)")
    for level in cfg.benchmark_load_levels:
        if not 0 < level <= 100:
            problems.append(f"{key_of('benchmark_load_levels')}: {level} must be a percentage in 1..100")
    if len(set(cfg.benchmark_load_levels)) != len(cfg.benchmark_load_levels):
        problems.append(f"{key_of('benchmark_load_levels')}: {list(cfg.benchmark_load_levels)} repeats a level; "
                        "each level names a test (latency-tcp-<level>pct), give each once")
    for size in cfg.benchmark_response_sizes:
        if not 0 < size <= MAX_RESPONSE_BYTES:
            problems.append(f"{key_of('benchmark_response_sizes')}: {size} must be a positive byte count "
                            f"(1..{MAX_RESPONSE_BYTES}, 16 MiB: each size is a file on the server node)")
    if len(set(cfg.benchmark_response_sizes)) != len(cfg.benchmark_response_sizes):
        problems.append(f"{key_of('benchmark_response_sizes')}: {list(cfg.benchmark_response_sizes)} repeats a "
                        "size; each size names a test (http-<size>B), give each once")
    if not cfg.benchmark_run.strip():
        problems.append(f"{key_of('benchmark_run')}: {cfg.benchmark_run!r} must not be empty or blank "
                        "(any other text; change it to run the benchmark again without rebuilding)")


def _check_tags(cfg: StackConfig, problems: list[str]) -> None:
    key = key_of("extra_tags")
    seen: set[str] = set()
    for tag in cfg.extra_tags:
        name, sep, value = tag.partition("=")
        if not sep or not name:
            problems.append(f"{key}: {tag!r} is not of the form key=value (a non-empty key)")
            continue
        if len(name) > MAX_TAG_KEY_CHARS or len(value) > MAX_TAG_VALUE_CHARS:
            problems.append(
                f"{key}: {tag!r} has a key of {len(name)} and a value of {len(value)} characters; AWS allows "
                f"keys of 1..{MAX_TAG_KEY_CHARS} and values of 0..{MAX_TAG_VALUE_CHARS} characters"
            )
        for part, text in (("key", name), ("value", value)):
            if text.lower().startswith(RESERVED_TAG_PREFIX):
                problems.append(
                    f"{key}: {tag!r}: a tag {part} starting with {text[:4]!r} is reserved for AWS "
                    f"(the prefix {RESERVED_TAG_PREFIX} in any case); choose another {part}"
                )
        for part, text in (("key", name), ("value", value)):
            if not _TAG_TEXT.fullmatch(text):
                bad = sorted({c for c in text if not _TAG_TEXT.fullmatch(c)})
                problems.append(
                    f"{key}: {tag!r}: the tag {part} holds {''.join(bad)!r}; AWS tags (IAM's included) allow letters, "
                    "digits, spaces and + - = . _ : / @ only"
                )
        if name in tags.PROJECT_TAG_KEYS:
            problems.append(
                f"{key}: {tag!r}: cnibench sets the tag {name!r} itself (its value would be replaced); "
                f"choose a key other than {', '.join(tags.PROJECT_TAG_KEYS)}"
            )
        if name in seen:
            first = next(t for t in cfg.extra_tags if t.partition("=")[0] == name)
            problems.append(f"{key}: {first!r} and {tag!r} give the tag key {name!r} twice; each key takes one value")
        seen.add(name)
    extra = seen - set(tags.PROJECT_TAG_KEYS)
    room = MAX_TAGS_PER_RESOURCE - tags.MAX_PROJECT_TAGS_PER_RESOURCE
    if len(extra) > room:
        problems.append(
            f"{key}: {len(extra)} tags, but AWS allows {MAX_TAGS_PER_RESOURCE} per resource and cnibench adds up to "
            f"{tags.MAX_PROJECT_TAGS_PER_RESOURCE} of its own ({', '.join(tags.PROJECT_TAG_KEYS)}); "
            f"valid: at most {room} extra tags"
        )


def _check(cfg: StackConfig) -> list[str]:
    problems: list[str] = []
    if cfg.variant not in CATALOG:
        shown = repr(cfg.variant) if cfg.variant else "(not set)"
        problems.append(
            f"{key_of('variant')}: unknown variant {shown}; valid variants: {', '.join(sorted(CATALOG))}"
        )
    _check_place(cfg, problems)

    if cfg.variant in CATALOG and cfg.split_subnets and CATALOG[cfg.variant].needs_l2:
        # the same refusal as the policy pack's l2-adjacency rule, before any resource exists
        problems.append(
            f"{key_of('split_subnets')}: true puts the benchmark nodes in two subnets, but {cfg.variant} routes pod "
            "traffic directly between nodes (the next hop is the peer node's IP), which needs all benchmark nodes "
            f"in one subnet (one L2 segment); set {key_of('split_subnets')}=false, or benchmark an encapsulating "
            f"variant instead ({alternatives(CATALOG[cfg.variant])})"
        )

    _check_networks(cfg, problems)

    if not 1280 <= cfg.underlay_mtu <= 9001:
        problems.append(f"{key_of('underlay_mtu')}: {cfg.underlay_mtu} must be between 1280 and 9001")
    elif cfg.variant in CATALOG:
        try:
            _ = cfg.pod_mtu  # raises ValueError when the underlay MTU cannot carry the encapsulation
        except ValueError as exc:
            problems.append(f"{key_of('underlay_mtu')}: {exc}")

    _check_benchmark(cfg, problems)
    _check_tags(cfg, problems)
    return problems


def kubernetes_minor(version: str) -> int | None:
    """``"1.33"`` -> 33; None for anything that is not a minor with a pkgs.k8s.io repository
    (:data:`KUBERNETES_MINORS`)."""
    m = _K8S_MINOR.fullmatch(version.strip())
    if not m or int(m.group(1)) not in KUBERNETES_MINORS:
        return None
    return int(m.group(1))


def _format_pydantic(err: ValidationError) -> list[str]:
    out = []
    fields_by_alias = config_keys()
    for e in err.errors():
        key = str(e["loc"][0]) if e["loc"] else "?"
        if e["type"] == "extra_forbidden":
            out.append(
                f"{NAMESPACE}:{key}: unknown config key; valid keys: {', '.join(fields_by_alias)}"
            )
            continue
        info = fields_by_alias.get(key)
        expected = ""
        if info is not None:
            expected = f" (expected {_type_name(info.annotation)}, default {_default_repr(info.default)})"
        out.append(f"{NAMESPACE}:{key}: {e.get('input')!r} is invalid: {e['msg']}{expected}")
    return out


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", str(annotation))
    return {"str": "a string", "int": "a whole number", "bool": "true or false"}.get(text, "a list")


def _default_repr(value: Any) -> str:
    if isinstance(value, tuple):
        return json.dumps(list(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def parse_config(raw: Mapping[str, Any]) -> StackConfig:
    """Validate ``raw`` (config key without namespace -> value) into a StackConfig.

    Values may be typed (from YAML) or strings (as Pulumi hands them to a program): lists
    arrive as JSON text. Raises :class:`ConfigError` listing every problem.
    """
    data: dict[str, Any] = {}
    fields_by_alias = config_keys()
    problems: list[str] = []
    aliases_by_name = {name: (info.alias or name) for name, info in StackConfig.model_fields.items()}
    for key, value in raw.items():
        info = fields_by_alias.get(key)
        if info is None:
            # The model also accepts its Python field names (populate_by_name, for the
            # program's own use); a stack's config takes only the documented keys, so that
            # `vpc_cidr` and `vpcCidr` can never both set one field.
            alias = aliases_by_name.get(str(key))
            hint = f"did you mean {NAMESPACE}:{alias}? " if alias else ""
            problems.append(
                f"{NAMESPACE}:{key}: unknown config key; {hint}valid keys: {', '.join(fields_by_alias)}"
            )
            continue
        if _type_name(info.annotation) == "a list" and isinstance(value, str):
            try:
                value = json.loads(value)
            except (json.JSONDecodeError, RecursionError):
                shown = value if len(value) <= 80 else value[:77] + "..."
                problems.append(f"{NAMESPACE}:{key}: {shown!r} is not a JSON list, e.g. [30, 50, 70]")
                continue
        data[key] = value
    try:
        cfg = StackConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(problems + _format_pydantic(err)) from None
    problems += _check(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg
