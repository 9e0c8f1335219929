"""Still more of what users see of the report where mutation testing (issue 18) found it
unchecked: who wrote the marker, the format of comparison.json, the confidence of an
interval, a withheld ranking's reason among the warnings, the percentile columns of the CSV,
the round-trip table's p99 / p99.9 cell, the Markdown's "Not measured" list, "higher is
better", the overview and profile charts (by their path relative to the report), the notes,
and three of the input checks (too many tests, a duplicate test name, a CPU figure that is not
a number).

Two small reports are written with their charts (a one-test knb import, a lab run cut to one
latency test: one chart each, under a second); everything else is built without charts."""

from __future__ import annotations

import csv
import json
from importlib.metadata import version
from pathlib import Path

import pytest
from report_docs import knb_doc, lab_doc
from typer.testing import CliRunner

from cnibench.cli import app
from cnibench.report import checks, comparison
from cnibench.report.sources import Source
from cnibench.results import DocumentError, write_json

#: the group id of lab_doc's run (host "vm", run r4rep01) and of the one-test knb import
LAB_GROUP = "lab-vm-r4rep01"
KNB_GROUP = "knb-cnibench-lab-veth-p2ptcp-only-run-3"
IPIP_SKIPPED = "ipip skipped: the kernel cannot create 'ipip' devices; it needs CONFIG_NET_IPIP"


def build(*docs):
    return comparison.build([Source(d) for d in docs])


def _subject(doc: dict, name: str) -> dict:
    return next(s for s in doc["subjects"] if s["name"] == name)


def _test(doc: dict, subject: str, test: str) -> dict:
    return next(t for t in _subject(doc, subject)["tests"] if t["name"] == test)


def _entry(js: dict, metric: str, subject: str) -> dict:
    m = next(m for m in js["groups"][0]["metrics"] if m["id"] == metric)
    return next(e for e in m["entries"] if e["subject"] == subject)


def _block(md: str, first: str, n: int) -> list[str]:
    """The ``n`` lines of ``md`` from the line ``first`` on."""
    lines = md.split("\n")
    start = lines.index(first)
    return lines[start:start + n]


@pytest.fixture(scope="module")
def knb_report(tmp_path_factory) -> Path:
    """A report (with its charts) of one knb import of one test: a group of one subject, whose
    charts are the overviews "throughput" and "cpu"."""
    out = tmp_path_factory.mktemp("knb") / "report"
    comparison.write_report([Source(knb_doc("lab-run3-only-p2ptcp.json"))], out)
    return out


@pytest.fixture(scope="module")
def latency_report(tmp_path_factory) -> Path:
    """A report (with its chart) of lab_doc cut to the host and vxlan and one constant-rate
    latency test (its only chart: the TCP latency profile); ipip skipped."""
    doc = lab_doc()
    doc["subjects"] = [s for s in doc["subjects"] if s["name"] != "host-gw"]
    for s in doc["subjects"]:
        s["tests"] = [t for t in s["tests"] if t["name"] == "latency-tcp-30pct"]
    out = tmp_path_factory.mktemp("latency") / "report"
    comparison.write_report([Source(doc)], out)
    return out


# --------------------------------------------------------------------------- the report folder


def test_the_marker_says_which_cnibench_wrote_the_report(knb_report):
    marker = json.loads((knb_report / ".cnibench-report").read_text())
    assert list(marker) == ["written_by", "note", "created", "outputs"]
    assert marker["written_by"] == f"cnibench {version('cnibench')} report"
    assert marker["note"] == "a cnibench report: cnibench report never reads the files listed here as inputs"


def test_comparison_json_names_its_format(knb_report):
    """docs/report.md: "**JSON** (`format: cnibench-comparison`, `format_version: 1`)"."""
    js = json.loads((knb_report / "comparison.json").read_text())
    assert list(js)[:2] == ["format", "format_version"]
    assert (js["format"], js["format_version"]) == ("cnibench-comparison", 1)
    assert js["outputs"]["json"] == str(knb_report / "comparison.json")


def test_a_one_subject_group_shows_its_overview_charts_relative_to_the_report(knb_report):
    """The overview charts of a group of one subject ("throughput", "cpu": no metric has
    their name) are shown after the tables, linked relative to comparison.md."""
    md = (knb_report / "comparison.md").read_text()
    lines = md.split("\n")
    for name in ("throughput", "cpu"):
        link = f"charts/{KNB_GROUP}/{name}.png"
        assert lines.count(f"![{name}]({link})") == 1
        assert (knb_report / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert lines.index(f"![throughput](charts/{KNB_GROUP}/throughput.png)") > lines.index(
        "### CPU busy % per Gbit/s during tcp (pod-to-pod)")


def test_the_latency_profiles_have_their_heading_and_relative_link(latency_report):
    md = (latency_report / "comparison.md").read_text()
    assert _block(md, "### Latency percentile profiles", 5) == [
        "### Latency percentile profiles",
        "",
        "p50 to p99.9 per subject at each load level (log axis), with the load each one achieved.",
        "",
        f"![latency-profile-tcp](charts/{LAB_GROUP}/latency-profile-tcp.png)",
    ]
    assert (latency_report / "charts" / LAB_GROUP / "latency-profile-tcp.png").is_file()


def test_the_notes_of_a_group_are_listed_under_its_tables(latency_report):
    """ipip was skipped: its row in the table points at note 1, which gives the reason."""
    md = (latency_report / "comparison.md").read_text()
    assert "| – | ipip | – skipped |  |  |  |  | [1] |" in md.split("\n")
    assert _block(md, "Notes:", 4) == ["Notes:", "", f"1. {IPIP_SKIPPED}", ""]


def test_a_group_without_notes_has_no_notes_list():
    md = comparison.markdown(build(lab_doc(skipped=False)))
    assert "[1]" not in md
    assert "Notes:" not in md.split("\n")


# --------------------------------------------------------------------------- comparison.json


def test_an_interval_says_it_is_95_percent():
    """docs/report.md: the ratio to the host with "its 95 % interval"; the best has none."""
    js = json.loads(comparison.to_json(build(lab_doc())))
    vxlan = _entry(js, "tcp", "vxlan")
    assert vxlan["vs_host"]["low"] is not None and vxlan["vs_host"]["confidence"] == 0.95
    assert vxlan["vs_best"]["low"] is not None and vxlan["vs_best"]["confidence"] == 0.95
    best = _entry(js, "tcp", "host-gw")["vs_best"]
    assert (best["estimate"], best["low"], best["confidence"], best["note"]) == (1.0, None, None, "the best")


def test_a_withheld_ranking_gives_its_reason_among_the_warnings():
    doc = lab_doc()
    doc["extra"] = {"ranking": {"allowed": False, "reason": "the machine was busy"}}
    comp = build(doc)
    js = json.loads(comparison.to_json(comp))
    assert js["groups"][0]["warnings"][0] == "lab-r4rep01: no ranking: the machine was busy"
    assert "- ⚠ lab-r4rep01: no ranking: the machine was busy" in comparison.markdown(comp).split("\n")
    doc["extra"] = {"ranking": {"allowed": False, "reason": None}}
    assert build(doc).groups[0].warnings[0] == "lab-r4rep01: no ranking: withheld by the run"


# --------------------------------------------------------------------------- CSV and Markdown


def _rr_doc() -> dict:
    """lab_doc with host-gw's 14 B TCP round trip percentiles written out."""
    doc = lab_doc()
    _test(doc, "host-gw", "tcp-rr-14B")["percentiles_us"] = {"p50": 17.25, "p90": 19.5, "p99": 32.4, "p99.9": 70.6}
    return doc


def test_the_csv_gives_the_percentiles_of_a_round_trip(tmp_path):
    path = comparison.write_csv(comparison.rows(build(_rr_doc())), tmp_path / "comparison.csv")
    with path.open() as fh:
        by = {(r["metric"], r["subject"]): r for r in csv.DictReader(fh)}
    row = by[("tcp-rr-14B", "host-gw")]
    assert (row["p50_us"], row["p90_us"], row["p99_us"], row["p99.9_us"]) == ("17.25", "19.5", "32.4", "70.6")
    assert by[("tcp", "host-gw")]["p50_us"] == ""  # a throughput has no percentiles


def test_the_round_trip_table_gives_p99_and_p99_9():
    md = comparison.markdown(build(_rr_doc()))
    table = _block(md, "`tcp-rr-14B`, µs, lower is better.", 5)
    assert table[2] == "| rank | subject | µs | interval | vs best | vs host | p99 / p99.9 µs | notes |"
    host_gw = next(line for line in table if line.startswith("| 1 | host-gw | "))
    assert host_gw.endswith(" | 32.4 / 70.6 |  |")


def test_each_metric_says_which_way_is_better():
    md = comparison.markdown(build(lab_doc())).split("\n")
    assert "`tcp`, Gbit/s, higher is better." in md
    assert "`tcp-crr`, transactions/s, higher is better." in md
    assert "`tcp-rr-14B`, µs, lower is better." in md


def test_the_subjects_not_measured_are_a_list_of_their_own():
    md = comparison.markdown(build(lab_doc()))
    assert _block(md, "Not measured:", 4) == ["Not measured:", "", f"- ipip: {IPIP_SKIPPED}", ""]


# --------------------------------------------------------------------------- checks.py


def test_a_subject_with_more_than_100_tests_is_refused_with_its_path(tmp_path):
    """docs/report.md: "a subject with more than 100 tests" is skipped with the file, the JSON
    path and the reason (exit 2 when no document is left)."""
    doc = lab_doc()
    tcp = _test(doc, "host", "tcp")
    _subject(doc, "host")["tests"] = [{**tcp, "name": f"tcp-{k}"} for k in range(101)]
    path = write_json(doc, tmp_path / "in" / "many.json")
    with pytest.raises(DocumentError) as exc:
        checks.read(path)
    message = "at subjects/0/tests: 101 tests, more than the 100 a report compares per subject"
    assert str(exc.value) == f"{path}: {message}"
    res = CliRunner().invoke(app, ["report", str(path), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert message in " ".join(res.output.split())
    _subject(doc, "host")["tests"] = _subject(doc, "host")["tests"][:100]  # 100 is allowed
    assert checks.size_problem(doc) is None


def test_two_tests_of_one_name_are_refused_with_the_path_of_the_second():
    doc = lab_doc()
    _test(doc, "host-gw", "udp")["name"] = "tcp"  # subjects/1 (host-gw), tests/1 (udp)
    with pytest.raises(DocumentError) as exc:
        checks.check(doc, "bad.json")
    assert str(exc.value) == ("bad.json: at subjects/1/tests/1/name: 'tcp' is also the name of subjects/1/tests/0: "
                              "test names must be unique within a subject")


@pytest.mark.parametrize("where, value", [("test", "n/a"), ("repetition", "n/a"), ("repetition", True)])
def test_a_cpu_figure_that_is_not_a_number_is_refused_naming_its_path(tmp_path, where, value):
    """The schema leaves a CPU record open (keys of its own beyond busy_percent and
    cpu_seconds_per_gbit), so a text or a boolean in one of the CPU figures the report reads
    passed it; "n/a" then crashed `cnibench report` in its rounding, with a traceback. The
    checks refuse it, naming the path; null is no figure and passes."""
    doc = lab_doc()
    test = _test(doc, "host-gw", "tcp")
    record = test if where == "test" else test["repetitions"][0]
    record["cpu"] = {"client_busy_percent": value, "source": "mpstat"}
    prefix = "subjects/1/tests/0" + ("" if where == "test" else "/repetitions/0")
    assert checks.problem(doc) == (f"{prefix}/cpu/client_busy_percent",
                                   f"{value!r} is not a number: a CPU figure of a result document is a number or null")
    bad = write_json(doc, tmp_path / "bad.json")
    res = CliRunner().invoke(app, ["report", str(bad), "--out", str(tmp_path / "report")])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "is not a number" in res.output, res.output
    record["cpu"]["client_busy_percent"] = None
    assert checks.problem(doc) is None
