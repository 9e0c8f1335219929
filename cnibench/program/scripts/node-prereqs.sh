#!/usr/bin/env bash
# Node prerequisites for kubeadm on Ubuntu: swap off, kernel modules and sysctls, containerd with
# the systemd cgroup driver, kubelet/kubeadm/kubectl of one minor version from pkgs.k8s.io.
# Runs as root over SSH (components/cluster.py); idempotent.
#
# Inputs (environment):
#   KUBERNETES_MINOR  Kubernetes minor version, e.g. 1.33 (selects the per-minor repository)
#   NODE_IP           the address the kubelet registers (the instance's primary private IP)
#
# Sources: kubernetes/website content/en/docs/setup/production-environment/container-runtimes.md
# (overlay, br_netfilter, net.ipv4.ip_forward, SystemdCgroup = true) and
# .../tools/kubeadm/install-kubeadm.md (swap, the pkgs.k8s.io repository line and key).
set -euo pipefail
: "${KUBERNETES_MINOR:?KUBERNETES_MINOR is required, e.g. 1.33}"
: "${NODE_IP:?NODE_IP is required}"
export DEBIAN_FRONTEND=noninteractive

apt_get() {
    # cloud-init and unattended-upgrades may still hold the dpkg lock: wait for it
    apt-get -o DPkg::Lock::Timeout=600 -q "$@"
}

# No background upgrades while the nodes measure: Ubuntu's apt-daily timers start apt updates
# and unattended-upgrades, which may restart services (networkd, containerd) and re-apply
# cloud-init's network configuration mid-benchmark. Stop the timers, wait for a run in
# progress to end (systemctl stop waits for the unit), and mask them until the stack is gone.
for unit in apt-daily.timer apt-daily-upgrade.timer; do
    systemctl disable --now "$unit" >/dev/null 2>&1 || true
done
for unit in apt-daily.service apt-daily-upgrade.service unattended-upgrades.service; do
    systemctl stop "$unit" >/dev/null 2>&1 || true
done
systemctl mask apt-daily.service apt-daily-upgrade.service apt-daily.timer apt-daily-upgrade.timer \
    unattended-upgrades.service >/dev/null

# swap: off now and after a reboot
swapoff -a
sed -i -E 's@^([^#].*[[:space:]]swap[[:space:]].*)$@# \1@' /etc/fstab

# kernel modules and sysctls the container runtime and pod networking need
cat >/etc/modules-load.d/cnibench-k8s.conf <<'CONF'
overlay
br_netfilter
CONF
modprobe overlay
modprobe br_netfilter
cat >/etc/sysctl.d/99-cnibench-k8s.conf <<'CONF'
net.ipv4.ip_forward = 1
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
CONF
sysctl --system >/dev/null

# containerd from the distribution, with the systemd cgroup driver (the kubelet's default)
apt_get update
apt_get install -y apt-transport-https ca-certificates curl gpg containerd iptables
install -d -m 0755 /etc/containerd
containerd config default >/etc/containerd/config.toml
sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml
if ! grep -q 'SystemdCgroup = true' /etc/containerd/config.toml; then
    echo "could not enable SystemdCgroup in /etc/containerd/config.toml" >&2
    exit 1
fi
systemctl enable containerd
systemctl restart containerd

# No pod reaches the instance metadata service (169.254.169.254, EC2 user guide "Instance
# metadata"): flannel aws-vpc's nodes answer IMDSv1 (its aws-sdk-go predates session tokens)
# and carry a role that writes routes, so a pod could otherwise read those credentials. Pod
# packets reach the node through its PREROUTING hook; the node's own processes (the kubelet,
# hostNetwork pods such as flannel itself) send theirs through OUTPUT and keep the service.
# A systemd unit puts the rule back after a reboot, before containerd and the kubelet start.
# Datapaths that bypass the node's netfilter (ipvlan pods leave through the parent interface;
# eBPF host routing) are not covered by this rule: the readiness gate's pod-to-metadata check
# verifies what a pod can read, on every variant.
install -d -m 0755 /usr/local/sbin
cat >/usr/local/sbin/cnibench-pod-metadata-block <<'SCRIPT'
#!/bin/sh
# drop pod traffic to the instance metadata service (installed by cnibench node-prereqs.sh)
set -e
rule="PREROUTING -d 169.254.169.254/32 -m comment --comment cnibench-pod-metadata -j DROP"
# shellcheck disable=SC2086 # $rule is split into iptables arguments on purpose
iptables -w -t raw -C $rule 2>/dev/null || iptables -w -t raw -I $rule
SCRIPT
chmod 0755 /usr/local/sbin/cnibench-pod-metadata-block
cat >/etc/systemd/system/cnibench-pod-metadata-block.service <<'UNIT'
[Unit]
Description=cnibench: no pod traffic to the instance metadata service
Before=containerd.service kubelet.service
After=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/cnibench-pod-metadata-block

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now cnibench-pod-metadata-block.service >/dev/null

# kubelet, kubeadm, kubectl of one minor version (each pkgs.k8s.io repository holds one minor)
repo="https://pkgs.k8s.io/core:/stable:/v${KUBERNETES_MINOR}/deb/"
keyring=/etc/apt/keyrings/kubernetes-apt-keyring.gpg
install -d -m 0755 /etc/apt/keyrings
curl -fsSL --retry 5 "${repo}Release.key" | gpg --batch --yes --dearmor -o "$keyring"
chmod 0644 "$keyring"
echo "deb [signed-by=${keyring}] ${repo} /" >/etc/apt/sources.list.d/kubernetes.list
chmod 0644 /etc/apt/sources.list.d/kubernetes.list
apt_get update
apt_get install -y kubelet kubeadm kubectl
apt-mark hold kubelet kubeadm kubectl >/dev/null

# the kubelet registers the primary private address (not an address of a CNI or ENI device);
# the kubeadm drop-in of the kubelet unit reads /etc/default/kubelet
echo "KUBELET_EXTRA_ARGS=--node-ip=${NODE_IP}" >/etc/default/kubelet
systemctl enable kubelet

echo "prepared: kubeadm $(kubeadm version -o short), $(containerd --version)"
