#!/bin/sh
# Installs what kevd needs to build, test, package (debian/) and benchmark on
# Debian 12.
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
pkgs="build-essential autoconf automake pkg-config libelf-dev libjansson-dev libevent-dev
      libinih-dev check libcurl4-openssl-dev curl qemu-system-x86 prometheus
      libseccomp-dev time lz4 busybox-static cpio mandoc gnuplot-nox
      debhelper dpkg-dev lintian fakeroot"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
