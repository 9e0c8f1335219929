"""The console every command prints to, and the one way a command turns an error into its exit code."""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

from cnibench.errors import CnibenchError

# Wide enough for the tables when piped into a file or a design document.
console = Console(width=None if sys.stdout.isatty() else 200)


def err_console() -> Console:
    """Progress and diagnostics go to stderr; in logs and CI keep tables readable (160 columns)."""
    err = Console(stderr=True)
    if not err.is_terminal and "COLUMNS" not in os.environ:
        err = Console(stderr=True, width=160)
    return err


def fail(err: CnibenchError, out: Console, heading: str = "") -> typer.Exit:
    """Print ``err`` (each problem of a config error on its own line) and return the Exit to raise."""
    problems = getattr(err, "problems", None)
    if problems:
        out.print(f"[bold red]{heading or 'error'}[/]:")
        for problem in problems:
            out.print(f"  - {problem}", markup=False, highlight=False)
    else:
        out.print(f"[bold red]{heading or 'error'}[/]: ", end="")
        out.print(str(err), markup=False, highlight=False)
    return typer.Exit(int(err.exit_code))


__all__ = ["console", "err_console", "fail"]
