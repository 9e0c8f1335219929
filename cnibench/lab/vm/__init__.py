"""The lab inside a virtual machine that boots a distribution kernel (``cnibench lab --vm``).

The host's kernel may lack devices a datapath needs (ipip, geneve, ipvlan, wireguard, IPVS);
Debian's kernel has them all as modules. :mod:`image` builds and caches a bootable image of
it, :mod:`accel` decides between hardware KVM and emulation, :mod:`host` boots the guest and
brings its result document back, :mod:`guest` is what runs inside. Design: docs/lab-vm.md.
"""
