"""One xdist worker for every real-lab test, one after another.

The lab tests count namespaces, processes and links of the whole machine before and after a
run (tests/labutil.py Snapshot) and measure on its two cores; a lab run on the other worker
would disturb both. xdist's own grouping (``--dist loadgroup`` with ``xdist_group`` markers)
does not work with pytest 9.2: xdist 3.8 appends the group to ``item._nodeid``, which pytest 9.2
no longer reads (``Node.nodeid`` comes from ``Node._id``), so the markers were ignored and the
lab tests ran on both workers (upstream: pytest-dev/pytest-xdist#1386, open; fix proposed in
#1388). This scheduler groups by file instead, through xdist's public
``pytest_xdist_make_scheduler`` hook: every test of ``LAB_FILES`` is one work unit, which
xdist's scope reordering (largest unit first) starts first; every other test is its own unit.
``check_lab_item`` keeps the file list and the ``lab`` marker in step.
"""

from __future__ import annotations

import pytest

LAB_FILES = ("tests/test_lab.py", "tests/test_lab_faults.py", "tests/test_lab_report.py", "tests/test_lab_paths.py",
             "tests/test_lab_vm.py")
GROUP = "lab"


def lab_scope(nodeid: str) -> str | None:
    """The group of a test id (relative to the rootdir), or None for a test of its own."""
    return GROUP if nodeid.split("::", 1)[0] in LAB_FILES else None


def check_lab_item(item: pytest.Item) -> None:
    """A lab-marked test outside LAB_FILES would run beside the others: it fails, saying so (at
    setup: an error raised while a worker collects only reaches the user as xdist's crash)."""
    if item.get_closest_marker("lab") and lab_scope(item.nodeid) is None:
        pytest.fail(f"{item.nodeid} is marked lab but is not in {', '.join(LAB_FILES)} (tests/labgroup.py): "
                    "it would run beside the other lab tests", pytrace=False)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class LabScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return lab_scope(nodeid) or nodeid

    return LabScheduling(config, log)
