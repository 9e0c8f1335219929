"""``cnibench import``: bring results of other tools into the cnibench result document.

``cnibench import knb FILE`` reads a knb report (``knb -o json``, ``-o yaml`` or the default
text report; ``-`` for stdin) and prints the normalized result document (schema v1,
``origin: knb``) as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import BinaryIO

import jsonschema
import typer

from cnibench import knb
from cnibench.cli.console import check_output_file, write_output_file
from cnibench.errors import ExitCode, InputError

import_app = typer.Typer(help="Import results of other tools as cnibench result documents.", no_args_is_help=True)


def _read_bounded(fh: BinaryIO, name: str) -> bytes:
    data = fh.read(knb.MAX_REPORT_BYTES + 1)
    if len(data) > knb.MAX_REPORT_BYTES:
        raise InputError(f"{name}: larger than the {knb.MAX_REPORT_BYTES} bytes an import reads "
                         "(a knb report has a few thousand)")
    return data


def _read(file: str) -> bytes:
    """The report's bytes, at most knb.MAX_REPORT_BYTES (stdin, a file, or a pipe such as
    ``<(knb -o json ...)``; a directory or a device that never ends is refused)."""
    if file == "-":
        return _read_bounded(sys.stdin.buffer, "stdin")
    try:
        with open(file, "rb") as fh:
            return _read_bounded(fh, file)
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror or exc}") from None


@import_app.command("knb")
def import_knb(
    file: str = typer.Argument(..., help="knb report: the output of 'knb -o json', '-o yaml' or the text report; - for stdin"),
    subject: str = typer.Option(None, "--subject", help="Name of the subject (default: the knb run name)."),
    duration: float = typer.Option(
        None, "--duration",
        help=f"The -d (seconds per test) the knb run used, in (0, {knb.MAX_DURATION_S}]; it is not in the report "
             "(default: knb's 10 s).",
    ),
    output: Path = typer.Option(None, "--output", "-o", help="Write the document to this file instead of stdout."),
) -> None:
    """Print a knb report as a cnibench result document (JSON, schema v1)."""
    def refuse(message: str) -> typer.Exit:
        typer.echo(f"cnibench import knb: {message}", err=True)
        return typer.Exit(ExitCode.REFUSED)

    # every option before the input is read: nothing is consumed or written for a bad one
    if duration is not None and not (duration == duration and 0 < duration <= knb.MAX_DURATION_S):
        raise refuse(f"--duration {duration!r}: the seconds per test of the knb run, a number in "
                     f"(0, {knb.MAX_DURATION_S}] (knb passes -d to iperf3 -t, which allows at most 86400)")
    if subject is not None and not (0 < len(subject) <= 200 and subject.isprintable()):
        raise refuse(f"--subject {subject[:60]!r}: 1 to 200 printable characters")
    try:
        if output is not None:
            check_output_file(output, "--output")
        data = _read(file)
    except InputError as exc:
        raise refuse(str(exc)) from None
    try:
        doc = knb.import_report(data, subject=subject, duration_s=duration)
    except InputError as exc:  # ParseError: the report; InputError: an option
        raise refuse(f"{file}: {exc}") from None
    except jsonschema.ValidationError as exc:  # a bug on our side, not in the report
        typer.echo(f"cnibench import knb: {file}: the result does not follow the schema: {exc.message}", err=True)
        raise typer.Exit(ExitCode.INTERNAL) from None
    text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    if output:
        try:
            write_output_file(output, text)
        except (OSError, InputError) as exc:
            typer.echo(f"cnibench import knb: --output {output}: cannot write: "
                       f"{getattr(exc, 'strerror', None) or exc} (nothing written)", err=True)
            raise typer.Exit(ExitCode.FAILED) from None
        typer.echo(f"wrote {output}", err=True)
    else:
        sys.stdout.write(text)


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
