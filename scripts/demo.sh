#!/bin/sh
# The main job on the bundled sample corpus (data/). Filled in as stages land.
set -eu
bin=${1:-build/rel/neardup}
"$bin" --version
