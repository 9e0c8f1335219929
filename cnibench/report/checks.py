"""What a report accepts from a result document beyond its schema (issue 15, bad input 3).

The schema says which fields a document has and their types; a report also needs the figures to
mean something and the document to be of a size it can compare and chart. A document that fails
one of these checks is skipped like an off-schema one (:class:`cnibench.results.DocumentError`,
naming the file, the JSON path and what is valid); none of its numbers reaches the report:

* **Subjects**: at least one (an empty run has nothing to compare), at most
  :data:`MAX_SUBJECTS`; names of 1 to :data:`MAX_NAME` printable characters (the rule of
  ``cnibench import knb --subject``), unique within the document (two subjects of one name
  cannot be told apart in a ranking). A name is text: it never names a file (copies and charts
  are named by slugged ids).
* **Tests**: at most :data:`MAX_TESTS` per subject, names of 1 to :data:`MAX_TEST_NAME`
  printable characters without ``/`` (a test name is a metric id; ``/`` separates a derived
  metric such as ``tcp/cpu``), unique within the subject.
* **Figures** (samples, repetition values, statistics, percentiles, intervals, ratios, CPU
  costs): never negative (each is a rate, a time, a size, a CPU share or a ratio) and at most
  the bound of their unit (:data:`UPPER`: far above any real network, low enough that every
  sum, ratio and chart axis stays finite).
* **Consistency**: ``stats`` is the summary of ``samples`` (``n``, ``median``, ``min``,
  ``max``), as :func:`cnibench.results.finalize` writes it; the 95 % interval of the median
  contains the median; a ratio's interval contains its estimate.

:data:`MAX_DOCUMENTS` and :data:`MAX_GROUP_SUBJECTS` bound a whole report (checked by
:func:`cnibench.report.comparison.build`).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Iterator

from cnibench import results
from cnibench.results import DocumentError, json_path

#: subjects of one document (a lab run of every datapath has about a dozen)
MAX_SUBJECTS = 100
#: tests of one subject (a full lab suite has about 20)
MAX_TESTS = 100
#: result documents one report compares
MAX_DOCUMENTS = 500
#: subjects of one environment group (one row each in every table and chart of the group)
MAX_GROUP_SUBJECTS = 200
MAX_NAME = 200
MAX_TEST_NAME = 100
#: the largest figure a document may hold, per unit ("bound of their unit" above); other units: DEFAULT_UPPER
UPPER = {
    "Gbit/s": 10_000.0,          # 10 Tbit/s
    "Mbit/s": 10_000_000.0,
    "µs": 1e9,                   # a round trip of 17 minutes
    "us": 1e9,
    "ms": 1e6,
    "transactions/s": 1e10, "requests/s": 1e10, "msg/s": 1e10, "req/s": 1e10,
    "CPU s/Gbit": 1e9,
    "bytes": 1e9,
}
DEFAULT_UPPER = 1e15
#: CPU figures of a test or repetition that are checked like its figures (none is negative)
CPU_FIGURES = ("busy_percent", "busy_above_idle_percent", "client_busy_percent", "server_busy_percent",
               "client_busy_above_idle_percent", "server_busy_above_idle_percent", "cpu_seconds_per_gbit",
               "client_cpu_seconds_per_gbit", "server_cpu_seconds_per_gbit")
RATIO_UPPER = 1e6


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


Figure = tuple[list[str | int], Any, float, str]


def _cpu(where: list[str | int], cpu: Any) -> Iterator[Figure]:
    if isinstance(cpu, dict):
        for k in CPU_FIGURES:
            yield [*where, k], cpu.get(k), UPPER["CPU s/Gbit"], "" if k.endswith("percent") else " CPU s/Gbit"


def _figures(test: dict[str, Any]) -> Iterator[Figure]:
    """(JSON path inside the test, value, upper bound, unit) of every figure of a test."""
    unit = str(test.get("unit"))
    upper, u = UPPER.get(unit, DEFAULT_UPPER), f" {unit}"
    for i, v in enumerate(test.get("samples") or []):
        yield ["samples", i], v, upper, u
    for k in ("median", "min", "max", "mean"):
        yield ["stats", k], (test.get("stats") or {}).get(k), upper, u
    for i, v in enumerate(test.get("median_interval") or []):
        yield ["median_interval", i], v, upper, u
    for k, v in (test.get("percentiles_us") or {}).items():
        yield ["percentiles_us", k], v, UPPER["µs"], " µs"
    yield ["efficiency"], test.get("efficiency"), RATIO_UPPER, ""
    ratio = test.get("ratio")
    if isinstance(ratio, dict):
        for k in ("estimate", "low", "high"):
            yield ["ratio", k], ratio.get(k), RATIO_UPPER, ""
    yield from _cpu(["cpu"], test.get("cpu"))
    for i, rep in enumerate(test.get("repetitions") or []):
        if not isinstance(rep, dict):
            continue
        yield ["repetitions", i, "value"], rep.get("value"), upper, u
        for k, v in (rep.get("percentiles_us") or {}).items():
            yield ["repetitions", i, "percentiles_us", k], v, UPPER["µs"], " µs"
        for k, v in (rep.get("percentiles") or {}).items():
            yield ["repetitions", i, "percentiles", k], v, upper, u
        yield from _cpu(["repetitions", i, "cpu"], rep.get("cpu"))


def _name_problem(name: Any, what: str, longest: int, slash: bool) -> str | None:
    if not isinstance(name, str) or not 0 < len(name) <= longest or not name.isprintable() or (
            not slash and "/" in name):
        shown = repr(name[:60] + ("..." if len(name) > 60 else "")) if isinstance(name, str) else repr(name)
        rule = f"1 to {longest} printable characters" + ("" if slash else " without '/'")
        return f"{shown} is not a {what} name: {rule}"
    return None


def _test_problem(test: dict[str, Any]) -> tuple[list[str | int], str] | None:
    for where, v, upper, unit in _figures(test):
        if v is None:
            continue
        if not _number(v):
            if "cpu" in where:
                # the schema leaves a CPU record open (keys of its own), so only this check sees
                # a text or a boolean where the report reads a figure (found by the mutation
                # tests: "n/a" passed and crashed the report's rounding with a traceback)
                return where, f"{v!r} is not a number: a CPU figure of a result document is a number or null"
            continue  # the schema gives every other figure its type
        if v < 0:
            return where, f"{v!r} is negative: a figure of a result document (a rate, a time, a size, a CPU share, a " \
                          "ratio) is never below 0"
        if v > upper:
            return where, f"{v!r} is more than the {upper:,.0f}{unit} a report accepts: not a measured figure"
    samples = [float(v) for v in test.get("samples") or [] if _number(v)]
    stats = test.get("stats") or {}
    n = stats.get("n")
    if _number(n) and n != len(samples):
        return ["stats", "n"], (f"{n} repetitions, but the test has {len(samples)} samples: the statistics do not "
                                "summarize the samples")
    if samples:
        want = {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}
        for k, expected in want.items():
            got = stats.get(k)
            if not isinstance(got, (int, float)) or isinstance(got, bool) or not _close(float(got), expected):
                return ["stats", k], (f"{got!r} is not the {k} of the test's {len(samples)} samples "
                                      f"({expected:g}): the statistics do not summarize the samples")
    else:
        for k in ("median", "min", "max"):
            if stats.get(k) is not None:
                return ["stats", k], f"{stats[k]!r} without any sample: the statistics do not summarize the samples"
    median = stats.get("median")
    mi = test.get("median_interval")
    if _number(median) and isinstance(mi, list) and len(mi) == 2 and all(_number(x) for x in mi):
        if not (mi[0] - 1e-9 <= median <= mi[1] + 1e-9):
            return ["median_interval"], (f"[{mi[0]:g}, {mi[1]:g}] does not contain the median {median:g}: not a "
                                         "95 % interval of it")
    ratio = test.get("ratio")
    if isinstance(ratio, dict) and all(_number(ratio.get(k)) for k in ("estimate", "low", "high")):
        if not (ratio["low"] - 1e-9 <= ratio["estimate"] <= ratio["high"] + 1e-9):
            return ["ratio"], (f"interval [{ratio['low']:g}, {ratio['high']:g}] does not contain the estimate "
                               f"{ratio['estimate']:g}")
    return None


def size_problem(doc: dict[str, Any]) -> tuple[str, str] | None:
    """Too many subjects, or tests of a subject (any parsed JSON object: checked before the
    schema, whose validation of thousands of subjects alone takes seconds)."""
    subjects = doc.get("subjects")
    if not isinstance(subjects, list):
        return None
    if len(subjects) > MAX_SUBJECTS:
        return "subjects", (f"{len(subjects)} subjects, more than the {MAX_SUBJECTS} a report compares from one "
                            "document")
    for i, s in enumerate(subjects):
        tests = s.get("tests") if isinstance(s, dict) else None
        if isinstance(tests, list) and len(tests) > MAX_TESTS:
            return json_path(["subjects", i, "tests"]), (f"{len(tests)} tests, more than the {MAX_TESTS} a report "
                                                         "compares per subject")
    return None


def problem(doc: dict[str, Any]) -> tuple[str, str] | None:
    """The first reason (JSON path, problem) a report cannot use ``doc`` (a document that
    follows its schema), or ``None``."""
    subjects = doc.get("subjects")
    if not isinstance(subjects, list):
        return "subjects", "not a list of subjects"
    if not subjects:
        return "subjects", "no subjects: the run measured nothing a report could compare"
    found = size_problem(doc)
    if found:
        return found
    names: dict[str, int] = {}
    for i, s in enumerate(subjects):
        if not isinstance(s, dict):
            return json_path(["subjects", i]), "not a subject (an object)"
        bad = _name_problem(s.get("name"), "subject", MAX_NAME, slash=True)
        if bad:
            return json_path(["subjects", i, "name"]), bad
        if s["name"] in names:
            return json_path(["subjects", i, "name"]), (
                f"{s['name']!r} is also the name of subjects/{names[s['name']]}: subject names must be unique "
                "within a document")
        names[s["name"]] = i
        tests = s.get("tests") or []
        seen: dict[str, int] = {}
        for j, t in enumerate(tests):
            if not isinstance(t, dict):
                return json_path(["subjects", i, "tests", j]), "not a test (an object)"
            bad = _name_problem(t.get("name"), "test", MAX_TEST_NAME, slash=False)
            if bad:
                return json_path(["subjects", i, "tests", j, "name"]), bad
            if t["name"] in seen:
                return json_path(["subjects", i, "tests", j, "name"]), (
                    f"{t['name']!r} is also the name of subjects/{i}/tests/{seen[t['name']]}: test names must be "
                    "unique within a subject")
            seen[t["name"]] = j
            bad_figure = _test_problem(t)
            if bad_figure:
                return json_path(["subjects", i, "tests", j, *bad_figure[0]]), bad_figure[1]
    return None


def check(doc: dict[str, Any], path: str | Path = "<document>") -> dict[str, Any]:
    """``doc`` if a report can use it, else :class:`~cnibench.results.DocumentError` naming
    ``path``, the JSON path and the problem."""
    found = problem(doc)
    if found is not None:
        raise DocumentError(path, found[1], found[0])
    return doc


def read(path: str | Path) -> dict[str, Any]:
    """:func:`cnibench.results.read_document` (with :func:`size_problem` before the schema)
    and :func:`check`."""
    def sizes(doc: dict[str, Any]) -> None:
        found = size_problem(doc)
        if found is not None:
            raise DocumentError(path, found[1], found[0])

    return check(results.read_document(path, precheck=sizes), path)
