"""Cluster: kubeadm over SSH with pulumi-command (under mocks), and its pure helpers."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest
import yaml

from cnibench.program import cluster as cluster_mod
from cnibench.program.cluster import (
    KUBECONFIG_COMMAND,
    ROLE_LABEL,
    SCRIPTS,
    SKIP_KUBE_PROXY,
    external_kubeconfig,
    kubeadm_config,
    parse_join_command,
    remote_script,
)
from cnibench.variants import CATALOG
from tests.conftest import ALL_STACKS
from tests.test_shell import shell_scripts

CMD = "command:remote:Command"
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
    variant = CATALOG[run.config["variant"]]
    init = plain(cmd(run, "init").inputs["create"])
    head = init.split("<<", 1)[0]  # the command line, before the script text
    assert ("--skip-phases=addon/kube-proxy" in head) is variant.replaces_kube_proxy
    for c in run.of_type(CMD):
        if c.name != "k8s-init":
            assert "addon/kube-proxy" not in str(plain(c.inputs.get("create"))), c.name
    assert "kubeadm init --config" in init


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_kubeadm_config_carries_the_stack_config(stack_run, stack):
    run = stack_run(stack)
    init_doc, cluster_doc = yaml.safe_load_all(env_of(plain(cmd(run, "init").inputs["create"]))["KUBEADM_CONFIG"])
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
    assert cp.state["publicIp"] in cluster_doc["apiServer"]["certSANs"]
    assert cluster_doc["controlPlaneEndpoint"] == f"{cp.state['privateIp']}:6443"


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_every_machine_is_prepared_with_the_configured_version(stack_run, stack):
    run = stack_run(stack)
    for role in ("control-plane", "client", "server"):
        inst = instance(run, role)
        boot = cmd(run, f"{role}-boot")
        conn = plain(boot.inputs["connection"])
        assert conn["host"] == inst.state["publicIp"] and conn["user"] == "ubuntu"
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
        assert plain(join.inputs["connection"])["host"] == inst.state["publicIp"]
        assert run.depends_on(join, join_command) and run.depends_on(join, cmd(run, f"{role}-prereqs"))
        label = cmd(run, f"{role}-label")
        env = env_of(label.inputs["create"])
        assert env == {"NODE_NAME": inst.state["privateDns"], "NODE_LABELS": f"{ROLE_LABEL}={role}"}
        # labelled from the control plane, after the join
        assert plain(label.inputs["connection"])["host"] == instance(run, "control-plane").state["publicIp"]
        assert run.depends_on(label, join) and run.depends_on(join_command, init)
        labels.append(label)
    provider = run.one("pulumi:providers:kubernetes")
    assert all(run.depends_on(provider, label) for label in labels)


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_secrets_stay_secret(stack_run, stack):
    run = stack_run(stack)
    for name, create in (("kubeconfig", KUBECONFIG_COMMAND), ("join-command", cluster_mod.JOIN_COMMAND)):
        c = cmd(run, name)
        assert c.inputs["create"] == create
        assert c.inputs["logging"] == "none"
        assert c.inputs["addPreviousOutputInEnv"] is False
        assert "stdout" in c.options["additionalSecretOutputs"]
    assert "kubeconfig" in run.secret_outputs
    kubeconfig = yaml.safe_load(run.outputs["kubeconfig"])
    cp = instance(run, "control-plane")
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://{cp.state['publicIp']}:6443"
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
    init_doc, _ = yaml.safe_load_all(env_of(init)["KUBEADM_CONFIG"])
    client = instance(run, "client")
    assert init_doc["nodeRegistration"]["name"] == client.state["privateDns"]
    assert init_doc["nodeRegistration"]["taints"] == []  # benchmark pods must run on it
    assert plain(cmd(run, "init").inputs["connection"])["host"] == client.state["publicIp"]
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
