"""Run the lab: build one cluster per datapath, measure R interleaved repetitions, report, clean up."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from cnibench import parsers, results
from cnibench.errors import ExitCode
from cnibench.lab import measure, nsutil, preflight, topology
from cnibench.lab.datapaths import DATAPATHS, DEFAULT_DATAPATHS, KernelFeatureMissing, L2AdjacencyError
from cnibench.report import single as report

FAIL_AT_ENV = "CNIBENCH_LAB_FAIL_AT"  # test hook: "measure" makes the first measurement raise


class LabInterrupted(BaseException):
    """SIGTERM/SIGHUP during a run (SIGINT raises KeyboardInterrupt)."""


@dataclass
class LabOptions:
    datapaths: tuple[str, ...] = DEFAULT_DATAPATHS
    duration: float = 3.0
    repeat: int = 3
    out: Path = Path("results/lab")
    split_subnets: bool = False
    streams: int = 1
    udp: bool = True
    service: bool = True
    latency: bool = True
    latency_sizes: tuple[int, ...] = measure.LATENCY_SIZES
    latency_loads: tuple[float, ...] = (0.5,)
    latency_duration: float = 2.0
    calibration_duration: float = 2.0
    latency_workers: int = 4
    service_proxy: str = "nft"
    run_id: str | None = None
    chart: bool = True

    def quick(self) -> LabOptions:
        """Small figures for tests and smoke runs (about 5 s per datapath)."""
        return replace(self, duration=1.0, repeat=1, latency_sizes=(350,), latency_duration=1.0,
                       calibration_duration=1.0)

    def validate(self) -> None:
        unknown = [d for d in self.datapaths if d not in DATAPATHS]
        if unknown:
            raise ValueError(f"unknown datapath(s) {', '.join(unknown)}; known: {', '.join(DATAPATHS)}")
        if self.duration <= 0 or self.repeat < 1:
            raise ValueError("--duration must be > 0 and --repeat >= 1")
        if self.service_proxy not in ("nft", "iptables"):
            raise ValueError("--service-proxy must be nft or iptables")
        if any(not 0 < f <= 1.5 for f in self.latency_loads):
            raise ValueError("latency loads are fractions of the host's max rate, in (0, 1.5]")


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


_OWNER_PID = [0]


def _raise_interrupt(signum, frame):
    if os.getpid() != _OWNER_PID[0]:
        # a forked helper (pyroute2 forks to enter namespaces) inherited this handler:
        # die as the default action would, never unwind into the run's clean-up
        os._exit(128 + signum)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise LabInterrupted(signal.Signals(signum).name)


def run_lab(opts: LabOptions, console: Console | None = None) -> LabRun:
    """Run the lab end to end. Always removes every namespace, process and state file of
    the run before returning (or re-raising), including on Ctrl-C and SIGTERM."""
    console = console or Console(stderr=True)
    opts.validate()
    preflight.check(latency=opts.latency, service_proxy=opts.service_proxy)
    names = ["host", *[d for d in opts.datapaths if d != "host"]]
    run_id = opts.run_id or nsutil.new_run_id()
    state = nsutil.claim_run(run_id)
    _OWNER_PID[0] = os.getpid()
    # SIGINT too: a shell starts background jobs with SIGINT ignored, and Python then
    # never raises KeyboardInterrupt; the lab must still stop and clean up on Ctrl-C/kill -INT
    old = {s: signal.signal(s, _raise_interrupt) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    clusters: list[topology.Cluster] = []
    servers: list[measure.Servers] = []
    run = LabRun(None, 1, run_id=run_id)
    console.print(f"[bold]cnibench lab[/] run [cyan]{run_id}[/]: datapaths {', '.join(names)}; "
                  f"{opts.repeat} x {opts.duration:g}s; underlay "
                  f"{'two subnets behind a router' if opts.split_subnets else 'one L2 segment'}")
    try:
        run.doc = _run(opts, names, run_id, state, clusters, servers, console)
        doc = run.doc
        out = Path(opts.out)
        out.mkdir(parents=True, exist_ok=True)
        run.json_path = results.write_json(doc, out / f"lab-{run_id}.json")
        if opts.chart:
            run.png_path = report.write_chart(doc, out / f"lab-{run_id}.png")
        console.print(report.render_table(doc))
        console.print(f"results: {run.json_path}" + (f", chart: {run.png_path}" if run.png_path else ""))
        failed = [s["name"] for s in doc["subjects"] if s["status"] == "error"]
        run.exit_code = ExitCode.FAILED if failed else ExitCode.OK
        if failed:
            console.print(f"[red]datapaths that failed: {', '.join(failed)}[/]")
        return run
    except (KeyboardInterrupt, LabInterrupted) as exc:
        what = "SIGINT" if isinstance(exc, KeyboardInterrupt) else str(exc)
        console.print(f"[yellow]interrupted ({what}): cleaning up run {run_id}[/]")
        run.exit_code = ExitCode.INTERRUPTED
        raise
    finally:
        if os.getpid() != _OWNER_PID[0]:  # pragma: no cover - forked helper unwinding
            os._exit(1)
        sig_old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
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
            for s, h in sig_old.items():
                signal.signal(s, h)
            for s, h in old.items():
                signal.signal(s, h)


def _run(opts: LabOptions, names: list[str], run_id: str, state: Path, clusters: list, servers: list,
         console: Console) -> dict:
    env = results.collect_environment(
        underlay_mtu=topology.UNDERLAY_MTU,
        underlay="two subnets behind a router namespace" if opts.split_subnets else "one L2 segment (bridge)",
        tools=_tool_versions(),
    )
    params = {
        "duration_s": opts.duration,
        "repeat": opts.repeat,
        "streams": opts.streams,
        "latency_duration_s": opts.latency_duration,
        "latency_sizes": list(opts.latency_sizes) if opts.latency else [],
        "latency_loads": list(opts.latency_loads) if opts.latency else [],
        "extra": {"split_subnets": opts.split_subnets, "service_proxy": opts.service_proxy,
                  "latency_workers": opts.latency_workers, "udp_bandwidth": "unlimited (-b 0)"},
    }
    doc = results.new_document("lab", run_id=run_id, environment=env, parameters=params, reference="host")
    fail_at = os.environ.get(FAIL_AT_ENV)

    # ---------------------------------------------------------------- build
    active: list[tuple[dict, topology.Cluster, measure.Servers]] = []
    for name in names:
        dp = DATAPATHS[name]
        subject = results.new_subject(
            name, "reference" if name == "host" else "datapath", description=dp.description,
            underlay_need=dp.underlay_need, encap_overhead=dp.encap_overhead,
            configured_mtu=topology.UNDERLAY_MTU - dp.encap_overhead, cni=dp.like,
        )
        doc["subjects"].append(subject)
        if dp.kernel_feature:
            problem = topology.probe_kernel_feature(run_id, dp.kernel_feature)
            if problem:
                reason = str(KernelFeatureMissing(name, dp.kernel_feature, f"Linux {os.uname().release}, {problem}"))
                subject.update(status="skipped", skipped_reason=reason)
                console.print(f"[yellow]skip[/] {reason}")
                continue
        cluster = topology.Cluster(run_id, dp, state, split=opts.split_subnets)
        clusters.append(cluster)
        try:
            cluster.build()
            srv = measure.Servers(state, name)
            servers.append(srv)
            srv.start_iperf3(cluster.server_ns, cluster.server_ip)
            if opts.latency:
                srv.start_nginx(cluster.server_ns, cluster.server_ip)
        except L2AdjacencyError as exc:
            subject.update(status="error", error=str(exc))
            console.print(f"[red]refused[/] {exc}")
            _drop_cluster(cluster, clusters)
            continue
        except Exception as exc:  # noqa: BLE001 - one datapath failing must not stop the others
            subject.update(status="error", error=f"set-up failed: {type(exc).__name__}: {exc}")
            console.print(f"[red]error[/] {name}: set-up failed: {exc}")
            _drop_cluster(cluster, clusters)
            continue
        console.print(f"[green]ready[/] {name}: {cluster.client_ns} -> {cluster.server_ns} ({cluster.server_ip}), "
                      f"{cluster.path}, configured MTU {cluster.configured_mtu}")
        active.append((subject, cluster, srv))

    # ---------------------------------------------------------------- latency calibration on host
    target_rates: dict[int, float] = {}
    host = next(((s, c) for s, c, _ in active if s["name"] == "host"), None)
    if opts.latency and host:
        for size in opts.latency_sizes:
            try:
                res, _ = measure.hey(host[1].client_ns, f"http://{host[1].server_ip}:{measure.HTTP_PORT}/{size}",
                                     duration=opts.calibration_duration, workers=opts.latency_workers,
                                     qps_per_worker=None, run_id=run_id)
                target_rates[size] = res.rate
                console.print(f"calibration: host serves {res.rate:,.0f} req/s of {size} B at most "
                              f"({opts.latency_workers} workers)")
            except measure.MeasureError as exc:
                console.print(f"[red]calibration for {size} B failed[/]: {exc}")
        doc["parameters"]["extra"]["latency_max_rate_on_host"] = {str(k): v for k, v in target_rates.items()}

    # ---------------------------------------------------------------- tests
    steps: list[_Step] = []
    for subject, cluster, _srv in active:
        steps += _steps(opts, subject, cluster, run_id, state, target_rates)
    first = [True]

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        task = progress.add_task("measuring", total=len(steps) * opts.repeat)
        for rep in range(opts.repeat):
            for step in steps:
                progress.update(task, description=f"rep {rep + 1}/{opts.repeat} {step.subject['name']}: "
                                                  f"{step.test['name']}")
                if fail_at == "measure" and first[0]:
                    raise RuntimeError(f"injected failure ({FAIL_AT_ENV}=measure)")
                first[0] = False
                try:
                    record = step.fn(rep)
                except (measure.MeasureError, OSError, RuntimeError) as exc:
                    record = {"index": rep, "error": str(exc)}
                    step.test["error"] = str(exc)
                    progress.console.print(f"[red]error[/] {step.subject['name']} {step.test['name']}: {exc}")
                else:
                    if record.get("value") is not None:
                        step.test["samples"].append(record["value"])
                    progress.console.print(_describe(step, record))
                step.test["repetitions"].append(record)
                progress.advance(task)

    results.finalize(doc)
    for subject in doc["subjects"]:
        mtu = next((t for t in subject["tests"] if t["kind"] == "mtu"), None)
        if mtu and mtu["stats"]["median"] is not None:
            subject["observed_mtu"] = int(mtu["stats"]["median"])
    return doc


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
    v = record.get("value")
    extra = ""
    if record.get("cpu") and record["cpu"].get("cpu_seconds_per_gbit"):
        extra = f", CPU {record['cpu']['busy_percent']:.0f}% ({record['cpu']['cpu_seconds_per_gbit']:.2f} s/Gbit)"
    if record.get("percentiles"):
        p = record["percentiles"]
        d = record["details"]
        extra = (f" (p50 {p['p50']:.2f}, p99.9 {p['p99.9']:.2f} ms, {d['rate']:,.0f} of {d['target_rate']:,.0f} "
                 f"req/s{', [yellow]load generator behind[/]' if d.get('note') else ''})")
    return f"  rep {record['index'] + 1} {step.subject['name']:8s} {t['name']:24s} {v:,.3f} {t['unit']}{extra}"


def _steps(opts: LabOptions, subject: dict, cluster: topology.Cluster, run_id: str, state: Path,
           target_rates: dict[int, float]) -> list[_Step]:
    steps: list[_Step] = []
    name = subject["name"]
    path = cluster.path
    logdir = state / name

    def add(test: dict, fn: Callable[[int], dict]) -> None:
        subject["tests"].append(test)
        steps.append(_Step(subject, test, fn))

    def skip(test: dict, reason: str) -> None:
        test.update(status="skipped", skipped_reason=reason)
        subject["tests"].append(test)

    def throughput(server_ip: str, udp: bool) -> Callable[[int], dict]:
        def fn(rep: int) -> dict:
            res, cpu, _raw = measure.iperf3(cluster.client_ns, server_ip, duration=opts.duration, udp=udp,
                                            streams=opts.streams, logfile=logdir / "iperf3-client.json")
            return {"index": rep, "value": res.gbit_per_second, "cpu": cpu, "details": parsers.iperf3_details(res)}
        return fn

    def mtu(rep: int) -> dict:
        value = measure.probe_path_mtu(cluster.client_ns, cluster.server_ip)
        return {"index": rep, "value": value, "observed_mtu": value}

    add(results.new_test("tcp", "tcp", path, "Gbit/s"), throughput(cluster.server_ip, False))
    if opts.udp:
        add(results.new_test("udp", "udp", path, "Gbit/s"), throughput(cluster.server_ip, True))
    if opts.service and cluster.pods:
        test = results.new_test("tcp-service", "tcp", "pod-to-service", "Gbit/s", reference_test="tcp")
        if cluster.datapath.pods == "ipvlan":
            skip(test, "ipvlan pods bypass the node's netfilter hooks: kube-proxy DNAT on the node does not apply")
        else:
            try:
                vip = cluster.install_service(measure.IPERF3_PORT, opts.service_proxy)
            except (RuntimeError, OSError) as exc:
                test.update(status="error", error=str(exc))
                subject["tests"].append(test)
            else:
                test["parameters"] = {"service_ip": vip, "proxy": f"{opts.service_proxy} DNAT (kube-proxy style)"}
                add(test, throughput(vip, False))
    add(results.new_test("mtu", "mtu", path, "bytes"), mtu)
    if opts.latency:
        for size in opts.latency_sizes:
            for load in opts.latency_loads:
                test = results.new_test(f"latency-{size}B-{load * 100:g}pct", "latency", path, "ms",
                                        higher_is_better=False)
                if size not in target_rates:
                    test.update(status="error", error="no reference rate: the host calibration failed")
                    subject["tests"].append(test)
                    continue
                rate = target_rates[size] * load
                test["parameters"] = {"size_bytes": size, "load_fraction": load, "target_rate": rate,
                                      "workers": opts.latency_workers, "statistic": "p99"}
                add(test, _latency_fn(opts, cluster, run_id, size, rate))
    return steps


def _latency_fn(opts: LabOptions, cluster: topology.Cluster, run_id: str, size: int, rate: float):
    def fn(rep: int) -> dict:
        res, _ = measure.hey(cluster.client_ns, f"http://{cluster.server_ip}:{measure.HTTP_PORT}/{size}",
                             duration=opts.latency_duration, workers=opts.latency_workers,
                             qps_per_worker=rate / opts.latency_workers, run_id=run_id)
        problem = parsers.hey_error_problem(res)
        if problem:
            raise measure.MeasureError(problem)
        details: dict[str, Any] = {"rate": res.rate, "target_rate": rate, "requests": res.requests,
                                   "errors": res.errors, "max_ms": res.max_ms, "mean_ms": res.mean_ms}
        if res.rate < 0.9 * rate:
            # the load generator fell behind (CPU-bound machine): the figure is at a lower load
            details["note"] = f"achieved {res.rate:,.0f} req/s, below the {rate:,.0f} req/s target"
        return {"index": rep, "value": res.p99_ms, "percentiles": res.percentiles(), "details": details}
    return fn


def _tool_versions() -> dict[str, str]:
    import subprocess

    out = {}
    for tool, argv in {"iperf3": ["iperf3", "--version"], "nginx": ["nginx", "-v"]}.items():
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=5)
            out[tool] = (p.stdout or p.stderr).splitlines()[0].strip()
        except (OSError, IndexError, subprocess.TimeoutExpired):
            pass
    return out
