#!/usr/bin/env bash
# cnibench readiness gate: the benchmark starts only when the CNI is rolled out, the benchmark
# nodes are Ready, CoreDNS is Available and the cluster's datapaths work: pod-to-pod across the
# two benchmark nodes, pod-to-service, DNS and pod-to-node, each tried with two throw-away pods;
# and a pod cannot read the instance metadata service (the node role's credentials).
# Runs as root on the control plane (cnibench/program/cni/readiness.py).
#
# Environment:
#   CNIBENCH_VARIANT  the variant, named in every message
#   CNI_NAMESPACE     namespace of the CNI's workloads
#   CNI_WORKLOADS     space-separated kind/name to wait for (kubectl rollout status); may be empty
#   CNI_NODES         space-separated Kubernetes node names that must be Ready: the client node,
#                     then the server node (the check's client and server pods run there)
#   CNI_TIMEOUT       seconds for everything together
#   CNI_SKIP_CHECKS   space-separated checks this variant cannot pass by design (of CHECKS below);
#                     may be empty. They are reported as skipped, never as passed.
#   CNI_SKIP_REASON   why (required when CNI_SKIP_CHECKS is set); printed with every skipped check
#   KUBECONFIG        an admin kubeconfig
#
# The script arrives on bash's standard input (remote_script: `bash -s` with a here-document),
# so no command may read standard input: kubectl exec gets </dev/null.
set -euo pipefail

: "${CNIBENCH_VARIANT:?}" "${CNI_NAMESPACE:?}" "${CNI_NODES:?}" "${CNI_TIMEOUT:?}"
workloads=${CNI_WORKLOADS:-}
skip_checks=${CNI_SKIP_CHECKS:-}
skip_reason=${CNI_SKIP_REASON:-}
deadline=$(($(date +%s) + CNI_TIMEOUT))

# every check the gate knows, in the order it runs them (CNI_SKIP_CHECKS names some of these)
CHECKS="coredns pod-to-pod pod-to-service dns pod-to-node pod-to-metadata"

# the connectivity check: its own namespace, deleted at the end whatever happened
CHECK_NS=cnibench-check
# busybox 1.36.1, the docker-library build: `make defconfig` (docker-library/busybox
# Dockerfile-builder.template at "Update to 1.36.1"), so the applets below have their default
# features (networking/nc.c NC_110_COMPAT and NC_EXTRA, wget.c FEATURE_WGET_TIMEOUT,
# nslookup.c FEATURE_NSLOOKUP_BIG: all "default y" at tag 1_36_1)
CHECK_IMAGE=docker.io/library/busybox:1.36.1
CHECK_PORT=8080
CHECK_BODY=cnibench-check-ok # what the server pod's httpd serves, and the client expects
KUBELET_PORT=10250           # the kubelet API listens on every node (a node security-group rule)
# the EC2 instance metadata service (EC2 user guide, "Access instance metadata"): IMDSv1 answers a
# plain GET of /latest/meta-data/ with its listing; with IMDSv2 required it answers 401 without a
# session token (which needs a PUT that busybox wget cannot send)
METADATA_URL=http://169.254.169.254/latest/meta-data/
CLUSTER_DOMAIN=cluster.local # kubeadm's default networking.dnsDomain (cluster.py sets none)
read -r client_node server_node _ <<<"$CNI_NODES"
server_node=${server_node:-$client_node}

for check in $skip_checks; do
    case " $CHECKS " in
        *" $check "*) ;;
        *) echo "cnibench: CNI variant $CNIBENCH_VARIANT: CNI_SKIP_CHECKS names an unknown check '$check' (known: $CHECKS)" >&2
           exit 2 ;;
    esac
done
if [[ -n ${skip_checks// /} && -z $skip_reason ]]; then
    echo "cnibench: CNI variant $CNIBENCH_VARIANT: CNI_SKIP_CHECKS='$skip_checks' without a CNI_SKIP_REASON" >&2
    exit 2
fi

# seconds until the deadline: at least 1, and at most $1 when given
seconds_left() {
    local seconds=$((deadline - $(date +%s)))
    if (($# > 0)) && ((seconds > $1)); then
        seconds=$1
    fi
    ((seconds > 1)) || seconds=1
    echo "$seconds"
}

left() {
    echo "$(seconds_left)s"
}

expired() {
    (($(date +%s) >= deadline))
}

# namespace/name, phase, node and container readiness of every pod that is neither Ready nor done
not_ready_pods() {
    kubectl get pods --all-namespaces -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}{"\t"}{.status.phase}{"\t"}{.spec.nodeName}{"\t"}{.status.containerStatuses[*].ready}{"\n"}{end}' |
        awk -F '\t' '$2 != "Succeeded" && ($2 != "Running" || $4 == "" || $4 ~ /false/) {
            printf "  %s phase=%s node=%s ready=%s\n", $1, $2, ($3 == "" ? "<none>" : $3), ($4 == "" ? "<none>" : $4)
        }'
}

check_ns_created=false

diagnostics() {
    {
        echo "pods not ready:"
        not_ready_pods || echo "  (cannot list pods)"
        echo "nodes:"
        kubectl get nodes -o wide || true
        echo "latest events in $CNI_NAMESPACE:"
        kubectl -n "$CNI_NAMESPACE" get events --sort-by=.lastTimestamp 2>/dev/null | tail -n 20 || true
        if $check_ns_created; then
            echo "check pods in $CHECK_NS:"
            kubectl -n "$CHECK_NS" get pods -o wide 2>&1 || true
            echo "latest events in $CHECK_NS:"
            kubectl -n "$CHECK_NS" get events --sort-by=.lastTimestamp 2>/dev/null | tail -n 20 || true
        fi
    } >&2
}

fail() {
    echo "cnibench: CNI variant $CNIBENCH_VARIANT is not ready after ${CNI_TIMEOUT}s: $*" >&2
    diagnostics
    exit 1
}

# check_failed PATH OUTPUT: a datapath of the cluster does not work (OUTPUT on one line: its
# non-empty lines joined with " | ")
check_failed() {
    local output
    output=$(printf '%s\n' "$2" | awk 'NF { gsub(/\t/, " "); printf "%s%s", sep, $0; sep = " | " }')
    echo "cnibench: CNI variant $CNIBENCH_VARIANT: $1 failed: $output" >&2
    diagnostics
    exit 1
}

skipped() {
    [[ " $skip_checks " == *" $1 "* ]]
}

passed=()
skip() {
    echo "cnibench: CNI variant $CNIBENCH_VARIANT: check $1 SKIPPED (not run, not passed): $skip_reason"
}

# 1. the nodes exist (kubectl wait fails at once on a node that has not registered yet)
for node in $CNI_NODES; do
    until kubectl get node "$node" > /dev/null 2>&1; do
        expired && fail "node $node has not registered"
        sleep 5
    done
done

# 2. the CNI's workloads are rolled out on every node
for workload in $workloads; do
    until kubectl -n "$CNI_NAMESPACE" get "$workload" > /dev/null 2>&1; do
        expired && fail "$CNI_NAMESPACE/$workload does not exist"
        sleep 5
    done
    kubectl -n "$CNI_NAMESPACE" rollout status "$workload" --timeout="$(left)" ||
        fail "$CNI_NAMESPACE/$workload is not rolled out"
done

# 3. the benchmark nodes are Ready (their CNI configuration is in place)
for node in $CNI_NODES; do
    kubectl wait --for=condition=Ready "node/$node" --timeout="$(left)" > /dev/null ||
        fail "node $node is not Ready"
done

# 4. CoreDNS (kubeadm's addon) is Available: its pods got addresses from the CNI and pass their
#    readiness probe (the kubelet reaching its own node's pods)
if skipped coredns; then
    skip coredns
else
    until kubectl -n kube-system get deployment/coredns > /dev/null 2>&1; do
        expired && fail "coredns: kube-system/deployment/coredns does not exist"
        sleep 5
    done
    kubectl -n kube-system wait --for=condition=Available deployment/coredns --timeout="$(left)" > /dev/null ||
        fail "coredns: kube-system/deployment/coredns is not Available"
    passed+=(coredns)
fi

# 5. the connectivity check: a server pod on the server node (busybox httpd behind a ClusterIP
#    Service) and a client pod on the client node that reaches it, its Service, its DNS name
#    and the server node's kubelet port
cleanup() {
    local rc=$?
    kubectl delete namespace "$CHECK_NS" --ignore-not-found --timeout="$(left)" > /dev/null 2>&1 ||
        echo "cnibench: warning: could not delete namespace $CHECK_NS" >&2
    exit "$rc"
}

# check_pod NAME NODE COMMAND [EXTRA]: one throw-away pod of the check, pinned to NODE, its
# container running COMMAND (a YAML flow sequence); EXTRA is appended to the container
check_pod() {
    cat <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $1
  namespace: $CHECK_NS
  labels: {app.kubernetes.io/name: cnibench-check, app.kubernetes.io/component: $1}
spec:
  nodeName: "$2"
  restartPolicy: Never
  activeDeadlineSeconds: $((CNI_TIMEOUT + 60))
  terminationGracePeriodSeconds: 0
  automountServiceAccountToken: false
  enableServiceLinks: false
  tolerations: [{operator: Exists}]
  containers:
    - name: $1
      image: $CHECK_IMAGE
      imagePullPolicy: IfNotPresent
      command: $3
EOF
    if [[ -n ${4:-} ]]; then
        echo "      $4"
    fi
}

manifest() {
    # busybox 1.36.1 (defconfig) `APPLET --help` texts:
    #   httpd -f        "Run in foreground"
    #   httpd -v[v]     "Verbose" (requests are logged to the pod's log)
    #   httpd -p PORT   "Bind to IP:PORT (default *:80)"
    #   httpd -h HOME   "Home directory (default .)"
    #   mkdir -p        "No error if exists; make parent directories as needed"
    #   sleep N         "Pause for a time equal to the total of the args given"
    # activeDeadlineSeconds ends both pods by themselves should the namespace outlive the gate.
    check_pod server "$server_node" \
        "[\"sh\", \"-c\", \"mkdir -p /www && echo $CHECK_BODY > /www/index.html && exec httpd -f -v -p $CHECK_PORT -h /www\"]" \
        "ports: [{containerPort: $CHECK_PORT, protocol: TCP}]"
    cat <<EOF
---
apiVersion: v1
kind: Service
metadata:
  name: server
  namespace: $CHECK_NS
spec:
  type: ClusterIP
  selector: {app.kubernetes.io/name: cnibench-check, app.kubernetes.io/component: server}
  ports: [{name: http, port: $CHECK_PORT, targetPort: $CHECK_PORT, protocol: TCP}]
---
EOF
    check_pod client "$client_node" "[\"sleep\", \"$((CNI_TIMEOUT + 60))\"]"
}

# probe CHECK PATH NEEDLE COMMAND...: run COMMAND in the client pod until it exits 0 with NEEDLE
# in its output (newline-framed), retrying every 2 s until the deadline; then name PATH
probe() {
    local check=$1 path=$2 needle=$3 out rc seconds
    shift 3
    if skipped "$check"; then
        skip "$check"
        return 0
    fi
    while :; do
        rc=0
        seconds=$(seconds_left 30) # one attempt: at most 30 s
        out=$(timeout "$seconds" kubectl -n "$CHECK_NS" exec client -- "$@" 2>&1 < /dev/null) || rc=$?
        if ((rc == 0)) && [[ $'\n'$out$'\n' == *"$needle"* ]]; then
            echo "cnibench: CNI variant $CNIBENCH_VARIANT: $path ok"
            passed+=("$check")
            return 0
        fi
        if expired; then
            ((rc != 0)) || out="exit 0 without \"${needle//$'\n'/}\" in: $out"
            ((rc != 124)) || out="kubectl exec timed out after ${seconds}s: $out"
            check_failed "$path" "$out (exit $rc)"
        fi
        sleep 2
    done
}

# refused CHECK PATH COMMAND...: a wget in the client pod that must NOT succeed, tried once
# after the checks above showed that the pod's network works. Passed only on a failure that wget
# itself reports (busybox networking/wget.c prefixes its errors with "wget: "): a kubectl error
# proves nothing, and a success names what the pod read.
refused() {
    local check=$1 path=$2 out rc=0 seconds
    shift 2
    if skipped "$check"; then
        skip "$check"
        return 0
    fi
    seconds=$(seconds_left 30)
    out=$(timeout "$seconds" kubectl -n "$CHECK_NS" exec client -- "$@" 2>&1 < /dev/null) || rc=$?
    if ((rc == 0)); then
        check_failed "$path" "the pod read it (it must not): $out"
    fi
    if ((rc == 124)) || [[ $'\n'$out != *$'\nwget: '* ]]; then
        ((rc != 124)) || out="kubectl exec timed out after ${seconds}s: $out"
        check_failed "$path" "could not tell whether the pod reaches it: $out (exit $rc)"
    fi
    echo "cnibench: CNI variant $CNIBENCH_VARIANT: $path refused, as it must be: ${out//$'\n'/ | }"
    passed+=("$check")
}

if skipped pod-to-pod && skipped pod-to-service && skipped dns && skipped pod-to-node && skipped pod-to-metadata; then
    for check in pod-to-pod pod-to-service dns pod-to-node pod-to-metadata; do skip "$check"; done
else
    trap cleanup EXIT
    # a hangup (the SSH session of the remote command dropped), Ctrl-C or SIGTERM: exit through
    # cleanup. Without these traps bash is sometimes killed outright by the signal, without
    # its EXIT trap, when it arrives while bash waits for a command substitution (1 in 5 runs
    # of test_gate_deletes_its_namespace_when_it_is_stopped); with a trap, bash runs it once the
    # foreground command has ended (bash(1), SIGNALS)
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 143' TERM
    # a namespace left by an interrupted run goes first (the wait ends when it is gone)
    out=$(kubectl delete namespace "$CHECK_NS" --ignore-not-found --timeout="$(left)" 2>&1) ||
        check_failed "check setup (delete the namespace $CHECK_NS of an earlier run)" "$out"
    check_ns_created=true
    out=$(kubectl create namespace "$CHECK_NS" 2>&1) || check_failed "check setup (create namespace $CHECK_NS)" "$out"
    # pods are refused until the namespace's default ServiceAccount exists
    until kubectl -n "$CHECK_NS" get serviceaccount default > /dev/null 2>&1; do
        expired && check_failed "check setup (namespace $CHECK_NS)" "its default ServiceAccount was not created"
        sleep 1
    done
    out=$(manifest | kubectl apply -f - 2>&1) ||
        check_failed "check setup (server pod, Service and client pod in $CHECK_NS)" "$out"
    out=$(kubectl -n "$CHECK_NS" wait --for=condition=Ready pod/server pod/client --timeout="$(left)" 2>&1) ||
        check_failed "pod startup (client on node $client_node, server on node $server_node, image $CHECK_IMAGE)" "$out"
    pod_ip=$(kubectl -n "$CHECK_NS" get pod server -o jsonpath='{.status.podIP}')
    node_ip=$(kubectl -n "$CHECK_NS" get pod server -o jsonpath='{.status.hostIP}')
    service_ip=$(kubectl -n "$CHECK_NS" get service server -o jsonpath='{.spec.clusterIP}')
    [[ -n $pod_ip && -n $node_ip && -n $service_ip ]] ||
        check_failed "check setup" "server pod IP '$pod_ip', its node's IP '$node_ip', Service IP '$service_ip'"
    service_name=server.$CHECK_NS.svc.$CLUSTER_DOMAIN

    # busybox 1.36.1 (defconfig) `APPLET --help` texts, and what its sources do
    # (networking/wget.c, nslookup.c, nc_bloaty.c):
    #   wget -q         "Quiet" (no progress; errors such as "can't connect to remote host" are
    #                   still printed, and any failure exits non-zero)
    #   wget -T SEC     "Network read timeout is SEC seconds" (its Config.in: connect and read)
    #   wget -O FILE    "Save to FILE ('-' for stdout)"
    #   nslookup [-type=QUERY_TYPE] HOST [DNS_SERVER]  "Query DNS about HOST"; -type=a asks for
    #                   the A record only. Without DNS_SERVER it asks the nameserver of
    #                   /etc/resolv.conf (the cluster DNS Service), and a HOST with a dot is not
    #                   expanded with resolv.conf's search domains. It exits 1 on NXDOMAIN or
    #                   when no server answers, but 0 on an empty answer: the check also needs
    #                   the answer's "Address: <ClusterIP>" line.
    #   nc -z           "Zero-I/O mode (scanning)": connect, exit 0; 1 if the connect fails
    #   nc -v           "Verbose"; given twice it also prints why a connect failed
    #   nc -n           "Don't do DNS resolution"
    #   nc -w SEC       "Timeout for connects and final net reads"
    probe pod-to-pod "pod-to-pod (client on node $client_node -> pod $CHECK_NS/server $pod_ip:$CHECK_PORT on node $server_node)" \
        $'\n'"$CHECK_BODY"$'\n' wget -q -T 5 -O - "http://$pod_ip:$CHECK_PORT/"
    probe pod-to-service "pod-to-service (client on node $client_node -> Service $CHECK_NS/server $service_ip:$CHECK_PORT)" \
        $'\n'"$CHECK_BODY"$'\n' wget -q -T 5 -O - "http://$service_ip:$CHECK_PORT/"
    probe dns "dns (client on node $client_node -> cluster DNS: $service_name A $service_ip)" \
        $'\nAddress: '"$service_ip"$'\n' nslookup -type=a "$service_name"
    probe pod-to-node "pod-to-node (client on node $client_node -> node $server_node $node_ip:$KUBELET_PORT, the kubelet)" \
        "" nc -z -v -v -n -w 5 "$node_ip" "$KUBELET_PORT"
    refused pod-to-metadata "pod-to-metadata (client on node $client_node -> instance metadata $METADATA_URL)" \
        wget -q -T 5 -O - "$METADATA_URL"
fi

summary="checks passed: ${passed[*]:-none}"
[[ -z ${skip_checks// /} ]] || summary+="; skipped (not run): $skip_checks ($skip_reason)"
echo "cnibench: CNI variant $CNIBENCH_VARIANT ready: ${workloads:-node configuration} on nodes $CNI_NODES; $summary"
