#!/bin/busybox sh
# /init of the test guest. test/support/vm.ts appends a second cpio holding /fastblock/env (the
# variables the test passed) and /fastblock/run.sh (the test's script). The script's output is framed
# by markers on the serial console, which is all the host reads:
#   @@FB-READY <uptime>   @@FB-BEGIN   ...script output...   @@FB-RC=<exit code>
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp; mount -t tmpfs run /run
echo /sbin/modprobe > /proc/sys/kernel/modprobe
[ -f /fastblock/env ] && . /fastblock/env
modprobe -a virtio_pci virtio_blk virtio_net crc32c_generic 2>&1
[ -n "$GUEST_MODULES" ] && modprobe -a $GUEST_MODULES 2>&1
ip link set lo up
if [ -e /sys/class/net/eth0 ]; then
  # No default route on purpose: the guest reaches only 10.0.2.2, QEMU's alias of the host's 127.0.0.1.
  ip addr add 10.0.2.15/24 dev eth0; ip link set eth0 up
fi
if [ -n "$HOSTFS" ]; then
  modprobe -a 9pnet_virtio 9p
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 hostfs /host
  mount -t proc proc /host/proc; mount -t sysfs sys /host/sys; mount -t devtmpfs dev /host/dev
  mount -t tmpfs tmp /host/tmp; mount -t tmpfs run /host/run
fi
echo "@@FB-READY $(cut -d' ' -f1 /proc/uptime)"
echo "@@FB-BEGIN"
rc=0; sh -e /fastblock/run.sh || rc=$?
echo "@@FB-RC=$rc"
sync; poweroff -f
