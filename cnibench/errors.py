"""The project's exception base and the one exit-code table every command uses.

The table is printed in the README (``Exit codes``); ``tests/test_errors.py`` and
``tests/test_cli_exit_codes.py`` keep the two equal and check the commands against it.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a command's exit status means, the same for every command."""

    OK = 0              # also: the user answered "no" to a confirmation (nothing was created or changed)
    FAILED = 1          # the work ran and (part of) it failed: a datapath, a variant, a test
    REFUSED = 2         # bad input refused before anything ran: config, option, file, prerequisite
    POLICY = 3          # a mandatory policy rule refused the topology (check, matrix gate)
    LEFT_BEHIND = 4     # cloud resources may still exist (and cost money): see the message
    INTERNAL = 5        # a defect of cnibench itself (the program failed under mocks, an invalid document)
    INTERRUPTED = 130   # Ctrl-C or SIGTERM; what the run created was removed


EXIT_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success; also a confirmation question answered no (nothing was created or changed)",
    ExitCode.FAILED: "the work ran and part of it failed (a datapath, a variant, a measurement)",
    ExitCode.REFUSED: "bad input refused before anything ran (config key, option, file, missing prerequisite such as the Pulumi CLI; a question left unanswered because stdin is closed: pass --yes)",
    ExitCode.POLICY: "a mandatory policy rule refused the topology; nothing was deployed",
    ExitCode.LEFT_BEHIND: "cloud resources may still exist: the message names them and the command to remove them (also after a no to a question of `matrix --cleanup`)",
    ExitCode.INTERNAL: "a defect in cnibench (please report it with the message)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C, SIGTERM); what the run had created was removed",
}


class CnibenchError(Exception):
    """Base of every error cnibench reports to a user (as a message, never a traceback)."""

    exit_code: ExitCode = ExitCode.FAILED


class InputError(CnibenchError, ValueError):
    """Input a user can correct: the message names what was wrong and what would be valid."""

    exit_code = ExitCode.REFUSED


class ParseError(InputError):
    """A tool's output (or an imported report) is not in the format expected."""
