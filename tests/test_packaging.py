"""The package installs as users install it: the wheel carries the program's scripts and the
suite's runner as package data, and `cnibench[lab]` works without any Pulumi package."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, text=True, timeout=300)
    (found,) = out.glob("cnibench-*.whl")
    return found


def test_wheel_carries_every_script_the_program_and_suite_read(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = [f"cnibench/{p.relative_to(ROOT / 'cnibench')}" for d in ("program/scripts", "program/cni/scripts", "suite/runner")
                for p in (ROOT / "cnibench" / d).iterdir() if p.is_file()]
    expected += ["cnibench/schemas/result-v1.schema.json", "cnibench/data/ec2-prices.yaml", "cnibench/py.typed"]
    assert len(expected) > 12
    assert sorted(set(expected) - names) == []
    assert not [n for n in names if n.startswith(("components/", "tests/", "policy/"))]


def test_lab_extra_installs_no_pulumi_and_runs_outside_the_checkout(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py, cli = env_dir / "bin" / "python", env_dir / "bin" / "cnibench"
    subprocess.run([str(py), "-m", "pip", "install", "-q", f"{wheel}[lab]"], check=True, capture_output=True, text=True,
                   timeout=900)
    listed = subprocess.run([str(py), "-m", "pip", "list"], check=True, capture_output=True, text=True).stdout
    assert "pulumi" not in listed.lower()
    help_ = subprocess.run([str(cli), "lab", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert help_.returncode == 0 and "--datapath" in help_.stdout, help_.stderr
    check = subprocess.run([str(cli), "check", "--stack", "cilium-native"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=120)
    assert check.returncode == 2 and "pip install 'cnibench[cloud]'" in check.stderr, check.stderr
