"""What users see of the report where mutation testing (issue 18) found it unchecked: the CSV
header, the JSON keys of an entry and a source, a refusal's JSON path and message, the table's
caption, the chart's "not drawn" list, the sentence of a group without ranking, and the pairing
of CPU figures whose repetitions carry no index."""

from __future__ import annotations

import csv
import json

import pytest
from report_docs import lab_doc

from cnibench.report import checks, comparison, single
from cnibench.report.sources import Source
from cnibench.results import DocumentError


def build(*docs):
    return comparison.build([Source(d) for d in docs])


def _test(doc: dict, subject: str, test: str) -> dict:
    s = next(s for s in doc["subjects"] if s["name"] == subject)
    return next(t for t in s["tests"] if t["name"] == test)


def _set_samples(test: dict, samples: list[float], **stats) -> None:
    """Samples and repetitions of ``test`` replaced by ``samples`` with their true summary
    (written out here, not computed by the module under test), overridden by ``stats``."""
    ordered = sorted(samples)
    median = ordered[len(ordered) // 2] if len(ordered) % 2 else (ordered[len(ordered) // 2 - 1]
                                                                  + ordered[len(ordered) // 2]) / 2
    test["samples"] = list(samples)
    test["repetitions"] = [{"index": i, "value": v, "valid": True, "invalid_reason": None, "contaminated": False}
                           for i, v in enumerate(samples)]
    test["stats"] = {"n": len(samples), "median": median, "min": ordered[0], "max": ordered[-1],
                     "mean": sum(samples) / len(samples), "stdev": 0.0, "cv": 0.0, **stats}
    test["median_interval"] = None
    test["ratio"] = None


# --------------------------------------------------------------------------- checks.py


def test_the_bounds_of_us_are_those_of_microseconds():
    """"us" is "µs" typed without the micro sign: the same bound, 10^9 (docs/report.md)."""
    doc = lab_doc()
    t = _test(doc, "host", "tcp-rr-14B")
    t["unit"] = "us"
    _set_samples(t, [2e9, 2e9, 2e9])
    with pytest.raises(DocumentError) as exc:
        checks.check(doc, "bad.json")
    assert str(exc.value) == ("bad.json: at subjects/0/tests/2/samples/0: 2000000000.0 is more than the "
                              "1,000,000,000 us a report accepts: not a measured figure")
    _set_samples(t, [1e9, 1e9, 1e9])  # the bound itself is a figure
    assert checks.problem(doc) is None


def test_a_median_interval_without_its_median_is_refused_with_its_path():
    doc = lab_doc()
    t = _test(doc, "host", "tcp")
    _set_samples(t, [10.0, 12.0, 14.0])
    t["median_interval"] = [1.0, 2.0]
    with pytest.raises(DocumentError) as exc:
        checks.check(doc, "bad.json")
    assert str(exc.value) == ("bad.json: at subjects/0/tests/0/median_interval: [1, 2] does not contain the "
                              "median 12: not a 95 % interval of it")


def test_a_subject_that_is_not_an_object_is_refused_with_its_path():
    doc = lab_doc()
    doc["subjects"][1] = ["host-gw"]
    assert checks.problem(doc) == ("subjects/1", "not a subject (an object)")
    with pytest.raises(DocumentError) as exc:
        checks.check(doc, "bad.json")
    assert str(exc.value) == "bad.json: at subjects/1: not a subject (an object)"


@pytest.mark.parametrize("key, wrong, right", [("median", 13.0, "12"), ("min", 9.0, "10"), ("max", 15.0, "14")])
def test_statistics_that_do_not_summarize_the_samples_are_refused(key, wrong, right):
    """Samples 10, 12, 14: median 12, min 10, max 14; each one of them wrong on its own."""
    doc = lab_doc()
    _set_samples(_test(doc, "host", "tcp"), [10.0, 12.0, 14.0], **{key: wrong})
    assert checks.problem(doc) == (
        f"subjects/0/tests/0/stats/{key}",
        f"{wrong!r} is not the {key} of the test's 3 samples ({right}): the statistics do not summarize the samples")


def test_statistics_that_summarize_the_samples_pass():
    doc = lab_doc()
    _set_samples(_test(doc, "host", "tcp"), [10.0, 12.0, 14.0])
    assert checks.problem(doc) is None


# --------------------------------------------------------------------------- comparison.py: CSV and JSON

#: comparison.csv's columns, in order (docs/report.md: "stable column names, fixed-unit columns
#: named with their unit (p99_us, cpu_s_per_gbit, underlay_mtu_bytes)")
CSV_HEADER = [
    "group", "source", "origin", "run_id", "subject", "variant", "reference", "metric", "test", "kind", "path",
    "unit", "higher_is_better", "status", "reason", "warning", "rank", "value", "interval_low", "interval_high",
    "interval_kind", "n", "cv_percent", "vs_best", "vs_best_low", "vs_best_high", "vs_host", "vs_host_low",
    "vs_host_high", "ratio_pairs", "tcp_retransmits", "udp_loss_percent", "load_percent_of_host_max",
    "target_rate_per_s", "achieved_rate_per_s", "achieved_percent_of_target", "p50_us", "p90_us", "p99_us",
    "p99.9_us", "cpu_s_per_gbit", "client_cpu_s_per_gbit", "server_cpu_s_per_gbit", "busy_percent",
    "busy_above_idle_percent", "client_busy_percent", "server_busy_percent", "cpu_idle_corrected",
    "observed_mtu_bytes", "kernel", "cpus", "instance_type", "underlay_mtu_bytes", "pod_mtu_bytes", "ram_total_mb",
    "ram_used_mb", "run_date",
]


def test_the_csv_header_is_the_documented_column_list(tmp_path):
    comp = build(lab_doc())
    path = comparison.write_csv(comparison.rows(comp), tmp_path / "comparison.csv")
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        first = next(reader)
    assert header == CSV_HEADER
    assert {"p99_us", "cpu_s_per_gbit", "underlay_mtu_bytes", "value", "unit"} <= set(header)
    row = dict(zip(header, first))
    # the environment columns are filled from the document (lab_doc: 2 CPUs, MTU 1500)
    assert (row["kernel"], row["cpus"], row["underlay_mtu_bytes"]) == ("6.18.44-fc-v1098", "2", "1500")


ENTRY_KEYS = ["source", "subject", "variant", "reference", "status", "valid", "reason", "warning", "rank", "value",
              "n", "interval", "cv", "vs_best", "vs_host", "path", "details"]


def test_json_entries_have_their_status_validity_reason_and_warning():
    data = json.loads(comparison.to_json(build(lab_doc())))
    tcp = next(m for m in data["groups"][0]["metrics"] if m["id"] == "tcp")
    for e in tcp["entries"]:
        assert list(e) == ENTRY_KEYS
    ipip = next(e for e in tcp["entries"] if e["subject"] == "ipip")
    assert (ipip["status"], ipip["valid"], ipip["warning"], ipip["value"]) == ("skipped", False, None, None)
    assert "it needs CONFIG_NET_IPIP" in ipip["reason"]
    vxlan = next(e for e in tcp["entries"] if e["subject"] == "vxlan")
    assert (vxlan["status"], vxlan["valid"], vxlan["reason"], vxlan["warning"]) == ("ok", True, None, None)


def test_json_sources_say_when_and_in_which_schema_each_document_was_made():
    data = json.loads(comparison.to_json(build(lab_doc())))
    assert data["sources"] == [{
        "id": "lab-r4rep01", "origin": "lab", "run_id": "r4rep01", "path": None,
        "created": "2026-12-03T00:45:18+00:00", "schema": "schema v2.0", "group": data["groups"][0]["id"],
        "copy": "results/lab-r4rep01.json"}]


# --------------------------------------------------------------------------- comparison.py: building


def test_cpu_repetitions_without_an_index_are_repetition_0():
    """A lone repetition without "index" pairs with the reference's repetition 0 (CPU 0.08 s/Gbit
    on the host, 0.1 on vxlan: 1.25 from one pair), not with repetition 1."""
    doc = lab_doc(reps=2, skipped=False)
    doc["subjects"] = [s for s in doc["subjects"] if s["name"] != "host-gw"]
    host, vxlan = _test(doc, "host", "tcp"), _test(doc, "vxlan", "tcp")
    for r, cpu in zip(host["repetitions"], (0.08, 0.2)):
        r["cpu"] = {"cpu_seconds_per_gbit": cpu}
    host["cpu"] = {"cpu_seconds_per_gbit": 0.14}
    vxlan["repetitions"] = [{"value": vxlan["repetitions"][0]["value"], "valid": True,
                             "cpu": {"cpu_seconds_per_gbit": 0.1}}]
    vxlan["cpu"] = {"cpu_seconds_per_gbit": 0.1}
    m = build(doc).groups[0].metric("tcp/cpu")
    e = next(e for e in m.entries if e.subject == "vxlan")
    assert e.value == 0.1
    assert e.vs_host is not None
    assert (e.vs_host.estimate, e.vs_host.n) == (pytest.approx(0.1 / 0.08), 1)


def test_without_ranking_the_summary_states_the_best_datapath_not_another():
    """host-gw is faster than vxlan (0.93 and 0.75 of the host's TCP throughput in lab_doc) and
    has the shorter round trip (1.12 and 1.77 of the host's): each sentence names host-gw."""
    doc = lab_doc()
    doc["extra"] = {"ranking": {"allowed": False, "reason": "the machine was busy"}}
    summary = build(doc).groups[0].summary
    assert summary[0] == "No ranking in this environment: the machine was busy. Figures are shown, not ranked."
    tcp = next(line for line in summary if line.startswith("TCP throughput (pod-to-pod): "))
    assert tcp.startswith("TCP throughput (pod-to-pod): host-gw ") and tcp.endswith(" (not ranked).")
    rr = next(line for line in summary if line.startswith("TCP request/response round trip, 14 B"))
    assert ": host-gw " in rr and "vxlan" not in rr
    assert not any("vxlan" in line for line in summary)


# --------------------------------------------------------------------------- single.py


def test_the_table_caption_numbers_the_subjects_that_did_not_run():
    table = single.render_table(lab_doc())
    assert table.caption == "1. ipip: ipip skipped: the kernel cannot create 'ipip' devices; it needs CONFIG_NET_IPIP"
    assert table.caption_justify == "left"


def test_a_table_without_notes_has_no_caption():
    assert single.render_table(lab_doc(skipped=False)).caption is None


def test_the_chart_says_why_each_figure_is_not_drawn():
    """Each reason where the document has it: the validity's (the refused latency tests), the
    error (a failed test), the skipped reason (a skipped test)."""
    doc = lab_doc(invalid_latency=True, skipped=False)
    failed, skipped = _test(doc, "host-gw", "udp"), _test(doc, "vxlan", "udp")
    failed.update(status="error", error="iperf3 could not connect to the server", ratio=None,
                  validity={"status": "not-measured", "reason": None})
    skipped.update(status="skipped", skipped_reason="udp needs a UDP-capable server", ratio=None,
                   validity={"status": "not-measured", "reason": None})
    fig = single.figure_chart(doc)
    texts = [t.get_text() for t in fig.texts]
    assert len(texts) == 1
    lines = texts[0].split("\n")
    tcp_gate = "load generator behind: achieved 100,968 of 162,851 msg/s (62.0 %, the gate needs >= 99 %)"
    udp_gate = "load generator behind: achieved 24,077 of 38,834 msg/s (62.0 %, the gate needs >= 99 %)"
    assert lines == [
        "not drawn:",
        "host-gw udp: error (iperf3 could not connect to the server)",
        f"host-gw latency-tcp-30pct: invalid (no valid repetition: {tcp_gate})",
        f"host-gw latency-udp-30pct: invalid (no valid repetition: {udp_gate})",
        "host-gw tcp-service: no ratio",
        "vxlan udp: skipped (udp needs a UDP-capable server)",
        f"vxlan latency-tcp-30pct: invalid (no valid repetition: {tcp_gate})",
        f"vxlan latency-udp-30pct: invalid (no valid repetition: {udp_gate})",
        "vxlan tcp-service: no ratio",
    ]
