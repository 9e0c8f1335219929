"""The console every command prints to, and the one way a command turns an error into its exit code."""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

import typer
from rich.console import Console

from cnibench.errors import CnibenchError, InputError
from cnibench.files import write_atomically


def out_console() -> Console:
    """The console of a command's own output (stdout): the terminal's width, or ``COLUMNS``
    when set; piped into a file or a design document, 200 columns so the tables stay readable."""
    wide = sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit()
    return Console(width=None if wide else 200)


# kept for callers that print at import-time width (new code: out_console() at call time)
console = out_console()


class NoAnswer(Exception):
    """A confirmation question got no answer: stdin is closed or not a terminal (give --yes)."""


def ask(question: str) -> bool:
    """Ask ``question`` on stderr (stdout stays for a command's output) and read y/N from stdin.
    An empty answer is no; end of input raises :class:`NoAnswer`, so a script without ``--yes``
    is refused (exit 2) rather than taken for a "no" (exit 0). Ctrl-C raises KeyboardInterrupt."""
    while True:
        sys.stderr.write(f"{question} [y/N]: ")
        sys.stderr.flush()
        line = sys.stdin.readline()
        if not line:
            sys.stderr.write("\n")
            raise NoAnswer(f"no answer to {question!r} (stdin is closed or not a terminal): pass --yes to proceed "
                           "unattended")
        answer = line.strip().lower()
        if answer in ("y", "yes"):
            return True
        if answer in ("", "n", "no"):
            return False
        sys.stderr.write("answer y or n\n")


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


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def check_output_dir(path: Path, flag: str) -> None:
    """Refuse, before any work, a directory a command could not write into: an existing file, a
    parent that is a file, or a place where nothing can be created (read-only, no permission).
    Leaves nothing behind: the probe (a temporary file or directory) is removed again."""
    try:
        exists, is_dir = os.path.lexists(path), path.is_dir()
    except OSError as exc:  # a parent we may not search (mode 700 of another user)
        raise InputError(f"{flag} {path}: cannot look at it: {exc.strerror or exc}") from None
    if exists and not is_dir:
        raise InputError(f"{flag} {path}: exists and is not a directory; give a directory (it is created if missing)")
    base = path if is_dir else _nearest_existing(path)
    if not base.is_dir():
        raise InputError(f"{flag} {path}: {base} is not a directory, so {path} cannot be created")
    try:
        if base == path:
            fd, probe = tempfile.mkstemp(dir=base, prefix=".cnibench-probe-")
            os.close(fd)
            os.unlink(probe)
        else:
            os.rmdir(tempfile.mkdtemp(dir=base, prefix=".cnibench-probe-"))
    except OSError as exc:
        where = "cannot write into it" if base == path else f"cannot create it in {base}"
        raise InputError(f"{flag} {path}: {where}: {exc.strerror or exc}") from None


def _stat(path: Path, flag: str) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:  # absent, or a dangling symbolic link (replaced like an absent file)
        return None
    except OSError as exc:
        raise InputError(f"{flag} {path}: {exc.strerror or exc}") from None


def check_output_file(path: Path, flag: str) -> None:
    """Refuse, before any work, a file a command could not write: a directory, a missing parent
    directory, or a directory where no file can be created. Leaves nothing behind."""
    st = _stat(path, flag)
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise InputError(f"{flag} {path}: is a directory; give a file name (e.g. {path / 'result.json'})")
    if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
        raise InputError(f"{flag} {path}: exists and is neither a regular file nor a device or pipe")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise InputError(f"{flag} {path}: the directory {parent} does not exist")
    if st is not None and not stat.S_ISREG(st.st_mode):  # /dev/stdout, a pipe: written in place
        if not os.access(path, os.W_OK):
            raise InputError(f"{flag} {path}: not writable")
        return
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"{flag} {path}: cannot create a file in {parent}: {exc.strerror or exc}") from None


def write_output_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a temporary file in the same directory,
    renamed over it); a file that exists keeps its permissions, a new one gets the umask's.
    A character device or pipe (``/dev/stdout``) is written in place. Raises OSError."""
    st = _stat(path, "output")
    if st is not None and not stat.S_ISREG(st.st_mode):
        with open(path, "w") as fh:
            fh.write(text)
        return
    if st is not None:
        mode = stat.S_IMODE(st.st_mode)
    else:
        umask = os.umask(0o022)
        os.umask(umask)
        mode = 0o666 & ~umask
    write_atomically(path, text, mode)


__all__ = ["NoAnswer", "ask", "check_output_dir", "check_output_file", "console", "err_console", "fail", "out_console",
           "write_output_file"]
