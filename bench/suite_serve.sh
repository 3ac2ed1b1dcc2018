#!/bin/bash
# Load test of `neardup serve` on loopback with wrk (not a test: it measures).
#   bench/suite_serve.sh quick|full      (make bench BENCH_ONLY=serve)
# 1. Query by vector on a 100k-image synthetic index (bench_serve builds it
#    for the real model): the index and scoring part, over HTTP, at 1, 8 and
#    32 concurrent connections, at the default probes (5120) and at 1280.
# 2. Query by image (decode + embed + index) on the same index.
# 3. Ingest over HTTP (8 concurrent clients) beside `neardup ingest` on the
#    same JPEGs, each into a fresh index.
# 4. Overload: 64 connections writing new images against --queue 4: every
#    reply must be 2xx or 429.
# Server CPU is read from /proc (utime + stime of the server process), so
# CPU per request is reported beside the wall-clock figures of a shared
# machine. Writes bench/results/serve.md.
set -eu
mode=${1:-quick}
O=${O:-build/rel}
B=$PWD/$O/neardup
MODEL=$PWD/models/neardup.ndm
DUR=${SERVE_BENCH_SECONDS:-10}
[ "$mode" = full ] && DUR=30
N=100000
CACHE=${TMPDIR:-/tmp}/neardup-bench-serve
mkdir -p "$CACHE"
T=$(mktemp -d "${TMPDIR:-/tmp}/neardup-serve-bench.XXXXXX")
SRV=
trap '[ -n "$SRV" ] && kill $SRV 2>/dev/null; rm -rf "$T"' EXIT
OUT=bench/results/serve.md
command -v wrk >/dev/null || { echo "suite_serve: wrk is not installed (apt-get install wrk)"; exit 1; }

if [ ! -f "$CACHE/ix/data.mdb" ] || [ ! -f "$CACHE/q.jsonl" ]; then
	rm -rf "$CACHE/ix"
	$O/bench/bench_serve "$MODEL" "$CACHE/ix" $N "$CACHE/q.jsonl" 500
fi

# serve ARGS...: starts the server (sets SRV and U)
serve() {
	"$B" serve --model "$MODEL" --listen 127.0.0.1:0 --access-log /dev/null "$@" 2>"$T/srv.err" &
	SRV=$!
	local port=
	for _ in $(seq 1 600); do
		port=$(sed -n 's|.*on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$T/srv.err")
		[ -n "$port" ] && break
		sleep 0.1
	done
	[ -n "$port" ] || { cat "$T/srv.err"; exit 1; }
	U=http://127.0.0.1:$port
}
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
stop() { kill -TERM $SRV; wait $SRV || true; SRV=; }
cpu_ticks() { awk '{ print $14 + $15 }' /proc/$SRV/stat; }
TCK=$(getconf CLK_TCK)
metric_sum() { curl -s "$U/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

# load CONNS PATH ENV...: one wrk run; prints a table row
load() {
	local c=$1 path=$2
	shift 2
	local t=$((c < 2 ? 1 : 2)) c0 c1 i0 i1 n0 n1
	c0=$(cpu_ticks)
	i0=$(metric_sum neardup_index_seconds_sum)
	n0=$(metric_sum neardup_index_seconds_count)
	env URLPATH="${path%%\?*}" "$@" wrk -t $t -c "$c" -d "${DUR}s" --timeout 10s \
		-s bench/serve_query.lua "$U$path" >"$T/wrk.out"
	c1=$(cpu_ticks)
	i1=$(metric_sum neardup_index_seconds_sum)
	n1=$(metric_sum neardup_index_seconds_count)
	local r=$(sed -n 's/^RESULT //p' "$T/wrk.out")
	[ -n "$r" ] || { cat "$T/wrk.out"; exit 1; }
	echo "$r" | jq -r --arg c "$c" --argjson cpu "$(( c1 - c0 ))" --argjson tck "$TCK" \
		--argjson is "$(awk -v a="$i1" -v b="$i0" 'BEGIN { printf "%.6f", a - b }')" --argjson in "$((n1 - n0))" \
		'"| \($c) | \(.requests / .seconds | floor) | \(.p50_ms) | \(.p99_ms) | \(.max_ms) | " +
		 "\(if .requests > 0 then ($cpu / $tck * 1000 / .requests * 100 | floor) / 100 else "-" end) | " +
		 "\(if $in > 0 then ($is / $in * 1e5 | floor) / 100 else "-" end) | " +
		 "\(.non2xx + .connect_errors + .read_errors + .write_errors + .timeouts) |"'
}
HDR='| connections | requests/s | p50 ms | p99 ms | max ms | server CPU ms/request | index ms/query (server) | errors |
|---|---|---|---|---|---|---|---|'

{
	echo "# neardup serve under load"
	echo
	echo "\`bench/suite_serve.sh $mode\` ($(date -u +%Y-%m-%d), $(nproc) CPUs, load average at start"
	echo "$(cut -d' ' -f1-3 /proc/loadavg); wrk on the same machine, ${DUR} s per row; \`--threads 2\`)."
	echo "Latencies are wrk's, from the client: with more connections than server threads they include"
	echo "the wait for a thread. \"server CPU\" is the server process's user + system time per request;"
	echo "\"index ms\" the server's own index + scoring time per query (neardup_index_seconds)."
	echo
} >"$OUT"

serve --index "$CACHE/ix" --threads 2
imgs=$(images=$(curl -s "$U/v1/info" | jq .index.images); echo "$images")
for probes in 5120 1280; do
	{
		echo "## Query by vector, $imgs images (synthetic), probes $probes"
		echo
		echo "$HDR"
	} >>"$OUT"
	for c in 1 8 32; do
		load $c "/v1/query?probes=$probes" BODIES="$CACHE/q.jsonl" >>"$OUT"
	done
	echo >>"$OUT"
done

# images: the sample's JPEGs, as they are
ls "$PWD"/data/*.jpg >"$T/files"
for views in none all; do
	{
		echo "## Query by image (decode, embed, index), views $views, $imgs images"
		echo
		echo "$HDR"
	} >>"$OUT"
	for c in 1 8 32; do
		load $c "/v1/query?views=$views" FILES="$T/files" CTYPE=image/jpeg >>"$OUT"
	done
	echo >>"$OUT"
done
stop

# ingest: distinct JPEGs made from the sample (random crops and sizes)
NI=200
[ "$mode" = full ] && NI=1000
mkdir -p "$T/in"
/usr/bin/python3 - "$T/in" $NI data/*.jpg <<'PY'
import random, sys
from PIL import Image
out, n, srcs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rnd = random.Random(7)
ims = [Image.open(s).convert("RGB") for s in srcs]
for i in range(n):
    im = ims[i % len(ims)]
    w, h = im.size
    cw, ch = int(w * rnd.uniform(0.6, 1)), int(h * rnd.uniform(0.6, 1))
    x, y = rnd.randrange(w - cw + 1), rnd.randrange(h - ch + 1)
    s = rnd.uniform(0.8, 1.6)
    im.crop((x, y, x + cw, y + ch)).resize((int(cw * s), int(ch * s))).save(f"{out}/{i:05d}.jpg", quality=90)
PY
/usr/bin/time -f '%e %U %S' -o "$T/cli.time" "$B" ingest -q -j 2 --model "$MODEL" --index "$T/cli.db" "$T/in"
read -r cw cu cs <"$T/cli.time"
head -c 24 /dev/urandom | base64 >"$T/tok"
serve --index "$T/http.db" --threads 2 --token-file "$T/tok"
c0=$(cpu_ticks)
s0=$(date +%s.%N)
ls "$T"/in/*.jpg | xargs -P 8 -I{} curl -s -o /dev/null -w '%{http_code}\n' \
	-H "Authorization: Bearer $(cat "$T/tok")" -H 'Content-Type: image/jpeg' --data-binary @{} \
	"$U/v1/images?name={}" >"$T/codes"
s1=$(date +%s.%N)
c1=$(cpu_ticks)
ok=$(grep -c '^201$' "$T/codes" || true)
hw=$(calc "$s1 - $s0")
{
	echo "## Ingest, $NI distinct JPEGs (crops of the sample, 0.2-1.5 MP), fresh index"
	echo
	echo "| how | images/s (wall) | CPU s (server or CLI) | images per CPU-second |"
	echo "|---|---|---|---|"
	printf '| `neardup ingest -j 2` | %.1f | %.2f | %.1f |\n' "$(calc "$NI / $cw")" \
		"$(calc "$cu + $cs")" "$(calc "$NI / ($cu + $cs)")"
	printf '| HTTP, 8 clients (curl), `--threads 2` | %.1f | %.2f | %.1f |\n' "$(calc "$ok / $hw")" \
		"$(calc "($c1 - $c0) / $TCK")" "$(calc "$ok / (($c1 - $c0) / $TCK)")"
	echo
	echo "HTTP: $ok of $NI answered 201 (the rest: $(grep -v '^201$' "$T/codes" | sort | uniq -c | tr '\n' ' '))."
	echo
} >>"$OUT"
stop

# overload: 64 connections writing against a queue of 4
serve --index "$T/http.db" --threads 4 --queue 4 --token-file "$T/tok"
env URLPATH=/v1/images GEN=ppm CTYPE=image/x-portable-pixmap AUTH="Bearer $(cat "$T/tok")" \
	wrk -t 2 -c 64 -d "${DUR}s" --timeout 10s -s bench/serve_query.lua "$U/v1/images" >"$T/wrk.out"
curl -s "$U/metrics" | grep '^neardup_http_requests_total{route="/v1/images"' >"$T/st"
stop
{
	echo "## Overload: 64 connections posting new images (32x32 noise), \`--queue 4 --threads 4\`"
	echo
	echo "wrk: $(sed -n 's/^RESULT //p' "$T/wrk.out")"
	echo
	echo "Replies by status (the server's counters):"
	echo
	sed 's/^/    /' "$T/st"
	others=$(grep -v 'status="20[01]"\|status="429"\|status="aborted"' "$T/st" | wc -l)
	echo
	echo "Replies other than 200, 201 and 429: $others kinds (\"aborted\": requests still waiting"
	echo "when wrk stopped and closed its connections; their images were committed)."
} >>"$OUT"
echo "suite_serve: wrote $OUT"
