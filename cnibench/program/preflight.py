"""The checks of a stack's config that need more than the config: the provider's zone lookup and
the benchmark suite's plan. :class:`~cnibench.program.network.Network`, the first component the
program declares, runs them before its first resource (the VPC), so a refusal leaves nothing in
AWS. (The instance-type lookup is the node component's: cnibench/program/nodes.py.)
"""

from __future__ import annotations

import math

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
        f"or fewer repetitions or shorter tests"
    ]


def zone_problems(cfg: StackConfig, parent: pulumi.Resource) -> list[str]:
    """``availabilityZone`` (or the default ``<region>a``) against the zones the provider's lookup
    returns for ``region`` in this account (zone letters are account-mapped in the oldest regions)."""
    zones = aws.get_availability_zones(region=cfg.region, state="available",
                                       opts=pulumi.InvokeOptions(parent=parent))
    names = list(zones.names or [])
    if cfg.az in names:
        return []
    key = key_of("availability_zone")
    shown = repr(cfg.availability_zone) if cfg.availability_zone else f"(empty, meaning {cfg.az})"
    return [
        f"{key}: {shown} is not an available zone of region {cfg.region!r}; the zone lookup returned: "
        f"{', '.join(names) or 'none'}"
    ]


def check(cfg: StackConfig, parent: pulumi.Resource) -> None:
    """Raise :class:`ConfigError` with every problem these checks find."""
    problems = plan_problems(cfg) + zone_problems(cfg, parent)
    if problems:
        raise ConfigError(problems)
