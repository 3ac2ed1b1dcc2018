#!/bin/sh
# Runs the benchmark suites: every bench/suite_*.sh, in name order, with the
# mode (quick|full) as its argument and $O pointing at the build directory.
# Each suite writes its report to bench/results/<suite>.md (and .json).
set -eu
mode=${1:-quick}
export O=${O:-build/rel}
mkdir -p bench/results
for s in bench/suite_*.sh; do
	[ -f "$s" ] || continue
	echo "== $s ($mode)"
	sh "$s" "$mode"
done
