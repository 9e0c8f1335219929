"""The rules of the cnibench policy pack, as pure functions over a neutral view of a stack.

The same rules run in two places: ``pulumi preview --policy-pack policy`` (the pack in
``policy/`` adapts Pulumi's ``PolicyResource`` objects) and ``cnibench check`` (the offline
preflight adapts the resources a run under Pulumi's mocks registered). Each rule's message says
how to fix the stack.
"""

from __future__ import annotations

from cnibench.policy_rules import cluster, network, security
from cnibench.policy_rules.model import (
    UNKNOWN,
    Finding,
    Level,
    NotApplicable,
    Ref,
    Res,
    Rule,
    Stack,
    Violation,
    evaluate,
)

M, A = Level.MANDATORY, Level.ADVISORY

RULES: tuple[Rule, ...] = (
    Rule("l2-adjacency", "Directly routed variants need all benchmark nodes in one subnet and the "
         "source/dest check off", M, network.l2_adjacency),
    Rule("aws-vpc-routes", "flannel aws-vpc: one VPC route per node fits the route table quota; "
         "source/dest check off", M, network.aws_vpc_routes),
    Rule("iam-actions", "The node role allows the EC2 actions the variant calls", M, network.iam_actions),
    Rule("iam-scope", "Route and interface actions the catalog scopes are not granted on every resource", M,
         network.iam_scope),
    Rule("encapsulation-ports", "The nodes' security group admits the variant's tunnel port or IP protocol "
         "between nodes (and the pod range, for unencapsulated pod routing)", M, network.encap_ports),
    Rule("kernel-minimum", "The AMI's kernel meets the variant's minimum", M, cluster.kernel_minimum),
    Rule("kernel-unverified", "The AMI's kernel cannot be known at preview", A, cluster.kernel_unverified),
    Rule("kube-proxy-replacement", "kube-proxy-replacing variants: kubeadm skips kube-proxy and the CNI gets "
         "the API server host/port", M, cluster.kube_proxy_replacement),
    Rule("matched-pair", "Client and server share instance type, AMI, AZ and placement group", M,
         cluster.matched_pair),
    Rule("burst-bandwidth", "Benchmark nodes on 'up to' bandwidth sizes measure a credit bucket", A,
         cluster.burst_bandwidth),
    Rule("cidrs", "Pod, service and VPC ranges are disjoint; the native-routing CIDR covers the pod CIDR", M,
         network.cidrs),
    Rule("ssh-ingress", "No SSH or Kubernetes API from a world-open range (more than a /16 of public addresses) "
         "unless cnibench:allowSshFromAnywhere", M, security.ssh_ingress),
    Rule("imdsv2", "Instances require IMDSv2", M, security.imdsv2),
    Rule("encrypted-volumes", "Instance volumes are encrypted", M, security.encrypted_volumes),
    Rule("expiry-tag", "Every taggable AWS resource carries cnibench:expires-at", M, security.expiry_tag),
)

__all__ = [
    "RULES", "UNKNOWN", "Finding", "Level", "NotApplicable", "Ref", "Res", "Rule", "Stack", "Violation",
    "evaluate", "rule",
]


def rule(name: str) -> Rule:
    for r in RULES:
        if r.name == name:
            return r
    raise KeyError(f"no rule {name!r}; rules: {', '.join(r.name for r in RULES)}")
