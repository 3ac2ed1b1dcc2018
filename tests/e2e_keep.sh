#!/bin/bash
# End-to-end tests of dedup's keep rules with the trained model
# (models/neardup.ndm): a family made here from data/chelsea.jpg with
# libjpeg-turbo's tools (a greyscale copy saved at quality 100, copies in
# grey frames, a half-size copy, a quality-20 copy), every file with the
# same mtime so that the pictures alone decide. The default rule "original"
# must keep the original; "resolution" keeps a framed copy (more pixels).
# Run by `make test` with the binary in $NEARDUP_BIN, from the repository
# root; prints PASS/FAIL per test.
set -u
B=${NEARDUP_BIN:?NEARDUP_BIN must name the neardup binary}
ROOT=$(pwd)
DATA=$ROOT/data
MODEL=$ROOT/models/neardup.ndm
unset NEARDUP_INDEX NEARDUP_MODEL
. "$ROOT/tests/lib_e2e.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/neardup-keep.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1

if [ ! -f "$MODEL" ]; then
	echo "SKIP e2e_keep (no models/neardup.ndm)"
	exit 0
fi
for t in djpeg cjpeg jpegtran; do
	command -v $t >/dev/null || { echo "FAIL e2e_keep ($t missing: libjpeg-turbo-progs)"; exit 1; }
done
mkdir fam
cp "$DATA/chelsea.jpg" fam/orig.jpg
djpeg -grayscale fam/orig.jpg | cjpeg -quality 100 >fam/grey.jpg
djpeg fam/orig.jpg | cjpeg -quality 20 >fam/q20.jpg 2>/dev/null
djpeg -scale 1/2 fam/orig.jpg | cjpeg -quality 95 >fam/half.jpg
# a crop region larger than the image: jpegtran pads it with grey blocks
jpegtran -crop 467x316+8+8 fam/orig.jpg >fam/framed8.jpg
jpegtran -crop 483x332+16+16 fam/orig.jpg >fam/framed16.jpg
touch -d '2024-01-02 03:04:05' fam/*
"$B" ingest -q --model "$MODEL" --index db fam || { echo "FAIL ingest"; exit 1; }

# the kept file of the group holding orig.jpg, under dedup's default rule
# or the one given
# (at --min-sim 0.7: the 16-pixel frame scores below the default 0.9 of the
# pair score; the rule, not the threshold, is under test here)
kept() { expect 0 "$B" dedup --model "$MODEL" --index db --min-sim 0.7 "$@" --format jsonl; jq -r '.keep' out; }

test_default_keeps_original() {
	local k
	k=$(kept)
	[ "$k" = fam/orig.jpg ] || fail "default rule kept '$k': $(cat out)"
	# every copy is in the original's group
	jq -e -s 'length == 1 and (.[0].members | length) == 6' out >/dev/null ||
		fail "one group of six: $(cat out)"
	k=$(kept --keep original)
	[ "$k" = fam/orig.jpg ] || fail "--keep original kept '$k'"
}

# the old default keeps a copy: more pixels (the frame)
test_resolution_keeps_copy() {
	local k
	k=$(kept --keep resolution)
	[ "$k" = fam/framed16.jpg ] || fail "--keep resolution kept '$k': $(cat out)"
}

# each copy alone beside the original: the original is kept
test_pairs() {
	local c k
	for c in grey q20 half framed8 framed16; do
		rm -rf pair pdb
		mkdir pair
		cp -p fam/orig.jpg fam/$c.jpg pair/
		"$B" ingest -q --model "$MODEL" --index pdb pair || { fail "ingest pair $c"; continue; }
		expect 0 "$B" dedup --model "$MODEL" --index pdb --min-sim 0.5 --format jsonl
		k=$(jq -r '.keep' out)
		[ "$k" = pair/orig.jpg ] || fail "original + $c: kept '$k'"
	done
}

# on equal pictures (a byte-identical copy) the older file is kept
test_older_file() {
	rm -rf two tdb
	mkdir two
	cp fam/orig.jpg two/a.jpg
	cp fam/orig.jpg two/b.jpg
	touch -d '2020-01-01' two/b.jpg
	touch -d '2021-01-01' two/a.jpg
	"$B" ingest -q --model "$MODEL" --index tdb two || { fail "ingest"; return; }
	expect 0 "$B" dedup --model "$MODEL" --index tdb --format jsonl
	[ "$(jq -r '.keep' out)" = two/b.jpg ] || fail "older file not kept: $(cat out)"
	[ "$(jq -r '.reason' out)" = "older file" ] || fail "reason: $(cat out)"
	expect 0 "$B" dedup --model "$MODEL" --index tdb --format html -o t.html
	grep -q '"reason":"older file' t.html || fail "no reason in the HTML report"
}

# the group says why its file is kept; the kept file is the first member,
# and every member is within the threshold of it
test_reason() {
	local r
	expect 0 "$B" dedup --model "$MODEL" --index db --min-sim 0.6 --format jsonl
	jq -e -s 'length >= 1 and all(.[]; (.reason | type == "string" and length > 0)
		and .members[0].path == .keep and .members[0].similarity == 1
		and all(.members[]; .similarity >= 0.6))' out >/dev/null || fail "$(cat out)"
	expect 0 "$B" dedup --model "$MODEL" --index db --min-sim 0.7 --keep resolution --format jsonl
	r=$(jq -r 'select(.keep == "fam/framed16.jpg") | .reason' out)
	[ "$r" = "more pixels" ] || fail "reason for resolution: '$r'"
}

test_bad_rule() {
	expect 2 "$B" dedup --model "$MODEL" --index db --keep biggest
	grep -q "invalid value 'biggest' for --keep (original, resolution" err || fail "$(cat err)"
}

run test_default_keeps_original
run test_resolution_keeps_copy
run test_pairs
run test_older_file
run test_reason
run test_bad_rule
