"""The benchmark pods: client and server, on the host network and on the CNI's, pinned by node role."""

from __future__ import annotations

from typing import Any

from cnibench.suite.plan import (
    DEBS_HOST_PATH,
    HTTP_PORT,
    IPERF3_PORT,
    NAMESPACE,
    ROLE_LABEL,
    RUN_TOKEN,
    SCRIPTS_DIR,
    SERVICE,
    SOCKPERF_PORT,
    SuitePlan,
)


def _script(name: str) -> str:
    return (SCRIPTS_DIR / name).read_text()


def pin_to_node(node: str) -> dict[str, Any]:
    """A pod's affinity to the node named ``node``, for a cluster cnibench did not build (its
    nodes carry no role label and are not changed). ``matchFields`` on ``metadata.name`` is
    how the DaemonSet controller pins its pods (kubernetes.io/docs/concepts/workloads/controllers/
    daemonset/, "How Daemon Pods are scheduled"); unlike ``nodeName`` it goes through the
    scheduler, so taints and resources are still honoured."""
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}}}


def pod_manifests(plan: SuitePlan, nodes: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Namespace, the four benchmark pods and the service in front of the variant's server pod.

    The server pods run an iperf3 server, a TCP and a UDP sockperf server and nginx (one file
    per response size of the HTTP and connection-rate tests); see ``runner/pod-setup.sh``.

    Every pod is pinned with a nodeSelector on the role label the cluster component puts on the
    nodes; the hostNetwork pod of each node downloads the tools (Debian packages) into a hostPath
    directory from which the pod-network pod of that node installs them; it tolerates the control-plane taint (with ``controlPlaneOnBenchmarkNode`` the client
    node is the control plane). hostNetwork pods use the node's resolver (the CNI plays no part
    in the reference).

    ``nodes`` (role -> node name, ``cnibench run``): the pods are pinned by node name instead of
    the role label. Without a host reference there are no hostNetwork pods and no hostPath
    volume (both need the privileged Pod Security level): the pod-network pods install the tools
    themselves, or find them in the image (``plan.image``).
    """
    setup = _script("pod-setup.sh")
    sizes = [str(s) for s in plan.served_sizes]
    labels = {"app.kubernetes.io/managed-by": "cnibench"}
    if plan.host_reference:
        # hostNetwork pods need the privileged Pod Security level
        labels["pod-security.kubernetes.io/enforce"] = "privileged"
    manifests: list[dict[str, Any]] = [{
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": labels},
    }]
    for name, role, host_network, serves in plan.pods:
        placement: dict[str, Any] = ({"affinity": pin_to_node(nodes[role])} if nodes
                                     else {"nodeSelector": {ROLE_LABEL: role}})
        net = "host" if host_network else ("pod" if plan.host_reference else "self")
        spec: dict[str, Any] = {
            **placement,
            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                             "effect": "NoSchedule"}],
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "bench",
                "image": plan.image,
                "command": ["/bin/sh", "-c", setup, "pod-setup", "server" if serves else "client", net, RUN_TOKEN, str(IPERF3_PORT), str(SOCKPERF_PORT),
                            str(HTTP_PORT), *sizes],
                **({"volumeMounts": [{"name": "debs", "mountPath": "/cnibench-debs"}]} if plan.host_reference else {}),
                "readinessProbe": {"exec": {"command": ["test", "-f", "/tmp/cnibench-ready"]},
                                   "periodSeconds": 2, "failureThreshold": 1},
            }],
            # the hostNetwork pod of a node downloads the tools and leaves them here for the
            # pod-network pod of the same node (see pod-setup.sh)
            **({"volumes": [{"name": "debs", "hostPath": {"path": DEBS_HOST_PATH, "type": "DirectoryOrCreate"}}]}
               if plan.host_reference else {}),
        }
        if host_network:
            spec["hostNetwork"] = True
            spec["dnsPolicy"] = "Default"
        manifests.append({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE,
                         "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "cnibench",
                                    "cnibench.io/bench-role": role}},
            "spec": spec,
        })
    manifests.append({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE, "namespace": NAMESPACE},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": "cnibench-srv-pod"},
            "ports": [
                {"name": "iperf3-tcp", "protocol": "TCP", "port": IPERF3_PORT, "targetPort": IPERF3_PORT},
                {"name": "iperf3-udp", "protocol": "UDP", "port": IPERF3_PORT, "targetPort": IPERF3_PORT},
                {"name": "http", "protocol": "TCP", "port": HTTP_PORT, "targetPort": HTTP_PORT},
            ],
        },
    })
    return manifests
