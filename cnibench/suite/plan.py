"""The suite's plan: the steps, tests and settings of one benchmark run, derived from the stack config
(see docs/cloud-suite.md)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any, Mapping, Sequence

from cnibench import tags

SCRIPTS_DIR = files("cnibench.suite") / "runner"  # package data
RAW_FORMAT = "cnibench-bench-raw/1"

# docker-library/official-images, library/debian: "Tags: bookworm-slim, bookworm-20260202-slim,
# 12.13-slim, 12-slim" (Debian 12.13). The dated tag never moves.
IMAGE = "docker.io/library/debian:bookworm-20260202-slim"
PACKAGES = ("iperf3", "hey", "nginx-light")  # Debian bookworm: iperf3 3.12, hey 0.1.4, nginx 1.22.1

NAMESPACE = "cnibench-bench"
SERVICE = "cnibench-srv"
ROLE_LABEL = tags.ROLE_LABEL  # set on the nodes by the cluster component
IPERF3_PORT = 5201
HTTP_PORT = 8080
HEY_WORKERS = 32  # concurrent hey workers; -q is per worker, so the rate is split among them
POD_READY_TIMEOUT_S = 600  # image pull + apt-get install
STEP_MARGIN_S = 30  # per-step timeout = duration + margin
HEY_REQUEST_TIMEOUT_S = 10

# The four pods: (name, node role, hostNetwork, serves)
PODS: tuple[tuple[str, str, bool, bool], ...] = (
    ("cnibench-srv-host", "server", True, True),
    ("cnibench-cli-host", "client", True, False),
    ("cnibench-srv-pod", "server", False, True),
    ("cnibench-cli-pod", "client", False, False),
)
HOST = "host"  # name of the reference subject
DEBS_HOST_PATH = "/var/cache/cnibench-debs"  # on the nodes: the packages of the current run
RUN_TOKEN = "@RUN_TOKEN@"  # replaced by bench.sh with a token unique to each execution




@dataclass(frozen=True)
class Step:
    """One measurement, run once per repetition (calibrations once in all)."""

    subject: str  # "host" or the variant's name
    test: str  # test name in the result document
    tool: str  # "iperf3", "hey" (rate-limited) or "hey-max" (calibration)
    client: str  # client pod
    target: str  # server pod, or SERVICE for pod-to-service
    duration: int
    streams: int = 1
    udp: bool = False
    size: int = 0  # HTTP response size (hey)
    level: int = 0  # percent of the host's maximum rate (hey)

    @property
    def id(self) -> str:
        return f"{self.subject}/{self.test}"

    @property
    def timeout(self) -> int:
        return self.duration + STEP_MARGIN_S

    @property
    def path(self) -> str:
        if self.subject == HOST:
            return "node-to-node"
        return "pod-to-service" if self.target == SERVICE else "pod-to-pod"

    def tsv(self) -> str:
        fields = (self.id, self.tool, self.client, self.target, self.duration, self.timeout, self.streams,
                  "udp" if self.udp else "tcp", self.size, self.level)
        return "\t".join(str(f) for f in fields)


@dataclass(frozen=True)
class TestSpec:
    name: str
    kind: str
    unit: str
    higher_is_better: bool
    reference_test: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SuitePlan:
    variant: str
    duration: int
    repeat: int
    streams: int
    load_levels: tuple[int, ...]
    response_sizes: tuple[int, ...]
    timeout: int
    run: str
    workers: int = HEY_WORKERS
    calibrations: tuple[Step, ...] = ()
    steps: tuple[Step, ...] = ()

    @property
    def subjects(self) -> tuple[str, str]:
        return (HOST, self.variant)

    def tests(self) -> dict[str, list[TestSpec]]:
        """Test definitions per subject, in suite order."""
        out: dict[str, list[TestSpec]] = {s: [] for s in self.subjects}
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                continue
            seen.add(step.id)
            out[step.subject].append(_spec(step, self.workers))
        return out

    def digest(self) -> str:
        text = json.dumps({"steps": [s.tsv() for s in (*self.calibrations, *self.steps)],
                           "repeat": self.repeat, "timeout": self.timeout, "image": IMAGE}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def max_runtime_s(self) -> int:
        """Upper bound of the measurement time (pod start-up and clean-up excluded)."""
        return sum(s.timeout for s in self.calibrations) + self.repeat * sum(s.timeout for s in self.steps)


def _spec(step: Step, workers: int) -> TestSpec:
    if step.tool == "iperf3":
        base = "udp" if step.udp else "tcp"
        params: dict[str, Any] = {"streams": step.streams, "tool": "iperf3"}
        if step.udp:
            params["udp_bandwidth"] = "unlimited (-b 0)"
        ref = base if step.streams == 1 else f"tcp-{step.streams}streams"
        return TestSpec(step.test, base, "Gbit/s", True, ref, params)
    params = {"size_bytes": step.size, "load_percent": step.level, "load_fraction": step.level / 100,
              "workers": workers, "statistic": "p99", "tool": "hey"}
    return TestSpec(step.test, "latency", "ms", False, step.test, params)


def plan_suite(
    variant: str,
    *,
    duration: int = 30,
    repeat: int = 3,
    streams: int = 8,
    load_levels: Sequence[int] = (30, 50, 70),
    response_sizes: Sequence[int] = (350, 4096),
    timeout: int = 3600,
    run: str = "1",
    workers: int = HEY_WORKERS,
) -> SuitePlan:
    """The suite for ``variant`` (defaults are the config defaults)."""
    steps: list[Step] = []
    calibrations = tuple(
        Step(HOST, f"max-rate-{size}B", "hey-max", "cnibench-cli-host", "cnibench-srv-host", duration, size=size)
        for size in response_sizes
    )
    for subject, client, server in ((HOST, "cnibench-cli-host", "cnibench-srv-host"),
                                    (variant, "cnibench-cli-pod", "cnibench-srv-pod")):
        steps.append(Step(subject, "tcp", "iperf3", client, server, duration))
        if streams > 1:
            steps.append(Step(subject, f"tcp-{streams}streams", "iperf3", client, server, duration, streams=streams))
        steps.append(Step(subject, "udp", "iperf3", client, server, duration, udp=True))
        if subject != HOST:
            steps.append(Step(subject, "tcp-service", "iperf3", client, SERVICE, duration))
            steps.append(Step(subject, "udp-service", "iperf3", client, SERVICE, duration, udp=True))
        for size in response_sizes:
            for level in load_levels:
                steps.append(Step(subject, f"latency-{size}B-{level}pct", "hey", client, server, duration,
                                  size=size, level=level))
    return SuitePlan(variant=variant, duration=duration, repeat=repeat, streams=streams,
                     load_levels=tuple(load_levels), response_sizes=tuple(response_sizes), timeout=timeout,
                     run=run, workers=workers, calibrations=calibrations, steps=tuple(steps))


def plan_from_config(cfg: Any) -> SuitePlan:
    """:func:`plan_suite` for a :class:`cnibench.config.StackConfig`."""
    return plan_suite(
        cfg.variant, duration=cfg.benchmark_duration, repeat=cfg.benchmark_repeat, streams=cfg.benchmark_streams,
        load_levels=cfg.benchmark_load_levels, response_sizes=cfg.benchmark_response_sizes,
        timeout=cfg.benchmark_timeout, run=cfg.benchmark_run,
    )
