"""The ``cnibench`` command: every sub-command lives in this package (one module each) and
registers itself on :data:`app`. Exit codes: :class:`cnibench.errors.ExitCode`."""

from __future__ import annotations

import typer
from rich.table import Table

from cnibench import __version__
from cnibench.cli import check, imports, lab, matrix, report
from cnibench.cli.console import console
from cnibench.variants import CATALOG

app = typer.Typer(
    name="cnibench",
    help="Which Kubernetes CNI, in which datapath mode, is fastest on your hardware.",
    no_args_is_help=True,
    add_completion=False,
)


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


for command in (lab, check, matrix, report, imports):
    command.register(app)
