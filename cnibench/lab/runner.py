"""Run the lab: build one cluster per datapath, measure R interleaved repetitions, report, clean up."""

from __future__ import annotations

import functools
import math
import os
import signal
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from cnibench import parsers, results, stats
from cnibench.errors import ExitCode
from cnibench.lab import measure, nsutil, preflight, service, topology
from cnibench.lab.datapaths import DATAPATHS, DEFAULT_DATAPATHS, KernelFeatureMissing, L2AdjacencyError
from cnibench.report import single as report
from cnibench.suite import definition, records
from cnibench.suite.definition import TestDef
from cnibench.variants import IPVLAN_NO_SERVICE_PATH

FAIL_AT_ENV = "CNIBENCH_LAB_FAIL_AT"  # test hook: "measure" makes the first measurement raise


# Measured on the project's 2-core VM (loopback, sockperf ping-pong --tcp -m 14 --full-rtt, 2 s, 3 runs
# each): p50 9.5-9.9 µs with client and server on one CPU, 103-183 µs on two CPUs, 99-118 µs
# unpinned. The cross-core figure is the hypervisor's wake-up latency, not the datapath's.
PINNING_NOTE = ("client and server of the request/response, connection-rate, HTTP and under-load tests run on CPU "
                "{cpu} (taskset): a cross-core wake-up on a VM costs up to ~100 µs and would hide the datapath; "
                "iperf3 runs unpinned")


MAX_LOAD = 10.0  # --loads: the largest fraction of the host's maximum message rate
# --duration/--rr-duration: one test at most an hour (iperf3's own cap, MAX_TIME in src/iperf.h, is 86400 s);
# a run measures each of its 14 tests per datapath and repetition: the default suite at 3600 s takes 2 weeks
MAX_TEST_S = 3600


class LabInterrupted(BaseException):
    """SIGTERM/SIGHUP during a run (SIGINT raises KeyboardInterrupt)."""


@dataclass
class LabOptions:
    datapaths: tuple[str, ...] = DEFAULT_DATAPATHS
    duration: float = definition.LAB_DEFAULTS.duration_s
    omit: int = definition.LAB_DEFAULTS.omit_s
    rr_duration: float = definition.LAB_DEFAULTS.rr_duration_s
    repeat: int | None = None  # a fixed number of repetitions (no adaptive stop)
    repeat_min: int = definition.LAB_DEFAULTS.repeat_min
    repeat_max: int = definition.LAB_DEFAULTS.repeat_max
    target_half_width: float = definition.LAB_DEFAULTS.target_half_width
    out: Path = Path("results/lab")
    split_subnets: bool = False
    streams: int = 1
    udp: bool = True
    service: bool = True
    latency: bool = True
    cpu: bool = True
    latency_loads: tuple[float, ...] = definition.LAB_DEFAULTS.load_fractions
    udp_rate_mbit: int = definition.LAB_DEFAULTS.udp_rate_mbit
    busy_threshold: float = definition.BUSY_THRESHOLD  # guard: other work above this share of all cores
    guard_seconds: float = 0.5
    guard_retries: int = 2
    service_proxy: str = "nft"
    pin_cpu: int | None = 0  # request/response tests: client and server on this CPU (None: unpinned)
    run_id: str | None = None
    chart: bool = True
    both_ways: bool = False  # iperf3 -R twins of the throughput tests, and UDP to the service
    ipvs: bool = False  # the service tests again through IPVS, as kube-router's service proxy

    def quick(self) -> LabOptions:
        """Small figures for tests and smoke runs (one repetition, 1 s tests)."""
        return replace(self, duration=1.0, rr_duration=1.0, repeat=1, guard_seconds=0.3, guard_retries=0)

    def functional(self) -> LabOptions:
        """Does every path pass traffic (slow or emulated machines): the quick run without the
        omitted second and the latency and CPU tests, every direction and both service proxies."""
        return replace(self.quick(), omit=0, latency=False, cpu=False, both_ways=True, ipvs=True)

    @property
    def bounds(self) -> tuple[int, int]:
        return (self.repeat, self.repeat) if self.repeat else (self.repeat_min, self.repeat_max)

    def settings(self) -> definition.SuiteSettings:
        lo, hi = self.bounds
        return replace(definition.LAB_DEFAULTS, duration_s=self.duration, omit_s=self.omit,
                       rr_duration_s=self.rr_duration, streams=self.streams, load_fractions=self.latency_loads,
                       udp_rate_mbit=self.udp_rate_mbit, repeat_min=lo, repeat_max=hi,
                       target_half_width=self.target_half_width, udp=self.udp, service=self.service,
                       latency=self.latency, cpu=self.cpu, both_ways=self.both_ways, ipvs=self.ipvs)

    def validate(self) -> None:
        """Every option checked before the first namespace is made; the error names the option."""
        unknown = [d for d in self.datapaths if d not in DATAPATHS]
        if unknown:
            raise ValueError(f"--datapath: unknown datapath(s) {', '.join(unknown)}; known: {', '.join(DATAPATHS)}")

        def finite(name: str, value: float, low: float, high: float) -> None:
            if not (math.isfinite(value) and low <= value <= high):
                raise ValueError(f"{name} {value!r}: must be a number in [{low:g}, {high:g}]")

        # iperf3 3.12 reads -t with atoi (src/iperf_api.c, iperf_parse_arguments): 0.4 becomes 0, and
        # -t 0 creates no end timer (src/iperf_client_api.c, create_client_timers: `if (test->duration
        # != 0)`), i.e. an unlimited test; 1.5 becomes 1. sockperf -t and wrk -d take whole seconds
        # too (measure.py rounds). Whole seconds only, at least 1.
        for name, value in (("--duration", self.duration), ("--rr-duration", self.rr_duration)):
            if not (math.isfinite(value) and float(value).is_integer()):
                raise ValueError(f"{name} {value:g}: must be a whole number of seconds in [1, {MAX_TEST_S}] "
                                 "(iperf3, sockperf and wrk take whole seconds; iperf3 reads -t 0.4 as 0, "
                                 "a test without end)")
            if not 1 <= value <= MAX_TEST_S:
                raise ValueError(f"{name} {value:g}: must be in [1, {MAX_TEST_S}] seconds (every test runs once "
                                 "per datapath and repetition: at 3600 s the default suite, 14 tests x 6 "
                                 "datapaths x 3-4 repetitions, runs for two weeks)")
        finite("--omit", self.omit, 0, 60)  # iperf3 3.12 refuses -O outside 0..60 (IEOMIT, src/iperf_api.c)
        finite("--busy-threshold", self.busy_threshold, 0.01, 1.0)
        finite("--udp-rate", self.udp_rate_mbit, 1, 100_000)
        if self.repeat is not None and not 1 <= self.repeat <= 100:
            raise ValueError(f"--repeat {self.repeat}: must be in [1, 100]")
        if not 1 <= self.repeat_min <= self.repeat_max <= 100:
            raise ValueError(f"--repeat-min {self.repeat_min} / --repeat-max {self.repeat_max}: "
                             "need 1 <= min <= max <= 100")
        finite("--target-half-width", self.target_half_width, 0.001, 1.0)
        if not 1 <= self.streams <= 128:  # iperf3's own limit (MAX_STREAMS 128 in src/iperf.h; -P checked in iperf_api.c)
            raise ValueError(f"--streams {self.streams}: iperf3 allows 1 to 128")
        allowed = sorted(os.sched_getaffinity(0))  # taskset can only use the CPUs this process may run on
        if self.pin_cpu is not None and self.pin_cpu not in allowed:
            raise ValueError(f"--pin-cpu {self.pin_cpu}: this process may run on CPUs {_cpu_list(allowed)} "
                             "(or -1: unpinned)")
        if self.service_proxy not in ("nft", "iptables"):
            raise ValueError(f"--service-proxy {self.service_proxy!r}: must be nft or iptables "
                             "(IPVS, kube-router's proxy, is --ipvs)")
        if self.ipvs and not self.service:
            raise ValueError("--ipvs adds service tests through IPVS: it cannot go with --no-service")
        # above 1 the target exceeds what the host network itself reached: the gate must then
        # refuse the repetition (a way to see the gate work); 10x is far beyond any generator
        if not self.latency_loads or any(not (math.isfinite(f) and 0 < f <= MAX_LOAD) for f in self.latency_loads):
            raise ValueError(f"--loads {','.join(map(str, self.latency_loads))}: fractions of the host's maximum "
                             f"message rate, each in (0, {MAX_LOAD:g}] (above 1: more than the host reached, "
                             "which the validity gate refuses)")
        names = [f"{f * 100:g}" for f in self.latency_loads]  # the test names: latency-<proto>-<pct>pct
        if len(set(names)) < len(names):
            raise ValueError(f"--loads {','.join(map(str, self.latency_loads))}: each load at most once "
                             f"(as percentages: {', '.join(names)})")


def _cpu_list(cpus: list[int]) -> str:
    return f"{cpus[0]} to {cpus[-1]}" if cpus == list(range(cpus[0], cpus[-1] + 1)) else ", ".join(map(str, cpus))


@dataclass
class LabRun:
    doc: dict[str, Any] | None
    exit_code: int
    json_path: Path | None = None
    png_path: Path | None = None
    run_id: str = ""
    messages: list[str] = field(default_factory=list)


@dataclass
class _Step:
    subject: dict
    test: dict
    fn: Callable[[int], dict]
    definition: TestDef


class _Stop:
    """The run's stop signals (SIGINT, SIGTERM, SIGHUP).

    The handler records the signal, then raises. Python drops an exception raised where it
    cannot propagate (an at-fork hook, ``__del__``, a weakref callback: "Exception ignored in
    ..."), and a ``finally`` further down may replace it with an ordinary error that a
    datapath's ``except Exception`` reports as a failure. So the recorded signal is raised
    again at the run's safe points (:func:`_check_interrupt`: between datapaths and tests,
    after a failed set-up or measurement, at the end of every pyroute2 fork through
    :func:`nsutil.signals_blocked`): a signal always stops the run. Inside ``os.fork()``'s
    hooks (``in_fork``) the handler only records, as it does once the clean-up has begun
    (``cleaning``): the clean-up runs to its end and the run still exits as interrupted."""

    def __init__(self) -> None:
        self.owner = 0  # the PID of the run; a forked child that inherited the handler has another
        self.signum: int | None = None
        self.cleaning = False
        self.in_fork = False

    def arm(self) -> dict:
        self.owner, self.signum, self.cleaning, self.in_fork = os.getpid(), None, False, False
        _register_fork_guard()
        nsutil.after_fork_check = _check_interrupt
        # SIGINT too: a shell starts background jobs with SIGINT ignored, and Python then
        # never raises KeyboardInterrupt; the lab must still stop and clean up on Ctrl-C/kill -INT
        return {s: signal.signal(s, _on_signal) for s in nsutil.STOP_SIGNALS}

    def disarm(self, old: dict) -> None:
        nsutil.after_fork_check = _no_check
        for s, h in old.items():
            signal.signal(s, h)


def _no_check() -> None:
    """``nsutil.after_fork_check`` outside a run."""


_STOP = _Stop()


@functools.cache
def _register_fork_guard() -> None:
    """Mark the at-fork hooks of every later ``os.fork()``: the first "before" hook to run (the
    last registered, so: registered when the first run is armed, after logging's) sets
    ``_STOP.in_fork``, the last "after" hook clears it. Both are C callables (a partial of
    setattr): a Python handler runs only between bytecodes, so never inside them."""
    os.register_at_fork(before=functools.partial(setattr, _STOP, "in_fork", True),
                        after_in_parent=functools.partial(setattr, _STOP, "in_fork", False),
                        after_in_child=functools.partial(setattr, _STOP, "in_fork", False))


def _interrupt(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else LabInterrupted(signal.Signals(signum).name)


def _on_signal(signum, frame):
    if os.getpid() != _STOP.owner:
        # a forked helper (pyroute2 forks to enter namespaces) inherited this handler:
        # die as the default action would, never unwind into the run's clean-up
        os._exit(128 + signum)
    if _STOP.signum is None:
        _STOP.signum = signum
    if not (_STOP.cleaning or _STOP.in_fork):
        raise _interrupt(signum)


def _check_interrupt() -> None:
    """A safe point: raise for a stop signal whose first exception was lost (see :class:`_Stop`)."""
    if _STOP.signum is not None and not (_STOP.cleaning or _STOP.in_fork):
        raise _interrupt(_STOP.signum)


def note_interrupt(exc: BaseException, run: LabRun, console: Console, doing: str) -> None:
    """Say which signal stopped the run and what happens now; the run exits 130 (README, Exit codes)."""
    what = "SIGINT" if isinstance(exc, KeyboardInterrupt) else str(exc)
    console.print(f"[yellow]interrupted ({what}): {doing}[/]")
    run.exit_code = ExitCode.INTERRUPTED


def run_lab(opts: LabOptions, console: Console | None = None) -> LabRun:
    """Run the lab end to end. Always removes every namespace, process and state file of
    the run before returning (or re-raising), including on Ctrl-C and SIGTERM."""
    console = console or Console(stderr=True)
    opts.validate()
    preflight.check(latency=opts.latency, service_proxy=opts.service_proxy)
    names = ["host", *[d for d in opts.datapaths if d != "host"]]
    run_id = opts.run_id or nsutil.new_run_id()
    clusters: list[topology.Cluster] = []
    servers: list[measure.Servers] = []
    run = LabRun(None, 1, run_id=run_id)
    lo, hi = opts.bounds
    reps = f"{lo} repetitions" if lo == hi else f"{lo} to {hi} repetitions (until every primary ratio is within " \
                                                 f"+-{100 * opts.target_half_width:g} %)"
    old: dict = {}
    claimed = False
    try:
        # the claim and the handlers at once: a signal in between is held, then raised inside this try
        with nsutil.signals_blocked():
            state = nsutil.claim_run(run_id)
            claimed = True
            old = _STOP.arm()
        console.print(f"[bold]cnibench lab[/] run [cyan]{run_id}[/]: datapaths {', '.join(names)}; "
                      f"{reps}; iperf3 {opts.duration:g} s (+{opts.omit} s omitted), sockperf/wrk "
                      f"{opts.rr_duration:g} s; underlay "
                      f"{'two subnets behind a router' if opts.split_subnets else 'one L2 segment'}")
        run.doc = _run(opts, names, run_id, state, clusters, servers, console)
        _check_interrupt()
        doc = run.doc
        out = Path(opts.out)
        out.mkdir(parents=True, exist_ok=True)
        run.json_path = results.write_json(doc, out / f"lab-{run_id}.json")
        if opts.chart:
            run.png_path = report.write_chart(doc, out / f"lab-{run_id}.png")
        console.print(report.render_table(doc))
        console.print(f"results: {run.json_path}" + (f", chart: {run.png_path}" if run.png_path else ""))
        failed = results.failures(doc)  # a failed datapath or measurement: exit 1 (README, Exit codes)
        run.exit_code = ExitCode.FAILED if failed else ExitCode.OK
        if failed:
            console.print(f"[red]failed: {'; '.join(failed)}[/]")
        _check_interrupt()
        return run
    except (KeyboardInterrupt, LabInterrupted) as exc:
        note_interrupt(exc, run, console, f"cleaning up run {run_id}")
        raise
    finally:
        # first, before any call (a signal is handled only at a call or a loop): from here a
        # signal is recorded, not raised, and the clean-up runs to its end
        _STOP.cleaning = True
        if claimed and os.getpid() != _STOP.owner:  # pragma: no cover - forked helper unwinding
            os._exit(1)
        try:
            if claimed:
                for srv in servers:
                    srv.stop()
                for c in clusters:
                    c.release_pods()
                left = nsutil.cleanup_run(run_id)
                leftovers = nsutil.run_namespaces(run_id) + [str(p) for p in nsutil.run_processes(run_id)]
                if leftovers:
                    console.print(f"[red]cleanup of run {run_id} left: {leftovers}[/]")
                elif os.environ.get("CNIBENCH_LAB_DEBUG"):
                    console.print(f"cleanup: {left}")
        finally:
            _STOP.disarm(old)
        if _STOP.signum is not None and run.exit_code != ExitCode.INTERRUPTED:
            # a signal during the clean-up (or one whose exception was lost after the last safe point)
            console.print(f"[yellow]interrupted ({signal.Signals(_STOP.signum).name}): run {run_id} "
                          "cleaned up[/]")
            run.exit_code = ExitCode.INTERRUPTED
            raise _interrupt(_STOP.signum)  # the signal decides the outcome, even over a return


@dataclass
class _Block:
    """One subject's tests; a repetition runs every block once, in subject order (interleaved)."""

    subject: dict
    cluster: topology.Cluster
    steps: list[_Step]


def _run(opts: LabOptions, names: list[str], run_id: str, state: Path, clusters: list, servers: list,
         console: Console) -> dict:
    settings = opts.settings()
    env = results.collect_environment(
        underlay_mtu=topology.UNDERLAY_MTU,
        underlay="two subnets behind a router namespace" if opts.split_subnets else "one L2 segment (bridge)",
        tools=_tool_versions(),
    )
    configured = [topology.UNDERLAY_MTU - DATAPATHS[n].encap_overhead for n in names]
    udp_size = settings.udp_size(definition.smallest_mtu(configured))
    lo, hi = opts.bounds
    params = {
        "duration_s": opts.duration,
        "repeat": hi,
        "streams": opts.streams,
        "latency_duration_s": opts.rr_duration,
        "suite": {**settings.as_parameters(), "udp_datagram_bytes": udp_size},
        "repetitions": {"min": lo, "max": hi, "target_half_width": opts.target_half_width, "done": 0,
                        "stopped": "not-adaptive" if lo == hi else "cap"},
        "extra": {"split_subnets": opts.split_subnets, "service_proxy": opts.service_proxy,
                  "busy_threshold": opts.busy_threshold, "guard_seconds": opts.guard_seconds,
                  "both_ways": opts.both_ways,
                  "cpu_pinning": PINNING_NOTE.format(cpu=opts.pin_cpu) if opts.pin_cpu is not None else
                  "none: request/response tests may cross cores (on a VM a cross-core wake-up can cost ~100 µs)"},
    }
    doc = results.new_document("lab", run_id=run_id, environment=env, parameters=params, reference="host")
    fail_at = os.environ.get(FAIL_AT_ENV)
    serve_sizes = tuple(sorted({*settings.http_sizes, settings.crr_size}))

    # ---------------------------------------------------------------- kernel probes, then their tools
    skips, ipvs_skip = _probe(opts, names, run_id)
    preflight.check_feature_tools([n for n in names if n not in skips], ipvs=opts.ipvs and ipvs_skip is None)
    if opts.ipvs:
        doc["parameters"]["extra"]["ipvs"] = ipvs_skip or "IPVS masquerade to the server pod, VIP on kube-dummy-if (kube-router)"
        if ipvs_skip:
            console.print(f"[yellow]skip[/] {ipvs_skip}")

    # ---------------------------------------------------------------- build
    active: list[tuple[dict, topology.Cluster, measure.Servers]] = []
    for name in names:
        _check_interrupt()
        dp = DATAPATHS[name]
        subject = results.new_subject(
            name, "reference" if name == "host" else "datapath", description=dp.description,
            underlay_need=dp.underlay_need, encap_overhead=dp.encap_overhead,
            configured_mtu=topology.UNDERLAY_MTU - dp.encap_overhead, cni=dp.like,
        )
        doc["subjects"].append(subject)
        if name in skips:
            subject.update(status="skipped", skipped_reason=skips[name])
            console.print(f"[yellow]skip[/] {skips[name]}")
            continue
        cluster = topology.Cluster(run_id, dp, state, split=opts.split_subnets)
        clusters.append(cluster)
        try:
            cluster.build()
            srv = measure.Servers(state, name)
            servers.append(srv)
            srv.start_iperf3(cluster.server_ns, cluster.server_ip)
            if opts.latency:
                srv.start_sockperf(cluster.server_ns, cluster.server_ip, cpu=opts.pin_cpu)
                srv.start_nginx(cluster.server_ns, cluster.server_ip, serve_sizes, cpu=opts.pin_cpu)
        except L2AdjacencyError as exc:
            subject.update(status="error", error=str(exc))
            console.print(f"[red]refused[/] {exc}")
            _drop_cluster(cluster, clusters)
            continue
        except Exception as exc:  # noqa: BLE001 - one datapath failing must not stop the others
            _check_interrupt()  # not a failure if a signal's exception was turned into this one
            subject.update(status="error", error=f"set-up failed: {type(exc).__name__}: {exc}")
            console.print(f"[red]error[/] {name}: set-up failed: {exc}")
            _drop_cluster(cluster, clusters)
            continue
        console.print(f"[green]ready[/] {name}: {cluster.client_ns} -> {cluster.server_ns} ({cluster.server_ip}), "
                      f"{cluster.path}, configured MTU {cluster.configured_mtu}")
        active.append((subject, cluster, srv))

    # ---------------------------------------------------------------- calibration on the host network
    _check_interrupt()
    calib = _calibrate(opts, settings, next(((c, v) for s, c, v in active if s["name"] == "host"), None), console)
    doc["parameters"]["extra"]["calibration"] = calib

    # ---------------------------------------------------------------- tests
    blocks = [_Block(subject, cluster, _steps(opts, settings, subject, cluster, srv, run_id, state, calib, udp_size,
                                              ipvs_skip))
              for subject, cluster, srv in active]
    per_rep = sum(len(b.steps) for b in blocks)
    guard = {"blocks": 0, "contaminated": 0, "retried": 0}
    rep = 0
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        task = progress.add_task("measuring", total=per_rep * hi)
        while True:
            for block in blocks:
                sample, contaminated = _guard(opts, guard, progress, block.subject["name"], rep)
                for step in block.steps:
                    _check_interrupt()
                    progress.update(task, description=f"rep {rep + 1}/{hi} {step.subject['name']}: "
                                                      f"{step.test['name']}")
                    if fail_at == "measure":
                        raise RuntimeError(f"injected failure ({FAIL_AT_ENV}=measure)")
                    try:
                        record = step.fn(rep)
                    except (measure.MeasureError, OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
                        _check_interrupt()
                        record = records.error_record(rep, str(exc))
                        progress.console.print(f"[red]error[/] {step.subject['name']} {step.test['name']}: {exc}")
                    record["contaminated"] = contaminated
                    record["guard"] = sample
                    step.test["repetitions"].append(record)
                    if "error" not in record:
                        progress.console.print(_describe(step, record))
                    progress.advance(task)
            rep += 1
            decision = stats.adaptive_stop(_primary_intervals(blocks), done=rep, minimum=lo, maximum=hi,
                                           target_half_width=opts.target_half_width)
            if decision.stop:
                break
            if decision.reason == "continue":
                width = (f"+-{100 * decision.worst_half_width:.1f} %" if decision.worst_half_width is not None
                         else "no interval yet")
                progress.console.print(f"  after {rep} repetitions the widest primary interval is {decision.worst} "
                                       f"({width}, target +-{100 * opts.target_half_width:g} %): one more")
        progress.update(task, total=per_rep * rep, completed=per_rep * rep, description="measured")
    doc["parameters"]["repetitions"].update(
        done=rep, stopped="not-adaptive" if lo == hi else decision.reason, worst_metric=decision.worst,
        worst_half_width=decision.worst_half_width)

    results.finalize(doc)
    for subject in doc["subjects"]:
        mtu = next((t for t in subject["tests"] if t["kind"] == "mtu"), None)
        if mtu and mtu["stats"]["median"] is not None:
            subject["observed_mtu"] = int(mtu["stats"]["median"])
    doc["extra"] = _verdict(opts, guard)
    return doc


def _probe(opts: LabOptions, names: list[str], run_id: str) -> tuple[dict[str, str], str | None]:
    """What this kernel cannot build: the skip reason of each such datapath, and of the IPVS
    service path (None: it can, or --ipvs is off)."""
    skips: dict[str, str] = {}
    for name in names:
        _check_interrupt()
        feature = DATAPATHS[name].kernel_feature
        problem = topology.probe_kernel_feature(run_id, feature) if feature else None
        if feature and problem:
            skips[name] = str(KernelFeatureMissing(name, feature, f"Linux {os.uname().release}, {problem}"))
    ipvs_skip = service.probe_ipvs(run_id) if opts.ipvs and opts.service else None
    return skips, ipvs_skip


def _verdict(opts: LabOptions, guard: dict) -> dict:
    return records.contamination_verdict(guard["blocks"], guard["contaminated"], retried=guard["retried"],
                                         threshold=opts.busy_threshold, where="the machine",
                                         rerun="rerun on a quiet machine")


def _guard(opts: LabOptions, guard: dict, progress: Progress, subject: str, rep: int) -> tuple[dict, bool]:
    """Sample the machine before one subject's repetition; retry (bounded) while it is busy."""
    guard["blocks"] += 1
    for attempt in range(opts.guard_retries + 1):
        sample = measure.sample_load(opts.guard_seconds)
        sample = {k: round(v, 4) if isinstance(v, float) else v for k, v in sample.items()}
        if not definition.contaminated(sample["busy_fraction"], opts.busy_threshold):
            return sample, False
        if attempt < opts.guard_retries:
            guard["retried"] += 1
            progress.console.print(f"  [yellow]busy[/] machine {100 * sample['busy_fraction']:.0f} % busy before "
                                   f"rep {rep + 1} of {subject}: waiting and sampling again")
    guard["contaminated"] += 1
    progress.console.print(f"  [yellow]contaminated[/] rep {rep + 1} of {subject}: the machine stayed "
                           f"{100 * sample['busy_fraction']:.0f} % busy (threshold {100 * opts.busy_threshold:g} %); "
                           "its figures will not be used")
    return sample, True


def _primary_intervals(blocks: list[_Block]) -> dict[str, stats.RatioInterval]:
    host = next((b for b in blocks if b.subject["name"] == "host"), None)
    if host is None:
        return {}
    host_tests = {s.test["name"]: s.test for s in host.steps}
    return {f"{block.subject['name']}/{step.test['name']}": results.ratio_interval(step.test,
                                                                                 host_tests[step.test["name"]])
            for block in blocks if block is not host
            for step in block.steps if step.definition.primary and step.test["name"] in host_tests}


def _calibrate(opts: LabOptions, settings: definition.SuiteSettings,
               host: tuple[topology.Cluster, measure.Servers] | None, console: Console) -> dict:
    """The host network's maxima, measured once: they fix the offered rates of the constant-rate
    latency tests and of the CPU test, the same for every datapath."""
    out: dict = {}
    if host is None:
        return out
    cluster, srv = host
    for what in definition.calibrations(settings):
        try:
            if what == "max-tcp":
                run = measure.iperf3(cluster.client_ns, cluster.server_ip, duration=opts.duration, omit=opts.omit,
                                     logfile=srv.dir / "iperf3-calibration.json")
                out[what] = {"value": run.result.gbit_per_second, "unit": "Gbit/s", "tool": "iperf3"}
            else:
                proto = what.rsplit("-", 1)[1]
                res, _ = measure.sockperf(cluster.client_ns, cluster.server_ip, mode="throughput", protocol=proto,
                                          size=settings.rr_sizes[0], duration=opts.rr_duration, cpu=opts.pin_cpu)
                out[what] = {"value": res.message_rate, "unit": "msg/s", "tool": "sockperf throughput --mps max",
                             "message_bytes": settings.rr_sizes[0]}
            console.print(f"calibration: host {what} = {out[what]['value']:,.3f} {out[what]['unit']}")
        except (measure.MeasureError, OSError, subprocess.TimeoutExpired) as exc:
            out[what] = {"value": None, "error": str(exc)}
            console.print(f"[red]calibration {what} failed[/]: {exc}")
    return out


def _drop_cluster(cluster: topology.Cluster, clusters: list) -> None:
    """Free a cluster whose set-up failed now (the final cleanup would do it too)."""
    from pyroute2 import netns

    cluster.release_pods()
    for ns in reversed(cluster.namespaces):
        try:
            netns.remove(ns)
        except OSError:
            pass
    clusters.remove(cluster)


def _describe(step: _Step, record: dict) -> str:
    t = step.test
    head = f"  rep {record['index'] + 1} {step.subject['name']:9s} {t['name']:24s}"
    if not record.get("valid"):
        return f"{head} [yellow]invalid[/]: {record.get('invalid_reason')}"
    v = record["value"]
    extra = ""
    d = record.get("details") or {}
    p = record.get("percentiles_us") or {}
    if t["kind"] in ("rr", "latency") and p:
        extra = " (" + ", ".join(f"{k} {p[k]:.1f}" for k in ("p50", "p90", "p99", "p99.9") if k in p) + " µs)"
    elif t["kind"] == "udp":
        extra = f" ({d.get('lost_percent', 0):.2f} % lost of {d.get('offered_mbit')} Mbit/s offered)"
    elif t["kind"] == "tcp" and d.get("retransmits") is not None:
        extra = f" ({d['retransmits']} retransmits)"
    elif t["kind"] == "cpu":
        extra = f" (machine {record['cpu']['busy_percent']:.0f} % busy)"
    flag = " [yellow]contaminated[/]" if record.get("contaminated") else ""
    return f"{head} {v:,.3f} {t['unit']}{extra}{flag}"


def _steps(opts: LabOptions, settings: definition.SuiteSettings, subject: dict, cluster: topology.Cluster,
           srv: measure.Servers, run_id: str, state: Path, calib: dict, udp_size: int,
           ipvs_skip: str | None = None) -> list[_Step]:
    steps: list[_Step] = []
    name = subject["name"]
    logdir = state / name
    is_host = name == "host"
    service_ok = not is_host and bool(cluster.pods)
    defs = definition.suite_tests(settings, udp_size=udp_size, service=service_ok)
    paths = service.ServicePaths(cluster, measure.IPERF3_PORT, opts.service_proxy)
    vip: str | None = None
    for d in defs:
        path = "pod-to-service" if d.service else cluster.path
        test = results.new_test(d.name, d.kind, path, d.unit, higher_is_better=d.higher_is_better,
                                reference_test=d.reference_test, tool=_tool_name(d), statistic=d.statistic,
                                closed_loop=d.closed_loop)
        test["parameters"] = dict(d.parameters)
        subject["tests"].append(test)
        if d.service:
            skip = IPVLAN_NO_SERVICE_PATH if cluster.datapath.pods == "ipvlan" else ipvs_skip if d.ipvs else None
            if skip:
                test.update(status="skipped", skipped_reason=skip)
                continue
            try:
                vip = paths.vip(d.ipvs)
            except RuntimeError as exc:
                test.update(status="error", error=str(exc))
                continue
            test["parameters"].update(service_ip=vip, proxy=paths.describe(d.ipvs))
        if d.kind == "latency" and not (calib.get(f"max-msg-rate-{d.protocol}") or {}).get("value"):
            test.update(status="error", error="no reference rate: the host calibration failed")
            continue
        if d.kind == "cpu" and not (calib.get("max-tcp") or {}).get("value"):
            test.update(status="error", error="no reference rate: the host calibration failed")
            continue
        fn = _test_fn(opts, settings, d, cluster, srv, run_id, logdir, calib, vip if d.service else None)
        steps.append(_Step(subject, test, fn, d))
    return steps


def _tool_name(d: TestDef) -> str:
    versions = _tool_versions()
    return versions.get(d.tool, d.tool)


def _test_fn(opts: LabOptions, settings: definition.SuiteSettings, d: TestDef, cluster: topology.Cluster,
             srv: measure.Servers, run_id: str, logdir: Path, calib: dict, vip: str | None) -> Callable[[int], dict]:
    ip = vip or cluster.server_ip
    client = cluster.client_ns
    log = logdir / "iperf3-client.json"

    def tcp(rep: int) -> dict:
        run = measure.iperf3(client, ip, duration=opts.duration, omit=opts.omit, streams=d.parameters["streams"],
                             logfile=log, reverse=d.reverse)
        return records.iperf3_record(rep, run.result, target=ip)

    def udp(rep: int) -> dict:
        run = measure.iperf3(client, ip, duration=opts.duration, omit=opts.omit, udp=True,
                             bitrate=f"{settings.udp_rate_mbit}M", length=d.size, logfile=log, reverse=d.reverse)
        return records.iperf3_record(rep, run.result, offered_mbit=settings.udp_rate_mbit, target=ip)

    def rr(rep: int) -> dict:
        res, _ = measure.sockperf(client, ip, mode="ping-pong", protocol=d.protocol, size=d.size,
                                  duration=opts.rr_duration, cpu=opts.pin_cpu)
        return records.rr_record(rep, res)

    def under_load(rep: int) -> dict:
        target = calib[f"max-msg-rate-{d.protocol}"]["value"] * d.load_fraction
        res, _ = measure.sockperf(client, ip, mode="under-load", protocol=d.protocol, size=d.size,
                                  duration=opts.rr_duration, mps=target, reply_every=settings.reply_every,
                                  cpu=opts.pin_cpu)
        return records.under_load_record(rep, res, target)

    def http(rep: int) -> dict:
        crr = d.kind == "crr"
        res, _ = measure.wrk(client, f"http://{ip}:{measure.HTTP_PORT}/{d.size}", duration=opts.rr_duration,
                             connections=1 if crr else settings.http_connections, close=crr, run_id=run_id,
                             cpu=opts.pin_cpu)
        return records.wrk_record(rep, res)

    def cpu(rep: int) -> dict:
        target = calib["max-tcp"]["value"] * settings.cpu_rate_fraction
        idle = measure.sample_load(settings.idle_baseline_s)
        # no omitted seconds here: the offered rate is fixed from the start, and the CPU is
        # counted over the whole run
        run = measure.iperf3(client, ip, duration=opts.duration, omit=0, bitrate=f"{target * 1000:.0f}M",
                             logfile=log, server_pid=srv.iperf3_pid)
        return records.cpu_record(
            rep, run.result, target_gbit=target, machine_busy_s=run.machine_busy_s,
            idle_busy_per_s=idle["busy_fraction"] * idle["cpus"], wall_s=run.wall_s, cpus=idle["cpus"],
            sides={"client": run.client_cpu_s, "server": run.server_cpu_s}, figure="processes",
            source="the iperf3 client's CPU time (getrusage of the child) plus the iperf3 server's "
                   "(/proc/PID/schedstat), both the scheduler's nanosecond runtime; softirq work done in their "
                   "context is included. Cross-check: the whole machine "
                   f"({idle.get('source', 'unknown source')}) minus the idle baseline")

    def mtu(rep: int) -> dict:
        return records.value_record(rep, measure.probe_path_mtu(client, cluster.server_ip), observed_mtu=True)

    by_kind: dict[str, Callable[[int], dict]] = {"tcp": tcp, "udp": udp, "rr": rr, "latency": under_load,
                                                 "crr": http, "http": http, "cpu": cpu, "mtu": mtu}
    return by_kind[d.kind]


@functools.cache
def _tool_versions() -> dict[str, str]:
    """The first line each tool prints of its version, once per process."""
    versions: dict[str, str] = {}
    argvs = {"iperf3": ["iperf3", "--version"], "nginx": ["nginx", "-v"], "sockperf": ["sockperf", "--version"],
             "wrk": ["wrk", "--version"]}
    for tool, argv in argvs.items():
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=5)
            text = parsers.strip_escapes(p.stdout + p.stderr)
            line = next((ln for ln in text.splitlines() if ln.strip()), "")
            versions[tool] = line.strip().removeprefix("sockperf: ").strip("= ")[:80]
        except (OSError, subprocess.TimeoutExpired):
            pass
    return versions
