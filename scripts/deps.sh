#!/bin/sh
# Installs the Debian packages a neardup task needs, only those missing.
#   scripts/deps.sh build|test|fuzz|bench|train|html|mpi|all
# Used by `make`, `make test`, `make fuzz`, `make bench` and .ci/run.
# Set NEARDUP_NO_DEPS=1 to skip (e.g. on a non-Debian system where you
# installed the libraries yourself).
set -u
task=${1:-build}

build="gcc make pkg-config libjpeg62-turbo-dev libpng-dev libwebp-dev libgif-dev libtiff-dev libheif-dev libdeflate-dev zlib1g-dev libopenblas-dev liblmdb-dev libexif-dev libxxhash-dev libjansson-dev libmicrohttpd-dev"
case "$task" in
build) pkgs="$build" ;;
test)  pkgs="$build libjpeg-turbo-progs jq libxml2-utils python3 python3-numpy curl python3-yaml" ;;
fuzz)  pkgs="$build clang libclang-rt-14-dev" ;;
bench) pkgs="$build wrk curl libjpeg-turbo-progs webp netpbm libtiff-tools libheif-examples python3-numpy python3-pil python3-torch python3-xxhash python3-faiss findimagedupes gnuplot-nox time fonts-dejavu-core fonts-dejavu-extra" ;;
html)  pkgs="$build chromium chromium-driver python3-selenium" ;;
mpi)   pkgs="$build openmpi-bin libopenmpi-dev jq" ;;
train) pkgs="python3-numpy python3-pil python3-torch python3-xxhash" ;;
all)   pkgs="$build openmpi-bin libopenmpi-dev libjpeg-turbo-progs webp netpbm libtiff-tools libheif-examples jq libxml2-utils chromium chromium-driver python3-selenium clang libclang-rt-14-dev python3-numpy python3-pil python3-torch python3-xxhash python3-faiss findimagedupes gnuplot-nox time" ;;
*) echo "deps.sh: unknown task '$task' (build|test|fuzz|bench|train|html|mpi|all)" >&2; exit 2 ;;
esac

[ "${NEARDUP_NO_DEPS:-0}" = 1 ] && exit 0

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "deps.sh: not a Debian system (no dpkg-query); install these yourself and set NEARDUP_NO_DEPS=1: $pkgs" >&2
	exit 0
fi

missing=""
for p in $pkgs; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)
	[ "$st" = installed ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "deps.sh: installing missing Debian packages:$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO=sudo
	else
		echo "deps.sh: need root to install:$missing" >&2
		echo "deps.sh: run as root: apt-get install$missing" >&2
		exit 1
	fi
else
	SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
# The package lists may be empty on a fresh machine: update once, then install.
if ! $SUDO apt-get install -y -q --no-install-recommends $missing >/tmp/neardup-apt.log 2>&1; then
	$SUDO apt-get update -q >>/tmp/neardup-apt.log 2>&1
	if ! $SUDO apt-get install -y -q --no-install-recommends $missing >>/tmp/neardup-apt.log 2>&1; then
		echo "deps.sh: apt-get could not install:$missing" >&2
		tail -n 15 /tmp/neardup-apt.log >&2
		echo "deps.sh: see /tmp/neardup-apt.log; install them by hand or set NEARDUP_NO_DEPS=1" >&2
		exit 1
	fi
fi
echo "deps.sh: installed:$missing" >&2
