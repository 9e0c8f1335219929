#!/bin/busybox sh
# /init of the cnibench lab guest (package data: cnibench/lab/vm/init.sh; @...@ filled in by
# cnibench.lab.vm.image when the image is built). It mounts the host's root read-only over 9p
# with a tmpfs overlay on top (the guest may write anywhere, nothing reaches the host), a fresh
# tmpfs on /run (the host's namespaces and lab state stay invisible), the kernel's modules and
# the run's share, then runs /run/share/guest.sh in that root and powers the machine off.
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
hostname cnibench-guest  # the kernel's default is "(none)", which the reports would show
fail() { echo "cnibench-vm: init: $*"; poweroff -f; }
modules="@MODULES@"  # in load order, dependencies first
for m in $modules; do insmod "/lib/modules/$m" || fail "insmod $m failed"; done
mkdir -p /lower /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /lower \
  || fail "mounting the host's root (9p tag hostroot) failed"
mount -t tmpfs -o mode=0755 rw /rw && mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot \
  || fail "the overlay over the host's root failed"
{ mkdir -p "/newroot/lib/modules/@KVER@" && mount --bind "/lower@MODDIR@" "/newroot/lib/modules/@KVER@"; } \
  || fail "binding the kernel modules from @MODDIR@ failed"
mount -t tmpfs -o mode=0755 tmpfs /newroot/run
mount -t proc proc /newroot/proc; mount -t sysfs sys /newroot/sys; mount -t devtmpfs dev /newroot/dev
mkdir -p /newroot/run/share
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 share /newroot/run/share \
  || fail "mounting the run's share (9p tag share) failed"
# the kernel loads modules on demand (ip link add ... type ipip) by running this program in the
# initramfs's root, where there is no modprobe: hand it to the distribution's, in the new root
echo /modprobe-helper > /proc/sys/kernel/modprobe
echo "cnibench-vm: init: running the guest command"
chroot /newroot /bin/sh /run/share/guest.sh
echo "cnibench-vm: init: guest command exit status $?"
sync
poweroff -f
