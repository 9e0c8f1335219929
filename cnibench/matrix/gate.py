"""The policy gate: the offline policy check for every variant before anything is created."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from cnibench import config as cfgmod
from cnibench.errors import CnibenchError, ExitCode, InputError
from cnibench.matrix.backend import short_error
from cnibench.matrix.runner import MatrixOptions, expiry_hours_for, stack_values
from cnibench.project import stack_config, with_namespace, without_namespace
from cnibench.variants import CATALOG


class PolicyViolation(CnibenchError):
    exit_code = ExitCode.POLICY

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("mandatory policy violations:\n" + "\n".join(f"  - {p}" for p in self.problems))


Preflight = Callable[[str, Mapping[str, Any]], Iterable[Any]]


def _blocking(finding: Any) -> bool:
    """A finding stops the matrix when it is a failed mandatory rule. Accepts the policy
    module's ``Finding`` (``blocking``) or anything with ``mandatory`` and ``passed``."""
    if hasattr(finding, "blocking"):
        return bool(finding.blocking)
    return bool(getattr(finding, "mandatory", False)) and not bool(getattr(finding, "passed", True))


def _describe(finding: Any) -> str:
    name = getattr(finding, "rule", None) or getattr(finding, "name", "?")
    messages = getattr(finding, "messages", None) or [getattr(finding, "message", "")]
    return f"{name}: {'; '.join(str(m) for m in messages if m)}"


def default_preflight() -> Preflight:
    """The offline policy check: the program under Pulumi's mocks + the policy rules. Imported
    here, not at the top, because it needs the cloud extra (pulumi) and the rest of the matrix
    package (names, cleanup planning) does not."""
    from cnibench.policy_check import run_check

    return run_check


def policy_gate(variants: Sequence[str], overrides: Mapping[str, Mapping[str, Any]], preflight: Preflight) -> list[str]:
    """Run the offline policy check for every variant; raise :class:`PolicyViolation` listing
    every mandatory violation of every variant. Returns the advisory messages."""
    blocking, advisories = [], []
    for variant in variants:
        try:
            findings = list(preflight(variant, overrides.get(variant, {})))
        except cfgmod.ConfigError as exc:  # one the program found while declaring (the benchmark plan)
            raise cfgmod.ConfigError([f"{variant}: {p}" for p in exc.problems]) from None
        except Exception as exc:  # noqa: BLE001 - a check that cannot run does not let money through
            blocking.append(f"{variant}: the offline policy check could not run: {short_error(exc)}")
            continue
        for finding in findings:
            if _blocking(finding):
                blocking.append(f"{variant}: {_describe(finding)}")
            elif getattr(finding, "verdict", "") == "warn":
                advisories.append(f"{variant}: {_describe(finding)}")
    if blocking:
        raise PolicyViolation(blocking)
    return advisories


def prepare(variants: list[str], opts: MatrixOptions, preflight: Preflight | None,
            project_dir: Path | None = None) -> tuple[dict, list[str]]:
    """Validate every variant's config and run the policy gate. Returns (configs, advisories);
    raises ConfigError / PolicyViolation / InputError before anything is created."""
    unknown = [v for v in variants if v not in CATALOG]
    if unknown:
        raise InputError(f"unknown variant(s) {', '.join(unknown)}; valid: {', '.join(CATALOG)}")
    if len(set(variants)) != len(variants):
        raise InputError("a variant is listed twice")
    configs, problems = {}, []
    for v in variants:
        try:
            values = stack_values(v, opts, project_dir)
            configs[v] = cfgmod.parse_config(stack_config(project_dir, v, values))
        except cfgmod.ConfigError as exc:
            problems += [f"{v}: {p}" for p in exc.problems]
    if problems:
        raise cfgmod.ConfigError(attribute_overrides(problems, opts.overrides))
    if preflight is None:
        raise PolicyViolation([
            "the offline policy check (cnibench.policy_check) is not available, and the matrix does not "
            "spend money without it"
        ])
    overrides = {v: {**opts.overrides, "expiryHours": expiry_hours_for(opts)} for v in variants}
    try:
        advisories = policy_gate(variants, overrides, preflight)
    except cfgmod.ConfigError as exc:
        raise cfgmod.ConfigError(attribute_overrides(exc.problems, opts.overrides)) from None
    return configs, advisories


def attribute_overrides(problems: Sequence[str], overrides: Mapping[str, Any]) -> list[str]:
    """Config problems with the ``-c key=value`` they come from in front: a problem that names
    ``cnibench:<key>`` of an override is that flag's (``-c benchmarkStreams=100000: flannel-vxlan:
    cnibench:benchmarkStreams: ...``); the others (a stack file's own values) stay as they are."""
    out = []
    for problem in problems:
        flags = [f"-c {without_namespace(key)}={_short(value)}" for key, value in overrides.items()
                 if re.search(rf"{re.escape(with_namespace(key))}(?![A-Za-z0-9_])", problem)]
        out.append(f"{', '.join(flags)}: {problem}" if flags else problem)
    return out


def _short(value: Any, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
