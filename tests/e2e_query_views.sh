#!/bin/bash
# End-to-end tests of `neardup query --views` with the trained model
# (models/neardup.ndm): an index of the sample originals in data/, queried
# with an indexed file, a 90-degree-rotated copy and a screenshot-like copy
# (tests/data/views/, made by make_views.py there). Run by `make test` with
# the binary in $NEARDUP_BIN, from the repository root; prints PASS/FAIL per
# test (SKIP lines are not counted).
set -u
B=${NEARDUP_BIN:?NEARDUP_BIN must name the neardup binary}
ROOT=$(pwd)
DATA=$ROOT/data
V=$ROOT/tests/data/views
MODEL=$ROOT/models/neardup.ndm
unset NEARDUP_INDEX NEARDUP_MODEL
. "$ROOT/tests/lib_e2e.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/neardup-views.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1

# q ARGS...: query the index of originals with the trained model
q() { expect 0 "$B" query --model "$MODEL" --index db -k 5 "$@"; }
# jcheck FILTER WHAT: the JSONL in out satisfies the jq filter
jcheck() { jq -e -s "$1" out >/dev/null || fail "$2: $(head -c 800 out)"; }

if [ ! -f "$MODEL" ]; then
	echo "SKIP e2e_query_views (no models/neardup.ndm)"
	exit 0
fi
# the originals: every sample image that is not listed as a copy
mkdir orig
grep -v '^#' "$DATA/dups.tsv" | cut -f1 >copies
for f in "$DATA"/*.jpg "$DATA"/*.png; do
	grep -qxF "$(basename "$f")" copies || cp "$f" orig/
done
"$B" ingest -q --model "$MODEL" --index db orig || { echo "FAIL ingest"; exit 1; }

# (a) an indexed file finds itself first, through the identity view, with
# the same raw cosine as without views
test_indexed() {
	q --format jsonl orig/chelsea.jpg
	jcheck '.[0].results[0] | (.path | endswith("/chelsea.jpg")) and .raw_similarity >= 0.999
		and .view == "identity"' "indexed file, --views all (the default)"
	cp out all.jsonl
	q --views none --format jsonl orig/chelsea.jpg
	jq -e -s --slurpfile a all.jsonl '.[0].results[0].raw_similarity == $a[0].results[0].raw_similarity
		and .[0].results[0].similarity == $a[0].results[0].similarity' out >/dev/null ||
		fail "identity scores differ with and without views: $(head -c 300 out) / $(head -c 300 all.jsonl)"
}

# gains_over_none QUERY ORIGINAL SIM WHAT: with --views none, ORIGINAL scores
# at least 0.1 below SIM (its score with views), or is not among the results
gains_over_none() {
	q --views none --format jsonl "$1"
	local without=$(jq -r --arg o "/$2" '[.results[] | select(.path | endswith($o)) | .similarity]
		| (.[0] // -100)' out)
	awk -v a="$without" -v b="$3" -v m="${5:-0.1}" 'BEGIN { exit !(a + m < b) }' ||
		fail "$4: similarity $without without views, $3 with them"
}

# (b) a 90-degree-rotated copy: found first by a rotation view, with a
# higher score than the identity view alone gives it
test_rotated() {
	q --views all --format jsonl "$V/chelsea_rot90.jpg"
	jcheck '.[0].results[0] | (.path | endswith("/chelsea.jpg")) and .view == "rot270"
		and .raw_similarity >= 0.99' "rotated copy, --views all"
	local with=$(jq -r '.results[0].similarity' out)
	q --views rotations --format jsonl "$V/chelsea_rot90.jpg"
	jcheck '.[0].results[0] | (.path | endswith("/chelsea.jpg")) and .view == "rot270"' \
		"rotated copy, --views rotations"
	# (the pair score's dihedral hash term already scores the turned copy
	# high without views: a smaller gain)
	gains_over_none "$V/chelsea_rot90.jpg" chelsea.jpg "$with" "rotated copy" 0.02
}

# (c) a screenshot-like copy (the original small on a flat canvas): found
# first by a crop view
test_screenshot() {
	q --format jsonl "$V/coffee_screenshot.jpg"
	jcheck '.[0].results[0] | (.path | endswith("/coffee.jpg"))
		and (.view == "crop50" or .view == "crop75")' "screenshot copy, --views all"
	local with=$(jq -r '.results[0].similarity' out)
	q --views crops --format jsonl "$V/coffee_screenshot.jpg"
	jcheck '.[0].results[0] | (.path | endswith("/coffee.jpg"))
		and (.view | startswith("crop"))' "screenshot copy, --views crops"
	gains_over_none "$V/coffee_screenshot.jpg" coffee.jpg "$with" "screenshot copy"
}

# (d) --views none is the single-embedding query: no view field, results
# sorted as the index gives them, TSV still three columns; with views the
# merged list is sorted, one entry per image, at most k
test_none() {
	local files=(orig/*.jpg orig/*.png "$V"/*.jpg "$DATA"/hubble_crop_q70.jpg)
	q --views none --format jsonl "${files[@]}"
	jcheck 'length == '${#files[@]}' and all(.[]; all(.results[]; has("view") | not))' \
		"--views none has no view field"
	jcheck 'all(.[]; [.results[].similarity] | . == (sort | reverse))' "--views none order"
	q --views all --format jsonl "${files[@]}"
	jcheck 'all(.[]; (.results | length) <= 5 and ([.results[].id] | length == (unique | length))
		and ([.results[].similarity] | . == (sort | reverse))
		and all(.results[]; .view | IN("identity", "rot90", "rot180", "rot270", "crop75",
		"crop50")))' "--views all: merged lists"
	q --views none --format tsv "${files[@]}"
	awk -F'\t' 'NF != 3 { exit 1 }' out || fail "TSV not 3 columns: $(head -3 out)"
	q --views all --format tsv "${files[@]}"
	awk -F'\t' 'NF != 3 { exit 1 }' out || fail "TSV not 3 columns with views: $(head -3 out)"
	# --min-sim applies to the merged score
	q --views all --min-sim 0.8 --format jsonl "$V/chelsea_rot90.jpg"
	jcheck '.[0].results | length >= 1 and all(.[]; .similarity >= 0.8)' "--min-sim with views"
}

# (e) bad --views values are usage errors
test_bad_views() {
	for bad in foo "rotations,bar" "none,crops" "" "crops,"; do
		expect 2 "$B" query --model "$MODEL" --index db --views "$bad" orig/chelsea.jpg
		grep -q "invalid word .* in --views" err || fail "--views '$bad': $(head -c 300 err)"
		[ ! -s out ] || fail "--views '$bad' printed results"
	done
}

run test_indexed
run test_rotated
run test_screenshot
run test_none
run test_bad_views
