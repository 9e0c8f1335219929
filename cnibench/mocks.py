"""The offline harness: run the Pulumi program under Pulumi's own mocks and record what it registers.

The tests and ``cnibench check`` use it; no Pulumi CLI and no cloud account are involved. The
program is :func:`cnibench.program.main`, called as a function; only the engine's resource monitor
is Pulumi's ``MockMonitor``, answering with each resource's inputs plus the concrete computed
values of :data:`COMPUTED` (so that every ``apply`` runs: on an unknown value it never would).
Config is what the CLI would pass (:func:`cnibench.project.stack_config`).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import pulumi
from pulumi.runtime import mocks as pmocks
from pulumi.runtime import rpc
from pulumi.runtime.settings import SETTINGS, get_root_resource
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from cnibench import program
from cnibench.config import parse_config
from cnibench.program import expiry
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


def _local_stdout(create: str) -> str:
    """What a local command prints: ``date -u +%s`` the current Unix time (the stack's creation
    time in cnibench/program/expiry.py), anything else nothing."""
    return str(int(time.time())) if create.strip() == expiry.CREATED_AT_COMMAND else ""


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
    "command:local:Command": lambda a: {"stdout": _local_stdout(str(a.inputs.get("create") or "")), "stderr": ""},
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


def _instance_type(args: Mapping[str, Any]) -> dict[str, Any]:
    name = str(args.get("instanceType", ""))
    out: dict[str, Any] = {
        "instanceType": name, "id": name,
        "supportedArchitectures": ["arm64"] if name.split(".")[0].endswith("g") else ["x86_64", "i386"],
    }
    if name in IPV4_PER_INTERFACE:
        out["maximumIpv4AddressesPerInterface"] = IPV4_PER_INTERFACE[name]
    return out


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
    "aws:index/getAvailabilityZones:getAvailabilityZones": lambda args: {
        "names": ["us-east-1a", "us-east-1b", "us-east-1c"], "zoneIds": ["use1-az1", "use1-az2", "use1-az4"],
    },
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
