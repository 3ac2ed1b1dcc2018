#!/bin/sh
# Fetches the development-set (evaluation-only) Debian packages into the
# git-ignored cache/dev/pkgs/<pkg>/ (apt-get download + dpkg-deb -x; nothing
# is installed). These packages must never be used for training; the
# training packages are fetched by scripts/fetch_training_data.sh.
# Usage: bench/corpus/fetch_dev_packages.sh [PKG...]
set -eu
cd "$(dirname "$0")/../.."
PKGS=${*:-"python3-skimage gnome-backgrounds desktop-base megaglest-data trigger-rally-data neverball-data"}
NEARDUP_TRAIN_CACHE=cache/dev exec scripts/fetch_training_data.sh $PKGS
