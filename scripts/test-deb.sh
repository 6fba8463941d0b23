#!/bin/sh
# The Debian package (debian/): builds the .deb with dpkg-buildpackage from
# a pristine copy of the tree (the files git tracks or would track, as
# ci-sanitizers.sh takes them), fails on any lintian error, installs it,
# checks that every file is where docs/configuration.md says, runs the
# installed kevd with the installed configuration and asks it through the
# installed kevctl (and boots the test guest with it when /dev/kvm opens),
# then purges the package and checks that nothing is left, also when a
# step fails.
#
# Not part of `make check`: it installs a package on this machine.
# scripts/test.sh runs it after distcheck.  Needs root; skips (77) without
# it, outside a git checkout and without dpkg-buildpackage.  Refuses to run
# where kevd is installed already.  About a minute on 2 cores.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
me=test-deb.sh
t_start=$(date +%s)
step() { echo "== $me: $* ($(($(date +%s) - t_start)) s)"; }

if [ "$(id -u)" -ne 0 ]; then
	echo "$me: installs and purges the package, so needs root: skipped"
	exit 77
fi
if [ ! -f debian/control ] || ! git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
	echo "$me: not a git checkout with debian/ (a dist tarball has none): skipped"
	exit 77
fi
sh scripts/deps.sh
if ! command -v dpkg-buildpackage > /dev/null 2>&1; then
	echo "$me: dpkg-buildpackage not found: skipped"
	exit 77
fi

. "$top/tests/lib.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kevd-deb-XXXXXX")
pid=
installed=
made_run=
image=/var/lib/kevd/images/test-deb-guest.elf
cleanup() {
	kevd_stop "$pid"
	rm -f "$image"
	[ -z "$installed" ] || dpkg --purge kevd > /dev/null 2>&1 || echo "$me: dpkg --purge kevd failed" >&2
	[ -z "$made_run" ] || rm -rf /run/kevd
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM
fail() {
	echo "$me: FAIL: $*" >&2
	[ -s "$tmp/kevd.log" ] && sed 's/^/kevd: /' "$tmp/kevd.log" >&2
	exit 1
}

# What the package installs: nothing of it may be there beforehand (the
# purge at the end would take it away).
paths="/usr/bin/kevd /usr/bin/kevctl /lib/systemd/system/kevd.service /etc/kevd /var/lib/kevd
/usr/share/bash-completion/completions/kevctl /usr/share/doc/kevd
/usr/share/man/man8/kevd.8.gz /usr/share/man/man5/kevd.conf.5.gz /usr/share/man/man1/kevctl.1.gz
/etc/systemd/system/multi-user.target.wants/kevd.service"
status=$(dpkg-query -W -f='${db:Status-Status}' kevd 2> /dev/null || :)
case $status in
'' | not-installed) ;;
*) fail "the kevd package is on this machine already ($status); remove it first: dpkg --purge kevd" ;;
esac
for p in $paths; do
	[ ! -e "$p" ] || fail "$p exists, but no kevd package is installed (make install?); remove it first"
done

upstream=$(sed -n 's/^AC_INIT(\[kevd\], \[\([^]]*\)\].*/\1/p' configure.ac)
version=$(dpkg-parsechangelog -S Version)
[ "${version%-*}" = "$upstream" ] ||
	fail "debian/changelog's version $version is not configure.ac's $upstream with a Debian revision"

step "pristine source copy in $tmp/kevd-$upstream"
src="$tmp/kevd-$upstream"
mkdir "$src"
before=$(git status --porcelain)
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | (cd "$src" && tar xf -)

step "dpkg-buildpackage -b -us -uc"
(cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" dpkg-buildpackage -b -us -uc) \
	> "$tmp/build.log" 2>&1 || {
	tail -40 "$tmp/build.log" >&2
	fail "dpkg-buildpackage failed (log above)"
}
[ "$(git status --porcelain)" = "$before" ] || fail "building the package changed the source tree"
deb="$tmp/kevd_${version}_amd64.deb"
changes="$tmp/kevd_${version}_amd64.changes"
[ -f "$deb" ] && [ -f "$changes" ] || fail "no $deb or no $changes"

step "lintian --fail-on error"
rc=0
lintian --fail-on error --display-info --show-overrides "$changes" > "$tmp/lintian" 2>&1 || rc=$?
grep -v '^running with root privileges' "$tmp/lintian" | sed 's/^/lintian: /'
[ "$rc" -eq 0 ] || fail "lintian found errors, or failed (exit $rc)"

step "dpkg -i $(basename "$deb")"
installed=1
dpkg -i "$deb" > "$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log" >&2; fail "dpkg -i failed"; }

step "the installed files"
for p in /usr/bin/kevd /usr/bin/kevctl; do
	[ -x "$p" ] || fail "$p is not installed"
done
for p in /lib/systemd/system/kevd.service /usr/share/bash-completion/completions/kevctl \
	/usr/share/man/man8/kevd.8.gz /usr/share/man/man5/kevd.conf.5.gz /usr/share/man/man1/kevctl.1.gz; do
	[ -f "$p" ] || fail "$p is not installed"
done
[ -d /var/lib/kevd/images ] || fail "the image directory /var/lib/kevd/images is not there"
cmp -s /etc/kevd/kevd.conf etc/kevd.conf || fail "/etc/kevd/kevd.conf is not etc/kevd.conf"
dpkg-query -W -f='${Conffiles}\n' kevd | grep -q '^ /etc/kevd/kevd.conf [0-9a-f]*$' ||
	fail "/etc/kevd/kevd.conf is not a conffile"
if command -v man > /dev/null 2>&1; then
	for page in 8:kevd 5:kevd.conf 1:kevctl; do
		man -w "${page%%:*}" "${page#*:}" > /dev/null 2>&1 || fail "man ${page%%:*} ${page#*:} finds no page"
	done
fi
bash -c '. /usr/share/bash-completion/completions/kevctl && complete -p kevctl' 2>&1 |
	grep -q -- '-F _kevctl kevctl$' || fail "the bash completion does not complete kevctl"
[ "$(/usr/bin/kevd --version)" = "kevd $upstream" ] || fail "kevd --version: $(/usr/bin/kevd --version)"

unit=/lib/systemd/system/kevd.service
grep -qx 'ExecStart=/usr/bin/kevd serve --config /etc/kevd/kevd.conf' "$unit" ||
	fail "the unit does not start /usr/bin/kevd with /etc/kevd/kevd.conf: $(grep ExecStart= "$unit")"
doc=$(sed -n 's|^Documentation=file://||p' "$unit")
[ -f "$doc" ] || fail "the unit's Documentation= names $doc, which is not installed"
if command -v systemd-analyze > /dev/null 2>&1; then
	systemd-analyze verify "$unit" > "$tmp/verify" 2>&1 || { cat "$tmp/verify" >&2; fail "systemd-analyze verify $unit"; }
fi
# postinst enables the unit (deb-systemd-helper) and starts it only where
# systemd runs: elsewhere it must not have tried, or dpkg -i would have failed.
[ -L /etc/systemd/system/multi-user.target.wants/kevd.service ] || fail "postinst did not enable kevd.service"
if [ -d /run/systemd/system ]; then
	systemctl is-active --quiet kevd || fail "postinst did not start kevd.service under systemd"
fi

# The installed daemon on the installed configuration, unchanged.  Its
# default socket is /run/kevd/kevd.sock, unless a kevd there (the service
# just started, a demo) already uses /run/kevd.
step "kevd serve --config /etc/kevd/kevd.conf"
sock=
if [ -e /run/kevd ]; then
	sock="$tmp/kevd.sock"
else
	made_run=1
fi
/usr/bin/kevd serve --config /etc/kevd/kevd.conf ${sock:+--socket "$sock"} > "$tmp/kevd.log" 2>&1 &
pid=$!
kevctl() { /usr/bin/kevctl ${sock:+--socket "$sock"} "$@"; }
kevd_ready "$pid" kevctl health || { pid=; fail "the installed kevd did not answer kevctl health"; }
out=$(kevctl health) || fail "kevctl health failed: $out"
echo "$out" | grep -q ': ok, 0 VM(s)$' || fail "kevctl health: $out"
out=$(kevctl version) || fail "kevctl version failed: $out"
[ "$out" = "kevctl $upstream
kevd $upstream (API v1)" ] || fail "kevctl version: $out"
if (exec 3<> /dev/kvm) 2> /dev/null; then
	[ -f "$src/tests/guests/testguest.elf" ] || fail "the package build made no tests/guests/testguest.elf"
	cp "$src/tests/guests/testguest.elf" "$image"
	rc=0
	kevctl run --kernel "$(basename "$image")" --cmdline touch=all --rm > "$tmp/run.out" 2> "$tmp/run.err" || rc=$?
	# The guest writes 0 to the debug exit port: status (0 << 1) | 1.
	[ "$rc" -eq 1 ] && grep -qx 'result: ok' "$tmp/run.out" || {
		cat "$tmp/run.out" "$tmp/run.err" >&2
		fail "kevctl run of the test guest: exit $rc, not 1 with 'result: ok'"
	}
	rm -f "$image"
	echo "$me: the installed kevd booted the test guest"
else
	echo "$me: /dev/kvm cannot be opened: no guest booted"
fi
kevd_stop "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" -eq 0 ] || fail "kevd exited $rc on SIGTERM (or was killed: it did not stop in 5 s)"

step "dpkg --purge kevd"
dpkg --purge kevd > "$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log" >&2; fail "dpkg --purge kevd failed"; }
installed=
if [ -n "$made_run" ]; then
	rm -rf /run/kevd
	made_run=
fi
status=$(dpkg-query -W -f='${db:Status-Status}' kevd 2> /dev/null || :)
[ -z "$status" ] || [ "$status" = not-installed ] || fail "kevd is still known to dpkg after the purge: $status"
for p in $paths; do
	[ ! -e "$p" ] && [ ! -L "$p" ] || fail "$p is left after the purge"
done
step "passed"
