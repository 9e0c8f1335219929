"""The benchmark suite shared by the cloud path (bench.sh on the control plane) and the result builder."""
