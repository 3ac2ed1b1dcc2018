#!/bin/sh
# End-to-end benchmark of the neardup command line: ingest throughput
# (images/s, wall and per CPU-second) and peak memory on 1 and 2 worker
# threads, with Debian's findimagedupes run the way a user runs it
# (`findimagedupes -t 90% DIR`, default fingerprint settings) on the same
# files in the same run; on the mixed corpus also re-ingest of an unchanged
# tree, dedup time and query latency (a fresh process per query: model load,
# decode and embed included).
#   sh bench/suite_cli.sh quick|full      ($O = build dir, default build/rel)
# Corpora (made once, cache/bench_cli/<name>/img/): photos from Debian's
# python3-skimage, randomly cropped and resized with mild noise, plus a
# rescaled or recompressed copy of every tenth image:
#   jpeg   300 JPEGs (q90) of 1.8-2.2 MP: the issue's target case
#   png     60 PNGs (zlib level 6) of 1.8-2.2 MP
#   mixed  200 photos of 1.5-3 MP, 90% JPEG, 10% PNG
#   jpegbig 3000 JPEGs like `jpeg` (full only; neardup only): peak memory
#          must not grow with the corpus
# Quick runs everything once; full takes medians of 3 runs and adds jpegbig.
# findimagedupes also runs with OMP_NUM_THREADS=1: GraphicsMagick's OpenMP
# threads spin while waiting, so under load its CPU time grows with the load;
# on one thread it does not.
# Model: models/neardup.ndm when it exists, else the same architecture with
# random weights (same cost). Writes bench/results/cli.md (quick) or
# bench/results/cli_full.md (full).
set -eu
mode=${1:-quick}
O=${O:-build/rel}
B=$O/neardup
case "$mode" in
quick) RUNS=1 report=bench/results/cli.md ;;
full) RUNS=3 report=bench/results/cli_full.md ;;
*) echo "suite_cli: mode quick|full" >&2; exit 2 ;;
esac
[ -x "$B" ] || make --no-print-directory "$B"
for t in findimagedupes /usr/bin/time; do
	command -v "$t" >/dev/null || { echo "suite_cli: $t missing (scripts/deps.sh bench)" >&2; exit 1; }
done
py=/usr/bin/python3
SK=cache/debs/sk/usr/lib/python3/dist-packages/skimage/data
MODEL=models/neardup.ndm
if [ ! -f "$MODEL" ]; then
	MODEL=cache/bench_cli/neardupnet-random.ndm
	if [ ! -f "$MODEL" ]; then
		mkdir -p cache/bench_cli
		$py - "$MODEL" <<'EOF'
import sys, torch
sys.path.insert(0, "models"); sys.path.insert(0, "models/train")
from export import export_model
import net
torch.manual_seed(3)
m = net.NearDupNet().eval()
export_model(m, sys.argv[1], name="neardupnet-random", input_hw=(net.SIZE, net.SIZE),
             mean=net.MEAN, std=net.STD)
EOF
	fi
fi

# corpus NAME COUNT KIND SEED: makes cache/bench_cli/NAME/img once
corpus() {
	d=cache/bench_cli/$1
	[ -f "$d/.done" ] && return 0
	if [ ! -d "$SK" ]; then
		mkdir -p cache/debs
		(cd cache/debs && apt-get download python3-skimage >/dev/null)
		dpkg-deb -x "$(ls cache/debs/python3-skimage_*.deb | tail -n 1)" cache/debs/sk
	fi
	echo "suite_cli: making the $1 corpus ($2 images, once)" >&2
	rm -rf "$d"
	mkdir -p "$d/img"
	$py - "$SK" "$d/img" "$2" "$3" "$4" <<'EOF'
import sys, os, numpy as np
from multiprocessing import Pool
from PIL import Image
sk, out, n, kind, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
names = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "retina.jpg",
         "hubble_deep_field.jpg", "motorcycle_left.png", "motorcycle_right.png", "camera.png",
         "coins.png", "brick.png", "grass.png", "gravel.png", "page.png", "text.png", "moon.png",
         "horse.png", "immunohistochemistry.png", "logo.png", "colorwheel.png", "cell.png",
         "lily.tif", "eagle.png", "kidney.tif", "skin.jpg"]
srcs = []
for nm in names:
    try:
        im = Image.open("%s/%s" % (sk, nm))
        im.load()
        srcs.append(im.convert("RGB"))
    except Exception:
        pass
lo, hi = (1.5, 3.0) if kind == "mixed" else (1.8, 2.2)
def make(i):
    rng = np.random.default_rng([seed, i])
    im = srcs[i % len(srcs)]
    W, H = im.size
    s = rng.uniform(0.5, 1.0)
    w, h = max(16, int(W * s)), max(16, int(H * s))
    x, y = int(rng.integers(0, W - w + 1)), int(rng.integers(0, H - h + 1))
    mp = rng.uniform(lo, hi) * 1e6
    k = (mp / (w * h)) ** 0.5
    a = np.asarray(im.crop((x, y, x + w, y + h)).resize((int(w * k), int(h * k)), Image.BICUBIC))
    a = np.clip(a.astype(np.float32) + rng.normal(0, 3.0, a.shape), 0, 255).astype(np.uint8)
    o = Image.fromarray(a)
    if kind == "png" or (kind == "mixed" and i % 10 == 5):
        o.save("%s/img_%05d.png" % (out, i), compress_level=6)
    else:
        o.save("%s/img_%05d.jpg" % (out, i), quality=90)
    if i % 10 == 0:  # a near-duplicate: rescaled to 60% or recompressed at q40
        if kind == "png":
            o.resize((int(o.width * 0.6), int(o.height * 0.6)), Image.BILINEAR).save(
                "%s/img_%05d_small.png" % (out, i), compress_level=6)
        elif i % 20 == 0:
            o.resize((int(o.width * 0.6), int(o.height * 0.6)), Image.BILINEAR).save(
                "%s/img_%05d_small.jpg" % (out, i), quality=85)
        else:
            o.save("%s/img_%05d_q40.jpg" % (out, i), quality=40)
with Pool(min(2, os.cpu_count() or 1)) as p:
    p.map(make, range(n), chunksize=16)
EOF
	touch "$d/.done"
}
corpus jpeg 300 jpeg 21
corpus png 60 png 31
corpus mixed 200 mixed 11
names="jpeg png mixed"
if [ "$mode" = full ]; then
	corpus jpegbig 3000 jpeg 41
fi

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# timed LABEL CMD...: /usr/bin/time into $T/LABEL (wall user sys maxrss_kb), one line a run
timed() {
	label=$1
	shift
	/usr/bin/time -f "%e %U %S %M" -o "$T/t" "$@" >"$T/out" 2>"$T/err" || {
		echo "suite_cli: $label failed: $(tail -n 3 "$T/err")" >&2
		exit 1
	}
	cat "$T/t" >>"$T/$label"
}
col() { awk -v c="$2" '{ print $c }' "$T/$1" | median; }
cpu() { awk '{ print $2 + $3 }' "$T/$1" | median; }
ingest() { # ingest LABEL DIR JOBS
	rm -rf "$T/db"
	timed "$1" "$B" ingest -q --model "$MODEL" --index "$T/db" -j "$3" "$2"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq $RUNS); do
	for c in $names; do
		img=cache/bench_cli/$c/img
		for j in 1 2; do
			ingest "$c.ingest$j" "$img" $j
		done
		if [ "$c" = mixed ]; then
			timed reingest "$B" ingest -q --model "$MODEL" --index "$T/db" "$img"
			timed dedup "$B" dedup -q --index "$T/db" --format jsonl
			wc -l <"$T/out" >"$T/groups"
			for q in $(find "$img" -name '*_q40.jpg' -o -name '*_small.jpg' | sort | head -n 10); do
				timed query "$B" query -q --model "$MODEL" --index "$T/db" -k 10 "$q"
			done
		fi
		timed "$c.fid" findimagedupes -q -t 90% "$img"
		wc -l <"$T/out" >"$T/$c.fidgroups"
		# GraphicsMagick parallelises with OpenMP, whose threads spin while
		# they wait: on a loaded machine that burns CPU. On one thread its
		# CPU time is the cost of the work itself.
		timed "$c.fid1" env OMP_NUM_THREADS=1 findimagedupes -q -t 90% "$img"
	done
done
# memsplit LABEL DIR: one more -j 2 ingest, polling /proc every 0.1 s for
# the peaks of anonymous memory (heap, queues, buffers) and of file-backed
# resident pages (the LMDB map and the shared libraries) separately
memsplit() {
	ms_label=$1
	rm -rf "$T/db"
	"$B" ingest -q --model "$MODEL" --index "$T/db" -j 2 "$2" >/dev/null 2>&1 &
	pid=$!
	ma=0 mf=0
	while kill -0 $pid 2>/dev/null; do
		v=$(awk '/^RssAnon/ { a = $2 } /^RssFile/ { f = $2 } END { print a + 0, f + 0 }' \
			/proc/$pid/status 2>/dev/null | head -n 1)
		a=${v%% *} f=${v##* }
		[ "${a:-0}" -gt "$ma" ] && ma=$a
		[ "${f:-0}" -gt "$mf" ] && mf=$f
		sleep 0.1
	done
	wait $pid || { echo "suite_cli: memsplit ingest failed" >&2; exit 1; }
	echo "$((ma / 1024)) $((mf / 1024))" >"$T/$ms_label.memsplit"
}
if [ "$mode" = full ]; then
	for j in 1 2; do
		ingest "jpegbig.ingest$j" cache/bench_cli/jpegbig/img $j
	done
	memsplit jpeg cache/bench_cli/jpeg/img
	memsplit jpegbig cache/bench_cli/jpegbig/img
	names="$names jpegbig"
fi
# where one JPEG's CPU goes: decode+prep from memory (as ingest does) and
# the CNN forward alone (batch 16, one thread), on the same files and model
for t in bench_decode bench_cnn; do
	[ -x "$O/bench/$t" ] || make --no-print-directory "$O/bench/$t"
done
insize=$("$O/bench/bench_cnn" "$MODEL" --seconds 1 --threads 1 --batches 16 --no-layers --sgemm 64 >"$T/cnn.out" &&
	sed -n 's/.*input 3x\([0-9]*\)x\([0-9]*\).*/\2x\1/p' "$T/cnn.out" | head -n 1)
cnn_ms=$(awk -F'|' '$2 + 0 == 1 && $3 + 0 == 16 { printf "%.2f", 1000 / $6 }' "$T/cnn.out")
dec_ms=$("$O/bench/bench_decode" --size "$insize" --mem --repeat 2 cache/bench_cli/jpeg/img/* |
	sed -n 's/.*cpu_ms_per_image=\([0-9.]*\).*/\1/p')
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

nfiles() { find "cache/bench_cli/$1/img" -type f | wc -l; }
meanmp() {
	$py - "cache/bench_cli/$1/img" <<'EOF'
import sys, os
from PIL import Image
d = sys.argv[1]
px = [Image.open(os.path.join(d, f)).size for f in os.listdir(d)]
print("%.2f" % (sum(w * h for w, h in px) / len(px) / 1e6))
EOF
}
rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.1f", n / s; else printf "-" }'; }
ms() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.1f", 1000 * s / n }'; }
mib() { echo $(($(col "$1" 4) / 1024)); }
row() { # row LABEL FILES NAME
	row_w=$(col "$3" 1)
	row_c=$(cpu "$3")
	echo "| $1 | $row_w | $row_c | $(rate "$2" "$row_w") | $(rate "$2" "$row_c") | $(ms "$2" "$row_c") | $(mib "$3") |"
}
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v + 0 >= t + 0) ? "**met**" : "**not met**" }'; }
{
	echo "# neardup command line: end-to-end benchmark ($mode)"
	echo
	echo "Generated by \`sh bench/suite_cli.sh $mode\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit"
	echo "$(git rev-parse --short HEAD 2>/dev/null || echo '?'); CPU: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1),"
	echo "$(nproc) cores. Load average before: $load_before, after: $load_after (a shared"
	echo "machine: wall-clock figures depend on the load; CPU seconds (user+system) much less)."
	echo "Model: $MODEL. Medians of $RUNS run(s). findimagedupes is run as \`findimagedupes -q -t 90% DIR\`"
	echo "(its default fingerprint settings, no database file)."
	echo
	echo "| corpus | files | mean MP |"
	echo "|---|---|---|"
	for c in $names; do
		echo "| $c | $(nfiles $c) | $(meanmp $c) |"
	done
	for c in $names; do
		n=$(nfiles $c)
		echo
		echo "## $c ($n files)"
		echo
		echo "| step | wall s | CPU s | images/s (wall) | images per CPU-s | CPU ms per image | peak RSS MiB |"
		echo "|---|---|---|---|---|---|---|"
		row "neardup ingest -j 1" "$n" "$c.ingest1"
		row "neardup ingest -j 2" "$n" "$c.ingest2"
		if [ "$c" = mixed ]; then
			echo "| neardup ingest again (all unchanged) | $(col reingest 1) | $(cpu reingest) | | | | $(mib reingest) |"
			echo "| neardup dedup ($(cat "$T/groups") groups at the default --min-sim) | $(col dedup 1) | $(cpu dedup) | | | | $(mib dedup) |"
			echo "| neardup query, one process per query (median of 10 a run) | $(col query 1) | $(cpu query) | | | | $(mib query) |"
		fi
		if [ -f "$T/$c.fid" ]; then
			row "findimagedupes -t 90% ($(cat "$T/$c.fidgroups") groups)" "$n" "$c.fid"
			row "findimagedupes -t 90%, OMP_NUM_THREADS=1" "$n" "$c.fid1"
			echo
			awk -v a="$(col "$c.ingest1" 1)" -v b="$(col "$c.ingest2" 1)" -v f="$(col "$c.fid" 1)" \
			    -v ca="$(cpu "$c.ingest1")" -v cb="$(cpu "$c.ingest2")" -v cf="$(cpu "$c.fid")" \
			    -v cf1="$(cpu "$c.fid1")" 'BEGIN {
				printf "-j 2 over -j 1 (wall): %.2fx. neardup vs findimagedupes: wall %.1fx (-j 2), %.1fx (-j 1);", a / b, f / b, f / a
				printf " per CPU-second %.1fx (-j 1), %.1fx (-j 2); per CPU-second vs findimagedupes on one thread %.1fx (-j 1).\n", cf / ca, cf / cb, cf1 / ca }'
		fi
	done
	echo
	echo "## Targets"
	echo
	n=$(nfiles jpeg)
	r2=$(rate "$n" "$(col jpeg.ingest2 1)")
	fw=$(awk -v b="$(col jpeg.ingest2 1)" -v f="$(col jpeg.fid 1)" 'BEGIN { printf "%.1f", f / b }')
	fc=$(awk -v a="$(cpu jpeg.ingest1)" -v f="$(cpu jpeg.fid)" 'BEGIN { printf "%.1f", f / a }')
	echo "findimagedupes' own CPU time grows with the machine's load (GraphicsMagick's OpenMP threads"
	echo "spin while they wait), so its default-run ratios are only fair at low load; the one-thread row"
	echo "is its cost for the work itself."
	echo
	echo "| target | measured | |"
	echo "|---|---|---|"
	echo "| ingest >= 150 images/s, ~2 MP JPEGs, 2 cores (-j 2, wall) | $r2 images/s | $(verdict "$r2" 150) |"
	echo "| >= 5x findimagedupes on the same JPEGs, wall (-j 2 vs its default run) | ${fw}x | $(verdict "$fw" 5) |"
	echo "| >= 5x findimagedupes on the same JPEGs, per CPU-second (-j 1) | ${fc}x | $(verdict "$fc" 5) |"
	fc1=$(awk -v a="$(cpu jpeg.ingest1)" -v f="$(cpu jpeg.fid1)" 'BEGIN { printf "%.1f", f / a }')
	echo "| the same, per CPU-second vs findimagedupes on one thread (OMP_NUM_THREADS=1) | ${fc1}x | $(verdict "$fc1" 5) |"
	peak=0
	for c in $names; do
		for j in 1 2; do
			m=$(mib "$c.ingest$j")
			[ "$m" -gt "$peak" ] && peak=$m
		done
	done
	echo "| peak memory < 1 GB (largest neardup ingest RSS of this run) | $peak MiB | $(verdict $((1024 - peak)) 1) |"
	if [ "$mode" = full ]; then
		echo "| peak memory flat in N: jpeg vs jpegbig ($(nfiles jpeg) vs $(nfiles jpegbig) files), -j 1 / -j 2 | $(mib jpeg.ingest1) / $(mib jpeg.ingest2) vs $(mib jpegbig.ingest1) / $(mib jpegbig.ingest2) MiB | |"
		read -r a1 f1 <"$T/jpeg.memsplit"
		read -r a2 f2 <"$T/jpegbig.memsplit"
		echo "| of which (-j 2, polled): anonymous / file-backed peak, jpeg vs jpegbig | $a1 / $f1 vs $a2 / $f2 MiB | |"
	fi
	echo
	awk -v n="$n" -v t="$(cpu jpeg.ingest1)" -v d="$dec_ms" -v c="$cnn_ms" -v f1="$(cpu jpeg.fid1)" -v f="$(cpu jpeg.fid)" 'BEGIN {
		tot = 1000 * t / n; f1 = 1000 * f1 / n; f = 1000 * f / n
		printf "Where one ~2 MP JPEG'"'"'s CPU goes (one core): ingest -j 1 %.2f ms in all; decode+prep %.2f ms", tot, d
		r = tot - d - c
		printf " (bench_decode --mem), CNN forward %.2f ms (bench_cnn, batch 16), the rest (read, hash, LMDB,", c
		printf " threads; by difference) %s ms. findimagedupes: %.1f ms (default run), %.1f ms (one thread). Even with a",
			r < 0.1 ? "< 0.1" : sprintf("%.2f", r), f, f1
		printf " free CNN the per-CPU-second ratio would be %.1fx (default run) / %.1fx (one thread): decode alone,", f / (tot - c), f1 / (tot - c)
		printf " almost all of it libjpeg'"'"'s Huffman decoding (perf), bounds it.\n" }'
} >"$report"
cat "$report"
