"""Every tool-output parser, used by the lab and the cloud suite alike: iperf3 ``-J`` JSON,
sockperf's text report, wrk's line from ``wrk-report.lua``, ``/proc/stat`` and
``/proc/meminfo`` snapshots. Each raises
:class:`~cnibench.errors.ParseError` naming the tool and what was wrong. Tested on output captured
on this project's machines (``tests/data``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

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
    block_size: int | None = None  # start.test_start.blksize: the UDP datagram payload (-l)
    tcp_mss: int | None = None
    cpu_host_percent: float | None = None
    cpu_remote_percent: float | None = None
    packets: int | None = None  # UDP only: datagrams sent in the measured (not omitted) time
    lost_packets: int | None = None  # UDP only
    omitted_s: float = 0.0  # -O: seconds at the start left out of every figure above

    @property
    def gbit_per_second(self) -> float:
        return self.bits_per_second / 1e9


def parse_iperf3(text: str | bytes | dict) -> Iperf3Result:
    """Parse the output of ``iperf3 -J`` (client side, TCP or UDP, one or more streams).

    The figure is the receiver-side rate (``end.sum_received``): for UDP the sender rate
    counts datagrams that were lost. Raises :class:`ParseError` with iperf3's own error
    message when the run failed (iperf3 then prints a JSON document with ``error``).

    ``-O N``: iperf3 marks the first N seconds' ``intervals`` ``"omitted": true`` and leaves them out
    of ``end`` already (its byte counters and clocks restart when the omit period ends; the only
    trace in ``end`` is the shorter ``seconds``), so nothing is subtracted here; ``omitted_s`` is
    ``start.test_start.omit``. One exception, UDP loss: an iperf3 3.12 client counts the datagrams
    lost during the omitted seconds too (it takes the server's whole-run error count, see
    ``iperf_get_results``/``iperf_print_results`` in 3.12's src/iperf_api.c; the server's own report
    excludes them; later releases exchange the omitted counts) but divides by the datagrams of the
    measured time only, which overstates ``lost_percent``. Every UDP datagram carries ``blksize``
    bytes, and without ``-O`` iperf3's figures satisfy ``packets - lost_packets == bytes / blksize``
    exactly (checked on every capture in tests/data); so with ``-O`` the loss is recomputed from
    the received bytes: ``lost_packets = packets - bytes // blksize``.
    """
    if isinstance(text, dict):
        doc = text
    else:
        try:
            doc = json.loads(text)
        except (TypeError, ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            snippet = (text[:200] if isinstance(text, str) else repr(text[:200])).strip()
            raise ParseError(f"iperf3: output is not JSON ({exc}): {snippet!r}") from exc
    if not isinstance(doc, dict):
        raise ParseError("iperf3: JSON document is not an object")
    if doc.get("error"):
        raise ParseError(f"iperf3: {doc['error']}")
    try:
        return _iperf3_result(doc)
    except ParseError:
        raise
    except (AttributeError, TypeError, ValueError, OverflowError) as exc:  # a member of the wrong JSON type
        raise ParseError(f"iperf3: not the JSON of iperf3 -J ({type(exc).__name__}: {exc})") from exc


def _iperf3_result(doc: dict[str, Any]) -> Iperf3Result:
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
    omitted_s = float(test_start.get("omit") or 0)
    blksize = test_start.get("blksize")
    packets = lost_packets = lost_percent = None
    if protocol == "UDP":
        packets, lost_packets, lost_percent = received.get("packets"), received.get("lost_packets"), received.get("lost_percent")
        if omitted_s > 0 and isinstance(blksize, int) and blksize > 0 and isinstance(packets, int) and packets > 0:
            lost_packets = max(0, packets - int(received.get("bytes") or 0) // blksize)
            lost_percent = 100.0 * lost_packets / packets
    return Iperf3Result(
        protocol=protocol,
        streams=int(test_start.get("num_streams") or len(end.get("streams") or []) or 1),
        duration_s=float(received.get("seconds") or received.get("end") or 0.0),
        bits_per_second=float(received["bits_per_second"]),
        sender_bits_per_second=float(sent.get("bits_per_second", received["bits_per_second"])),
        bytes_received=int(received.get("bytes") or 0),
        retransmits=sent.get("retransmits") if protocol == "TCP" else None,
        lost_percent=lost_percent,
        jitter_ms=received.get("jitter_ms") if protocol == "UDP" else None,
        block_size=blksize,
        tcp_mss=start.get("tcp_mss_default") or start.get("tcp_mss"),
        cpu_host_percent=cpu.get("host_total"),
        cpu_remote_percent=cpu.get("remote_total"),
        packets=packets,
        lost_packets=lost_packets,
        omitted_s=omitted_s,
    )


# --------------------------------------------------------------------------- hey


USER_HZ = 100  # /proc/stat counts in USER_HZ, 100 on every Linux architecture cnibench targets


def proc_stat_cpu(line: str) -> tuple[int, int]:
    """The aggregate ``cpu`` line of ``/proc/stat`` -> (busy, total) in clock ticks.

    Busy is everything but idle and iowait; total is user..steal (guest time is already counted
    in user, see proc(5))."""
    parts = line.split()
    if not parts or parts[0] != "cpu" or len(parts) < 5:
        raise ParseError(f"/proc/stat: not the aggregate cpu line: {line[:60]!r}")
    try:
        fields = [int(x) for x in parts[1:9]]
    except ValueError:
        raise ParseError(f"/proc/stat: a field of the cpu line is not a whole number: {line[:60]!r}") from None
    if not all(0 <= f < 2**64 for f in fields):  # the kernel prints unsigned 64-bit counters
        raise ParseError(f"/proc/stat: a field of the cpu line is not a tick count: {line[:60]!r}")
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
            try:
                out[parts[0][:-1]] = float(parts[1])  # kB
            except ValueError:
                raise ParseError(f"/proc/meminfo: {parts[0]} is not a number: {line[:60]!r}") from None
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


# --------------------------------------------------------------------------- sockperf
#
# Read against sockperf 3.7 (Debian 12's package; github.com/Mellanox/sockperf tag 3.7, src/client.cpp,
# src/defs.h, src/sockperf.cpp) and captures in tests/data/sockperf-*.txt. What matters when reading it:
# * The smallest message sockperf accepts is 14 bytes (``-m 1`` .. ``-m 13``: "'-m' Invalid message
#   size: 1 (min: 14)"): MIN_PAYLOAD_SIZE is its message header (64-bit sequence number, 16-bit
#   flags, 32-bit length). UDP allows up to 65507.
# * Its exit status says nothing: 3.7 exits 0 after refusing its arguments (it prints the help), after
#   "Can`t connect socket" and after "No messages were received from the server". Only the text tells.
# * Latencies are one-way, half the measured round trip, unless ``--full-rtt`` ("avg-rtt", "Round trip").
# * The [Valid Duration] leaves out the first 400 ms and the last 50 ms of the run
#   (TEST_START_WARMUP_MSEC, TEST_END_COOLDOWN_MSEC): ``-t 1`` measures about 0.55 s.
# * Its SentMessages is a span of sequence numbers (every message sent), its ReceivedMessages the
#   replies that gave a latency observation. under-load asks for a reply to every Nth message only
#   (``--reply-every``, default 100), so there observations + dropped = sent / N.
# * Percentiles are nearest-rank (index round(p * n) - 1 of the sorted observations), printed only
#   when that index exists.

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_escapes(text: str) -> str:
    """``text`` without terminal colour escapes (sockperf colours its output)."""
    return _ANSI_ESCAPE.sub("", text or "")
_SP_NUM = r"([0-9]+(?:\.[0-9]+)?)"
_SP_PEER = re.compile(r"IP = (\S+)\s+PORT =\s*(\d+)\s*#\s*(TCP|UDP)\b")
_SP_VALID = re.compile(rf"\[Valid Duration\] RunTime={_SP_NUM} sec; SentMessages=(\d+); ReceivedMessages=(\d+)")
_SP_AVG = re.compile(rf"====> avg-(latency|rtt)={_SP_NUM} \(std-dev={_SP_NUM}\)")
_SP_ERRS = re.compile(r"# dropped messages = (\d+); # duplicated messages = (\d+); # out-of-order messages = (\d+)")
_SP_OBS = re.compile(r"Total (\d+) observations")
_SP_MAX = re.compile(rf"---> <MAX> observation =\s*{_SP_NUM}")
_SP_MIN = re.compile(rf"---> <MIN> observation =\s*{_SP_NUM}")
_SP_PCT = re.compile(rf"---> percentile\s+{_SP_NUM}\s*=\s*{_SP_NUM}")
_SP_STREAM = re.compile(rf"Total of (\d+) messages sent in {_SP_NUM} sec")
_SP_RATE = re.compile(r"Summary: Message Rate is (\d+) \[msg/sec\]")
_SP_NOTE = re.compile(r"^(?:sockperf: )?((?:Info|NOTE|WARNING|Warning): .*)$", re.MULTILINE)
SOCKPERF_MODES = ("ping-pong", "under-load", "throughput")


@dataclass(frozen=True)
class SockperfResult:
    mode: str  # "ping-pong" | "under-load" | "throughput"
    protocol: str  # "tcp" | "udp"
    runtime_s: float  # the [Valid Duration] RunTime (warm-up excluded); throughput: the whole run
    sent: int  # SentMessages of the valid duration
    received: int  # ReceivedMessages of the valid duration (0 for throughput)
    observations: int  # latency observations (0 for throughput)
    avg_us: float | None
    stdev_us: float | None
    min_us: float | None
    max_us: float | None
    percentiles_us: dict[str, float]  # "p25" .. "p99.999", the ones sockperf printed
    dropped: int
    duplicated: int
    out_of_order: int
    message_rate: float  # sent / runtime_s (msg/s); throughput: the printed "Message Rate"
    full_rtt: bool = False  # --full-rtt: the latencies are round trips, not halves of them
    notes: tuple[str, ...] = ()  # sockperf's Info/NOTE/WARNING lines, e.g. "requested ... rate is too high"

    @property
    def transaction_rate(self) -> float:
        """Replies per second: round trips per second in ping-pong (0 for throughput)."""
        return self.received / self.runtime_s if self.runtime_s > 0 else 0.0


def _sockperf_tail(text: str, lines: int = 4) -> str:
    kept = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(kept[-lines:]) or "(no output)"


def parse_sockperf(text: str, mode: str | None = None) -> SockperfResult:
    """Parse a sockperf client's report (stdout and stderr together, colour escapes and all).

    ``mode`` is the sockperf subcommand; the report does not name it. Without it a report with
    "Total of N messages sent" is throughput, one with at most half as many replies as messages sent
    is under-load (``--reply-every`` N > 1: observations = sent / N, less what was dropped), any
    other ping-pong; pass it for under-load with ``--reply-every 1``. Raises :class:`ParseError`
    naming what sockperf said when it measured nothing: refused arguments, a connection refused, no
    reply from the server ("Is the server down?"), no valid observation. Its exit status is 0 in all
    these cases, so this is the check. One server only (a ``-f`` file of several is refused).
    """
    if mode is not None and mode not in SOCKPERF_MODES:
        raise ValueError(f"sockperf mode must be one of {SOCKPERF_MODES}, not {mode!r}")
    try:
        return _parse_sockperf(text, mode)
    except ParseError:
        raise
    except (ValueError, OverflowError) as exc:  # a count of over 4300 digits (int() refuses it) or beyond a float
        raise ParseError(f"sockperf: a number in the report is out of range ({exc})") from None


def _parse_sockperf(text: str, mode: str | None) -> SockperfResult:
    clean = strip_escapes(text).replace("\r", "")
    if not clean.strip():
        raise ParseError("sockperf: empty output")
    if "Usage: sockperf" in clean:
        first = next((ln for ln in clean.splitlines() if ln.strip()), "")
        raise ParseError(f"sockperf: arguments refused: {first.strip().removeprefix('sockperf: ')}")
    peer = _SP_PEER.search(clean)
    where = f" ({peer.group(1)}:{peer.group(2)} {peer.group(3)})" if peer else ""
    err = re.search(r"ERROR:\s*(.+)", clean)
    if err:
        hint = " (is a sockperf server listening there?)" if "connect" in err.group(1) else ""
        raise ParseError(f"sockperf: {err.group(1).strip()}{where}{hint}")
    if "Is the server down?" in clean:
        raise ParseError(f"sockperf: no reply from the server{where}: no server listening, or replies blocked")
    for said in ("No valid observations found", "No messages were sent", "test failed because of an exception"):
        if said in clean:
            line = next(ln for ln in clean.splitlines() if said in ln)
            raise ParseError(f"sockperf: {line.removeprefix('sockperf: ').strip()}{where}")
    if not peer:
        raise ParseError(f"sockperf: no 'IP = .. PORT = .. # TCP|UDP' line (not a sockperf client report?): {_sockperf_tail(clean)}")
    protocol = peer.group(3).lower()
    notes = tuple(m.group(1).strip() for m in _SP_NOTE.finditer(clean))

    stream = _SP_STREAM.search(clean)
    if stream and mode in (None, "throughput"):
        sent, runtime = int(stream.group(1)), float(stream.group(2))
        rate = _SP_RATE.search(clean)
        return SockperfResult(
            mode="throughput", protocol=protocol, runtime_s=runtime, sent=sent, received=0, observations=0,
            avg_us=None, stdev_us=None, min_us=None, max_us=None, percentiles_us={},
            dropped=0, duplicated=0, out_of_order=0,
            message_rate=float(rate.group(1)) if rate else (sent / runtime if runtime > 0 else 0.0),
            notes=notes,
        )
    if mode == "throughput":
        raise ParseError(f"sockperf: no 'Total of N messages sent' line in a throughput report: {_sockperf_tail(clean)}")
    if clean.count("Printing statistics for Server No:") > 1:
        raise ParseError("sockperf: the report covers several servers; parse_sockperf reads one")
    valid = _SP_VALID.search(clean)
    if not valid:
        raise ParseError(f"sockperf: no '[Valid Duration]' line (interrupted run?): {_sockperf_tail(clean)}")
    runtime, sent, received = float(valid.group(1)), int(valid.group(2)), int(valid.group(3))
    missing = [name for name, rx in (("avg-latency", _SP_AVG), ("dropped messages", _SP_ERRS),
                                     ("observations", _SP_OBS), ("<MAX>", _SP_MAX), ("<MIN>", _SP_MIN))
               if not rx.search(clean)]
    if missing:
        raise ParseError(f"sockperf: report without {', '.join(missing)} (truncated output?): {_sockperf_tail(clean)}")
    avg, errs, obs = _SP_AVG.search(clean), _SP_ERRS.search(clean), _SP_OBS.search(clean)
    mx, mn = _SP_MAX.search(clean), _SP_MIN.search(clean)
    assert avg and errs and obs and mx and mn  # checked just above
    percentiles = {f"p{float(p):g}": float(v) for p, v in _SP_PCT.findall(clean)}
    if mode is None:
        mode = "under-load" if received * 2 <= sent else "ping-pong"
    return SockperfResult(
        mode=mode, protocol=protocol, runtime_s=runtime, sent=sent, received=received,
        observations=int(obs.group(1)), avg_us=float(avg.group(2)), stdev_us=float(avg.group(3)),
        min_us=float(mn.group(1)), max_us=float(mx.group(1)), percentiles_us=percentiles,
        dropped=int(errs.group(1)), duplicated=int(errs.group(2)), out_of_order=int(errs.group(3)),
        message_rate=sent / runtime if runtime > 0 else 0.0,
        full_rtt=avg.group(1) == "rtt", notes=notes,
    )


def percentile_rank(key: str) -> float:
    """A percentile key of these parsers -> its rank: ``"p99.9"`` -> 99.9, ``"p50"`` -> 50.0."""
    m = re.fullmatch(r"p(\d+(?:\.\d+)?)", key)
    if not m or not 0 <= float(m.group(1)) <= 100:
        raise ValueError(f"not a percentile key like 'p99.9': {key!r}")
    return float(m.group(1))


# --------------------------------------------------------------------------- wrk

WRK_MARKER = "CNIBENCH-WRK "
WRK_ERROR_KINDS = ("connect", "read", "write", "status", "timeout")
WRK_LATENCY_KEYS = ("min", "mean", "stdev", "max", "p50", "p90", "p99", "p99.9", "p99.99")


@dataclass(frozen=True)
class WrkResult:
    requests: int  # completed requests, whatever their HTTP status
    duration_s: float
    bytes: int  # bytes read, headers included
    errors: dict[str, int]  # connect, read, write, status, timeout
    latency_us: dict[str, float]  # "min","mean","stdev","max","p50","p90","p99","p99.9","p99.99"
    latency_samples: int | None = None  # histogram count, wrk's coordinated-omission correction included

    @property
    def rate(self) -> float:
        """Completed requests per second."""
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def parse_wrk(text: str) -> WrkResult:
    """Parse the ``CNIBENCH-WRK {json}`` line that ``cnibench/suite/runner/wrk-report.lua`` prints.

    From wrk 4.1.0's sources (github.com/wg/wrk, src/wrk.c, src/net.c, src/stats.c):

    * latency runs from the first write of a request (``socket_writeable`` sets ``c->start``) to
      the end of its response (``response_complete``). A new connection's TCP handshake comes
      before: ``socket_connected`` arms the write only once the non-blocking connect has completed.
      So with ``Connection: close`` (a new connection per request) the connect is *not* in the
      latency; it only lowers the request rate.
    * values are whole microseconds. Before ``done()`` wrk adds synthetic samples for responses
      slower than twice the mean interval (``stats_correct``, coordinated omission), so percentiles
      are of ``latency_samples`` >= ``requests`` values.
    * ``requests`` counts every completed response; ``errors["status"]`` those with a status > 399.
      A refused connection shows as a *write* (or read) error, not a connect error: connect errors
      count only a ``connect()`` failing at once (e.g. no free local port). ``timeout`` counts
      responses slower than ``--timeout`` (default 2 s); a request never answered is not counted.
    * against a port where nothing listens wrk does not run at all: it prints "unable to connect
      to HOST:PORT Connection refused" and exits 1, without calling ``done()``.

    Raises :class:`ParseError` when the line is absent (with the tail of wrk's output), when no
    request completed, or when every response was an HTTP error; partial errors are the caller's
    to judge (``error_count``).
    """
    lines = [ln.strip() for ln in (text or "").replace("\r", "").splitlines()]
    marked = [ln for ln in lines if ln.startswith(WRK_MARKER)]
    if not marked:
        tail = " | ".join([ln for ln in lines if ln][-4:]) or "(no output)"
        raise ParseError(f"wrk: no '{WRK_MARKER.strip()}' line (was wrk run with -s wrk-report.lua?); wrk said: {tail}")
    try:
        doc = json.loads(marked[-1][len(WRK_MARKER):])
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise ParseError(f"wrk: the {WRK_MARKER.strip()} line is not JSON ({exc}): {marked[-1][:200]!r}") from exc
    if not isinstance(doc, dict):
        raise ParseError("wrk: the CNIBENCH-WRK document is not an object")

    def number(obj: Any, key: str, where: str) -> float:
        value = obj.get(key) if isinstance(obj, dict) else None
        try:
            result = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
        except OverflowError:  # an integer beyond a float's range
            result = math.nan
        if not math.isfinite(result):
            raise ParseError(f"wrk: {where}{key} missing or not a number ({value!r})")
        return result

    requests = int(number(doc, "requests", ""))
    duration_us = number(doc, "duration_us", "")
    errors = {k: int(number(doc.get("errors"), k, "errors.")) for k in WRK_ERROR_KINDS}
    latency = {k: number(doc.get("latency_us"), k, "latency_us.") for k in WRK_LATENCY_KEYS}
    samples = doc.get("latency_samples")
    if isinstance(samples, float) and not math.isfinite(samples):
        samples = None  # NaN or Infinity, which Python's json reads (wrk-report.lua writes null for them)
    counts = ", ".join(f"{k} {v}" for k, v in errors.items())
    if requests == 0:
        hint = "" if any(errors.values()) else "; a server that accepts but never answers shows as no error at all"
        raise ParseError(f"wrk: no request completed in {duration_us / 1e6:.2f} s (errors: {counts}{hint})")
    if errors["status"] >= requests:
        raise ParseError(f"wrk: every response was an HTTP error (status > 399): {errors['status']} of {requests}")
    if samples == 0:
        raise ParseError(f"wrk: {requests} requests but no latency sample (all slower than --timeout?; errors: {counts})")
    return WrkResult(
        requests=requests, duration_s=duration_us / 1e6, bytes=int(number(doc, "bytes", "")),
        errors=errors, latency_us=latency,
        latency_samples=int(samples) if isinstance(samples, (int, float)) and not isinstance(samples, bool) else None,
    )
