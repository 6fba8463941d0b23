#!/bin/sh
# kevd's main job: install what is needed, build, start the daemon with a
# configuration in a temporary directory, boot the bundled test guest
# lazily through the API with kevctl (docs/kevctl.md), show its console
# and its lazy-paging statistics, and stop.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
sh scripts/deps.sh
sh scripts/build.sh
if ! (exec 3<>/dev/kvm) 2>/dev/null; then
	echo "demo: /dev/kvm cannot be opened: kevd needs KVM (run as root on a host with KVM)" >&2
	exit 1
fi

tmp=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
mkdir "$tmp/images"
cp tests/guests/testguest.elf "$tmp/images/testguest.elf"
cat > "$tmp/kevd.conf" <<CONF
[api]
socket = $tmp/kevd.sock
[paths]
image_dir = $tmp/images
state_dir = $tmp
runtime_dir = $tmp
[log]
level = info
CONF

echo "== kevd serve --config $tmp/kevd.conf"
"$top/kevd" serve --config "$tmp/kevd.conf" &
pid=$!
for _ in $(seq 100); do [ -S "$tmp/kevd.sock" ] && break; sleep 0.05; done
kevctl() { "$top/kevctl" --socket "$tmp/kevd.sock" "$@"; }

echo "== what the pager sees in the image"
"$top/kevd" inspect "$tmp/images/testguest.elf"
echo
echo "== kevctl run: 2 vCPUs touching 25% of the guest's 32 MiB data image, lazily (its console, then how it ended)"
# run's exit status is the guest's: 1 means the guest's checks passed.
status=0
kevctl run --name demo --kernel testguest.elf --memory 128 --vcpus 2 --cmdline touch=percent:25 || status=$?
[ "$status" = 1 ] || { echo "demo: the guest did not pass its checks (kevctl run exit status $status)" >&2; exit 1; }
echo "== kevctl ls"
kevctl ls
echo "== kevctl show demo"
kevctl show demo
echo "== kevctl paging demo"
kevctl paging demo
echo "== kevctl metrics (pager lines)"
kevctl metrics | grep '^kevd_vm_pager_\(faults\|pages_loaded\|read_bytes\)'
echo "== kevctl rm demo, then stop kevd"
kevctl rm demo
kill "$pid"
wait "$pid"
pid=
