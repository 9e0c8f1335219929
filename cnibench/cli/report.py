"""``cnibench report``: the comparison of saved result documents (core in :mod:`cnibench.report`)."""

from __future__ import annotations

import os
import stat
import sys
from enum import Enum
from pathlib import Path
from typing import NoReturn, Optional, Sequence

import typer
from rich.console import Console

from cnibench.cli.console import check_output_dir
from cnibench.errors import ExitCode, InputError
from cnibench.report import comparison, sources


class Format(str, Enum):
    markdown = "markdown"
    json = "json"


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


def _default_out(paths: Sequence[Path]) -> Path:
    if len(paths) == 1 and paths[0].is_dir():
        return paths[0] / "report"
    return Path("report")


def _input_paths(raw: Sequence[str]) -> list[Path]:
    """Each PATH as given, refused (InputError) when empty or when it does not exist."""
    out = []
    for p in raw:
        if not p:
            raise InputError("PATH '': an empty argument (it would mean the working directory); give result "
                             "documents (*.json) or directories holding them, e.g. '.'")
        try:
            os.stat(p)
        except OSError as exc:
            why = "does not exist" if isinstance(exc, FileNotFoundError) else (exc.strerror or str(exc))
            raise InputError(f"PATH {p}: {why}; give result documents (*.json) or directories holding them") from None
        out.append(Path(p))
    return out


def _check_report_dir(out: Path, flag: str) -> None:
    """``out`` must be new, empty, or the folder of an earlier report (its marker, or the
    outputs of a report older than the marker): anything else would mix the report's files
    (and overwrite any of the same name) with what is there, and its own files would not be read."""
    if not out.is_dir() or sources.report_outputs(out) is not None:
        return
    try:
        with os.scandir(out) as it:
            first = next(it, None)
    except OSError as exc:
        raise InputError(f"{flag} {out}: cannot list it: {exc.strerror or exc}") from None
    if first is not None:
        raise InputError(f"{flag} {out}: an existing directory that is neither empty nor a report folder (no "
                         f"{sources.MARKER}; it holds {first.name}, ...): give a new or empty directory, or the "
                         "folder of an earlier report")


def report(
    raw_paths: list[str] = typer.Argument(..., metavar="PATH", help="Result documents (JSON) and directories "
                                          "holding them (searched recursively; what an earlier report wrote is "
                                          "never read)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report directory: new, empty or an earlier "
                                       "report's (default: DIR/report for one directory, else ./report)."),
    fmt: Format = typer.Option(Format.markdown, "--format", help="What to print on stdout: the Markdown report or "
                               "the comparison as JSON."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
    comparable: Optional[list[str]] = typer.Option(None, "--comparable", help="Source ids (comma-separated) to "
                                                   "compare as one environment; repeatable. Ids: the Sources table."),
) -> None:
    """Compare saved results of any origin (cloud matrix, lab, imported knb), one environment
    at a time: ranking per metric with the difference to the best and to the host network (95 %
    intervals), Markdown, CSV, JSON, PNG charts, and a copy of every result document."""
    console = Console(stderr=True, soft_wrap=True)

    def refuse(message: str) -> NoReturn:
        console.print(f"cnibench report: {message}", style="red", markup=False, highlight=False)
        raise typer.Exit(ExitCode.REFUSED)

    try:
        paths = _input_paths(raw_paths)
        # (--out '' arrives as '.', the working directory: refused below unless it is empty or a report's)
        flag = "--out" if out is not None else "--out (the default)"
        out = out or _default_out(paths)
        check_output_dir(out, flag)
        _check_report_dir(out, flag)
    except InputError as exc:
        refuse(str(exc))
    found, skipped = sources.collect(paths, exclude=[out])
    for path, why in skipped:
        console.print("[yellow]skipped[/] ", end="")
        console.print(f"{path}: {why}", markup=False, highlight=False)
    if not found:
        refuse(f"no result documents (schema v1 or v2) in {', '.join(str(p) for p in paths)}")
    found = sources.assign_ids(found)
    sets = [{i.strip() for i in c.split(",") if i.strip()} for c in comparable or ()]
    try:
        comp = comparison.build(found, comparable=sets, skipped=skipped)
    except ValueError as exc:
        refuse(str(exc))
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
        written = comparison.write_report(comp, out)
    except OSError as exc:
        console.print(f"cnibench report: cannot write the report in {out}: {exc.strerror or exc}"
                      f"{f' ({exc.filename})' if exc.filename else ''}", style="red", markup=False, highlight=False)
        raise typer.Exit(ExitCode.FAILED) from None
    for g in comp.groups:
        console.print(f"group {g.id}: {', '.join(s.id for s in g.sources)}", markup=False, highlight=False)
    for kind in ("markdown", "csv", "json"):
        console.print(f"{kind}: {written[kind]}", markup=False, highlight=False)
    for gid, charts in written["charts"].items():
        for name, path in charts.items():
            console.print(f"chart ({gid}, {name}): {path}", markup=False, highlight=False)
    console.print(f"copies: {len(written['results'])} in {out / 'results'}", markup=False, highlight=False)
    if as_json or fmt == Format.json:
        sys.stdout.write(comparison.to_json(comp))
    else:
        sys.stdout.write(written["markdown"].read_text())


def register(app: typer.Typer) -> None:
    app.command()(report)
