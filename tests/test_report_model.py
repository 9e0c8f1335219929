"""The comparison model (issue 14): groups by environment, ranks with intervals, invalid figures
marked, never shown as numbers, in Markdown, CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from report_docs import knb_doc, lab_doc

from cnibench import results
from cnibench.report import comparison, sources
from cnibench.report.sources import Source, base_id, fmt_number

SCIENTIFIC = re.compile(r"\b\d(?:\.\d+)?e[+-]?\d+\b", re.IGNORECASE)


def build(*docs):
    return comparison.build([Source(d) for d in docs])


def csv_rows(comp) -> list[dict]:
    buf = io.StringIO()
    comparison.write_csv(comparison.rows(comp), _Path(buf))
    return list(csv.DictReader(io.StringIO(buf.getvalue())))


class _Path:
    """write_csv's target in memory."""

    def __init__(self, buf: io.StringIO) -> None:
        self.buf = buf

    def write_text(self, text: str) -> None:
        self.buf.write(text)


def test_invalid_latency_is_marked_not_a_number_in_markdown_csv_and_json():
    doc = lab_doc(invalid_latency=True)
    comp = build(doc)
    # the numbers the refused repetitions carry (their percentiles): none may appear as a figure
    refused = set()
    for s in doc["subjects"]:
        for t in s["tests"]:
            if t["kind"] == "latency":
                assert t["status"] == "invalid"
                for r in t["repetitions"]:
                    refused |= {fmt_number(v, "µs") for v in r["percentiles_us"].values()}
    reason = "load generator behind"

    md = comparison.markdown(comp)
    section = md[md.index("`latency-tcp-30pct`"):]
    section = section[:section.index("\n### ")]
    table = [line for line in section.splitlines() if line.startswith("| ") and "subject" not in line]
    assert len(table) == 4  # host, host-gw, vxlan, the skipped ipip
    for line in table:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[2] in ("⚠ invalid", "– skipped") and not any(re.search(r"\d", c) for c in cells[2:6]), line
    assert reason in md[:md.index("## Sources")]  # the warning is in the summary, not buried
    summary = md[:md.index("## Sources")]
    assert "latency-tcp-30pct: invalid for host, host-gw, vxlan" in summary
    udp = md[md.index("`latency-udp-30pct`"):]
    udp = udp[:udp.index("\n### ")]
    for figure in refused:
        assert figure not in section and figure not in udp

    rows = [r for r in csv_rows(comp) if r["test"] == "latency-tcp-30pct" and r["subject"] != "ipip"]
    assert len(rows) == 3
    figures = ("value", "interval_low", "interval_high", "vs_best", "vs_host", "p50_us", "p90_us", "p99_us", "p99.9_us",
               "achieved_rate_per_s", "rank")
    for r in rows:
        assert r["status"] == "invalid" and reason in r["reason"]
        assert all(r[k] == "" for k in figures), r

    data = json.loads(comparison.to_json(comp))
    metric = next(m for m in data["groups"][0]["metrics"] if m["id"] == "latency-tcp-30pct")
    for e in metric["entries"]:
        assert e["value"] is None and e["valid"] is False and e["vs_host"] is None and e["details"] == {}
        assert e["status"] in ("invalid", "skipped") and e["reason"]
    assert any(reason in w for w in data["groups"][0]["warnings"])


def test_ranking_with_paired_intervals_to_the_best_and_to_the_host():
    doc = lab_doc()
    g = build(doc).groups[0]
    tcp = g.metric("tcp")
    assert [e.subject for e in tcp.entries] == ["host-gw", "vxlan", "host", "ipip"]
    best, second, host, skipped = tcp.entries
    assert (best.rank, second.rank, host.rank, skipped.rank) == (1, 2, None, None)
    assert host.reference and skipped.status == "skipped" and "CONFIG_NET_IPIP" in skipped.reason
    subj = {s["name"]: {t["name"]: t for t in s["tests"]} for s in doc["subjects"] if s["status"] == "ok"}
    iv = results.ratio_interval(subj["vxlan"]["tcp"], subj["host-gw"]["tcp"])  # the library's interval, as is
    assert (second.vs_best.estimate, second.vs_best.low, second.vs_best.high) == (iv.estimate, iv.low, iv.high)
    assert second.vs_best.n == 4 and second.vs_best.distinguishable is True
    assert second.vs_host.estimate == subj["vxlan"]["tcp"]["ratio"]["estimate"]
    # lower is better: the lowest round trip ranks first
    rr = g.metric("tcp-rr-14B")
    assert rr.entries[0].subject == "host-gw" and rr.entries[0].value < rr.entries[1].value
    # CPU: the lab's own client + server split is kept
    cpu = g.metric("cpu-tcp")
    assert cpu.chart == "cpu" and "client_cpu_seconds_per_gbit" in cpu.entries[0].details["cpu"]
    summary = " ".join(g.summary)
    assert "**host-gw** is fastest for TCP throughput (pod-to-pod)" in summary
    assert "below the host network (95 % CI" in summary


def test_environments_are_grouped_and_never_ranked_together():
    lab1, lab2 = lab_doc(run_id="run-a"), lab_doc(run_id="run-b", seed=7)
    k1, k2 = knb_doc("lab-run1.json"), knb_doc("lab-run2-vxlan.json")
    comp = build(lab1, lab2, k1, k2)
    assert len(comp.groups) == 4  # two lab runs, two knb imports: four environments
    for g in comp.groups:
        for m in g.metrics:
            assert len({e.source for e in m.entries if e.valid}) == 1  # one run per ranking
    merged = comparison.build([Source(k1), Source(k2)], comparable=[{"knb-cnibench-lab-veth-mtu-1500-run-1",
                                                                     "knb-cnibench-lab-vxlan-mtu-1450-run-2"}])
    assert len(merged.groups) == 1 and merged.groups[0].basis == "explicit"
    tcp = merged.groups[0].metric("tcp")
    assert tcp.entries[1].vs_best.low is None and "separate runs" in tcp.entries[1].vs_best.note
    with pytest.raises(ValueError, match="no source with the id nope"):
        comparison.build([Source(k1)], comparable=[{"nope"}])


def test_a_run_that_withholds_its_ranking_gets_no_ranks():
    doc = lab_doc()
    doc["extra"] = {"ranking": {"allowed": False, "reason": "2 repetitions ran while the machine was busy"},
                    "contamination": {"contaminated": 2, "verdict": "2 of 12 repetitions contaminated"}}
    g = build(doc).groups[0]
    assert all(e.rank is None and e.vs_best is None for m in g.metrics for e in m.entries)
    assert g.summary[0].startswith("No ranking in this environment: 2 repetitions ran")
    assert any("2 of 12 repetitions contaminated" in w for w in g.warnings)


def test_knb_facts_reach_the_report():
    """MTU and RAM of knb imports: the MTU knb discovered in the server pod is the pod's, not the
    underlay's (which knb does not report), and RAM is knb's used-at-idle figure."""
    groups = build(knb_doc("lab-run1.json"), knb_doc("lab-run2-vxlan.json")).groups
    facts = {g.facts["run_id"]: g.facts for g in groups}
    assert {f["pod_mtu"] for f in facts.values()} == {1500, 1450}
    assert {f["underlay_mtu"] for f in facts.values()} == {None}
    assert all(f["ram_used_mb"] or f["ram_total_mb"] for f in facts.values())
    assert all(f["run_date"].startswith("2026-11-22") for f in facts.values())  # knb's date, not the import's
    cpu = groups[0].metric("tcp/cpu-busy") or groups[0].metric("tcp/cpu")
    assert cpu is not None and {"client_busy_percent", "server_busy_percent"} <= set(cpu.entries[0].details["cpu"])


def test_idle_corrected_knb_cpu_is_shown_as_such():
    """What the importer writes for an idle-corrected knb figure (cpu.idle_corrected,
    cpu.cpu_seconds_per_gbit): the report shows it, on a CPU-seconds metric."""
    doc = knb_doc("lab-run1.json")
    for t in doc["subjects"][0]["tests"]:
        if t.get("cpu"):
            t["cpu"].update(cpu_seconds_per_gbit=0.123, idle_corrected=True)
    g = build(doc).groups[0]
    m = g.metric("tcp/cpu")
    assert m is not None and m.unit == "CPU s/Gbit" and m.entries[0].value == 0.123
    row = next(r for r in csv_rows(build(doc)) if r["metric"] == "tcp/cpu")
    assert row["cpu_idle_corrected"] == "yes" and row["cpu_s_per_gbit"] == "0.123"


def test_ids_are_unique_and_do_not_stutter():
    assert base_id({"origin": "knb", "run_id": "knb:knb-12885"}) == "knb-12885"
    assert base_id({"origin": "lab", "run_id": "e9c4ef"}) == "lab-e9c4ef"
    doc = lab_doc()
    ids = [s.id for s in sources.assign_ids([Source(doc), Source(doc), Source(doc)])]
    assert ids == ["lab-r4rep01", "lab-r4rep01-2", "lab-r4rep01-3"]


def test_numbers_are_for_people():
    assert fmt_number(1500.0, "bytes") == "1500"
    assert fmt_number(46127.9, "requests/s") == "46,128"
    assert fmt_number(0.00012) == "0.0001" and fmt_number(1.5e-7) == "0.0000"
    assert fmt_number(0.0760, "CPU s/Gbit") == "0.0760" and fmt_number(17.6) == "17.6"
    comp = build(lab_doc(), knb_doc("lab-run1.json"))
    text = comparison.markdown(comp) + comparison.to_json(comp)
    assert not SCIENTIFIC.search(comparison.markdown(comp))
    buf = io.StringIO()
    comparison.write_csv(comparison.rows(comp), _Path(buf))
    assert not SCIENTIFIC.search(buf.getvalue()) and "nan" not in text.lower().split()
    for r in csv.DictReader(io.StringIO(buf.getvalue())):
        if r["unit"] == "Gbit/s" and r["value"]:
            assert len(r["value"].split(".")[-1]) <= 3  # 1 Mbit/s resolution


def test_knb_cpu_per_gbit_is_idle_corrected_in_every_output():
    """lab-run1.json tcp: (64.05 + 63.95) / 2 = 64.0 % above idle at 13.648 Gbit/s -> 4.69 % per Gbit/s
    (raw, 65.015 %: 4.76); without the idle test the raw figure is shown, marked as such."""
    comp = build(knb_doc("lab-run1.json"))
    m = comp.groups[0].metric("tcp/cpu-busy")
    assert m is not None and "above idle" in m.title
    assert m.entries[0].value == pytest.approx(64.0 / 13.648)
    row = next(r for r in csv_rows(comp) if r["metric"] == "tcp/cpu-busy")
    assert row["cpu_idle_corrected"] == "yes" and row["busy_above_idle_percent"] == "64.0"
    assert "busy above idle" in comparison.markdown(comp)
    doc = knb_doc("lab-run1.json")
    for t in doc["subjects"][0]["tests"]:
        t["cpu"] = {k: v for k, v in t["cpu"].items() if "above_idle" not in k}
        t["cpu"].update(idle_corrected=False, idle_correction="not possible: the report has no idle test")
    raw = build(doc).groups[0].metric("tcp/cpu-busy")
    assert raw is not None and raw.entries[0].value == pytest.approx(65.015 / 13.648)
    assert "not idle-corrected (not possible: the report has no idle test)" in (raw.entries[0].warning or "")
