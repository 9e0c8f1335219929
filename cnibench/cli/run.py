"""The ``cnibench run`` command: the cloud suite on an existing cluster, through a kube context.
``cnibench/cli/__init__.py`` calls :func:`register` on its app; the work is
:mod:`cnibench.suite.cluster` (preflight, probe, the shared runner bench.sh).

Progress and errors go to stderr; the table to stdout (stderr with ``--json``, which prints the
result document on stdout). The document is also written to ``--out``/cluster-<run id>.json."""

from __future__ import annotations

import json
import re
import signal
import sys
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import NoReturn, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cnibench import results
from cnibench.cli.console import check_output_dir, err_console, out_console, write_output_file
from cnibench.config import ConfigError, StackConfig, parse_config
from cnibench.errors import ExitCode, InputError
from cnibench.suite import cluster, table
from cnibench.suite.definition import BUSY_THRESHOLD
from cnibench.suite.plan import IMAGE, NAMESPACE, plan_suite, settings_from_config

# `cnibench run` option -> the stack config key it mirrors (the same defaults and bounds:
# cnibench/config.py validates both)
OPTION_OF_KEY = {"benchmarkDuration": "--duration", "benchmarkRepeat": "--repeat", "benchmarkStreams": "--streams",
                 "benchmarkLoadLevels": "--load-levels", "benchmarkResponseSizes": "--response-sizes",
                 "benchmarkTimeout": "--timeout", "benchmarkRun": "--run"}
def _default(field: str):
    """A benchmark key's default in the stack config (one place for both)."""
    return StackConfig.model_fields[field].default


def _csv(values) -> str:
    return ",".join(str(v) for v in values)


DEFAULT_MTU = 1450  # a VXLAN overlay on a 1500-byte network: the UDP datagram fits it
NAME = re.compile(r"[a-z0-9]([a-z0-9.-]{0,40}[a-z0-9])?")


def _ints(flag: str, text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{flag} {text!r}: expected comma-separated whole numbers such as 30,50") from None


def _plan_settings(duration: int, repeat: int, streams: int, load_levels: str, response_sizes: str, timeout: int,
                   run_id: str):
    """The stack config's benchmark keys, validated by cnibench/config.py, errors named by option."""
    raw = {"variant": "flannel-vxlan",  # any catalog variant: only the benchmark keys are read
           "benchmarkDuration": duration, "benchmarkRepeat": repeat, "benchmarkStreams": streams,
           "benchmarkLoadLevels": json.dumps(_ints("--load-levels", load_levels)),
           "benchmarkResponseSizes": json.dumps(_ints("--response-sizes", response_sizes)),
           "benchmarkTimeout": timeout, "benchmarkRun": run_id}
    try:
        return parse_config(raw)
    except ConfigError as exc:
        problems = list(getattr(exc, "problems", None) or [str(exc)])
        text = "; ".join(problems)
        for key, flag in OPTION_OF_KEY.items():
            text = text.replace(f"cnibench:{key}", flag).replace(key, flag)
        raise InputError(text) from None


def _raise_interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


def run(
    kubeconfig: Optional[Path] = typer.Option(None, "--kubeconfig", help="Kubeconfig file (default: $KUBECONFIG, "
                                              "else ~/.kube/config)."),
    context: Optional[str] = typer.Option(None, "--context", help="Kube context (default: the current context)."),
    client_node: Optional[str] = typer.Option(None, "--client-node", help="Node of the client pods (default: "
                                              "picked: a schedulable node, workers first)."),
    server_node: Optional[str] = typer.Option(None, "--server-node", help="Node of the server pods (default: "
                                              "picked, another schedulable node)."),
    name: Optional[str] = typer.Option(None, "--name", help="Name of the measured subject (default: the CNI "
                                       "detected from the kube-system DaemonSets, else pod-network)."),
    duration: int = typer.Option(_default("benchmark_duration"), "--duration", help="Seconds per test (benchmarkDuration)."),
    repeat: int = typer.Option(_default("benchmark_repeat"), "--repeat", "-r", help="Repetitions of every test, host and pod network "
                               "interleaved (benchmarkRepeat)."),
    streams: int = typer.Option(_default("benchmark_streams"), "--streams", "-P", help="Parallel streams of the tcp test (iperf3 -P)."),
    load_levels: str = typer.Option(_csv(_default("benchmark_load_levels")), "--load-levels", help="Latency-under-load levels, percent of the host's "
                                    "maximum message rate (benchmarkLoadLevels)."),
    response_sizes: str = typer.Option(_csv(_default("benchmark_response_sizes")), "--response-sizes", help="HTTP response sizes in bytes."),
    timeout: int = typer.Option(_default("benchmark_timeout"), "--timeout", help="Seconds before the suite is abandoned (benchmarkTimeout; "
                                "pod start-up and clean-up come on top)."),
    mtu: int = typer.Option(DEFAULT_MTU, "--mtu", help="Smallest MTU on the path (the one UDP datagram size fits it; "
                            "default 1450, a VXLAN overlay on a 1500-byte network)."),
    image: Optional[str] = typer.Option(None, "--image", help=f"Pod image (default {IMAGE}, whose pods apt-get their "
                                        "tools from Debian's mirror). For clusters without internet egress: an image "
                                        "that already holds iperf3, sockperf, wrk and nginx (checked first)."),
    no_host_reference: bool = typer.Option(False, "--no-host-reference", help="No hostNetwork pods (for users who "
                                           "may not run them): no ratios to the host network, and the tests offered "
                                           "at a fraction of the host's maximum (latency under load, CPU) are "
                                           "skipped."),
    busy_threshold: float = typer.Option(BUSY_THRESHOLD, "--busy-threshold",
                                         help="Background-load guard: a repetition is contaminated when either node "
                                              "was busier than this share of its cores just before it."),
    run_id: Optional[str] = typer.Option(None, "--run", help="Run label in the result's id (default: the UTC time)."),
    out: Path = typer.Option(Path("results/cluster"), "--out", "-o", help="Directory for the result document."),
    as_json: bool = typer.Option(False, "--json", help="Print the result document (JSON, schema v2) on stdout; the "
                                 "table goes to stderr."),
) -> None:
    """Benchmark the CNI of an existing cluster (the current kube context), on two of its nodes.

    Runs the cloud suite (the same pods, host-network reference, tests and result document as a
    stack's benchmark) in its own namespace, cnibench-bench, which is deleted at the end, also on
    failure and Ctrl-C. Checks first that the context answers, that you may create what it
    needs (README: the RBAC ClusterRole), that two nodes are schedulable and that they can pull
    the image and reach the package mirror. No Pulumi, no AWS account.
    """
    console = err_console()

    def refuse(message: str, code: ExitCode = ExitCode.REFUSED) -> typer.Exit:
        console.print(message, style="red", markup=False, highlight=False)
        return typer.Exit(int(code))

    label = run_id if run_id is not None else datetime.now(timezone.utc).strftime("%Y%m%dt%H%M%Sz")
    try:
        if name is not None and not NAME.fullmatch(name):
            raise InputError(f"--name {name!r}: lowercase letters, digits, '.' and '-' (it names the subject and "
                             "the step ids), e.g. cilium-vxlan")
        if not 0 < busy_threshold <= 1:
            raise InputError(f"--busy-threshold {busy_threshold}: a share of the cores in (0, 1], e.g. 0.25")
        if not 576 <= mtu <= 65535:
            raise InputError(f"--mtu {mtu}: an MTU in 576..65535 (the smallest MTU on the pods' path)")
        if image is not None:
            cluster.check_image(image)
        cfg = _plan_settings(duration, repeat, streams, load_levels, response_sizes, timeout, label)
        check_output_dir(out, "--out")
    except InputError as exc:
        raise refuse(str(exc)) from None

    # from here on Ctrl-C and SIGTERM are KeyboardInterrupt: the namespace is deleted on the way out
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    kc = cluster.Kubectl(cluster.Target(str(kubeconfig) if kubeconfig else None, context))
    try:
        console.print("preflight: context, permissions, nodes", highlight=False)
        pre = cluster.preflight(kc, client_node=client_node, server_node=server_node)
    except cluster.ClusterRefused as exc:
        raise refuse(f"refused: {exc}") from None
    except KeyboardInterrupt:
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    subject = name or pre.cni.get("name") or "pod-network"
    plan = plan_suite(subject, settings=settings_from_config(cfg), mtus=(mtu,), timeout=cfg.benchmark_timeout,
                      run=cfg.benchmark_run, host_reference=not no_host_reference, image=image or IMAGE)
    console.print(f"context {pre.context} ({pre.server_url}, Kubernetes {pre.kubernetes_version}); client node "
                  f"{pre.client_node}, server node {pre.server_node} ({pre.node_choice}); CNI "
                  f"{pre.cni.get('name') or 'not recognised'} {pre.cni.get('version') or ''}".rstrip()
                  + f"; measured as {subject}", markup=False, highlight=False)
    for note in pre.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    if no_host_reference:
        console.print("--no-host-reference: no hostNetwork pods; the results have no ratio to the host network, and "
                      "the latency-under-load and CPU tests are skipped", markup=False, highlight=False)

    try:
        console.print(f"preflight: admission of the benchmark pods, image pull and tools on both nodes "
                      f"(namespace {NAMESPACE}, removed again)", highlight=False)
        for note in cluster.checked_probe(kc, plan, pre, custom_image=image is not None):
            console.print(f"  {note}", markup=False, highlight=False)
    except cluster.ClusterRefused as exc:
        raise refuse(f"refused: {exc}") from None
    except KeyboardInterrupt:
        raise typer.Exit(ExitCode.INTERRUPTED) from None

    with Progress(TextColumn("[bold]suite[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=console, transient=False) as bar:
        task = bar.add_task("creating the benchmark pods", total=cluster.total_steps(plan))

        def show(p: cluster.Progress) -> None:
            bar.update(task, completed=p.done, description=p.text[:100])
            if not console.is_terminal:  # in logs and CI: the runner's own lines
                console.print(p.text, markup=False, highlight=False)

        outcome = cluster.run_suite(kc, plan, pre, on_progress=show, busy_threshold=busy_threshold)
    doc = outcome.doc
    try:
        results.validate(doc)
    except Exception as exc:  # noqa: BLE001 - the measurements are kept, the defect is named
        doc.setdefault("extra", {})["schema_error"] = str(exc).splitlines()[0]
        console.print(f"[red]the result document does not follow result-v2.schema.json: {exc}[/]")
    path = out / f"cluster-{doc['run_id']}.json"
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_output_file(path, json.dumps(doc, indent=2) + "\n")
        console.print(f"result: {path}", highlight=False)
    except OSError as exc:
        console.print(f"[red]--out {out}: the result could not be written: {exc}[/]")
    text = table.format_table(doc)
    if as_json:
        console.print(text, markup=False, highlight=False)
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        out_console().print(text, markup=False, highlight=False)
    if no_host_reference:
        console.print("no ratios: --no-host-reference measured the pod network only", highlight=False)
    if outcome.cleanup_error:
        console.print(f"[red]{outcome.cleanup_error}[/]", highlight=False)
    if outcome.interrupted:
        console.print("interrupted: the namespace was deleted; the document holds what was measured",
                      highlight=False)
        raise typer.Exit(ExitCode.INTERRUPTED)
    status = (doc.get("extra") or {}).get("status")
    raise typer.Exit(ExitCode.OK if status == "complete" else ExitCode.FAILED)


def register(app: typer.Typer) -> None:
    """Add the ``run`` command to the ``cnibench`` Typer app."""
    app.command("run")(run)
