"""``cnibench check``: the offline policy check (core in :mod:`cnibench.policy_check`).

The table (or with ``--json`` the findings as JSON) goes to stdout; the heading with ``--json``,
and every error, to stderr. Exit codes: 0 no mandatory violation, 3 a mandatory violation
(:attr:`ExitCode.POLICY`, as in ``matrix``), 2 a config error, 5 the program failed under the mocks."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any, Sequence

import typer
from rich.console import Console
from rich.table import Table

from cnibench.cli.console import err_console, fail, out_console
from cnibench.cli.extras import require_cloud
from cnibench.config import ConfigError
from cnibench.errors import CnibenchError, ExitCode
from cnibench.project import parse_overrides

_STYLE = {"pass": "green", "fail": "bold red", "warn": "yellow", "n/a": "dim"}


def render(findings: Sequence, stack: str, out: Console) -> None:
    table = Table(title=f"cnibench check --stack {stack}", show_lines=True)
    for col in ("rule", "level", "verdict", "message"):
        table.add_column(col, overflow="fold")
    for f in findings:
        table.add_row(
            f.rule, f.level.value, f"[{_STYLE[f.verdict]}]{f.verdict}[/]", "\n".join(f.messages) or "-",
        )
    out.print(table)
    failed = [f.rule for f in findings if f.blocking]
    warned = [f.rule for f in findings if f.verdict == "warn"]
    if failed:
        out.print(f"[bold red]{len(failed)} mandatory rule(s) violated[/]: {', '.join(failed)}")
    else:
        out.print(f"[green]no mandatory violation[/] ({len(warned)} advisory warning(s))")
    out.print(
        "This is an offline check under Pulumi's mocks; `pulumi preview --policy-pack policy` runs "
        "the same rules against the real providers."
    )


def findings_document(findings: Sequence, stack: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """What ``cnibench check --json`` prints."""
    failed = [f.rule for f in findings if f.blocking]
    return {
        "stack": stack,
        "overrides": overrides,
        "check": "offline (Pulumi mocks), not a pulumi preview",
        "findings": [{"rule": f.rule, "level": f.level.value, "verdict": f.verdict, "blocking": f.blocking,
                      "messages": list(f.messages)} for f in findings],
        "mandatory_violations": failed,
        "advisory_warnings": [f.rule for f in findings if f.verdict == "warn"],
        "exit_code": int(ExitCode.POLICY if failed else ExitCode.OK),
    }


def check(
    stack: str = typer.Option(..., "--stack", "-s", help="Stack name (stacks/Pulumi.<stack>.yaml, or a catalog variant)."),
    config: list[str] = typer.Option(
        [], "--config", "-c", help="Config override key=value (key with or without 'cnibench:'); repeatable.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the findings as JSON on stdout (the heading goes to stderr)."),
) -> None:
    """Offline policy check: run the program under Pulumi's mocks and evaluate the policy pack's rules.

    Exit 0 without a mandatory violation, 3 with one, 2 on a config error."""
    require_cloud("cnibench check")
    from cnibench import policy_check  # needs the cloud extra (pulumi)

    err = err_console()
    out = err if as_json else out_console()
    out.print(f"[bold]{policy_check.HEADING}[/]")
    try:
        overrides = parse_overrides(config)
        # with --json, stdout carries only the document: whatever the program prints goes to stderr
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            findings = policy_check.run_check(stack, overrides)
    except ConfigError as exc:
        raise fail(exc, err, f"configuration error (stack {stack})") from None
    except CnibenchError as exc:
        raise fail(exc, err, "the program failed under Pulumi's mocks") from None
    if as_json:
        sys.stdout.write(json.dumps(findings_document(findings, stack, dict(overrides)), indent=2) + "\n")
    else:
        render(findings, stack, out)
    if any(f.blocking for f in findings):
        raise typer.Exit(ExitCode.POLICY)


def register(app: typer.Typer) -> None:
    app.command()(check)
