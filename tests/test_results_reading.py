"""Reading result documents (issue 15): regular files only, bounded, finite numbers only, and
errors that name the file and the place in it; which parts of a run failed (the lab's exit code)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cnibench import results
from cnibench.errors import InputError

DATA = Path(__file__).resolve().parent / "data"


def test_read_document_accepts_a_real_document():
    assert results.read_document(DATA / "lab-result.json")["origin"] == "lab"


@pytest.mark.parametrize("token,where", [
    ("NaN", "subjects/0/tests/0/stats/median"), ("Infinity", "subjects/0/tests/0/stats/median"),
    ("-Infinity", "subjects/0/tests/0/stats/median"), ("1e999", "subjects/0/tests/0/stats/median")])
def test_non_finite_numbers_are_refused_with_file_and_path(tmp_path, token, where):
    doc = json.loads((DATA / "lab-result.json").read_text())
    doc["subjects"][0]["tests"][0]["stats"]["median"] = "@@"
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc).replace('"@@"', token))
    with pytest.raises(results.DocumentError) as err:
        results.read_document(path)
    assert str(err.value).startswith(f"{path}: at {where}: ") and "not a finite number" in str(err.value)
    assert isinstance(err.value, InputError)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    path = tmp_path / "r.json"
    os.mkfifo(path)
    with pytest.raises(results.DocumentError, match="not a regular file \\(a FIFO\\)"):
        results.read_document(path)


def test_schema_errors_name_file_and_path(tmp_path):
    doc = json.loads((DATA / "lab-result.json").read_text())
    doc["subjects"][0]["tests"][0]["samples"] = ["fast"]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(results.DocumentError, match=r"r.json: at subjects/0/tests/0/samples/0: does not follow"):
        results.read_document(path)


def test_deep_and_large_documents_are_refused(tmp_path, monkeypatch):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(results.DocumentError, match="nested too deeply"):
        results.read_document(deep)
    monkeypatch.setattr(results, "MAX_DOCUMENT_BYTES", 100)
    with pytest.raises(results.DocumentError, match="larger than the 100"):
        results.read_document(DATA / "lab-result.json")


def _doc(statuses: dict[str, list[str]], subject_status: dict[str, str] | None = None) -> dict:
    subjects = []
    for name, tests in statuses.items():
        s = {"name": name, "status": (subject_status or {}).get(name, "ok"), "error": "set-up failed: boom",
             "tests": [{"name": f"t{i}", "status": st} for i, st in enumerate(tests)]}
        subjects.append(s)
    return {"subjects": subjects}


def test_failures_decide_the_exit_code():
    assert results.failures(_doc({"host": ["ok", "ok"], "vxlan": ["ok", "invalid", "skipped"]})) == []
    assert results.failures(_doc({"host": ["error", "error"], "vxlan": ["error", "skipped", "error"]})) == [
        "host: every test", "vxlan: every test"]
    assert results.failures(_doc({"host": ["ok", "error"]})) == ["host: t1"]
    assert results.failures(_doc({"host": ["ok"], "host-gw": []}, {"host-gw": "error"})) == [
        "host-gw: set-up failed: boom"]
