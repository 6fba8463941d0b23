#!/bin/sh
# kevd's main job: install what is needed, build, start the daemon with a
# configuration in a temporary directory, boot the bundled test guest
# lazily through the API with curl, show its console and its lazy-paging
# statistics, and stop.
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
api() { curl -sS --unix-socket "$tmp/kevd.sock" "$@"; echo; }

echo "== what the pager sees in the image"
"$top/kevd" inspect "$tmp/images/testguest.elf"
echo
echo "== POST /v1/vms: 2 vCPUs touching 25% of the guest's 32 MiB data image, lazily"
api -X POST -H 'Content-Type: application/json' http://localhost/v1/vms \
	-d '{"name":"demo","kernel":"testguest.elf","memory_mib":128,"vcpus":2,"cmdline":"touch=percent:25"}'
for _ in $(seq 100); do
	api http://localhost/v1/vms/demo | grep -q '"state":"running"' || break
	sleep 0.1
done
echo "== GET /v1/vms/demo/console"
api http://localhost/v1/vms/demo/console
echo "== GET /v1/vms/demo"
api http://localhost/v1/vms/demo
echo "== GET /v1/vms/demo/paging"
api http://localhost/v1/vms/demo/paging
echo "== GET /metrics (pager lines)"
api http://localhost/metrics | grep '^kevd_vm_pager_\(faults\|pages_loaded\|read_bytes\)'
echo "== DELETE /v1/vms/demo, then stop kevd"
api -X DELETE http://localhost/v1/vms/demo
kill "$pid"
wait "$pid"
pid=
