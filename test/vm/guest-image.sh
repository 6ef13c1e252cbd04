#!/usr/bin/env bash
# guest-image.sh CACHE_DIR -- makes sure a bootable test guest exists and prints its directory.
#
# The guest is a stock Debian kernel (downloaded as a .deb, never installed) plus an uncompressed
# initramfs with busybox, the kernel modules the frontend suites need and the real initiator tools
# (nbd-client, nvme-cli, e2fsprogs). Larger host tools (fio) reach the guest through the 9p share.
#
# Artifacts are cached in CACHE_DIR/image-<key>/ where <key> hashes this script, init.sh and the
# kernel ABI, so an edit to either file or a new Debian kernel rebuilds the image and nothing else
# does. Several suites may call this at once: everything runs under a flock on CACHE_DIR/lock.
#
# Environment: FASTBLOCK_VM_KVER pins the Debian kernel ABI (e.g. 6.1.0-56-amd64); by default it is
# the one linux-image-amd64 depends on, or the newest .deb already cached when apt cannot say.
set -euo pipefail

mkdir -p "${1:?usage: guest-image.sh CACHE_DIR}/deb"
cache=$(cd "$1" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec 9>"$cache/lock"
flock 9

log() { printf '[vm-image] %s\n' "$*" >&2; }

# Host packages: the emulator, the static busybox and the tools copied into (or shared with) the guest.
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[[ -x /bin/busybox ]] || need+=(busybox-static)
[[ -x /usr/sbin/nbd-client ]] || need+=(nbd-client)
[[ -x /usr/sbin/nvme ]] || need+=(nvme-cli)
[[ -x /sbin/mke2fs && -x /sbin/e2fsck ]] || need+=(e2fsprogs)
command -v fio >/dev/null || need+=(fio)
command -v cpio >/dev/null || need+=(cpio)
command -v xz >/dev/null || need+=(xz-utils)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -qq -y --no-install-recommends -o DPkg::Lock::Timeout=600 "${need[@]}" >&2
fi

kver=${FASTBLOCK_VM_KVER:-}
current_kver() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{sub("linux-image-","",$2); print $2; exit}' || true; }
if [[ -z "$kver" ]]; then
  kver=$(current_kver)
  # A machine with every package installed may still have empty apt lists.
  if [[ -z "$kver" ]] && ! ls "$cache"/deb/linux-image-*.deb >/dev/null 2>&1; then
    apt-get update -qq >&2 || true
    kver=$(current_kver)
  fi
fi
if [[ -z "$kver" ]]; then
  newest=$(ls -t "$cache"/deb/linux-image-*.deb 2>/dev/null | head -n 1 || true)
  [[ -n "$newest" ]] && kver=$(basename "$newest" .deb | sed 's/^linux-image-//')
fi
[[ -n "$kver" ]] || { log "cannot resolve the guest kernel ABI: run apt-get update or set FASTBLOCK_VM_KVER"; exit 1; }

key=$(cat "$here/guest-image.sh" "$here/init.sh" <(echo "$kver") | sha256sum | cut -c1-16)
image="$cache/image-$key"
if [[ -f "$image/initramfs.cpio" && -f "$image/vmlinux" ]]; then
  echo "$image"
  exit 0
fi

deb="$cache/deb/linux-image-$kver.deb"
if [[ ! -f "$deb" ]]; then
  log "downloading linux-image-$kver"
  (cd "$cache/deb" && { apt-get download "linux-image-$kver" >&2 || { apt-get update -qq && apt-get download "linux-image-$kver" >&2; }; } &&
     mv linux-image-"$kver"_*.deb "linux-image-$kver.deb")
fi

log "building the guest image for $kver"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
kx="$work/kernel" root="$work/root"
dpkg -x "$deb" "$kx"

# QEMU boots the ELF vmlinux through its PVH entry: no real-mode stub and no xz decompression in
# the guest, which under TCG halves the boot time. Debian compresses the bzImage payload with xz.
vmlinuz="$kx/boot/vmlinuz-$kver"
offset=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -n 1 | cut -d: -f1)
[[ -n "$offset" ]] || { log "no xz payload in $vmlinuz"; exit 1; }
tail -c +"$((offset + 1))" "$vmlinuz" > "$work/payload.xz"
xz -dc --single-stream "$work/payload.xz" > "$work/vmlinux"
[[ "$(head -c 4 "$work/vmlinux" | od -An -tx1 | tr -d ' ')" == 7f454c46 ]] || { log "extracted kernel is not ELF"; exit 1; }

# Modules: what the frontend suites load, with their dependency closure from modules.dep.
modules=(virtio_pci virtio_blk virtio_net nbd nvme-tcp nvme-fabrics nvme-core configfs
         9p 9pnet_virtio crc32c_generic crc32c-intel ext4 loop)
mdir="$kx/lib/modules/$kver"
busybox depmod -b "$kx" "$kver"          # the .deb ships no modules.dep
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,etc,host,mnt,fastblock} "$root/lib/modules/$kver"
declare -A seen=()
for m in "${modules[@]}"; do
  line=$(grep -E "/${m}\.ko(\.[a-z]+)?:" "$mdir/modules.dep" || true)
  [[ -n "$line" ]] || { log "module $m not found (built in?)"; continue; }
  for dep in ${line//:/}; do
    [[ -n "${seen[$dep]:-}" ]] && continue
    seen[$dep]=1
    install -D -m 0644 "$mdir/$dep" "$root/lib/modules/$kver/$dep"
    case "$dep" in *.xz) unxz -f "$root/lib/modules/$kver/$dep";; *.zst) zstd -d --rm -q "$root/lib/modules/$kver/$dep";; esac
  done
done
cp "$mdir"/modules.{builtin,order} "$root/lib/modules/$kver/" 2>/dev/null || true
busybox depmod -b "$root" "$kver"

# Tools: busybox for everything small, real initiators and e2fsprogs with their shared libraries.
cp /bin/busybox "$root/bin/busybox"
copy_with_libs() {
  local bin=$1 lib
  install -D -m 0755 "$bin" "$root$bin"
  for lib in $(ldd "$bin" | awk '/=> \//{print $3} /^\t\/lib/{print $1}'); do
    [[ -e "$root$lib" ]] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
  done
}
for bin in /usr/sbin/nbd-client /usr/sbin/nvme /sbin/mke2fs /sbin/e2fsck; do copy_with_libs "$bin"; done
ln -sf mke2fs "$root/sbin/mkfs.ext4"
ln -sf e2fsck "$root/sbin/fsck.ext4"
mkdir -p "$root/etc/nvme"
echo "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-00000000f00d" > "$root/etc/nvme/hostnqn"
echo "00000000-0000-4000-8000-00000000f00d" > "$root/etc/nvme/hostid"
# `host CMD ARGS...` runs a host binary (fio, ...) in the guest through the 9p share (hostfs: true).
cat > "$root/usr/bin/host" <<'SH'
#!/bin/sh
[ -d /host/usr ] || { echo "host: the host filesystem is not shared (boot with hostfs: true)" >&2; exit 127; }
exec chroot /host /bin/sh -c 'cd /tmp && exec "$@"' host "$@"
SH
chmod 0755 "$root/usr/bin/host"
install -m 0755 "$here/init.sh" "$root/init"

# Left uncompressed on purpose: gunzip in a TCG guest costs about 0.8 s per boot.
(cd "$root" && find . | cpio -o -H newc --quiet) > "$work/initramfs.cpio"
# Older images go once nobody can still be starting a guest from them.
find "$cache" -maxdepth 1 -name 'image-*' -mmin +60 -exec rm -rf {} +
mkdir -p "$image"
mv "$work/vmlinux" "$work/initramfs.cpio" "$image/"
echo "$kver" > "$image/kver"
log "built $image ($(du -h "$image/initramfs.cpio" | cut -f1) initramfs, ${#seen[@]} modules)"
echo "$image"
