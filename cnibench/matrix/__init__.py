"""Ephemeral stack matrix: one throw-away Pulumi stack per variant, always destroyed.

``names`` (stack names), ``backend`` (the Automation-API boundary and its real implementation),
``gate`` (config validation and the offline policy check before anything is created),
``runner`` (up, collect, destroy, timeouts, interrupts), ``procs`` (start times, the Pulumi CLI
children in their own process groups), ``owner`` (the owner record of a run), ``cleanup``
(leftover stacks: expired, or of a dead owner), ``sweep`` (tagged AWS resources no state knows),
``pricing`` (the cost estimate shown before confirming). Design notes: docs/matrix.md.
"""

from cnibench.matrix.backend import (
    DEFAULT_BACKEND,
    DEFAULT_PASSPHRASE_ENV,
    AutomationBackend,
    AutomationStack,
    StackBackend,
    StackHandle,
    StackInfo,
    StackLocked,
    check_backend_url,
    check_environments,
    check_secrets_provider,
    flatten_config,
    require_project_dir,
    short_error,
)
from cnibench.matrix.cleanup import Leftover, Untouched, cleanup, find_leftovers, lock_decision, prune_records
from cnibench.matrix.gate import PolicyViolation, Preflight, attribute_overrides, default_preflight, policy_gate, prepare
from cnibench.matrix.names import STACK_PREFIX, ParsedName, parse_stack_name, stack_name
from cnibench.matrix.owner import OwnerRecord, default_state_dir, load_records
from cnibench.matrix.runner import (
    DEFAULT_EXPIRY_HOURS,
    MAX_PARALLEL,
    MAX_TIMEOUT_S,
    MIN_TIMEOUT_S,
    MatrixOptions,
    MatrixReport,
    MatrixRunner,
    OptionsError,
    VariantRun,
    expiry_hours_for,
    plan_runs,
    stack_values,
    stop_deadline,
)

__all__ = [
    "DEFAULT_BACKEND", "DEFAULT_EXPIRY_HOURS", "DEFAULT_PASSPHRASE_ENV", "STACK_PREFIX", "AutomationBackend",
    "AutomationStack", "Leftover", "MatrixOptions", "MatrixReport", "MatrixRunner", "ParsedName", "PolicyViolation",
    "Preflight", "StackBackend", "StackHandle", "StackInfo", "VariantRun", "cleanup", "default_preflight",
    "expiry_hours_for", "find_leftovers", "flatten_config", "parse_stack_name", "policy_gate", "prepare",
    "require_project_dir", "short_error", "stack_name", "stack_values",
    "OwnerRecord", "StackLocked", "Untouched", "default_state_dir", "load_records", "lock_decision", "plan_runs",
    "prune_records", "stop_deadline",
    "MAX_PARALLEL", "MAX_TIMEOUT_S", "MIN_TIMEOUT_S", "OptionsError", "attribute_overrides", "check_backend_url",
    "check_environments", "check_secrets_provider",
]
