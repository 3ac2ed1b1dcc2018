#!/bin/bash
# End-to-end tests of the pair score (neardup/score.h) with the trained
# model (models/neardup.ndm), whose weights are compiled in: query and dedup
# give one pair one score, every score lies in [0, 1], a byte-identical file
# scores 1, and the raw cosine stays in raw_similarity. Run by `make test`
# with the binary in $NEARDUP_BIN, from the repository root.
set -u
B=${NEARDUP_BIN:?NEARDUP_BIN must name the neardup binary}
ROOT=$(pwd)
DATA=$ROOT/data
MODEL=$ROOT/models/neardup.ndm
unset NEARDUP_INDEX NEARDUP_MODEL
. "$ROOT/tests/lib_e2e.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/neardup-score.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1

if [ ! -f "$MODEL" ]; then
	echo "SKIP e2e_score (no models/neardup.ndm)"
	exit 0
fi
# every sample image, originals and copies, and one byte-identical copy
mkdir -p c/same
cp "$DATA"/*.jpg "$DATA"/*.png c/
cp "$DATA/chelsea.jpg" c/same/chelsea.jpg
"$B" ingest -q --model "$MODEL" --index db c || { echo "FAIL ingest"; exit 1; }

# dedup's pairs (kept image, member, similarity) at a low threshold, then
# the kept image queried as it is (--views none; other views can only score
# higher): every member the query finds has dedup's score (the same function
# of the same stored data; the query's vector is its own, computed again, so
# allow float16 rounding)
test_same_pair() {
	expect 0 "$B" dedup --model "$MODEL" --index db --min-sim 0.3 --format jsonl
	jq -r '.keep as $k | .members[1:][] | [$k, .path, .similarity] | @tsv' out >pairs
	[ "$(wc -l <pairs)" -ge 8 ] || fail "too few dedup pairs: $(cat out)"
	local n=0
	while IFS=$'\t' read -r keep member sim; do
		expect 0 "$B" query --model "$MODEL" --index db -k 30 --views none --format jsonl "$keep"
		q=$(jq -r --arg m "$member" '.results[] | select(.path == $m) | .similarity' out)
		[ -n "$q" ] || continue
		n=$((n + 1))
		awk -v a="$sim" -v b="$q" 'BEGIN { d = a - b; exit !(d <= 0.001 && d >= -0.001) }' ||
			fail "$keep ~ $member: dedup $sim, query $q"
	done <pairs
	[ "$n" -ge 8 ] || fail "only $n pairs compared"
}

# scores are probabilities; the byte-identical copy scores 1 in both
# commands; raw_similarity is the cosine (it differs from the score)
test_range_and_exact() {
	expect 0 "$B" query --model "$MODEL" --index db -k 30 --format jsonl c/chelsea.jpg c/coffee.jpg
	jq -e -s 'all(.[].results[]; .similarity >= 0 and .similarity <= 1)' out >/dev/null ||
		fail "query score outside [0, 1]: $(head -c 600 out)"
	jq -e -s '[.[0].results[] | select(.path | endswith("same/chelsea.jpg"))][0].similarity == 1' out >/dev/null ||
		fail "byte-identical copy in query: $(head -c 600 out)"
	jq -e -s '[.[1].results[] | select(.path | endswith("coffee_border.jpg"))][0] | .similarity != .raw_similarity' \
		out >/dev/null || fail "raw_similarity: $(head -c 600 out)"
	# (members are scored against the kept image: keep c/chelsea.jpg)
	expect 0 "$B" dedup --model "$MODEL" --index db --min-sim 0 --keep first-path --format jsonl
	jq -e -s 'all(.[].members[]; .similarity >= 0 and .similarity <= 1)' out >/dev/null ||
		fail "dedup score outside [0, 1]: $(head -c 600 out)"
	jq -e -s '[.[].members[] | select(.path | endswith("same/chelsea.jpg"))][0].similarity == 1' out >/dev/null ||
		fail "byte-identical copy in dedup: $(head -c 600 out)"
}

run test_same_pair
run test_range_and_exact
