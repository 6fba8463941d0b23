#!/bin/sh
# mkinitramfs.sh OUT: writes a gzip'd newc initramfs holding Debian's
# busybox-static and an /init that prints a marker line (with the kernel
# command line) and powers the machine off.  Needs busybox-static, cpio, gzip.
set -eu
out=$1
bb=/bin/busybox
[ -x "$bb" ] || { echo "mkinitramfs: $bb missing (package busybox-static)" >&2; exit 1; }
command -v cpio > /dev/null || { echo "mkinitramfs: cpio missing (package cpio)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/proc" "$tmp/sys" "$tmp/dev"
cp "$bb" "$tmp/bin/busybox"
cat > "$tmp/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo "KEVD-INITRAMFS-OK cpus=$(/bin/busybox grep -c ^processor /proc/cpuinfo) cmdline=$(/bin/busybox cat /proc/cmdline)"
/bin/busybox poweroff -f
INIT
chmod 755 "$tmp/init"
(cd "$tmp" && find . | cpio -o -H newc --quiet) | gzip -9 > "$out.tmp"
mv "$out.tmp" "$out"
