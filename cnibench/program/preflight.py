"""The checks of a stack's config that need more than the config: the provider's zone lookup and
the benchmark suite's plan, and the instance-type lookup. The program (cnibench/program/__init__.py
``main``) runs them with the stack's AWS provider before its first AWS resource, so a refusal
leaves nothing in AWS.
"""

from __future__ import annotations

import math
from typing import Any

import pulumi
import pulumi_aws as aws

from cnibench.config import ConfigError, StackConfig, key_of
from cnibench.suite import definition
from cnibench.suite import plan as suite_plan


def least_benchmark_seconds(plan: suite_plan.SuitePlan) -> int:
    """The shortest time the suite can take: what its tools measure (iperf3 -t + -O, sockperf -t,
    wrk -d, the CPU test's idle baseline) in every repetition of every test, the calibrations and
    the background-load guard before each subject's repetition; no pod start-up, no margin."""
    guard = math.ceil(definition.GUARD_SECONDS) * len(plan.subjects)
    per_rep = sum(s.duration + s.omit + math.ceil(s.idle) for s in plan.steps) + guard
    return sum(s.duration + s.omit for s in plan.calibrations) + plan.repeat * per_rep


def plan_problems(cfg: StackConfig) -> list[str]:
    """The whole benchmark plan against ``benchmarkTimeout`` (not one test): a plan that cannot
    finish in time would be abandoned after the cluster was built and paid for."""
    plan = suite_plan.plan_from_config(cfg)
    least = least_benchmark_seconds(plan)
    if least <= cfg.benchmark_timeout:
        return []
    tests = len(plan.steps)
    return [
        f"{key_of('benchmark_timeout')}: {cfg.benchmark_timeout}s is shorter than the benchmark plan: {tests} tests "
        f"(host and {cfg.variant}) x {key_of('benchmark_repeat')}={cfg.benchmark_repeat} repetitions, each "
        f"{key_of('benchmark_duration')}={cfg.benchmark_duration}s (+ calibrations) measure at least {least}s; "
        f"valid: {key_of('benchmark_timeout')} >= {least} (with per-step margins up to {plan.max_runtime_s()}s), "
        f"or fewer repetitions or shorter tests (the suite's tests include one per {key_of('benchmark_load_levels')} "
        f"level: {len(cfg.benchmark_load_levels)}, and one per {key_of('benchmark_response_sizes')} size: "
        f"{len(cfg.benchmark_response_sizes)})"
    ]


def zone_problems(cfg: StackConfig, invoke: pulumi.InvokeOptions) -> list[str]:
    """``availabilityZone`` (or the default ``<region>a``) against the zones the provider's lookup
    returns for ``region`` in this account (zone letters are account-mapped in the oldest regions)."""
    zones = aws.get_availability_zones(region=cfg.region, state="available", opts=invoke)
    names = list(zones.names or [])
    if cfg.az in names:
        return []
    key = key_of("availability_zone")
    shown = repr(cfg.availability_zone) if cfg.availability_zone else f"(empty, meaning {cfg.az})"
    return [
        f"{key}: {shown} is not an available zone of region {cfg.region!r}; the zone lookup returned: "
        f"{', '.join(names) or 'none'}"
    ]


def instance_types(cfg: StackConfig, invoke: pulumi.InvokeOptions) -> dict[str, Any]:
    """The EC2 facts of each configured instance type (``get_instance_type``), by config field."""
    infos: dict[str, Any] = {}
    for key in ("instance_type", "control_plane_instance_type"):
        if key == "control_plane_instance_type" and cfg.control_plane_on_benchmark_node:
            continue
        try:
            infos[key] = aws.ec2.get_instance_type(instance_type=getattr(cfg, key), opts=invoke)
        except Exception as exc:  # the provider raises a bare Exception for a failed lookup
            # DescribeInstanceTypes answers InvalidInstanceType for a name it does not know
            if "InvalidInstanceType" not in str(exc):
                raise
            raise ConfigError([
                f"{key_of(key)}: {getattr(cfg, key)!r} is not an EC2 instance type in region {cfg.region} (the "
                "instance-type lookup, DescribeInstanceTypes, does not know it); valid: a type of "
                "`aws ec2 describe-instance-types`, e.g. c6i.8xlarge (benchmark nodes) or t3.medium"
            ]) from None
    return infos


def check(cfg: StackConfig, provider: pulumi.ProviderResource) -> dict[str, Any]:
    """Raise :class:`ConfigError` with every problem these checks find; else the EC2 facts of each
    configured instance type (``get_instance_type``) by config field, for the node component."""
    invoke = pulumi.InvokeOptions(provider=provider)
    problems = plan_problems(cfg) + zone_problems(cfg, invoke)
    try:
        infos = instance_types(cfg, invoke)
    except ConfigError as err:
        problems += err.problems
        infos = {}
    if problems:
        raise ConfigError(problems)
    return infos
