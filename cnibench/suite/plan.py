"""The cloud suite's plan: the steps, tests and settings of one benchmark run, derived from the stack
config (see docs/cloud-suite.md).

The tests are those of :func:`cnibench.suite.definition.suite_tests`, the one suite definition
the local lab uses too: the same names, tools, statistics and validity rules, so both produce
the same result document (schema v2). The plan adds what only the cloud needs: which pod runs
each step, the per-step timeouts, and the rows of ``steps.tsv`` that ``runner/bench.sh`` reads.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace
from importlib.resources import files
from typing import Any, Sequence

from cnibench import tags
from cnibench.suite import definition
from cnibench.suite.definition import CLOUD_DEFAULTS, SuiteSettings, TestDef

SCRIPTS_DIR = files("cnibench.suite") / "runner"  # package data
RAW_FORMAT = "cnibench-bench-raw/2"

# docker-library/official-images, library/debian: "Tags: bookworm-slim, bookworm-20260202-slim,
# 12.13-slim, 12-slim" (Debian 12.13). The dated tag never moves.
IMAGE = "docker.io/library/debian:bookworm-20260202-slim"
# All four from Debian bookworm's main archive (checked 2026 on packages.debian.org and with
# `apt-cache show` on a bookworm machine: Filename pool/main/...):
#   iperf3       3.12-1+deb12u2   (net)    packages.debian.org/bookworm/iperf3
#   sockperf     3.7-1            (net)    packages.debian.org/search?keywords=sockperf: "bookworm (net): 3.7-1:
#                                          amd64 arm64 armel armhf i386 mipsel ppc64el s390x"
#   wrk          4.1.0-3+b2       (web)    packages.debian.org/wrk: "bookworm (web): 4.1.0-3+b2: amd64 arm64 ..."
#   nginx-light  1.22.1-9+deb12u* (httpd)  packages.debian.org/bookworm/nginx-light
# No ping: iputils-ping has "Priority: important" in bookworm, and Debian's container images are
# built from the minbase variant (Essential and "required" packages only), so the image has no
# ping and the path MTU is not probed in the cloud (the mtu test records the pod interface MTU).
PACKAGES = ("iperf3", "sockperf", "wrk", "nginx-light")

NAMESPACE = "cnibench-bench"
SERVICE = "cnibench-srv"
ROLE_LABEL = tags.ROLE_LABEL  # set on the nodes by the cluster component
IPERF3_PORT = 5201
SOCKPERF_PORT = 11111  # sockperf's own default; a TCP and a UDP server share it
HTTP_PORT = 8080
POD_READY_TIMEOUT_S = 600  # image pull + apt-get install
STEP_MARGIN_S = 30  # per-step timeout = the step's own length + margin
WRK_SCRIPT = "/tmp/wrk-report.lua"  # where bench.sh puts wrk-report.lua in the client pods
WRK_REQUEST_TIMEOUT = "5s"  # wrk --timeout (the lab's value)
DEFAULT_MTU = 9001  # VPC

# The four pods: (name, node role, hostNetwork, serves)
PODS: tuple[tuple[str, str, bool, bool], ...] = (
    ("cnibench-srv-host", "server", True, True),
    ("cnibench-cli-host", "client", True, False),
    ("cnibench-srv-pod", "server", False, True),
    ("cnibench-cli-pod", "client", False, False),
)
HOST = "host"  # name of the reference subject
HOST_PODS = ("cnibench-cli-host", "cnibench-srv-host")
VARIANT_PODS = ("cnibench-cli-pod", "cnibench-srv-pod")
# the kinds whose offered rate is a fraction of the host's maximum (definition.calibrations)
CALIBRATED_KINDS = ("latency", "cpu")
NO_HOST_REFERENCE_SKIP = ("no host reference (--no-host-reference): its offered rate is a fraction of the host "
                          "network's maximum, which was not measured")
DEBS_HOST_PATH = "/var/cache/cnibench-debs"  # on the nodes: the packages of the current run
RUN_TOKEN = "@RUN_TOKEN@"  # replaced by bench.sh with a token unique to each execution

# steps.tsv, one row per step; bash `read` collapses empty tab-separated fields, so an unused
# field is "-". See docs/cloud-suite.md.
TSV_COLUMNS = ("id", "phase", "tool", "mode", "client", "target", "duration", "timeout", "omit", "streams",
               "proto", "size", "rate", "connections", "reply_every", "calibration", "fraction", "idle")


@dataclass(frozen=True)
class Step:
    """One command of the runner, run once per repetition (calibrations once in all)."""

    subject: str  # "host" or the variant's name
    test: str  # test name in the result document (or the calibration's name)
    tool: str  # iperf3, sockperf, wrk, mtu
    mode: str  # iperf3: tcp|udp|cpu; sockperf: ping-pong|under-load|throughput; wrk: keepalive|close; mtu: iface
    client: str  # client pod
    target: str  # server pod, or SERVICE for pod-to-service
    duration: int  # seconds the tool measures (iperf3 -t, sockperf -t, wrk -d)
    omit: int = 0  # iperf3 -O: seconds run before the measured part
    streams: int = 1  # iperf3 -P
    proto: str = "tcp"
    size: int = 0  # UDP datagram, sockperf message or HTTP response size (bytes)
    rate: str = "-"  # fixed offered rate: iperf3 -b (e.g. 1000M)
    connections: int = 0  # wrk -c
    reply_every: int = 0  # sockperf under-load --reply-every
    calibration: str = "-"  # the calibration whose value, times fraction, is the offered rate
    fraction: float = 0.0
    idle: float = 0.0  # cpu: seconds of idle baseline sampled just before
    phase: str = "test"  # "calibration" or "test"

    @property
    def id(self) -> str:
        return f"{self.subject}/{self.test}"

    @property
    def timeout(self) -> int:
        return self.duration + self.omit + math.ceil(self.idle) + STEP_MARGIN_S

    @property
    def path(self) -> str:
        if self.subject == HOST:
            return "node-to-node"
        return "pod-to-service" if self.target == SERVICE else "pod-to-pod"

    def row(self) -> tuple[str, ...]:
        def f(v: Any) -> str:
            if isinstance(v, float):
                v = f"{v:g}"
            return str(v) if str(v) != "" else "-"

        return tuple(f(v) for v in (self.id, self.phase, self.tool, self.mode, self.client, self.target,
                                     self.duration, self.timeout, self.omit, self.streams, self.proto, self.size,
                                     self.rate, self.connections, self.reply_every, self.calibration, self.fraction,
                                     self.idle))

    def tsv(self) -> str:
        return "\t".join(self.row())


@dataclass(frozen=True)
class PlannedTest:
    """A test of the suite definition, as measured on one subject of the cloud run."""

    definition: TestDef
    path: str

    @property
    def name(self) -> str:
        return self.definition.name


@dataclass(frozen=True)
class SuitePlan:
    variant: str
    settings: SuiteSettings
    udp_size: int
    timeout: int
    run: str
    calibrations: tuple[Step, ...] = ()
    steps: tuple[Step, ...] = ()
    host_tests: tuple[PlannedTest, ...] = ()
    variant_tests: tuple[PlannedTest, ...] = ()
    # False (`cnibench run --no-host-reference`): no hostNetwork pods, no host subject, no
    # calibration; the tests whose offered rate is a fraction of the host's maximum are skipped
    host_reference: bool = True
    image: str = IMAGE  # the pods' image (`cnibench run --image`: one that already holds the tools)

    @property
    def subjects(self) -> tuple[str, ...]:
        return (HOST, self.variant) if self.host_reference else (self.variant,)

    @property
    def pods(self) -> tuple[tuple[str, str, bool, bool], ...]:
        """The pods of this run (:data:`PODS`, without the hostNetwork pods when there is no host reference)."""
        return PODS if self.host_reference else tuple(p for p in PODS if not p[2])

    @property
    def repeat(self) -> int:
        """Repetitions of every test: a fixed count in the cloud (no adaptive stop)."""
        return self.settings.repeat_max

    @property
    def duration(self) -> int:
        return int(self.settings.duration_s)

    @property
    def rr_duration(self) -> int:
        return int(self.settings.rr_duration_s)

    @property
    def streams(self) -> int:
        return self.settings.streams

    @property
    def load_levels(self) -> tuple[int, ...]:
        """Load levels in percent of the host's maximum message rate."""
        return tuple(round(f * 100) for f in self.settings.load_fractions)

    @property
    def response_sizes(self) -> tuple[int, ...]:
        return tuple(self.settings.http_sizes)

    @property
    def served_sizes(self) -> tuple[int, ...]:
        """The files nginx serves: every HTTP test's response size and the connection-rate test's."""
        return tuple(sorted({*self.settings.http_sizes, self.settings.crr_size}))

    def tests(self) -> dict[str, list[PlannedTest]]:
        """The tests per subject, in suite order."""
        if not self.host_reference:
            return {self.variant: list(self.variant_tests)}
        return {HOST: list(self.host_tests), self.variant: list(self.variant_tests)}

    def step_of(self, step_id: str) -> Step | None:
        return next((s for s in (*self.calibrations, *self.steps) if s.id == step_id), None)

    def digest(self) -> str:
        fields: dict[str, Any] = {"steps": [s.tsv() for s in (*self.calibrations, *self.steps)],
                                  "repeat": self.repeat, "timeout": self.timeout, "image": self.image,
                                  "packages": list(PACKAGES), "suite": self.settings.as_parameters(),
                                  "udp_size": self.udp_size}
        if not self.host_reference:  # only then: the Pulumi stacks' digests (their triggers) stay as they were
            fields["host_reference"] = False
        text = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def max_runtime_s(self) -> int:
        """Upper bound of the measurement time (pod start-up and clean-up excluded): every
        step's timeout and every background-load guard."""
        guard = math.ceil(definition.GUARD_SECONDS) + STEP_MARGIN_S
        per_rep = sum(s.timeout for s in self.steps) + guard * len(self.subjects)
        return sum(s.timeout for s in self.calibrations) + self.repeat * per_rep


def _steps_of(subject: str, defs: Sequence[TestDef], settings: SuiteSettings, client: str,
              server: str) -> tuple[list[Step], list[PlannedTest]]:
    s = settings
    steps: list[Step] = []
    planned: list[PlannedTest] = []
    dur, rr = int(s.duration_s), int(s.rr_duration_s)
    for d in defs:
        target = SERVICE if d.service else server
        if d.skipped_reason:  # in the document as skipped, never run
            planned.append(PlannedTest(d, "pod-to-service" if d.service else "pod-to-pod"))
            continue

        def new(d: TestDef = d, target: str = target, **kw: Any) -> Step:
            return Step(subject=subject, test=d.name, client=client, target=target, **kw)

        if d.kind == "tcp":
            step = new(tool="iperf3", mode="tcp", duration=dur, omit=s.omit_s,
                        streams=int(d.parameters.get("streams", 1)))
        elif d.kind == "udp":
            step = new(tool="iperf3", mode="udp", duration=dur, omit=s.omit_s, proto="udp", size=d.size,
                        rate=f"{s.udp_rate_mbit}M")
        elif d.kind == "rr":
            step = new(tool="sockperf", mode="ping-pong", duration=rr, proto=d.protocol, size=d.size)
        elif d.kind == "latency":
            step = new(tool="sockperf", mode="under-load", duration=rr, proto=d.protocol, size=d.size,
                        reply_every=s.reply_every, calibration=f"max-msg-rate-{d.protocol}",
                        fraction=d.load_fraction)
        elif d.kind in ("crr", "http"):
            crr = d.kind == "crr"
            step = new(tool="wrk", mode="close" if crr else "keepalive", duration=rr, size=d.size,
                        connections=int(d.parameters["connections"]))
        elif d.kind == "cpu":
            # no omitted seconds: the offered rate is fixed from the start and the CPU is counted
            # over the whole run (as in the lab)
            step = new(tool="iperf3", mode="cpu", duration=dur, omit=0, calibration="max-tcp",
                        fraction=s.cpu_rate_fraction, idle=s.idle_baseline_s)
        elif d.kind == "mtu":
            step = new(tool="mtu", mode="iface", duration=0)
        else:  # pragma: no cover - the definition has no other kind
            raise ValueError(f"test {d.name}: no cloud step for kind {d.kind!r}")
        steps.append(step)
        planned.append(PlannedTest(d, step.path))
    return steps, planned


def calibration_steps(settings: SuiteSettings) -> tuple[Step, ...]:
    """The host network's maxima, measured once before the repetitions (as in the lab)."""
    client, server = HOST_PODS
    out: list[Step] = []
    for what in definition.calibrations(settings):
        if what == "max-tcp":
            out.append(Step(HOST, what, "iperf3", "tcp", client, server, int(settings.duration_s),
                            omit=settings.omit_s, phase="calibration"))
        else:
            proto = what.rsplit("-", 1)[1]
            out.append(Step(HOST, what, "sockperf", "throughput", client, server, int(settings.rr_duration_s),
                            proto=proto, size=settings.rr_sizes[0], phase="calibration"))
    return tuple(out)


def plan_suite(
    variant: str,
    *,
    settings: SuiteSettings = CLOUD_DEFAULTS,
    mtus: Sequence[int] = (DEFAULT_MTU,),
    timeout: int = 3600,
    run: str = "1",
    no_service_path: str | None = None,
    host_reference: bool = True,
    image: str = IMAGE,
) -> SuitePlan:
    """The suite for ``variant``. ``mtus`` are the MTUs of the run (node network and pod
    network): the one UDP datagram size fits the smallest. Without ``host_reference`` only the
    variant is measured; its tests that need the host's calibration are kept, skipped."""
    udp_size = settings.udp_size(definition.smallest_mtu(list(mtus)))
    var_defs = definition.suite_tests(settings, udp_size=udp_size, service=True, no_service_path=no_service_path)
    if not host_reference:
        var_defs = [replace(d, skipped_reason=NO_HOST_REFERENCE_SKIP)
                    if d.kind in CALIBRATED_KINDS and not d.skipped_reason else d for d in var_defs]
        var_steps, var_tests = _steps_of(variant, var_defs, settings, *VARIANT_PODS)
        return SuitePlan(variant=variant, settings=settings, udp_size=udp_size, timeout=timeout, run=run,
                         steps=tuple(var_steps), variant_tests=tuple(var_tests), host_reference=False, image=image)
    host_defs = definition.suite_tests(settings, udp_size=udp_size, service=False)
    host_steps, host_tests = _steps_of(HOST, host_defs, settings, *HOST_PODS)
    var_steps, var_tests = _steps_of(variant, var_defs, settings, *VARIANT_PODS)
    return SuitePlan(variant=variant, settings=settings, udp_size=udp_size, timeout=timeout, run=run,
                     calibrations=calibration_steps(settings), steps=(*host_steps, *var_steps),
                     host_tests=tuple(host_tests), variant_tests=tuple(var_tests), image=image)


def settings_from_config(cfg: Any) -> SuiteSettings:
    """:data:`CLOUD_DEFAULTS` with the stack's ``benchmark*`` keys. The cloud runs a fixed number
    of repetitions (``benchmarkRepeat``): no adaptive stop."""
    return replace(
        CLOUD_DEFAULTS,
        duration_s=float(cfg.benchmark_duration),
        rr_duration_s=float(cfg.benchmark_duration),
        repeat_min=cfg.benchmark_repeat,
        repeat_max=cfg.benchmark_repeat,
        streams=cfg.benchmark_streams,
        load_fractions=tuple(level / 100 for level in cfg.benchmark_load_levels),
        http_sizes=tuple(cfg.benchmark_response_sizes),
    )


def plan_from_config(cfg: Any) -> SuitePlan:
    """:func:`plan_suite` for a :class:`cnibench.config.StackConfig`: the UDP datagram fits the
    smaller of the node network's MTU (``underlayMtu``) and the pod MTU the variant sets."""
    return plan_suite(cfg.variant, settings=settings_from_config(cfg), mtus=(cfg.underlay_mtu, cfg.pod_mtu),
                      timeout=cfg.benchmark_timeout, run=cfg.benchmark_run,
                      no_service_path=cfg.variant_record.no_service_path)
