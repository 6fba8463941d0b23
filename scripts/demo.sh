#!/bin/sh
# kevd's main job: install, build, then boot the bundled test guest lazily
# with 2 vCPUs (its console streams here) and print the lazy-paging
# statistics; then the same guest eagerly, for comparison.
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
sh scripts/build.sh
[ -e /dev/kvm ] || { echo "demo: /dev/kvm is missing: kevd needs KVM" >&2; exit 1; }
echo "== what the pager sees in the image"
./kevd inspect tests/guests/testguest.elf
echo
echo "== lazy boot, 2 vCPUs, the guest touches 25% of its 32 MiB data image"
./kevd run --kernel tests/guests/testguest.elf --vcpus 2 --cmdline "touch=percent:25" || true
echo
echo "== the same guest, eager"
./kevd run --kernel tests/guests/testguest.elf --vcpus 2 --cmdline "touch=percent:25" --eager --quiet || true
