"""``cnibench matrix``: ephemeral stacks per variant (core in :mod:`cnibench.matrix`), live progress, exit codes.

Order before anything is created: first everything that can be checked offline (every flag,
``-c``, ``--prices``, ``--out``, every variant's config and the offline policy check), then the
Pulumi workspace (the CLI, the passphrase), then the cost table and the question. So a bad value
is named with its flag whatever the machine has installed, and a missing prerequisite never
follows a "yes". Exit codes (README "Exit codes"): a refused input is 2, a mandatory policy
violation 3; a "no" to the question is 0 (nothing created), to ``--cleanup``'s question 4 (what
it listed still exists); a question nobody can answer (stdin closed, no ``--yes``) is refused, 2."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from cnibench import matrix as mx
from cnibench.cli.console import NoAnswer, ask, check_output_dir, err_console
from cnibench.cli.extras import require_cloud
from cnibench.config import ConfigError
from cnibench.errors import CnibenchError, ExitCode, InputError
from cnibench.matrix import pricing, sweep
from cnibench.matrix.backend import WORKSPACE_NAME
from cnibench.project import find_project_dir, load_stack_file, parse_overrides, project_defaults, stacks
from cnibench.variants import CATALOG

EXIT_FAILED, EXIT_REFUSED, EXIT_POLICY = ExitCode.FAILED, ExitCode.REFUSED, ExitCode.POLICY
EXIT_LEFT_BEHIND, EXIT_INTERRUPTED = ExitCode.LEFT_BEHIND, ExitCode.INTERRUPTED


def _status_table(runs: list[mx.VariantRun]) -> Table:
    table = Table(title="cnibench matrix", expand=False)
    for col in ("variant", "stack", "status", "phase", "elapsed", "stack state", "last output"):
        if col == "stack":  # the name is what a user copies into pulumi commands: never cut it
            table.add_column(col, no_wrap=True, min_width=max((len(r.stack) for r in runs), default=5))
        else:
            table.add_column(col, overflow="fold" if col == "last output" else "ellipsis")
    colour = {"ok": "green", "failed": "red", "timeout": "red", "interrupted": "yellow", "left behind": "bold red",
              "cancelled": "yellow", "up": "cyan", "destroying": "magenta", "creating": "cyan"}
    for r in runs:
        st = f"[{colour.get(r.status, 'white')}]{r.status}[/]"
        state = ("[bold red]LEFT WITH RESOURCES[/]" if r.left_behind else "removed" if r.removed
                 else "destroyed" if r.destroyed else "-")
        table.add_row(r.variant, r.stack, st, r.phase, f"{r.elapsed:5.0f}s", state, r.last_line[-80:])
    return table


def run_matrix_command(
    opts: mx.MatrixOptions,
    *,
    backend_factory: Callable[[], mx.StackBackend],
    preflight: mx.Preflight | None,
    confirm: Callable[[str], bool],
    yes: bool = False,
    prices: Path | None = None,
    console: Console | None = None,
    project_dir: Path | None = None,
    report: bool = True,
    state_dir: Path | None = None,
) -> int:
    console = console or Console(stderr=True)
    # first what needs nothing installed: the price table, every config, the offline policy check
    try:
        price_table = pricing.load_table(prices)
    except pricing.PriceError as exc:  # a --prices file that cannot be read or is malformed
        _refused(console, "--prices refused" if prices is not None else "price table refused", exc)
        return EXIT_REFUSED
    try:
        configs, advisories = mx.prepare(list(opts.variants), opts, preflight, project_dir)
    except CnibenchError as exc:
        _refused(console, "refused before creating anything", exc)
        return exc.exit_code
    for a in advisories:
        console.print("[yellow]advisory:[/] ", end="")
        console.print(a, markup=False, highlight=False)
    try:  # then the prerequisites: the Pulumi CLI, the passphrase; both before the cost and a "yes"
        backend = backend_factory()
    except Exception as exc:  # noqa: BLE001 - no pulumi CLI, no passphrase, an unreadable workspace
        _refused(console, "cannot open the Pulumi workspace", exc)
        return EXIT_REFUSED
    est = pricing.estimate(configs, price_table, opts.timeout)
    table = Table(title="estimated cost (upper bound)")
    for col in ("variant", "region", "instances", "hours", est.currency):
        table.add_column(col)
    for row in pricing.rows(est):
        table.add_row(*row)
    console.print(table)
    at_a_time = min(opts.parallel, len(est.lines))
    console.print(f"total: [bold]{est.summary()}[/] for {len(est.lines)} variant(s), {at_a_time} at a time")
    for line in est.unknown:
        console.print(f"[yellow]cost unknown for {line.variant}:[/] {line.unknown}")
    console.print(f"[dim]assumption: {est.assumption}[/]")
    try:
        go = yes or confirm(f"Create {len(est.lines)} stack(s) on AWS for about {est.summary()}?")
    except NoAnswer as exc:
        console.print(f"[red]refused:[/] {exc}; nothing was created")
        return EXIT_REFUSED
    except KeyboardInterrupt:
        console.print("interrupted at the question: nothing was created")
        return EXIT_INTERRUPTED
    if not go:
        console.print("stopped at your answer: nothing was created")
        return ExitCode.OK
    runs = mx.plan_runs(opts)
    try:  # before the first create: --cleanup finds this run's stacks at once if it is killed
        owner = mx.OwnerRecord.begin({r.stack: r.variant for r in runs}, state_dir,
                                     getattr(backend, "backend_url", None))
    except OSError as exc:
        console.print(f"[red]refused before creating anything:[/] cannot write the run's owner record ({exc}); "
                      f"set --state-dir or ${mx.owner.STATE_ENV} to a writable directory")
        return EXIT_REFUSED
    runner = mx.MatrixRunner(backend, opts, project_dir=project_dir, owner=owner, runs=runs)
    old = {}
    if threading_main():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            old[sig] = signal.signal(sig, _raise_keyboard_interrupt)
    try:
        with Live(_status_table(runner.runs), console=console, refresh_per_second=2, transient=False) as live:
            result = runner.run(tick=lambda: live.update(_status_table(runner.runs)),
                                notify=lambda msg: live.console.print(f"[yellow]{msg}[/]"))
            live.update(_status_table(runner.runs))
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if not console.is_terminal:
        console.line()
    return _finish(result, opts, owner, console, report)


def _finish(result: mx.MatrixReport, opts: mx.MatrixOptions, owner: mx.OwnerRecord, console: Console,
            report: bool) -> int:
    """Summary, errors, report and the exit code. Files that cannot be written (the out
    directory removed, a full disk) are reported; the exit code still says what is left."""
    try:
        console.print(f"summary: {write_summary(result, opts)}")
    except OSError as exc:
        console.print(f"[red]summary not written:[/] {exc}")
    for r in result.runs:
        if r.error:
            console.print(f"[red]{r.variant}[/]: {r.error}" + (f" (log: {r.log_path})" if r.log_path else ""))
    for err in owner.errors[:3]:
        console.print(f"[yellow]warning:[/] {err}")
    done = [r.result_path for r in result.runs if r.result_path]
    if report and done:
        from cnibench.report import comparison  # matplotlib: only when there is something to compare

        try:
            paths = comparison.write_report(comparison.load_results(done), opts.out / "report")
            console.print(f"comparison report: {paths['markdown']}")
        except (OSError, CnibenchError) as exc:
            console.print(f"[red]comparison report not written:[/] {exc}")
    if result.left_behind:
        console.print("[bold red]stacks left with resources:[/] "
                      + ", ".join(r.stack for r in result.left_behind)
                      + " -> run `cnibench matrix --cleanup` (this run's owner record makes them eligible at once)")
        return EXIT_LEFT_BEHIND
    if result.interrupted:
        return EXIT_INTERRUPTED
    return 0 if result.ok else EXIT_FAILED


def _refused(console: Console, heading: str, exc: BaseException) -> None:
    """``heading: message``, or the heading and one line per problem; never read as markup
    (a value such as ``[40,80]`` is printed as it is)."""
    problems = getattr(exc, "problems", None)
    if problems:
        first = str(exc).splitlines()[0]  # "invalid cnibench configuration:", "mandatory policy violations:"
        console.print(f"[red]{heading}:[/]" + (f" {first}" if first.endswith(":") else ""), highlight=False)
        for problem in problems:
            console.print(f"  - {problem}", markup=False, highlight=False)
    else:
        console.print(f"[red]{heading}:[/] ", end="")
        console.print(str(exc), markup=False, highlight=False)


def check_inputs(*, variants: list[str], parallel: int, out: Path, config: list[str], timeout: float,
                 expiry_hours: int | None, backend_url: str | None, secrets_provider: str, esc_env: list[str],
                 cleanup: bool, all_stacks: bool, region: list[str], no_sweep: bool) -> mx.MatrixOptions:
    """Every flag of a matrix run checked offline (no Pulumi CLI, workspace or network): the
    options, ``-c`` keys, the backend URL, the secrets provider, ``--esc-env`` and ``--out``.
    Raises :class:`mx.OptionsError` with every problem, each naming its flag and value."""
    problems: list[str] = []
    if not cleanup:
        for flag, given in (("--all", all_stacks), ("--region", bool(region)), ("--no-sweep", no_sweep)):
            if given:
                problems.append(f"{flag}: only with --cleanup (it selects what the cleanup removes or sweeps); "
                                f"add --cleanup, or leave {flag} out")
    try:
        overrides = parse_overrides(config)
    except ConfigError as exc:
        problems += exc.problems
        overrides = {}
    opts = mx.MatrixOptions(variants=tuple(variants), out=out, parallel=parallel, timeout=timeout,
                            overrides=overrides, expiry_hours=expiry_hours)
    try:
        opts.validate()
    except mx.OptionsError as exc:
        problems += exc.problems
    for check in (lambda: mx.check_backend_url(backend_url), lambda: mx.check_secrets_provider(secrets_provider),
                  lambda: mx.check_environments(esc_env), lambda: check_output_dir(out, "--out")):
        try:
            check()
        except InputError as exc:
            problems.append(str(exc))
    if problems:
        raise mx.OptionsError(problems)
    return opts


def threading_main() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def write_summary(result: mx.MatrixReport, opts: mx.MatrixOptions) -> Path:
    opts.out.mkdir(parents=True, exist_ok=True)
    path = opts.out / "matrix.json"
    path.write_text(json.dumps({
        "interrupted": result.interrupted,
        "runs": [{
            "variant": r.variant, "stack": r.stack, "status": r.status, "error": r.error,
            "destroyed": r.destroyed, "removed": r.removed, "left_behind": r.left_behind,
            "result": str(r.result_path) if r.result_path else None,
            "log": str(r.log_path) if r.log_path else None, "seconds": round(r.elapsed, 1),
        } for r in result.runs],
    }, indent=2) + "\n")
    return path


def run_cleanup_command(backend: mx.StackBackend, *, include_unexpired: bool, yes: bool,
                        confirm: Callable[[str], bool], console: Console, state_dir: Path | None = None,
                        sweeper: Callable[[], sweep.Clients] | None = None,
                        stop_graces: tuple[float, ...] = (30.0, 10.0, 5.0)) -> int:
    """Destroy leftover stacks (see :mod:`cnibench.matrix.cleanup`), then, with a ``sweeper``,
    list (and offer to delete) tagged AWS resources that no state knows."""
    records = mx.load_records(state_dir)
    untouched: list[mx.Untouched] = []
    leftovers = mx.find_leftovers(backend, include_unexpired=include_unexpired, records=records, untouched=untouched)
    for u in untouched:
        console.print(f"[yellow]not touched:[/] {u.name}: {u.why}")
    code = 0
    if not leftovers:
        console.print("no leftover matrix stacks" + ("" if include_unexpired else " past their expiry or of a dead run"))
    else:
        table = Table(title="leftover matrix stacks")
        for col in ("stack", "variant", "created", "expires", "why", "owner", "resources", "update running"):
            table.add_column(col, no_wrap=col == "stack",
                             min_width=max(len(x.name) for x in leftovers) if col == "stack" else None)
        for left in leftovers:
            table.add_row(left.name, left.variant, f"{left.created:%Y-%m-%d %H:%M}Z", f"{left.expires:%Y-%m-%d %H:%M}Z",
                          left.reason, left.owner_text,
                          str(left.resource_count if left.resource_count is not None else "?"),
                          "yes" if left.update_in_progress else "")
        console.print(table)
        try:
            go = yes or confirm(f"Destroy and remove {len(leftovers)} stack(s)?")
        except NoAnswer as exc:
            console.print(f"[red]refused:[/] {exc}; nothing destroyed")
            return EXIT_REFUSED
        if not go:
            console.print("stopped at your answer: nothing destroyed; these stacks still hold their resources "
                          "(`cnibench matrix --cleanup" + (" --all" if include_unexpired else "") + " --yes` removes them)")
            return EXIT_LEFT_BEHIND
        runs = mx.cleanup(backend, leftovers, log=console.print, stop_graces=stop_graces)
        code = 0 if all(r.removed for r in runs) else EXIT_LEFT_BEHIND
    try:
        mx.prune_records(records, [i.name for i in backend.list_stacks()], getattr(backend, "backend_url", None))
    except Exception as exc:  # noqa: BLE001 - a record left over is harmless
        console.print(f"[yellow]owner records not pruned:[/] {exc}")
    if sweeper is not None:
        code = max(code, _sweep(backend, records, untouched, yes, confirm, console, sweeper), key=_severity)
    return code


def _severity(code: int) -> int:
    return {0: 0, int(EXIT_REFUSED): 1, int(EXIT_LEFT_BEHIND): 2}.get(int(code), 1)


def _sweep(backend: mx.StackBackend, records: list[mx.OwnerRecord], untouched: list[mx.Untouched], yes: bool,
           confirm: Callable[[str], bool], console: Console, sweeper: Callable[[], sweep.Clients]) -> int:
    """The tag sweep: AWS resources of matrix stacks that are in no state (a create
    interrupted mid-way), expired or of a dead run; listed with their delete commands."""
    protected = {u.name for u in untouched}
    dead: set[str] = set()
    for rec in records:
        alive = rec.alive()  # None (another host): its stacks are judged by their expiry alone
        if alive:
            protected.update(rec.stacks)
        elif alive is False:
            dead.update(rec.stacks)
    in_state: set[str] = set()
    resource_ids = getattr(backend, "resource_ids", None)
    for info in backend.list_stacks():
        if mx.parse_stack_name(info.name) is None:
            continue  # only a matrix stack's state can hold a resource tagged with a matrix stack
        if resource_ids is None:  # a backend that cannot export states: only stacks that are gone are swept
            protected.add(info.name.rsplit("/", 1)[-1])
            continue
        try:
            in_state |= set(resource_ids(info.name))
        except Exception as exc:  # noqa: BLE001 - unknown state: its resources are not touched
            console.print(f"[yellow]tag sweep:[/] state of {info.name} unreadable ({short(exc)}); its resources are skipped")
            protected.add(info.name.rsplit("/", 1)[-1])
    try:
        clients = sweeper()
        orphans = sweep.find_orphans(clients, in_state, protected, dead)
    except Exception as exc:  # noqa: BLE001 - no credentials, no network, access denied
        console.print(f"[yellow]tag sweep not done:[/] {short(exc)} (AWS credentials and tag:GetResources, "
                      "ec2:Describe*, iam:ListRoles/ListRoleTags are needed; --no-sweep skips it)")
        return 0
    if not orphans:
        console.print("tag sweep: no tagged resources outside a state")
        return 0
    table = Table(title="AWS resources of matrix stacks in no state (expired or of a dead run)")
    for col in ("resource", "region", "stack", "expires", "delete with"):
        table.add_column(col, overflow="fold")
    for o in orphans:
        table.add_row(f"{o.kind} {o.resource_id}", o.region, o.stack,
                      f"{o.expires:%Y-%m-%d %H:%M}Z" if o.expires else "?", o.command)
    console.print(table)
    try:
        go = yes or confirm(f"Delete these {len(orphans)} AWS resource(s)?")
    except NoAnswer as exc:
        console.print(f"[red]not deleted:[/] {exc}; the commands above delete them")
        return EXIT_LEFT_BEHIND
    if not go:
        console.print("not deleted: the commands above delete them")
        return EXIT_LEFT_BEHIND
    failed = sweep.delete(clients, orphans, log=console.print)
    for o, err in failed:
        console.print(f"[bold red]left:[/] {o.arn}: {err} -> {o.command}")
    return EXIT_LEFT_BEHIND if failed else 0


def short(exc: BaseException) -> str:
    return mx.short_error(exc)


def sweep_regions(project_dir: Path | None = None) -> list[str]:
    """Regions the matrix deploys to: the project's default, every stack file's, and
    ``AWS_REGION``/``AWS_DEFAULT_REGION``."""
    found: list[str] = []
    project_dir = project_dir if project_dir is not None else find_project_dir()
    default = project_defaults(project_dir).get("region")
    if default:
        found.append(str(default))
    for stack in stacks(project_dir):
        try:
            region = load_stack_file(project_dir, stack).get("region")
        except Exception:  # noqa: BLE001 - an unreadable stack file has no region to add
            region = None
        if region:
            found.append(str(region))
    for env in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if os.environ.get(env):
            found.append(os.environ[env])
    return list(dict.fromkeys(found))


def complete_variant(incomplete: str) -> list[tuple[str, str]]:
    """Shell completion of ``--variant``: the catalog's variants with their CNI and underlay need."""
    return [(name, f"{v.cni} {v.cni_version}, underlay {v.underlay.value}")
            for name, v in CATALOG.items() if name.startswith(incomplete)]


def matrix(
    variant: Optional[list[str]] = typer.Option(
        None, "--variant", "-v", metavar="VARIANT", autocompletion=complete_variant,
        help=f"Variant to run (repeatable). One of: {', '.join(CATALOG)}."),
    parallel: int = typer.Option(1, "--parallel", "-p", help=f"Stacks deployed at the same time (1 to {len(CATALOG)})."),
    out: Path = typer.Option(Path("results/matrix"), "--out", "-o", help="Directory for results, logs and the report."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before spending money (or destroying in --cleanup)."),
    config: Optional[list[str]] = typer.Option(None, "--config", "-c", help="Config override key=value for every variant (repeatable), e.g. instanceType=c6i.4xlarge."),
    timeout: float = typer.Option(7200, "--timeout", help="Seconds for each variant's pulumi up (provisioning + benchmark, 60 to 604800); then it is interrupted and destroyed."),
    backend_url: Optional[str] = typer.Option(None, "--backend", envvar="PULUMI_BACKEND_URL", help="Pulumi backend URL: file://<dir>, s3://<bucket>, https://api.pulumi.com... (default: file://~, as pulumi login --local)."),
    secrets_provider: str = typer.Option("passphrase", "--secrets-provider", help="Secrets provider of new stacks (passphrase: the passphrase from PULUMI_CONFIG_PASSPHRASE, else the file named by PULUMI_CONFIG_PASSPHRASE_FILE, as the Pulumi CLI reads them; or awskms://..., gcpkms://..., hashivault://..., azurekeyvault://..., default for Pulumi Cloud's)."),
    esc_env: Optional[list[str]] = typer.Option(None, "--esc-env", metavar="ENVIRONMENT", help="Pulumi ESC environment ([org/]project/env) imported into every ephemeral stack (pulumi config env add), e.g. one that supplies AWS credentials through OIDC; repeatable, merged in order. Needs a Pulumi Cloud login for ESC."),
    prices: Optional[Path] = typer.Option(None, "--prices", exists=True, dir_okay=False, help="Price table (YAML: regions -> region -> instance type -> USD/hour) instead of cnibench/data/ec2-prices.yaml; a region or type missing from it is run with its cost shown as unknown."),
    expiry_hours: Optional[int] = typer.Option(None, "--expiry-hours", help="cnibench:expiryHours of the stacks, 1 to 720, at least timeout + destroy (default: timeout + destroy, at least 8)."),
    cleanup: bool = typer.Option(False, "--cleanup", help="Find matrix stacks past their expiry or of a dead run (owner record), destroy and remove them, sweep tagged AWS resources no state knows, then exit."),
    all_stacks: bool = typer.Option(False, "--all", help="With --cleanup: every matrix stack, expired or not, except those of a run that is still alive (owner record)."),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", envvar="CNIBENCH_STATE_DIR", file_okay=False, help="Directory of the runs' owner records (default: $XDG_STATE_HOME/cnibench/matrix or ~/.local/state/cnibench/matrix)."),
    region: Optional[list[str]] = typer.Option(None, "--region", help="With --cleanup: region(s) of the tag sweep (default: the regions of Pulumi.yaml and the stack files, and AWS_REGION)."),
    no_sweep: bool = typer.Option(False, "--no-sweep", help="With --cleanup: skip the tag sweep of AWS resources."),
) -> None:
    """Run variants on ephemeral AWS stacks (Pulumi Automation API), always destroyed afterwards.

    Before anything is created: every variant's config is validated, the offline policy check
    runs (a mandatory violation stops everything) and the estimated cost is shown and confirmed.
    """
    require_cloud("cnibench matrix")
    console = err_console()
    workspace = (state_dir or mx.default_state_dir()) / WORKSPACE_NAME
    try:  # everything that can be checked offline, before the Pulumi CLI or a workspace
        if cleanup:
            backend_url = mx.check_backend_url(backend_url)
            provider = mx.check_secrets_provider(secrets_provider)
            opts: mx.MatrixOptions | None = None
        else:
            opts = check_inputs(variants=list(variant or []), parallel=parallel, out=out, config=list(config or []),
                                timeout=timeout, expiry_hours=expiry_hours, backend_url=backend_url,
                                secrets_provider=secrets_provider, esc_env=list(esc_env or []), cleanup=cleanup,
                                all_stacks=all_stacks, region=list(region or []), no_sweep=no_sweep)
            provider = mx.check_secrets_provider(secrets_provider)
    except InputError as exc:
        _refused(console, "refused before anything ran", exc)
        raise typer.Exit(EXIT_REFUSED) from None

    def factory() -> mx.StackBackend:
        return mx.AutomationBackend(None, backend_url, provider, work_dir=workspace, environments=tuple(esc_env or ()))

    if opts is None:
        try:
            backend = factory()
        except Exception as exc:  # noqa: BLE001
            _refused(console, "cannot open the Pulumi workspace", exc)
            raise typer.Exit(EXIT_REFUSED) from None
        regions = list(region or []) or sweep_regions()
        sweeper = None if no_sweep else (lambda: sweep.aws_clients(regions))
        raise typer.Exit(run_cleanup_command(backend, include_unexpired=all_stacks, yes=yes, confirm=ask, console=console,
                                             state_dir=state_dir, sweeper=sweeper))
    code = run_matrix_command(opts, backend_factory=factory, preflight=mx.default_preflight(), confirm=ask,
                              yes=yes, prices=prices, console=console, state_dir=state_dir)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command()(matrix)
