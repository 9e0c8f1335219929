"""One exit-code table for every command: the README's table is the code's, and the commands use it."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from cnibench.cli import app
from cnibench.config import ConfigError
from cnibench.errors import EXIT_MEANINGS, ExitCode, InputError, ParseError

ROOT = Path(__file__).resolve().parent.parent


def test_readme_table_is_the_code_table():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Exit codes (every command)", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", section, flags=re.M))
    assert {int(k): v for k, v in rows.items()} == {int(k): v for k, v in EXIT_MEANINGS.items()}
    assert set(EXIT_MEANINGS) == set(ExitCode)


def test_input_errors_carry_the_refused_code():
    for err in (ConfigError(["cnibench:region: 'x' is not an AWS region name"]), ParseError("iperf3: no end"),
                InputError("bad")):
        assert err.exit_code == ExitCode.REFUSED
        assert isinstance(err, ValueError)


def test_commands_use_the_table():
    runner = CliRunner()
    missing = runner.invoke(app, ["import", "knb", "/nonexistent/knb.json"])
    assert missing.exit_code == ExitCode.REFUSED
    no_results = runner.invoke(app, ["report", str(ROOT / "docs")])
    assert no_results.exit_code == ExitCode.REFUSED and "no result documents" in no_results.output
    policy = runner.invoke(app, ["check", "--stack", "flannel-aws-vpc", "-c", "routeTableQuota=1"])
    assert policy.exit_code == ExitCode.POLICY, policy.output
