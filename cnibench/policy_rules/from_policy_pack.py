"""Adapter: Pulumi's ``PolicyResource`` objects -> the rules' neutral view; one
StackValidationPolicy per rule. ``policy/__main__.py`` only constructs the pack from these (the
construction starts the analyzer and blocks), so tests call the validators directly.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    _DictProxy,
    _ListProxy,
)

from cnibench.config import NAMESPACE
from cnibench.policy_rules import RULES, UNKNOWN, Level, NotApplicable, Res, Rule, Stack

PACK_NAME = "cnibench"
_UNKNOWNS = frozenset({
    UNKNOWN_ARCHIVE_VALUE, UNKNOWN_ARRAY_VALUE, UNKNOWN_ASSET_VALUE, UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE, UNKNOWN_OBJECT_VALUE, UNKNOWN_STRING_VALUE,
})

# Settings a policy may be given with `pulumi preview --policy-pack-config` (they override the
# stack's own cnibench:* config, which the CLI passes to the analyzer when it can).
CONFIG_SCHEMA = PolicyConfigSchema(properties={
    "variant": {"type": "string", "description": "the catalog variant, if the instances carry no cnibench:variant tag"},
    "routeTableQuota": {"type": "integer", "description": "routes per VPC route table (AWS default 50)"},
    "allowSshFromAnywhere": {"type": "boolean", "description": "accept SSH and the Kubernetes API from a world-open range"},
    "amiId": {"type": "string", "description": "the stack's cnibench:amiId (empty: the default Ubuntu 24.04 AMI)"},
})


def plain(value: Any) -> Any:
    """Unwrap the SDK's unknown-checking proxies; values unknown at preview become ``UNKNOWN``."""
    if isinstance(value, _DictProxy):
        value = value["__target"]
    elif isinstance(value, _ListProxy):
        value = value["__target"]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, str) and value in _UNKNOWNS:
        return UNKNOWN
    inner = getattr(value, "value", None)
    if type(value).__name__ == "Secret" and inner is not None:
        return plain(inner)
    return value


def to_res(resource: PolicyResource) -> Res:
    parent = getattr(resource, "parent", None)
    provider = getattr(resource, "provider", None)
    deps = getattr(resource, "property_dependencies", None) or {}
    return Res(
        type=resource.resource_type,
        name=resource.name,
        urn=resource.urn,
        props=plain(resource.props) or {},
        parent=parent.urn if parent is not None else getattr(getattr(resource, "opts", None), "parent", None),
        property_dependencies={k: tuple(d.urn for d in v) for k, v in deps.items()},
        provider_props=plain(provider.props) if provider is not None else None,
    )


def stack_settings(policy_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The stack's ``cnibench:*`` config as the analyzer sees it, overridden by the policy's config."""
    settings: dict[str, Any] = {}
    try:
        from pulumi.runtime import config as runtime_config

        # the CLI hands the analyzer the stack config in PULUMI_CONFIG (the SDK's
        # _configure_runtime_settings copies the same variable into the runtime config)
        raw = dict(runtime_config.get_config_env())
    except Exception:  # noqa: BLE001 - no Pulumi config in this process
        raw = {}
    for key, value in raw.items():
        if key.startswith(f"{NAMESPACE}:"):
            settings[key.split(":", 1)[1]] = _config_value(value)
    settings.update(policy_config or {})
    return settings


def _config_value(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def stack_from_args(args: StackValidationArgs) -> Stack:
    return Stack([to_res(r) for r in args.resources], stack_settings(args.get_config()))


def _validator(rule: Rule):
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        stack = stack_from_args(args)
        try:
            violations = list(rule.check(stack))
        except NotApplicable as exc:
            args.not_applicable(str(exc))
            return
        for violation in violations:
            report_violation(violation.message, violation.urn)

    validate.__name__ = f"validate_{rule.name.replace('-', '_')}"
    return validate


def build_policies() -> list[StackValidationPolicy]:
    return [
        StackValidationPolicy(
            name=rule.name,
            description=rule.description,
            validate=_validator(rule),
            enforcement_level=EnforcementLevel.MANDATORY if rule.level is Level.MANDATORY else EnforcementLevel.ADVISORY,
            config_schema=CONFIG_SCHEMA,
        )
        for rule in RULES
    ]
