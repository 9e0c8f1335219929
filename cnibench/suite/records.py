"""One repetition of a test as the result document records it, from a parsed tool result,
with its validity verdict. The lab and the cloud suite both build their repetitions here, so
one gate judges both.

A repetition record (schema v2, ``$defs/repetition``)::

    {"index": 0, "value": 9.1, "valid": true, "invalid_reason": null, "contaminated": false,
     "percentiles_us": {...}, "details": {...}, "cpu": {...}}

An invalid repetition has ``value: null`` and a reason: its figure is never published.
"""

from __future__ import annotations

from typing import Any

from cnibench import parsers

# The validity gate of open-loop latency (issue 12): the achieved rate must reach 99 % of the
# target and at most 1 % of the messages may be missing (sockperf: dropped, duplicated or out
# of order observations of the replies).
GATE_MIN_RATE_FRACTION = 0.99
GATE_MAX_LOSS_FRACTION = 0.01
# A CPU figure taken while the machine was this busy measures the machine, not the datapath.
SATURATION_FRACTION = 0.95
# HTTP generators: a run with more than 1 % failed requests is not a figure.
MAX_ERROR_FRACTION = 0.01


def new_record(index: int) -> dict[str, Any]:
    return {"index": index, "value": None, "valid": False, "invalid_reason": None, "contaminated": False,
            "details": {}}


def invalid(record: dict[str, Any], reason: str) -> dict[str, Any]:
    record.update(value=None, valid=False, invalid_reason=reason)
    return record


def _valid(record: dict[str, Any], value: float) -> dict[str, Any]:
    record.update(value=value, valid=True, invalid_reason=None)
    return record


def error_record(index: int, message: str) -> dict[str, Any]:
    """A repetition that could not be measured (the tool failed)."""
    rec = invalid(new_record(index), f"error: {message}")
    rec["error"] = message
    return rec


def iperf3_record(index: int, res: parsers.Iperf3Result, *, offered_mbit: float | None = None,
                  target: Any = None) -> dict[str, Any]:
    """Throughput: the receiver's rate. UDP at a fixed offered rate keeps its loss beside it."""
    rec = new_record(index)
    rec["details"] = parsers.iperf3_details(res, target)
    rec["details"]["tool"] = "iperf3"
    if offered_mbit is not None:
        rec["details"]["offered_mbit"] = offered_mbit
    return _valid(rec, res.gbit_per_second)


def rr_record(index: int, res: parsers.SockperfResult) -> dict[str, Any]:
    """Request/response (ping-pong): the median round trip in µs."""
    rec = new_record(index)
    rec["percentiles_us"] = dict(res.percentiles_us)
    rec["details"] = {"tool": "sockperf ping-pong", "observations": res.observations,
                      "transactions_per_s": res.transaction_rate, "avg_us": res.avg_us, "max_us": res.max_us,
                      "runtime_s": res.runtime_s, "dropped": res.dropped}
    p50 = res.percentiles_us.get("p50")
    if p50 is None or res.observations == 0:
        return invalid(rec, "sockperf reported no latency observation")
    return _valid(rec, p50)


def gate(achieved_rate: float, target_rate: float, missing_fraction: float) -> str | None:
    """The validity gate of a constant-rate measurement: None if it passes, else the reason."""
    if target_rate <= 0:
        return "no target rate"
    if achieved_rate < GATE_MIN_RATE_FRACTION * target_rate:
        return (f"load generator behind: achieved {achieved_rate:,.0f} of {target_rate:,.0f} msg/s "
                f"({100 * achieved_rate / target_rate:.1f} %, the gate needs >= {100 * GATE_MIN_RATE_FRACTION:g} %)")
    if missing_fraction > GATE_MAX_LOSS_FRACTION:
        return (f"{100 * missing_fraction:.2f} % of the replies missing (the gate allows "
                f"{100 * GATE_MAX_LOSS_FRACTION:g} %)")
    return None


def under_load_record(index: int, res: parsers.SockperfResult, target_rate: float) -> dict[str, Any]:
    """Latency at a constant offered rate (sockperf under-load): p99 in µs, behind the gate."""
    rec = new_record(index)
    missing = res.dropped + res.duplicated + res.out_of_order
    expected = max(res.observations + missing, 1)
    rec["details"] = {"tool": "sockperf under-load", "target_rate": target_rate, "achieved_rate": res.message_rate,
                      "observations": res.observations, "missing_replies": missing, "runtime_s": res.runtime_s}
    reason = gate(res.message_rate, target_rate, missing / expected)
    if reason:
        return invalid(rec, reason)
    pcts = dict(res.percentiles_us)
    # a percentile needs enough observations to mean anything: p99.9 needs 1,000, p99.99 10,000
    for key, needed in (("p99.9", 1_000), ("p99.99", 10_000), ("p99.999", 100_000)):
        if res.observations < needed:
            pcts.pop(key, None)
    rec["percentiles_us"] = pcts
    if "p99" not in pcts or res.observations < 100:
        return invalid(rec, f"only {res.observations} latency observations: too few for a p99")
    return _valid(rec, pcts["p99"])


def wrk_record(index: int, res: parsers.WrkResult, *, closed_loop: bool = True) -> dict[str, Any]:
    """Connection rate and HTTP: transactions (requests) per second; latency percentiles kept."""
    rec = new_record(index)
    rec["percentiles_us"] = {k: v for k, v in res.latency_us.items() if k.startswith("p")}
    rec["details"] = {"tool": "wrk", "requests": res.requests, "errors": dict(res.errors),
                      "duration_s": res.duration_s, "mean_us": res.latency_us.get("mean"),
                      "max_us": res.latency_us.get("max"),
                      "loop": "closed (wrk waits for each response)" if closed_loop else "open"}
    if res.requests <= 0:
        return invalid(rec, "wrk completed no request")
    if res.error_count > MAX_ERROR_FRACTION * res.requests:
        return invalid(rec, f"{res.error_count} of {res.requests} requests failed ({dict(res.errors)})")
    if res.rate > 0:
        rec["details"]["mean_transaction_us"] = 1e6 / res.rate
    return _valid(rec, res.rate)


def cpu_record(index: int, res: parsers.Iperf3Result, *, target_gbit: float, machine_busy_s: float,
               idle_busy_per_s: float, wall_s: float, cpus: int, sides: dict[str, float | None] | None = None,
               source: str, figure: str = "machine") -> dict[str, Any]:
    """CPU cost at a fixed offered rate.

    ``machine_busy_s`` is the whole machine's busy CPU time during the test (``wall_s``
    long), ``idle_busy_per_s`` the busy CPU seconds per second of the idle baseline taken
    just before. ``sides`` are the client's and the server's CPU seconds.

    ``figure`` says what the published figure is: ``machine``, the machine's busy time minus
    the idle baseline (the cloud: two whole nodes, ``sides`` are their idle-corrected shares);
    ``processes``, the sum of ``sides`` when they are the client's and the server's own CPU
    time (the lab: other processes on the machine do not count, so no baseline is needed).
    The machine's idle-corrected time is kept in both cases as a cross-check.
    """
    rec = new_record(index)
    gbits = res.gbit_per_second * res.duration_s
    corrected = machine_busy_s - idle_busy_per_s * wall_s
    busy_fraction = machine_busy_s / (wall_s * cpus) if wall_s > 0 and cpus else 0.0
    rec["details"] = {"tool": "iperf3 -b", "target_gbit_per_second": target_gbit,
                      "achieved_gbit_per_second": res.gbit_per_second, "machine_busy_fraction": busy_fraction,
                      "idle_baseline_cpu_per_s": idle_busy_per_s, "retransmits": res.retransmits}
    cpu: dict[str, Any] = {"busy_percent": 100 * busy_fraction, "source": source,
                           "idle_corrected_cpu_seconds": corrected}
    if sides:
        for side, seconds in sides.items():
            cpu[f"{side}_cpu_seconds_per_gbit"] = (seconds / gbits) if (seconds is not None and gbits) else None
    rec["cpu"] = cpu
    if busy_fraction >= SATURATION_FRACTION:
        return invalid(rec, f"the machine was saturated ({100 * busy_fraction:.0f} % busy): the CPU figure would "
                            f"measure the machine, not the datapath")
    if res.gbit_per_second < GATE_MIN_RATE_FRACTION * target_gbit:
        return invalid(rec, f"offered rate not reached: {res.gbit_per_second:.3f} of {target_gbit:.3f} Gbit/s")
    if figure == "processes":
        own = [v for v in (sides or {}).values()]
        if len(own) != 2 or any(v is None for v in own):
            return invalid(rec, "the client's or the server's own CPU time could not be read")
        used = sum(v for v in own if v is not None)
        cpu["basis"] = "the client's and the server's own CPU time"
    elif figure == "machine":
        used = corrected
        cpu["basis"] = "the machine's busy time minus the idle baseline"
    else:
        raise ValueError(f"cpu_record figure {figure!r}: must be 'machine' or 'processes'")
    if gbits <= 0 or used <= 0:
        return invalid(rec, "no CPU above the idle baseline was measured" if figure == "machine"
                       else "no CPU time was measured for the client and the server")
    cpu["cpu_seconds_per_gbit"] = used / gbits
    return _valid(rec, used / gbits)


def value_record(index: int, value: float, *, observed_mtu: bool = False) -> dict[str, Any]:
    """A directly measured value with no gate (the path MTU)."""
    rec = _valid(new_record(index), value)
    if observed_mtu:
        rec["observed_mtu"] = int(value)
    return rec


def contamination_verdict(repetitions: int, contaminated: int, *, threshold: float, where: str, rerun: str,
                          idle: str | None = None, retried: int = 0, unsampled: int = 0) -> dict[str, Any]:
    """The run's ``extra.contamination`` and ``extra.ranking`` (lab and cloud): how many subject
    repetitions the background-load guard flagged, and whether the run may rank its subjects.

    ``where`` names what was busy ("the machine", "a node"), ``idle`` the clean case ("the
    machine was", "both nodes were"; default: ``where`` + "was"), ``rerun`` how to measure again.
    """
    pct = f"{100 * threshold:g} %"
    if contaminated:
        retries = f", after {retried} retries" if retried else ""
        verdict = (f"{contaminated} of {repetitions} subject repetitions ran while {where} was busy with other work "
                   f"(more than {pct} of its cores before the repetition{retries}); their figures are left out")
    elif unsampled:
        verdict = (f"no contamination seen, but {unsampled} of {repetitions} subject repetitions had no "
                   "background-load sample")
    elif repetitions:
        verdict = f"no contamination: {idle or where + ' was'} idle (< {pct} busy) before every repetition"
    else:
        verdict = "no repetition was guarded"
    reason = None
    if contaminated:
        reason = f"repetitions were contaminated by other work: {rerun} before ranking the subjects"
    elif not repetitions:
        reason = "no repetition was guarded"
    return {"contamination": {"repetitions": repetitions, "contaminated": contaminated, "retried": retried,
                              "threshold_busy_fraction": threshold, "verdict": verdict},
            "ranking": {"allowed": reason is None, "reason": reason}}
