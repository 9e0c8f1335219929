"""The human-readable table of a cloud result document, written to the update's log."""

from __future__ import annotations

import statistics
from typing import Any, Iterable, Mapping


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def format_table(doc: Mapping[str, Any]) -> str:
    """A plain-text table of the result document (for the update's log)."""
    extra = doc.get("extra") or {}
    env = doc.get("environment") or {}
    head = [f"cnibench benchmark {doc.get('run_id')}: status {extra.get('status', '?')}"
            + (f" ({extra.get('tests_ok')}/{extra.get('tests_total')} tests ok)" if "tests_total" in extra else ""),
            f"kernel {env.get('kernel')}, {env.get('cpus') or '?'} CPUs, instance {env.get('instance_type', '?')}, "
            f"underlay MTU {env.get('underlay_mtu')}"]
    rows = [("subject", "test", "path", "median", "min", "max", "CV", "eff.", "CPU cli/srv %", "detail")]
    for subject in doc.get("subjects") or []:
        if subject.get("status") != "ok" and not subject.get("tests"):
            rows.append((subject["name"], "-", "-", "-", "-", "-", "-", "-", "-",
                         subject.get("error") or subject.get("skipped_reason") or subject.get("status")))
        for t in subject.get("tests") or []:
            st = t.get("stats") or {}
            cpu = t.get("cpu") or {}
            detail = ""
            if t["kind"] == "latency":
                pcts = [r.get("percentiles") or {} for r in t.get("repetitions", []) if r.get("percentiles")]
                if pcts:
                    med = {k: statistics.median(p[k] for p in pcts if k in p) for k in ("p50", "p90", "p99", "p99.9")}
                    detail = " ".join(f"{k} {v:.2f}" for k, v in med.items()) + " ms"
                short = [r["details"].get("rate_shortfall_percent") for r in t.get("repetitions", [])
                         if (r.get("details") or {}).get("rate_shortfall_percent") is not None]
                if short and max(short) > 5:
                    detail += f"; rate up to {max(short):.0f}% below target"
            if t["status"] != "ok":
                detail = f"{t['status']}: {t.get('error') or t.get('skipped_reason')}"
            else:
                failed = sum(1 for r in t.get("repetitions", []) if r.get("error"))
                if failed:
                    detail = f"{failed}/{len(t['repetitions'])} repetitions failed: {t.get('error')}; {detail}"
            cpu_txt = "-"
            if cpu.get("client_busy_percent") is not None or cpu.get("server_busy_percent") is not None:
                cpu_txt = f"{_fmt(cpu.get('client_busy_percent'), 1)}/{_fmt(cpu.get('server_busy_percent'), 1)}"
            rows.append((
                subject["name"], t["name"], t["path"],
                f"{_fmt(st.get('median'))} {t['unit']}" if st.get("median") is not None else "-",
                _fmt(st.get("min")), _fmt(st.get("max")),
                f"{st['cv'] * 100:.1f}%" if st.get("cv") is not None else "-",
                f"{t['efficiency']:.2f}" if t.get("efficiency") is not None else "-",
                cpu_txt, detail[:120],
            ))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    errs = extra.get("errors") or []
    tail = [f"error: {e}" for e in errs[:20]]
    return "\n".join(head + lines + tail)


def iter_tests(doc: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    for subject in doc.get("subjects") or []:
        for t in subject.get("tests") or []:
            yield subject["name"], t
