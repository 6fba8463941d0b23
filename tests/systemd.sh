#!/bin/sh
# The systemd unit: systemd-analyze verify accepts it, and its offline
# security exposure stays at or below the level measured when it was
# written (1.9), so a loosened sandbox fails here.  The unit is made from
# systemd/kevd.service.in like the build does, with ExecStart pointing at
# the built kevd (verify insists the binary exists).  Skips without
# systemd-analyze.
set -eu
max_exposure=2.0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "systemd.sh: $*"; exit 1; }

if ! command -v systemd-analyze > /dev/null 2>&1; then
	echo "systemd.sh: systemd-analyze not found: skipped"
	exit 77
fi
mkdir "$tmp/bin"
if [ -x "$top_builddir/kevd" ]; then
	ln -s "$top_builddir/kevd" "$tmp/bin/kevd"
else
	ln -s /bin/true "$tmp/bin/kevd"
fi
sed -e "s|@bindir@|$tmp/bin|g" -e "s|@sysconfdir@|/etc|g" -e "s|@docdir@|/usr/share/doc/kevd|g" \
	"$top_srcdir/systemd/kevd.service.in" > "$tmp/kevd.service"
if grep -n '@[a-z]*@' "$tmp/kevd.service"; then
	fail "placeholders left in the unit"
fi

# verify prints its complaints but may still exit 0 for some of them.
systemd-analyze verify "$tmp/kevd.service" > "$tmp/verify" 2>&1 || { cat "$tmp/verify"; fail "verify failed"; }
if [ -s "$tmp/verify" ]; then
	cat "$tmp/verify"
	fail "verify complained"
fi

systemd-analyze security --offline=true --no-pager "$tmp/kevd.service" > "$tmp/security" 2>&1 || {
	cat "$tmp/security"
	fail "security failed"
}
score=$(sed -n 's/.*Overall exposure level for kevd.service: \([0-9.]*\).*/\1/p' "$tmp/security")
[ -n "$score" ] || { cat "$tmp/security"; fail "no exposure level in the output"; }
echo "systemd.sh: exposure level $score (at most $max_exposure)"
if ! awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s + 0 <= m + 0) }'; then
	grep '✗' "$tmp/security" || true
	fail "exposure level $score is above $max_exposure"
fi
