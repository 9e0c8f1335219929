"""The validity verdicts of one repetition (cnibench.suite.records), on real tool output captured
on this machine (tests/data), and the v2 document they end up in (results.finalize)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cnibench import parsers, results
from cnibench.suite import definition, records

DATA = Path(__file__).parent / "data"


def sockperf(name: str, mode: str) -> parsers.SockperfResult:
    return parsers.parse_sockperf((DATA / name).read_text(), mode=mode)


# --------------------------------------------------------------------------- the gate


def test_under_load_gate_passes_when_the_rate_was_reached():
    # captured: under-load --mps 20000 --reply-every 10; 10,981 messages in 0.549 s = 20,002 msg/s
    res = sockperf("sockperf-ul-tcp-mps20000.txt", "under-load")
    rec = records.under_load_record(0, res, target_rate=20_000)
    assert rec["valid"] is True and rec["invalid_reason"] is None
    assert rec["value"] == pytest.approx(692.395)  # the capture's p99
    assert rec["details"]["achieved_rate"] == pytest.approx(10981 / 0.549)
    # 1,099 observations: p99.9 (needs 1,000) is kept, p99.99 (needs 10,000) is not
    assert "p99.9" in rec["percentiles_us"] and "p99.99" not in rec["percentiles_us"]


def test_under_load_gate_fails_when_the_generator_fell_behind():
    # captured: under-load --mps 5000000: the sender reached 121,101 messages in 0.549 s
    res = sockperf("sockperf-ul-tcp-mps5000000.txt", "under-load")
    rec = records.under_load_record(3, res, target_rate=5_000_000)
    assert rec["valid"] is False and rec["value"] is None
    assert rec["invalid_reason"].startswith("load generator behind: achieved 220,585 of 5,000,000 msg/s (4.4 %")
    assert "percentiles_us" not in rec  # an invalid measurement carries no figure at all


def test_under_load_gate_fails_on_missing_replies():
    # captured: UDP under-load at the maximum rate: 1,263 replies dropped of 23,447 + 1,263
    res = sockperf("sockperf-ul-udp-mpsmax.txt", "under-load")
    rec = records.under_load_record(0, res, target_rate=res.message_rate)
    assert rec["valid"] is False
    assert rec["invalid_reason"] == "5.11 % of the replies missing (the gate allows 1 %)"


@pytest.mark.parametrize("achieved,target,missing,ok", [
    (990, 1000, 0.0, True), (989.9, 1000, 0.0, False), (1000, 1000, 0.01, True), (1000, 1000, 0.0101, False),
])
def test_gate_thresholds_are_99_percent_rate_and_1_percent_loss(achieved, target, missing, ok):
    assert (records.gate(achieved, target, missing) is None) is ok


def test_rr_record_is_the_median_round_trip():
    res = sockperf("sockperf-pp-tcp-m14.txt", "ping-pong")
    rec = records.rr_record(1, res)
    assert rec["valid"] and rec["value"] == pytest.approx(65.925)
    assert rec["details"]["transactions_per_s"] == pytest.approx(3905 / 0.550)


def test_wrk_record_is_a_rate_and_refuses_failed_requests():
    ok = parsers.parse_wrk((DATA / "wrk-close-350.txt").read_text())
    rec = records.wrk_record(0, ok)
    assert rec["valid"] and rec["value"] == pytest.approx(ok.requests / ok.duration_s)
    assert rec["details"]["loop"].startswith("closed")
    # nginx stopped mid-run: 113 failed (1 read, 112 write) of 12,808 requests = 0.88 %, under 1 %
    stopped = parsers.parse_wrk((DATA / "wrk-server-stopped.txt").read_text())
    assert records.wrk_record(0, stopped)["valid"] is True
    # the same failures among 5,000 requests (2.3 %) are not a figure
    bad = records.wrk_record(0, dataclasses.replace(stopped, requests=5000))
    assert bad["valid"] is False and bad["invalid_reason"].startswith("113 of 5000 requests failed")


# --------------------------------------------------------------------------- CPU


def _iperf3(gbit: float) -> parsers.Iperf3Result:
    return parsers.Iperf3Result(protocol="TCP", streams=1, duration_s=2.0, bits_per_second=gbit * 1e9,
                                sender_bits_per_second=gbit * 1e9, bytes_received=int(gbit * 2e9 / 8))


def test_cpu_is_idle_corrected_per_gbit():
    # 2 s at 1 Gbit/s = 2 Gbit; the machine was busy 0.5 s, the baseline 0.05 CPU s per s -> 0.4 s
    rec = records.cpu_record(0, _iperf3(1.0), target_gbit=1.0, machine_busy_s=0.5, idle_busy_per_s=0.05, wall_s=2.0,
                             cpus=2, sides={"client": 0.1, "server": 0.2}, source="test")
    assert rec["valid"] and rec["value"] == pytest.approx(0.2)
    assert rec["cpu"]["client_cpu_seconds_per_gbit"] == pytest.approx(0.05)
    assert rec["cpu"]["server_cpu_seconds_per_gbit"] == pytest.approx(0.1)


def test_cpu_from_the_processes_own_time_needs_no_baseline():
    # the lab: 2 Gbit, client 0.1 s + server 0.3 s of their own CPU -> 0.2 s/Gbit; a busy
    # baseline (other processes) does not enter the figure, only the cross-check
    rec = records.cpu_record(0, _iperf3(1.0), target_gbit=1.0, machine_busy_s=0.9, idle_busy_per_s=0.3, wall_s=2.0,
                             cpus=2, sides={"client": 0.1, "server": 0.3}, source="test", figure="processes")
    assert rec["valid"] and rec["value"] == pytest.approx(0.2)
    assert rec["cpu"]["idle_corrected_cpu_seconds"] == pytest.approx(0.3)
    assert rec["cpu"]["basis"] == "the client's and the server's own CPU time"


def test_cpu_from_processes_without_one_side_is_invalid():
    rec = records.cpu_record(0, _iperf3(1.0), target_gbit=1.0, machine_busy_s=0.9, idle_busy_per_s=0.0, wall_s=2.0,
                             cpus=2, sides={"client": 0.1, "server": None}, source="test", figure="processes")
    assert rec["valid"] is False and rec["value"] is None
    assert "server's own CPU time could not be read" in rec["invalid_reason"]
    with pytest.raises(ValueError, match="figure 'both'"):
        records.cpu_record(0, _iperf3(1.0), target_gbit=1.0, machine_busy_s=0.9, idle_busy_per_s=0.0, wall_s=2.0,
                           cpus=2, source="test", figure="both")


def test_cpu_on_a_saturated_machine_is_invalid_never_a_number():
    # both cores busy the whole time: 2 x duration / Gbit is what the old figure was
    rec = records.cpu_record(0, _iperf3(1.0), target_gbit=1.0, machine_busy_s=3.9, idle_busy_per_s=0.0, wall_s=2.0,
                             cpus=2, source="test")
    assert rec["valid"] is False and rec["value"] is None and "cpu_seconds_per_gbit" not in rec["cpu"]
    assert "saturated (98 % busy)" in rec["invalid_reason"]


def test_cpu_below_the_offered_rate_is_invalid():
    rec = records.cpu_record(0, _iperf3(0.5), target_gbit=1.0, machine_busy_s=0.5, idle_busy_per_s=0.0, wall_s=2.0,
                             cpus=2, source="test")
    assert rec["valid"] is False and "offered rate not reached" in rec["invalid_reason"]


# --------------------------------------------------------------------------- into a document


def _doc(host_values, dp_values, *, contaminated=()):
    doc = results.new_document("lab", run_id="t1", environment=results.collect_environment(),
                               parameters={"duration_s": 1, "repeat": len(host_values)})
    for name, values in (("host", host_values), ("vxlan", dp_values)):
        s = results.new_subject(name, "reference" if name == "host" else "datapath")
        t = results.new_test("tcp-rr-14B", "rr", "pod-to-pod", "µs", higher_is_better=False, tool="sockperf")
        for i, v in enumerate(values):
            rec = records.invalid(records.new_record(i), "gate") if v is None else records.value_record(i, v)
            rec["contaminated"] = (name, i) in contaminated
            t["repetitions"].append(rec)
        s["tests"].append(t)
        doc["subjects"].append(s)
    results.finalize(doc)
    results.validate(doc)
    return {s["name"]: s["tests"][0] for s in doc["subjects"]}


def test_ratio_interval_pairs_repetitions_by_index():
    t = _doc([10.0, 12.0, 11.0], [15.0, 18.0, 16.5])["vxlan"]
    assert t["ratio"]["estimate"] == pytest.approx(1.5)
    assert t["ratio"]["low"] == pytest.approx(1.5) and t["ratio"]["high"] == pytest.approx(1.5)
    assert t["ratio"]["n"] == 3 and t["efficiency"] == pytest.approx(1.5)


def test_invalid_and_contaminated_repetitions_are_left_out_and_counted():
    tests = _doc([10.0, 10.0, 10.0, 10.0], [15.0, None, 99.0, 16.0], contaminated={("vxlan", 2)})
    t = tests["vxlan"]
    assert t["samples"] == [15.0, 16.0]
    assert t["validity"]["status"] == "valid" and t["validity"]["contaminated_repetitions"] == 1
    assert t["validity"]["reason"] == "2 of 4 repetitions not used (1 contaminated): gate"
    assert t["ratio"]["n"] == 2


def test_a_test_with_no_valid_repetition_is_invalid_with_no_figure():
    t = _doc([10.0, 10.0], [None, None])["vxlan"]
    assert t["status"] == "invalid" and t["stats"]["median"] is None and t["ratio"] is None
    assert t["validity"]["reason"] == "no valid repetition: gate"


def test_v1_documents_still_load_and_are_labelled():
    doc = results.load(DATA / "lab-result.json")
    assert results.schema_major(doc) == 1
    assert "legacy" in results.schema_label(doc) and "no confidence intervals" in results.schema_label(doc)


def test_suite_names_are_pinned():
    names = [t.name for t in definition.suite_tests(definition.CLOUD_DEFAULTS, udp_size=1422)]
    assert names == ["tcp", "tcp-service", "udp", "tcp-rr-14B", "tcp-rr-1024B", "udp-rr-14B", "udp-rr-1024B",
                     "tcp-crr", "http-350B", "http-4096B", "latency-tcp-30pct", "latency-tcp-50pct",
                     "latency-udp-30pct", "latency-udp-50pct", "cpu-tcp", "mtu"]
    host = [t.name for t in definition.suite_tests(definition.CLOUD_DEFAULTS, udp_size=1422, service=False)]
    assert "tcp-service" not in host and len(host) == len(names) - 1
    # the UDP datagram of a run with a vxlan (1450) path: 1450 - 20 - 8
    assert definition.CLOUD_DEFAULTS.udp_size(1450) == 1422
    assert (definition.CLOUD_DEFAULTS.duration_s, definition.CLOUD_DEFAULTS.omit_s) == (10.0, 1)


def test_primary_tests_decide_the_adaptive_stop():
    def primaries(settings):
        return [t.name for t in definition.suite_tests(settings, udp_size=1422) if t.primary]

    # the lab follows the request/response medians, the cloud also TCP throughput
    assert primaries(definition.LAB_DEFAULTS) == ["tcp-rr-14B", "udp-rr-14B"]
    assert primaries(definition.CLOUD_DEFAULTS) == ["tcp", "tcp-rr-14B"]
    # without the latency tests TCP throughput decides: a run always has a primary
    assert primaries(dataclasses.replace(definition.LAB_DEFAULTS, latency=False)) == ["tcp"]
    assert definition.LAB_DEFAULTS.as_parameters()["repetitions"]["primary_tests"] == ["tcp-rr-14B", "udp-rr-14B"]


def test_contamination_verdict_counts_and_forbids_ranking():
    bad = records.contamination_verdict(9, 2, threshold=0.25, where="the machine", rerun="rerun on a quiet machine",
                                        retried=4)
    assert bad["contamination"] == {"repetitions": 9, "contaminated": 2, "retried": 4, "threshold_busy_fraction": 0.25,
                                    "verdict": "2 of 9 subject repetitions ran while the machine was busy with other "
                                               "work (more than 25 % of its cores before the repetition, after 4 "
                                               "retries); their figures are left out"}
    assert bad["ranking"] == {"allowed": False, "reason": "repetitions were contaminated by other work: rerun on a "
                                                          "quiet machine before ranking the subjects"}
    clean = records.contamination_verdict(9, 0, threshold=0.25, where="a node", idle="both nodes were", rerun="rerun")
    assert clean["ranking"] == {"allowed": True, "reason": None}
    assert clean["contamination"]["verdict"] == ("no contamination: both nodes were idle (< 25 % busy) before every "
                                                 "repetition")
    unsampled = records.contamination_verdict(9, 0, threshold=0.25, where="a node", rerun="rerun", unsampled=3)
    assert unsampled["ranking"]["allowed"] is True and "3 of 9 subject repetitions had no" in \
        unsampled["contamination"]["verdict"]
    none = records.contamination_verdict(0, 0, threshold=0.25, where="a node", rerun="rerun")
    assert none["ranking"] == {"allowed": False, "reason": "no repetition was guarded"}
