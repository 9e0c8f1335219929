#!/usr/bin/env bash
# The project's static checks (run by CI beside the tests): ruff (lint), mypy (types) and
# import-linter (the layer order, where pulumi/typer/rich may be imported, no import cycles).
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin
"$py/ruff" check .
"$py/mypy"
"$py/lint-imports" --no-cache
