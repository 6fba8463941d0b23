#!/bin/sh
# The manual pages: clean under `mandoc -Tlint` (warnings are failures),
# every option the built commands print in their usage appears in the page
# that documents the command, and every section and key of the
# configuration (as `kevd serve --check-config` prints them: the real
# table, not a copy) appears in kevd.conf(5), the key within its section.
# Skips (77) without mandoc.
set -eu
top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-$top_builddir}
kevd="$top_builddir/kevd"
man="$top_srcdir/man"
me=man.sh

command -v mandoc > /dev/null 2>&1 || { echo "$me: mandoc is not installed: skipped"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kevd-man-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
errors=0
fail() { echo "$me: FAIL: $*"; errors=$((errors + 1)); }

# render PAGE: the page as plain text, one space between words.
render() {
	MANWIDTH=200 mandoc -Tascii -Owidth=200 "$1" | col -b | tr -s ' '
}

pages="kevd.8 kevd.conf.5"
[ ! -x "$top_builddir/kevctl" ] || pages="$pages kevctl.1"
for p in $pages; do
	[ -r "$man/$p" ] || { fail "$man/$p is missing"; continue; }
	if ! mandoc -Tlint -Wwarning "$man/$p" > "$tmp/lint" 2>&1 || [ -s "$tmp/lint" ]; then
		fail "mandoc -Tlint $p:"
		cat "$tmp/lint"
	fi
	render "$man/$p" > "$tmp/$p.txt"
done

# options PROGRAM ARGS...: the --long options its usage text names.
options() {
	"$@" 2>&1 | grep -o -e '--[a-z][a-z0-9-]*' | sort -u
}
check_options() {  # PAGE then the command printing the usage
	page=$1
	shift
	for o in $(options "$@"); do
		[ "$o" = --help ] && continue
		grep -q -E -e "$o([^a-z0-9-]|\$)" "$tmp/$page.txt" || fail "$page does not document $o (from: $*)"
	done
}
check_options kevd.8 "$kevd" serve --help
check_options kevd.8 "$kevd" run --help
check_options kevd.8 "$kevd" inspect --help
for c in serve run inspect version; do
	grep -q -e "kevd.* $c" "$tmp/kevd.8.txt" || fail "kevd.8 does not show the command $c"
done
if [ -x "$top_builddir/kevctl" ]; then
	check_options kevctl.1 "$top_builddir/kevctl" --help
fi

# Every section and key, in file order; a key must come after its section's
# heading and before the next one.
printf '[api]\nsocket = %s/s\n' "$tmp" > "$tmp/kevd.conf"
"$kevd" serve --config "$tmp/kevd.conf" --check-config > "$tmp/dump" || fail "kevd serve --check-config failed"
n=0
section=
while IFS= read -r line; do
	case $line in
	"["*"]")
		section=$line
		grep -q -F -x -e "$section" "$tmp/kevd.conf.5.txt" ||
			grep -q -F -e " $section" "$tmp/kevd.conf.5.txt" || fail "kevd.conf.5 has no section $section"
		;;
	[a-z]*" ="*)
		key=${line%% =*}
		n=$((n + 1))
		awk -v s="$section" -v k="$key" '
			index($0, s) == 1 || $0 == " " s || index($0, " " s) == 1 { ins = 1; next }
			ins && /^ ?\[[a-z]+\]/ { ins = 0 }
			ins && index(" " $0 " ", " " k " ") { found = 1 }
			END { exit !found }
		' "$tmp/kevd.conf.5.txt" || fail "kevd.conf.5 does not describe $key in $section"
		;;
	esac
done < "$tmp/dump"
[ "$n" -ge 18 ] || fail "only $n keys read from --check-config"

[ "$errors" -eq 0 ] || exit 1
echo "$me: ok ($pages; $n configuration keys)"
