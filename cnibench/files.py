"""Files written whole or not at all (a bottom-layer helper for every command and module)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, text: str, mode: int) -> None:
    """Write ``text`` to ``path`` with permission bits ``mode`` from the first byte: a temporary
    file in the same directory (mkstemp creates it 0600), chmod-ed, written and renamed over
    ``path``. On any failure, also an interrupt, the temporary file is removed and ``path`` is
    as it was. Raises OSError."""
    fd, tmp = tempfile.mkstemp(dir=path.absolute().parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
