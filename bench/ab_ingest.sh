#!/bin/sh
# Ingest throughput of two neardup binaries on the same files, alternating
# runs so that both see the same machine load: wall seconds, CPU seconds
# (user + sys) and images per CPU-second, each run into a fresh index.
#   sh bench/ab_ingest.sh OLD_BINARY NEW_BINARY [IMG_DIR] [RUNS]
# IMG_DIR defaults to the CLI bench's JPEG corpus (made by
# `sh bench/suite_cli.sh quick`); -j 2, the default thread count.
set -eu
old=${1:?OLD_BINARY}
new=${2:?NEW_BINARY}
img=${3:-cache/bench_cli/jpeg/img}
runs=${4:-5}
[ -d "$img" ] || { echo "ab_ingest: no $img (run sh bench/suite_cli.sh quick once)" >&2; exit 2; }
n=$(ls "$img" | wc -l)
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
echo "ab_ingest: $n images in $img, $runs runs each, alternating; load $(cut -d' ' -f1-3 /proc/loadavg)"
i=0
while [ $i -lt "$runs" ]; do
	for which in old new; do
		eval bin=\$$which
		rm -rf "$w/idx"
		/usr/bin/time -f "$which %e %U %S" -o "$w/t" "$bin" ingest -q -j 2 --index "$w/idx" "$img"
		cat "$w/t" >>"$w/all"
	done
	i=$((i + 1))
done
awk -v n="$n" '
	{ wall[$1] = wall[$1] " " $2; cpu = $3 + $4; c[$1] = c[$1] " " cpu; tw[$1] += $2; tc[$1] += cpu; k[$1]++ }
	END {
		for (b in k)
			printf "%s: wall s%s | cpu s%s | mean %.2f s wall, %.2f s CPU: %.1f images/s, %.1f images per CPU-second\n",
				b, wall[b], c[b], tw[b] / k[b], tc[b] / k[b], n * k[b] / tw[b], n * k[b] / tc[b]
		printf "new / old images per CPU-second: %.3f\n", (tc["old"] / k["old"]) / (tc["new"] / k["new"])
	}' "$w/all"
