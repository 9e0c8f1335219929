"""Ephemeral stack matrix: one throw-away Pulumi stack per variant, always destroyed.

``names`` (stack names), ``backend`` (the Automation-API boundary and its real implementation),
``gate`` (config validation and the offline policy check before anything is created),
``runner`` (up, collect, destroy, timeouts, interrupts), ``cleanup`` (leftover stacks past their
expiry), ``pricing`` (the cost estimate shown before confirming). Design notes: docs/matrix.md.
"""

from cnibench.matrix.backend import (
    DEFAULT_BACKEND,
    DEFAULT_PASSPHRASE_ENV,
    AutomationBackend,
    AutomationStack,
    StackBackend,
    StackHandle,
    StackInfo,
    flatten_config,
    require_project_dir,
    short_error,
)
from cnibench.matrix.cleanup import Leftover, cleanup, find_leftovers
from cnibench.matrix.gate import PolicyViolation, Preflight, default_preflight, policy_gate, prepare
from cnibench.matrix.names import STACK_PREFIX, ParsedName, parse_stack_name, stack_name
from cnibench.matrix.runner import (
    DEFAULT_EXPIRY_HOURS,
    MatrixOptions,
    MatrixReport,
    MatrixRunner,
    VariantRun,
    expiry_hours_for,
    stack_values,
)

__all__ = [
    "DEFAULT_BACKEND", "DEFAULT_EXPIRY_HOURS", "DEFAULT_PASSPHRASE_ENV", "STACK_PREFIX", "AutomationBackend",
    "AutomationStack", "Leftover", "MatrixOptions", "MatrixReport", "MatrixRunner", "ParsedName", "PolicyViolation",
    "Preflight", "StackBackend", "StackHandle", "StackInfo", "VariantRun", "cleanup", "default_preflight",
    "expiry_hours_for", "find_leftovers", "flatten_config", "parse_stack_name", "policy_gate", "prepare",
    "require_project_dir", "short_error", "stack_name", "stack_values",
]
