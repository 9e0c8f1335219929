"""The ``cnibench`` command. Each feature module adds its own sub-commands via ``register``."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from cnibench import __version__
from cnibench.variants import CATALOG

app = typer.Typer(
    name="cnibench",
    help="Which Kubernetes CNI, in which datapath mode, is fastest on your hardware.",
    no_args_is_help=True,
    add_completion=False,
)
# Wide enough for the tables when piped into a file or a design document.
console = Console(width=None if sys.stdout.isatty() else 200)


def _version(value: bool) -> None:
    if value:
        console.print(f"cnibench {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """cnibench: benchmark CNI datapaths in a local lab or on AWS node pairs."""


@app.command()
def variants() -> None:
    """List the catalog's CNI variants and what each needs from the network."""
    table = Table(title="cnibench variants (one stack each: stacks/Pulumi.<variant>.yaml)")
    for col in ("variant", "CNI", "version", "install", "underlay", "encap B", "ports", "kernel ≥", "no kube-proxy"):
        table.add_column(col)
    for v in CATALOG.values():
        table.add_row(
            v.name, v.cni, v.cni_version, v.install.method.value, v.underlay.value, str(v.encap_overhead),
            ", ".join(p.label for p in v.ports) or "-", v.min_kernel_label, "yes" if v.replaces_kube_proxy else "",
        )
    console.print(table)


# --- feature commands: each feature module adds its own with register(app), one line each ---
from cnibench.lab import cli as _lab; _lab.register(app)  # noqa: E402,E702 - local lab (main job)
from cnibench import check as _check; _check.register(app)  # noqa: E402,E702 - offline preflight
from cnibench import matrix_cli as _matrix; _matrix.register(app)  # noqa: E402,E702 - matrix + report
from cnibench import importers as _importers; _importers.register(app)  # noqa: E402,E702 - import knb


if __name__ == "__main__":  # pragma: no cover
    app()
