#!/bin/sh
# Runs the benchmark suites: every bench/suite_*.sh, in name order, with the
# mode (quick|full) as its argument and $O pointing at the build directory.
# Each suite writes its report to bench/results/<suite>.md (and .json).
# BENCH_ONLY="quality cli" runs only those suites (make bench BENCH_ONLY=quality).
set -eu
mode=${1:-quick}
export O=${O:-build/rel}
mkdir -p bench/results
for s in bench/suite_*.sh; do
	[ -f "$s" ] || continue
	if [ -n "${BENCH_ONLY:-}" ]; then
		n=${s#bench/suite_}
		case " $BENCH_ONLY " in *" ${n%.sh} "*) ;; *) continue ;; esac
	fi
	echo "== $s ($mode)"
	sh "$s" "$mode"
done
