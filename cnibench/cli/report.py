"""``cnibench report``: the side-by-side comparison of saved result documents (core in :mod:`cnibench.report`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from cnibench.errors import ExitCode
from cnibench.report import comparison


def report(
    directory: Path = typer.Argument(..., exists=True, file_okay=False, help="Directory with result JSON files (searched recursively)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report directory (default: DIRECTORY/report)."),
) -> None:
    """Compare saved results of any origin (cloud matrix, lab, imported knb) side by side:
    Markdown + CSV table, PNG charts, and a copy of every result JSON."""
    console = Console(stderr=True)
    out = out or directory / "report"
    paths, skipped = comparison.find_results(directory, exclude=out)
    for path, why in skipped:
        console.print(f"[yellow]skipped[/] {path}: {why}")
    if not paths:
        console.print(f"[red]no result documents (schema v1) under {directory}[/]")
        raise typer.Exit(ExitCode.REFUSED)
    written = comparison.write_report(comparison.load_results(paths), out)
    for kind, path in written.items():
        if isinstance(path, Path):
            console.print(f"{kind}: {path}")
    sys.stdout.write(written["markdown"].read_text())


def register(app: typer.Typer) -> None:
    app.command()(report)
