"""The result documents a report compares (:class:`Source`): finding them in files and
directories (never in a report's own outputs), giving each a unique id, the facts of the
environment each was measured in, and the number formats every report part shares."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from cnibench import results
from cnibench.errors import InputError
from cnibench.report import checks

THROUGHPUT_KINDS = ("tcp", "udp")
PERCENTILES = ("p50", "p90", "p99", "p99.9")
ORIGIN_ORDER = {"cloud": 0, "cluster": 1, "lab": 2, "knb": 3}
LATENCY_NAME = re.compile(r"latency-(?P<size>\d+)B-(?P<load>[\d.]+)pct")
#: A report directory holds this file (written first, before any other output): a directory
#: holding it, and everything below it, is never searched for result documents again.
MARKER = ".cnibench-report"
#: what a report directory of a version without the marker held (both files)
LEGACY_OUTPUTS = ("comparison.md", "comparison.csv")


@dataclass(frozen=True)
class Source:
    """One result document, where it came from, and its id in the report (unique per report;
    :func:`assign_ids` gives it). The id names its copy, ``results/<id>.json``."""

    doc: dict[str, Any]
    path: Path | None = None
    id: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def origin(self) -> str:
        return self.doc["origin"]

    @property
    def run_id(self) -> str:
        return self.doc["run_id"]

    @property
    def key(self) -> str:
        """The id (or, before ids are given, the slug of origin and run)."""
        return self.id or base_id(self.doc)

    @property
    def environment(self) -> str:
        return environment_label(self.doc)


# --------------------------------------------------------------------------- ids


def status_note(who: str, word: str, reason: str) -> str:
    """``who: word: reason``, or ``who: reason`` when the reason already says it (the lab's
    ``skipped_reason`` starts with "ipip skipped: ..."): a reader is not told twice."""
    said = reason.startswith((word, f"{who} {word}", f"{who}: {word}"))
    return f"{who}: {reason}" if said else f"{who}: {word}: {reason}"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.") or "run"


def base_id(doc: dict[str, Any]) -> str:
    """``<origin>-<run>``, without the origin repeated (``knb:knb-12885`` -> ``knb-12885``)."""
    origin = slug(str(doc.get("origin", "doc")))
    run = slug(str(doc.get("run_id", "")))
    while run == origin or run.startswith(origin + "-"):
        run = run[len(origin) + 1:]
    return f"{origin}-{run[:60].strip('-.')}" if run else origin


def assign_ids(found: Sequence[Source]) -> list[Source]:
    """Every source with a unique id: the base id, then ``-2``, ``-3``... for later sources
    with the same one (two runs with one run id keep two distinct copies)."""
    seen: set[str] = set()
    out = []
    for src in found:
        base = base_id(src.doc)
        sid, n = base, 1
        while sid in seen:
            n += 1
            sid = f"{base}-{n}"
        seen.add(sid)
        out.append(Source(src.doc, src.path, sid, src.notes))
    return out


# --------------------------------------------------------------------------- environment facts


def _first(*values: Any) -> Any:
    return next((v for v in values if v not in (None, "", "unknown")), None)


def _mtu_from_subjects(doc: dict[str, Any]) -> int | None:
    for s in doc.get("subjects") or []:
        extra = s.get("extra") or {}
        found = _first(s.get("configured_mtu"), extra.get("mtu"))
        if found is None and isinstance(extra.get("discovered_mtu"), str):
            digits = extra["discovered_mtu"].split()
            found = int(digits[0]) if digits and digits[0].isdigit() else None
        if found is not None:
            return int(found)
    return None


def _knb_idle_ram(doc: dict[str, Any]) -> float | None:
    for s in doc.get("subjects") or []:
        idle = (s.get("extra") or {}).get("idle") or {}
        used = [v for v in ((idle.get(w) or {}).get("ram_used_mb") for w in ("client", "server")) if v is not None]
        if used:
            return max(used)
    return None


def environment_facts(doc: dict[str, Any]) -> dict[str, Any]:
    """What a reader needs to know about where a document was measured, each fact ``None`` when
    the document does not say: origin, host, instance type, region, kernel, CPUs, CPU model,
    RAM (total; knb: used at idle), underlay MTU, pod MTU (knb), Kubernetes version, run date, schema.

    knb imports: the pod MTU is the one knb discovered on the server pod
    (``subjects[].configured_mtu``), not the underlay's, which knb does not report; the run date
    ``environment.extra.knb.date_utc`` (knb's own date), else ``created``."""
    env = doc.get("environment") or {}
    extra = env.get("extra") or {}
    nodes = extra.get("nodes") or {}
    server = nodes.get("server") or {}
    knb = extra.get("knb") or {}
    ram_total = _first(env.get("ram_mb"), env.get("memory_mb"), env.get("mem_total_mb"), extra.get("ram_mb"),
                       extra.get("memory_mb"), extra.get("mem_total_mb"), server.get("mem_total_mb"))
    ram_used = _first(extra.get("ram_used_mb"), knb.get("ram_used_mb"), _knb_idle_ram(doc))
    reps = (doc.get("parameters") or {}).get("repetitions") or {}
    return {
        "origin": doc.get("origin"),
        "run_id": doc.get("run_id"),
        "host": _first(env.get("hostname"), server.get("name")),
        "instance_type": _first(env.get("instance_type"), server.get("instance_type"), extra.get("instance")),
        "region": env.get("region"),
        "kernel": _first(env.get("kernel")),
        "cpus": _first(env.get("cpus"), server.get("cpus"), extra.get("cpus")),
        "cpu_model": _first(extra.get("cpu_model"), server.get("cpu_model")),
        "ram_total_mb": ram_total,
        "ram_used_mb": ram_used if ram_total is None else None,
        "underlay_mtu": _first(env.get("underlay_mtu"), extra.get("underlay_mtu"), extra.get("mtu")),
        # knb's "Discovered MTU" is read inside the server pod (ip link of its UP interfaces): the
        # pod's MTU, which an overlay lowers below the underlay's (knb v1.5.0 script, MTU discovery)
        "pod_mtu": _mtu_from_subjects(doc) if doc.get("origin") == "knb" else None,
        "kubernetes_version": _first(extra.get("kubernetes_version")),
        # cluster (`cnibench run`): which cluster, by its API server, and the context's name
        "cluster": _first((extra.get("cluster") or {}).get("server")) if doc.get("origin") == "cluster" else None,
        "cluster_name": _first((extra.get("cluster") or {}).get("context")) if doc.get("origin") == "cluster"
        else None,
        "run_date": _first(extra.get("run_date"), knb.get("date_utc"), doc.get("created")),
        "repetitions": _first(reps.get("done"), (doc.get("parameters") or {}).get("repeat")),
        "schema": str(doc.get("schema_version", "")),
    }


def environment_label(doc: dict[str, Any]) -> str:
    """``c6i.8xlarge us-east-1, Linux 6.8, 32 CPUs, MTU 9001`` / ``lab vm, Linux 6.1, ...``."""
    f = environment_facts(doc)
    if f["instance_type"] and doc.get("origin") == "cloud":
        parts = [" ".join(p for p in (f["instance_type"], f["region"]) if p)]
    elif doc.get("origin") == "cluster":
        k8s = f["kubernetes_version"]
        parts = [f"cluster {f['cluster_name'] or f['host'] or '?'}" + (f" k8s {k8s}" if k8s and len(str(k8s)) < 20
                                                                       else "")]
    elif doc.get("origin") == "knb":
        k8s = f["kubernetes_version"]
        parts = ["knb" + (f" k8s {k8s}" if k8s and len(str(k8s)) < 20 else "")]
    else:
        parts = [f"{doc.get('origin', '?')} {f['host'] or '?'}"]
    if f["kernel"]:
        parts.append(f"Linux {f['kernel']}")
    if f["cpus"]:
        parts.append(f"{f['cpus']} CPUs")
    if f["cpu_model"]:
        parts.append(str(f["cpu_model"]).strip())
    if f["ram_total_mb"]:
        parts.append(f"{fmt_number(float(f['ram_total_mb']) / 1024, 'GiB')} GiB RAM")
    if f["underlay_mtu"]:
        parts.append(f"MTU {f['underlay_mtu']}")
    return ", ".join(parts)


# --------------------------------------------------------------------------- numbers

#: decimals a figure is rounded to, per unit: the resolution of the tool that measures it
#: (iperf3 -f m: 1 Mbit/s; sockperf: ns; wrk/iperf3 rates; the CPU clocks; ICMP: bytes)
RESOLUTION = {"Gbit/s": 3, "µs": 3, "ms": 1, "transactions/s": 1, "requests/s": 1, "msg/s": 0,
              "CPU s/Gbit": 4, "bytes": 0, "%": 2, "% per Gbit/s": 2, "ratio": 3, "MB": 0, "GiB": 1}


def rounded(value: float | None, unit: str) -> float | int | None:
    """``value`` rounded to the resolution of ``unit`` (integers for whole units)."""
    if value is None:
        return None
    digits = RESOLUTION.get(unit, 3)
    return int(round(value)) if digits == 0 else round(float(value), digits)


def fmt_number(value: float | None, unit: str = "") -> str:
    """A figure for people: fixed point, thousands separated, never scientific notation
    (``1500``, ``17.6``, ``0.1012``, ``46,128``); ``""`` for ``None``."""
    if value is None:
        return ""
    v = float(value)
    if unit == "bytes":
        return f"{v:.0f}"
    if unit in ("MB", "msg/s") or abs(v) >= 1000:
        return f"{v:,.0f}"
    if unit == "CPU s/Gbit":
        return f"{v:.3f}" if abs(v) >= 0.1 else f"{v:.4f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 0.01 or v == 0:
        return f"{v:.2f}"
    return f"{v:.4f}"


def fmt_ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}×"


def fmt_percent(fraction: float | None, signed: bool = True) -> str:
    """``-12.3 %`` from a ratio of 0.877 (``fraction`` is the ratio minus 1)."""
    if fraction is None:
        return ""
    p = 100 * fraction
    text = f"{p:+.1f}" if signed else f"{p:.1f}"
    return text.replace("-", "−") + " %"


# --------------------------------------------------------------------------- finding documents


def report_outputs(directory: Path) -> tuple[str, ...] | None:
    """What a ``cnibench report`` wrote into ``directory`` (paths relative to it; a trailing
    ``/`` is a whole directory), from its :data:`MARKER`; for a report written before the marker
    (``comparison.md`` and ``comparison.csv`` side by side) its copies in ``results/``; ``None``
    when ``directory`` holds no report. An unreadable marker counts for the whole directory."""
    marker = directory / MARKER
    try:
        if marker.is_file():
            try:
                data = json.loads(results.read_regular_file(marker, max_bytes=1 << 20, what="report marker"))
                outputs = data.get("outputs") if isinstance(data, dict) else None
                if isinstance(outputs, list) and all(isinstance(o, str) for o in outputs):
                    return tuple(outputs)
            except (ValueError, InputError):
                pass
            return ("",)  # the whole directory
        if all((directory / n).is_file() for n in LEGACY_OUTPUTS):
            return ("results/", "comparison.json")
    except OSError:
        return None
    return None


def _is_listed(rel: str, outputs: Sequence[str]) -> bool:
    return any(o == "" or rel == o or (o.endswith("/") and rel.startswith(o)) for o in outputs)


def report_output_of(path: Path, stop: Path) -> Path | None:
    """The report directory (at or below ``stop``) that wrote ``path``, or ``None``."""
    for parent in path.parents:
        outputs = report_outputs(parent)
        if outputs is not None and _is_listed(path.relative_to(parent).as_posix(), outputs):
            return parent
        if parent == stop or stop not in parent.parents:
            break
    return None


def _candidates(paths: Iterable[Path], exclude: Sequence[Path], skipped: list[tuple[Path, str]]) -> list[Path]:
    files: list[Path] = []
    excluded = {_real(e): e for e in exclude}
    for arg in paths:
        if not arg.is_dir():
            files.append(arg)  # a file named on the command line is read (or refused) as it is
            continue
        reports: dict[Path, int] = {}
        own: dict[Path, int] = {}
        for path in sorted(arg.rglob("*.json")):
            real = _real(path)
            made_by = report_output_of(path, arg)
            inside = next((e for e in excluded if real == e or e in real.parents), None)
            if inside is not None:  # the report's own directory: its earlier outputs silently, else said
                if made_by is None:
                    own[excluded[inside]] = own.get(excluded[inside], 0) + 1
                continue
            if made_by is not None:
                reports[made_by] = reports.get(made_by, 0) + 1
                continue
            if path.is_dir():  # rglob searches it too
                skipped.append((path, "a directory, not a result document (the *.json files in it are searched)"))
                continue
            files.append(path)
        for where, n in reports.items():
            skipped.append((where, f"{n} file(s) an earlier cnibench report wrote (its {MARKER} lists them): "
                                   "not read again"))
        for where, n in own.items():
            skipped.append((where, f"{n} file(s) in the directory this report is written to: not read"))
    return files


def _real(path: Path) -> Path:
    """``path`` with its symbolic links resolved as far as they go (a loop or an unreadable
    link stays as it is: reading it then fails with its reason; ``Path.resolve`` would raise)."""
    return Path(os.path.realpath(path))


def _digest(doc: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def collect(paths: Iterable[str | Path], exclude: Sequence[str | Path] = ()) -> tuple[list[Source], list[tuple[Path, str]]]:
    """Every result document in ``paths`` (files, and ``*.json`` under directories, recursively),
    read once and checked (:func:`cnibench.results.read_document`: regular files only, finite
    numbers, its schema; :mod:`cnibench.report.checks`: subjects, names and figures a report can
    use), and what was skipped with the reason (``matrix.json``, a FIFO, NaN, broken JSON, a
    negative or inconsistent figure, a directory named ``*.json``, a second copy of a document
    already read, an earlier report's outputs).

    What an earlier report wrote (listed in its :data:`MARKER`; a report older than the marker:
    the ``results/`` beside its ``comparison.md`` and ``comparison.csv``) and ``exclude`` (the
    report's own directory) are not searched. A file
    named explicitly is read wherever it lies; one whose content equals a document already read
    (the copy a report made) is skipped, so nothing is ingested twice."""
    skipped: list[tuple[Path, str]] = []
    seen_paths: set[Path] = set()
    digests: dict[str, Path] = {}
    found: list[Source] = []
    for path in _candidates([Path(p) for p in paths], [Path(e) for e in exclude], skipped):
        real = _real(path)
        if real in seen_paths:
            continue
        seen_paths.add(real)
        try:
            doc = checks.read(path)  # also what a report needs beyond the schema (cnibench.report.checks)
        except results.DocumentError as exc:
            skipped.append((path, f"at {exc.where}: {exc.problem}" if exc.where else exc.problem))
            continue
        digest = _digest(doc)
        if digest in digests:
            skipped.append((path, f"the same document as {digests[digest]} (read once)"))
            continue
        digests[digest] = path
        found.append(Source(doc, path))
    return found, skipped
