"""Security rules: SSH exposure, IMDSv2, encrypted volumes, an expiry tag on every resource."""

from __future__ import annotations

import functools
import importlib
import inspect
import warnings
from typing import Any, Iterator, Mapping

from cnibench import addresses
from cnibench.policy_rules.model import INSTANCE, TAG_EXPIRES, NotApplicable, Res, Stack, Violation
from cnibench.policy_rules.network import ingress_rules
from cnibench.variants import PortRule

EBS_VOLUME = "aws:ebs/volume:Volume"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
_TRUE = (True, "true", "True")


def _open_cidrs(cidrs: tuple[str, ...]) -> list[str]:
    """The CIDRs of a rule that admit a sizeable part of the internet (cnibench.addresses)."""
    return [c for c in cidrs if addresses.world_open(c.strip())]


def ssh_ingress(stack: Stack) -> Iterator[Violation]:
    """No SSH (tcp/22) and no Kubernetes API (tcp/6443), the two ports sshIngressCidr opens, from
    a world-open range (more than a /16 of public addresses, however it is spelled) unless
    cnibench:allowSshFromAnywhere accepts it."""
    if stack.setting("allowSshFromAnywhere", False) in _TRUE:
        return
    for rule in ingress_rules(stack):
        wide = _open_cidrs(rule.cidrs)
        if not wide:
            continue
        for port, what in addresses.OPERATOR_PORTS:
            if rule.covers_ports(PortRule("tcp", port)):
                shown = ", ".join(f"{c} ({addresses.public_addresses(c):,} public addresses)" for c in wide)
                yield Violation(
                    f"security: {rule.res.label()} opens tcp/{port} ({what}) to {shown}. Fix: set "
                    "cnibench:sshIngressCidr to your address /32 (or 'auto'), or set "
                    f"cnibench:allowSshFromAnywhere=true to accept opening {addresses.operator_ports_text()}.",
                    rule.res.urn,
                )


def imdsv2(stack: Stack) -> Iterator[Violation]:
    """Every instance requires IMDSv2 session tokens, except where the catalog says the variant's
    CNI only speaks IMDSv1 (flannel v0.19.2's aws-vpc backend): there ``optional`` is accepted."""
    try:
        imdsv1_ok = stack.variant is not None and stack.variant.needs_imdsv1
    except NotApplicable:
        imdsv1_ok = False
    for inst in stack.of_type(INSTANCE):
        tokens = inst.get("metadataOptions", "httpTokens")
        if tokens != "required" and not (imdsv1_ok and tokens == "optional"):
            yield Violation(
                f"security: {inst.label()} does not require IMDSv2 (metadataOptions.httpTokens={tokens!r}). Fix: "
                "metadata_options={'http_tokens': 'required', 'http_endpoint': 'enabled'}.", inst.urn,
            )
    for lt in stack.of_type(LAUNCH_TEMPLATE):
        if lt.get("metadataOptions", "httpTokens") != "required":
            yield Violation(f"security: {lt.label()} does not require IMDSv2 (metadataOptions.httpTokens).", lt.urn)


def encrypted_volumes(stack: Stack) -> Iterator[Violation]:
    """Root and data volumes are encrypted."""
    for inst in stack.of_type(INSTANCE):
        if inst.get("rootBlockDevice", "encrypted") not in _TRUE:
            yield Violation(
                f"security: the root volume of {inst.label()} is not encrypted. Fix: "
                "root_block_device={'encrypted': True, ...}.", inst.urn,
            )
        for dev in inst.props.get("ebsBlockDevices") or ():
            if isinstance(dev, Mapping) and dev.get("encrypted") not in _TRUE:
                yield Violation(
                    f"security: EBS device {dev.get('deviceName')!r} of {inst.label()} is not encrypted.", inst.urn,
                )
    for vol in stack.of_type(EBS_VOLUME):
        if vol.props.get("encrypted") not in _TRUE:
            yield Violation(f"security: {vol.label()} is not encrypted. Fix: encrypted=True.", vol.urn)


@functools.cache
def aws_supports_tags(type_token: str) -> bool | None:
    """Whether the pulumi-aws resource ``type_token`` takes a ``tags`` input (None: cannot tell).

    Read from the installed pulumi-aws SDK: ``aws:ec2/instance:Instance`` -> ``pulumi_aws.ec2.Instance``.
    """
    try:
        pkg, mod_path, cls_name = type_token.split(":")
    except ValueError:
        return None
    if pkg != "aws":
        return None
    module_name = mod_path.split("/")[0]
    try:
        with warnings.catch_warnings():  # deprecated resources warn when their class is loaded
            warnings.simplefilter("ignore")
            module = importlib.import_module("pulumi_aws" if module_name == "index" else f"pulumi_aws.{module_name}")
            cls = getattr(module, cls_name)
        params = inspect.signature(cls._internal_init).parameters
    except (ImportError, AttributeError, TypeError, ValueError):
        return None
    return "tags" in params


def _default_tags(res: Res) -> Mapping[str, Any]:
    props = res.provider_props or {}
    default = props.get("defaultTags")
    if isinstance(default, str):  # providers receive their inputs as JSON text
        import json

        try:
            default = json.loads(default)
        except json.JSONDecodeError:
            default = None
    tags = default.get("tags") if isinstance(default, Mapping) else None
    return tags if isinstance(tags, Mapping) else {}


def expiry_tag(stack: Stack) -> Iterator[Violation]:
    """Every AWS resource that takes tags carries ``cnibench:expires-at`` (so leftovers can be found)."""
    for res in stack:
        if not res.type.startswith("aws:"):
            continue
        supported = aws_supports_tags(res.type)
        if supported is False or (supported is None and "tags" not in res.props):
            continue
        if TAG_EXPIRES in res.tags or TAG_EXPIRES in _default_tags(res):
            continue
        yield Violation(
            f"security: {res.label()} ({res.type}) has no {TAG_EXPIRES} tag, so a leftover could not be found "
            "and cleaned up. Fix: pass the stack's common tags (cnibench:stack, cnibench:variant, "
            f"{TAG_EXPIRES}) to its tags input.", res.urn,
        )
