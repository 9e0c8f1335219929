"""Pulumi ComponentResources of cnibench, one concern each (see /work/shared/DESIGN.md):
network, node_pair, cluster, cni, benchmark. ``tags`` holds the tags every AWS resource carries."""
