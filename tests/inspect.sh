#!/bin/sh
# `kevd inspect` end to end: a valid image prints its segments and exits 0
# (text and JSON); a rejected one prints one line naming the file, exits 1.
set -eu
kevd="$top_builddir/kevd"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A minimal valid image: the guest kernel when built, else the host's own
# ET_EXEC-free check is not possible, so build one with printf.
img="$top_builddir/tests/guests/testguest.elf"
if [ -f "$img" ]; then
	out=$("$kevd" inspect "$img")
	echo "$out"
	echo "$out" | grep -q '^entry:   0x'
	echo "$out" | grep -q 'multiboot2 (header at file offset'
	echo "$out" | grep -q 'pvh (entry 0x'
	"$kevd" inspect --json "$img" > "$tmp/out.json"
	grep -q '"image_pages":' "$tmp/out.json"
	grep -q '"name": "pvh"' "$tmp/out.json"
fi

printf 'not an elf at all\n' > "$tmp/bad.elf"
set +e
"$kevd" inspect "$tmp/bad.elf" > "$tmp/stdout" 2> "$tmp/stderr"
rc=$?
set -e
[ "$rc" -eq 1 ] || { echo "expected exit 1, got $rc"; exit 1; }
[ "$(wc -l < "$tmp/stderr")" -eq 1 ] || { echo "expected one line:"; cat "$tmp/stderr"; exit 1; }
grep -q "kevd: image '$tmp/bad.elf': not an ELF file" "$tmp/stderr"
[ ! -s "$tmp/stdout" ]

set +e
"$kevd" inspect > /dev/null 2>&1; rc1=$?
"$kevd" inspect "$tmp/nonexistent" 2> "$tmp/stderr"; rc2=$?
"$kevd" frobnicate 2> /dev/null; rc3=$?
set -e
[ "$rc1" -eq 2 ] && [ "$rc2" -eq 1 ] && [ "$rc3" -eq 2 ]
grep -q "No such file or directory" "$tmp/stderr"
echo "inspect: ok"
