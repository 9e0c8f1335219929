#!/usr/bin/env bash
# A recording stand-in for kubectl, for tests/test_cluster_run.py (`cnibench run`).
#
# Every call is appended, whole, to $STANDIN/calls (one line each). The answers come from the
# scenario directory $STANDIN (files written by the test):
#   contexts, current       `config get-contexts -o name`, `config current-context`
#   unreachable             present: `version` fails as an unreachable API server does
#   denied                  "VERB RESOURCE" lines that `auth can-i` answers no
#   nodes.json, ds.json     `get nodes -o json`, `-n kube-system get daemonsets -o json`
#   namespace.json          present: the namespace cnibench-bench exists already
#   dryrun-refuse           present: the server-side dry-run is refused with its content
#   probe-phase, probe-exit, probe-waiting, probe-log   the probe pods' status and log
#   marker-on, marker       the first `exec` whose command contains marker-on's text creates
#                           the file marker and sleeps (a long step, for the signal tests)
# `exec` runs the command on this machine (as tests/test_benchmark.py's FAKE_KUBECTL does),
# the pod's iperf3 port 5201 mapped to $STANDIN_IPERF3_PORT; an exec into $STANDIN_FAIL_POD
# fails as a broken pod does. Pods named *cli* run on $STANDIN_CLIENT_NODE, others on
# $STANDIN_SERVER_NODE. `create`/`apply` keep the manifest they were given in $STANDIN/objects
# (separated by --- lines).
S=${STANDIN:?}
printf '%s\n' "$*" >>"$S/calls"
args=()
while [ $# -gt 0 ]; do
    case $1 in
        --request-timeout=*) shift ;;
        --context) shift 2 ;;
        -n) shift 2 ;;
        *)
            args+=("$1")
            shift
            ;;
    esac
done
set -- "${args[@]}"
cat_or() { if [ -e "$1" ]; then cat "$1"; else printf '%s\n' "$2"; fi; }
keep() { cat "${1:--}" >>"$S/objects"; printf '\n---\n' >>"$S/objects"; }

case "$1 ${2:-}" in
    "config get-contexts") cat_or "$S/contexts" kind-a ;;
    "config current-context") cat_or "$S/current" kind-a ;;
    "config view") printf 'https://10.9.0.1:6443' ;;
    "version "*)
        if [ -e "$S/unreachable" ]; then
            echo "The connection to the server 10.9.0.1:6443 was refused - did you specify the right host or port?" >&2
            exit 1
        fi
        echo '{"serverVersion": {"gitVersion": "v1.33.5"}}'
        ;;
    "auth can-i")
        if grep -qxF "$3 $4" "$S/denied" 2>/dev/null; then
            echo no
            exit 1
        fi
        echo yes
        ;;
    "get nodes") cat_or "$S/nodes.json" '{"items": []}' ;;
    "get namespace") if [ -e "$S/namespace.json" ]; then cat "$S/namespace.json"; fi ;;
    "get daemonsets")
        case "$*" in
            *jsonpath*) echo "kube-flannel-ds=ghcr.io/flannel-io/flannel:v0.28.9 " ;;
            *) cat_or "$S/ds.json" '{"items": []}' ;;
        esac
        ;;
    "create --dry-run=server")
        cat >/dev/null
        if [ -e "$S/dryrun-refuse" ]; then
            cat "$S/dryrun-refuse" >&2
            exit 1
        fi
        ;;
    "create -f") keep ;;
    "apply -f") keep "$3" ;;
    "delete namespace") : >"$S/deleted" ;;
    "get pod")
        pod=$3
        case "$pod:$*" in
            cnibench-probe-*:*)
                printf '{"status": {"phase": "%s", "containerStatuses": [{"state": %s}]}}\n' \
                    "$(cat_or "$S/probe-phase" Succeeded)" \
                    "$(if [ -e "$S/probe-waiting" ]; then
                        printf '{"waiting": {"reason": "%s", "message": "pull access denied"}}' "$(cat "$S/probe-waiting")"
                    else printf '{"terminated": {"exitCode": %s}}' "$(cat_or "$S/probe-exit" 0)"; fi)"
                ;;
            *:*conditions*) printf True ;;
            *:*nodeName*)
                case $pod in
                    *cli*) printf '%s 127.0.0.1' "${STANDIN_CLIENT_NODE:-node-a}" ;;
                    *) printf '%s 127.0.0.1' "${STANDIN_SERVER_NODE:-node-b}" ;;
                esac
                ;;
        esac
        ;;
    "get service") printf 127.0.0.1 ;;
    "logs "*)
        case $2 in
            cnibench-probe-*) cat_or "$S/probe-log" "cnibench-probe: mirror reachable" ;;
            *) echo "log of $2" ;;
        esac
        ;;
    "exec "*)
        shift
        [ "$1" = -i ] && shift
        pod=$1
        shift
        [ "$1" = -- ] && shift
        [ "$1" = rm ] && exit 0
        if [ "$pod" = "${STANDIN_FAIL_POD:-}" ]; then
            echo "error: unable to upgrade connection: container not found (\"bench\")" >&2
            exit 1
        fi
        if [ -e "$S/marker-on" ] && [ ! -e "$S/marker" ] && [[ "$*" == *"$(cat "$S/marker-on")"* ]]; then
            : >"$S/marker"
            exec sleep 60
        fi
        cmd=()
        prev=""
        for a in "$@"; do
            if [ "$prev" = -p ] && [ "$a" = 5201 ]; then a=${STANDIN_IPERF3_PORT:-5201}; fi
            cmd+=("$a")
            prev=$a
        done
        exec "${cmd[@]}"
        ;;
esac
exit 0
