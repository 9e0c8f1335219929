#!/usr/bin/env python3
"""Mutation score of the test suite on cnibench's logic (a benchmark, not a test; issue 18).

It applies a seeded sample of mutants to each named group of modules, runs for each mutant
only the tests that cover the mutated lines, and prints per group how many the suite killed,
with a 95 % Wilson interval of the score.

The mutants are cosmic-ray's (https://github.com/sixty-north/cosmic-ray, its core operators:
binary, comparison and unary operators, True/False, and/or, not, numbers +1/-1, exception
types, decorators, zero-iteration loops) plus two written here on cosmic-ray's Operator base,
because cosmic-ray leaves module-level fact tables alone otherwise:
  - EmptyString: a string literal (never a docstring, never an f-string) becomes "" ("XX"
    when it was empty), so a wrong or missing port name, IAM action, chart key or message
    is a mutant;
  - DropElement: one element of a list, tuple, set or dict display is removed, so a missing
    port, action or table row is a mutant.
Annotations are not mutated (the modules use `from __future__ import annotations`, so a
mutated annotation is never evaluated: an equivalent mutant by construction).

Test selection by coverage: one coverage.py run of the non-lab suite with the dynamic
context `test_function` records which test ran each line. A mutant in a function runs the
tests that ran its lines; a mutant at module level (a table, a constant, executed at import,
when no test is running) runs every test that ran any line of the module, plus every test
file that imports the module by name. The tests run in a copy of the tree (the working tree,
uncommitted changes included), with PYTHONPATH set to the copy so that subprocesses (the
CLI tests) run the mutant too. A mutant is killed when the selected tests fail, error or
time out; it survives when they pass; "no tests" when no test covers its lines (it counts as
a survivor).

Equivalent mutants are listed, with the reason, in scripts/mutation-equivalent.yaml (keyed
by file, the original lines and the mutated lines, so the list survives line moves); the
score is killed / (mutants - equivalent).

Usage:
  .venv/bin/pip install -r requirements-mutation.txt      # cosmic-ray and coverage, once
  .venv/bin/python scripts/mutation-score.py [--group NAME ...] [--sample N] [--seed S]
      [--jobs N] [--out DIR] [--reuse-coverage] [--rerun DIR/mutation.json]
The coverage run takes a few minutes; each mutant a few seconds. --out (default
results/mutation) receives mutation.json (every mutant, its tests' outcome, its diff) and
coverage data reusable with --reuse-coverage while the tree is unchanged.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import difflib
import functools
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]

# The groups issue 18 names, and the modules in each.
GROUPS: dict[str, tuple[str, ...]] = {
    "catalog": ("cnibench/variants.py",),
    "config": ("cnibench/config.py",),
    "policy-rules": (
        "cnibench/policy_rules/model.py",
        "cnibench/policy_rules/network.py",
        "cnibench/policy_rules/security.py",
        "cnibench/policy_rules/cluster.py",
    ),
    "network-node-rules": ("cnibench/program/network.py", "cnibench/program/nodes.py"),
    "results-parsers": ("cnibench/results.py", "cnibench/parsers.py"),
    "knb": ("cnibench/knb.py",),
    "comparison-report": (
        "cnibench/report/comparison.py",
        "cnibench/report/checks.py",
        "cnibench/report/single.py",
    ),
}

# Tests left out of the coverage run and of every selection: they need root and build real
# lab topologies, or run the whole toolchain for minutes; none of them is the test of a fact
# in these modules (each of those modules has its own unit and mocks tests).
PYTEST_ARGS = ("-m", "not lab", "-p", "no:randomly", "-p", "no:cacheprovider", "-q")
SLOW_TESTS = (
    "tests/test_packaging.py",  # builds and installs the wheel in fresh venvs
    "tests/test_benchmark.py::test_bench_sh_runs_the_suite_end_to_end_with_a_stand_in_kubectl",
    "tests/test_cni_scripts.py::test_gate_deletes_its_namespace_when_it_is_stopped",
)

# a mutant's tests may take this many times as long as in the coverage run (which is slower than a
# plain run), plus the start of pytest, before the mutant counts as killed by a timeout
MUTANT_TIMEOUT_FACTOR = 3.0
MUTANT_TIMEOUT_START_S = 30.0
BASELINE_TIMES: dict[str, float] = {}


def _need(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        sys.exit(f"mutation-score: the module {module!r} is missing; install the mutation tools with\n"
                 f"  {sys.executable} -m pip install -r {ROOT / 'requirements-mutation.txt'}")


_need("cosmic_ray")
_need("coverage")

import parso  # noqa: E402  (cosmic-ray's parser; installed with it)
import parso.python.tree as pt  # noqa: E402
import yaml  # noqa: E402
from cosmic_ray.ast import ast_nodes, get_ast  # noqa: E402
from cosmic_ray.mutating import mutate_code  # noqa: E402
from cosmic_ray.operators.operator import Example, Operator  # noqa: E402
from cosmic_ray.operators.provider import OperatorProvider  # noqa: E402

# --- the two operators cosmic-ray lacks --------------------------------------------------

def _is_bare_string_statement(node: parso.tree.NodeOrLeaf) -> bool:
    """A docstring or a string used as a comment: a statement that is only a string."""
    parent = node.parent
    while parent is not None and parent.type == "atom":  # implicit concatenation
        node, parent = parent, parent.parent
    return parent is not None and parent.type == "simple_stmt" and parent.children[0] is node


class EmptyString(Operator):
    """A string literal's content becomes empty ("XX" when it was empty)."""

    def mutation_positions(self, node):
        if node.type == "string" and not _is_bare_string_statement(node):
            yield (node.start_pos, node.end_pos)

    def mutate(self, node, index):
        text = node.value
        prefix_len = len(text) - len(text.lstrip("rRbBuU"))
        prefix, body = text[:prefix_len], text[prefix_len:]
        quote = body[:3] if body[:3] in ('"""', "'''") else body[0]
        content = body[len(quote):-len(quote)]
        node.value = f"{prefix}{quote}{'' if content else 'XX'}{quote}"
        return node

    @classmethod
    def examples(cls):
        return (Example("x = 'ab'", "x = ''"), Example("x = ''", "x = 'XX'"))


def _groups_of(inner: parso.tree.BaseNode) -> list[list[parso.tree.NodeOrLeaf]]:
    groups: list[list[parso.tree.NodeOrLeaf]] = [[]]
    for child in inner.children:
        if child.type == "operator" and child.value == ",":
            groups.append([])
        else:
            groups[-1].append(child)
    return [g for g in groups if g]


def _droppable(node: parso.tree.NodeOrLeaf) -> list[list[parso.tree.NodeOrLeaf]]:
    if node.type != "atom" or len(node.children) != 3:
        return []
    opening, inner, _ = node.children
    if opening.type != "operator" or opening.value not in "([{":
        return []
    if inner.type not in ("testlist_comp", "dictorsetmaker"):
        return []
    if any(c.type in ("sync_comp_for", "comp_for") for c in inner.children):
        return []
    groups = _groups_of(inner)
    return groups if len(groups) >= 2 else []


class DropElement(Operator):
    """One element of a list, tuple, set or dict display is removed."""

    def mutation_positions(self, node):
        for group in _droppable(node):
            yield (group[0].start_pos, group[-1].end_pos)

    def mutate(self, node, index):
        groups = _droppable(node)
        inner = node.children[1]
        dropped = groups[index]
        kept: list[parso.tree.NodeOrLeaf] = []
        for i, group in enumerate(groups):
            if i == index:
                continue
            if kept:
                kept.append(pt.Operator(",", (0, 0)))
            kept.extend(group)
        if dropped is groups[0] and kept:
            kept[0].get_first_leaf().prefix = dropped[0].get_first_leaf().prefix
        inner.children = kept
        for child in kept:
            child.parent = inner
        return node

    @classmethod
    def examples(cls):
        return (Example("x = [1, 2]", "x = [2]"), Example("x = [1, 2]", "x = [1]", occurrence=1))


# --- mutants ----------------------------------------------------------------------------

SKIPPED_CORE = {"VariableReplacer", "VariableInserter"}  # they take arguments


def operators() -> dict[str, Operator]:
    ops: dict[str, Operator] = {}
    provider = OperatorProvider()
    for name in provider:
        if name not in SKIPPED_CORE:
            ops[f"core/{name}"] = provider[name]()
    ops["cnibench/EmptyString"] = EmptyString()
    ops["cnibench/DropElement"] = DropElement()
    return ops


def _in_annotation(node: parso.tree.NodeOrLeaf) -> bool:
    child, parent = node, node.parent
    while parent is not None:
        if parent.type == "tfpdef" and child is parent.children[-1]:
            return True
        if parent.type == "annassign" and child is parent.children[1]:
            return True
        if parent.type == "funcdef":
            kids = parent.children
            arrow = next((i for i, k in enumerate(kids) if k.type == "operator" and k.value == "->"), None)
            if arrow is not None and child is kids[arrow + 1]:
                return True
            return False
        child, parent = parent, parent.parent
    return False


def _statement_line(node: parso.tree.NodeOrLeaf) -> int:
    """The first line of the statement holding ``node``: coverage.py records a statement that
    spans lines on its first line only."""
    parent = node
    while parent is not None:
        if parent.type in ("simple_stmt", "decorator") or parent.type.endswith("_stmt") or parent.type in (
                "funcdef", "classdef"):
            return parent.start_pos[0]
        parent = parent.parent
    return node.start_pos[0]


def _scope(node: parso.tree.NodeOrLeaf) -> str:
    """The qualified name of the function or class holding ``node`` ("" at module level)."""
    names = []
    parent = node.parent
    while parent is not None:
        if parent.type in ("funcdef", "classdef"):
            names.append(parent.name.value)
        parent = parent.parent
    return ".".join(reversed(names))


def _module_level(node: parso.tree.NodeOrLeaf) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.type in ("funcdef", "lambdef"):
            return False
        parent = parent.parent
    return True


@dataclass
class Mutant:
    path: str
    operator: str
    occurrence: int
    line: int
    end_line: int
    module_level: bool
    stmt_line: int
    scope: str
    removed: list[str]
    added: list[str]
    diff: str
    outcome: str = "pending"          # killed | survived | no-tests | equivalent | timeout | error
    tests: int = 0
    seconds: float = 0.0
    detail: str = ""
    equivalent_reason: str = ""

    @property
    def key(self) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        return (self.path, tuple(self.removed), tuple(self.added))


def _run_key(fields: dict[str, Any]) -> tuple[Any, ...]:
    """Which mutant of a module this is: from a Mutant's fields or an earlier mutation.json's record."""
    return (fields["path"], fields["operator"], fields["occurrence"], tuple(fields["removed"]), tuple(fields["added"]))


def enumerate_mutants(path: str, ops: dict[str, Operator]) -> list[Mutant]:
    source = (ROOT / path).read_text(encoding="utf-8")
    tree = get_ast(source)
    counts = dict.fromkeys(ops, 0)
    mutants: list[Mutant] = []
    for node in ast_nodes(tree):
        for name, op in ops.items():
            for (start, end) in op.mutation_positions(node):
                occurrence = counts[name]
                counts[name] += 1
                if _in_annotation(node):
                    continue
                mutants.append(Mutant(path, name, occurrence, start[0], end[0], _module_level(node),
                                      _statement_line(node), _scope(node), [], [], ""))
    return mutants


def materialise(m: Mutant, source: str, ops: dict[str, Operator]) -> str | None:
    try:
        mutated = mutate_code(source, ops[m.operator], m.occurrence)
    except (AttributeError, TypeError, ValueError, AssertionError):
        # an operator that cannot handle the node (ExceptionReplacer on a tuple of dotted names)
        return None
    if mutated is None or mutated == source:
        return None
    try:
        compile(mutated, m.path, "exec")
    except SyntaxError:
        return None
    before, after = source.splitlines(), mutated.splitlines()
    diff = list(difflib.unified_diff(before, after, f"a/{m.path}", f"b/{m.path}", lineterm="", n=1))
    m.removed = [ln[1:].strip() for ln in diff if ln.startswith("-") and not ln.startswith("---")]
    m.added = [ln[1:].strip() for ln in diff if ln.startswith("+") and not ln.startswith("+++")]
    m.diff = "\n".join(diff)
    if "CosmicRayTestingException" in mutated and "CosmicRayTestingException" not in source:
        # ExceptionReplacer's stand-in exception, which cosmic-ray's own worker defines: defined
        # at the end (no line moves), else evaluating the except clause raises NameError, a kill
        # the mutation did not earn
        mutated += "\n\nclass CosmicRayTestingException(Exception):\n    pass\n"
    return mutated


# --- the copy of the tree and the coverage map -------------------------------------------

def copy_tree(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if not src.is_file():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    (dest / ".venv").symlink_to(ROOT / ".venv")


def _env(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _context_to_nodeid(context: str) -> str | None:
    """pytest-cov's context "tests/test_x.py::test_y[param]|run" -> "tests/test_x.py::test_y"
    (a selected test runs with all its parameters)."""
    nodeid = context.split("|", 1)[0].split("[", 1)[0]
    return nodeid if nodeid.startswith("tests/") and "::" in nodeid else None


def _coverage_run(copy: Path, out: Path, name: str, targets: list[str]) -> Path:
    """One pytest-cov run of ``targets`` in the copy, with per-test contexts; its data file."""
    data_file, junit, rc = out / f"{name}.sqlite", out / f"{name}-junit.xml", out / f"{name}.rc"
    rc.write_text(f"[run]\ndata_file = {data_file}\n")
    data_file.unlink(missing_ok=True)
    t0 = time.monotonic()
    # pytest-cov's per-test contexts are the tests' node ids (coverage's own test_function
    # context loses property tests to hypothesis's internal ConjectureRunner.test_function)
    cmd = [sys.executable, "-m", "pytest", f"--cov={copy / 'cnibench'}", f"--cov-config={rc}",
           "--cov-context=test", "--cov-report=",
           *PYTEST_ARGS, f"--junitxml={junit}",
           *[f"--deselect={t}" for t in SLOW_TESTS if "::" in t],
           *[f"--ignore={t}" for t in SLOW_TESTS if "::" not in t], *targets]
    # tests/conftest.py then runs the program for every test that asks for a stack, instead of
    # once per stack, so that each test is credited with the lines its run executes
    env = {**_env(copy), "CNIBENCH_TEST_NO_RUN_CACHE": "1"}
    proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True)
    tail = proc.stdout.strip().splitlines()[-1:] or [""]
    print(f"coverage: {name} done in {time.monotonic() - t0:.0f} s: {tail[0]}", file=sys.stderr)
    if proc.returncode not in (0, 1):
        sys.exit(f"mutation-score: the coverage run did not run the suite (exit {proc.returncode}):\n"
                 f"{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    return data_file


def _read_contexts(data_file: Path, into: dict[str, dict[int, set[str]]]) -> None:
    import coverage

    data = coverage.CoverageData(basename=str(data_file))
    data.read()
    for measured in data.measured_files():
        if "/cnibench/" not in measured:
            continue
        rel = "cnibench/" + measured.rsplit("/cnibench/", 1)[1]  # the copy of an earlier run has gone
        lines = into.setdefault(rel, {})
        for lineno, contexts in (data.contexts_by_lineno(measured) or {}).items():
            # an empty set: the line ran, but only while no test ran (at import: a table, or a
            # function that builds one); select() treats it as module level
            lines.setdefault(lineno, set()).update(n for c in contexts if c and (n := _context_to_nodeid(c)))


def coverage_map(copy: Path, out: Path, reuse: bool) -> dict[str, dict[int, set[str]]]:
    """Which tests ran each line. With ``reuse``, the earlier run's data, and a new run of only
    the test files changed since (their old contexts replaced)."""
    data_file = out / "coverage.sqlite"
    failures = out / "baseline-failures.txt"
    if not (reuse and data_file.exists()):
        print("coverage: running the non-lab suite once under coverage (about 7 minutes) ...", file=sys.stderr)
        _coverage_run(copy, out, "coverage", ["tests"])
        failures.write_text("\n".join(sorted(_junit_failures(out / "coverage-junit.xml"))))
    result: dict[str, dict[int, set[str]]] = {}
    _read_contexts(data_file, result)
    BASELINE_TIMES.update(_junit_times(out / "coverage-junit.xml"))
    newer = sorted(newer_test_files(data_file))
    if newer:
        print(f"coverage: {len(newer)} test files changed since the coverage data; running them under coverage: "
              f"{', '.join(newer)}", file=sys.stderr)
        for lines in result.values():
            for ids in lines.values():
                ids.difference_update({t for t in ids if t.split("::")[0] in newer})
        _read_contexts(_coverage_run(copy, out, "coverage-newer", newer), result)
        BASELINE_TIMES.update(_junit_times(out / "coverage-newer-junit.xml"))
        old = set(filter(None, failures.read_text().splitlines())) if failures.exists() else set()
        failures.write_text("\n".join(sorted({t for t in old if t.split("::")[0] not in newer}
                                            | _junit_failures(out / "coverage-newer-junit.xml"))))
    return result


def _junit_cases(junit: Path) -> Iterator[tuple[str, str, Any]]:
    """(test file, node id without parameters, the testcase element) of each test a run's
    junit XML lists."""
    import xml.etree.ElementTree as ET

    for case in ET.parse(junit).getroot().iter("testcase"):
        parts = case.get("classname", "").split(".")
        test_file = "/".join(parts[:2]) + ".py"
        yield test_file, test_file + "::" + "::".join([*parts[2:], case.get("name", "").split("[")[0]]), case


def _junit_failures(junit: Path) -> set[str]:
    """The tests that fail without any mutant: left out of every selection (a mutant cannot be
    said to be killed by a test that fails anyway)."""
    return {nodeid for _, nodeid, case in _junit_cases(junit)
            if case.find("failure") is not None or case.find("error") is not None}


def _junit_times(junit: Path) -> dict[str, float]:
    """Seconds per test (all its parameters) and per test file, in a coverage run."""
    times: dict[str, float] = {}
    for test_file, nodeid, case in _junit_cases(junit):
        seconds = float(case.get("time") or 0.0)
        times[nodeid] = times.get(nodeid, 0.0) + seconds
        times[test_file] = times.get(test_file, 0.0) + seconds
    return times


def baseline_failures(out: Path) -> set[str]:
    path = out / "baseline-failures.txt"
    return set(filter(None, path.read_text().splitlines())) if path.exists() else set()


@functools.cache
def importers(path: str) -> frozenset[str]:
    module = path[:-3].replace("/", ".")
    names = {module, module.rsplit(".", 1)[0] + " import " + module.rsplit(".", 1)[1]}
    found = set()
    for test in sorted((ROOT / "tests").glob("test_*.py")):
        text = test.read_text(encoding="utf-8")
        if any(n in text for n in names):
            found.add(str(test.relative_to(ROOT)))
    return frozenset(found)


def select(m: Mutant, cov: dict[str, dict[int, set[str]]], broken: frozenset[str] = frozenset()) -> set[str]:
    lines = cov.get(m.path, {})
    span = range(min(m.stmt_line, m.line), m.end_line + 1)
    chosen: set[str] = set()
    for ln in span:
        chosen |= lines.get(ln, set())
    at_import_only = not chosen and any(ln in lines for ln in span)
    if not (m.module_level or at_import_only):
        return chosen - broken
    chosen = set().union(*lines.values()) if lines else set()
    files = importers(m.path)
    picked = {t for t in chosen if t.split("::")[0] not in files} | set(files)
    # a whole file stays selected when one of its tests fails anyway: those tests are deselected
    return picked - broken


# --- running -----------------------------------------------------------------------------

def newer_test_files(data_file: Path) -> set[str]:
    """Test files changed since the coverage data was written (coverage_map runs them again)."""
    if not data_file.exists():
        return set()
    since = data_file.stat().st_mtime
    return {str(t.relative_to(ROOT)) for t in (ROOT / "tests").glob("test_*.py") if t.stat().st_mtime > since}


def _order(tests: set[str], path: str) -> list[str]:
    """The test file named after the module first, so that a killed mutant is killed fast."""
    stem = Path(path).stem
    return sorted(tests, key=lambda t: (stem not in t.split("::")[0], t))


RUNNING: set[subprocess.Popen] = set()  # the mutants' pytest runs, each in its own session
RUNNING_LOCK = threading.Lock()


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _stop_all(signum: int, _frame: object) -> None:
    """SIGTERM/SIGINT/SIGHUP: the mutants' test runs are killed (they run in sessions of their
    own, out of reach of the terminal's Ctrl-C), then the copies are removed by main's finally."""
    with RUNNING_LOCK:
        running = list(RUNNING)
    for proc in running:
        _kill_group(proc)
    raise KeyboardInterrupt


def run_mutant(m: Mutant, mutated: str, copy: Path, tests: set[str], broken: frozenset[str]) -> None:
    if not tests:
        m.outcome = "no-tests"
        return
    target = copy / m.path
    original = target.read_text(encoding="utf-8")
    target.write_text(mutated, encoding="utf-8")
    t0 = time.monotonic()
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".args", dir=copy, delete=False) as fh:
            fh.write("\n".join(_order(tests, m.path)))
        cmd = [sys.executable, "-m", "pytest", *PYTEST_ARGS, "-x", "--no-header", "-o", "addopts=",
               *[f"--deselect={t}" for t in sorted(broken | {t for t in SLOW_TESTS if "::" in t})],
               *[f"--ignore={t}" for t in SLOW_TESTS if "::" not in t], f"@{fh.name}"]
        timeout = MUTANT_TIMEOUT_START_S + MUTANT_TIMEOUT_FACTOR * sum(BASELINE_TIMES.get(t, 5.0) for t in tests)
        proc = subprocess.Popen(cmd, cwd=copy, env=_env(copy), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        with RUNNING_LOCK:
            RUNNING.add(proc)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            m.outcome, m.detail = "timeout", f"over {timeout:.0f} s"
            return
        finally:
            with RUNNING_LOCK:
                RUNNING.discard(proc)
            Path(fh.name).unlink(missing_ok=True)
        lines = out.strip().splitlines()
        if proc.returncode == 0:
            m.outcome = "survived"
        elif proc.returncode in (1, 2):
            m.outcome = "killed"
            failed = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))]
            m.detail = (failed[0] if failed else (lines[-1] if lines else ""))[:300]
        elif proc.returncode == 4 and "while loading conftest" in err + out:
            # the mutant breaks the import of cnibench itself: every test would fail
            m.outcome, m.detail = "killed", "the suite cannot import the mutated module"
        elif proc.returncode == 5:
            m.outcome, m.detail = "no-tests", "pytest collected no test"
        else:
            m.outcome, m.detail = "error", f"pytest exit {proc.returncode}: {err[-300:]}"
    finally:
        m.seconds = round(time.monotonic() - t0, 1)
        target.write_text(original, encoding="utf-8")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def load_equivalents() -> list[dict]:
    path = ROOT / "scripts" / "mutation-equivalent.yaml"
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or []) if path.exists() else []


def equivalent_reason(m: Mutant, entries: list[dict]) -> str | None:
    """The reason of the entry for this mutant: the same file, changed lines and mutated lines,
    and the same function or class when the entry names one (``scope``; an entry without it
    matches the lines anywhere in the file, as for a decorator repeated on every class)."""
    for e in entries:
        if (e["file"], tuple(e["removed"]), tuple(e["added"])) == m.key and e.get("scope", m.scope) == m.scope:
            return str(e["reason"])
    return None


@dataclass
class GroupScore:
    group: str
    generated: int = 0
    sampled: int = 0
    killed: int = 0
    survived: int = 0
    no_tests: int = 0
    equivalent: int = 0
    errors: int = 0
    survivors: list[str] = field(default_factory=list)

    @property
    def scored(self) -> int:
        return self.killed + self.survived + self.no_tests

    @property
    def score(self) -> float:
        return self.killed / self.scored if self.scored else math.nan


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--group", action="append", choices=sorted(GROUPS), help="a group (repeatable; default all)")
    ap.add_argument("--sample", type=int, default=40, help="mutants per group (seeded sample; 0 = all)")
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--jobs", type=int, default=2, help="mutants run at once, each in its own copy of the tree")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "mutation")
    ap.add_argument("--reuse-coverage", action="store_true", help="reuse the coverage data of an earlier run in --out (test files changed since run again)")
    ap.add_argument("--rerun", type=Path, metavar="MUTATION_JSON",
                    help="an earlier run's mutation.json (same --seed, --sample and modules): its killed mutants "
                         "stay killed, the others run again (after tests were added)")
    args = ap.parse_args()
    if args.sample < 0 or args.jobs < 1:
        ap.error("--sample must be >= 0 and --jobs >= 1")
    groups = args.group or list(GROUPS)
    args.out.mkdir(parents=True, exist_ok=True)
    ops = operators()
    equivalents = load_equivalents()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _stop_all)

    work = Path(tempfile.mkdtemp(prefix="cnibench-mutation-"))
    try:
        copies = [work / f"copy{i}" for i in range(args.jobs)]
        for c in copies:
            copy_tree(c)
        cov = coverage_map(copies[0], args.out, args.reuse_coverage)
        broken = frozenset(baseline_failures(args.out))
        if broken:
            print(f"coverage: {len(broken)} tests fail without a mutant and are left out: "
                  f"{', '.join(sorted(broken))}", file=sys.stderr)

        plan: list[tuple[str, Mutant, str]] = []
        scores = {g: GroupScore(g) for g in groups}
        for g in groups:
            candidates: list[tuple[Mutant, str]] = []
            for path in GROUPS[g]:
                source = (ROOT / path).read_text(encoding="utf-8")
                for m in enumerate_mutants(path, ops):
                    candidates.append((m, source))
            scores[g].generated = len(candidates)
            # one mutant per site: sites sampled uniformly, then one operator at the site
            by_site: dict[tuple[str, int, int], list[tuple[Mutant, str]]] = {}
            for m, src in candidates:
                by_site.setdefault((m.path, m.line, m.occurrence if m.operator.endswith("DropElement") else -1),
                                   []).append((m, src))
            sites = sorted(by_site)
            rng = random.Random(f"{args.seed}:{g}")  # each group's sample, whichever groups run
            rng.shuffle(sites)
            chosen = 0
            for site in sites:
                if args.sample and chosen >= args.sample:
                    break
                options = by_site[site]
                rng.shuffle(options)
                for m, src in options:
                    mutated = materialise(m, src, ops)
                    if mutated is not None:
                        plan.append((g, m, mutated))
                        chosen += 1
                        break
            scores[g].sampled = chosen

        print(f"mutants: {len(plan)} in {len(groups)} groups, {args.jobs} at once", file=sys.stderr)
        free = list(copies)
        lock = threading.Lock()
        done = [0]

        earlier: dict[tuple, dict] = {}
        if args.rerun:
            for rec in json.loads(args.rerun.read_text(encoding="utf-8"))["mutants"]:
                earlier[_run_key(rec)] = rec

        selections = {id(m): select(m, cov, broken) for _, m, _ in plan}

        def task(item: tuple[str, Mutant, str]) -> tuple[str, Mutant]:
            g, m, mutated = item
            reason = equivalent_reason(m, equivalents)
            before = earlier.get(_run_key(vars(m)))
            if reason:
                m.outcome, m.equivalent_reason = "equivalent", reason
            elif before and before["outcome"] in ("killed", "timeout") and m.operator != "core/ExceptionReplacer":
                m.outcome, m.detail, m.seconds = before["outcome"], "(earlier run) " + before["detail"], 0.0
            else:
                with lock:
                    copy = free.pop()
                try:
                    run_mutant(m, mutated, copy, selections[id(m)], broken)
                finally:
                    with lock:
                        free.append(copy)
            with lock:
                done[0] += 1
                print(f"[{done[0]}/{len(plan)}] {g:<20} {m.outcome:<10} {m.path}:{m.line} {m.operator} "
                      f"({m.tests} tests, {m.seconds} s)", file=sys.stderr, flush=True)
            return g, m

        for _, m, _ in plan:
            m.tests = len(selections[id(m)])
        results: list[tuple[str, Mutant]] = []
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs)
        try:
            results = list(pool.map(task, plan))
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            with RUNNING_LOCK:
                running = list(RUNNING)
            for proc in running:  # started between the signal and the cancel
                _kill_group(proc)
            print("mutation-score: interrupted; the copies of the tree are removed, nothing is written",
                  file=sys.stderr)
            return 130
        pool.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    for g, m in results:
        s = scores[g]
        if m.outcome in ("killed", "timeout"):
            s.killed += 1
        elif m.outcome == "survived":
            s.survived += 1
            s.survivors.append(f"{m.path}:{m.line} {m.operator}: {' | '.join(m.removed)} -> {' | '.join(m.added)}")
        elif m.outcome == "no-tests":
            s.no_tests += 1
            s.survivors.append(f"{m.path}:{m.line} {m.operator} (no test covers it): {' | '.join(m.removed)}")
        elif m.outcome == "equivalent":
            s.equivalent += 1
        else:
            s.errors += 1

    report = {"seed": args.seed, "sample": args.sample, "groups": [], "mutants": []}
    print(f"\n{'group':<20} {'generated':>9} {'sampled':>7} {'equiv':>5} {'killed':>6} {'survived':>8} "
          f"{'no test':>7} {'error':>5} {'score':>6}  95 % CI")
    for g in groups:
        s = scores[g]
        lo, hi = wilson(s.killed, s.scored)
        score = f"{100 * s.score:5.1f}%" if s.scored else "   n/a"
        ci = f"{100 * lo:.0f}-{100 * hi:.0f} %" if s.scored else "n/a"
        print(f"{g:<20} {s.generated:>9} {s.sampled:>7} {s.equivalent:>5} {s.killed:>6} {s.survived:>8} "
              f"{s.no_tests:>7} {s.errors:>5} {score:>6}  {ci}")
        report["groups"].append({**{k: v for k, v in asdict(s).items() if k != "survivors"},
                                 "score": s.score if s.scored else None, "ci95": [lo, hi] if s.scored else None})
    for g in groups:
        if scores[g].survivors:
            print(f"\nsurvivors, {g}:")
            for line in scores[g].survivors:
                print(f"  {line}")
    report["mutants"] = [{"group": g, **asdict(m)} for g, m in results]
    (args.out / "mutation.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"\nevery mutant and its diff: {args.out / 'mutation.json'}", file=sys.stderr)
    return 1 if any(scores[g].errors for g in groups) else 0


if __name__ == "__main__":
    sys.exit(main())
