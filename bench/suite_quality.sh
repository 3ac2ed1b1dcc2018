#!/bin/sh
# The quality benchmark (issue 7): how much neardup finds, how little it
# confuses and how fast it is, end to end through the real binary, beside
# exact search over its own embeddings, a 64-bit DCT pHash and Debian's
# findimagedupes, all on the same files in the same run.
#
#   sh bench/suite_quality.sh quick|full        ($O: build dir, default build/rel)
#
# quick: the dev set exactly as the model card uses it (250 originals, 1021
#        distractors, 4250 queries over 17 edit kinds) plus light/strong copies
#        of the first 100 originals, the natural families and hard negatives.
# full : the same with all 250 originals' strength copies and $FULL_TILES
#        (default 10000) extra distractors (tiles of the dev packages' images).
# Writes bench/results/quality.{json,md} (quick) or quality-full.{json,md}
# (full), and PNG plots beside them. Builds the corpora once into cache/.
# BENCH_BUILD="text" names the build in the report when $O is not built from
# this work tree. Timed steps run under $BENCH_QUIET (default /work/quiet.sh when present:
# pauses the background training run). Work files: cache/quality/run-<mode>/, or $QUALITY_WORK.
set -eu
mode=${1:-quick}
cd "$(dirname "$0")/.."
O=${O:-build/rel}
PY=/usr/bin/python3
NEARDUP=$O/neardup
BV=$O/bench/bench_vectors
if [ -z "${BENCH_QUIET+x}" ]; then
	BENCH_QUIET=
	[ -x /work/quiet.sh ] && BENCH_QUIET=/work/quiet.sh
fi
case "$mode" in
quick) strength_orig=100; tiles=0; lat_n=100; suffix= ;;
full)  strength_orig=250; tiles=${FULL_TILES:-10000}; lat_n=300; suffix=-full ;;
*) echo "suite_quality: mode must be quick or full" >&2; exit 2 ;;
esac
for t in "$NEARDUP" "$BV"; do
	[ -x "$t" ] || { echo "suite_quality: $t missing (run make bench)" >&2; exit 2; }
done
for t in findimagedupes gnuplot /usr/bin/time; do
	command -v "$t" >/dev/null || { echo "suite_quality: $t missing (scripts/deps.sh bench)" >&2; exit 2; }
done

# ---- corpora (once) ----
if [ ! -f cache/dev/devset/manifest.tsv ]; then
	if [ ! -d cache/dev/pkgs/desktop-base ]; then
		bench/corpus/fetch_dev_packages.sh
	fi
	$PY bench/corpus/make_devset.py
fi
$PY bench/corpus/make_extra.py --tiles "$tiles"

W=${QUALITY_WORK:-cache/quality/run-$mode}
rm -rf "$W"
mkdir -p "$W"
ROOT=$(pwd)
# file lists (absolute paths, as the index stores them)
awk -F'\t' -v r="$ROOT/cache/dev/devset/" 'NR > 1 && $1 == "ref" { print r $2 }' cache/dev/devset/manifest.tsv >"$W/refs.txt"
awk -F'\t' 'NR > 1 && $1 == "tile" { print $2 }' cache/quality/corpus.tsv | sed "s|^cache/|$ROOT/cache/|" >>"$W/refs.txt"
awk -F'\t' -v r="$ROOT/cache/dev/devset/" 'NR > 1 && $1 == "query" { print r $2 }' cache/dev/devset/manifest.tsv >"$W/queries.txt"
awk -F'\t' -v n="$strength_orig" 'NR > 1 && $1 == "strength" && $3 < n { print $2 }' cache/quality/corpus.tsv >>"$W/queries.txt"
awk -F'\t' 'NR > 1 && ($1 == "natural" || $1 == "hardneg") { print $2 }' cache/quality/corpus.tsv >"$W/natural.txt"
for f in queries natural; do  # make_extra writes absolute paths already; normalise
	sed -i "s|^cache/|$ROOT/cache/|" "$W/$f.txt"
done

timed() {  # timed NAME CMD...: wall, user, sys, peak RSS into $W/NAME.time
	name=$1
	shift
	$BENCH_QUIET /usr/bin/time -f "%e %U %S %M" -o "$W/$name.time" "$@"
}

echo "suite_quality: $(wc -l <"$W/refs.txt") references, $(wc -l <"$W/queries.txt") queries, $(wc -l <"$W/natural.txt") natural/look-alike files; load $(cut -d' ' -f1-3 /proc/loadavg)"
uptime >"$W/load_before"

# ---- neardup: ingest the references, query every copy ----
timed ingest_refs xargs -a "$W/refs.txt" "$NEARDUP" ingest -q -j 2 --index "$W/idx_refs"
"$NEARDUP" stats --index "$W/idx_refs" >"$W/stats_refs.txt"
score_raw=0
"$NEARDUP" query --help 2>&1 | grep -q -- '--score' && score_raw=1
timed query "$NEARDUP" query -q --index "$W/idx_refs" --format jsonl -k 10 - <"$W/queries.txt" >"$W/query.jsonl"
if [ "$score_raw" = 1 ]; then
	"$NEARDUP" query -q --index "$W/idx_refs" --format jsonl -k 10 --score raw - <"$W/queries.txt" >"$W/query_raw.jsonl"
fi
# latency of one query in a fresh process (start-up, model load, decode, embed, lookup)
awk -v n="$lat_n" 'NR % 37 == 1 && c < n { print; c++ }' "$W/queries.txt" >"$W/lat_sample.txt"
$BENCH_QUIET sh -c '
	while read -r f; do
		a=$(date +%s%N)
		"$1" query -q --index "$2" -k 10 "$f" >/dev/null
		b=$(date +%s%N)
		echo $(( (b - a) / 1000 ))
	done <"$3" >"$4"' lat "$NEARDUP" "$W/idx_refs" "$W/lat_sample.txt" "$W/latency_us.txt"

# ---- the dedup set: references + copies in one index ----
cp -r "$W/idx_refs" "$W/idx_all"
timed ingest_queries xargs -a "$W/queries.txt" "$NEARDUP" ingest -q -j 2 --index "$W/idx_all"
timed dedup "$NEARDUP" dedup -q --index "$W/idx_all" --format jsonl >"$W/dedup_default.jsonl"
for s in 0.3 0.4 0.5 0.6 0.7 0.75 0.8 0.85 0.9 0.95; do
	"$NEARDUP" dedup -q --index "$W/idx_all" --format jsonl --min-sim "$s" >"$W/dedup_$s.jsonl"
done
dedup_raw=0
"$NEARDUP" dedup --help 2>&1 | grep -q -- '--score' && dedup_raw=1
if [ "$dedup_raw" = 1 ]; then  # the plain cosine beside the calibrated score (issue 8)
	"$NEARDUP" dedup -q --index "$W/idx_all" --format jsonl --score raw >"$W/dedup_raw_default.jsonl"
	for s in 0.3 0.4 0.5 0.6 0.7 0.75 0.8 0.85 0.9 0.95; do
		"$NEARDUP" dedup -q --index "$W/idx_all" --format jsonl --score raw --min-sim "$s" >"$W/dedup_raw_$s.jsonl"
	done
fi
"$BV" dump "$W/idx_all" "$W/all"
"$BV" dump "$W/idx_refs" "$W/refs"
$PY bench/quality/evaluate.py extract-queries "$W"   # query vectors in queries.txt order -> qvecs.f32
$BENCH_QUIET "$BV" lsh "$W/idx_refs" "$W/qvecs.f32" -k 10 -p 0,16,64,256,640,1280,2560,5120 >"$W/lsh.jsonl"

# ---- natural families + hard negatives ----
timed ingest_natural xargs -a "$W/natural.txt" "$NEARDUP" ingest -q -j 2 --index "$W/idx_nat"
"$NEARDUP" dedup -q --index "$W/idx_nat" --format jsonl >"$W/nat_dedup_default.jsonl"
for s in 0.3 0.4 0.5 0.6 0.7 0.75 0.8 0.85 0.9 0.95; do
	"$NEARDUP" dedup -q --index "$W/idx_nat" --format jsonl --min-sim "$s" >"$W/nat_dedup_$s.jsonl"
done
if [ "$dedup_raw" = 1 ]; then
	"$NEARDUP" dedup -q --index "$W/idx_nat" --format jsonl --score raw >"$W/nat_dedup_raw_default.jsonl"
	for s in 0.3 0.4 0.5 0.6 0.7 0.75 0.8 0.85 0.9 0.95; do
		"$NEARDUP" dedup -q --index "$W/idx_nat" --format jsonl --score raw --min-sim "$s" >"$W/nat_dedup_raw_$s.jsonl"
	done
fi
"$BV" dump "$W/idx_nat" "$W/nat"

# ---- findimagedupes (dedup mode), the way a user runs it, then its threshold sweep ----
# Speed: a fresh fingerprint database over the references (the same files as
# neardup's first ingest). Quality: every reference and copy, fingerprints kept
# in cache/quality/fid-<mode>.db between runs (they do not depend on neardup's model).
# (at most 3000 files, so that the paused training stays paused for minutes only;
# when the references are more, neardup's ingest is timed again on that subset)
head -n 3000 "$W/refs.txt" >"$W/fidset.txt"
timed fid sh -c 'findimagedupes -q -q -f "$1" -t 90% - <"$2" >/dev/null' fid "$W/fid_refs.db" "$W/fidset.txt"
if [ "$(wc -l <"$W/refs.txt")" -gt 3000 ]; then
	timed ingest_fidset xargs -a "$W/fidset.txt" "$NEARDUP" ingest -q -j 2 --index "$W/idx_fidset"
fi
cat "$W/refs.txt" "$W/queries.txt" >"$W/dedupset.txt"
for t in 80 85 90 95; do
	findimagedupes -q -q -f "cache/quality/fid-$mode.db" -t "$t%" - <"$W/dedupset.txt" >"$W/fid_$t.txt"
done
for t in 80 85 90 95; do
	findimagedupes -q -q -f cache/quality/fid-natural.db -t "$t%" - <"$W/natural.txt" >"$W/fid_nat_$t.txt"
done

# ---- pHash (timed inside evaluate.py) and the report ----
uptime >"$W/load_after"
$PY bench/quality/evaluate.py report "$W" --mode "$mode" --out "bench/results/quality$suffix"
echo "suite_quality: wrote bench/results/quality$suffix.md"
