#!/bin/sh
# The main job on the bundled sample corpus (data/). Filled in as stages land:
# for now the decode stage — every image in data/ decoded as ingest will do it
# (format by magic bytes, EXIF orientation, DCT/box reduction for a 224x224
# model input) and preprocessed into the model's tensor.
#   scripts/demo.sh [path/to/neardup]     (make demo builds it first)
set -eu
bin=${1:-build/rel/neardup}
cd "$(dirname "$0")/.."
[ -x "$bin" ] || make --no-print-directory
"$bin" --version
if ! "$bin" inspect --help >/dev/null 2>&1; then
	echo "demo: this neardup has no 'inspect' command yet (src/cli/inspect.c is not wired into main.c)" >&2
	exit 1
fi
echo "== decode + prep of data/ (see data/README.md for what each file is)"
"$bin" inspect --size 224x224 data/*.jpg data/*.png
