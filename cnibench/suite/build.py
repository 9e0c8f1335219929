"""The runner's raw output -> the validated result document (``origin: cloud``, schema v1)."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from typing import Any, Mapping, cast

from cnibench import parsers, results
from cnibench.parsers import iperf3_details, node_usage, parse_hey_histogram
from cnibench.results import summarize_node_usage
from cnibench.suite.plan import HOST, IMAGE, PODS, RAW_FORMAT, Step, SuitePlan


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

    @classmethod
    def from_config(cls, cfg: Any, stack: str = "") -> RunContext:
        v = cfg.variant_record
        return cls(stack=stack, variant=v.name, cni=v.cni, cni_version=v.cni_version,
                   underlay_need=v.underlay.value, encap_overhead=v.encap_overhead, configured_mtu=cfg.pod_mtu,
                   underlay_mtu=cfg.underlay_mtu, instance_type=cfg.instance_type, region=cfg.region)


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
    except json.JSONDecodeError as exc:
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


def _environment(raw: Mapping[str, Any], plan: SuitePlan, ctx: RunContext) -> dict[str, Any]:
    client, server = _probe(raw, "cnibench-cli-host"), _probe(raw, "cnibench-srv-host")
    nodes_raw = raw.get("nodes") or {}

    def node(role: str, probe: Mapping[str, str], pod_probe: Mapping[str, str], name: str) -> dict[str, Any]:
        info = nodes_raw.get(name) or {}
        return {
            "name": name or None,
            "kernel": probe.get("kernel") or info.get("kernel"),
            "cpus": _int(probe.get("cpus")) or _int(info.get("cpu_capacity")),
            "cpu_model": probe.get("cpu_model"),
            "mem_total_mb": (_int(probe.get("mem_total_kb")) or 0) / 1024 or None,
            "interface": probe.get("iface"),
            "node_mtu": _int(probe.get("mtu")),
            "pod_interface_mtu": _int(pod_probe.get("mtu")),
            "os_image": info.get("os_image"),
            "kubelet": info.get("kubelet"),
            "container_runtime": info.get("runtime"),
            "instance_type": info.get("instance_type"),
        }

    placed = (raw.get("pods") or {})
    client_name = ctx.client_node or (placed.get("cnibench-cli-host") or {}).get("node", "")
    server_name = ctx.server_node or (placed.get("cnibench-srv-host") or {}).get("node", "")
    n_client = node("client", client, _probe(raw, "cnibench-cli-pod"), client_name)
    n_server = node("server", server, _probe(raw, "cnibench-srv-pod"), server_name)
    tools = {k: (client.get(k) or server.get(k)) for k in ("iperf3", "hey", "nginx")}
    return {
        "kernel": n_server["kernel"] or n_client["kernel"] or "unknown",
        "hostname": server_name or "unknown",
        "cpus": n_server["cpus"] or n_client["cpus"] or None,
        "machine": next((i.get("architecture") for i in nodes_raw.values() if i.get("architecture")), None)
        or "unknown",
        "underlay_mtu": n_server["node_mtu"] or ctx.underlay_mtu,
        **({"instance_type": ctx.instance_type} if ctx.instance_type else {}),
        **({"region": ctx.region} if ctx.region else {}),
        "extra": {
            "stack": ctx.stack,
            "nodes": {"client": n_client, "server": n_server},
            "kubernetes_version": (raw.get("kubernetes") or {}).get("server_version"),
            "cni": {"name": ctx.cni, "version": ctx.cni_version, "daemonset_images": raw.get("cni_images") or {}},
            "tools": {**tools, "image": IMAGE},
            "configured_underlay_mtu": ctx.underlay_mtu,
        },
    }


def _run_record(run: Mapping[str, Any], step: Step, plan: SuitePlan) -> dict[str, Any]:
    """One repetition of a step, as the schema's repetition object."""
    rec: dict[str, Any] = {"index": int(run.get("rep") or 0)}
    usage = {who: node_usage((run.get("usage") or {}).get(who, {}).get("before", ""),
                             (run.get("usage") or {}).get(who, {}).get("after", ""))
             for who in ("client", "server")}
    try:
        if run.get("skipped"):
            raise RuntimeError(f"not run: {run['skipped']}")
        if run.get("timed_out"):
            raise RuntimeError(f"timed out after {step.timeout}s: {_tail(run.get('stderr'))}")
        if step.tool == "iperf3":
            gbits = _iperf3_into(rec, run)
        else:
            gbits = None
            _hey_into(rec, run, step)
    except (RuntimeError, parsers.ParseError) as exc:
        rec["error"] = str(exc)
        gbits = None
    if usage["client"] or usage["server"]:
        busy = [u["busy_percent"] for u in usage.values() if u and u["busy_percent"] is not None]
        # node_usage always sets cpu_seconds to a float; only busy_percent and mem_used_mb may be None
        seconds = sum(cast(float, u["cpu_seconds"]) for u in usage.values() if u)
        rec["cpu"] = {
            "busy_percent": statistics.fmean(busy) if busy else None,
            "cpu_seconds_per_gbit": seconds / gbits if gbits else None,
            "client_busy_percent": usage["client"]["busy_percent"] if usage["client"] else None,
            "server_busy_percent": usage["server"]["busy_percent"] if usage["server"] else None,
            "client_mem_used_mb": usage["client"]["mem_used_mb"] if usage["client"] else None,
            "server_mem_used_mb": usage["server"]["mem_used_mb"] if usage["server"] else None,
            "source": "/proc/stat and /proc/meminfo of both nodes, before and after the test",
        }
    return rec


def _tail(text: Any, n: int = 300) -> str:
    return str(text or "").strip()[-n:] or "no output"


def _iperf3_into(rec: dict[str, Any], run: Mapping[str, Any]) -> float:
    out = run.get("output") or ""
    if not str(out).strip():
        raise RuntimeError(f"iperf3 printed nothing (exit {run.get('rc')}): {_tail(run.get('stderr'))}")
    res = parsers.parse_iperf3(out)
    rec["value"] = res.gbit_per_second
    rec["details"] = iperf3_details(res, run.get("target"))
    return res.gbit_per_second * res.duration_s


def _hey_into(rec: dict[str, Any], run: Mapping[str, Any], step: Step) -> None:
    out = run.get("output") or ""
    if not str(out).strip():
        raise RuntimeError(f"hey printed nothing (exit {run.get('rc')}): {_tail(run.get('stderr'))}")
    res = parse_hey_histogram(out, step.duration)
    rec["value"] = res.p99_ms
    rec["percentiles"] = res.percentiles()
    target = _float(run.get("target_rate"))
    rec["details"] = {"rate": res.rate, "target_rate": target, "requests": res.requests, "errors": res.errors,
                      "max_ms": res.max_ms, "mean_ms": res.mean_ms, "status_codes": res.status_codes,
                      "qps_per_worker": _float(run.get("qps")), "workers": plan_workers(run),
                      "target": run.get("target")}
    if target:
        rec["details"]["rate_shortfall_percent"] = max(0.0, 100.0 * (1 - res.rate / target))
    if int(run.get("rc") or 0) != 0:
        raise RuntimeError(f"hey exited with {run.get('rc')}: {_tail(run.get('stderr'))}")
    problem = parsers.hey_error_problem(res)
    if problem:
        raise RuntimeError(problem)


def plan_workers(run: Mapping[str, Any]) -> int | None:
    return _int(run.get("workers"))


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _subjects_skeleton(plan: SuitePlan, ctx: RunContext) -> dict[str, dict[str, Any]]:
    host = results.new_subject(HOST, "reference", description="host network (hostNetwork pods on the same nodes)")
    var = results.new_subject(
        plan.variant, "variant", description=f"{ctx.cni or plan.variant} {ctx.cni_version}".strip(),
        underlay_need=ctx.underlay_need, encap_overhead=ctx.encap_overhead, configured_mtu=ctx.configured_mtu,
        cni=ctx.cni or None, variant=plan.variant,
    )
    return {HOST: host, plan.variant: var}


def _new_document(plan: SuitePlan, ctx: RunContext, environment: dict[str, Any]) -> dict[str, Any]:
    params = {
        "duration_s": plan.duration,
        "repeat": plan.repeat,
        "streams": plan.streams,
        "latency_duration_s": plan.duration,
        "latency_sizes": list(plan.response_sizes),
        "latency_loads": [lvl / 100 for lvl in plan.load_levels],
        "extra": {"benchmark_run": plan.run, "benchmark_timeout_s": plan.timeout, "latency_workers": plan.workers,
                  "udp_bandwidth": "unlimited (-b 0)", "plan_digest": plan.digest(),
                  "load_levels_percent": list(plan.load_levels)},
    }
    run_id = f"{ctx.stack or plan.variant}-run-{plan.run}"
    return results.new_document("cloud", run_id=run_id, environment=environment, parameters=params, reference=HOST)


def empty_result(plan: SuitePlan, ctx: RunContext, reason: str, status: str = "no-output") -> dict[str, Any]:
    """A valid document that says why there are no figures (no run yet, or the runner failed
    before measuring)."""
    env = {"kernel": "unknown", "hostname": ctx.server_node or "unknown", "cpus": None, "machine": "unknown",
           "underlay_mtu": ctx.underlay_mtu,
           **({"instance_type": ctx.instance_type} if ctx.instance_type else {}),
           **({"region": ctx.region} if ctx.region else {}), "extra": {"stack": ctx.stack}}
    doc = _new_document(plan, ctx, env)
    for subject in _subjects_skeleton(plan, ctx).values():
        if status == "no-output":
            subject.update(status="skipped", skipped_reason=reason)
        else:
            subject.update(status="error", error=reason)
        doc["subjects"].append(subject)
    doc["extra"] = {"status": status, "message": reason, "errors": [reason] if status != "no-output" else []}
    return doc


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

    doc = _new_document(plan, ctx, _environment(raw, plan, ctx))
    subjects = _subjects_skeleton(plan, ctx)
    doc["subjects"] = list(subjects.values())
    env_nodes = doc["environment"]["extra"]["nodes"]
    subjects[HOST]["extra"] = {"node_interface_mtu": {r: env_nodes[r]["node_mtu"] for r in ("client", "server")}}
    subjects[plan.variant]["extra"] = {
        "pod_interface_mtu": {r: env_nodes[r]["pod_interface_mtu"] for r in ("client", "server")},
        "node_interface_mtu": {r: env_nodes[r]["node_mtu"] for r in ("client", "server")},
    }
    pod_mtu = env_nodes["client"]["pod_interface_mtu"] or env_nodes["server"]["pod_interface_mtu"]
    if pod_mtu:
        subjects[plan.variant]["observed_mtu"] = pod_mtu  # the MTU in effect on the pod interface

    errors = [str(e) for e in raw.get("errors") or []]
    pods = raw.get("pods") or {}
    placement = _placement_problems(pods, ctx)
    errors += placement
    for name, _role, _hn, _serves in PODS:
        p = pods.get(name) or {}
        if not p.get("ready"):
            errors.append(f"pod {name} was not ready: {_tail(p.get('error'))}")

    # calibration: the host's maximum rate per size (the 100 % of the load levels)
    max_rates: dict[str, Any] = {}
    by_id = {s.id: s for s in (*plan.calibrations, *plan.steps)}
    runs = raw.get("runs") or []
    for run in runs:
        step = by_id.get(str(run.get("id")))
        if step is None or step.tool != "hey-max":
            continue
        try:
            if run.get("skipped"):
                raise RuntimeError(f"not run: {run['skipped']}")
            res = parse_hey_histogram(run.get("output") or "", step.duration)
            max_rates[str(step.size)] = {"rate": res.rate, "p99_ms": res.p99_ms, "requests": res.requests,
                                         "errors": res.errors}
        except (RuntimeError, parsers.ParseError) as exc:
            max_rates[str(step.size)] = {"rate": None, "error": str(exc)}
            errors.append(f"calibration of the host's maximum rate for {step.size} B failed: {exc}")
    doc["parameters"]["extra"]["latency_max_rate_on_host"] = max_rates

    tests: dict[str, dict[str, Any]] = {}
    for subject_name, specs in plan.tests().items():
        for spec in specs:
            test = results.new_test(spec.name, spec.kind, _path_of(plan, subject_name, spec.name), spec.unit,
                                    higher_is_better=spec.higher_is_better, reference_test=spec.reference_test)
            test["parameters"] = dict(spec.parameters)
            subjects[subject_name]["tests"].append(test)
            tests[f"{subject_name}/{spec.name}"] = test
    for run in runs:
        step = by_id.get(str(run.get("id")))
        if step is None or step.tool == "hey-max":
            continue
        test = tests[step.id]
        rec = _run_record(run, step, plan)
        test["repetitions"].append(rec)
        if rec.get("value") is not None and "error" not in rec:
            test["samples"].append(rec["value"])
        elif rec.get("error"):
            test["error"] = rec["error"]
            if rec.get("value") is not None:  # measured but rejected (e.g. too many HTTP errors)
                rec.pop("value")
    for test in tests.values():
        if not test["repetitions"]:
            test.update(status="error", error="not run (the runner stopped before this test)")
    results.finalize(doc)
    summarize_node_usage(doc)
    for subject in doc["subjects"]:
        if subject["tests"] and all(t["status"] == "error" for t in subject["tests"]):
            first = next((t.get("error") for t in subject["tests"] if t.get("error")), "every test failed")
            subject.update(status="error", error=f"every test failed; first error: {first}")
    n_ok = sum(1 for s in doc["subjects"] for t in s["tests"] if t["status"] == "ok")
    n_all = sum(len(s["tests"]) for s in doc["subjects"])
    status = "complete" if n_ok == n_all and not errors else ("failed" if n_ok == 0 else "partial")
    doc["extra"] = {
        "status": status,
        "tests_ok": n_ok,
        "tests_total": n_all,
        "errors": errors,
        "started": raw.get("started"),
        "finished": raw.get("finished"),
        "pods": {name: {"node": (pods.get(name) or {}).get("node"), "ip": (pods.get(name) or {}).get("ip"),
                        "ready": bool((pods.get(name) or {}).get("ready"))} for name, *_ in PODS},
        "service_ip": raw.get("service_ip"),
    }
    return doc


def _path_of(plan: SuitePlan, subject: str, test: str) -> str:
    return next(s.path for s in plan.steps if s.subject == subject and s.test == test)


def _placement_problems(pods: Mapping[str, Any], ctx: RunContext) -> list[str]:
    expected = {"client": ctx.client_node, "server": ctx.server_node}
    out = []
    for name, role, _hn, _serves in PODS:
        node = (pods.get(name) or {}).get("node")
        # the node name may be the short host name or the private DNS name: compare the host part
        if node and expected[role] and node.split(".")[0] != expected[role].split(".")[0]:
            out.append(f"pod {name} ran on node {node}, not on the {role} node {expected[role]}")
    return out
