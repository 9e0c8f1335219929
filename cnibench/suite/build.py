"""The runner's raw output -> the validated result document (``origin: cloud``, or ``cluster``
for ``cnibench run`` on an existing cluster; schema v2).

Every repetition becomes a record of :mod:`cnibench.suite.records`, the functions the lab uses
too, so one validity gate judges both; :func:`cnibench.results.finalize` then derives the
samples, statistics, validity and the paired ratio interval to the host network.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from typing import Any, Mapping

from cnibench import parsers, results
from cnibench.suite import definition, records
from cnibench.suite.definition import TestDef
from cnibench.suite.plan import HOST, RAW_FORMAT, PlannedTest, Step, SuitePlan
from cnibench.variants import AWS_PER_FLOW_LIMIT_GBIT, AWS_PER_FLOW_SOURCE

PATH_MTU_NOTE = ("the path MTU is not probed in the cloud (the image has no ping): the mtu test records the MTU "
                 "of the client pod's default-route interface")
CPU_SOURCE = ("/proc/stat of both nodes (hostNetwork pods) around the test, minus each node's idle baseline "
              "sampled just before it; per side: that node's busy CPU time minus its baseline")


@dataclass
class RunContext:
    """What the Pulumi program knows that the runner's output does not say."""

    stack: str = ""
    variant: str = ""
    cni: str = ""
    cni_version: str = ""
    underlay_need: str | None = None
    encap_overhead: int | None = None
    configured_mtu: int | None = None
    underlay_mtu: int | None = None
    instance_type: str | None = None
    region: str | None = None
    client_node: str = ""
    server_node: str = ""
    encap_one_flow: bool = False  # the variant's tunnel is one flow to AWS (catalog)
    # a block whose nodes were busier than this share of their cores before it is contaminated
    busy_threshold: float = definition.BUSY_THRESHOLD
    origin: str = "cloud"  # "cluster": `cnibench run` on an existing cluster (no AWS facts)
    # cluster: what the operator's side knows (kube context, API server, how the nodes and the
    # CNI were found), in environment.extra.cluster
    cluster: dict[str, Any] | None = None

    @classmethod
    def from_config(cls, cfg: Any, stack: str = "") -> RunContext:
        v = cfg.variant_record
        return cls(stack=stack, variant=v.name, cni=v.cni, cni_version=v.cni_version,
                   underlay_need=v.underlay.value, encap_overhead=v.encap_overhead, configured_mtu=cfg.pod_mtu,
                   underlay_mtu=cfg.underlay_mtu, instance_type=cfg.instance_type, region=cfg.region,
                   encap_one_flow=v.encap_one_flow)


class RawOutputError(ValueError):
    pass


def parse_raw(stdout: str) -> dict[str, Any]:
    """The runner's stdout (one JSON document from collect.py)."""
    text = (stdout or "").strip()
    if not text:
        raise RawOutputError("the benchmark command printed nothing")
    # anything printed before the document (e.g. a stray warning) is ignored
    start = text.find("{")
    try:
        raw = json.loads(text[start:]) if start >= 0 else None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, an integer of over 4300 digits, nesting too deep
        raise RawOutputError(f"the benchmark command's output is not JSON ({exc}): {text[:200]!r}") from exc
    if not isinstance(raw, dict) or raw.get("format") != RAW_FORMAT:
        raise RawOutputError(f"the benchmark command's output is not a {RAW_FORMAT} document")
    return raw


def _probe(raw: Mapping[str, Any], pod: str) -> dict[str, str]:
    return dict((raw.get("pods") or {}).get(pod, {}).get("probe") or {})


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _tail(text: Any, n: int = 300) -> str:
    return str(text or "").strip()[-n:] or "no output"


# --------------------------------------------------------------------------- environment


NO_HOST_REFERENCE = ("not measured: --no-host-reference (no hostNetwork pods); the variant's figures have no "
                     "ratio to the host network, and the tests whose offered rate is a fraction of the host's "
                     "maximum are skipped")


def _environment(raw: Mapping[str, Any], ctx: RunContext, plan: SuitePlan) -> dict[str, Any]:
    client, server = _probe(raw, "cnibench-cli-host"), _probe(raw, "cnibench-srv-host")
    if not plan.host_reference:  # no hostNetwork pods: the pod-network pods' view of the node
        client, server = _probe(raw, "cnibench-cli-pod"), _probe(raw, "cnibench-srv-pod")
    nodes_raw = raw.get("nodes") or {}

    def node(probe: Mapping[str, str], pod_probe: Mapping[str, str], name: str) -> dict[str, Any]:
        info = nodes_raw.get(name) or {}
        return {
            "name": name or None,
            "kernel": probe.get("kernel") or info.get("kernel"),
            "cpus": _int(probe.get("cpus")) or _int(info.get("cpu_capacity")),
            "cpu_model": probe.get("cpu_model"),
            "mem_total_mb": (_int(probe.get("mem_total_kb")) or 0) / 1024 or None,
            "interface": probe.get("iface"),
            "nic_driver": probe.get("nic_driver"),
            "nic_driver_version": probe.get("nic_driver_version"),
            "nic_queues": {"rx": _int(probe.get("nic_rx_queues")), "tx": _int(probe.get("nic_tx_queues"))}
            if probe.get("nic_rx_queues") else None,
            "gso_max_size": _int(probe.get("gso_max_size")),
            "node_mtu": _int(probe.get("mtu")),
            "pod_interface_mtu": _int(pod_probe.get("mtu")),
            "os_image": info.get("os_image"),
            "kubelet": info.get("kubelet"),
            "container_runtime": info.get("runtime"),
            "instance_type": info.get("instance_type"),
        }

    placed = (raw.get("pods") or {})
    suffix = "host" if plan.host_reference else "pod"
    client_name = ctx.client_node or (placed.get(f"cnibench-cli-{suffix}") or {}).get("node", "")
    server_name = ctx.server_node or (placed.get(f"cnibench-srv-{suffix}") or {}).get("node", "")
    n_client = node(client, _probe(raw, "cnibench-cli-pod"), client_name)
    n_server = node(server, _probe(raw, "cnibench-srv-pod"), server_name)
    tools = {k: (client.get(k) or server.get(k)) for k in ("iperf3", "iperf3_deb", "sockperf", "wrk", "nginx")}
    extra: dict[str, Any] = {
        "stack": ctx.stack,
        "nodes": {"client": n_client, "server": n_server},
        "kubernetes_version": (raw.get("kubernetes") or {}).get("server_version"),
        "cni": {"name": ctx.cni, "version": ctx.cni_version, "daemonset_images": raw.get("cni_images") or {}},
        "tools": {**tools, "image": plan.image},
        "configured_underlay_mtu": ctx.underlay_mtu,
        "path_mtu": PATH_MTU_NOTE,
    }
    if ctx.origin == "cluster":
        extra.pop("stack")
        extra["cluster"] = dict(ctx.cluster or {})
        if not plan.host_reference:
            extra["host_reference"] = NO_HOST_REFERENCE
    else:
        extra["aws_flows"] = {
            "per_flow_limit_gbit": AWS_PER_FLOW_LIMIT_GBIT["cluster-placement-group"],
            "placement": "one cluster placement group",
            "encapsulation_is_one_flow": ctx.encap_one_flow,
            "source": AWS_PER_FLOW_SOURCE,
        }
    return {
        "kernel": n_server["kernel"] or n_client["kernel"] or "unknown",
        "hostname": server_name or "unknown",
        "cpus": n_server["cpus"] or n_client["cpus"] or None,
        "machine": next((i.get("architecture") for i in nodes_raw.values() if i.get("architecture")), None)
        or "unknown",
        "underlay_mtu": n_server["node_mtu"] or ctx.underlay_mtu,
        **({"instance_type": ctx.instance_type} if ctx.instance_type else {}),
        **({"region": ctx.region} if ctx.region else {}),
        "extra": extra,
    }


def one_flow_caveat(ctx: RunContext, streams: int) -> str | None:
    """The caveat of a variant's multi-stream TCP figure when its tunnel is one flow to AWS."""
    if not ctx.encap_one_flow or streams <= 1:
        return None
    limit = AWS_PER_FLOW_LIMIT_GBIT["cluster-placement-group"]
    return (f"{ctx.variant}'s encapsulation carries all {streams} streams as one flow, which AWS limits to "
            f"{limit:g} Gbit/s in a cluster placement group ({AWS_PER_FLOW_SOURCE}); the host network spreads "
            "them over flows: the ratio measures that limit as much as the CNI")


def _tool_label(d: TestDef, tools: Mapping[str, Any]) -> str:
    """The tool and version that produced a test's figures (Debian bookworm packages)."""
    if d.tool == "icmp":  # the lab probes the path; the cloud reads the interface
        return "interface MTU (/sys/class/net), no ICMP probe"
    version = tools.get("iperf3_deb" if d.tool == "iperf3" else d.tool)
    return f"{d.tool} {version} (Debian bookworm)" if version else d.tool


# --------------------------------------------------------------------------- /proc/stat


def _stat_lines(text: str | None) -> list[tuple[int, int]]:
    """(busy, total) ticks of every aggregate ``cpu`` line of a snapshot."""
    out = []
    for line in (text or "").splitlines():
        if line.split()[:1] == ["cpu"]:
            out.append(parsers.proc_stat_cpu(line))
    return out


def _busy_fraction(pair_text: str | None) -> float | None:
    """Busy share of all CPUs of a node between the first and the last /proc/stat line of a sample."""
    lines = [ln for ln in (pair_text or "").splitlines() if ln.split()[:1] == ["cpu"]]
    usage = parsers.node_usage(lines[0], lines[-1]) if len(lines) >= 2 else None
    busy = usage["busy_percent"] if usage else None
    return busy / 100 if busy is not None else None


def _guards(raw: Mapping[str, Any], threshold: float) -> dict[tuple[int, str], tuple[dict[str, Any], bool]]:
    """The background-load sample before each (repetition, subject) block and its verdict:
    contaminated when either node was busier than ``threshold`` (:attr:`RunContext.busy_threshold`)."""
    out: dict[tuple[int, str], tuple[dict[str, Any], bool]] = {}
    for g in raw.get("guards") or []:
        sample: dict[str, Any] = {"seconds": _float(g.get("seconds")), "source": "/proc/stat of both nodes"}
        busy: list[float] = []
        try:
            for who in ("client", "server"):
                frac = _busy_fraction((g.get("load") or {}).get(who))
                sample[f"{who}_busy_fraction"] = round(frac, 4) if frac is not None else None
                if frac is not None:
                    busy.append(frac)
        except parsers.ParseError as exc:
            sample["error"] = str(exc)
        if g.get("skipped"):
            sample["error"] = f"not sampled: {g['skipped']}"
        elif not busy and "error" not in sample:
            sample["error"] = "no /proc/stat sample from the nodes"
        sample["busy_fraction"] = round(max(busy), 4) if busy else None
        out[(int(g.get("rep") or 0), str(g.get("subject")))] = (sample, definition.contaminated(sample["busy_fraction"], threshold))
    return out


# --------------------------------------------------------------------------- calibration


def _calibration(raw: Mapping[str, Any], plan: SuitePlan, errors: list[str]) -> dict[str, Any]:
    """The host's maxima, as the lab records them (``parameters.extra.calibration``), parsed from
    the calibration outputs; ``runner_value`` is the figure bench.sh scaled the offered rates by."""
    used = raw.get("calibration") or {}
    out: dict[str, Any] = {}
    runs = {str(r.get("id")): r for r in raw.get("runs") or [] if r.get("phase") == "calibration"}
    for step in plan.calibrations:
        run = runs.get(step.id)
        entry: dict[str, Any]
        try:
            if run is None:
                raise RuntimeError("not run (the runner stopped before it)")
            _check_ran(run, step)
            text = str(run.get("output") or "")
            if step.tool == "iperf3":
                res = parsers.parse_iperf3(text)
                entry = {"value": res.gbit_per_second, "unit": "Gbit/s", "tool": "iperf3"}
            else:
                sp = parsers.parse_sockperf(text + "\n" + str(run.get("stderr") or ""), mode="throughput")
                entry = {"value": sp.message_rate, "unit": "msg/s", "tool": "sockperf throughput --mps max",
                         "message_bytes": step.size}
        except (RuntimeError, parsers.ParseError) as exc:
            entry = {"value": None, "error": str(exc)}
            errors.append(f"calibration {step.test} on the host network failed: {exc}")
        runner = _float(used.get(step.test))
        if runner is not None:
            entry["runner_value"] = runner / 1e9 if step.tool == "iperf3" else runner
        out[step.test] = entry
    return out


# --------------------------------------------------------------------------- repetitions


class _NotMeasured(RuntimeError):
    pass


def _check_ran(run: Mapping[str, Any], step: Step) -> None:
    if run.get("skipped"):
        raise _NotMeasured(f"not run: {run['skipped']}")
    if run.get("timed_out"):
        raise _NotMeasured(f"timed out after {step.timeout}s: {_tail(run.get('stderr'))}")


def _output(run: Mapping[str, Any], tool: str) -> str:
    out = str(run.get("output") or "")
    if not out.strip():
        raise _NotMeasured(f"{tool} printed nothing (exit {run.get('rc')}): {_tail(run.get('stderr'))}")
    return out


def _record(run: Mapping[str, Any], step: Step, planned: PlannedTest, plan: SuitePlan,
            cpus: Mapping[str, int | None]) -> dict[str, Any]:
    """One repetition of a step, judged by :mod:`cnibench.suite.records`."""
    rep = int(run.get("rep") or 0)
    d = planned.definition
    try:
        _check_ran(run, step)
        if step.tool == "iperf3":
            res = parsers.parse_iperf3(_output(run, "iperf3"))
            if step.mode == "cpu":
                return _cpu(rep, run, res, cpus)
            if step.mode == "udp":
                return records.iperf3_record(rep, res, offered_mbit=plan.settings.udp_rate_mbit,
                                             target=run.get("target"))
            return records.iperf3_record(rep, res, target=run.get("target"))
        if step.tool == "sockperf":
            text = _output(run, "sockperf") + "\n" + str(run.get("stderr") or "")
            sp = parsers.parse_sockperf(text, mode=step.mode)
            if step.mode == "under-load":
                target = _float(run.get("target_rate"))
                if not target:
                    raise _NotMeasured("the runner recorded no target rate")
                rec = records.under_load_record(rep, sp, target)
            else:
                rec = records.rr_record(rep, sp)
            rec["details"]["target"] = run.get("target")
            return rec
        if step.tool == "wrk":
            wrk = parsers.parse_wrk(_output(run, "wrk") + "\n" + str(run.get("stderr") or ""))
            rec = records.wrk_record(rep, wrk, closed_loop=d.closed_loop)
            rec["details"]["target"] = run.get("target")
            return rec
        if step.tool == "mtu":
            probe = {k.strip(): v.strip() for k, v in
                     (ln.split("=", 1) for ln in _output(run, "the MTU probe").splitlines() if "=" in ln)}
            mtu = _int(probe.get("mtu"))
            if not mtu:
                raise _NotMeasured(f"no MTU read from the client pod's interface {probe.get('iface') or '?'}")
            rec = records.value_record(rep, float(mtu), observed_mtu=True)
            rec["details"] = {"interface": probe.get("iface"), "source": PATH_MTU_NOTE}
            return rec
        raise _NotMeasured(f"unknown tool {step.tool}")
    except (_NotMeasured, parsers.ParseError) as exc:
        return records.error_record(rep, str(exc))


def _cpu(rep: int, run: Mapping[str, Any], res: parsers.Iperf3Result, cpus: Mapping[str, int | None]) -> dict[str, Any]:
    """cpu-tcp: both nodes' busy CPU time during the test minus their idle baseline, per Gbit."""
    offered = _float(run.get("offered_mbit"))
    if not offered:
        raise _NotMeasured("the runner recorded no offered rate")
    snaps = run.get("cpu") or {}
    busy_s: dict[str, float] = {}
    baseline_s: dict[str, float] = {}
    walls: list[float] = []
    idle_per_s = 0.0
    fractions: dict[str, float] = {}
    for who in ("client", "server"):
        n_cpus = cpus.get(who)
        idle = _stat_lines((snaps.get("idle") or {}).get(who))
        before = _stat_lines((snaps.get("before") or {}).get(who))
        after = _stat_lines((snaps.get("after") or {}).get(who))
        if len(idle) < 2 or not before or not after:
            raise _NotMeasured(f"no /proc/stat snapshots of the {who} node around the CPU test")
        if not n_cpus:
            raise _NotMeasured(f"the {who} node's CPU count is unknown")
        (ib0, it0), (ib1, it1) = idle[0], idle[-1]
        (b0, t0), (b1, t1) = before[0], after[-1]
        if it1 <= it0 or t1 <= t0:
            raise _NotMeasured(f"the {who} node's /proc/stat did not advance")
        idle_fraction = (ib1 - ib0) / (it1 - it0)  # of all the node's CPUs
        total_s = (t1 - t0) / parsers.USER_HZ  # CPU seconds of the node: wall x CPUs
        busy_s[who] = (b1 - b0) / parsers.USER_HZ
        baseline_s[who] = idle_fraction * total_s
        walls.append(total_s / n_cpus)
        idle_per_s += idle_fraction * n_cpus
        fractions[who] = (b1 - b0) / (t1 - t0)
    rec = records.cpu_record(
        rep, res, target_gbit=offered / 1000, machine_busy_s=sum(busy_s.values()), idle_busy_per_s=idle_per_s,
        wall_s=statistics.fmean(walls), cpus=sum(int(cpus[w] or 0) for w in ("client", "server")),
        sides={who: busy_s[who] - baseline_s[who] for who in ("client", "server")}, source=CPU_SOURCE)
    for who, frac in fractions.items():
        rec["cpu"][f"{who}_busy_percent"] = 100 * frac
        rec["cpu"][f"{who}_idle_baseline_cpu_seconds"] = baseline_s[who]
    rec["details"]["target"] = run.get("target")
    saturated = [who for who, frac in fractions.items() if frac >= records.SATURATION_FRACTION]
    if rec["valid"] and saturated:
        who = saturated[0]
        rec["cpu"].pop("cpu_seconds_per_gbit", None)
        records.invalid(rec, f"the {who} node was saturated ({100 * fractions[who]:.0f} % busy): the CPU figure "
                             f"would measure the machine, not the datapath")
    return rec


# --------------------------------------------------------------------------- document


def _subjects_skeleton(plan: SuitePlan, ctx: RunContext) -> dict[str, dict[str, Any]]:
    host = results.new_subject(HOST, "reference", description="host network (hostNetwork pods on the same nodes)")
    if not plan.host_reference:
        host.update(status="skipped", skipped_reason=NO_HOST_REFERENCE)
    var = results.new_subject(
        plan.variant, "variant", description=f"{ctx.cni or plan.variant} {ctx.cni_version}".strip(),
        underlay_need=ctx.underlay_need, encap_overhead=ctx.encap_overhead, configured_mtu=ctx.configured_mtu,
        cni=ctx.cni or None, variant=plan.variant,
    )
    return {HOST: host, plan.variant: var}


def _new_document(plan: SuitePlan, ctx: RunContext, environment: dict[str, Any], done: int = 0) -> dict[str, Any]:
    s = plan.settings
    params = {
        "duration_s": s.duration_s,
        "repeat": plan.repeat,
        "streams": s.streams,
        "latency_duration_s": s.rr_duration_s,
        "latency_loads": list(s.load_fractions),
        "suite": {**s.as_parameters(), "udp_datagram_bytes": plan.udp_size},
        # a fixed number of repetitions in the cloud (benchmarkRepeat): no adaptive stop
        "repetitions": {"min": s.repeat_min, "max": s.repeat_max, "target_half_width": s.target_half_width,
                        "done": done, "stopped": "not-adaptive"},
        "extra": {"benchmark_run": plan.run, "benchmark_timeout_s": plan.timeout, "plan_digest": plan.digest(),
                  "load_levels_percent": list(plan.load_levels), "busy_threshold": ctx.busy_threshold,
                  "guard_seconds": definition.GUARD_SECONDS, "path_mtu": PATH_MTU_NOTE, "calibration": {}},
    }
    run_id = f"{ctx.stack or plan.variant}-run-{plan.run}"
    return results.new_document(ctx.origin, run_id=run_id, environment=environment, parameters=params, reference=HOST)


def empty_result(plan: SuitePlan, ctx: RunContext, reason: str, status: str = "no-output") -> dict[str, Any]:
    """A valid document that says why there are no figures (no run yet, or the runner failed
    before measuring)."""
    env = {"kernel": "unknown", "hostname": ctx.server_node or "unknown", "cpus": None, "machine": "unknown",
           "underlay_mtu": ctx.underlay_mtu,
           **({"instance_type": ctx.instance_type} if ctx.instance_type else {}),
           **({"region": ctx.region} if ctx.region else {}),
           "extra": {"stack": ctx.stack} if ctx.origin != "cluster" else {"cluster": dict(ctx.cluster or {})}}
    doc = _new_document(plan, ctx, env)
    for subject in _subjects_skeleton(plan, ctx).values():
        if subject.get("status") == "skipped":  # no host reference: its own reason
            doc["subjects"].append(subject)
            continue
        if status == "no-output":
            subject.update(status="skipped", skipped_reason=reason)
        else:
            subject.update(status="error", error=reason)
        doc["subjects"].append(subject)
    doc["extra"] = {"status": status, "message": reason, "errors": [reason] if status != "no-output" else [],
                    "tests_ok": 0, "tests_total": 0,
                    "ranking": {"allowed": False, "reason": "no figures: " + reason}}
    return doc


def _verdict(n_blocks: int, bad: int, unsampled: int, threshold: float) -> dict[str, Any]:
    return records.contamination_verdict(n_blocks, bad, unsampled=unsampled, threshold=threshold,
                                         where="a node", idle="both nodes were", rerun="rerun (benchmarkRun)")


def build_result(stdout: str, plan: SuitePlan, ctx: RunContext | None = None) -> dict[str, Any]:
    """The result document of one run, from the runner's stdout. Never raises for a bad run:
    a failed test, a failed pod or an unusable output is recorded in the document."""
    ctx = ctx or RunContext(variant=plan.variant)
    try:
        raw = parse_raw(stdout)
    except RawOutputError as exc:
        empty = not (stdout or "").strip()
        reason = ("no benchmark output yet: the benchmark command has not produced any (preview, mocks, "
                  "or a run that printed nothing)" if empty else str(exc))
        return empty_result(plan, ctx, reason, status="no-output" if empty else "failed")
    if raw.get("fatal"):
        doc = empty_result(plan, ctx, f"the benchmark could not run: {raw['fatal']}", status="failed")
        doc["extra"]["errors"] = [str(raw["fatal"]), *map(str, raw.get("errors") or [])]
        return doc

    env = _environment(raw, ctx, plan)
    doc = _new_document(plan, ctx, env)
    subjects = _subjects_skeleton(plan, ctx)
    doc["subjects"] = list(subjects.values())
    env_nodes = env["extra"]["nodes"]
    subjects[HOST]["extra"] = {"node_interface_mtu": {r: env_nodes[r]["node_mtu"] for r in ("client", "server")}}
    subjects[plan.variant]["extra"] = {
        "pod_interface_mtu": {r: env_nodes[r]["pod_interface_mtu"] for r in ("client", "server")},
        "node_interface_mtu": {r: env_nodes[r]["node_mtu"] for r in ("client", "server")},
    }

    errors = [str(e) for e in raw.get("errors") or []]
    pods = raw.get("pods") or {}
    errors += _placement_problems(pods, ctx, plan)
    for name, _role, _hn, _serves in plan.pods:
        p = pods.get(name) or {}
        if not p.get("ready"):
            errors.append(f"pod {name} was not ready: {_tail(p.get('error'))}")

    doc["parameters"]["extra"]["calibration"] = _calibration(raw, plan, errors)
    guards = _guards(raw, ctx.busy_threshold)

    tools = env["extra"]["tools"]
    tests: dict[str, tuple[dict[str, Any], PlannedTest]] = {}
    for subject_name, subject_tests in plan.tests().items():
        for p in subject_tests:
            d = p.definition
            statistic = d.statistic
            if d.kind == "mtu":
                statistic = "MTU of the client pod's default-route interface (the path MTU is not probed)"
            test = results.new_test(d.name, d.kind, p.path, d.unit, higher_is_better=d.higher_is_better,
                                    reference_test=d.reference_test, tool=_tool_label(d, tools),
                                    statistic=statistic, closed_loop=d.closed_loop)
            test["parameters"] = dict(d.parameters)
            if d.kind == "mtu":
                test["parameters"]["path_mtu_probed"] = False
            if d.skipped_reason:
                test.update(status="skipped", skipped_reason=d.skipped_reason)
            caveat = one_flow_caveat(ctx, int(d.parameters.get("streams", 1))) \
                if subject_name == plan.variant and d.kind == "tcp" and not d.service else None
            if caveat:
                test["caveats"] = [caveat]
            subjects[subject_name]["tests"].append(test)
            tests[f"{subject_name}/{d.name}"] = (test, p)

    cpus = {"client": env_nodes["client"]["cpus"], "server": env_nodes["server"]["cpus"]}
    done = 0
    for run in raw.get("runs") or []:
        if run.get("phase") == "calibration":
            continue
        step = plan.step_of(str(run.get("id")))
        if step is None or step.id not in tests:
            continue
        test, planned = tests[step.id]
        rec = _record(run, step, planned, plan, cpus)
        sample, contaminated = guards.get((rec["index"], step.subject), (None, False))
        rec["contaminated"] = contaminated
        if sample is not None:
            rec["guard"] = sample
        test["repetitions"].append(rec)
        done = max(done, rec["index"] + 1)
    for test, _p in tests.values():
        if not test["repetitions"] and test["status"] != "skipped":
            test["error"] = "not run (the runner stopped before this test)"
    doc["parameters"]["repetitions"]["done"] = done

    results.finalize(doc)
    for subject in doc["subjects"]:
        mtu = next((t for t in subject["tests"] if t["kind"] == "mtu"), None)
        if mtu and mtu["stats"]["median"] is not None:
            subject["observed_mtu"] = int(mtu["stats"]["median"])  # the interface MTU in effect
        if subject["tests"] and all(t["status"] == "error" for t in subject["tests"]):
            first = next((t.get("error") for t in subject["tests"] if t.get("error")), "every test failed")
            subject.update(status="error", error=f"every test failed; first error: {first}")
    n_ok = sum(1 for s in doc["subjects"] for t in s["tests"] if t["status"] == "ok")
    n_all = sum(1 for s in doc["subjects"] for t in s["tests"] if t["status"] != "skipped")
    status = "complete" if n_ok == n_all and not errors else ("failed" if n_ok == 0 else "partial")
    n_blocks = len(guards)
    bad = sum(1 for _s, c in guards.values() if c)
    unsampled = sum(1 for s, _c in guards.values() if s["busy_fraction"] is None)
    doc["extra"] = {
        "status": status,
        "tests_ok": n_ok,
        "tests_total": n_all,
        "errors": errors,
        "started": raw.get("started"),
        "finished": raw.get("finished"),
        "pods": {name: {"node": (pods.get(name) or {}).get("node"), "ip": (pods.get(name) or {}).get("ip"),
                        "ready": bool((pods.get(name) or {}).get("ready"))} for name, *_ in plan.pods},
        "service_ip": raw.get("service_ip"),
        **_verdict(n_blocks, bad, unsampled, ctx.busy_threshold),
    }
    return doc


def _placement_problems(pods: Mapping[str, Any], ctx: RunContext, plan: SuitePlan) -> list[str]:
    expected = {"client": ctx.client_node, "server": ctx.server_node}
    out = []
    for name, role, _hn, _serves in plan.pods:
        node = (pods.get(name) or {}).get("node")
        # the node name may be the short host name or the private DNS name: compare the host part
        if node and expected[role] and node.split(".")[0] != expected[role].split(".")[0]:
            out.append(f"pod {name} ran on node {node}, not on the {role} node {expected[role]}")
    return out
