"""Result parsing, statistics and the result document (schema v1).

This module is the one place for:

* parsers of tool outputs (iperf3 ``-J`` JSON, hey ``-o csv``); knb and fortio parsers
  belong here too;
* statistics over repetitions (median, min, max, mean, stdev, coefficient of variation)
  and efficiency against the reference subject of the same run;
* building and validating the result document described by
  ``cnibench/schemas/result-v1.schema.json``, shared by the local lab, the cloud
  benchmark and imported knb reports.

It has no dependency on the lab, on Pulumi or on root privileges.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import math
import os
import platform
import socket
import statistics
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Sequence

SCHEMA_VERSION = "1.0"
ORIGINS = ("lab", "cloud", "knb")
KINDS = ("tcp", "udp", "latency", "mtu", "cpu", "rate")
PATHS = ("node-to-node", "pod-to-pod", "pod-to-service", "node-to-service")


class ParseError(ValueError):
    """A tool output could not be understood; the message says which tool and why."""


# --------------------------------------------------------------------------- iperf3


@dataclass(frozen=True)
class Iperf3Result:
    protocol: str  # "TCP" or "UDP"
    streams: int
    duration_s: float
    bits_per_second: float  # receiver side
    sender_bits_per_second: float
    bytes_received: int
    retransmits: int | None = None  # TCP only
    lost_percent: float | None = None  # UDP only
    jitter_ms: float | None = None  # UDP only
    block_size: int | None = None
    tcp_mss: int | None = None
    cpu_host_percent: float | None = None
    cpu_remote_percent: float | None = None

    @property
    def gbit_per_second(self) -> float:
        return self.bits_per_second / 1e9


def parse_iperf3(text: str | bytes | dict) -> Iperf3Result:
    """Parse the output of ``iperf3 -J`` (client side, TCP or UDP, one or more streams).

    The figure is the receiver-side rate (``end.sum_received``): for UDP the sender rate
    counts datagrams that were lost. Raises :class:`ParseError` with iperf3's own error
    message when the run failed (iperf3 then prints a JSON document with ``error``).
    """
    if isinstance(text, dict):
        doc = text
    else:
        try:
            doc = json.loads(text)
        except (TypeError, ValueError) as exc:
            snippet = (text[:200] if isinstance(text, str) else repr(text[:200])).strip()
            raise ParseError(f"iperf3: output is not JSON ({exc}): {snippet!r}") from exc
    if not isinstance(doc, dict):
        raise ParseError("iperf3: JSON document is not an object")
    if doc.get("error"):
        raise ParseError(f"iperf3: {doc['error']}")
    start = doc.get("start") or {}
    end = doc.get("end") or {}
    test_start = start.get("test_start") or {}
    protocol = str(test_start.get("protocol") or ("UDP" if "sum" in end and "jitter_ms" in end.get("sum", {}) else "TCP"))
    received = end.get("sum_received")
    sent = end.get("sum_sent")
    if received is None and protocol == "UDP":
        received = end.get("sum")
    if not received or "bits_per_second" not in received:
        raise ParseError("iperf3: no end.sum_received in output (interrupted run?)")
    sent = sent or end.get("sum") or received
    cpu = end.get("cpu_utilization_percent") or {}
    return Iperf3Result(
        protocol=protocol,
        streams=int(test_start.get("num_streams") or len(end.get("streams") or []) or 1),
        duration_s=float(received.get("seconds") or received.get("end") or 0.0),
        bits_per_second=float(received["bits_per_second"]),
        sender_bits_per_second=float(sent.get("bits_per_second", received["bits_per_second"])),
        bytes_received=int(received.get("bytes") or 0),
        retransmits=sent.get("retransmits") if protocol == "TCP" else None,
        lost_percent=received.get("lost_percent") if protocol == "UDP" else None,
        jitter_ms=received.get("jitter_ms") if protocol == "UDP" else None,
        block_size=test_start.get("blksize"),
        tcp_mss=start.get("tcp_mss_default") or start.get("tcp_mss"),
        cpu_host_percent=cpu.get("host_total"),
        cpu_remote_percent=cpu.get("remote_total"),
    )


# --------------------------------------------------------------------------- hey


@dataclass(frozen=True)
class LatencyResult:
    requests: int
    errors: int  # responses with a status other than 2xx/3xx
    duration_s: float  # span of request start offsets plus the last response time
    rate: float  # completed requests per second
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float
    status_codes: dict[str, int] = field(default_factory=dict)

    def percentiles(self) -> dict[str, float]:
        return {"p50": self.p50_ms, "p90": self.p90_ms, "p99": self.p99_ms, "p99.9": self.p999_ms}


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Percentile ``q`` (0-100) with linear interpolation between closest ranks."""
    if not sorted_values:
        raise ValueError("percentile of an empty sequence")
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    frac = pos - lo
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac)


def parse_hey_csv(text: str, duration_s: float | None = None) -> LatencyResult:
    """Parse ``hey -o csv`` output: one row per request, times in seconds.

    Columns: response-time, DNS+dialup, DNS, Request-write, Response-delay,
    Response-read, status-code, offset. hey prints times with 4 decimals, so latencies
    have a 0.1 ms resolution. Rows with a non-2xx/3xx status count as errors and are
    left out of the percentiles. ``duration_s`` (the ``-z`` value) is used for the
    rate when given; otherwise the span of the offsets is used.
    """
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise ParseError("hey: empty output (no header, no requests)") from None
    header = [h.strip() for h in header]
    if "response-time" not in header or "status-code" not in header:
        raise ParseError(f"hey: not CSV output from 'hey -o csv' (header {header[:4]!r})")
    i_rt = header.index("response-time")
    i_sc = header.index("status-code")
    i_off = header.index("offset") if "offset" in header else None
    lat: list[float] = []
    codes: dict[str, int] = {}
    errors = 0
    last_end = 0.0
    for row in reader:
        if not row or len(row) <= max(i_rt, i_sc):
            continue
        try:
            rt = float(row[i_rt])
        except ValueError:
            continue
        code = row[i_sc].strip()
        codes[code] = codes.get(code, 0) + 1
        if i_off is not None:
            try:
                last_end = max(last_end, float(row[i_off]) + rt)
            except ValueError:
                pass
        if not code.isdigit() or not 200 <= int(code) < 400:
            errors += 1
            continue
        lat.append(rt * 1000.0)
    if not lat:
        raise ParseError(f"hey: no successful request (status codes {codes or 'none'})")
    lat.sort()
    span = duration_s if duration_s else (last_end or 1.0)
    return LatencyResult(
        requests=len(lat),
        errors=errors,
        duration_s=span,
        rate=len(lat) / span,
        p50_ms=percentile(lat, 50),
        p90_ms=percentile(lat, 90),
        p99_ms=percentile(lat, 99),
        p999_ms=percentile(lat, 99.9),
        max_ms=lat[-1],
        mean_ms=statistics.fmean(lat),
        status_codes=codes,
    )


# --------------------------------------------------------------------------- statistics


def summarize(samples: Iterable[float | None]) -> dict[str, Any]:
    """Median, min, max, mean, sample standard deviation and coefficient of variation.

    ``None`` samples (failed repetitions) are ignored. ``cv`` is stdev/mean and is
    ``None`` with fewer than two samples or a zero mean.
    """
    values = [float(v) for v in samples if v is not None and not math.isnan(float(v))]
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None, "mean": None, "stdev": None, "cv": None}
    mean = statistics.fmean(values)
    stdev = statistics.stdev(values) if len(values) > 1 else None
    cv = (stdev / mean) if (stdev is not None and mean) else None
    return {
        "n": len(values),
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "mean": mean,
        "stdev": stdev,
        "cv": cv,
    }


def efficiency(value: float | None, reference: float | None) -> float | None:
    """``value / reference`` (for throughput: 1.0 = as fast as the reference)."""
    if value is None or reference is None or reference == 0:
        return None
    return value / reference


# --------------------------------------------------------------------------- document


def new_test(
    name: str,
    kind: str,
    path: str,
    unit: str,
    *,
    higher_is_better: bool = True,
    reference_test: str | None = None,
) -> dict[str, Any]:
    """A test entry; samples are appended per repetition, then :func:`finalize` fills stats."""
    return {
        "name": name,
        "kind": kind,
        "path": path,
        "unit": unit,
        "higher_is_better": higher_is_better,
        "reference_test": reference_test or name,
        "status": "ok",
        "samples": [],
        "stats": summarize([]),
        "efficiency": None,
        "observed_mtu": None,
        "cpu": None,
        "repetitions": [],
    }


def new_subject(name: str, kind: str, **extra: Any) -> dict[str, Any]:
    subject = {"name": name, "kind": kind, "status": "ok", "tests": []}
    subject.update({k: v for k, v in extra.items() if v is not None})
    return subject


def collect_environment(underlay_mtu: int | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "kernel": platform.release(),
        "hostname": socket.gethostname(),
        "cpus": os.cpu_count() or 1,
        "machine": platform.machine(),
        "underlay_mtu": underlay_mtu,
        "extra": extra,
    }


def new_document(origin: str, *, run_id: str, environment: dict, parameters: dict, reference: str = "host") -> dict[str, Any]:
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {ORIGINS}, not {origin!r}")
    from cnibench import __version__

    return {
        "schema_version": SCHEMA_VERSION,
        "origin": origin,
        "run_id": run_id,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "tool": {"name": "cnibench", "version": __version__},
        "environment": environment,
        "parameters": parameters,
        "reference": reference,
        "subjects": [],
    }


def finalize(doc: dict[str, Any]) -> dict[str, Any]:
    """Compute per-test statistics, CPU summaries and efficiency against the reference.

    Efficiency is the median of a test divided by the median of the reference subject's
    test named by ``reference_test`` in the same document. A test with no successful
    sample and an error keeps ``status: error``.
    """
    for subject in doc["subjects"]:
        for test in subject["tests"]:
            if test["status"] == "skipped":
                continue
            test["stats"] = summarize(test["samples"])
            if test["stats"]["n"] == 0 and test["status"] == "ok":
                test["status"] = "error"
                test.setdefault("error", "no successful repetition")
            cpu_reps = [r.get("cpu") for r in test.get("repetitions", []) if r.get("cpu")]
            if cpu_reps:
                test["cpu"] = {
                    "busy_percent": summarize(c.get("busy_percent") for c in cpu_reps)["median"],
                    "cpu_seconds_per_gbit": summarize(c.get("cpu_seconds_per_gbit") for c in cpu_reps)["median"],
                    "source": cpu_reps[0].get("source", "/proc/stat"),
                }
            mtus = [r.get("observed_mtu") for r in test.get("repetitions", []) if r.get("observed_mtu")]
            if mtus and test.get("observed_mtu") is None:
                test["observed_mtu"] = int(statistics.median_low(mtus))
    ref = next((s for s in doc["subjects"] if s["name"] == doc.get("reference")), None)
    ref_tests = {t["name"]: t for t in ref["tests"]} if ref else {}
    for subject in doc["subjects"]:
        for test in subject["tests"]:
            r = ref_tests.get(test.get("reference_test") or test["name"])
            if r is None or test["status"] == "skipped":
                continue
            test["efficiency"] = efficiency(test["stats"]["median"], r["stats"]["median"])
    return doc


def schema() -> dict[str, Any]:
    text = resources.files("cnibench").joinpath("schemas/result-v1.schema.json").read_text()
    return json.loads(text)


def validate(doc: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``doc`` does not follow schema v1."""
    import jsonschema

    jsonschema.validate(doc, schema(), cls=jsonschema.Draft202012Validator)


def write_json(doc: dict[str, Any], path: str | Path) -> Path:
    validate(doc)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    return path


def load(path: str | Path) -> dict[str, Any]:
    doc = json.loads(Path(path).read_text())
    validate(doc)
    return doc


# --------------------------------------------------------------------------- knb (cnibench.knb)


def parse_knb(text: str | bytes) -> Any:
    """Parse a knb report (``-o json``, ``-o yaml`` or text); see :mod:`cnibench.knb`, which
    also turns it into a result document (``cnibench.knb.to_document``)."""
    from cnibench import knb

    return knb.parse_knb(text)
