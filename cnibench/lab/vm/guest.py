"""What runs inside the guest: the lab itself, unchanged, on the guest's kernel.

``python -m cnibench.lab.vm.guest /run/share/job.json`` rebuilds the host's :class:`LabOptions`,
runs the lab with its output in the run's share, then records what the run left in the guest
(namespaces, processes, state), which the host reports.
"""

from __future__ import annotations

import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from rich.console import Console

from cnibench.lab import nsutil
from cnibench.lab.runner import LabOptions, run_lab

SHARE = Path("/run/share")


def options_to_json(opts: LabOptions) -> dict[str, Any]:
    """The options as JSON values (paths as text, tuples as lists)."""
    out: dict[str, Any] = {}
    for f in fields(opts):
        v = getattr(opts, f.name)
        out[f.name] = str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v
    return out


def options_from_json(data: dict[str, Any]) -> LabOptions:
    known = {f.name: f for f in fields(LabOptions)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"job.json: unknown lab option(s) {', '.join(unknown)}")
    default = LabOptions()
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        current = getattr(default, name)
        kwargs[name] = tuple(value) if isinstance(current, tuple) else Path(value) if isinstance(current, Path) \
            else value
    return LabOptions(**kwargs)


def leftovers(run_id: str) -> dict[str, list]:
    state = nsutil.state_dir(run_id)
    return {"namespaces": nsutil.all_lab_namespaces(), "processes": nsutil.run_processes(run_id),
            "state": [str(state)] if state.exists() else []}


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text())
    opts = options_from_json(job["options"])
    console = Console(stderr=True, width=120, force_terminal=False, no_color=True)
    code = 1
    try:
        code = int(run_lab(opts, console).exit_code)
    finally:
        (SHARE / "leftovers.json").write_text(json.dumps(leftovers(opts.run_id or "")) + "\n")
    return code


if __name__ == "__main__":  # pragma: no cover - run by the guest
    sys.exit(main(sys.argv[1:]))
