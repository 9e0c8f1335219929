#!/bin/sh
# Entry point of every cnibench benchmark pod (image: Debian bookworm, see cnibench/suite/plan.py).
# Installs iperf3, sockperf, wrk and nginx from Debian bookworm (the versions the local lab
# uses), then either serves (an iperf3 server, a TCP and a UDP sockperf server on one port, and
# nginx with one file per response size) or waits for `kubectl exec`. The pod is Ready once
# /tmp/cnibench-ready exists.
#
# Only the hostNetwork pods download (the node's own network, whatever the CNI): they leave the
# .deb files in a hostPath directory of their node, from which the pods on the CNI's network of
# the same node install. Pod-network pods thus need no egress to the internet and no cluster DNS
# (ipvlan pods, for instance, have neither).
#
# Usage (the pod's command):
#   sh -c "<this file>" pod-setup server|client host|pod|self TOKEN IPERF3_PORT SOCKPERF_PORT HTTP_PORT SIZE...
# TOKEN names this run's directory under the hostPath mount /cnibench-debs. "self" (no hostNetwork
# pod on the node, `cnibench run --no-host-reference`) installs from the mirror in this pod. An
# image that already holds the four tools installs nothing (`cnibench run --image`).
set -eu
role=$1
net=$2
token=$3
iperf3_port=$4
sockperf_port=$5
http_port=$6
shift 6
packages="iperf3 sockperf wrk nginx-light"
debs="/cnibench-debs/$token"

export DEBIAN_FRONTEND=noninteractive
have_tools() {
    for tool in iperf3 sockperf wrk nginx; do
        command -v "$tool" >/dev/null 2>&1 || return 1
    done
}
if have_tools; then
    # an image that already holds the tools (`cnibench run --image`, clusters without egress)
    echo "cnibench: the image has iperf3, sockperf, wrk and nginx: nothing to install" >&2
elif [ "$net" = self ]; then
    # no hostNetwork pod on this node (`cnibench run --no-host-reference`): install from the
    # mirror through the pod network (no package may start its service, as below)
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    # shellcheck disable=SC2086  # $packages is a list of names
    if ! { apt-get update -q && apt-get install -y -q --no-install-recommends $packages; } >/tmp/apt.log 2>&1; then
        echo "cnibench: installing the benchmark tools failed:" >&2
        tail -n 20 /tmp/apt.log >&2
        exit 1
    fi
else
    if [ "$net" = host ]; then
        # download only, into this run's directory: just the packages the image lacks
        find /cnibench-debs -mindepth 1 -maxdepth 1 ! -name "$token" -exec rm -rf {} +
        rm -rf "$debs" "$debs.tmp"
        mkdir -p "$debs.tmp/partial"
        # shellcheck disable=SC2086  # $packages is a list of names
        if ! { apt-get update -q &&
            apt-get install -y -q --download-only --no-install-recommends -o Dir::Cache::Archives="$debs.tmp/" $packages; } \
            >/tmp/apt.log 2>&1; then
            echo "cnibench: downloading the benchmark tools failed:" >&2
            tail -n 20 /tmp/apt.log >&2
            exit 1
        fi
        rm -rf "$debs.tmp/partial" "$debs.tmp/lock"
        mv "$debs.tmp" "$debs"
    else
        waited=0
        until [ -d "$debs" ]; do
            if [ "$waited" -ge 540 ]; then
                echo "cnibench: no packages from the hostNetwork pod of this node after ${waited}s" >&2
                exit 1
            fi
            sleep 2
            waited=$((waited + 2))
        done
    fi
    # invoke-rc.d's policy hook: no package may start its service (nginx's postinst would start
    # the default site on port 80, on the node itself in a hostNetwork pod)
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    if ! dpkg -i "$debs"/*.deb >/tmp/dpkg.log 2>&1; then
        echo "cnibench: installing the benchmark tools from $debs failed:" >&2
        tail -n 20 /tmp/dpkg.log >&2
        exit 1
    fi
fi

if [ "$role" = server ]; then
    mkdir -p /srv/cnibench
    for size in "$@"; do
        head -c "$size" /dev/zero | tr '\000' x >"/srv/cnibench/$size"
    done
    cat >/tmp/nginx.conf <<CONF
worker_processes auto;
pid /tmp/nginx.pid;
error_log stderr warn;
events { worker_connections 16384; }
http {
    access_log off;
    keepalive_requests 1000000;
    sendfile on;
    server {
        listen $http_port reuseport;
        root /srv/cnibench;
        default_type application/octet-stream;
    }
}
CONF
    nginx -c /tmp/nginx.conf
    # iperf3 serves one test at a time; a client killed mid-test would leave it busy until its
    # receive timeout: keep that short, and restart the server if it ever exits.
    (while true; do iperf3 -s -p "$iperf3_port" --rcv-timeout 15000 || true; sleep 1; done) &
    # sockperf serves TCP and UDP on the same port (two servers); restarted like iperf3's.
    # Their per-message output would be noise: only errors are kept, in /tmp.
    (while true; do sockperf server --tcp -p "$sockperf_port" >/dev/null 2>>/tmp/sockperf-tcp.err || true; sleep 1; done) &
    (while true; do sockperf server -p "$sockperf_port" >/dev/null 2>>/tmp/sockperf-udp.err || true; sleep 1; done) &
fi
touch /tmp/cnibench-ready
exec sleep infinity
