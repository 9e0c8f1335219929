"""The human-readable table of a cloud result document (schema v2), written to the update's log.

Per test: the median with its unit, the ratio to the host network with its confidence interval
(``test["ratio"]``), and the validity; an invalid test shows ``invalid: reason``, never a number.
The background-load verdict and whether the run may rank datapaths close the table.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping


def _num(value: Any) -> str:
    if value is None:
        return "-"
    v = float(value)
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.2f}" if abs(v) >= 1 else f"{v:.3g}"


def _ratio(t: Mapping[str, Any]) -> str:
    r = t.get("ratio") or {}
    if r.get("estimate") is None:
        return "-"
    if r.get("low") is None or r.get("high") is None:
        return f"{r['estimate']:.3f} (n={r.get('n')})"
    return f"{r['estimate']:.3f} [{r['low']:.3f}-{r['high']:.3f}]"


def _detail(t: Mapping[str, Any]) -> str:
    pcts = t.get("percentiles_us") or {}
    parts = []
    if t["kind"] in ("rr", "latency") and pcts:
        parts.append(" ".join(f"{k} {pcts[k]:.1f}" for k in ("p50", "p90", "p99", "p99.9") if k in pcts) + " µs")
    if t["kind"] == "udp":
        lost = [r["details"].get("lost_percent") for r in t.get("repetitions", [])
                if r.get("valid") and (r.get("details") or {}).get("lost_percent") is not None]
        if lost:
            parts.append(f"lost up to {max(lost):.2f} %")
    if t.get("closed_loop"):
        parts.append("closed loop")
    reason = (t.get("validity") or {}).get("reason")
    if reason:
        parts.append(reason)
    return "; ".join(parts)


def _where(doc: Mapping[str, Any]) -> str:
    """cloud: the instance type; cluster (`cnibench run`): the context, the two nodes and the CNI found."""
    env = doc.get("environment") or {}
    if doc.get("origin") != "cluster":
        return f"instance {env.get('instance_type', '?')}"
    extra = env.get("extra") or {}
    nodes = extra.get("nodes") or {}
    cni = (extra.get("cni") or {}).get("name") or "unknown"
    return (f"context {(extra.get('cluster') or {}).get('context', '?')}, nodes "
            f"{(nodes.get('client') or {}).get('name') or '?'} -> {(nodes.get('server') or {}).get('name') or '?'}, "
            f"CNI {cni}")


def format_table(doc: Mapping[str, Any]) -> str:
    """A plain-text table of the result document (for the update's log)."""
    extra = doc.get("extra") or {}
    env = doc.get("environment") or {}
    reps = (doc.get("parameters") or {}).get("repetitions") or {}
    head = [f"cnibench benchmark {doc.get('run_id')}: status {extra.get('status', '?')}"
            + (f" ({extra.get('tests_ok')}/{extra.get('tests_total')} tests ok)" if "tests_total" in extra else ""),
            f"kernel {env.get('kernel')}, {env.get('cpus') or '?'} CPUs, {_where(doc)}, "
            f"underlay MTU {env.get('underlay_mtu')}; {reps.get('done', '?')} repetitions "
            f"({reps.get('stopped', '?')}); ratios to {doc.get('reference')} with 95 % intervals"]
    rows = [("subject", "test", "path", "median", "ratio [95 % CI]", "n", "validity / detail")]
    for subject in doc.get("subjects") or []:
        if subject.get("status") != "ok" and not subject.get("tests"):
            rows.append((subject["name"], "-", "-", "-", "-", "-",
                         f"{subject.get('status')}: {subject.get('error') or subject.get('skipped_reason')}"))
        for t in subject.get("tests") or []:
            st = t.get("stats") or {}
            if t["status"] == "ok" and st.get("median") is not None:
                median = f"{_num(st['median'])} {t['unit']}"
                detail = _detail(t)
            else:
                median = "-"
                why = ((t.get("validity") or {}).get("reason") or t.get("error") or t.get("skipped_reason")
                       or t["status"])
                detail = f"{t['status']}: {why}"
            rows.append((subject["name"], t["name"], t["path"], median,
                         _ratio(t) if t["status"] == "ok" else "-", str(st.get("n", 0)), detail[:160]))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    tail = []
    contamination = extra.get("contamination") or {}
    if contamination:
        tail.append(f"background load: {contamination.get('verdict')}")
    ranking = extra.get("ranking") or {}
    if ranking:
        tail.append("ranking: allowed" if ranking.get("allowed") else f"ranking: not allowed ({ranking.get('reason')})")
    for subject in doc.get("subjects") or []:
        for t in subject.get("tests") or []:
            tail += [f"caveat ({subject['name']} {t['name']}): {c}" for c in t.get("caveats") or ()]
    errs = extra.get("errors") or []
    tail += [f"error: {e}" for e in errs[:20]]
    return "\n".join(head + lines + tail)


def iter_tests(doc: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    for subject in doc.get("subjects") or []:
        for t in subject.get("tests") or []:
            yield subject["name"], t
