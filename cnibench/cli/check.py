"""``cnibench check``: the offline policy check (core in :mod:`cnibench.policy_check`)."""

from __future__ import annotations

from typing import Sequence

import typer
from rich.console import Console
from rich.table import Table

from cnibench.cli.console import console, fail
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


def check(
    stack: str = typer.Option(..., "--stack", "-s", help="Stack name (stacks/Pulumi.<stack>.yaml, or a catalog variant)."),
    config: list[str] = typer.Option(
        [], "--config", "-c", help="Config override key=value (key with or without 'cnibench:'); repeatable.",
    ),
) -> None:
    """Offline policy check: run the program under Pulumi's mocks and evaluate the policy pack's rules."""
    require_cloud("cnibench check")
    from cnibench import policy_check  # needs the cloud extra (pulumi)

    console.print(f"[bold]{policy_check.HEADING}[/]")
    try:
        findings = policy_check.run_check(stack, parse_overrides(config))
    except ConfigError as err:
        raise fail(err, console, f"configuration error (stack {stack})") from None
    except CnibenchError as err:
        raise fail(err, console, "the program failed under Pulumi's mocks") from None
    render(findings, stack, console)
    if any(f.blocking for f in findings):
        raise typer.Exit(ExitCode.POLICY)


def register(app: typer.Typer) -> None:
    app.command()(check)
