#!/bin/sh
# make check-linux: boots Debian's cloud kernel (fetched with apt, never
# committed) lazily through PVH with a busybox initramfs, for a bounded
# time, and checks what a nested-KVM host can reach (docs/linux.md): the
# banner, the e820 map exactly as kevd built it, the initrd found, the ACPI
# tables read, and how much of the image was loaded.  On a VT-x host the
# same run reaches the initramfs marker and powers off.
#
# Environment: VCPUS (default 1), MEMORY MiB (512), TIMEOUT seconds (300),
# KEVD_LINUX_EXTRA (extra kernel options).
set -eu
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
kevd="$top_builddir/kevd"
vcpus=${VCPUS:-1}
mem=${MEMORY:-512}
timeout=${TIMEOUT:-300}
if ! (exec 3<>/dev/kvm) 2>/dev/null; then
	echo "linux: /dev/kvm cannot be opened: skipped"
	exit 77
fi
vmlinux=$(sh "$top_srcdir/bench/fetch-debian-kernel.sh") || { echo "linux: no Debian kernel: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sh "$top_srcdir/tests/linux/mkinitramfs.sh" "$tmp/initrd.gz"

# Options that step around this host's instruction emulator (MACHINE.md),
# kept here rather than in kevd's defaults.
opts="console=ttyS0 earlyprintk=serial,ttyS0,115200 noxsave clearcpuid=smap,cx16 ${KEVD_LINUX_EXTRA:-}"
echo "linux: booting $vmlinux with $vcpus vCPU(s), $mem MiB, for at most $timeout s"
set +e
"$kevd" run --kernel "$vmlinux" --initrd "$tmp/initrd.gz" --memory "$mem" --vcpus "$vcpus" \
	--timeout "$timeout" --cmdline "$opts" --json > "$tmp/out" 2> "$tmp/err"
rc=$?
set -e
cat "$tmp/err" >&2
fail() { echo "linux: FAIL: $*"; sed -n '1,200p' "$tmp/out"; exit 1; }
out="$tmp/out"
grep -q '^\[ *[0-9.]*\] Linux version ' "$out" || fail "no banner"
# The map kevd built for $mem MiB (docs/boot.md).
top_hex=$(printf '%016x' $(( mem * 1024 * 1024 - 1 )))
grep -q 'BIOS-e820: \[mem 0x0000000000000000-0x000000000009fbff\] usable' "$out" || fail "e820 low RAM"
grep -q 'BIOS-e820: \[mem 0x000000000009fc00-0x00000000000fffff\] reserved' "$out" || fail "e820 reserved"
grep -q "BIOS-e820: \[mem 0x0000000000100000-0x$top_hex\] usable" "$out" || fail "e820 RAM to $top_hex"
grep -q 'RAMDISK: \[mem 0x' "$out" || fail "initrd not found by the kernel"
grep -q 'ACPI: RSDP 0x00000000000E0000' "$out" || fail "ACPI RSDP not found"
grep -q 'ACPI: Using ACPI (MADT) for SMP configuration information' "$out" || fail "MADT not used"
grep -q "smpboot: Allowing $vcpus CPUs" "$out" || fail "the kernel does not see $vcpus CPUs"
if grep -q 'KEVD-INITRAMFS-OK' "$out"; then
	echo "linux: reached the initramfs marker:"
	grep 'KEVD-INITRAMFS-OK' "$out"
	[ "$rc" -eq 0 ] || fail "powered off but exit status $rc"
else
	echo "linux: ended before user space (expected on nested KVM: docs/linux.md), status $rc; last lines:"
	grep '^\[' "$out" | tail -5
fi
grep -o '"image_pages": [0-9]*' "$out" | head -1
grep -o '"pages_loaded": [0-9]*' "$out" | head -1
grep -o '"bytes_read": [0-9]*' "$out" | head -1
grep -o '"state": "[a-z]*"' "$out" | head -1
grep -o '"reason": "[^"]*"' "$out" | head -1
echo "linux: ok"
