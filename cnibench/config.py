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

from cnibench import addresses
from cnibench.errors import InputError
from cnibench.variants import CATALOG, Variant, alternatives, get_variant

NAMESPACE = "cnibench"

# The placeholder that stands for "the public address of the machine running pulumi".
SSH_AUTO = "auto"
_AWS_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_TAG = re.compile(r"^[^=]{1,128}=.{0,256}$")
_K8S_MINOR = re.compile(r"^1\.(\d+)$")
# the oldest minor with a pkgs.k8s.io repository (kubernetes blog 2023-08-15, pkgs-k8s-io-introduction)
OLDEST_KUBERNETES_MINOR = 24
# Bounds of the benchmark keys (cnibench/suite/plan.py): iperf3 accepts at most 128 parallel
# streams (MAX_STREAMS in iperf3's iperf.h); a test longer than an hour or more than 100
# repetitions would not fit any benchmarkTimeout worth waiting for; nginx serves each response
# size from a file written at pod start.
MAX_BENCHMARK_DURATION_S = 3600
MAX_BENCHMARK_REPEAT = 100
MAX_BENCHMARK_STREAMS = 128
MAX_RESPONSE_BYTES = 16 * 1024 * 1024


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


def _check(cfg: StackConfig) -> list[str]:
    problems: list[str] = []
    if cfg.variant not in CATALOG:
        shown = repr(cfg.variant) if cfg.variant else "(not set)"
        problems.append(
            f"{key_of('variant')}: unknown variant {shown}; valid variants: {', '.join(sorted(CATALOG))}"
        )
    if not _AWS_REGION.match(cfg.region):
        problems.append(f"{key_of('region')}: {cfg.region!r} is not an AWS region name (e.g. us-east-1)")
    if cfg.availability_zone and not (
        cfg.availability_zone.startswith(cfg.region) and len(cfg.availability_zone) > len(cfg.region)
    ):
        problems.append(
            f"{key_of('availability_zone')}: {cfg.availability_zone!r} is not a zone of region "
            f"{cfg.region!r} (e.g. {cfg.region}a)"
        )

    if cfg.variant in CATALOG and cfg.split_subnets and CATALOG[cfg.variant].needs_l2:
        # the same refusal as the policy pack's l2-adjacency rule, before any resource exists
        problems.append(
            f"{key_of('split_subnets')}: true puts the benchmark nodes in two subnets, but {cfg.variant} routes pod "
            "traffic directly between nodes (the next hop is the peer node's IP), which needs all benchmark nodes "
            f"in one subnet (one L2 segment); set {key_of('split_subnets')}=false, or benchmark an encapsulating "
            f"variant instead ({alternatives(CATALOG[cfg.variant])})"
        )

    nets = {
        name: _network(problems, name, getattr(cfg, name))
        for name in ("vpc_cidr", "pod_cidr", "service_cidr")
    }
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

    if not 1280 <= cfg.underlay_mtu <= 9001:
        problems.append(f"{key_of('underlay_mtu')}: {cfg.underlay_mtu} must be between 1280 and 9001")
    elif cfg.variant in CATALOG:
        try:
            _ = cfg.pod_mtu  # raises ValueError when the underlay MTU cannot carry the encapsulation
        except ValueError as exc:
            problems.append(f"{key_of('underlay_mtu')}: {exc}")

    for name in ("benchmark_duration", "benchmark_repeat", "benchmark_streams", "benchmark_timeout",
                 "expiry_hours", "route_table_quota"):
        value = getattr(cfg, name)
        if value <= 0:
            problems.append(f"{key_of(name)}: {value} must be a positive whole number")
    for name, high, why in (("benchmark_duration", MAX_BENCHMARK_DURATION_S, "seconds"),
                            ("benchmark_repeat", MAX_BENCHMARK_REPEAT, "repetitions"),
                            ("benchmark_streams", MAX_BENCHMARK_STREAMS, "streams (iperf3's MAX_STREAMS)")):
        value = getattr(cfg, name)
        if value > high:
            problems.append(f"{key_of(name)}: {value} is too large; valid: 1..{high} {why}")
    if cfg.benchmark_timeout > 0 and cfg.benchmark_duration > cfg.benchmark_timeout:
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
                            f"(1..{MAX_RESPONSE_BYTES})")
    if len(set(cfg.benchmark_response_sizes)) != len(cfg.benchmark_response_sizes):
        problems.append(f"{key_of('benchmark_response_sizes')}: {list(cfg.benchmark_response_sizes)} repeats a "
                        "size; each size names a test (http-<size>B), give each once")
    if not cfg.benchmark_run.strip():
        problems.append(f"{key_of('benchmark_run')}: must not be empty")
    for tag in cfg.extra_tags:
        if not _TAG.match(tag):
            problems.append(f"{key_of('extra_tags')}: {tag!r} is not of the form key=value")
    if kubernetes_minor(cfg.kubernetes_version) is None:
        problems.append(
            f"{key_of('kubernetes_version')}: {cfg.kubernetes_version!r} is not a Kubernetes minor "
            f"version with a pkgs.k8s.io repository; use 1.{OLDEST_KUBERNETES_MINOR} or later, e.g. 1.33"
        )
    return problems


def kubernetes_minor(version: str) -> int | None:
    """``"1.33"`` -> 33; None for anything that is not a minor with a pkgs.k8s.io repository."""
    m = _K8S_MINOR.match(version.strip())
    if not m or int(m.group(1)) < OLDEST_KUBERNETES_MINOR:
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
    for key, value in raw.items():
        info = fields_by_alias.get(key)
        if info is not None and _type_name(info.annotation) == "a list" and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                problems.append(f"{NAMESPACE}:{key}: {value!r} is not a JSON list, e.g. [30, 50, 70]")
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
