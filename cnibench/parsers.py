"""Every tool-output parser, used by the lab and the cloud suite alike: iperf3 ``-J`` JSON, hey
(full and reduced CSV), ``/proc/stat`` and ``/proc/meminfo`` snapshots. Each raises
:class:`~cnibench.errors.ParseError` naming the tool and what was wrong. Tested on output captured
on this project's machines (``tests/data``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Sequence

from cnibench.errors import ParseError

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


def parse_hey_histogram(text: str, duration_s: float | None = None) -> LatencyResult:
    """Parse hey's CSV as reduced on the pod by ``hey-reduce.awk``: one row per distinct
    ``(response-time, status-code)`` with its count, then ``# key value`` lines.

    hey prints response times with 4 decimals (0.1 ms), so the reduction loses nothing: the
    figures equal :func:`parse_hey_csv` on the full CSV (same percentile
    definition, same treatment of non-2xx/3xx rows as errors).
    """
    rows: list[tuple[float, int]] = []
    codes: dict[str, int] = {}
    meta: dict[str, str] = {}
    errors = 0
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ParseError("hey: empty output (no header, no requests)")
    if lines[0].split(",")[:3] != ["response-time", "status-code", "count"]:
        raise ParseError(f"hey: not the reduced CSV of hey-reduce.awk (header {lines[0][:60]!r})")
    for line in lines[1:]:
        if line.startswith("#"):
            parts = line[1:].split(None, 1)
            if len(parts) == 2:
                meta[parts[0]] = parts[1]
            continue
        try:
            rt_s, code, count_s = line.split(",")
            rt, count = float(rt_s), int(count_s)
        except ValueError:
            continue
        code = code.strip()
        codes[code] = codes.get(code, 0) + count
        if not code.isdigit() or not 200 <= int(code) < 400:
            errors += count
            continue
        rows.append((rt * 1000.0, count))
    if not rows:
        raise ParseError(f"hey: no successful request (status codes {codes or 'none'})")
    rows.sort()
    n = sum(c for _, c in rows)
    cum: list[int] = []
    total = 0
    for _, c in rows:
        total += c
        cum.append(total)

    def at(index: int) -> float:  # value of the index-th smallest latency
        lo, hi = 0, len(cum) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if cum[mid] > index:
                hi = mid
            else:
                lo = mid + 1
        return rows[lo][0]

    def pct(q: float) -> float:  # same definition as percentile (linear between ranks)
        if n == 1:
            return rows[0][0]
        pos = (n - 1) * q / 100.0
        lo, hi = math.floor(pos), math.ceil(pos)
        a, b = at(lo), at(hi)
        return float(a + (b - a) * (pos - lo))

    try:
        end = float(meta.get("end-max", "0"))
    except ValueError:
        end = 0.0
    span = duration_s if duration_s else (end or 1.0)
    return LatencyResult(
        requests=n, errors=errors, duration_s=span, rate=n / span,
        p50_ms=pct(50), p90_ms=pct(90), p99_ms=pct(99), p999_ms=pct(99.9),
        max_ms=rows[-1][0], mean_ms=sum(v * c for v, c in rows) / n, status_codes=codes,
    )


USER_HZ = 100  # /proc/stat counts in USER_HZ, 100 on every Linux architecture cnibench targets


def proc_stat_cpu(line: str) -> tuple[int, int]:
    """The aggregate ``cpu`` line of ``/proc/stat`` -> (busy, total) in clock ticks.

    Busy is everything but idle and iowait; total is user..steal (guest time is already counted
    in user, see proc(5))."""
    parts = line.split()
    if not parts or parts[0] != "cpu" or len(parts) < 5:
        raise ParseError(f"/proc/stat: not the aggregate cpu line: {line[:60]!r}")
    fields = [int(x) for x in parts[1:9]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields)
    return total - idle, total


def parse_usage_snapshot(text: str) -> dict[str, float] | None:
    """``head -n1 /proc/stat`` + MemTotal/MemAvailable lines -> busy/total jiffies and memory."""
    out: dict[str, float] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu" and len(parts) >= 5:
            busy, total = proc_stat_cpu(line)
            out["total"], out["busy"] = float(total), float(busy)
        elif parts and parts[0] in ("MemTotal:", "MemAvailable:") and len(parts) >= 2:
            out[parts[0][:-1]] = float(parts[1])  # kB
    return out if "total" in out else None


def node_usage(before: str, after: str) -> dict[str, float | None] | None:
    """CPU busy share (percent of the node's CPUs) and used memory (MB) between two snapshots."""
    b, a = parse_usage_snapshot(before), parse_usage_snapshot(after)
    if not b or not a:
        return None
    total = a["total"] - b["total"]
    busy = a["busy"] - b["busy"]
    used = [s["MemTotal"] - s["MemAvailable"] for s in (b, a) if "MemTotal" in s and "MemAvailable" in s]
    return {
        "busy_percent": 100.0 * busy / total if total > 0 else None,
        "cpu_seconds": busy / USER_HZ,
        "mem_used_mb": max(used) / 1024.0 if used else None,
    }


# hey: a latency measurement with more failed requests than this share of all requests is an error
HEY_MAX_ERROR_SHARE = 0.01


def hey_error_problem(res: LatencyResult) -> str | None:
    """The one rule for hey's failed requests (lab and cloud): more than 1 % of all requests."""
    attempted = res.requests + res.errors
    if attempted and res.errors > attempted * HEY_MAX_ERROR_SHARE:
        return f"{res.errors} of {attempted} requests failed ({res.status_codes})"
    return None


def iperf3_details(res: Iperf3Result, target: Any = None) -> dict[str, Any]:
    """The ``details`` of one iperf3 repetition in a result document (lab and cloud)."""
    details: dict[str, Any] = {"sender_gbit_per_second": res.sender_bits_per_second / 1e9,
                               "streams": res.streams, "block_size": res.block_size,
                               "iperf3_cpu_host_percent": res.cpu_host_percent,
                               "iperf3_cpu_remote_percent": res.cpu_remote_percent}
    if target is not None:
        details["target"] = target
    if res.protocol == "UDP":
        details.update(lost_percent=res.lost_percent, jitter_ms=res.jitter_ms)
    else:
        details.update(retransmits=res.retransmits, tcp_mss=res.tcp_mss)
    return details
