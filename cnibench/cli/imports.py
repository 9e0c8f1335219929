"""``cnibench import``: bring results of other tools into the cnibench result document.

``cnibench import knb FILE...`` reads knb reports (``knb -o json``, ``-o yaml`` or the default
text report; ``-`` for stdin) and prints the normalized result document (schema v1,
``origin: knb``) as JSON, or writes one document per report into ``--out DIR``.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any, BinaryIO

import jsonschema
import typer

from cnibench import knb, results
from cnibench.cli.console import check_output_dir, check_output_file, write_output_file
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
    ``<(knb -o json ...)``; a directory or a device that never ends is refused).

    The file is opened without blocking: opening a named pipe nobody writes to would wait
    forever; a pipe is then read as one (to its end), and a pipe with no writer reads as empty."""
    if file == "-":
        return _read_bounded(sys.stdin.buffer, "stdin")
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise InputError(f"cannot read {file}: is a directory")
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
            raise InputError(f"cannot read {file}: neither a file nor a pipe")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb") as fh:
            fd = -1
            data = _read_bounded(fh, file)
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror or exc}") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if not data and stat.S_ISFIFO(mode):
        raise InputError(f"{file}: a pipe that gave no data (nothing was writing to it)")
    return data


def _subject_from(file: str, report_name: str) -> str:
    """A name a reader can tell apart: the file's name without its extension (``lab-run1``
    for ``lab-run1.json``); knb's run name (``knb-12885`` by default) only for stdin and pipes."""
    if file == "-" or file.startswith(("/dev/", "/proc/")):  # stdin, <(knb ...) as /dev/fd/63
        return report_name
    stem = Path(file).name
    for ext in (".json", ".yaml", ".yml", ".txt", ".knb"):
        if stem.lower().endswith(ext) and len(stem) > len(ext):
            stem = stem[: -len(ext)]
            break
    return stem[:200] if stem.isprintable() and stem.strip() else report_name


@import_app.command("knb")
def import_knb(
    files: list[str] = typer.Argument(
        ..., metavar="FILE",
        help="knb reports: the output of 'knb -o json', '-o yaml' or the text report; - for stdin"),
    subject: str = typer.Option(
        None, "--subject",
        help="Name of the subject (one file only; default: the file's name without its extension, "
             "knb's run name for stdin)."),
    duration: float = typer.Option(
        None, "--duration",
        help=f"The -d (seconds per test) the knb runs used, whole seconds in {knb.MIN_DURATION_S}.."
             f"{knb.MAX_DURATION_S}; it is not in the report "
             "(default: knb's 10 s).",
    ),
    cpus: int = typer.Option(
        None, "--cpus",
        help="CPUs of each node of the knb runs (not in a knb report): with it, the idle-corrected CPU cost is "
             "also given as CPU seconds per Gbit/s."),
    out: Path = typer.Option(
        None, "--out", "-o",
        help="Write the document to this file instead of stdout; with several FILEs, a directory "
             "(created if missing) that gets one <subject>.json per FILE."),
    output: Path = typer.Option(None, "--output", hidden=True, help="Old name of --out."),
) -> None:
    """Print knb reports as cnibench result documents (JSON, schema v1).

    Every report is read and checked before anything is written: a bad one writes nothing.
    """
    def refuse(message: str) -> typer.Exit:
        typer.echo(f"cnibench import knb: {message}", err=True)
        return typer.Exit(ExitCode.REFUSED)

    if out is not None and output is not None:
        raise refuse("--out and --output are one option (--output is its old name): give it once")
    flag = "--output" if output is not None else "--out"  # the name the user typed
    out = out if out is not None else output
    # every option before the input is read: nothing is consumed or written for a bad one
    if duration is not None and not knb.is_knb_duration(duration):
        raise refuse(f"--duration {duration!r}: the seconds per test of the knb run, whole seconds in "
                     f"{knb.MIN_DURATION_S}..{knb.MAX_DURATION_S} (knb passes -d to iperf3 -t, which reads whole "
                     "seconds and allows at most 86400)")
    if cpus is not None and not 1 <= cpus <= knb.MAX_CPUS:
        raise refuse(f"--cpus {cpus}: the CPU count of each node of the knb run, an integer in 1..{knb.MAX_CPUS}")
    if subject is not None and not (0 < len(subject) <= 200 and subject.isprintable()):
        raise refuse(f"--subject {subject[:60]!r}: 1 to 200 printable characters")
    several = len(files) > 1
    if several and subject is not None:
        raise refuse(f"--subject {subject!r} with {len(files)} files: each document needs a name of its own; "
                     "drop --subject (each is named after its file) or import the files one at a time")
    if several and out is None:
        raise refuse(f"{len(files)} files and no --out: give --out DIR (one <subject>.json per file is written "
                     "there), or import one file at a time to print its document")
    if files.count("-") > 1:
        raise refuse("- (stdin) given more than once")
    try:
        if out is not None:
            if several:
                if not out.exists() and not out.absolute().parent.is_dir():  # one level is created, not a tree
                    raise InputError(f"{flag} {out}: the directory {out.absolute().parent} does not exist")
                check_output_dir(out, flag)
            else:
                check_output_file(out, flag)
            for f in files:
                if f != "-" and Path(f).exists() and _same_file(Path(f), out):
                    raise InputError(f"{flag} {out}: is the input {f}; write the document elsewhere")
        blobs = [(f, _read(f)) for f in files]
    except InputError as exc:
        raise refuse(str(exc)) from None
    docs: list[tuple[str, dict[str, Any]]] = []
    for f, data in blobs:
        try:
            report = knb.parse_knb(data)
            parsed = knb.to_document(report, subject=subject or _subject_from(f, report.name), duration_s=duration,
                                     cpus=cpus)
            results.validate(parsed)
        except InputError as exc:  # ParseError: the report; InputError: an option
            raise refuse(f"{f}: {exc}" + (" (nothing written)" if several else "")) from None
        except jsonschema.ValidationError as exc:  # a bug on our side, not in the report
            typer.echo(f"cnibench import knb: {f}: the result does not follow the schema: {exc.message}", err=True)
            raise typer.Exit(ExitCode.INTERNAL) from None
        docs.append((f, parsed))
    if several:
        assert out is not None
        names = [_src_slug(d["subjects"][0]["name"]) + ".json" for _, d in docs]
        for name in dict.fromkeys(n for n in names if names.count(n) > 1):
            same = [f for (f, _), n in zip(docs, names) if n == name]
            raise refuse(f"{' and '.join(same)} would both be written as {out / name} (a document is named after "
                         "its file, without the extension); rename one of them (nothing written)")
        out.mkdir(parents=True, exist_ok=True)
        targets = [out / n for n in names]
    else:
        targets = [out] if out is not None else []
    if not targets:
        sys.stdout.write(json.dumps(docs[0][1], indent=2, allow_nan=False) + "\n")
        return
    for i, ((f, doc), target) in enumerate(zip(docs, targets)):
        try:
            write_output_file(target, json.dumps(doc, indent=2, allow_nan=False) + "\n")
        except (OSError, InputError) as exc:
            typer.echo(f"cnibench import knb: {flag} {target}: cannot write: "
                       f"{getattr(exc, 'strerror', None) or exc} "
                       + (f"({i} of {len(docs)} documents written before it)" if several else "(nothing written)"),
                       err=True)
            raise typer.Exit(ExitCode.FAILED) from None
        typer.echo(f"wrote {target} ({f}, subject {doc['subjects'][0]['name']!r})", err=True)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _src_slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:120] or "knb"


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
