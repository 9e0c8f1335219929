"""``cnibench import``: bring results of other tools into the cnibench result document.

``cnibench import knb FILE`` reads a knb report (``knb -o json``, ``-o yaml`` or the default
text report; ``-`` for stdin) and prints the normalized result document (schema v1,
``origin: knb``) as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jsonschema
import typer

from cnibench import knb
from cnibench.errors import ExitCode, ParseError

import_app = typer.Typer(help="Import results of other tools as cnibench result documents.", no_args_is_help=True)


@import_app.command("knb")
def import_knb(
    file: str = typer.Argument(..., help="knb report: the output of 'knb -o json', '-o yaml' or the text report; - for stdin"),
    subject: str = typer.Option(None, "--subject", "-s", help="Name of the subject (default: the knb run name)."),
    duration: float = typer.Option(
        None, "--duration", "-d", min=0.001,
        help="The -d (seconds per test) the knb run used; it is not in the report (default: knb's 10 s).",
    ),
    output: Path = typer.Option(None, "--output", "-o", help="Write the document to this file instead of stdout."),
) -> None:
    """Print a knb report as a cnibench result document (JSON, schema v1)."""
    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        typer.echo(f"cnibench import knb: cannot read {file}: {exc.strerror or exc}", err=True)
        raise typer.Exit(ExitCode.REFUSED) from None
    try:
        doc = knb.import_report(data, subject=subject, duration_s=duration)
    except ParseError as exc:
        typer.echo(f"cnibench import knb: {file}: {exc}", err=True)
        raise typer.Exit(ExitCode.REFUSED) from None
    except jsonschema.ValidationError as exc:  # a bug on our side, not in the report
        typer.echo(f"cnibench import knb: {file}: the result does not follow the schema: {exc.message}", err=True)
        raise typer.Exit(ExitCode.INTERNAL) from None
    text = json.dumps(doc, indent=2) + "\n"
    if output:
        output.write_text(text)
        typer.echo(f"wrote {output}", err=True)
    else:
        sys.stdout.write(text)


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
