"""One exit-code table for every command (README "Exit codes", cnibench/errors.py), and the
commands' answers that it defines: a policy violation is 3 in ``check`` and in ``matrix``; an
answered "no" is not a failure (0; 4 in ``matrix --cleanup``, whose stacks still exist); a
question nobody can answer (stdin closed, no ``--yes``) is refused (2); a missing Pulumi CLI is 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cnibench import matrix as mx
from cnibench.cli import app
from cnibench.cli.console import NoAnswer
from cnibench.cli.matrix import run_matrix_command
from cnibench.errors import EXIT_MEANINGS, ExitCode

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def readme_table() -> dict[int, str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Exit codes (every command)", 1)[1].split("\n## ", 1)[0]
    return {int(code): meaning for code, meaning in re.findall(r"^\| (\d+) \| (.+?) \|$", section, flags=re.M)}


def test_the_readme_table_is_the_codes_constants():
    table = readme_table()
    assert sorted(table) == sorted(int(c) for c in ExitCode)
    for code in ExitCode:
        assert table[int(code)] == EXIT_MEANINGS[code], code.name
    assert (ExitCode.OK, ExitCode.FAILED, ExitCode.REFUSED, ExitCode.POLICY, ExitCode.LEFT_BEHIND,
            ExitCode.INTERNAL, ExitCode.INTERRUPTED) == (0, 1, 2, 3, 4, 5, 130)
    assert "answered no" in table[0] and "--yes" in table[2]


def test_the_command_rows_of_the_readme_use_the_table():
    readme = (ROOT / "README.md").read_text()
    commands = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    check_row = next(line for line in commands.splitlines() if line.startswith("| `cnibench check"))
    assert f"exit {int(ExitCode.POLICY)} on a mandatory violation" in check_row
    for code in map(int, re.findall(r"exit (\d+)", commands)):
        assert code in {int(c) for c in ExitCode}, code


def test_the_lab_readme_uses_the_table():
    lab = (ROOT / "cnibench" / "lab" / "README.md").read_text()
    sentence = lab.split("Exit codes", 1)[1].split("\n\n", 1)[0]
    codes = {int(c) for c in re.findall(r"\b(\d+)\b(?= [a-z(])", sentence)}
    assert codes and codes <= {int(c) for c in ExitCode}
    assert "1 a datapath" in " ".join(sentence.split()) and "3 a datapath" not in sentence


class NoStacks:
    """A StackBackend that must not be used (everything here stops before the first stack)."""

    backend_url = "file:///nowhere"

    def create(self, name):
        pytest.fail(f"created {name}")

    def select(self, name):
        pytest.fail(f"selected {name}")

    def remove(self, name):
        pytest.fail(f"removed {name}")

    def list_stacks(self):
        return []


def matrix(tmp_path, confirm, preflight=lambda s, o: []):
    console = Console(file=open(tmp_path / "c.txt", "w"), width=200)
    code = run_matrix_command(mx.MatrixOptions(variants=("ipvlan",), out=tmp_path / "out"),
                              backend_factory=NoStacks, preflight=preflight, confirm=confirm, console=console,
                              report=False, state_dir=tmp_path / "state")
    console.file.close()
    return code, (tmp_path / "c.txt").read_text()


def test_matrix_answered_no_is_0_and_unanswered_is_2(tmp_path):
    code, text = matrix(tmp_path, lambda q: False)
    assert code == ExitCode.OK and "stopped at your answer: nothing was created" in text

    def closed(question):
        raise NoAnswer("no answer (stdin is closed or not a terminal): pass --yes to proceed unattended")

    code, text = matrix(tmp_path, closed)
    assert code == ExitCode.REFUSED and "pass --yes" in text


def test_matrix_policy_violation_is_3_like_check(tmp_path):
    class Finding:
        rule, verdict, messages = "l2-adjacency", "fail", ("nodes are in two subnets",)
        blocking = True

    code, text = matrix(tmp_path, lambda q: pytest.fail("asked"), preflight=lambda s, o: [Finding()])
    assert code == ExitCode.POLICY == 3 and "l2-adjacency" in text
    res = runner.invoke(app, ["check", "--stack", "flannel-aws-vpc", "-c", "routeTableQuota=1"])
    assert res.exit_code == ExitCode.POLICY, res.output


def test_matrix_through_the_cli_no_and_closed_stdin(tmp_path, monkeypatch):
    monkeypatch.setenv("CNIBENCH_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(mx, "AutomationBackend", lambda *a, **k: NoStacks())
    monkeypatch.setattr(mx, "default_preflight", lambda: (lambda s, o: []))
    args = ["matrix", "-v", "ipvlan", "--out", str(tmp_path / "out")]
    res = runner.invoke(app, args, input="n\n")
    assert res.exit_code == ExitCode.OK and "stopped at your answer" in res.stderr, res.output
    assert "[y/N]" in res.stderr and res.stdout == ""  # the question goes to stderr, not into stdout
    res = runner.invoke(app, args, input="")
    assert res.exit_code == ExitCode.REFUSED and "pass --yes" in " ".join(res.stderr.split()), res.output
    assert not (tmp_path / "out").exists()
