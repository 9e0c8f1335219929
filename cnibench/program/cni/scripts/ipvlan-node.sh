#!/usr/bin/env bash
# cnibench ipvlan: install the reference CNI plugins and write the node's ipvlan conflist.
# Runs as root on a benchmark node (components/cni/ipvlan.py sends it over SSH).
#
# Environment:
#   CNI_PLUGINS_URL      release tarball of github containernetworking/plugins (pinned version)
#   CNI_PLUGINS_VERSION  its version, e.g. v1.9.1
#   CNI_CONFLIST         the conflist (JSON) with CNI_MASTER_TOKEN where the interface goes
#   CNI_MASTER_TOKEN     the placeholder for the ipvlan master interface
#   CNI_CONF_FILE        where the conflist goes, e.g. /etc/cni/net.d/10-ipvlan.conflist
#   CNI_POD_IPS          the node's secondary private IPs (space separated): the pods' addresses
#   CNI_BIN_DIR          where the plugins go (default /opt/cni/bin, containerd's bin_dir)
set -euo pipefail

: "${CNI_PLUGINS_URL:?}" "${CNI_PLUGINS_VERSION:?}" "${CNI_CONFLIST:?}" "${CNI_MASTER_TOKEN:?}"
: "${CNI_CONF_FILE:?}" "${CNI_POD_IPS:?}"
bin_dir=${CNI_BIN_DIR:-/opt/cni/bin}

fail() {
    echo "cnibench ipvlan on $(hostname): $*" >&2
    exit 1
}

# 1. the reference plugins, unless this version is already there (a plugin run without
#    CNI_COMMAND prints "CNI ipvlan plugin v1.9.1")
installed=$("$bin_dir/ipvlan" 2>&1 || true)
if [[ "$installed" != *" $CNI_PLUGINS_VERSION"* ]]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    curl -fsSL --retry 5 --retry-delay 3 -o "$work/plugins.tgz" "$CNI_PLUGINS_URL"
    curl -fsSL --retry 5 --retry-delay 3 -o "$work/plugins.tgz.sha256" "$CNI_PLUGINS_URL.sha256"
    expected=$(awk '{print $1; exit}' "$work/plugins.tgz.sha256")
    actual=$(sha256sum "$work/plugins.tgz" | awk '{print $1}')
    [[ -n "$expected" && "$expected" == "$actual" ]] ||
        fail "checksum mismatch for $CNI_PLUGINS_URL (expected $expected, got $actual)"
    mkdir -p "$bin_dir"
    tar -xzf "$work/plugins.tgz" -C "$bin_dir"
fi
for plugin in ipvlan host-local loopback; do
    [[ -x "$bin_dir/$plugin" ]] || fail "$bin_dir/$plugin missing after installing $CNI_PLUGINS_URL"
done

# 2. the master interface: the one of the default route
master=$(ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") {print $(i + 1); exit}}')
[[ -n "$master" ]] || fail "no IPv4 default route: cannot pick the ipvlan master interface"
subnet=$(ip -4 route show dev "$master" proto kernel scope link | awk '$1 ~ /\// {print $1; exit}')
prefix=${subnet#*/}

# 3. the pod addresses belong to the pods, not to the host: cloud-init may have configured the
#    ENI's secondary addresses on the interface (EC2 datasource, full IMDS network config)
for ip in $CNI_POD_IPS; do
    if ip -4 -o addr show dev "$master" | awk '{print $4}' | grep -qx "$ip/[0-9]*"; then
        ip addr del "$ip/$prefix" dev "$master"
        echo "removed pod address $ip from $master"
    fi
done

# 4. the conflist, written atomically
conf=${CNI_CONFLIST//"$CNI_MASTER_TOKEN"/$master}
mkdir -p "$(dirname "$CNI_CONF_FILE")"
tmp="$CNI_CONF_FILE.tmp"
printf '%s\n' "$conf" > "$tmp"
python3 -m json.tool "$tmp" > /dev/null || fail "the conflist is not valid JSON"
if [[ -n "$subnet" ]] && ! grep -q "\"subnet\": \"$subnet\"" "$tmp"; then
    fail "the conflist's subnet differs from $master's subnet $subnet"
fi
mv "$tmp" "$CNI_CONF_FILE"
echo "ipvlan on $master (subnet $subnet): pod addresses $CNI_POD_IPS -> $CNI_CONF_FILE"
