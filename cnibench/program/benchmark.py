"""Run the benchmark suite on the cluster once the CNI is ready; publish the result document.

One ``command:remote:Command`` on the control plane runs ``cnibench/suite/runner/bench.sh``
with the plan of :mod:`cnibench.suite.plan` (pods pinned to the client and server nodes by their
``cnibench.io/role`` label, host network as the reference, per-test timeouts, clean-up in a
trap) and prints one JSON document of raw tool outputs; :func:`cnibench.suite.build.build_result`
turns it into the result document (schema ``cnibench/schemas/result-v2.schema.json``, the same
tests as the local lab: :mod:`cnibench.suite.definition`), which is
``Benchmark.result`` (the ``benchmark`` stack output), and a table goes to the update's log.

Re-running: ``triggers`` holds ``benchmarkRun``, the plan's digest and the id of the CNI's
readiness gate, so changing ``cnibench:benchmarkRun`` (or any benchmark setting) replaces only
this command (the cluster stays), and a re-installed CNI is measured again. The old command's ``delete`` (namespace clean-up) runs first (``delete_before_replace``).
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pulumi
from pulumi_command import remote

from cnibench import results
from cnibench.suite import build, bundle, table
from cnibench.suite import plan as suite_plan
from cnibench.variants import PortRule

# Security-group rules the host-network reference needs between the nodes: the servers of the
# hostNetwork pods listen on the node's own address (pod-network servers need no rule of their own).
HOST_PORT_RULES: tuple[PortRule, ...] = (
    PortRule("tcp", suite_plan.IPERF3_PORT, description="cnibench benchmark: iperf3 (host network)"),
    PortRule("udp", suite_plan.IPERF3_PORT, description="cnibench benchmark: iperf3 UDP (host network)"),
    PortRule("tcp", suite_plan.HTTP_PORT, description="cnibench benchmark: nginx (host network)"),
    PortRule("tcp", suite_plan.SOCKPERF_PORT, description="cnibench benchmark: sockperf TCP (host network)"),
    PortRule("udp", suite_plan.SOCKPERF_PORT, description="cnibench benchmark: sockperf UDP (host network)"),
)
# Set-up (image pull, apt-get, pod start) and clean-up on top of benchmarkTimeout.
SETUP_MARGIN_S = 2 * suite_plan.POD_READY_TIMEOUT_S + 600


def _log_result(doc: dict[str, Any], resource: pulumi.Resource) -> None:
    text = table.format_table(doc)
    status = (doc.get("extra") or {}).get("status")
    if status in ("failed", "partial"):
        pulumi.log.warn(text, resource=resource)
    else:
        pulumi.log.info(text, resource=resource)


class Benchmark(pulumi.ComponentResource):
    """The benchmark of one stack. ``result`` is the result document (``benchmark`` output)."""

    result: pulumi.Output[dict]

    def __init__(
        self,
        name: str,
        cfg: Any,
        cluster: Any,
        nodes: Any,
        cni: Any,
        opts: pulumi.ResourceOptions | None = None,
        network: Any = None,
    ) -> None:
        super().__init__("cnibench:index:Benchmark", name, None, opts)
        self.plan = suite_plan.plan_from_config(cfg)
        stack = pulumi.get_stack()
        deps: list[pulumi.Resource] = [cni.ready, *list(getattr(cluster, "ready", []) or [])]

        if network is not None:
            # the network component builds and tags the rules; they belong to the benchmark
            deps += network.allow_between_nodes(f"{name}-host", HOST_PORT_RULES,
                                                opts=pulumi.ResourceOptions(parent=self))

        client = nodes.nodes["client"].node_name
        server = nodes.nodes["server"].node_name
        files = pulumi.Output.all(client, server).apply(lambda n: bundle.bundle(self.plan, n[0], n[1]))
        self.command = remote.Command(
            f"{name}-run",
            connection=cluster.connection("control-plane"),
            create=files.apply(bundle.remote_command),
            delete=bundle.DELETE_COMMAND,
            # a new run: benchmarkRun changed, a benchmark setting changed (digest), or the CNI
            # was installed again (its readiness gate was replaced)
            triggers=[cfg.benchmark_run, self.plan.digest(),
                      *([cni.ready.id] if isinstance(cni.ready, pulumi.CustomResource) else [])],
            # stdout is the raw result document: large, so it is not fed back into the
            # environment of later runs, and not echoed line by line into the log (stderr is)
            add_previous_output_in_env=False,
            logging=remote.Logging.STDERR,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=deps,
                delete_before_replace=True,
                custom_timeouts=pulumi.CustomTimeouts(create=f"{cfg.benchmark_timeout + SETUP_MARGIN_S}s"),
            ),
        )
        ctx = pulumi.Output.all(client, server).apply(
            lambda n: _context(cfg, stack, n[0], n[1]))
        self.result = pulumi.Output.all(self.command.stdout, ctx).apply(lambda v: self._build(v[0], v[1]))
        self.register_outputs({"result": self.result})

    def _build(self, stdout: str, ctx: build.RunContext) -> dict[str, Any]:
        doc = build.build_result(stdout, self.plan, ctx)
        try:
            results.validate(doc)
        except jsonschema.ValidationError as exc:
            # the measurements took up to benchmarkTimeout: publish them rather than fail the
            # update, and say loudly that the document does not follow the schema
            doc.setdefault("extra", {})["schema_error"] = str(exc).splitlines()[0]
            pulumi.log.warn(f"benchmark result does not follow result-v2.schema.json: {exc}", resource=self)
        _log_result(doc, self)
        return doc


def _context(cfg: Any, stack: str, client: str, server: str) -> build.RunContext:
    ctx = build.RunContext.from_config(cfg, stack)
    ctx.client_node, ctx.server_node = client, server
    return ctx
