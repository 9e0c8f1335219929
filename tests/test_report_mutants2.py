"""More of what users see of the report where mutation testing (issue 18) found it unchecked:
the marker of an interrupted report, the reason of a ratio without interval and of a skipped
test, the metric's title and the rules in comparison.json, the kernel among the environment
facts, the CSV's busy percent, a negative repetition refused with its JSON path, and the
bound of the single-document chart's "not drawn" list."""

from __future__ import annotations

import csv
import json

import pytest
from report_docs import lab_doc

from cnibench import results
from cnibench.report import charts, checks, comparison, single, sources
from cnibench.report.sources import Source
from cnibench.results import DocumentError


def build(*docs):
    return comparison.build([Source(d) for d in docs])


def _test(doc: dict, subject: str, test: str) -> dict:
    s = next(s for s in doc["subjects"] if s["name"] == subject)
    return next(t for t in s["tests"] if t["name"] == test)


def _entry(js: dict, metric: str, subject: str) -> dict:
    m = next(m for m in js["groups"][0]["metrics"] if m["id"] == metric)
    return next(e for e in m["entries"] if e["subject"] == subject)


# --------------------------------------------------------------------------- the report folder


def test_an_interrupted_report_already_lists_its_results_folder(tmp_path, monkeypatch):
    """The marker is written before anything else and lists results/ (docs/report.md: "the
    marker .cnibench-report listing all of these"), so the copies of an interrupted report are
    never read as inputs by a later search of the directory."""
    def interrupted(comp, directory):
        raise RuntimeError("interrupted while drawing the charts")

    monkeypatch.setattr(charts, "write_charts", interrupted)
    out = tmp_path / "report"
    with pytest.raises(RuntimeError, match="interrupted while drawing the charts"):
        comparison.write_report([Source(lab_doc())], out)
    marker = json.loads((out / ".cnibench-report").read_text())
    assert marker["outputs"] == ["charts/", "comparison.csv", "comparison.json", "comparison.md", "results/"]
    assert (out / "results" / "lab-r4rep01.json").is_file()  # the copy the interruption left behind
    found, skipped = sources.collect([tmp_path])
    assert found == []
    assert skipped == [(out, "1 file(s) an earlier cnibench report wrote (its .cnibench-report lists them): "
                             "not read again")]


# --------------------------------------------------------------------------- comparison.json


def test_a_ratio_without_interval_names_its_number_of_pairs():
    """A one-repetition run: the document's ratio to the host rests on 1 pair and has no
    interval; the comparison says so."""
    doc = lab_doc(reps=1)
    assert _test(doc, "vxlan", "tcp")["ratio"]["n"] == 1 and _test(doc, "vxlan", "tcp")["ratio"]["low"] is None
    js = json.loads(comparison.to_json(build(doc)))
    vs_host = _entry(js, "tcp", "vxlan")["vs_host"]
    assert vs_host["note"] == "1 pair(s) of repetitions: no interval"
    assert (vs_host["low"], vs_host["high"], vs_host["n"]) == (None, None, 1)


def test_a_skipped_test_keeps_its_own_reason():
    doc = lab_doc()
    t = _test(doc, "vxlan", "udp")
    t.update(status="skipped", skipped_reason="udp needs a UDP-capable server", ratio=None,
             validity={"status": "not-measured", "reason": None})
    js = json.loads(comparison.to_json(build(doc)))
    e = _entry(js, "udp", "vxlan")
    assert (e["status"], e["reason"], e["value"]) == ("skipped", "udp needs a UDP-capable server", None)


def test_comparison_json_gives_its_rules_and_each_metrics_title():
    js = json.loads(comparison.to_json(build(lab_doc())))
    assert js["rules"] == ("figures are compared only within a group (one environment); invalid figures are null "
                           "with their status and reason; intervals are 95 %")
    titles = {m["id"]: m["title"] for m in js["groups"][0]["metrics"]}
    assert titles["tcp"] == "TCP throughput (pod-to-pod)"
    assert titles["tcp-service"] == "TCP throughput (pod-to-service)"
    assert titles["latency-udp-30pct"] == "UDP p99 round trip at 30 % of the host's max rate"


# --------------------------------------------------------------------------- Markdown and CSV


def test_the_environment_facts_list_the_kernel():
    """docs/report.md: "Environment facts per group: kernel, CPUs, ..." (lab_doc's kernel)."""
    md = comparison.markdown(build(lab_doc()))
    lines = md.split("\n")
    start = lines.index("| fact | value |")
    facts = lines[start:lines.index("", start)]
    assert facts == ["| fact | value |", "|---|---|", "| origin | lab |", "| host / nodes | vm |",
                     "| kernel | 6.18.44-fc-v1098 |", "| CPUs | 2 |", "| underlay MTU | 1500 |", "| run | r4rep01 |",
                     "| run date | 2026-12-03T00:45:18+00:00 |", "| repetitions | 4 |"]


def test_the_csv_gives_the_busy_percent(tmp_path):
    doc = lab_doc()
    _test(doc, "host-gw", "cpu-tcp")["cpu"]["busy_percent"] = 37.5
    path = comparison.write_csv(comparison.rows(build(doc)), tmp_path / "comparison.csv")
    with path.open() as fh:
        busy = {(r["metric"], r["subject"]): r["busy_percent"] for r in csv.DictReader(fh)}
    # lab_doc: every repetition of cpu-tcp was 20 % busy
    assert busy[("cpu-tcp", "host-gw")] == "37.5"
    assert busy[("cpu-tcp", "vxlan")] == "20.0"
    assert busy[("cpu-tcp", "host")] == "20.0"
    assert busy[("tcp", "vxlan")] == ""


# --------------------------------------------------------------------------- checks.py


def test_a_negative_repetition_value_is_refused_with_its_path():
    doc = lab_doc()
    _test(doc, "host", "tcp")["repetitions"][1]["value"] = -1.0
    with pytest.raises(DocumentError) as exc:
        checks.check(doc, "bad.json")
    assert str(exc.value) == ("bad.json: at subjects/0/tests/0/repetitions/1/value: -1.0 is negative: a figure of a "
                              "result document (a rate, a time, a size, a CPU share, a ratio) is never below 0")


def test_a_repetition_that_is_not_an_object_is_refused_with_its_path(tmp_path):
    doc = lab_doc()
    _test(doc, "host", "tcp")["repetitions"][1] = "oops"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DocumentError) as exc:
        checks.read(path)
    assert str(exc.value) == (f"{path}: at subjects/0/tests/0/repetitions/1: does not follow result schema v2: "
                              "'oops' is not of type 'object'")
    assert checks.problem(doc) is None  # beyond the schema: nothing to say of it


# --------------------------------------------------------------------------- single.py


def _not_drawn(doc: dict) -> list[str]:
    fig = single.figure_chart(doc)
    texts = [t.get_text() for t in fig.texts]
    assert len(texts) == 1
    return texts[0].split("\n")


def _with_skipped(n: int) -> dict:
    """lab_doc (its ipip subject skipped; tcp-service has no ratio on host-gw and vxlan: 3
    lines) and ``n`` more skipped subjects."""
    doc = lab_doc()
    for i in range(n):
        s = results.new_subject(f"extra{i}", "datapath", status="skipped", skipped_reason=f"reason {i}")
        s["status"] = "skipped"
        doc["subjects"].append(s)
    return doc


def test_the_not_drawn_list_holds_ten_lines_whole():
    lines = _not_drawn(_with_skipped(7))
    assert len(lines) == 11
    assert lines[0] == "not drawn:"
    assert lines[-1] == "vxlan tcp-service: no ratio"
    assert not any("more (see the table)" in ln for ln in lines)


def test_the_not_drawn_list_is_cut_after_nine_lines_of_eleven():
    lines = _not_drawn(_with_skipped(8))
    assert lines == ["not drawn:", "ipip: skipped (ipip skipped: the kernel cannot create 'ipip' devices)",
                     *[f"extra{i}: skipped (reason {i})" for i in range(8)],
                     "... and 2 more (see the table)"]
