"""Cluster: kubeadm over SSH with pulumi-command (under mocks), and its pure helpers."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from test_variants import REPLACES_KUBE_PROXY

import cnibench
from cnibench.program import cluster as cluster_mod
from cnibench.program.cluster import (
    ROLE_LABEL,
    SCRIPTS,
    external_kubeconfig,
    kubeadm_config,
    parse_join_command,
    remote_script,
)
from tests.conftest import ALL_STACKS, public_ip
from tests.test_shell import shell_scripts

CMD = "command:remote:Command"
# kubeadm's own names (kubernetes/website, "Creating a cluster with kubeadm" and the kubeadm
# reference): the kube-proxy addon is the init phase addon/kube-proxy, skipped with --skip-phases;
# kubeadm init writes the admin kubeconfig to /etc/kubernetes/admin.conf; `kubeadm token create
# --print-join-command` prints the whole `kubeadm join` line for a new token (--ttl: its lifetime).
SKIP_KUBE_PROXY = "--skip-phases=addon/kube-proxy"
KUBECONFIG_COMMAND = "sudo cat /etc/kubernetes/admin.conf"
JOIN_COMMAND = "sudo kubeadm token create --print-join-command --ttl 2h"
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's marker of a serialized secret


def plain(value):
    """A resource input with Pulumi's secret wrapper removed."""
    if isinstance(value, dict) and SECRET_SIG in value:
        return plain(value["value"])
    return value


def is_secret(value) -> bool:
    return isinstance(value, dict) and SECRET_SIG in value


def cmd(run, name: str):
    return run.one(CMD, f"k8s-{name}")


def env_of(create: str) -> dict[str, str]:
    """The ``sudo env K=V ...`` assignments of a remote_script() create text."""
    head = create.split(" bash -s --", 1)[0]
    words = shlex.split(head)
    assert words[:2] == ["sudo", "env"]
    return dict(w.split("=", 1) for w in words[2:])


def instance(run, role):
    (inst,) = [i for i in run.of_type("aws:ec2/instance:Instance") if i.inputs["tags"]["cnibench:role"] == role]
    return inst


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_kube_proxy_phase_skipped_exactly_for_kube_proxy_free_variants(stack_run, stack):
    run = stack_run(stack)
    init = plain(cmd(run, "init").inputs["create"])
    head = init.split("<<", 1)[0]  # the command line, before the script text
    assert (SKIP_KUBE_PROXY in head) is (stack in REPLACES_KUBE_PROXY)
    for c in run.of_type(CMD):
        if c.name != "k8s-init":
            assert "addon/kube-proxy" not in str(plain(c.inputs.get("create"))), c.name
    assert "kubeadm init --config" in init


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_kubeadm_config_carries_the_stack_config(stack_run, stack):
    run = stack_run(stack)
    init_doc, cluster_doc, *proxy = yaml.safe_load_all(env_of(plain(cmd(run, "init").inputs["create"]))["KUBEADM_CONFIG"])
    assert [d["kind"] for d in proxy] == (["KubeProxyConfiguration"] if stack == "cilium-eni" else [])
    cp = instance(run, "control-plane")
    assert init_doc["kind"] == "InitConfiguration" and cluster_doc["kind"] == "ClusterConfiguration"
    assert init_doc["apiVersion"] == "kubeadm.k8s.io/v1beta4"  # kubernetesVersion 1.33
    assert init_doc["localAPIEndpoint"]["advertiseAddress"] == cp.state["privateIp"]
    assert init_doc["nodeRegistration"]["name"] == cp.state["privateDns"]
    assert "taints" not in init_doc["nodeRegistration"]  # separate control plane keeps its taint
    assert cluster_doc["networking"] == {"podSubnet": run.config["podCidr"], "serviceSubnet": run.config["serviceCidr"]}
    assert cluster_doc["controllerManager"]["extraArgs"] == [
        {"name": "node-cidr-mask-size", "value": str(run.config["nodePodMaskSize"])}
    ]
    assert public_ip(run, "control-plane") in cluster_doc["apiServer"]["certSANs"]
    assert cluster_doc["controlPlaneEndpoint"] == f"{cp.state['privateIp']}:6443"


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_every_machine_is_prepared_with_the_configured_version(stack_run, stack):
    run = stack_run(stack)
    for role in ("control-plane", "client", "server"):
        inst = instance(run, role)
        boot = cmd(run, f"{role}-boot")
        conn = plain(boot.inputs["connection"])
        assert conn["host"] == public_ip(run, role) and conn["user"] == "ubuntu"
        assert int(conn["dialErrorLimit"]) == -1  # sshd is not up when the instance is
        assert "cloud-init status --wait" in boot.inputs["create"]
        prereqs = cmd(run, f"{role}-prereqs")
        env = env_of(prereqs.inputs["create"])
        assert env == {"KUBERNETES_MINOR": run.config["kubernetesVersion"], "NODE_IP": inst.state["privateIp"]}
        assert "https://pkgs.k8s.io/core:/stable:/v${KUBERNETES_MINOR}/deb/" in prereqs.inputs["create"]
        assert "SystemdCgroup = true" in prereqs.inputs["create"]
        assert run.depends_on(prereqs, boot)


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_workers_join_and_benchmark_nodes_are_labelled(stack_run, stack):
    run = stack_run(stack)
    init = cmd(run, "init")
    join_command = cmd(run, "join-command")
    labels = []
    for role in ("client", "server"):
        inst = instance(run, role)
        join = cmd(run, f"{role}-join")
        create = join.inputs["create"]
        assert is_secret(create), "the join step carries the token: its create text must be secret"
        env = env_of(plain(create))
        assert env["NODE_NAME"] == inst.state["privateDns"]
        assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", env["JOIN_TOKEN"])
        assert env["CA_CERT_HASH"].startswith("sha256:")
        assert plain(join.inputs["connection"])["host"] == public_ip(run, role)
        assert run.depends_on(join, join_command) and run.depends_on(join, cmd(run, f"{role}-prereqs"))
        label = cmd(run, f"{role}-label")
        env = env_of(label.inputs["create"])
        assert env == {"NODE_NAME": inst.state["privateDns"], "NODE_LABELS": f"{ROLE_LABEL}={role}"}
        # labelled from the control plane, after the join
        assert plain(label.inputs["connection"])["host"] == public_ip(run, "control-plane")
        assert run.depends_on(label, join) and run.depends_on(join_command, init)
        labels.append(label)
    provider = run.one("pulumi:providers:kubernetes")
    assert all(run.depends_on(provider, label) for label in labels)


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_secrets_stay_secret(stack_run, stack):
    run = stack_run(stack)
    for name, create in (("kubeconfig", KUBECONFIG_COMMAND), ("join-command", JOIN_COMMAND)):
        c = cmd(run, name)
        assert c.inputs["create"] == create
        assert c.inputs["logging"] == "none"
        assert c.inputs["addPreviousOutputInEnv"] is False
        assert "stdout" in c.options["additionalSecretOutputs"]
    assert "kubeconfig" in run.secret_outputs
    kubeconfig = yaml.safe_load(run.outputs["kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://{public_ip(run, 'control-plane')}:6443"
    provider = run.one("pulumi:providers:kubernetes")
    assert is_secret(provider.inputs["kubeconfig"])
    assert yaml.safe_load(plain(provider.inputs["kubeconfig"]))["clusters"][0]["cluster"]["server"].startswith("https://")
    # no command line but the join steps' (secret) ones carries the token
    for c in run.of_type(CMD):
        create = c.inputs.get("create")
        if not is_secret(create):
            assert "abcdef.0123456789abcdef" not in str(create), c.name


def test_control_plane_on_the_client_node(program):
    run = program("cilium-native-kpr", {"controlPlaneOnBenchmarkNode": True})
    names = {c.name for c in run.of_type(CMD)}
    assert "k8s-control-plane-boot" not in names and "k8s-client-join" not in names
    assert {"k8s-client-boot", "k8s-server-join", "k8s-client-label", "k8s-server-label"} <= names
    init = plain(cmd(run, "init").inputs["create"])
    init_doc, *_ = yaml.safe_load_all(env_of(init)["KUBEADM_CONFIG"])
    client = instance(run, "client")
    assert init_doc["nodeRegistration"]["name"] == client.state["privateDns"]
    assert init_doc["nodeRegistration"]["taints"] == []  # benchmark pods must run on it
    assert plain(cmd(run, "init").inputs["connection"])["host"] == public_ip(run, "client")
    assert public_ip(run, "client") != client.state["publicIp"]  # the combined node has the Elastic IP
    assert SKIP_KUBE_PROXY in init


def test_older_minor_uses_v1beta3_and_bad_versions_name_the_key(program):
    run = program("flannel-vxlan", {"kubernetesVersion": "1.30"})
    docs = list(yaml.safe_load_all(env_of(plain(cmd(run, "init").inputs["create"]))["KUBEADM_CONFIG"]))
    assert {d["apiVersion"] for d in docs} == {"kubeadm.k8s.io/v1beta3"}
    assert docs[1]["controllerManager"]["extraArgs"] == {"node-cidr-mask-size": "24"}
    assert env_of(cmd(run, "client-prereqs").inputs["create"])["KUBERNETES_MINOR"] == "1.30"
    for bad in ("1.23", "v1.33", "1.33.2"):
        with pytest.raises(Exception, match="cnibench:kubernetesVersion"):
            program("flannel-vxlan", {"kubernetesVersion": bad})


# --- scripts ----------------------------------------------------------------------------

def test_scripts_are_used_and_shellchecked():
    scripts = {p.name for p in SCRIPTS.glob("*.sh")}
    source = (SCRIPTS.parent / "cluster.py").read_text()
    assert scripts == {"wait-for-boot.sh", "node-prereqs.sh", "kubeadm-init.sh", "kubeadm-join.sh", "label-node.sh"}
    assert all(f'"{name}"' in source for name in scripts)
    # tests/test_shell.py runs shellcheck on every one of them
    assert {p.resolve() for p in SCRIPTS.glob("*.sh")} <= {p.resolve() for p in shell_scripts()}


@pytest.mark.parametrize("path", sorted(SCRIPTS.glob("*.sh")), ids=lambda p: p.name)
def test_scripts_carry_no_secrets(path):
    text = path.read_text()
    assert "PRIVATE KEY" not in text
    assert not re.search(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b", text)  # a bootstrap token
    assert not re.search(r"sha256:[0-9a-f]{64}", text)


def test_remote_script_quotes_values_and_arguments(tmp_path, monkeypatch):
    """Run a remote_script() create text in a real bash (without sudo): tricky values arrive
    intact, the here-document is not expanded, arguments pass through."""
    (tmp_path / "probe.sh").write_text(
        '#!/usr/bin/env bash\nprintf "%s|" "$VALUE" "$OTHER" "$@"\necho \'literal: $OUTER\'\n'
    )
    monkeypatch.setattr(cluster_mod, "SCRIPTS", tmp_path)
    value = "it's a \"value\"\nwith $(dollar) and `ticks`"
    create = remote_script("probe.sh", {"VALUE": value, "OTHER": "b c"}, ["--flag=x y", "z"])
    assert create.startswith("sudo env ")
    out = subprocess.run(
        ["bash", "-c", create.removeprefix("sudo ")], capture_output=True, text=True, check=True,
        env={"PATH": "/usr/bin:/bin", "OUTER": "expanded-by-the-outer-shell"},
    )
    assert out.stdout.split("\n")[:2] == ["it's a \"value\"", "with $(dollar) and `ticks`|b c|--flag=x y|z|literal: $OUTER"]


# --- pure helpers -----------------------------------------------------------------------

def test_parse_join_command():
    hash_ = "sha256:" + "ab" * 32
    out = f"kubeadm join 10.20.0.10:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash {hash_} \n"
    assert parse_join_command(out) == {"endpoint": "10.20.0.10:6443", "token": "abcdef.0123456789abcdef", "hash": hash_}
    with pytest.raises(ValueError, match="print-join-command"):
        parse_join_command("error: unable to create token")


def test_external_kubeconfig_points_at_the_public_address():
    conf = yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "kubernetes", "cluster": {"server": "https://10.20.0.10:6443", "certificate-authority-data": "x"}}],
    })
    out = yaml.safe_load(external_kubeconfig(conf, "198.51.100.7"))
    assert out["clusters"][0]["cluster"] == {"server": "https://198.51.100.7:6443", "certificate-authority-data": "x"}
    with pytest.raises(ValueError):
        external_kubeconfig("not: a kubeconfig", "198.51.100.7")


def test_kubeadm_config_schedulable_control_plane():
    text = kubeadm_config(
        minor=33, node_name="n", advertise_address="10.0.0.1", public_ip="198.51.100.1",
        pod_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12", node_pod_mask_size=25, schedulable=True,
    )
    init, cluster = yaml.safe_load_all(text)
    assert init["nodeRegistration"]["taints"] == []
    assert cluster["kubernetesVersion"] == "@KUBERNETES_VERSION@"
    assert cluster["controllerManager"]["extraArgs"] == [{"name": "node-cidr-mask-size", "value": "25"}]


def test_eni_pods_are_local_to_kube_proxy_by_their_interface(stack_run):
    # cilium-eni pods hold VPC addresses outside podSubnet: kube-proxy must not take their
    # service traffic for off-cluster traffic (and SNAT it); it detects them by interface name
    run = stack_run("cilium-eni")
    docs = list(yaml.safe_load_all(env_of(plain(cmd(run, "init").inputs["create"]))["KUBEADM_CONFIG"]))
    proxy = [d for d in docs if d.get("kind") == "KubeProxyConfiguration"]
    assert proxy == [{"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
                      "detectLocalMode": "InterfaceNamePrefix", "detectLocal": {"interfaceNamePrefix": "lxc"}}]
    # every other variant keeps kube-proxy's defaults (clusterCIDR = podSubnet), or has no kube-proxy
    for stack in ("flannel-vxlan", "cilium-native", "cilium-native-kpr", "ipvlan"):
        text = env_of(plain(cmd(stack_run(stack), "init").inputs["create"]))["KUBEADM_CONFIG"]
        kinds = [d.get("kind") for d in yaml.safe_load_all(text)]
        assert kinds == ["InitConfiguration", "ClusterConfiguration"], stack


def test_node_prereqs_stop_background_upgrades_before_measuring(tmp_path):
    """The hygiene block of node-prereqs.sh, run with a stand-in systemctl that logs its calls."""
    script = (Path(cnibench.__file__).parent / "program" / "scripts" / "node-prereqs.sh").read_text()
    start = script.index("# No background upgrades")
    end = script.index("unattended-upgrades.service >/dev/null", start) + len("unattended-upgrades.service >/dev/null")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls"
    (bindir / "systemctl").write_text(f'#!/bin/sh\necho "$*" >>{log}\n')
    (bindir / "systemctl").chmod(0o755)
    subprocess.run(["bash", "-euo", "pipefail", "-c", script[start:end]], check=True,
                   env={"PATH": f"{bindir}:/usr/bin:/bin"})
    calls = log.read_text().splitlines()
    assert calls[:2] == ["disable --now apt-daily.timer", "disable --now apt-daily-upgrade.timer"]
    assert calls[2:5] == ["stop apt-daily.service", "stop apt-daily-upgrade.service", "stop unattended-upgrades.service"]
    assert calls[5] == ("mask apt-daily.service apt-daily-upgrade.service apt-daily.timer apt-daily-upgrade.timer "
                        "unattended-upgrades.service")


def _ca(tmp_path, name: str) -> tuple[Path, str]:
    """A self-signed RSA CA (as kubeadm makes one) and its discovery hash, computed in Python."""
    key, crt = tmp_path / f"{name}.key", tmp_path / f"{name}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "1", "-subj", f"/CN={name}"], check=True, capture_output=True)
    der = subprocess.run(["openssl", "x509", "-in", str(crt), "-noout", "-pubkey"], check=True,
                         capture_output=True).stdout
    spki = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=der, check=True,
                          capture_output=True).stdout
    import hashlib
    return crt, "sha256:" + hashlib.sha256(spki).hexdigest()


@pytest.mark.parametrize("state", ["fresh", "same-cluster", "other-cluster"])
def test_join_rejoins_only_a_node_of_another_cluster(tmp_path, state):
    script = Path(cnibench.__file__).parent / "program" / "scripts" / "kubeadm-join.sh"
    k8s = tmp_path / "kubernetes"
    (k8s / "pki").mkdir(parents=True)
    ca, ca_hash = _ca(tmp_path, "current")
    if state != "fresh":
        (k8s / "kubelet.conf").write_text("apiVersion: v1\n")
        old, _ = _ca(tmp_path, "old")
        (k8s / "pki" / "ca.crt").write_bytes((ca if state == "same-cluster" else old).read_bytes())
    bindir, log = tmp_path / "bin", tmp_path / "calls"
    bindir.mkdir()
    (bindir / "kubeadm").write_text(f'#!/bin/sh\necho "kubeadm $*" >>{log}\n')
    (bindir / "kubeadm").chmod(0o755)
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, env={
        "PATH": f"{bindir}:/usr/bin:/bin", "KUBERNETES_DIR": str(k8s), "API_ENDPOINT": "10.20.0.10:6443",
        "JOIN_TOKEN": "abcdef.0123456789abcdef", "CA_CERT_HASH": ca_hash, "NODE_NAME": "ip-10-20-0-20"})
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines() if log.exists() else []
    join = ("kubeadm join 10.20.0.10:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash "
            f"{ca_hash} --node-name ip-10-20-0-20")
    expected = {"fresh": [join], "same-cluster": [], "other-cluster": ["kubeadm reset --force", join]}[state]
    assert calls == expected, proc.stdout


def test_the_api_endpoint_is_an_elastic_ip_and_replaced_machines_rerun_their_steps(stack_run):
    run = stack_run("flannel-vxlan")
    (eip,) = run.of_type("aws:ec2/eip:Eip")
    cp = instance(run, "control-plane")
    assert eip.inputs["instance"] == cp.state["id"] and eip.inputs["domain"] == "vpc"
    assert eip.inputs["tags"]["cnibench:role"] == "control-plane"
    # the certificate, the kubeconfig and every SSH step use the Elastic IP
    init_doc, cluster_doc, *_ = yaml.safe_load_all(env_of(plain(cmd(run, "init").inputs["create"]))["KUBEADM_CONFIG"])
    assert eip.state["publicIp"] in cluster_doc["apiServer"]["certSANs"]
    assert plain(cmd(run, "init").inputs["connection"])["host"] == eip.state["publicIp"]
    assert f"https://{eip.state['publicIp']}:6443" in plain(run.outputs["kubeconfig"])
    # every per-machine step re-runs when its machine is replaced, and the workers rejoin a new
    # control plane
    for c in run.of_type(CMD):
        if c.name.startswith("k8s-") and c.name not in ("k8s-kubeconfig", "k8s-join-command"):
            role = next(r for r in ("control-plane", "client", "server") if c.name.startswith(f"k8s-{r}-")) \
                if not c.name == "k8s-init" else "control-plane"
            assert instance(run, role).state["id"] in c.inputs["triggers"], c.name
    for worker in ("client", "server"):
        assert cp.state["id"] in cmd(run, f"{worker}-join").inputs["triggers"]
    assert cp.state["id"] in cmd(run, "join-command").inputs["triggers"]
    assert cmd(run, "kubeconfig").inputs["triggers"] == [cp.state["id"]]


@pytest.mark.parametrize("stack", ["flannel-vxlan", "cilium-eni", "ipvlan"])
def test_every_ssh_connection_verifies_the_nodes_own_host_key(stack_run, stack):
    from cnibench import hostkeys
    from cnibench.mocks import mock_host_key
    from cnibench.program.nodes import HOST_KEY_COMMAND

    run = stack_run(stack)
    readers = {c.name: c for c in run.of_type("command:local:Command") if c.inputs["create"] == HOST_KEY_COMMAND}
    assert set(readers) == {f"nodes-{role}-host-key" for role in ("control-plane", "client", "server")}
    host_of_key: dict[str, str] = {}
    for role in ("control-plane", "client", "server"):
        reader, machine = readers[f"nodes-{role}-host-key"], instance(run, role)
        # read from this instance's console, in the stack's region, again when it is replaced
        assert reader.inputs["environment"] == {hostkeys.ENV_INSTANCE: machine.state["id"],
                                                hostkeys.ENV_REGION: "us-east-1"}
        assert reader.inputs["triggers"] == [machine.state["id"]]
        key = mock_host_key(machine.state["id"])
        assert reader.state["stdout"].strip() == key
        host_of_key[key] = public_ip(run, role)
    assert len(host_of_key) == 3  # one key per machine
    # every resource that opens an SSH connection (remote commands, file copies, the benchmark)
    remote_steps = [r for r in run if "connection" in r.inputs]
    assert len(remote_steps) >= 8 and all(r.type.startswith("command:remote:") for r in remote_steps)
    for step in remote_steps:
        conn = plain(step.inputs["connection"])
        assert conn.get("hostKey") in host_of_key, f"{step.name} does not verify the host key"
        # the key of the machine the step connects to, never another's
        assert host_of_key[conn["hostKey"]] == conn["host"], step.name
