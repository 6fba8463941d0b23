#!/bin/sh
# kevd's main job: install, build, then show what the pager sees in the
# bundled test guest and measure lazy against eager loading of it.
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
sh scripts/build.sh
./kevd inspect tests/guests/testguest.elf
