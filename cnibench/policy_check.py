"""The core of ``cnibench check``, the offline policy check: run the real program for a stack
under Pulumi's mocks (no cloud account, no Pulumi CLI), then evaluate the policy pack's rules on
the resources it registered. Not a ``pulumi preview``: provider-side validation and the cloud's
own state (quotas in use, the AMI's real kernel) are not consulted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from cnibench.config import ConfigError, parse_config
from cnibench.errors import CnibenchError, ExitCode
from cnibench.mocks import run_program
from cnibench.policy_rules import RULES, Finding, evaluate
from cnibench.policy_rules.from_mocks import stack_from_registered
from cnibench.project import find_project_dir, stack_config

HEADING = "offline policy check (Pulumi mocks), not a pulumi preview"


class ProgramError(CnibenchError):
    """The Pulumi program failed under the mocks for a reason other than its config."""

    exit_code = ExitCode.INTERNAL


def run_check(stack: str, overrides: Mapping[str, Any] | None = None,
              project_dir: Path | None = None) -> list[Finding]:
    """Validate the config, run the program offline, evaluate every rule.

    Raises :class:`ConfigError` (every config problem at once, before the program runs, or one
    the program found while declaring) or :class:`ProgramError`."""
    values = stack_config(project_dir if project_dir is not None else find_project_dir(), stack, overrides)
    parse_config(values)
    try:
        run = run_program(stack, config=values)
    except ConfigError:
        raise
    except Exception as exc:
        raise ProgramError(f"{type(exc).__name__}: {str(exc).strip()}") from exc
    return evaluate(RULES, stack_from_registered(run.resources, run.config))
