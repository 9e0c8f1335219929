"""The real-lab tests run on one xdist worker (tests/labgroup.py): checked by running pytest
with two workers on a small project that uses the same scheduler and file list."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from labgroup import LAB_FILES, lab_scope

TESTS = Path(__file__).resolve().parent
CONFTEST = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
from labgroup import check_lab_item, pytest_xdist_make_scheduler  # noqa: F401


def pytest_configure(config):
    config.addinivalue_line("markers", "lab: a real-lab test")


def pytest_runtest_setup(item):
    check_lab_item(item)
"""
LAB_MODULE = "import pytest\npytestmark = pytest.mark.lab\n" + "".join(f"def test_{i}():\n    pass\n" for i in range(6))
OTHER_MODULE = "".join(f"def test_{i}():\n    pass\n" for i in range(30))


def run(root: Path, files: dict[str, str]) -> subprocess.CompletedProcess:
    (root / "tests").mkdir()
    (root / "tests" / "conftest.py").write_text(CONFTEST)
    for name, text in files.items():
        (root / "tests" / name).write_text(text)
    # pytest-randomly stays on: the grouping must hold in any order
    return subprocess.run([sys.executable, "-m", "pytest", "-v", "-n", "2", "--dist", "loadgroup",
                           "-p", "no:cacheprovider", "--rootdir", str(root), "tests"],
                          cwd=root, capture_output=True, text=True, timeout=120)


def test_scope_of_a_test_id():
    assert LAB_FILES == ("tests/test_lab.py", "tests/test_lab_faults.py", "tests/test_lab_report.py",
                         "tests/test_lab_paths.py", "tests/test_lab_vm.py")
    assert lab_scope("tests/test_lab.py::test_x[host]") == "lab"
    assert lab_scope("tests/test_lab_faults.py::test_y") == "lab"
    assert lab_scope("tests/test_compare.py::test_z") is None
    assert lab_scope("tests/test_lab.pyc::test_z") is None  # the file, not a prefix


def test_every_lab_test_runs_on_one_worker_and_the_others_on_both(tmp_path):
    proc = run(tmp_path, {"test_lab.py": LAB_MODULE, "test_lab_faults.py": LAB_MODULE, "test_other.py": OTHER_MODULE})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ran = re.findall(r"\[(gw\d)\] .*?PASSED (tests/\S+)", proc.stdout)
    assert len(ran) == 6 + 6 + 30, proc.stdout[-3000:]
    lab_workers = {w for w, test in ran if lab_scope(test)}
    assert len(lab_workers) == 1, ran
    # the other worker is not idle meanwhile: it takes the rest
    assert {w for w, test in ran if not lab_scope(test)} == {"gw0", "gw1"}, ran


def test_a_lab_test_outside_the_lab_files_is_refused(tmp_path):
    stray = "import pytest\n\n@pytest.mark.lab\ndef test_stray():\n    pass\n"
    proc = run(tmp_path, {"test_lab.py": LAB_MODULE, "test_other.py": stray})
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"ERROR tests/test_other.py::test_stray", proc.stdout), proc.stdout[-3000:]
    assert "tests/test_other.py::test_stray is marked lab but is not in tests/test_lab.py" in proc.stdout
    assert len(re.findall(r"PASSED tests/test_lab.py", proc.stdout)) == 6
