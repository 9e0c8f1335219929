"""The comparison model: result documents grouped by environment, every variant ranked per
metric within its group, with the difference to the best and to the host network and their
95 % intervals; and its Markdown, CSV and JSON forms.

Rules (issue 14):

* **Groups.** A figure means something only beside figures measured on the same machines:
  a lab run is one group (its machine, its run); the cloud documents of one instance type,
  region and kernel are one group (one node pair per variant, each with its own host); every
  knb import is its own group. Groups are merged only when asked (``comparable``). Nothing is
  ranked, charted or put on one axis across groups.
* **Ratios** are never recomputed across runs with a made-up interval: the ratio to the host is
  the document's own (paired repetitions of the same run, :func:`cnibench.results.finalize`);
  the difference to the best variant of the same run is :func:`cnibench.results.ratio_interval`
  over the same pairs; between two documents of one group it is the ratio of the medians,
  without an interval.
* **Validity.** An invalid, failed or skipped measurement is an entry with its status and
  reason and no value; every source's validity warnings are kept on its group; a run whose
  document withholds the ranking (``extra.ranking.allowed: false``) gets no ranks.

Output (:func:`write_report`): ``comparison.md``, ``comparison.csv``, ``comparison.json``,
the charts (:mod:`cnibench.report.charts`) in ``charts/<group>/``, ``results/<source id>.json``
(a checked copy of every input) and the marker :data:`~cnibench.report.sources.MARKER` that
keeps a later report from reading any of it again.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from cnibench import results
from cnibench.errors import InputError
from cnibench.report import checks
from cnibench.report import sources as _src
from cnibench.report.sources import (
    MARKER,
    ORIGIN_ORDER,
    PERCENTILES,
    Source,
    environment_facts,
    environment_label,
    fmt_number,
    fmt_percent,
    fmt_ratio,
    rounded,
)

FORMAT = "cnibench-comparison"
FORMAT_VERSION = 1
HEADLINE_TESTS = ("tcp", "tcp-service", "udp", "tcp-rr-14B", "cpu-tcp")
BAR_KINDS = ("tcp", "udp", "rr", "crr", "http", "rate")
STATUS_MARK = {"invalid": "⚠ invalid", "error": "✗ failed", "skipped": "– skipped", "no-figure": "✗ no figure"}


# --------------------------------------------------------------------------- the model


@dataclass
class Ratio:
    """A ratio with its 95 % interval (``low``/``high`` ``None``: none could be computed; ``note``
    says why). ``n``: the paired repetitions it rests on."""

    estimate: float
    low: float | None = None
    high: float | None = None
    n: int = 0
    note: str | None = None

    @property
    def distinguishable(self) -> bool | None:
        """True: the interval excludes 1; None: no interval."""
        if self.low is None or self.high is None:
            return None
        return not (self.low <= 1.0 <= self.high)

    def as_dict(self) -> dict[str, Any]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "n": self.n,
                "confidence": 0.95 if self.low is not None else None, "distinguishable": self.distinguishable,
                "note": self.note}


@dataclass
class Entry:
    """One subject's figure for one metric. ``status`` ``ok`` carries ``value``; every other
    status (``invalid``, ``error``, ``skipped``, ``no-figure``) has ``value None`` and a
    ``reason``. ``warning``: the figure stands but not all of its repetitions were used (or
    another caveat)."""

    source: str
    subject: str
    variant: str | None
    reference: bool
    status: str
    reason: str | None = None
    value: float | None = None
    n: int = 0
    interval: tuple[float, float] | None = None
    interval_kind: str | None = None
    cv: float | None = None
    rank: int | None = None
    vs_best: Ratio | None = None
    vs_host: Ratio | None = None
    warning: str | None = None
    path: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    test: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def valid(self) -> bool:
        return self.status == "ok" and self.value is not None

    @property
    def label(self) -> str:
        return self.subject

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "subject": self.subject, "variant": self.variant, "reference": self.reference,
            "status": self.status, "valid": self.valid, "reason": self.reason, "warning": self.warning,
            "rank": self.rank, "value": self.value if self.valid else None, "n": self.n,
            "interval": ({"low": self.interval[0], "high": self.interval[1], "kind": self.interval_kind}
                         if self.valid and self.interval else None),
            "cv": self.cv if self.valid else None,
            "vs_best": self.vs_best.as_dict() if self.valid and self.vs_best else None,
            "vs_host": self.vs_host.as_dict() if self.valid and self.vs_host else None,
            "path": self.path, "details": self.details if self.valid else {},
        }


@dataclass
class Metric:
    """One test (or a figure derived from one: its CPU per Gbit/s) of one group."""

    id: str
    test: str
    title: str
    kind: str
    unit: str
    higher_is_better: bool
    statistic: str | None
    entries: list[Entry]
    chart: str  # "bars", "cpu", "profile" (latency percentiles) or "none"
    derived: str | None = None

    @property
    def valid(self) -> list[Entry]:
        return [e for e in self.entries if e.valid]

    @property
    def best(self) -> Entry | None:
        return next((e for e in self.entries if e.rank == 1), None)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "test": self.test, "title": self.title, "kind": self.kind, "unit": self.unit,
                "higher_is_better": self.higher_is_better, "statistic": self.statistic, "derived_from": self.derived,
                "entries": [e.as_dict() for e in self.entries]}


@dataclass
class Group:
    """Documents measured in one environment: the only figures ever compared with each other."""

    id: str
    title: str
    origin: str
    basis: str
    facts: dict[str, Any]
    sources: list[Source]
    reference: str | None
    ranking_allowed: bool
    ranking_note: str | None
    warnings: list[str]
    metrics: list[Metric]
    summary: list[str] = field(default_factory=list)
    not_measured: list[tuple[str, str, str]] = field(default_factory=list)  # (subject, status, reason)

    def metric(self, metric_id: str) -> Metric | None:
        return next((m for m in self.metrics if m.id == metric_id), None)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "origin": self.origin, "basis": self.basis, "facts": self.facts,
                "sources": [s.id for s in self.sources], "reference": self.reference,
                "ranking": {"allowed": self.ranking_allowed, "note": self.ranking_note},
                "warnings": self.warnings, "summary": self.summary,
                "not_measured": [{"subject": s, "status": st, "reason": r} for s, st, r in self.not_measured],
                "metrics": [m.as_dict() for m in self.metrics]}


@dataclass
class Comparison:
    sources: list[Source]
    groups: list[Group]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def group_of(self, source_id: str) -> Group:
        return next(g for g in self.groups if any(s.id == source_id for s in g.sources))

    def as_dict(self) -> dict[str, Any]:
        def path(p: Any) -> Any:
            if isinstance(p, Path):
                return str(p)
            if isinstance(p, dict):
                return {k: path(v) for k, v in p.items()}
            if isinstance(p, list):
                return [path(v) for v in p]
            return p

        return {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "rules": "figures are compared only within a group (one environment); invalid figures are null with "
                     "their status and reason; intervals are 95 %",
            "sources": [{"id": s.id, "origin": s.origin, "run_id": s.run_id, "path": str(s.path) if s.path else None,
                         "created": s.doc.get("created"), "schema": results.schema_label(s.doc),
                         "group": self.group_of(s.id).id, "copy": f"results/{s.id}.json"} for s in self.sources],
            # the paths only: the reasons were printed on stderr when the report was made
            "skipped_inputs": [str(p) for p, _ in self.skipped],
            "groups": [g.as_dict() for g in self.groups],
            "outputs": path(self.outputs),
        }


# --------------------------------------------------------------------------- building


def _subject_variant(subject: dict) -> str | None:
    return subject.get("variant") or subject.get("cni")


def _median(values: Iterable[Any]) -> float | None:
    vals = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return statistics.median(vals) if vals else None


def _good_reps(test: dict) -> list[dict]:
    reps = test.get("repetitions") or []
    if any("valid" in r for r in reps):
        return [r for r in reps if r.get("valid") and not r.get("contaminated") and r.get("value") is not None]
    return [r for r in reps if r.get("value") is not None and "error" not in r]


def latency_points(test: dict) -> dict[str, float]:
    """The percentiles of a latency test in µs: the document's (medians over the valid
    repetitions), or for schema v1 (hey, ms) the median over its repetitions of each; a test
    without any contributes its own statistic (``parameters.statistic``, default p99)."""
    if test.get("percentiles_us"):
        return {k: float(v) for k, v in test["percentiles_us"].items()}
    per: dict[str, list[float]] = {}
    scale = 1000.0 if test.get("unit") == "ms" else 1.0
    for rep in _good_reps(test):
        for key, value in (rep.get("percentiles_us") or rep.get("percentiles") or {}).items():
            per.setdefault(key, []).append(float(value) * scale)
    if not per and test["stats"]["median"] is not None:
        stat = (test.get("parameters") or {}).get("statistic", "p99")
        per[stat if stat in PERCENTILES else "p99"] = [test["stats"]["median"] * scale]
    return {k: statistics.median(v) for k, v in per.items()}


def load_and_size(test: dict) -> tuple[int | None, float | None]:
    """(message or response bytes, load in % of the host's max rate) of a latency test."""
    params = test.get("parameters") or {}
    size = params.get("size_bytes", params.get("message_bytes"))
    load = params.get("load_fraction")
    load = 100.0 * load if load is not None else params.get("load_percent")
    m = _src.LATENCY_NAME.search(test["name"])
    if m:
        size = size if size is not None else int(m["size"])
        load = load if load is not None else float(m["load"])
    return size, load


def _details(test: dict, kind: str) -> dict[str, Any]:
    """What the figure's reader needs beside it: TCP retransmits, UDP loss, the load achieved,
    percentiles, CPU split, MTU (medians over the valid repetitions)."""
    reps = _good_reps(test)
    det = [r.get("details") or {} for r in reps]
    out: dict[str, Any] = {}
    if kind == "tcp":
        out["retransmits"] = _median(d.get("retransmits") for d in det)
    if kind == "udp":
        out["loss_percent"] = _median(d.get("lost_percent") for d in det)
    if kind in ("latency", "rr"):
        out["percentiles_us"] = latency_points(test)
        size, load = load_and_size(test)
        out["message_bytes"], out["load_percent_of_host_max"] = size, load
        target, achieved = _median(d.get("target_rate") for d in det), _median(d.get("achieved_rate") for d in det)
        if achieved is None and kind == "rr":
            achieved = _median(d.get("transactions_per_s") for d in det)
        out["target_rate_per_s"], out["achieved_rate_per_s"] = target, achieved
        out["achieved_percent_of_target"] = 100 * achieved / target if target and achieved is not None else None
    if test.get("cpu"):
        out["cpu"] = {k: v for k, v in test["cpu"].items() if isinstance(v, (int, float, bool, str))}
    if test.get("observed_mtu") is not None:
        out["observed_mtu"] = test["observed_mtu"]
    return {k: v for k, v in out.items() if v is not None}


def _status(test: dict, value: float | None) -> tuple[str, str | None]:
    validity = test.get("validity") or {}
    st = test.get("status", "ok")
    if st == "skipped":
        return "skipped", test.get("skipped_reason") or validity.get("reason") or "skipped"
    if st == "invalid":
        return "invalid", validity.get("reason") or "invalid"
    if st == "error":
        return "error", test.get("error") or validity.get("reason") or "failed"
    if value is None:
        return "no-figure", validity.get("reason") or "the document holds no figure"
    return "ok", None


def _warning(test: dict) -> str | None:
    notes = []
    reason = (test.get("validity") or {}).get("reason")
    if reason and test.get("status") == "ok":
        notes.append(str(reason))
    notes += [str(c) for c in test.get("caveats") or ()]
    return "; ".join(notes) or None


def _interval(test: dict, value: float | None) -> tuple[tuple[float, float] | None, str | None]:
    mi = test.get("median_interval")
    if mi and mi[0] is not None and mi[1] is not None:
        return (float(mi[0]), float(mi[1])), "95 % CI of the median"
    st = test.get("stats") or {}
    if (st.get("n") or 0) >= 2 and st.get("min") is not None and st.get("max") is not None and st["min"] != st["max"]:
        return (float(st["min"]), float(st["max"])), f"min–max of {st['n']} repetitions (too few for a 95 % CI)"
    return None, None


def _cpu_series(test: dict, key: str) -> dict[str, Any]:
    """A stand-in test whose repetitions' values are their CPU figure ``key``, so that
    :func:`cnibench.results.ratio_interval` pairs them like any test."""
    reps = []
    for r in test.get("repetitions") or []:
        v = (r.get("cpu") or {}).get(key)
        ok = r.get("valid", r.get("value") is not None) and not r.get("contaminated")
        reps.append({"index": r.get("index", 0), "value": v, "valid": bool(ok and v is not None)})
    return {"repetitions": reps}


def _doc_ratio(test: dict) -> Ratio | None:
    r = test.get("ratio") or {}
    if r.get("estimate") is not None:
        return Ratio(float(r["estimate"]), r.get("low"), r.get("high"), int(r.get("n") or 0),
                     None if r.get("low") is not None else f"{r.get('n') or 0} pair(s) of repetitions: no interval")
    if test.get("efficiency") is not None:
        return Ratio(float(test["efficiency"]), None, None, 0, "schema v1: no interval")
    return None


def _paired(a: dict, b: dict) -> Ratio | None:
    iv = results.ratio_interval(a, b)
    if not iv.n or iv.estimate is None:
        return None
    return Ratio(iv.estimate, iv.low, iv.high, iv.n, None if iv.low is not None else "one pair: no interval")


@dataclass
class _Cand:
    src: Source
    subject: dict
    test: dict


def _metric_title(test: dict, derived: str | None = None) -> str:
    name, kind = test["name"], test["kind"]
    path = test.get("path", "")
    proto = "UDP" if "udp" in name.split("-") or kind == "udp" else "TCP"
    size = (test.get("parameters") or {}).get("message_bytes") or (test.get("parameters") or {}).get("response_bytes")
    m = re.search(r"(\d+)B", name)
    size = size or (int(m.group(1)) if m else None)
    if derived == "cpu":
        return f"CPU per Gbit/s during {name} ({path})"
    if derived == "cpu-busy":
        above = " above idle" if (test.get("cpu") or {}).get("idle_corrected") else ""
        return f"CPU busy %{above} per Gbit/s during {name} ({path})"
    if kind in ("tcp", "udp"):
        where = "pod-to-service" if "service" in name else path
        return f"{proto} throughput ({where})" + (" at a fixed offered rate" if kind == "udp" and "fixed" in str(
            test.get("statistic", "")) else "")
    if kind == "rr":
        return f"{proto} request/response round trip, {size} B, one in flight (p50)"
    if kind == "crr":
        return "TCP connection rate (new connection per request)"
    if kind == "http":
        return f"HTTP requests/s, {size} B responses (closed loop)"
    if kind == "latency":
        _, load = load_and_size(test)
        stat = "p99" if "p99" in str(test.get("statistic", "p99")) else str(test.get("statistic"))
        return f"{proto} {stat} round trip at {load:g} % of the host's max rate" if load is not None else name
    if kind == "cpu":
        return "CPU per Gbit/s, TCP at a fixed rate"
    if kind == "mtu":
        return "Path MTU"
    return name


def _chart_kind(kind: str, derived: str | None) -> str:
    if derived or kind == "cpu":
        return "cpu"
    if kind in BAR_KINDS:
        return "bars"
    if kind == "latency":
        return "profile"
    return "none"


def _entry(c: _Cand, ref_tests: dict[str, dict], derived: str | None, ref_name: str | None) -> Entry:
    t, s = c.test, c.subject
    reference = s.get("name") == ref_name or s.get("kind") == "reference"
    cpu = t.get("cpu") or {}
    if derived == "cpu":
        value = cpu.get("cpu_seconds_per_gbit") if t.get("status") == "ok" else None
    elif derived == "cpu-busy":
        med = (t.get("stats") or {}).get("median")
        # idle-corrected where the source could correct it (knb: the idle test subtracted per node)
        busy = cpu.get("busy_above_idle_percent") if cpu.get("idle_corrected") else cpu.get("busy_percent")
        value = busy / med if t.get("status") == "ok" and busy is not None and med else None
    else:
        value = (t.get("stats") or {}).get("median")
    status, reason = _status(t, value)
    e = Entry(source=c.src.id, subject=s["name"], variant=_subject_variant(s), reference=reference, status=status,
              reason=reason, path=t.get("path"), test=t)
    if status != "ok":
        return e
    e.value = float(value) if value is not None else None
    e.n = int((t.get("stats") or {}).get("n") or 0)
    e.warning = _warning(t)
    e.details = _details(t, t["kind"])
    if derived:
        if cpu.get("idle_corrected") is False:
            why = str(cpu.get("idle_correction") or "")
            e.warning = "; ".join(filter(None, [e.warning, "not idle-corrected" + (f" ({why})" if why else "")]))
    else:
        e.interval, e.interval_kind = _interval(t, e.value)
        e.cv = (t.get("stats") or {}).get("cv")
    if not reference and t["kind"] != "mtu":
        ref = ref_tests.get(t.get("reference_test") or t["name"])
        if derived == "cpu" and ref is not None and (ref.get("cpu") or {}).get("cpu_seconds_per_gbit"):
            e.vs_host = _paired(_cpu_series(t, "cpu_seconds_per_gbit"), _cpu_series(ref, "cpu_seconds_per_gbit"))
        elif not derived:
            e.vs_host = _doc_ratio(t)
    return e


def _not_comparable(entries: Sequence[Entry], first: dict) -> None:
    """An entry whose test has the metric's name but another unit or kind than the metric's
    first variant (schema v1 latency in ms beside v2 in µs, another tool's figure under the same
    name) is not ranked on one axis with it: it stays, without a figure, saying why."""
    for e in entries:
        t = e.test
        if not e.valid or t is None or (t.get("unit"), t.get("kind")) == (first.get("unit"), first.get("kind")):
            continue
        e.status, e.value, e.interval, e.vs_host, e.details = "no-figure", None, None, None, {}
        e.reason = (f"measured in {t.get('unit')} ({t.get('kind')}), the metric in {first.get('unit')} "
                    f"({first.get('kind')}): not compared")


def _rank(metric: Metric, allowed: bool) -> None:
    """Sort: ranked variants (best first), the reference(s), then what has no figure; give ranks
    and the difference to the best (paired within one run, else the ratio of the medians)."""
    sign = -1.0 if metric.higher_is_better else 1.0
    ranked = sorted((e for e in metric.entries if e.valid and not e.reference), key=lambda e: sign * (e.value or 0))
    refs = [e for e in metric.entries if e.valid and e.reference]
    rest = [e for e in metric.entries if not e.valid]
    metric.entries = ranked + refs + rest
    if len(ranked) < 2 or not allowed or metric.kind == "mtu":
        return  # one figure is not a ranking
    best = ranked[0]
    for i, e in enumerate(ranked, 1):
        e.rank = i
        if e is best:
            e.vs_best = Ratio(1.0, None, None, 0, "the best")
            continue
        ratio = None
        if e.source == best.source and e.test is not None and best.test is not None and "validity" in e.test:
            a, b = (e.test, best.test) if metric.derived is None else (
                _cpu_series(e.test, "cpu_seconds_per_gbit"), _cpu_series(best.test, "cpu_seconds_per_gbit"))
            if metric.derived in (None, "cpu"):
                ratio = _paired(a, b)
        if ratio is None and best.value:
            note = ("measured in separate runs: no paired interval" if e.source != best.source
                    else "no paired repetitions: no interval")
            ratio = Ratio((e.value or 0) / best.value, None, None, 0, note)
        e.vs_best = ratio


def _group_key(src: Source) -> tuple:
    f = environment_facts(src.doc)
    if src.origin == "lab":
        return ("lab", f["host"], f["kernel"], f["cpus"], src.run_id)
    if src.origin == "cloud":
        return ("cloud", f["instance_type"], f["region"], f["kernel"], f["cpus"], f["underlay_mtu"])
    if src.origin == "cluster":  # `cnibench run`: one existing cluster (its API server), kernel and CPUs
        return ("cluster", f["cluster"], f["kernel"], f["cpus"], f["instance_type"])
    return (src.origin, src.id)


def _group_id(key: tuple, first: Source, taken: set[str]) -> str:
    f = environment_facts(first.doc)
    if key[0] == "lab":
        base = _src.slug(f"lab-{f['host'] or 'host'}-{first.run_id}")
    elif key[0] == "cloud":
        base = _src.slug("cloud-" + "-".join(str(p) for p in (f["instance_type"], f["region"]) if p))
    elif key[0] == "cluster":
        base = _src.slug(f"cluster-{f['cluster_name'] or f['host'] or 'cluster'}")
    else:
        base = first.id
    gid, n = base, 1
    while gid in taken:
        n += 1
        gid = f"{base}-{n}"
    taken.add(gid)
    return gid


def _run_line(srcs: Sequence[Source]) -> str:
    dates = sorted({str(environment_facts(s.doc)["run_date"] or "")[:16].replace("T", " ") for s in srcs} - {""})
    ids = list(dict.fromkeys(s.run_id for s in srcs))
    runs = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
    return f"run {runs}" + (f", {dates[0]}" if len(dates) == 1 else f", {dates[0]} to {dates[-1]}" if dates else "")


def _group_warnings(srcs: Sequence[Source], metrics: Sequence[Metric], basis: str) -> list[str]:
    out: list[str] = []
    for s in srcs:
        doc = s.doc
        if results.schema_major(doc) < 2:
            out.append(f"{s.id}: {results.schema_label(doc)}")
        extra = doc.get("extra") or {}
        ranking = extra.get("ranking") or {}
        if ranking and not ranking.get("allowed", True):
            out.append(f"{s.id}: no ranking: {ranking.get('reason') or 'withheld by the run'}")
        cont = extra.get("contamination") or {}
        if cont.get("contaminated"):
            out.append(f"{s.id}: {cont.get('verdict') or str(cont['contaminated']) + ' contaminated repetitions'}")
        reps = (doc.get("parameters") or {}).get("repetitions") or {}
        if reps.get("stopped") == "cap" and reps.get("worst_half_width") is not None:
            out.append(f"{s.id}: the repetition cap was reached before every interval met its target "
                       f"(widest: {reps.get('worst_metric')}, ±{100 * reps['worst_half_width']:.1f} %)")
        if s.origin == "knb":
            out.append(f"{s.id}: one knb run: one repetition per test, no interval, no host-network reference")
    if basis == "separate-stacks":
        out.append("one node pair per variant (one stack each): absolute figures also differ by the instance pair; "
                   "each variant's ratio to its own run's host network removes that")
    if basis == "separate-runs":
        out.append("separate runs on one cluster: each variant's ratio to its own run's host network is the "
                   "comparable figure; absolute figures also differ by the nodes and the time of each run")
    if basis == "explicit":
        out.append("grouped on request (--comparable): these runs were declared comparable; differences between "
                   "runs carry no interval")
    seen: dict[tuple[str, str, str], list[str]] = {}
    for m in metrics:
        if m.derived:
            continue
        for e in m.entries:
            if e.status in ("invalid", "error", "no-figure"):
                seen.setdefault((m.test, e.status, e.reason or ""), []).append(e.subject)
            elif e.warning:
                seen.setdefault((m.test, "warning", e.warning), []).append(e.subject)
    for (test, status, reason), who in seen.items():
        word = {"warning": "caveat", "no-figure": "no figure"}.get(status, status)
        out.append(f"{test}: {word} for {', '.join(dict.fromkeys(who))}: {reason}")
    return out


def _basis(key: tuple, srcs: Sequence[Source], explicit: bool) -> str:
    if explicit:
        return "explicit"
    if key[0] == "cloud" and len(srcs) > 1:
        return "separate-stacks"
    if key[0] == "cluster" and len(srcs) > 1:
        return "separate-runs"
    return "same-run"


def _build_group(gid: str, key: tuple, srcs: list[Source], explicit: bool) -> Group:
    basis = _basis(key, srcs, explicit)
    allowed, notes = True, []
    for s in srcs:
        ranking = (s.doc.get("extra") or {}).get("ranking") or {}
        if ranking and not ranking.get("allowed", True):
            allowed = False
            notes.append(str(ranking.get("reason") or "withheld by the run"))
    candidates: dict[str, list[_Cand]] = {}
    order: list[str] = []
    not_measured: list[tuple[str, str, str]] = []
    for s in srcs:
        for subj in s.doc["subjects"]:
            if subj.get("status") != "ok":
                reason = subj.get("skipped_reason") or subj.get("error") or subj.get("status")
                not_measured.append((subj["name"], subj.get("status", "?"), str(reason)))
                continue
            for t in subj["tests"]:
                if t["name"] not in candidates:
                    order.append(t["name"])
                candidates.setdefault(t["name"], []).append(_Cand(s, subj, t))
    ref_names = {s.id: s.doc.get("reference") for s in srcs}
    refs: dict[str, dict[str, dict]] = {}
    for s in srcs:
        ref = next((x for x in s.doc["subjects"] if x["name"] == s.doc.get("reference") and x.get("status") == "ok"),
                   None)
        refs[s.id] = {t["name"]: t for t in ref["tests"]} if ref else {}
    metrics: list[Metric] = []
    for name in order:
        cands = candidates[name]
        variants = [c for c in cands if c.subject.get("kind") != "reference"] or cands
        first = variants[0].test
        derived_kinds: list[str | None] = [None]
        if first["kind"] in ("tcp", "udp"):
            cpus = [c.test.get("cpu") or {} for c in cands]
            if any(c.get("cpu_seconds_per_gbit") is not None for c in cpus):
                derived_kinds.append("cpu")
            elif any(c.get("busy_percent") is not None for c in cpus):
                derived_kinds.append("cpu-busy")
        for derived in derived_kinds:
            unit = {"cpu": "CPU s/Gbit", "cpu-busy": "% per Gbit/s"}.get(derived or "", first["unit"])
            entries = [_entry(c, refs[c.src.id], derived, ref_names[c.src.id]) for c in cands]
            _not_comparable(entries, first)
            for subj, status, reason in not_measured:
                entries.append(Entry(source="", subject=subj, variant=None, reference=False, status=status
                                     if status in ("skipped", "error") else "skipped", reason=reason))
            metric = Metric(
                id=name if derived is None else f"{name}/{derived}", test=name, title=_metric_title(first, derived),
                kind="cpu" if derived else first["kind"], unit=unit,
                higher_is_better=False if derived else bool(first.get("higher_is_better", True)),
                statistic=None if derived else first.get("statistic"), entries=entries,
                chart=_chart_kind(first["kind"], derived), derived=derived)
            _rank(metric, allowed)
            metrics.append(metric)
    first_src = srcs[0]
    facts = environment_facts(first_src.doc)
    if len(srcs) > 1:
        facts = {**facts, "run_id": [s.run_id for s in srcs],
                 "run_date": sorted(str(environment_facts(s.doc)["run_date"]) for s in srcs)}
    title = f"{environment_label(first_src.doc)} · {_run_line(srcs)}"
    reference = next((r for r in ref_names.values() if r and refs.get(first_src.id)), None)
    group = Group(id=gid, title=title, origin=first_src.origin, basis=basis, facts=facts, sources=srcs,
                  reference=reference if any(refs.values()) else None, ranking_allowed=allowed,
                  ranking_note="; ".join(dict.fromkeys(notes)) or None,
                  warnings=[], metrics=metrics, not_measured=not_measured)
    group.warnings = _group_warnings(srcs, metrics, basis)
    group.summary = summarize_group(group)
    return group


def build(found: Sequence[Source], comparable: Sequence[Iterable[str]] = (),
          skipped: Sequence[tuple[Path, str]] = ()) -> Comparison:
    """The comparison of ``found`` (ids are given to sources that have none). ``comparable``:
    sets of source ids declared comparable (their groups are merged)."""
    if len(found) > checks.MAX_DOCUMENTS:
        raise InputError(f"{len(found)} result documents, more than the {checks.MAX_DOCUMENTS} one report compares: "
                         "give fewer files or directories")
    srcs = sorted(found, key=lambda s: (ORIGIN_ORDER.get(s.origin, 9), s.doc.get("created", "")))
    if any(not s.id for s in srcs):
        srcs = _src.assign_ids(srcs)
    by_key: dict[tuple, list[Source]] = {}
    for s in srcs:
        by_key.setdefault(_group_key(s), []).append(s)
    merged_flags: dict[tuple, bool] = {k: False for k in by_key}
    ids = {s.id for s in srcs}
    for wanted in comparable:
        wanted = set(wanted)
        unknown = wanted - ids
        if unknown:
            raise ValueError(f"--comparable: no source with the id {', '.join(sorted(unknown))} "
                             f"(the ids: {', '.join(sorted(ids))})")
        keys = [k for k, v in by_key.items() if any(s.id in wanted for s in v)]
        if len(keys) > 1:
            target = keys[0]
            for k in keys[1:]:
                by_key[target].extend(by_key.pop(k))
                merged_flags.pop(k, None)
            merged_flags[target] = True
    taken: set[str] = set()
    for k, v in by_key.items():
        n = sum(len(s.doc.get("subjects") or ()) for s in v)
        if n > checks.MAX_GROUP_SUBJECTS:
            some = ", ".join(s.id for s in v[:3]) + (f" and {len(v) - 3} more" if len(v) > 3 else "")
            raise InputError(f"{n} subjects in one environment ({some}), more than the {checks.MAX_GROUP_SUBJECTS} a "
                             "report compares in one group (each is a row of every table and chart): give fewer "
                             "documents of this environment" + (" or drop --comparable" if merged_flags.get(k) else ""))
    groups = [_build_group(_group_id(k, v[0], taken), k, v, merged_flags.get(k, False)) for k, v in by_key.items()]
    return Comparison(sources=list(srcs), groups=groups, skipped=list(skipped))


# --------------------------------------------------------------------------- summary sentences


def _ci_percent(r: Ratio, below: bool) -> str:
    if r.low is None or r.high is None:
        return f"({r.note or 'no interval'})"
    lo, hi = (1 - r.high, 1 - r.low) if below else (r.low - 1, r.high - 1)
    return f"(95 % CI {fmt_percent(lo, signed=False)} to {fmt_percent(hi, signed=False)})".replace(" % to", " to")


def _vs_host_text(m: Metric, e: Entry) -> str:
    r = e.vs_host
    if r is None:
        return "no host-network reference in this run" if not e.reference else ""
    if m.higher_is_better:
        below = r.estimate <= 1.0
        word = "below" if below else "above"
    else:
        below = r.estimate <= 1.0
        word = "less than" if below else "more than"
    amount = abs(1 - r.estimate)
    return f"{fmt_percent(amount, signed=False)} {word} the host network {_ci_percent(r, below)}"


def _lead(m: Metric) -> str:
    if m.kind in ("tcp", "udp", "crr", "http", "rate"):
        return "is fastest for"
    if m.kind == "cpu":
        return "needs the least CPU for" if m.derived else "needs the least"
    if m.kind in ("rr", "latency"):
        return "has the lowest"
    return "is best for"


def _what(m: Metric) -> str:
    if m.kind == "cpu" and not m.derived:
        return "CPU per Gbit/s (TCP at a fixed rate)"
    return m.title[0].lower() + m.title[1:] if not m.title[:3].isupper() else m.title


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def summarize_group(g: Group) -> list[str]:
    """One sentence per headline metric: who is best, by how much, how sure; a group with one
    subject (a knb run) states its figures, which nothing here is compared with."""
    out: list[str] = []
    if not g.ranking_allowed:
        out.append(f"No ranking in this environment: {g.ranking_note}. Figures are shown, not ranked.")
    env = "In this environment" if len(g.sources) == 1 else "In this group"
    for name in HEADLINE_TESTS:
        m = g.metric(name)
        if m is None or not m.valid:
            continue
        ranked = [e for e in m.entries if e.rank is not None]
        if not ranked:
            variants = [e for e in m.valid if not e.reference]
            if not variants:
                continue
            e = variants[0]
            text = f"{_cap(_what(m))}: {e.subject} {fmt_number(e.value, m.unit)} {m.unit}"
            if e.vs_host is not None:
                text += f", {_vs_host_text(m, e)}"
            elif g.origin == "knb":
                text += " (one knb run: no interval, no host-network reference)"
            out.append(text + ("" if g.ranking_allowed or len(variants) < 2 else " (not ranked)") + ".")
            continue
        best = ranked[0]
        text = f"{env}, **{best.subject}** {_lead(m)} {_what(m)}: {fmt_number(best.value, m.unit)} {m.unit}"
        if best.vs_host is not None:
            text += f", {_vs_host_text(m, best)}"
        text += "."
        second = ranked[1]
        r = second.vs_best
        if r is not None:
            if r.distinguishable is False:
                text += (f" {second.subject} is not distinguishable from it at 95 % "
                         f"({fmt_percent(r.estimate - 1)}, CI {fmt_percent((r.low or 1) - 1)} to "
                         f"{fmt_percent((r.high or 1) - 1)}).")
            else:
                ci = (f"95 % CI {fmt_percent(r.low - 1)} to {fmt_percent(r.high - 1)}" if r.low is not None
                      and r.high is not None else r.note or "no interval")
                text += f" Next: {second.subject}, {fmt_percent(r.estimate - 1)} ({ci})."
        out.append(text)
    if not out and g.metrics:
        out.append("No valid headline figure in this environment (see the warnings).")
    return out


# --------------------------------------------------------------------------- Markdown


def _md(text: Any) -> str:
    """Text from a document as one Markdown table cell: ``|`` escaped, and no control character
    (a newline, an escape sequence for the terminal the Markdown is printed on) kept."""
    plain = "".join(c if c.isprintable() else " " for c in str(text if text is not None else ""))
    return plain.replace("|", "\\|")


def _ratio_cell(r: Ratio | None, best: bool = False) -> str:
    if best:
        return "best"
    if r is None:
        return ""
    text = f"{fmt_ratio(r.estimate)} ({fmt_percent(r.estimate - 1)})"
    if r.low is not None and r.high is not None:
        text += f" [{r.low:.2f}–{r.high:.2f}]"
    elif r.note:
        text += " (no CI)"
    return text


def _extra_header(m: Metric) -> str:
    return {"tcp": "TCP retransmits (median per rep.)", "udp": "UDP loss", "latency": "load achieved",
            "rr": "p99 / p99.9 µs", "cpu": "client / server"}.get(m.kind, "")


def _extra_cell(m: Metric, e: Entry) -> str:
    d = e.details
    if m.kind == "tcp" and "retransmits" in d:
        return fmt_number(d["retransmits"], "MB")
    if m.kind == "udp" and "loss_percent" in d:
        return f"{fmt_number(d['loss_percent'])} %"
    if m.kind == "latency":
        if d.get("achieved_rate_per_s") is None:
            return ""
        text = f"{fmt_number(d['achieved_rate_per_s'], 'msg/s')} msg/s"
        if d.get("achieved_percent_of_target") is not None:
            text += f" ({fmt_number(d['achieved_percent_of_target'])} % of target)"
        return text
    if m.kind == "rr":
        p = d.get("percentiles_us") or {}
        return " / ".join(fmt_number(p[k], "µs") for k in ("p99", "p99.9") if k in p)
    if m.kind == "cpu":
        cpu = d.get("cpu") or {}
        if cpu.get("client_cpu_seconds_per_gbit") is not None and cpu.get("server_cpu_seconds_per_gbit") is not None:
            return (f"{fmt_number(cpu['client_cpu_seconds_per_gbit'], 'CPU s/Gbit')} / "
                    f"{fmt_number(cpu['server_cpu_seconds_per_gbit'], 'CPU s/Gbit')}")
        if cpu.get("idle_corrected") and cpu.get("client_busy_above_idle_percent") is not None \
                and cpu.get("server_busy_above_idle_percent") is not None:
            return (f"{fmt_number(cpu['client_busy_above_idle_percent'])} % / "
                    f"{fmt_number(cpu['server_busy_above_idle_percent'])} % busy above idle")
        if cpu.get("client_busy_percent") is not None and cpu.get("server_busy_percent") is not None:
            return (f"{fmt_number(cpu['client_busy_percent'])} % / {fmt_number(cpu['server_busy_percent'])} % busy"
                    " (not idle-corrected)")
    return ""


class _Notes:
    def __init__(self) -> None:
        self.items: list[str] = []

    def ref(self, text: str) -> str:
        if text not in self.items:
            self.items.append(text)
        return f"[{self.items.index(text) + 1}]"


def _facts_rows(f: dict[str, Any]) -> list[tuple[str, str]]:
    def join(v: Any) -> str:
        return ", ".join(str(x) for x in v) if isinstance(v, list) else str(v)

    ram = (f"{fmt_number(float(f['ram_total_mb']), 'MB')} MB" if f.get("ram_total_mb") else
           f"{fmt_number(float(f['ram_used_mb']), 'MB')} MB used at idle (knb)" if f.get("ram_used_mb") else "")
    rows = [("origin", f.get("origin")), ("host / nodes", f.get("host")), ("instance type", f.get("instance_type")),
            ("region", f.get("region")),
            ("cluster (context, API server)", ", ".join(str(x) for x in (f.get("cluster_name"), f.get("cluster")) if x)
             or None),
            ("kernel", f.get("kernel")), ("CPUs", f.get("cpus")),
            ("CPU model", str(f["cpu_model"]).strip() if f.get("cpu_model") else None), ("RAM", ram),
            ("underlay MTU", f.get("underlay_mtu")), ("pod MTU (knb: server pod)", f.get("pod_mtu")), ("Kubernetes", f.get("kubernetes_version")),
            ("run", f.get("run_id")), ("run date", f.get("run_date")), ("repetitions", f.get("repetitions"))]
    return [(k, join(v)) for k, v in rows if v not in (None, "", [])]


def markdown(comp: Comparison, charts: dict[str, dict[str, Path]] | None = None, base: Path | None = None) -> str:
    """The report for people: the summary per environment first, then per environment its
    facts, every validity warning, and one table (and chart) per metric."""
    charts = charts or {}
    lines = ["# cnibench comparison", "",
             "Figures are compared only within an environment (same machines, same run; a cloud group: one "
             "instance type, one node pair per variant). *vs best* is the ratio to the best variant of the same "
             "group and *vs host* to the host network of the same run, each with its 95 % interval from paired "
             "repetitions in brackets; a value's interval is the 95 % CI of the median (with 6 or more repetitions) or "
             "the min–max of the repetitions. An invalid or failed measurement is shown as such, with its reason, "
             "never as a number.", "", "## Summary", ""]
    for g in comp.groups:
        lines.append(f"**{_md(g.title)}**")
        lines.append("")
        lines += [f"- {sentence}" for sentence in g.summary]
        lines += [f"- ⚠ {_md(w)}" for w in g.warnings]
        lines.append("")
    lines += ["## Sources", "", "| id | origin | run | environment | file | copy |", "|---|---|---|---|---|---|"]
    for s in comp.sources:
        lines.append(f"| {s.id} | {s.origin} | {_md(s.run_id)} | {_md(comp.group_of(s.id).id)} | "
                     f"{_md(s.path or '')} | results/{s.id}.json |")
    if comp.skipped:
        lines += ["", "Not read (each with its reason on stderr when the report was made):", ""]
        lines += [f"- {_md(p)}" for p, _ in comp.skipped]
    for g in comp.groups:
        notes = _Notes()
        lines += ["", f"## {_md(g.title)}", "", f"Group `{g.id}`; sources: {', '.join(s.id for s in g.sources)}.", "",
                  "| fact | value |", "|---|---|"]
        lines += [f"| {k} | {_md(v)} |" for k, v in _facts_rows(g.facts)]
        if g.not_measured:
            lines += ["", "Not measured:", ""]
            lines += [f"- {_md(_src.status_note(s, st, r))}" for s, st, r in g.not_measured]
        if g.warnings:
            lines += ["", "**Validity warnings**", ""] + [f"- ⚠ {_md(w)}" for w in g.warnings]
        for m in g.metrics:
            better = "higher is better" if m.higher_is_better else "lower is better"
            extra = _extra_header(m)
            lines += ["", f"### {_md(m.title)}", "",
                      f"`{m.id}`, {m.unit}, {better}" + (f"; {_md(m.statistic)}" if m.statistic else "") + ".", "",
                      f"| rank | subject | {m.unit} | interval | vs best | vs host |"
                      + (f" {extra} |" if extra else "") + " notes |",
                      "|---|---|---|---|---|---|" + ("---|" if extra else "") + "---|"]
            for e in m.entries:
                if e.valid:
                    rank = str(e.rank) if e.rank else ("ref." if e.reference else "–")
                    iv = (f"{fmt_number(e.interval[0], m.unit)}–{fmt_number(e.interval[1], m.unit)}"
                          + (" ¹" if e.interval_kind and e.interval_kind.startswith("min") else "")) if e.interval else ""
                    note = notes.ref(e.warning) + " ⚠" if e.warning else ""
                    cells = [rank, _md(e.subject), fmt_number(e.value, m.unit), iv,
                             _ratio_cell(e.vs_best, best=e.rank == 1), "reference" if e.reference else
                             _ratio_cell(e.vs_host)]
                else:
                    note = notes.ref(e.reason or e.status)
                    cells = ["–", _md(e.subject), STATUS_MARK.get(e.status, e.status), "", "", ""]
                if extra:
                    cells.append(_extra_cell(m, e) if e.valid else "")
                cells.append(note)
                lines.append("| " + " | ".join(cells) + " |")
            chart = (charts.get(g.id) or {}).get(m.id)
            if chart is not None:
                lines += ["", f"![{_md(m.title)}]({_rel(chart, base)})"]
        overview = {k: v for k, v in (charts.get(g.id) or {}).items() if k.startswith(("throughput", "cpu"))
                    and g.metric(k) is None}
        for k, v in overview.items():
            lines += ["", f"![{k}]({_rel(v, base)})"]
        profiles = {k: v for k, v in (charts.get(g.id) or {}).items() if k.startswith("latency-profile-")}
        if profiles:
            lines += ["", "### Latency percentile profiles", "",
                      "p50 to p99.9 per subject at each load level (log axis), with the load each one achieved."]
            lines += [f"\n![{_md(k)}]({_rel(v, base)})" for k, v in profiles.items()]
        if notes.items:
            lines += ["", "Notes:", ""] + [f"{i}. {_md(t)}" for i, t in enumerate(notes.items, 1)]
        lines += ["", "¹ min–max of the repetitions: too few repetitions (< 6) for a 95 % interval of the median."]
    return "\n".join(lines) + "\n"


def _rel(path: Path, base: Path | None) -> str:
    return Path(os.path.relpath(path, base) if base else path.name).as_posix()


# --------------------------------------------------------------------------- CSV

CSV_FIELDS = (
    "group", "source", "origin", "run_id", "subject", "variant", "reference", "metric", "test", "kind", "path",
    "unit", "higher_is_better", "status", "reason", "warning", "rank", "value", "interval_low", "interval_high",
    "interval_kind", "n", "cv_percent", "vs_best", "vs_best_low", "vs_best_high", "vs_host", "vs_host_low",
    "vs_host_high", "ratio_pairs", "tcp_retransmits", "udp_loss_percent", "load_percent_of_host_max",
    "target_rate_per_s", "achieved_rate_per_s", "achieved_percent_of_target", "p50_us", "p90_us", "p99_us",
    "p99.9_us", "cpu_s_per_gbit", "client_cpu_s_per_gbit", "server_cpu_s_per_gbit", "busy_percent",
    "busy_above_idle_percent",
    "client_busy_percent", "server_busy_percent", "cpu_idle_corrected", "observed_mtu_bytes", "kernel", "cpus",
    "instance_type", "underlay_mtu_bytes", "pod_mtu_bytes", "ram_total_mb", "ram_used_mb", "run_date",
)


def rows(comp: Comparison) -> list[dict[str, Any]]:
    """One row per (group, metric, entry); values rounded to their resolution; an entry with no
    valid figure has every figure empty and its status and reason filled."""
    out = []
    for g in comp.groups:
        srcs = {s.id: s for s in g.sources}
        for m in g.metrics:
            for e in m.entries:
                src = srcs.get(e.source)
                f = environment_facts(src.doc) if src else {}
                row: dict[str, Any] = {
                    "group": g.id, "source": e.source, "origin": src.origin if src else "", "run_id":
                    src.run_id if src else "", "subject": e.subject, "variant": e.variant or "",
                    "reference": "yes" if e.reference else "no", "metric": m.id, "test": m.test, "kind": m.kind,
                    "path": e.path or "", "unit": m.unit, "higher_is_better": "yes" if m.higher_is_better else "no",
                    "status": e.status, "reason": e.reason or "", "warning": e.warning or "",
                    "kernel": f.get("kernel"), "cpus": f.get("cpus"), "instance_type": f.get("instance_type"),
                    "underlay_mtu_bytes": f.get("underlay_mtu"), "pod_mtu_bytes": f.get("pod_mtu"),
                    "ram_total_mb": rounded(f.get("ram_total_mb"), "MB"),
                    "ram_used_mb": rounded(f.get("ram_used_mb"), "MB"), "run_date": f.get("run_date"),
                }
                if e.valid:
                    d, cpu = e.details, e.details.get("cpu") or {}
                    pct = d.get("percentiles_us") or {}
                    row.update(
                        rank=e.rank, value=rounded(e.value, m.unit),
                        interval_low=rounded(e.interval[0], m.unit) if e.interval else None,
                        interval_high=rounded(e.interval[1], m.unit) if e.interval else None,
                        interval_kind=e.interval_kind, n=e.n, cv_percent=rounded(100 * e.cv, "%") if e.cv else None,
                        tcp_retransmits=rounded(d.get("retransmits"), "msg/s"),
                        udp_loss_percent=rounded(d.get("loss_percent"), "%"),
                        load_percent_of_host_max=rounded(d.get("load_percent_of_host_max"), "%"),
                        target_rate_per_s=rounded(d.get("target_rate_per_s"), "transactions/s"),
                        achieved_rate_per_s=rounded(d.get("achieved_rate_per_s"), "transactions/s"),
                        achieved_percent_of_target=rounded(d.get("achieved_percent_of_target"), "%"),
                        cpu_s_per_gbit=rounded(cpu.get("cpu_seconds_per_gbit"), "CPU s/Gbit"),
                        client_cpu_s_per_gbit=rounded(cpu.get("client_cpu_seconds_per_gbit"), "CPU s/Gbit"),
                        server_cpu_s_per_gbit=rounded(cpu.get("server_cpu_seconds_per_gbit"), "CPU s/Gbit"),
                        busy_percent=rounded(cpu.get("busy_percent"), "%"),
                        busy_above_idle_percent=rounded(cpu.get("busy_above_idle_percent"), "%"),
                        client_busy_percent=rounded(cpu.get("client_busy_percent"), "%"),
                        server_busy_percent=rounded(cpu.get("server_busy_percent"), "%"),
                        cpu_idle_corrected=("yes" if cpu.get("idle_corrected") else "no" if "idle_corrected" in cpu
                                            else None),
                        observed_mtu_bytes=d.get("observed_mtu"),
                    )
                    for k in PERCENTILES:
                        row[f"{k}_us"] = rounded(pct.get(k), "µs")
                    for name, r in (("vs_best", e.vs_best), ("vs_host", e.vs_host)):
                        if r is not None:
                            row[name] = rounded(r.estimate, "ratio")
                            row[f"{name}_low"], row[f"{name}_high"] = rounded(r.low, "ratio"), rounded(r.high, "ratio")
                    if e.vs_host is not None:
                        row["ratio_pairs"] = e.vs_host.n
                out.append(row)
    return out


def write_csv(table: Sequence[dict[str, Any]], path: Path) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in table:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_FIELDS})
    path.write_text(buf.getvalue())
    return path


def to_json(comp: Comparison) -> str:
    """The comparison as JSON (no NaN: every figure is a finite number or null)."""
    return json.dumps(comp.as_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


# --------------------------------------------------------------------------- report


def load_results(paths: Iterable[str | Path]) -> list[Source]:
    """Read and check every document (:class:`cnibench.results.DocumentError` names the bad one;
    :func:`cnibench.report.checks.read`: also what a report needs beyond the schema)."""
    return [Source(checks.read(p), Path(p)) for p in paths]


def _previous_outputs(out: Path) -> list[str]:
    outputs = _src.report_outputs(out)
    return [o for o in outputs or () if o and not o.endswith("/")]


def _write_marker(out: Path, outputs: Sequence[str]) -> Path:
    from cnibench import __version__

    marker = out / MARKER
    marker.write_text(json.dumps({
        "written_by": f"cnibench {__version__} report",
        "note": "a cnibench report: cnibench report never reads the files listed here as inputs",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "outputs": sorted(outputs)}, indent=2) + "\n")
    return marker


def write_report(found: Sequence[Source] | Comparison, out_dir: str | Path) -> dict[str, Any]:
    """Write the comparison into ``out_dir``; returns the written paths (``markdown``, ``csv``,
    ``json``, ``charts`` {group: {chart: path}}, ``results`` (the copies), ``comparison``).

    The marker is written first (listing ``results/`` and the files of this report), so an
    interrupted report is never read as input either; files an earlier report in ``out_dir``
    wrote and this one does not are removed (only those the earlier marker lists)."""
    from cnibench.report import charts as _charts

    comp = found if isinstance(found, Comparison) else build(found)
    if not comp.sources:
        raise ValueError("no result documents to compare")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    previous = _previous_outputs(out)
    _write_marker(out, ["results/", "charts/", "comparison.md", "comparison.csv", "comparison.json", *previous])
    (out / "results").mkdir(exist_ok=True)
    copies = [results.write_json(s.doc, out / "results" / f"{s.id}.json") for s in comp.sources]
    written_charts = _charts.write_charts(comp, out / "charts")
    csv_path = write_csv(rows(comp), out / "comparison.csv")
    md_path = out / "comparison.md"
    json_path = out / "comparison.json"
    comp.outputs = {"markdown": md_path, "csv": csv_path, "json": json_path, "charts": written_charts,
                    "results": copies}
    md_path.write_text(markdown(comp, written_charts, out))
    json_path.write_text(to_json(comp))
    now = {p.relative_to(out).as_posix() for p in [md_path, csv_path, json_path, *copies]}
    now |= {p.relative_to(out).as_posix() for per in written_charts.values() for p in per.values()}
    for rel in previous:
        stale = out / rel
        if rel not in now and stale.is_file() and not stale.is_symlink() \
                and out.resolve() in stale.resolve().parents:
            stale.unlink()
    _write_marker(out, ["results/", *sorted(now)])
    return {**comp.outputs, "comparison": comp}
