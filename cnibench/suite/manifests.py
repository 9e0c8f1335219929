"""The benchmark pods: client and server, on the host network and on the CNI's, pinned by node role."""

from __future__ import annotations

from typing import Any

from cnibench.suite.plan import (
    DEBS_HOST_PATH,
    HTTP_PORT,
    IMAGE,
    IPERF3_PORT,
    NAMESPACE,
    PODS,
    ROLE_LABEL,
    RUN_TOKEN,
    SCRIPTS_DIR,
    SERVICE,
    SOCKPERF_PORT,
    SuitePlan,
)


def _script(name: str) -> str:
    return (SCRIPTS_DIR / name).read_text()


def pod_manifests(plan: SuitePlan) -> list[dict[str, Any]]:
    """Namespace, the four benchmark pods and the service in front of the variant's server pod.

    The server pods run an iperf3 server, a TCP and a UDP sockperf server and nginx (one file
    per response size of the HTTP and connection-rate tests); see ``runner/pod-setup.sh``.

    Every pod is pinned with a nodeSelector on the role label the cluster component puts on the
    nodes; the hostNetwork pod of each node downloads the tools (Debian packages) into a hostPath
    directory from which the pod-network pod of that node installs them; it tolerates the control-plane taint (with ``controlPlaneOnBenchmarkNode`` the client
    node is the control plane). hostNetwork pods use the node's resolver (the CNI plays no part
    in the reference).
    """
    setup = _script("pod-setup.sh")
    sizes = [str(s) for s in plan.served_sizes]
    manifests: list[dict[str, Any]] = [{
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {
            "app.kubernetes.io/managed-by": "cnibench",
            # hostNetwork pods need the privileged Pod Security level
            "pod-security.kubernetes.io/enforce": "privileged",
        }},
    }]
    for name, role, host_network, serves in PODS:
        spec: dict[str, Any] = {
            "nodeSelector": {ROLE_LABEL: role},
            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                             "effect": "NoSchedule"}],
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "bench",
                "image": IMAGE,
                "command": ["/bin/sh", "-c", setup, "pod-setup", "server" if serves else "client",
                            "host" if host_network else "pod", RUN_TOKEN, str(IPERF3_PORT), str(SOCKPERF_PORT),
                            str(HTTP_PORT), *sizes],
                "volumeMounts": [{"name": "debs", "mountPath": "/cnibench-debs"}],
                "readinessProbe": {"exec": {"command": ["test", "-f", "/tmp/cnibench-ready"]},
                                   "periodSeconds": 2, "failureThreshold": 1},
            }],
            # the hostNetwork pod of a node downloads the tools and leaves them here for the
            # pod-network pod of the same node (see pod-setup.sh)
            "volumes": [{"name": "debs", "hostPath": {"path": DEBS_HOST_PATH, "type": "DirectoryOrCreate"}}],
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
