"""``cnibench check``: the offline preflight.

Runs the real Pulumi program for a stack under Pulumi's mocks (no cloud account, no Pulumi CLI),
then evaluates the policy pack's rules (:mod:`cnibench.policy_rules`) on the resources it
registered. It is not a ``pulumi preview``: provider-side validation and the cloud's own state
(quotas in use, the AMI's real kernel) are not consulted.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import typer
from rich.console import Console
from rich.table import Table

from cnibench.config import NAMESPACE, ConfigError, parse_config, stack_config
from cnibench.policy_rules import RULES, Finding, evaluate
from cnibench.policy_rules.offline import stack_from_registered

HEADING = "offline preflight (Pulumi mocks), not a pulumi preview"
EXIT_VIOLATION = 1
EXIT_CONFIG = 2
EXIT_PROGRAM = 3  # the program itself failed under the mocks (neither a config nor a policy verdict)
_CONFIG_PREFIX = "invalid cnibench configuration:"
_STYLE = {"pass": "green", "fail": "bold red", "warn": "yellow", "n/a": "dim"}


def parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    """``["splitSubnets=true", "cnibench:podCidr=10.1.0.0/16"]`` -> keys without namespace."""
    out: dict[str, str] = {}
    problems = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"-c {pair!r}: expected key=value, e.g. -c splitSubnets=true")
            continue
        if key.startswith(f"{NAMESPACE}:"):
            key = key[len(NAMESPACE) + 1:]
        elif ":" in key:
            problems.append(f"-c {pair!r}: only {NAMESPACE}:* keys can be overridden")
            continue
        out[key] = value
    if problems:
        raise ConfigError(problems)
    return out


def run_check(stack: str, overrides: Mapping[str, Any] | None = None) -> list[Finding]:
    """Validate the config, run the program offline, evaluate every rule. Raises ConfigError."""
    from cnibench.offline import PROJECT_DIR, run_program

    values = stack_config(PROJECT_DIR, stack, overrides)
    parse_config(values)  # every config problem at once, before the program runs
    try:
        run = run_program(stack, overrides)
    except Exception as exc:  # noqa: BLE001 - components report config errors as pulumi.RunError
        text = str(exc).strip()
        if isinstance(exc, ConfigError):
            raise
        if text.startswith(_CONFIG_PREFIX):  # ConfigError's own format: one "  - " line per problem
            body = "\n" + text[len(_CONFIG_PREFIX):].strip("\n")
            raise ConfigError(p.strip() for p in body.split("\n  - ") if p.strip()) from None
        raise ProgramError(f"{type(exc).__name__}: {text}") from exc
    return evaluate(RULES, stack_from_registered(run.resources, run.config))


class ProgramError(RuntimeError):
    """The Pulumi program failed under the mocks for a reason other than its config."""


def render(findings: Sequence[Finding], stack: str, console: Console) -> None:
    table = Table(title=f"cnibench check --stack {stack}: {HEADING}", show_lines=True)
    for col in ("rule", "level", "verdict", "message"):
        table.add_column(col, overflow="fold")
    for f in findings:
        table.add_row(
            f.rule, f.level.value, f"[{_STYLE[f.verdict]}]{f.verdict}[/]", "\n".join(f.messages) or "-",
        )
    console.print(table)
    failed = [f.rule for f in findings if f.blocking]
    warned = [f.rule for f in findings if f.verdict == "warn"]
    if failed:
        console.print(f"[bold red]{len(failed)} mandatory rule(s) violated[/]: {', '.join(failed)}")
    else:
        console.print(f"[green]no mandatory violation[/] ({len(warned)} advisory warning(s))")
    console.print(
        "This is an offline preflight under Pulumi's mocks; `pulumi preview --policy-pack policy` runs "
        "the same rules against the real providers."
    )


def register(app: typer.Typer) -> None:
    @app.command()
    def check(
        stack: str = typer.Option(..., "--stack", "-s", help="Stack name (stacks/Pulumi.<stack>.yaml)."),
        config: list[str] = typer.Option(
            [], "--config", "-c", help="Config override key=value (key with or without 'cnibench:'); repeatable.",
        ),
    ) -> None:
        """Offline preflight: run the program under Pulumi's mocks and evaluate the policy pack's rules."""
        from cnibench.cli import console

        console.print(f"[bold]{HEADING}[/]")
        try:
            findings = run_check(stack, parse_overrides(config))
        except ConfigError as err:
            console.print(f"[bold red]configuration error[/] (stack {stack}):")
            for problem in err.problems:
                console.print(f"  - {problem}", markup=False)
            raise typer.Exit(EXIT_CONFIG) from None
        except ProgramError as err:
            console.print("[bold red]the program failed under Pulumi's mocks[/]:")
            console.print(str(err), markup=False)
            raise typer.Exit(EXIT_PROGRAM) from None
        render(findings, stack, console)
        if any(f.blocking for f in findings):
            raise typer.Exit(EXIT_VIOLATION)
