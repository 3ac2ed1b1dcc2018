#!/bin/sh
# End-to-end benchmark of the neardup command line: ingest throughput
# (images/s, wall and per CPU-second) and peak memory on 1 and 2 worker
# threads, re-ingest of an unchanged tree, dedup time, query latency
# (a fresh process per query: model load, decode and embed included), and
# Debian's findimagedupes on the same files in the same run.
#   sh bench/suite_cli.sh quick|full      ($O = build dir, default build/rel)
# Corpus (made once, cache/bench_cli/<mode>/): photos from Debian's
# python3-skimage, randomly cropped and resized to 1.5-3 megapixels with mild
# noise, saved as JPEG q90 (90%) and PNG (10%), plus a rescaled or
# recompressed copy of every tenth image. Model: models/neardup.ndm when it
# exists, else the same architecture with random weights (same cost).
# Writes bench/results/cli.md.
set -eu
mode=${1:-quick}
O=${O:-build/rel}
B=$O/neardup
case "$mode" in
quick) N=200 RUNS=1 ;;
full) N=1000 RUNS=3 ;;
*) echo "suite_cli: mode quick|full" >&2; exit 2 ;;
esac
[ -x "$B" ] || make --no-print-directory "$B"
for t in findimagedupes /usr/bin/time; do
	command -v "$t" >/dev/null || { echo "suite_cli: $t missing (scripts/deps.sh bench)" >&2; exit 1; }
done
py=/usr/bin/python3
C=cache/bench_cli/$mode
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
if [ ! -f "$C/.done" ]; then
	if [ ! -d "$SK" ]; then
		mkdir -p cache/debs
		(cd cache/debs && apt-get download python3-skimage >/dev/null)
		dpkg-deb -x "$(ls cache/debs/python3-skimage_*.deb | tail -n 1)" cache/debs/sk
	fi
	rm -rf "$C"
	mkdir -p "$C/img"
	$py - "$SK" "$C/img" "$N" <<'EOF'
import sys, numpy as np
from PIL import Image
sk, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(11)
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
for i in range(n):
    im = srcs[i % len(srcs)]
    W, H = im.size
    s = rng.uniform(0.5, 1.0)
    w, h = max(16, int(W * s)), max(16, int(H * s))
    x, y = int(rng.integers(0, W - w + 1)), int(rng.integers(0, H - h + 1))
    mp = rng.uniform(1.5, 3.0) * 1e6
    k = (mp / (w * h)) ** 0.5
    a = np.asarray(im.crop((x, y, x + w, y + h)).resize((int(w * k), int(h * k)), Image.BICUBIC))
    a = np.clip(a.astype(np.float32) + rng.normal(0, 3.0, a.shape), 0, 255).astype(np.uint8)
    out_im = Image.fromarray(a)
    if i % 10 == 5:
        out_im.save("%s/img_%05d.png" % (out, i), compress_level=6)
    else:
        out_im.save("%s/img_%05d.jpg" % (out, i), quality=90)
    if i % 10 == 0:  # a near-duplicate: rescaled to 60% or recompressed at q40
        if i % 20 == 0:
            out_im.resize((int(out_im.width * 0.6), int(out_im.height * 0.6)), Image.BILINEAR).save(
                "%s/img_%05d_small.jpg" % (out, i), quality=85)
        else:
            out_im.save("%s/img_%05d_q40.jpg" % (out, i), quality=40)
EOF
	touch "$C/.done"
fi

files=$(find "$C/img" -type f | wc -l)
mp=$($py - "$C/img" <<'EOF'
import sys, os
from PIL import Image
d = sys.argv[1]
px = [Image.open(os.path.join(d, f)).size for f in os.listdir(d)]
print("%.2f" % (sum(w * h for w, h in px) / len(px) / 1e6))
EOF
)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# timed LABEL CMD...: /usr/bin/time into $T/LABEL.N (wall user sys maxrss_kb)
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

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq $RUNS); do
	for j in 1 2; do
		rm -rf "$T/db"
		timed ingest$j "$B" ingest -q --model "$MODEL" --index "$T/db" -j $j "$C/img"
	done
	timed reingest "$B" ingest -q --model "$MODEL" --index "$T/db" "$C/img"
	timed dedup "$B" dedup -q --index "$T/db" --format jsonl
	groups=$(wc -l <"$T/out")
	for q in $(find "$C/img" -name '*_q40.jpg' -o -name '*_small.jpg' | sort | head -n 10); do
		timed query "$B" query -q --model "$MODEL" --index "$T/db" -k 10 "$q"
	done
	timed fid findimagedupes -q -t 90% "$C/img"
	fidgroups=$(wc -l <"$T/out")
done
rate() { awk -v n="$files" -v s="$1" 'BEGIN { printf "%.1f", n / s }'; }
{
	echo "# neardup command line: end-to-end benchmark ($mode)"
	echo
	echo "Generated by \`sh bench/suite_cli.sh $mode\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit"
	echo "$(git rev-parse --short HEAD 2>/dev/null || echo '?'); CPU: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1),"
	echo "$(nproc) cores, load average before: $load_before (a shared machine: wall-clock"
	echo "figures depend on the load; CPU seconds (user+system) much less)."
	echo "Corpus: $files files in $C/img ($N photos of 1.5-3 MP, mean $mp MP over all files,"
	echo "10% PNG, plus a near-duplicate of every tenth). Model: $MODEL."
	echo "Medians of $RUNS run(s)."
	echo
	echo "| step | wall s | CPU s | images/s (wall) | images per CPU-s | peak RSS MiB |"
	echo "|---|---|---|---|---|---|"
	for j in 1 2; do
		w=$(col ingest$j 1)
		c=$(cpu ingest$j)
		echo "| neardup ingest -j $j | $w | $c | $(rate "$w") | $(rate "$c") | $(($(col ingest$j 4) / 1024)) |"
	done
	echo "| neardup ingest again (all unchanged) | $(col reingest 1) | $(cpu reingest) | | | $(($(col reingest 4) / 1024)) |"
	echo "| neardup dedup ($groups groups at the default --min-sim) | $(col dedup 1) | $(cpu dedup) | | | $(($(col dedup 4) / 1024)) |"
	echo "| neardup query, one process per query (median of 10 per run) | $(col query 1) | $(cpu query) | | | $(($(col query 4) / 1024)) |"
	w=$(col fid 1)
	c=$(cpu fid)
	echo "| findimagedupes -t 90% ($fidgroups groups) | $w | $c | $(rate "$w") | $(rate "$c") | $(($(col fid 4) / 1024)) |"
	echo
	w1=$(col ingest1 1)
	w2=$(col ingest2 1)
	awk -v a="$w1" -v b="$w2" -v f="$w" -v ca="$(cpu ingest1)" -v cf="$c" 'BEGIN {
		printf "Speed-up of -j 2 over -j 1 (wall): %.2fx. neardup ingest -j 2 vs findimagedupes (wall): %.1fx;\n", a / b, f / b
		printf "per CPU-second (-j 1): %.1fx.\n", cf / ca }'
} >bench/results/cli.md
cat bench/results/cli.md
