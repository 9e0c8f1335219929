"""The offline harness: run the Pulumi program under Pulumi's own mocks and record what it registers.

The tests and ``cnibench check`` use it; no Pulumi CLI and no cloud account are involved. The
program is :func:`cnibench.program.main`, called as a function; only the engine's resource monitor
is Pulumi's ``MockMonitor``, answering with each resource's inputs plus the concrete computed
values of :data:`COMPUTED` (so that every ``apply`` runs: on an unknown value it never would).
Config is what the CLI would pass (:func:`cnibench.project.stack_config`).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import grpc
import pulumi
from pulumi.runtime import mocks as pmocks
from pulumi.runtime import rpc
from pulumi.runtime.settings import SETTINGS, get_root_resource
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from cnibench import hostkeys, program
from cnibench.config import AWS_REGIONS, parse_config
from cnibench.program import expiry, nodes
from cnibench.project import config_text, find_project_dir, stack_config, with_namespace

# TEST-NET-1 (RFC 5737): stands for "this machine's public address" in offline runs.
OFFLINE_PUBLIC_IP = "192.0.2.10"


@dataclass
class Registered:
    """One resource the program registered, as the engine saw it."""

    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    parent: str | None
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    custom: bool
    provider: str | None
    state: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # keep pytest output readable
        return f"<{self.type} {self.name}>"


@dataclass
class OfflineRun:
    stack: str
    config: dict[str, Any]
    resources: list[Registered]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    unknown_outputs: set[str]

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> Registered:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.of_type(type_)]
            raise LookupError(f"expected one {type_} named {name!r}, found {len(found)}: {names}")
        return found[0]

    def by_urn(self, urn: str) -> Registered:
        for r in self.resources:
            if r.urn == urn:
                return r
        raise LookupError(urn)

    def children_of(self, parent: Registered) -> list[Registered]:
        return [r for r in self.resources if r.parent == parent.urn]

    def depends_on(self, res: Registered, other: Registered) -> bool:
        """True if ``res`` depends on ``other`` directly or through its parent chain/dependencies."""
        seen: set[str] = set()
        todo = [res.urn]
        while todo:
            urn = todo.pop()
            if urn in seen:
                continue
            seen.add(urn)
            try:
                r = self.by_urn(urn)
            except LookupError:
                continue
            deps = list(r.dependencies) + [u for us in r.property_dependencies.values() for u in us]
            if other.urn in deps:
                return True
            todo.extend(deps)
            if r.parent:
                todo.append(r.parent)
        return False

    def __iter__(self) -> Iterator[Registered]:
        return iter(self.resources)


def _ip_for(name: str, base: str = "10.20") -> str:
    digest = hashlib.sha256(name.encode()).digest()
    return f"{base}.{digest[0] % 250 + 1}.{digest[1] % 250 + 4}"


def _fake_id(typ: str, name: str) -> str:
    short = typ.split(":")[-1].lower()
    return f"{short}-{hashlib.sha256((typ + name).encode()).hexdigest()[:12]}"


# stdout of remote commands whose output the program reads: (text in `create`, stdout).
_MOCK_CA_HASH = "sha256:" + hashlib.sha256(b"cnibench-mock-ca").hexdigest()
REMOTE_STDOUT: list[tuple[str, str]] = [
    ("kubeadm token create --print-join-command",
     f"kubeadm join 10.20.0.10:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash {_MOCK_CA_HASH} \n"),
    ("cat /etc/kubernetes/admin.conf",
     "apiVersion: v1\nkind: Config\nclusters:\n- name: kubernetes\n  cluster:\n"
     "    certificate-authority-data: TU9DSw==\n    server: https://10.20.0.10:6443\n"
     "contexts:\n- name: kubernetes-admin@kubernetes\n  context: {cluster: kubernetes, user: kubernetes-admin}\n"
     "current-context: kubernetes-admin@kubernetes\n"
     "users:\n- name: kubernetes-admin\n  user: {client-certificate-data: TU9DSw==, client-key-data: TU9DSw==}\n"),
]


def mock_host_key(instance_id: str) -> str:
    """A well-formed ``ssh-ed25519`` public key of one instance (the wire format of RFC 4253 6.6:
    the type and 32 key bytes, each length-prefixed), different per instance id."""
    kind = hostkeys.KEY_TYPE.encode()
    key = hashlib.sha256(instance_id.encode()).digest()
    blob = len(kind).to_bytes(4, "big") + kind + len(key).to_bytes(4, "big") + key
    return f"{hostkeys.KEY_TYPE} {base64.b64encode(blob).decode()}"


def _local_stdout(inputs: Mapping[str, Any]) -> str:
    """What a local command prints: ``date -u +%s`` the current Unix time (the stack's creation
    time in cnibench/program/expiry.py); the host-key reader (cnibench/hostkeys.py) the key it
    finds in the instance's console, as it prints it (one line); anything else nothing."""
    create = str(inputs.get("create") or "").strip()
    if create == expiry.CREATED_AT_COMMAND:
        return str(int(time.time()))
    if create == nodes.HOST_KEY_COMMAND:
        return mock_host_key(str((inputs.get("environment") or {}).get(hostkeys.ENV_INSTANCE))) + "\n"
    return ""


def _remote_stdout(create: str) -> str:
    for marker, stdout in REMOTE_STDOUT:
        if marker in create:
            return stdout
    return ""


# Computed (output-only) values per resource type: concrete, deterministic, plausible.
COMPUTED: dict[str, Callable[[Any], dict[str, Any]]] = {
    "aws:ec2/instance:Instance": lambda a: {
        "privateIp": a.inputs.get("privateIp") or _ip_for(a.name),
        "publicIp": "198.51.100." + str(int(hashlib.sha256(a.name.encode()).hexdigest(), 16) % 200 + 10),
        "primaryNetworkInterfaceId": _fake_id("eni", a.name),
        "arn": f"arn:aws:ec2:us-east-1:123456789012:instance/{_fake_id('i', a.name)}",
        "privateDns": "ip-" + (a.inputs.get("privateIp") or _ip_for(a.name)).replace(".", "-") + ".ec2.internal",
    },
    "aws:ec2/eip:Eip": lambda a: {
        "publicIp": "203.0.113." + str(int(hashlib.sha256(a.name.encode()).hexdigest(), 16) % 200 + 10),
        "allocationId": _fake_id("eipalloc", a.name),
    },
    # auto-named resources: the provider fills in `name`/`keyName` (Pulumi auto-naming)
    "aws:ec2/keyPair:KeyPair": lambda a: {"keyName": a.inputs.get("keyName") or f"{a.name}-mock"},
    "aws:ec2/placementGroup:PlacementGroup": lambda a: {"name": a.inputs.get("name") or f"{a.name}-mock"},
    "aws:ec2/vpc:Vpc": lambda a: {"defaultRouteTableId": _fake_id("rtb", a.name), "mainRouteTableId": _fake_id("rtb", a.name)},
    "aws:iam/role:Role": lambda a: {"arn": f"arn:aws:iam::123456789012:role/{a.name}", "name": a.inputs.get("name") or f"{a.name}-mock"},
    "aws:iam/instanceProfile:InstanceProfile": lambda a: {"arn": f"arn:aws:iam::123456789012:instance-profile/{a.name}", "name": a.inputs.get("name") or f"{a.name}-mock"},
    "tls:index/privateKey:PrivateKey": lambda a: {
        "privateKeyOpenssh": "-----BEGIN OPENSSH PRIVATE KEY-----\nmock\n-----END OPENSSH PRIVATE KEY-----\n",
        "privateKeyPem": "-----BEGIN PRIVATE KEY-----\nmock\n-----END PRIVATE KEY-----\n",
        "publicKeyOpenssh": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMockMockMockMockMockMockMockMockMockMockMock cnibench",
    },
    "command:remote:Command": lambda a: {"stdout": _remote_stdout(str(a.inputs.get("create") or "")), "stderr": ""},
    "command:local:Command": lambda a: {"stdout": _local_stdout(a.inputs), "stderr": ""},
}

# Private IPv4 addresses per network interface (primary included) of the instance types the tests
# use, as the EC2 User Guide lists them ("Maximum IP addresses per network interface", under
# "Network specifications" of each instance family; the same figure DescribeInstanceTypes
# returns as Ipv4AddressesPerInterface). A type not in this table gets no figure, as if AWS did
# not report one: the program then cannot check and says so.
IPV4_PER_INTERFACE = {
    "t3.nano": 2, "t3.micro": 2, "t3.small": 4, "t3.medium": 6, "t3.large": 12, "t4g.medium": 6,
    "m5.large": 10, "c5.large": 10, "c6i.large": 10, "c6g.large": 10, "c7g.large": 10,
    "c6i.4xlarge": 30, "c6i.8xlarge": 30, "c7g.8xlarge": 30, "c5.4xlarge": 30,
}


@functools.cache
def ec2_instance_types() -> frozenset[str] | None:
    """Every instance type name the EC2 API knows: the ``InstanceType`` enum of the EC2 service model
    in the installed botocore (``botocore/data/ec2/2016-11-15/service-2.json``; 1,437 names in
    botocore 1.44.8). None without botocore: the mocks then cannot tell an unknown type."""
    try:
        from botocore.loaders import Loader
    except ImportError:  # pragma: no cover - botocore comes with boto3 in requirements.txt
        return None
    model = Loader().load_service_model("ec2", "service-2")
    return frozenset(model["shapes"]["InstanceType"]["enum"])


class MockLookupError(grpc.RpcError):
    """A data-source call the real provider would fail, failed the same way under the mocks: the
    engine answers a failed invoke with a gRPC error whose details are the provider's message, and
    the Pulumi SDK raises it in the program as ``Exception("invoke of <token> failed: <details>")``
    (pulumi/runtime/invoke.py, grpc_error_to_exception)."""

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self._details = details

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNKNOWN

    def details(self) -> str:
        return self._details


def _instance_type(args: Mapping[str, Any]) -> dict[str, Any]:
    name = str(args.get("instanceType", ""))
    known = ec2_instance_types()
    if known is not None and name not in known:
        # what DescribeInstanceTypes answers for a name it does not know, and pulumi-aws passes on
        # (the data source fails; the program turns it into a config error, cnibench/program/nodes.py)
        raise MockLookupError(
            "invocation of aws:ec2/getInstanceType:getInstanceType returned an error: reading EC2 Instance Type "
            f"({name}): operation error EC2: DescribeInstanceTypes, api error InvalidInstanceType: The following "
            f"supplied instance types do not exist: [{name}]"
        )
    out: dict[str, Any] = {
        "instanceType": name, "id": name,
        "supportedArchitectures": ["arm64"] if name.split(".")[0].endswith("g") else ["x86_64", "i386"],
    }
    if name in IPV4_PER_INTERFACE:
        out["maximumIpv4AddressesPerInterface"] = IPV4_PER_INTERFACE[name]
    return out


# The Availability Zones of a region as the zone lookup (aws.get_availability_zones, opt-in-free
# zones) names them: the AZ IDs per region of AWS's "AWS Availability Zones" page
# (docs.aws.amazon.com/global-infrastructure/latest/regions/aws-availability-zones.html: use1-az1 ..
# use1-az6, usw1-az1 and usw1-az3, usw2-az1 .. usw2-az4, ...), named region + letter. In the
# oldest regions (us-east-1, us-west-1, ...) the letters are mapped per account; the mocks model one
# mapping. A commercial region not listed here answers with three zones ("Each Region has at least
# three Availability Zones", same page).
ZONES: dict[str, str] = {
    "us-east-1": "abcdef", "us-east-2": "abc", "us-west-1": "ac", "us-west-2": "abcd",
    "eu-west-1": "abc", "eu-central-1": "abc", "ap-south-2": "abc", "ap-northeast-1": "acd",
}


def _availability_zones(args: Mapping[str, Any]) -> dict[str, Any]:
    region = str(args.get("region") or "us-east-1")
    if region not in AWS_REGIONS:
        # an endpoint that does not exist: the real lookup fails (no EC2 endpoint for the region)
        raise MockLookupError(
            "invocation of aws:index/getAvailabilityZones:getAvailabilityZones returned an error: "
            f"operation error EC2: DescribeAvailabilityZones: no EC2 endpoint for region {region!r}"
        )
    letters = ZONES.get(region, "abc")
    # "An AZ ID consists of the first three letters of the Region code, followed by the number at
    # the end of the Region code, followed by -az, followed by a number" (same page)
    prefix = "".join(region.split("-")[:-1])[:3] + region.rsplit("-", 1)[1]
    return {"id": region, "names": [f"{region}{x}" for x in letters],
            "zoneIds": [f"{prefix}-az{i}" for i in range(1, len(letters) + 1)], "region": region}


# Results of data-source calls (invokes).
CALLS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "aws:ec2/getAmi:getAmi": lambda args: {
        "id": "ami-0123456789abcdef0",
        "imageId": "ami-0123456789abcdef0",
        "name": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20251101",
        "architecture": "x86_64",
        "rootDeviceName": "/dev/sda1",
    },
    "aws:ec2/getInstanceType:getInstanceType": _instance_type,
    "aws:ec2/getVpc:getVpc": lambda args: {"id": args.get("id"), "cidrBlock": "10.20.0.0/16", "default": False},
    "aws:ec2/getInternetGateway:getInternetGateway": lambda args: {
        "id": "igw-0123456789abcdef0", "internetGatewayId": "igw-0123456789abcdef0",
    },
    "aws:index/getCallerIdentity:getCallerIdentity": lambda args: {
        "accountId": "123456789012", "arn": "arn:aws:iam::123456789012:user/offline", "userId": "AIDAOFFLINE",
    },
    "aws:index/getPartition:getPartition": lambda args: {"partition": "aws", "dnsSuffix": "amazonaws.com"},
    "aws:index/getRegion:getRegion": lambda args: {"name": "us-east-1", "region": "us-east-1"},
    "aws:index/getAvailabilityZones:getAvailabilityZones": _availability_zones,
}


def _mocks_and_monitor() -> tuple[Any, Any, list[Registered], dict[str, Any]]:
    registered: list[Registered] = []
    root_outputs: dict[str, Any] = {}

    class RecordingMocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs):
            state = dict(args.inputs)
            extra = COMPUTED.get(args.typ)
            if extra:
                for k, v in extra(args).items():
                    state.setdefault(k, v)
            rid = args.resource_id or _fake_id(args.typ, args.name)
            state.setdefault("id", rid)
            state.setdefault("arn", f"arn:aws:mock:::{args.typ.split(':')[-1]}/{args.name}")
            return rid, state

        def call(self, args: pulumi.runtime.MockCallArgs):
            fn = CALLS.get(args.token)
            if fn is None:
                return dict(args.args)
            return fn(args.args)

    class RecordingMonitor(pmocks.MockMonitor):
        def RegisterResource(self, request):
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                inputs = rpc.deserialize_properties(request.object)
                state = self.resources.get(response.urn)
                registered.append(
                    Registered(
                        type=request.type,
                        name=request.name,
                        urn=response.urn,
                        inputs=inputs,
                        parent=request.parent or None,
                        dependencies=list(request.dependencies),
                        property_dependencies={
                            k: list(v.urns) for k, v in request.propertyDependencies.items()
                        },
                        custom=bool(request.custom),
                        provider=request.provider or None,
                        state=dict(state.state) if state is not None else {},
                        options={
                            "ignoreChanges": list(request.ignoreChanges),
                            "replaceOnChanges": list(request.replaceOnChanges),
                            "additionalSecretOutputs": list(request.additionalSecretOutputs),
                            "deleteBeforeReplace": bool(request.deleteBeforeReplace),
                            "protect": bool(request.protect),
                        },
                    )
                )
            return response

    mocks = RecordingMocks()
    return mocks, RecordingMonitor(mocks), registered, root_outputs


def run_program(
    stack: str,
    overrides: Mapping[str, Any] | None = None,
    project_dir: str | Path | None = None,
    config: Mapping[str, Any] | None = None,
    entry: Callable[[], None] | None = None,
) -> OfflineRun:
    """Run the program for ``stack`` under Pulumi's mocks.

    ``config`` replaces the stack's config entirely (keys without namespace); otherwise it is
    :func:`cnibench.project.stack_config` of ``project_dir`` (default: the one
    :func:`~cnibench.project.find_project_dir` finds) with ``overrides``. The program is
    ``program.main(parse_config(values), <documentation address>)``, or ``entry`` (e.g.
    ``program.run``, which reads the config from Pulumi's runtime as under ``pulumi up``).
    Exceptions raised by the program (e.g. a :class:`~cnibench.config.ConfigError`) propagate.
    """
    if config is not None:
        values = dict(config)
    else:
        values = stack_config(project_dir if project_dir is not None else find_project_dir(), stack, overrides)
    mocks, monitor, registered, _ = _mocks_and_monitor()
    pulumi.runtime.set_mocks(mocks, project="cnibench", stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config({with_namespace(k): config_text(v) for k, v in values.items()})
    SETTINGS.rpc_manager.clear()
    SETTINGS.outputs.clear()

    outputs: dict[str, Any] = {}
    secret: set[str] = set()
    unknown: set[str] = set()

    async def _resolve() -> None:
        root = get_root_resource()
        for name, value in dict(getattr(root, "outputs", {})).items():
            out = pulumi.Output.from_input(value)
            known = await out.is_known()
            if not known:
                unknown.add(name)
            if await out.is_secret():
                secret.add(name)
            outputs[name] = await out.future(with_unknowns=True)

    def _program() -> None:
        if entry is not None:
            entry()
        else:
            program.main(parse_config(values), lambda: OFFLINE_PUBLIC_IP)

    _sync_await(run_pulumi_func(_program))
    _sync_await(run_pulumi_func(lambda: _resolve()))
    return OfflineRun(stack, values, registered, outputs, secret, unknown)
