"""Bad input to ``cnibench report`` (issue 15, the rows of ``scripts/bad-input-attack.py --only
report``): every document a report cannot use is skipped with the file, the JSON path and what is
valid (exit 2 when nothing is left), a bad PATH or --out is refused with exit 2 before anything is
written, and nothing raises a traceback or hangs; what is only unusual (a path-like subject name,
two files of one basename) is reported correctly, with every file inside --out."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
from report_docs import lab_doc
from typer.testing import CliRunner

from cnibench import results
from cnibench.cli import app
from cnibench.errors import ExitCode, InputError
from cnibench.report import charts, checks, comparison
from cnibench.report.sources import Source

runner = CliRunner()


def flat(text: str) -> str:
    return " ".join(text.split())


def listing(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def subject(doc: dict, name: str) -> dict:
    return next(s for s in doc["subjects"] if s["name"] == name)


def a_test(doc: dict, name: str, test: str = "tcp") -> dict:
    return next(t for t in subject(doc, name)["tests"] if t["name"] == test)


def set_values(doc: dict, name: str, test: str, value: float) -> dict:
    """Every repetition of one test at ``value``, finalized as the lab would (stats consistent)."""
    for rep in a_test(doc, name, test)["repetitions"]:
        rep["value"] = value
    results.finalize(doc)
    results.validate(doc)
    return doc


def report(*args: str | Path):
    res = runner.invoke(app, ["report", *map(str, args)])
    assert "Traceback" not in res.output
    return res


def bad_and_good(tmp_path: Path, bad: dict, name: str = "bad.json") -> tuple[Path, Path]:
    inp = tmp_path / "in"
    inp.mkdir(exist_ok=True)
    (inp / name).write_text(json.dumps(bad))
    good = results.write_json(lab_doc(run_id="good"), inp / "good.json")
    return inp / name, good


# --------------------------------------------------------------------------- documents a report skips


def _negative() -> dict:
    return set_values(lab_doc(), "vxlan", "tcp", -5.0)


def _huge() -> dict:
    return set_values(lab_doc(), "vxlan", "tcp", 1e6)


def _median_above_max() -> dict:
    doc = lab_doc()
    a_test(doc, "vxlan")["stats"]["median"] = 1e3
    return doc


def _stats_not_samples() -> dict:
    doc = lab_doc()
    a_test(doc, "vxlan")["samples"] = [1.0, 2.0]
    return doc


def _no_subjects() -> dict:
    doc = lab_doc()
    doc["subjects"] = []
    return doc


def _dup_subjects() -> dict:
    doc = lab_doc()
    doc["subjects"].append(copy.deepcopy(subject(doc, "vxlan")))
    return doc


def _dup_tests() -> dict:
    doc = lab_doc()
    tests = subject(doc, "vxlan")["tests"]
    tests.append(copy.deepcopy(tests[0]))
    return doc


def _named(test_name: str | None = None, subject_name: str | None = None):
    def build() -> dict:
        doc = lab_doc()
        if test_name is not None:
            a_test(doc, "vxlan")["name"] = test_name
        if subject_name is not None:
            subject(doc, "vxlan")["name"] = subject_name
        return doc

    return build


def _many_subjects() -> dict:
    doc = lab_doc()
    vx = subject(doc, "vxlan")
    doc["subjects"] += [{**copy.deepcopy(vx), "name": f"s{i}"} for i in range(checks.MAX_SUBJECTS)]
    return doc


def _bad_interval() -> dict:
    doc = lab_doc(reps=8)
    t = a_test(doc, "vxlan")
    assert t["median_interval"] is not None
    t["median_interval"] = [t["stats"]["median"] + 1, t["stats"]["median"] + 2]
    return doc


def _bad_ratio() -> dict:
    doc = lab_doc()
    r = a_test(doc, "vxlan")["ratio"]
    r.update(low=r["estimate"] + 0.1, high=r["estimate"] + 0.2)
    return doc


SKIPPED = {
    "negative samples": (_negative, "samples/0", "-5.0 is negative"),
    "1e6 Gbit/s": (_huge, "samples/0", "more than the 10,000 Gbit/s a report accepts"),
    "median above max": (_median_above_max, "stats/median", "is not the median of the test's 4 samples"),
    "stats not of the samples": (_stats_not_samples, "stats/n", "4 repetitions, but the test has 2 samples"),
    "no subjects": (_no_subjects, "at subjects:", "no subjects"),
    "two subjects of one name": (_dup_subjects, "subjects/4/name", "'vxlan' is also the name of subjects/2"),
    "two tests of one name": (_dup_tests, "tests/12/name", "test names must be unique within a subject"),
    "a test name with /": (_named(test_name="tcp/x"), "tests/0/name", "printable characters without '/'"),
    "a test name with NUL": (_named(test_name="tcp\x00x"), "tests/0/name", "'tcp\\x00x' is not a test name"),
    "a subject name with an escape": (_named(subject_name="vx\x1b[2Jlan"), "subjects/2/name",
                                      "is not a subject name: 1 to 200 printable characters"),
    "too many subjects": (_many_subjects, "at subjects:", f"more than the {checks.MAX_SUBJECTS} a report compares"),
    "an interval without its median": (_bad_interval, "median_interval", "does not contain the median"),
    "a ratio outside its interval": (_bad_ratio, "ratio", "does not contain the estimate"),
}


@pytest.mark.parametrize("case", list(SKIPPED))
def test_a_document_a_report_cannot_use_is_skipped_naming_file_and_path(case):
    build, where, what = SKIPPED[case]
    doc = build()
    with pytest.raises(results.DocumentError) as err:
        checks.check(doc, "bad.json")
    text = str(err.value)
    assert text.startswith("bad.json: at ") and where in text and what in text, text
    assert checks.check(lab_doc()) is not None  # the unchanged document passes


def test_alone_it_is_refused_with_exit_2_and_nothing_written(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "neg.json").write_text(json.dumps(_negative()))
    res = report(inp, "-o", tmp_path / "rep")
    assert res.exit_code == ExitCode.REFUSED and res.stdout == ""
    err = flat(res.stderr)
    assert f"skipped {inp / 'neg.json'}: at subjects/2/tests/0/samples/0: -5.0 is negative" in err
    assert "no result documents" in err and not (tmp_path / "rep").exists()


def test_beside_a_good_document_it_is_skipped_and_none_of_its_numbers_is_shown(tmp_path):
    bad, good = bad_and_good(tmp_path, _huge())
    res = report(tmp_path / "in", "-o", tmp_path / "rep", "--json")
    assert res.exit_code == 0, res.output
    assert f"skipped {bad}: at subjects/2/tests/0/samples/0: 1000000.0 is more than" in flat(res.stderr)
    data = json.loads(res.stdout)
    assert [s["path"] for s in data["sources"]] == [str(good)] and data["skipped_inputs"] == [str(bad)]
    assert listing(tmp_path / "rep" / "results") == ["lab-good.json"]
    for p in (tmp_path / "rep").rglob("comparison.*"):
        assert "1000000" not in p.read_text() and "1,000,000" not in p.read_text(), p


def test_a_document_of_thousands_of_subjects_is_refused_before_its_schema(tmp_path, monkeypatch):
    """3000 subjects (the harness's rep-022) took minutes and 1 GiB; now the count is checked
    before the schema validation (which alone took seconds)."""
    doc = _many_subjects()
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "many.json").write_text(json.dumps(doc))

    def no_schema(_doc):
        raise AssertionError("validated a document whose size is refused")

    monkeypatch.setattr(results, "validate", no_schema)
    res = report(inp, "-o", tmp_path / "rep")
    assert res.exit_code == ExitCode.REFUSED
    assert f"at subjects: {len(doc['subjects'])} subjects, more than the 100" in flat(res.stderr)


def test_a_group_or_a_report_larger_than_the_bounds_is_refused(tmp_path, monkeypatch):
    a = results.write_json(lab_doc(run_id="aaa"), tmp_path / "in" / "a.json")
    b = results.write_json(lab_doc(run_id="bbb"), tmp_path / "in" / "b.json")
    monkeypatch.setattr(checks, "MAX_GROUP_SUBJECTS", 5)  # each lab run has 4 subjects: alone it fits
    assert report(a, "-o", tmp_path / "one").exit_code == 0
    res = report(a, b, "-o", tmp_path / "two", "--comparable", "lab-aaa,lab-bbb")
    assert res.exit_code == ExitCode.REFUSED
    assert "8 subjects in one environment (lab-aaa, lab-bbb), more than the 5" in flat(res.stderr)
    assert "drop --comparable" in res.stderr and not (tmp_path / "two").exists()
    monkeypatch.setattr(checks, "MAX_DOCUMENTS", 1)
    res = report(a, b, "-o", tmp_path / "three")
    assert res.exit_code == ExitCode.REFUSED and "2 result documents, more than the 1 one report" in res.stderr


# --------------------------------------------------------------------------- unusual, and right


def test_a_path_like_subject_name_is_text_and_nothing_leaves_out(tmp_path):
    doc = lab_doc()
    subject(doc, "vxlan")["name"] = "../../../etc/evil"
    subject(doc, "host-gw")["name"] = "a$\\frac{$b | c"  # mathtext and a Markdown cell separator
    src = results.write_json(doc, tmp_path / "in" / "odd.json")
    out = tmp_path / "deep" / "rep"
    res = report(src, "-o", out)
    assert res.exit_code == 0, res.output
    assert listing(tmp_path / "deep") == sorted(["rep", *("rep/" + p for p in listing(out))])
    assert not (tmp_path / "etc").exists()
    for p in out.rglob("*"):
        assert p.resolve().is_relative_to(out.resolve()) and "evil" not in p.name
    md = (out / "comparison.md").read_text()
    assert "| ../../../etc/evil |" in md and "a$\\frac{$b \\| c" in md
    pngs = list(out.rglob("*.png"))
    assert pngs and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)


def test_chart_text_is_literal_and_long_names_are_shortened():
    doc = lab_doc()
    subject(doc, "vxlan")["name"] = "a$\\frac{$b"
    subject(doc, "host-gw")["name"] = "x" * 150
    (g,) = comparison.build([Source(doc)]).groups
    fig = charts.figure_bars(g, g.metric("tcp"))
    labels = [t.get_text().split("\n")[0] for t in fig.axes[0].get_yticklabels()]
    assert "a$\\frac{$b" in labels and max(len(t) for t in labels) <= 32
    fig.savefig(os.devnull, format="png")  # mathtext would fail on "\frac{"


def test_chart_file_names_are_safe_and_unique():
    taken: set[str] = set()
    names = [charts._file_name(m, taken) for m in ("tcp/cpu", "../x", "tcp cpu", "TCP-cpu", ".hidden", "\x00")]
    assert names == ["tcp-cpu.png", "x.png", "tcp-cpu-2.png", "TCP-cpu-3.png", "hidden.png", "chart.png"]


def test_two_documents_of_one_basename_and_run_id_keep_two_copies(tmp_path):
    a = results.write_json(lab_doc(), tmp_path / "in" / "a" / "lab.json")
    other = lab_doc()
    other["created"] = "2026-12-04T00:00:00+00:00"
    b = results.write_json(other, tmp_path / "in" / "b" / "lab.json")
    res = report(tmp_path / "in", "-o", tmp_path / "rep", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert sorted(s["path"] for s in data["sources"]) == sorted([str(a), str(b)])
    assert listing(tmp_path / "rep" / "results") == ["lab-r4rep01-2.json", "lab-r4rep01.json"]
    copies = {json.loads(p.read_text())["created"] for p in (tmp_path / "rep" / "results").iterdir()}
    assert copies == {lab_doc()["created"], other["created"]}


def test_a_figure_in_another_unit_is_not_ranked_beside_the_others():
    a, b = lab_doc(run_id="aaa"), lab_doc(run_id="bbb")
    for s in b["subjects"]:
        for t in s["tests"]:
            if t["name"] == "tcp":
                t["unit"] = "Mbit/s"
    comp = comparison.build([Source(a), Source(b)], comparable=[{"lab-aaa", "lab-bbb"}])
    (g,) = comp.groups
    tcp = g.metric("tcp")
    other = [e for e in tcp.entries if e.source == "lab-bbb" and e.test is not None]
    assert other and all(not e.valid and e.value is None for e in other)
    assert all("measured in Mbit/s (tcp), the metric in Gbit/s (tcp): not compared" == e.reason for e in other)
    assert all(e.valid for e in tcp.entries if e.source == "lab-aaa" and e.test is not None)


def test_markdown_cells_hold_no_control_characters():
    doc = lab_doc(run_id="r\x1b]0;x\x07un")
    md = comparison.markdown(comparison.build([Source(doc)]))
    assert "\x1b" not in md and "\x07" not in md


# --------------------------------------------------------------------------- files and directories


def test_a_symlink_loop_and_a_directory_named_json_are_skipped_by_name(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    os.symlink(inp / "b.json", inp / "a.json")
    os.symlink(inp / "a.json", inp / "b.json")
    (inp / "dir.json").mkdir()
    results.write_json(lab_doc(), inp / "dir.json" / "inside.json")
    res = report(inp, "-o", tmp_path / "rep", "--json")
    assert res.exit_code == 0, res.output
    err = flat(res.stderr)
    for name in ("a.json", "b.json"):
        assert f"skipped {inp / name}: cannot open the result document: Too many levels of symbolic links" in err
    assert f"skipped {inp / 'dir.json'}: a directory, not a result document" in err
    assert [s["path"] for s in json.loads(res.stdout)["sources"]] == [str(inp / "dir.json" / "inside.json")]
    # a loop named on the command line: refused as a PATH
    loop = report(inp / "a.json", "-o", tmp_path / "rep2")
    assert loop.exit_code == ExitCode.REFUSED and f"PATH {inp / 'a.json'}: Too many levels" in flat(loop.stderr)


def test_reading_a_directory_as_a_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not a regular file \\(a directory\\)"):
        results.read_regular_file(tmp_path, max_bytes=10)


@pytest.mark.parametrize("args, expected", [
    (["", "-o", "{t}/rep"], "PATH '': an empty argument"),
    (["{t}/missing", "-o", "{t}/rep"], "PATH {t}/missing: does not exist"),
    (["{t}/in", "-o", ""], "--out .: an existing directory that is neither empty nor a report folder"),  # the cwd
    (["{t}/in", "-o", "{t}/in"], "--out {t}/in: an existing directory that is neither empty nor a report folder"),
    (["{t}/in"], "--out (the default) {t}/in/report: an existing directory that is neither empty nor a report"),
])
def test_bad_paths_and_outs_are_refused_before_anything_is_written(tmp_path, args, expected):
    results.write_json(lab_doc(), tmp_path / "in" / "lab.json")
    (tmp_path / "in" / "report").mkdir()
    (tmp_path / "in" / "report" / "notes.txt").write_text("mine")  # the user's folder, not a report's
    before = listing(tmp_path)
    res = report(*(a.replace("{t}", str(tmp_path)) for a in args))
    assert res.exit_code == ExitCode.REFUSED, res.output
    assert expected.replace("{t}", str(tmp_path)) in flat(res.stderr) and res.stdout == ""
    assert listing(tmp_path) == before


def test_a_missing_path_argument_is_named_path():
    """(The argument was DIRECTORY, then 'paths' in the messages: PATH, as in the usage line.)"""
    res = runner.invoke(app, ["report"])
    assert res.exit_code == ExitCode.REFUSED and "Missing argument 'PATH'" in res.output


def test_an_empty_out_or_an_earlier_reports_folder_is_written(tmp_path):
    src = results.write_json(lab_doc(), tmp_path / "lab.json")
    (tmp_path / "empty").mkdir()
    assert report(src, "-o", tmp_path / "empty").exit_code == 0
    again = report(src, "-o", tmp_path / "empty")  # now a report folder
    assert again.exit_code == 0, again.output
    assert (tmp_path / "empty" / "comparison.md").is_file()


def test_files_in_out_are_not_read_and_only_the_unlisted_ones_are_said(tmp_path):
    results.write_json(lab_doc(), tmp_path / "in" / "lab.json")
    out = tmp_path / "in" / "report"
    first = report(tmp_path / "in")  # the default --out: in/report
    assert first.exit_code == 0, first.output
    again = report(tmp_path / "in")
    assert again.exit_code == 0 and "skipped" not in again.stderr  # its own earlier outputs: silently
    results.write_json(lab_doc(run_id="mine"), out / "mine.json")  # the user's file in the report folder
    third = report(tmp_path / "in", "--json")
    assert third.exit_code == 0, third.output
    assert f"skipped {out}: 1 file(s) in the directory this report is written to: not read" in flat(third.stderr)
    assert [s["run_id"] for s in json.loads(third.stdout)["sources"]] == ["r4rep01"]
