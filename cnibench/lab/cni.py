"""Invoke the reference CNI plugins (containernetworking-plugins) per the CNI spec.

The plugin runs inside the *node* namespace (where it creates the bridge / finds the
ipvlan master) with ``CNI_NETNS`` pointing at the pod namespace, the network
configuration on stdin, and prints a result (or an error object) on stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from cnibench.lab.nsutil import NETNS_DIR, ns_exec

CNI_PATH = Path(os.environ.get("CNIBENCH_CNI_PATH", "/usr/lib/cni"))
CNI_VERSION = "1.0.0"


class CNIError(RuntimeError):
    pass


def host_local_ipam(subnet: str, data_dir: Path, *, gateway: str | None = None, range_start: str | None = None,
                    range_end: str | None = None, routes: list[dict] | None = None) -> dict[str, Any]:
    rng: dict[str, Any] = {"subnet": subnet}
    if gateway:
        rng["gateway"] = gateway
    if range_start:
        rng["rangeStart"] = range_start
    if range_end:
        rng["rangeEnd"] = range_end
    ipam: dict[str, Any] = {"type": "host-local", "ranges": [[rng]], "dataDir": str(data_dir)}
    if routes:
        ipam["routes"] = routes
    return ipam


def bridge_conf(name: str, ipam: dict, *, bridge: str = "cni0", mtu: int = 1500) -> dict[str, Any]:
    """The bridge plugin as flannel delegates to it: gateway on the bridge, no masquerade."""
    return {"cniVersion": CNI_VERSION, "name": name, "type": "bridge", "bridge": bridge, "isGateway": True,
            "isDefaultGateway": False, "ipMasq": False, "hairpinMode": False, "mtu": mtu, "ipam": ipam}


def ipvlan_conf(name: str, ipam: dict, *, master: str = "eth0", mode: str = "l2", mtu: int | None = None) -> dict:
    conf: dict[str, Any] = {"cniVersion": CNI_VERSION, "name": name, "type": "ipvlan", "master": master,
                            "mode": mode, "ipam": ipam}
    if mtu:
        conf["mtu"] = mtu
    return conf


def invoke(command: str, conf: dict[str, Any], *, node_ns: str, pod_ns: str, container_id: str,
           ifname: str = "eth0", timeout: float = 30) -> dict[str, Any]:
    plugin = CNI_PATH / conf["type"]
    if not os.access(plugin, os.X_OK):
        raise CNIError(f"CNI plugin {plugin} not found: install the Debian package containernetworking-plugins")
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": str(NETNS_DIR / pod_ns),
        "CNI_IFNAME": ifname,
        "CNI_PATH": str(CNI_PATH),
    }
    proc = subprocess.run(ns_exec(node_ns, [str(plugin)]), input=json.dumps(conf), env=env,
                          capture_output=True, text=True, timeout=timeout)
    out = proc.stdout.strip()
    result: dict[str, Any] = {}
    if out:
        try:
            result = json.loads(out)
        except ValueError:
            result = {"msg": out}
    if proc.returncode != 0 or "code" in result and "msg" in result and command != "VERSION":
        msg = result.get("msg") or proc.stderr.strip() or f"exit {proc.returncode}"
        details = result.get("details")
        raise CNIError(f"CNI {conf['type']} {command} for {pod_ns} failed: {msg}" + (f" ({details})" if details else ""))
    return result


def add(conf: dict, **kw: Any) -> dict[str, Any]:
    return invoke("ADD", conf, **kw)


def delete(conf: dict, **kw: Any) -> None:
    invoke("DEL", conf, **kw)
