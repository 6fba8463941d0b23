#!/bin/sh
# Downloads Debian's current cloud kernel (the package linux-image-cloud-amd64
# depends on) with `apt-get download`, extracts the bzImage, decompresses its
# payload into the vmlinux ELF and checks with `kevd inspect` that it has a PVH
# entry.  Prints the path of the vmlinux on stdout; progress and errors go to
# stderr (the last stderr line says why it failed).
#
# Cache: $KEVD_BENCH_CACHE, else $XDG_CACHE_HOME/kevd-bench, else
# ~/.cache/kevd-bench (outside the repository, so nothing lands in git).
# A vmlinux already in the cache for the current package version is reused
# without network access.
#
# Needs: apt (apt-get, apt-cache), dpkg-deb, od, and the decompressor of the
# payload (Debian 12's cloud kernel is LZ4: package lz4; xz-utils, zstd, gzip,
# bzip2 are used for other kernels).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${KEVD_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kevd-bench}
meta=linux-image-cloud-amd64

say() { echo "fetch-debian-kernel: $*" >&2; }
die() { say "$*"; exit 1; }

# le32 FILE OFFSET: the little-endian 32-bit word at OFFSET, in decimal.
le32() {
	od -An -v -tu1 -j "$2" -N4 "$1" | awk '{ v = $1 + $2 * 256 + $3 * 65536 + $4 * 16777216; printf "%d\n", v }'
}
# hexbytes FILE OFFSET COUNT: "0221 4c18..." as one lowercase hex string.
hexbytes() {
	od -An -v -tx1 -j "$2" -N "$3" "$1" | tr -d ' \n'
}

command -v apt-cache >/dev/null 2>&1 || die "apt-cache not found (not a Debian system?)"
command -v dpkg-deb >/dev/null 2>&1 || die "dpkg-deb not found"

if [ ! -x "$top/kevd" ]; then
	say "building kevd"
	(cd "$top" && make -j2 kevd) >&2 || die "cannot build kevd"
fi

pkg=$(apt-cache depends "$meta" 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[^ <>]*\)$/\1/p' | head -n 1)
[ -n "$pkg" ] || die "apt-cache knows no package $meta (run apt-get update?)"
ver=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: *//p' | head -n 1)
if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then die "no candidate version of $pkg"; fi

mkdir -p "$cache"
vmlinux="$cache/vmlinux-$pkg-$ver"

check() {
	out=$("$top/kevd" inspect "$1" 2>&1) || { say "kevd inspect $1 failed: $out"; return 1; }
	echo "$out" | grep -q 'ELF64' || { say "$1 is not an ELF64 image"; return 1; }
	echo "$out" | grep -q 'pvh (entry 0x' || { say "$1 has no PVH entry note"; return 1; }
}

if [ -s "$vmlinux" ] && check "$vmlinux"; then
	say "using cached $vmlinux"
	echo "$vmlinux"
	exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kevd-fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# apt names the file PACKAGE_VERSION_ARCH.deb, an epoch's ':' written %3a.
debver=$(echo "$ver" | sed 's/:/%3a/')
deb=$(ls "$cache"/"$pkg"_"$debver"_*.deb 2>/dev/null | head -n 1 || true)
if [ -z "$deb" ]; then
	say "downloading $pkg $ver"
	# apt-get download writes into the current directory; let its unprivileged
	# _apt user write there (it warns and downloads unsandboxed otherwise).
	chmod 755 "$tmp"
	if ! (cd "$tmp" && apt-get download -q "$pkg=$ver") >&2 2>"$tmp/apt.err"; then
		cat "$tmp/apt.err" >&2
		die "apt-get download $pkg=$ver failed (no network, or stale apt lists: apt-get update)"
	fi
	deb=$(ls "$tmp"/"$pkg"_*.deb 2>/dev/null | head -n 1 || true)
	[ -n "$deb" ] || die "apt-get download produced no .deb"
	mv "$deb" "$cache/"
	deb="$cache/$(basename "$deb")"
fi

say "extracting $(basename "$deb")"
dpkg-deb -x "$deb" "$tmp/x" || die "dpkg-deb -x $deb failed"
bz=$(ls "$tmp"/x/boot/vmlinuz-* 2>/dev/null | head -n 1 || true)
[ -n "$bz" ] || die "no boot/vmlinuz-* in $deb"

# x86 boot protocol header (Documentation/arch/x86/boot.rst): "HdrS" at 0x202,
# protocol version at 0x206, setup_sects at 0x1f1, payload_offset (relative to
# the protected-mode code, which starts after (setup_sects + 1) * 512 bytes) at
# 0x248 and payload_length at 0x24c (protocol >= 2.08).
[ "$(hexbytes "$bz" $((0x202)) 4)" = 48647253 ] || die "$bz: no HdrS magic, not a bzImage"
proto=$(od -An -tu2 -j $((0x206)) -N2 "$bz" | tr -d ' ')
[ "$proto" -ge $((0x208)) ] || die "$bz: boot protocol $proto older than 2.08, no payload fields"
setup_sects=$(od -An -tu1 -j $((0x1f1)) -N1 "$bz" | tr -d ' ')
[ "$setup_sects" -ne 0 ] || setup_sects=4
off=$(( (setup_sects + 1) * 512 + $(le32 "$bz" $((0x248))) ))
len=$(le32 "$bz" $((0x24c)))
[ "$len" -gt 4 ] || die "$bz: payload length $len"
# The kernel build appends the uncompressed size (32-bit little endian) to
# every compressed payload; decompress without it and check the size.
size=$(le32 "$bz" $((off + len - 4)))

magic=$(hexbytes "$bz" "$off" 6)
case $magic in
02214c18*) fmt=lz4 ; dec="lz4 -dc" ;;
fd377a585a00) fmt=xz ; dec="xz -dc" ;;
28b52ffd*) fmt=zstd ; dec="zstd -dcq" ;;
1f8b*) fmt=gzip ; dec="gzip -dc" ;;
425a68*) fmt=bzip2 ; dec="bzip2 -dc" ;;
*) die "$bz: unknown payload compression (magic $magic at offset $off)" ;;
esac
tool=${dec%% *}
command -v "$tool" >/dev/null 2>&1 || die "payload is $fmt but $tool is not installed (Debian package: $([ "$fmt" = xz ] && echo xz-utils || echo "$fmt"))"
say "payload: $fmt, $len bytes at offset $off, $size bytes uncompressed"

tail -c +"$((off + 1))" "$bz" | head -c "$((len - 4))" | $dec >"$tmp/vmlinux" 2>"$tmp/dec.err" ||
	{ cat "$tmp/dec.err" >&2; die "$tool failed to decompress the payload"; }
got=$(wc -c <"$tmp/vmlinux" | tr -d ' ')
[ "$got" -eq "$size" ] || die "decompressed $got bytes, the bzImage says $size"
[ "$(hexbytes "$tmp/vmlinux" 0 4)" = 7f454c46 ] || die "decompressed payload is not an ELF file"
check "$tmp/vmlinux" || die "decompressed vmlinux rejected"
mv "$tmp/vmlinux" "$vmlinux"
say "vmlinux: $vmlinux"
echo "$vmlinux"
