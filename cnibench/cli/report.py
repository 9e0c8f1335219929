"""``cnibench report``: the side-by-side comparison of saved result documents (core in :mod:`cnibench.report`)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Optional, Sequence

import typer
from rich.console import Console

from cnibench.cli.console import check_output_dir
from cnibench.errors import ExitCode, InputError
from cnibench.report import comparison, sources


def _private(found: Sequence[sources.Source]) -> list[Path]:
    """The documents others may not read: their copies must not become readable to others."""
    out = []
    for src in found:
        try:
            if src.path is not None and not src.path.stat().st_mode & stat.S_IROTH:
                out.append(src.path)
        except OSError:
            out.append(src.path)  # type: ignore[arg-type]
    return out


def report(
    directory: Path = typer.Argument(..., exists=True, file_okay=False, help="Directory with result JSON files (searched recursively)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report directory (default: DIRECTORY/report)."),
) -> None:
    """Compare saved results of any origin (cloud matrix, lab, imported knb) side by side:
    Markdown + CSV table, PNG charts, and a copy of every result JSON."""
    console = Console(stderr=True)
    out = out or directory / "report"
    try:
        check_output_dir(out, "--out")
    except InputError as exc:
        console.print(f"cnibench report: {exc}", style="red", markup=False, highlight=False)
        raise typer.Exit(ExitCode.REFUSED) from None
    found, skipped = sources.find_results(directory, exclude=out)
    for path, why in skipped:
        console.print("[yellow]skipped[/] ", end="")
        console.print(f"{path}: {why}", markup=False, highlight=False)
    if not found:
        console.print(f"[red]no result documents (schema v1 or v2) under {directory}[/]")
        raise typer.Exit(ExitCode.REFUSED)
    private = _private(found)
    try:
        if private:
            # the copies (out/results) hold whole documents: as private as the most private input.
            # The directory is made (or restricted) before any copy is written, so no copy is ever
            # readable to others, whatever its own mode.
            copies = out / "results"
            copies.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(copies, 0o700)
            console.print(f"{copies}: mode 700 (not readable to others, like {private[0]})", highlight=False)
        written = comparison.write_report(found, out)
    except OSError as exc:
        console.print(f"cnibench report: cannot write the report in {out}: {exc.strerror or exc}"
                      f"{f' ({exc.filename})' if exc.filename else ''}", style="red", markup=False, highlight=False)
        raise typer.Exit(ExitCode.FAILED) from None
    for kind, path in written.items():
        if isinstance(path, Path):
            console.print(f"{kind}: {path}")
    sys.stdout.write(written["markdown"].read_text())


def register(app: typer.Typer) -> None:
    app.command()(report)
