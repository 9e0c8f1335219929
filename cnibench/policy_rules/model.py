"""A neutral view of a stack's resources that the policy rules read.

Two adapters fill it: the Pulumi policy pack (``cnibench/policy_rules/from_policy_pack.py``, from the
``PolicyResource`` objects ``pulumi preview`` hands a ``StackValidationPolicy``) and the offline
preflight (``cnibench check``, from the :class:`cnibench.mocks.Registered` resources of a run
under Pulumi's mocks). Rules are pure functions of a :class:`Stack`; they never import Pulumi.

During a real preview some inputs are not known yet (e.g. the id of a subnet that is still to
be created). Adapters turn those into :data:`UNKNOWN`; rules compare such references through
the resources they depend on (``property_dependencies``), which are always known.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from cnibench.tags import BENCHMARK_ROLES, EXPIRES_TAG, ROLE_TAG, VARIANT_TAG
from cnibench.variants import CATALOG, Variant

INSTANCE = "aws:ec2/instance:Instance"
SUBNET = "aws:ec2/subnet:Subnet"
VPC = "aws:ec2/vpc:Vpc"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
ROUTE = "aws:ec2/route:Route"
PLACEMENT_GROUP = "aws:ec2/placementGroup:PlacementGroup"
REMOTE_COMMAND = "command:remote:Command"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
DAEMONSET = "kubernetes:apps/v1:DaemonSet"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"

# one spelling of the tag keys and roles (cnibench.tags), under the names the rules use
TAG_ROLE, TAG_VARIANT, TAG_EXPIRES = ROLE_TAG, VARIANT_TAG, EXPIRES_TAG


class _Unknown:
    """A value Pulumi cannot know during a preview."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unknown>"

    def __bool__(self) -> bool:
        return False


UNKNOWN = _Unknown()


def known(value: Any) -> bool:
    return value is not UNKNOWN and value is not None


class Level(str, enum.Enum):
    MANDATORY = "mandatory"
    ADVISORY = "advisory"


@dataclass(frozen=True)
class Res:
    """One resource: its type token, name, URN and (input) properties."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    parent: str | None = None
    # input property name -> URNs of the resources that value came from
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    provider_props: Mapping[str, Any] | None = None  # inputs of the provider resource, if any
    # what other resources may hold to refer to this one (its id, and for some types its
    # provider-assigned name, e.g. a placement group), when the adapter knows them (offline runs)
    ids: tuple[str, ...] = ()

    def get(self, *path: str | int, default: Any = None) -> Any:
        value: Any = self.props
        for key in path:
            if isinstance(key, int):
                if not isinstance(value, (list, tuple)) or key >= len(value):
                    return default
                value = value[key]
            else:
                if not isinstance(value, Mapping) or key not in value:
                    return default
                value = value[key]
            if value is UNKNOWN:
                return UNKNOWN
        return value

    @property
    def tags(self) -> Mapping[str, Any]:
        tags = self.props.get("tags")
        return tags if isinstance(tags, Mapping) else {}

    @property
    def role(self) -> str | None:
        role = self.tags.get(TAG_ROLE)
        return role if isinstance(role, str) else None

    def label(self) -> str:
        return f"{self.type.rsplit(':', 1)[-1]} {self.name!r}"


@dataclass(frozen=True)
class Ref:
    """What a reference property points at: known ids, or else the resources it came from."""

    ids: frozenset[str]
    urns: frozenset[str]

    def same(self, other: Ref) -> bool | None:
        """True/False when decidable, None when neither ids nor origins can tell."""
        if self.ids and other.ids:
            return bool(self.ids & other.ids)
        if self.urns and other.urns:
            return bool(self.urns & other.urns)
        return None

    def __bool__(self) -> bool:
        return bool(self.ids or self.urns)


class NotApplicable(Exception):
    """The rule does not apply to this stack (e.g. not this variant)."""


@dataclass(frozen=True)
class Violation:
    message: str
    urn: str | None = None


@dataclass
class Stack:
    """All resources of one stack plus the settings the rules may read.

    ``settings`` are ``cnibench:*`` config values without namespace (the stack config the
    offline run used, or what the policy pack could read), e.g. ``routeTableQuota``.
    """

    resources: list[Res]
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Res]:
        return iter(self.resources)

    def of_type(self, *types: str) -> list[Res]:
        return [r for r in self.resources if r.type in types]

    def by_urn(self, urn: str) -> Res | None:
        for r in self.resources:
            if r.urn == urn:
                return r
        return None

    def setting(self, key: str, default: Any = None) -> Any:
        value = self.settings.get(key, default)
        return default if value is None or value is UNKNOWN else value

    # --- nodes --------------------------------------------------------------------------
    @property
    def nodes(self) -> list[Res]:
        """Instances that are Kubernetes nodes (tagged with a cnibench role)."""
        return [r for r in self.of_type(INSTANCE) if r.role]

    @property
    def benchmark_nodes(self) -> list[Res]:
        return [r for r in self.nodes if r.role in BENCHMARK_ROLES]

    def require_benchmark_nodes(self) -> list[Res]:
        nodes = self.benchmark_nodes
        if not nodes:
            raise NotApplicable("no benchmark instances (tag cnibench:role=client|server) in the stack")
        return nodes

    def node(self, role: str) -> Res | None:
        found = [r for r in self.nodes if r.role == role]
        return found[0] if found else None

    @property
    def variant(self) -> Variant | None:
        """The catalog variant: from the instances' ``cnibench:variant`` tag, else the config."""
        names = [r.tags.get(TAG_VARIANT) for r in self.of_type(INSTANCE)]
        names.append(self.settings.get("variant"))
        for name in names:
            if isinstance(name, str) and name in CATALOG:
                return CATALOG[name]
        return None

    def require_variant(self) -> Variant:
        variant = self.variant
        if variant is None:
            raise NotApplicable("no cnibench:variant tag on the instances and no variant in the config")
        return variant

    # --- references ---------------------------------------------------------------------
    def ref(self, res: Res, prop: str, dep_type: str | None = None) -> Ref:
        """The identity of ``res.props[prop]`` (a string id or a list of ids)."""
        value = res.props.get(prop)
        values = value if isinstance(value, (list, tuple)) else [value]
        if value is UNKNOWN or any(v is UNKNOWN for v in values):
            ids: frozenset[str] = frozenset()  # unknown at preview: the origins decide
        else:
            ids = frozenset(v for v in values if isinstance(v, str) and v)
            if not ids:
                return Ref(frozenset(), frozenset())  # not set
        urns = []
        for urn in res.property_dependencies.get(prop, ()):
            dep = self.by_urn(urn)
            if dep_type is None or (dep is not None and dep.type == dep_type):
                urns.append(urn)
        return Ref(ids, frozenset(urns))

    def own_ref(self, res: Res) -> Ref:
        """How other resources refer to ``res``: by its id (if an adapter knows it) or its URN."""
        return Ref(frozenset(i for i in res.ids if i), frozenset([res.urn]))


Check = Callable[[Stack], Iterable[Violation]]


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    level: Level
    check: Check


@dataclass(frozen=True)
class Finding:
    rule: str
    level: Level
    verdict: str  # pass | fail | warn | n/a
    messages: tuple[str, ...]
    urns: tuple[str | None, ...] = ()

    @property
    def blocking(self) -> bool:
        return self.verdict == "fail"


def evaluate(rules: Sequence[Rule], stack: Stack) -> list[Finding]:
    findings = []
    for rule in rules:
        try:
            violations = list(rule.check(stack))
        except NotApplicable as exc:
            findings.append(Finding(rule.name, rule.level, "n/a", (str(exc),)))
            continue
        if not violations:
            findings.append(Finding(rule.name, rule.level, "pass", ()))
            continue
        verdict = "fail" if rule.level is Level.MANDATORY else "warn"
        findings.append(Finding(
            rule.name, rule.level, verdict,
            tuple(v.message for v in violations), tuple(v.urn for v in violations),
        ))
    return findings
