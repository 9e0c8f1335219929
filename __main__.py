"""cnibench's Pulumi program (``pulumi up --stack <variant>``): see ``cnibench/program``."""

from cnibench.program import run

run()
