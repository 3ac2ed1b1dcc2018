#!/bin/sh
# Fetches the Debian packages whose images neardup's embedding model is
# trained on and unpacks them into the git-ignored cache:
#   cache/train/debs/*.deb     the downloaded packages
#   cache/train/pkgs/<pkg>/    their unpacked contents (dpkg-deb -x, nothing installed)
# Usage: scripts/fetch_training_data.sh [PKG...]   (default: the training list)
# Needs apt-get (Debian) and network access to the Debian mirror. Idempotent:
# packages already unpacked are skipped.
#
# The development-set packages (bench/corpus/fetch_dev_packages.sh) are
# disjoint from these and must never be trained on.
set -eu
cd "$(dirname "$0")/.."
DEST=${NEARDUP_TRAIN_CACHE:-cache/train}
# Sizes checked with `apt-cache show` (Debian 12): 13-153 MiB each, ~550 MiB in all.
PKGS=${*:-"openclipart-png tuxpaint-stamps-default gimp-data wesnoth-1.16-data extremetuxracer-data marble-data krita-data"}
MAX_MIB=${NEARDUP_MAX_DEB_MIB:-400}   # skip pathological packages

mkdir -p "$DEST/debs" "$DEST/pkgs"
for p in $PKGS; do
	if [ -f "$DEST/pkgs/$p/.done" ]; then
		echo "fetch: $p already unpacked"
		continue
	fi
	size=$(apt-cache show "$p" 2>/dev/null | awk '/^Size:/{print $2; exit}')
	if [ -z "$size" ]; then
		echo "fetch: $p: not known to apt (run apt-get update?); skipped" >&2
		continue
	fi
	mib=$((size / 1048576))
	if [ "$mib" -gt "$MAX_MIB" ]; then
		echo "fetch: $p is $mib MiB (> $MAX_MIB); skipped" >&2
		continue
	fi
	echo "fetch: $p ($mib MiB)"
	( cd "$DEST/debs" && apt-get download -q "$p" )
	deb=$(ls -t "$DEST/debs/${p}_"*.deb | head -n 1)
	rm -rf "$DEST/pkgs/$p"
	mkdir -p "$DEST/pkgs/$p"
	dpkg-deb -x "$deb" "$DEST/pkgs/$p"
	touch "$DEST/pkgs/$p/.done"
done
echo "fetch: done into $DEST/pkgs"
