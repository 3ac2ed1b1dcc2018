#!/bin/bash
# End-to-end tests of the neardup command line on real files: the bundled
# sample corpus in data/, bad inputs made here, actions in a temporary
# directory. Run by `make test` with the binary in $NEARDUP_BIN, from the
# repository root; prints PASS/FAIL per test (SKIP lines are not counted).
#
# The model is tests/data/cli/tiny.ndm (random weights, made by
# tests/data/cli/make_model.py), so these tests do not depend on training.
# It tells mild edits (rescaled, recompressed, EXIF-rotated, cropped 75%)
# from other images, at --min-sim 0.975; harder edits are checked against
# the trained models/neardup.ndm when it exists (test_query_trained).
set -u
B=${NEARDUP_BIN:?NEARDUP_BIN must name the neardup binary}
ROOT=$(pwd)
DATA=$ROOT/data
export NEARDUP_MODEL=$ROOT/tests/data/cli/tiny.ndm
unset NEARDUP_INDEX
. "$ROOT/tests/lib_e2e.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/neardup-e2e.XXXXXX")
trap 'chmod -R u+rwX "$T" 2>/dev/null; rm -rf "$T"' EXIT
cd "$T" || exit 1
SIM=0.975 # threshold that separates the tiny model's mild edits from the rest
# ... on the plain cosine: the tiny model's calibration (a background set of
# synthetic colour fields) moves real photos' scores far from it, so the
# tests of the grouping mechanics use --score raw; test_calibrated checks the
# calibrated similarity itself
RAW="--score raw"

has() { grep -qF -- "$1" "$2" || fail "'$1' not in $2: $(head -c 600 "$2")"; }
hasnt() { ! grep -qF -- "$1" "$2" || fail "'$1' unexpectedly in $2"; }
stat_images() { "$B" stats --index "$1" | awk -F'\t' '$1 == "images" { print $2 }'; }
# strip the corpus prefix from a report
rel() { sed "s|$1/||g" "$2"; }

# The sample corpus, copied so that tests may change it; one byte-identical
# copy under a name with a space; one non-image. Same mtime everywhere, so
# the keep rule's tie-breaks (then the path) decide.
C=$T/corpus
mkdir -p "$C/sub"
cp "$DATA"/*.jpg "$DATA"/*.png "$DATA/README.md" "$C/"
cp "$DATA/chelsea.jpg" "$C/sub/chelsea copy.jpg"
find "$C" -type f -exec touch -d '2024-01-02 03:04:05' {} +
NIMG=$(ls "$DATA"/*.jpg "$DATA"/*.png | wc -l)

test_basics() {
	expect 0 "$B" --version
	has "neardup " out
	expect 0 "$B" --help
	has "ingest" out
	expect 2 "$B"
	expect 2 "$B" frobnicate
	has "unknown command 'frobnicate'" err
	for c in ingest query dedup stats check remove; do
		expect 0 "$B" $c --help
		has "usage: neardup $c" out
	done
	expect 0 "$B" inspect "$DATA/chelsea.jpg" # the developer command is wired
	has "451x300" out
	expect 2 "$B" ingest --bogus x
	expect 2 "$B" ingest
	expect 2 "$B" query
	expect 2 "$B" query -k 0 x.jpg
	expect 2 "$B" dedup --min-sim 2
	expect 2 "$B" dedup --format xml
	expect 2 "$B" dedup --action move
	has "needs --to" err
	expect 2 "$B" dedup --yes
	expect 2 "$B" query --index "$T/nothing" "$DATA/chelsea.jpg"
	has "no index in" err
	expect 2 "$B" stats --index "$T/nothing"
	expect 2 "$B" remove --index "$T/nothing" x.jpg
	[ ! -e "$T/nothing" ] || fail "remove created an index"
	expect 2 "$B" ingest --model "$T/no-such.ndm" --index "$T/x" "$DATA"
	has "cannot load model" err
	[ ! -e "$T/x" ] || fail "a failed ingest created an index"
}

test_ingest() {
	expect 0 "$B" ingest --index db -j 2 "$C"
	has "$((NIMG + 2)) files: $NIMG embedded, 1 exact duplicates, 0 unchanged, 0 failed, 1 ignored" err
	[ "$(stat_images db)" = $((NIMG + 1)) ] || fail "stats: $(stat_images db) images"
	expect 0 "$B" check --index db
	has "ok: $((NIMG + 1)) images" out
	has "perceptual-hash postings: current" out
	# default index ./neardup.db and $NEARDUP_INDEX
	expect 0 "$B" ingest -q "$C/chelsea.jpg"
	[ -s err ] && fail "-q printed: $(cat err)"
	[ "$(stat_images neardup.db)" = 1 ] || fail "default index"
	NEARDUP_INDEX=db expect 0 "$B" stats
	has "images	$((NIMG + 1))" out
	# one writer at a time: a held lock fails at once, readers go on
	exec 9>>db/neardup.lock
	flock -x 9
	expect 2 timeout 20 "$B" ingest --index db "$C"
	has "cannot open index 'db'" err
	expect 0 "$B" query --index db -k 1 "$C/coins.png"
	exec 9>&-
}

test_reingest() {
	expect 0 "$B" ingest --index db "$C"
	has "0 embedded, 0 exact duplicates, $((NIMG + 1)) unchanged" err
	# new mtime, same bytes: read and hashed again, but not embedded
	touch -d '2024-02-03 04:05:06' "$C/coins.png"
	expect 0 "$B" ingest --index db "$C"
	has "0 embedded, 1 exact duplicates, $NIMG unchanged" err
	touch -d '2024-01-02 03:04:05' "$C/coins.png"
	expect 0 "$B" ingest --index db "$C"
	has "0 embedded, 1 exact duplicates, $NIMG unchanged" err
	[ "$(stat_images db)" = $((NIMG + 1)) ] || fail "stats after re-ingest: $(stat_images db)"
}

test_query() {
	# each mild copy finds its original first (after itself: it is indexed)
	while read -r copy orig; do
		expect 0 "$B" query --index db -k 4 "$C/$copy"
		first=$(rel "$C" out | awk -F'\t' -v q="$copy" '$2 != q { print $2; exit }')
		case "$first" in
		"$orig" | "sub/chelsea copy.jpg") ;;
		*) fail "$copy: first result '$first', want '$orig'" ;;
		esac
	done <<-EOF
		astronaut_half.png astronaut.jpg
		chelsea_q25.jpg chelsea.jpg
		rocket_exif6.jpg rocket.jpg
		hubble_crop_q70.jpg hubble.jpg
	EOF
	# stdin, JSONL, similarity of an identical image
	printf '%s\n' "$DATA/rocket.jpg" "$DATA/coins.png" | "$B" query --index db --format jsonl -k 2 - >out 2>err ||
		fail "query - failed: $(cat err)"
	[ "$(wc -l <out)" = 2 ] || fail "want 2 JSONL lines: $(cat out)"
	jq -e -s 'length == 2 and (.[0].results | length) == 2 and .[0].query == "'"$DATA"'/rocket.jpg"
		and .[0].results[0].raw_similarity > 0.999 and (.[1].results[0].id | type) == "number"' out >/dev/null ||
		fail "JSONL: $(cat out)"
	expect 0 "$B" query --index db $RAW --min-sim 0.999 "$DATA/coins.png"
	[ "$(wc -l <out)" = 1 ] || fail "--min-sim 0.999 left $(wc -l <out) results"
	# a bad query image: named, exit 1, the others still answered
	head -c 2000 "$DATA/chelsea.jpg" >trunc.jpg
	expect 1 "$B" query --index db trunc.jpg "$DATA/coins.png"
	has "neardup: cannot decode 'trunc.jpg': " err
	has "coins.png" out
	# another model: refused
	expect 2 "$B" query --index db --model "$ROOT/tests/data/cnn/testnet_b.ndm" "$DATA/coins.png"
	has "another model" err
	expect 2 "$B" ingest --index db --model "$ROOT/tests/data/cnn/testnet_b.ndm" "$DATA/coins.png"
}

test_query_trained() {
	if [ ! -f "$ROOT/models/neardup.ndm" ]; then
		echo "SKIP test_query_trained (no models/neardup.ndm)"
		t_skip=1
		return
	fi
	# The collection holds the originals only (every sample image that is not
	# listed as a copy); each copy must find its own original first.
	mkdir -p orig
	grep -v '^#' "$DATA/dups.tsv" | cut -f1 >copies
	for f in "$DATA"/*.jpg "$DATA"/*.png; do
		grep -qxF "$(basename "$f")" copies || cp "$f" orig/
	done
	expect 0 "$B" ingest --model "$ROOT/models/neardup.ndm" --index tdb orig
	grep -v '^#' "$DATA/dups.tsv" >pairs
	# a redirect, not a pipe: fail must run in this shell to count
	while IFS=$'\t' read -r copy orig _; do
		"$B" query --model "$ROOT/models/neardup.ndm" --index tdb -k 3 "$DATA/$copy" >out 2>err
		first=$(awk -F'\t' 'NR == 1 { n = split($2, p, "/"); print p[n] }' out)
		[ "$first" = "$orig" ] || fail "trained model: $copy: first result '$first', want '$orig'"
	done <pairs
}

test_dedup() {
	expect 0 "$B" dedup --index db $RAW --min-sim $SIM
	rel "$C" out >groups
	cat >want <<-EOF
		astronaut.jpg	astronaut_half.png
		chelsea.jpg	sub/chelsea copy.jpg	chelsea_q25.jpg
		hubble.jpg	hubble_crop_q70.jpg
		rocket.jpg	rocket_exif6.jpg
	EOF
	diff want groups >/dev/null || fail "groups: $(diff want groups)"
	has "4 groups, 5 duplicates" err
	# JSONL: the contract's fields
	expect 0 "$B" dedup --index db $RAW --min-sim $SIM --format jsonl
	jq -e -s 'length == 4 and all(.[]; (.group | type) == "number" and .keep == .members[0].path
		and .members[0].exact == true and .members[0].similarity == 1
		and all(.members[]; .similarity >= '$SIM'))' out >/dev/null || fail "JSONL: $(cat out)"
	jq -e -s '.[1].members[1].exact == true and .[1].members[2].exact == false' out >/dev/null ||
		fail "exact flags: $(sed -n 2p out)"
	# keep rules
	expect 0 "$B" dedup --index db $RAW --min-sim $SIM --keep smallest
	rel "$C" out | grep -q "^chelsea_q25.jpg	" || fail "--keep smallest: $(cat out)"
	touch -d '2025-01-01' "$C/astronaut_half.png"
	"$B" ingest -q --index db "$C"
	expect 0 "$B" dedup --index db $RAW --min-sim $SIM --keep newest
	rel "$C" out | grep -q "^astronaut_half.png	astronaut.jpg$" || fail "--keep newest: $(cat out)"
	expect 0 "$B" dedup --index db $RAW --min-sim $SIM --keep oldest
	rel "$C" out | grep -q "^astronaut.jpg	astronaut_half.png$" || fail "--keep oldest: $(cat out)"
	expect 0 "$B" dedup --index db $RAW --min-sim $SIM --keep first-path
	rel "$C" out | grep -q "^astronaut.jpg	" || fail "--keep first-path: $(cat out)"
	# a protected file is kept whatever the rule
	expect 0 "$B" dedup --index db $RAW --min-sim $SIM --protect "$C/sub"
	rel "$C" out | grep -q "^sub/chelsea copy.jpg	" || fail "--protect: $(cat out)"
}

# Calibrated similarity. JSONL has similarity and raw_similarity;
# --score raw gives the plain cosine as similarity; the calibrated score obeys
# s(a,b) - cos(a,b) = ((s(a,a) - cos(a,a)) + (s(b,b) - cos(b,b))) / 2, whatever
# beta and the offset (each side is offset - beta * mean statistic); dedup
# groups on the calibrated score.
test_calibrated() {
	local a="$C/chelsea.jpg" b="$C/chelsea_q25.jpg" t=0.85
	"$B" stats --index db | grep -qx "calibrated	yes" || fail "stats does not say the index is calibrated"
	# --views none: with views, raw_similarity is the cosine of the view that
	# won on the active score, which may not be the view with the best cosine
	expect 0 "$B" query --index db --views none --format jsonl -k 40 "$a" "$b"
	mv out cal.jsonl
	expect 0 "$B" query --index db --views none $RAW --format jsonl -k 40 "$a" "$b"
	mv out raw.jsonl
	jq -e -s 'length == 2 and all(.[].results[]; (.similarity | type) == "number"
		and (.raw_similarity | type) == "number")' cal.jsonl >/dev/null || fail "JSONL fields: $(cat cal.jsonl)"
	jq -e -s 'all(.[].results[]; .similarity == .raw_similarity)' raw.jsonl >/dev/null ||
		fail "--score raw: similarity is not the cosine: $(cat raw.jsonl)"
	jq -e -s '[.[].results[] | .similarity - .raw_similarity | fabs] | max > 0.01' cal.jsonl >/dev/null ||
		fail "calibrated similarity equals the cosine: $(cat cal.jsonl)"
	# the cosines agree between the two runs
	jq -r '.query as $q | .results[] | [$q, .path, .raw_similarity] | @tsv' cal.jsonl | sort >c1
	jq -r '.query as $q | .results[] | [$q, .path, .similarity] | @tsv' raw.jsonl | sort >r1
	diff c1 r1 >/dev/null || fail "raw_similarity differs from --score raw: $(diff c1 r1 | head -5)"
	# the identity above (the stored vectors are float16: tolerance 1e-3)
	jq -r -s --arg a "$a" --arg b "$b" '
		def s(q; p): (.[] | select(.query == q) | .results[] | select(.path == p));
		[s($a; $a).similarity, s($a; $a).raw_similarity, s($b; $b).similarity, s($b; $b).raw_similarity,
		 s($a; $b).similarity, s($a; $b).raw_similarity] | @tsv' cal.jsonl >v
	awk -F'\t' 'NF == 6 { d = ($5 - $6) - (($1 - $2) + ($3 - $4)) / 2; exit !(d < 1e-3 && d > -1e-3) }
		NF != 6 { exit 1 }' v || fail "calibrated scores inconsistent: $(cat v)"
	# ranked by the calibrated score, --min-sim on it
	jq -e -s 'all(.[]; [.results[].similarity] as $s | $s == ($s | sort | reverse))' cal.jsonl >/dev/null ||
		fail "not ranked by similarity"
	expect 0 "$B" query --index db --format jsonl --min-sim $t -k 40 "$a"
	n_want=$(head -1 cal.jsonl | jq '[.results[] | select(.similarity >= '$t')] | length')
	jq -e 'all(.results[]; .similarity >= '$t') and (.results | length) == '"$n_want"' and '"$n_want"' > 1' \
		out >/dev/null || fail "--min-sim $t on the calibrated score ($n_want wanted): $(cat out)"
	# dedup: members within t of the kept image on the calibrated score,
	# and not the same groups as the cosine at the same threshold
	expect 0 "$B" dedup --index db --min-sim $t --format jsonl
	jq -e -s 'length > 0 and all(.[]; all(.members[1:][]; .exact or .similarity >= '$t')
		and all(.members[]; (.raw_similarity | type) == "number"))' out >/dev/null ||
		fail "dedup on the calibrated score: $(cat out)"
	jq -r '.members | map(.path) | @tsv' out >g_cal
	expect 0 "$B" dedup --index db $RAW --min-sim $t --format jsonl
	jq -e -s 'all(.[]; all(.members[]; .similarity == .raw_similarity))' out >/dev/null ||
		fail "dedup --score raw: $(cat out)"
	jq -r '.members | map(.path) | @tsv' out >g_raw
	cmp -s g_cal g_raw && fail "dedup groups the same with and without calibration at $t"
	expect 0 "$B" dedup --index db --min-sim $t --format html -o cal.html
	has '"score":"normalized"' cal.html
	expect 2 "$B" query --index db --score cosine "$a"
	has "invalid value 'cosine' for --score" err
}

# No chaining: at a low threshold every member must be within the threshold
# of its group's kept image, checked with an independent query, and no image
# may be in two groups.
test_dedup_no_chaining() {
	local lo=0.90
	expect 0 "$B" dedup --index db --min-sim $lo --format jsonl
	[ -s out ] || fail "no groups at $lo"
	jq -r '.members[].path' out | sort | uniq -d >dupl
	[ -s dupl ] && fail "images in two groups: $(cat dupl)"
	jq -r '.keep as $k | .members[1:][] | [$k, .path] | @tsv' out >pairs
	while IFS=$'\t' read -r keep member; do
		s=$("$B" query --index db -k 30 "$keep" | awk -F'\t' -v m="$member" '$2 == m { print $3 }')
		awk -v s="${s:-0}" -v lo=$lo 'BEGIN { exit !(s + 0.002 >= lo) }' ||
			fail "member '$member' is at ${s:-?} < $lo of its kept image '$keep'"
	done <pairs
}

test_bad_inputs() {
	local bad=$T/bad
	mkdir -p "$bad/deeper"
	head -c 3000 "$DATA/chelsea.jpg" >"$bad/trunc.jpg"
	{ head -c 700 "$DATA/coffee.jpg"; yes 'not jpeg data' | head -c 6000; } >"$bad/corrupt.jpg"
	: >"$bad/empty.jpg"
	: >"$bad/empty"
	echo "just text" >"$bad/notes.txt"
	mkfifo "$bad/pipe.jpg"
	ln -s .. "$bad/deeper/loop"
	ln -s nowhere.jpg "$bad/dangling.jpg"
	cp "$DATA/chelsea.jpg" "$bad/unreadable.jpg"
	chmod 000 "$bad/unreadable.jpg"
	cp "$DATA/coins.png" "$bad/sp ace.png"
	cp "$DATA/rocket.jpg" "$bad/new"$'\n'"line.jpg"
	cp "$DATA/coffee.jpg" "$bad/caf"$'\xe9'".jpg"
	cp "$DATA/brick.jpg" "$bad/deeper/tab"$'\t'"quote\"<b>.jpg"
	mkfifo "$T/named-fifo"
	ln -s "$T/nowhere" "$T/named-dangling"
	# without root's override, an unreadable file is really unreadable
	local wrap=""
	if [ "$(id -u)" = 0 ] && setpriv --bounding-set -dac_override,-dac_read_search true 2>/dev/null; then
		wrap="setpriv --bounding-set -dac_override,-dac_read_search"
	fi
	expect 1 timeout 60 $wrap "$B" ingest --index bdb "$bad" "$DATA/README.md" "$T/named-fifo" \
		"$T/named-dangling" "$T/missing.jpg"
	has "neardup: cannot decode '$bad/trunc.jpg': " err
	has "neardup: cannot decode '$bad/corrupt.jpg': " err
	has "neardup: cannot decode '$bad/empty.jpg': empty file" err
	has "neardup: cannot decode '$DATA/README.md': not a supported image format" err
	has "neardup: cannot read '$T/named-fifo': not a regular file or directory" err
	has "neardup: cannot read '$T/named-dangling': dangling symbolic link" err
	has "neardup: cannot read '$T/missing.jpg': No such file or directory" err
	if [ -n "$wrap" ] || [ "$(id -u)" != 0 ]; then
		has "neardup: cannot read '$bad/unreadable.jpg': Permission denied" err
		nfail=8
		nimg=4
	else
		echo "  (running as root without setpriv: unreadable file not tested)"
		nfail=7
		nimg=5
	fi
	hasnt "notes.txt" err
	hasnt "pipe.jpg" err
	hasnt "loop" err
	hasnt "'$bad/empty'" err
	has "$nfail failed" err
	[ "$(stat_images bdb)" = $nimg ] || fail "bad: $(stat_images bdb) images indexed, want $nimg"
	expect 0 "$B" check --index bdb
	# names with newlines, tabs, quotes, non-UTF-8 bytes: valid JSONL, TSV, HTML
	expect 0 "$B" query --index bdb --format jsonl -k 5 "$bad/new"$'\n'"line.jpg" "$bad/caf"$'\xe9'".jpg"
	jq -e -s 'length == 2' out >/dev/null || fail "invalid JSONL: $(cat out)"
	has '"query": "'"$bad"'/new\nline.jpg"' out
	has '/caf\udce9.jpg"' out
	has '/deeper/tab\tquote\"<b>.jpg"' out
	expect 0 "$B" query --index bdb -k 5 "$bad/new"$'\n'"line.jpg"
	[ "$(wc -l <out)" -le 5 ] && has "new\\nline.jpg	" out
	expect 0 "$B" dedup --index bdb --min-sim -1 --format jsonl
	[ ! -s out ] || jq -e -s 'length >= 0' out >/dev/null || fail "dedup JSONL invalid: $(cat out)"
	expect 0 "$B" dedup --index bdb --min-sim -1 --format html -o bad.html
	xmllint --noout bad.html 2>xerr || fail "HTML with odd names not well-formed: $(head -c 300 xerr)"
	chmod 644 "$bad/unreadable.jpg"
}

test_remove() {
	cp -r "$C" rc
	expect 0 "$B" ingest --index rdb rc
	local n
	n=$(stat_images rdb)
	expect 0 "$B" remove --index rdb rc/brick.jpg
	has "removed 1 images" err
	[ "$(stat_images rdb)" = $((n - 1)) ] || fail "after remove: $(stat_images rdb)"
	expect 0 "$B" remove --index rdb rc/sub/
	[ "$(stat_images rdb)" = $((n - 2)) ] || fail "after removing a directory: $(stat_images rdb)"
	expect 1 "$B" remove --index rdb rc/nothing.jpg
	has "cannot remove 'rc/nothing.jpg': not in the index" err
	rm rc/coins.png
	expect 0 "$B" remove --index rdb --missing
	[ "$(stat_images rdb)" = $((n - 3)) ] || fail "after --missing: $(stat_images rdb)"
	expect 0 "$B" check --index rdb
	expect 0 "$B" ingest --index rdb rc
	has "1 embedded, 1 exact duplicates" err
	[ "$(stat_images rdb)" = $((n - 1)) ] || fail "after re-ingest: $(stat_images rdb)"
}

test_html() {
	expect 0 "$B" dedup --index db $RAW --min-sim $SIM --format html --output report.html
	[ -s out ] && fail "the HTML went to stdout too"
	xmllint --noout report.html 2>xerr || fail "report.html not well-formed: $(head -c 300 xerr)"
	head -c 15 report.html | grep -q '<!DOCTYPE html>' || fail "no doctype"
	# the groups are JSON in the page (the browser renders them: make test-html)
	[ "$(grep -o '{"group":' report.html | wc -l)" = 4 ] || fail "want 4 groups"
	[ "$(grep -o 'data:image/jpeg;base64,' report.html | wc -l)" = 9 ] || fail "want 9 thumbnails"
	[ "$(grep -o '"reason":"' report.html | wc -l)" = 4 ] || fail "want 4 kept images with a reason"
	# the first thumbnail is a JPEG
	grep -o 'base64,[A-Za-z0-9+/=]*' report.html | head -n 1 | cut -d, -f2 | base64 -d >thumb.jpg
	[ "$(head -c 3 thumb.jpg | od -An -tx1 | tr -d ' ')" = ffd8ff ] || fail "thumbnail is not a JPEG"
}

test_actions() {
	mkdir -p act/ref
	cp "$DATA/chelsea.jpg" "$DATA/chelsea_q25.jpg" "$DATA/rocket.jpg" "$DATA/rocket_exif6.jpg" \
		"$DATA/hubble.jpg" "$DATA/coins.png" act/
	cp "$DATA/hubble_crop_q70.jpg" act/ref/
	expect 0 "$B" ingest --index adb act
	local before
	before=$(find act -type f -exec md5sum {} + | sort)
	# dry runs change nothing
	for a in delete "hardlink --hardlink-near"; do
		expect 0 "$B" dedup --index adb $RAW --min-sim $SIM --protect act/ref --action $a
		has "would ${a%% *}	act/chelsea_q25.jpg" out
	done
	has "would hardlink	act/chelsea_q25.jpg	act/chelsea.jpg" out
	# the protected file is kept, the bigger image is the member
	has "would hardlink	act/hubble.jpg	act/ref/hubble_crop_q70.jpg" out
	hasnt "would hardlink	act/ref" out
	expect 0 "$B" dedup --index adb $RAW --min-sim $SIM --action move --to moved
	has "would move	act/rocket_exif6.jpg	moved/act/rocket_exif6.jpg" out
	[ "$before" = "$(find act -type f -exec md5sum {} + | sort)" ] || fail "a dry run changed files"
	[ ! -e moved ] || fail "a dry run created the --to directory"
	# hardlink (near-duplicates, same format)
	expect 0 "$B" dedup --index adb $RAW --min-sim $SIM --protect act/ref --action hardlink --hardlink-near --yes
	has "hardlinked	act/chelsea_q25.jpg	act/chelsea.jpg" out
	has "hardlinked	act/hubble.jpg	act/ref/hubble_crop_q70.jpg" out
	[ "$(stat -c %i act/chelsea_q25.jpg)" = "$(stat -c %i act/chelsea.jpg)" ] || fail "not hard-linked"
	[ "$(stat -c %i act/ref/hubble_crop_q70.jpg)" = "$(stat -c %i act/hubble.jpg)" ] ||
		fail "member not linked to the protected kept file"
	cmp -s "$DATA/hubble_crop_q70.jpg" act/ref/hubble_crop_q70.jpg || fail "protected file changed"
	expect 0 "$B" check --index adb
	# the changed files left the index; a hard link is its kept file under
	# another name, so ingest does not bring them back (one file, one image) ...
	expect 0 "$B" ingest --index adb act
	has "0 embedded, 0 exact duplicates, 4 unchanged, 3 already indexed under another name" err
	# ... while separate copies of the same bytes are exact duplicates
	for f in chelsea_q25.jpg hubble.jpg rocket_exif6.jpg; do cp act/$f tmp.jpg && mv tmp.jpg act/$f; done
	expect 0 "$B" ingest --index adb act
	has "0 embedded, 3 exact duplicates" err
	# delete: a file changed since it was indexed is left alone, protected
	# files are never deleted
	cp act/rocket_exif6.jpg tmp.jpg # (a copy of rocket.jpg now)
	echo >>tmp.jpg
	mv tmp.jpg act/rocket_exif6.jpg
	expect 1 "$B" dedup --index adb $RAW --min-sim $SIM --protect act/ref --action delete --yes
	has "neardup: cannot delete 'act/rocket_exif6.jpg': is another file than the one indexed" err
	[ -f act/rocket_exif6.jpg ] || fail "a changed file was deleted"
	has "deleted	act/hubble.jpg" out
	has "deleted	act/chelsea_q25.jpg" out
	[ ! -e act/hubble.jpg ] && [ ! -e act/chelsea_q25.jpg ] && [ -f act/ref/hubble_crop_q70.jpg ] &&
		[ -f act/chelsea.jpg ] || fail "delete / protect"
	expect 0 "$B" check --index adb
	# move: refuses to overwrite, moves the rest
	cp act/coins.png "act/coins copy.png"
	touch -d '2030-01-01' "act/coins copy.png"
	expect 0 "$B" ingest --index adb act
	has "1 embedded, 1 exact duplicates, 4 unchanged" err
	mkdir -p moved/act
	echo precious >moved/act/rocket_exif6.jpg
	local src
	src=$(md5sum <act/rocket_exif6.jpg)
	expect 1 "$B" dedup --index adb $RAW --min-sim $SIM --keep oldest --action move --to moved --yes
	has "neardup: cannot move 'act/rocket_exif6.jpg': 'moved/act/rocket_exif6.jpg': destination exists" err
	[ "$(cat moved/act/rocket_exif6.jpg)" = precious ] || fail "move overwrote a file"
	[ "$(md5sum <act/rocket_exif6.jpg)" = "$src" ] || fail "a refused move changed its source"
	has "moved	act/coins copy.png	moved/act/coins copy.png" out
	[ -f "moved/act/coins copy.png" ] && [ ! -e "act/coins copy.png" ] || fail "move did not move"
	cmp -s act/coins.png "moved/act/coins copy.png" || fail "moved file differs"
	expect 0 "$B" check --index adb
	[ "$(stat_images adb)" = 5 ] || fail "after the actions: $(stat_images adb) images, want 5"
}

# Ctrl-C commits what is done and exits 130; the same command resumes.
test_interrupt() {
	local n=1500 pid rc i imgs=0
	mkdir many
	# distinct files (a line appended after the JPEG data), one tee
	tee many/{1..1500}.jpg <"$DATA/chelsea.jpg" >/dev/null
	for i in $(seq $n); do echo "$i" >>many/$i.jpg; done
	"$B" ingest --index idb -j 1 many >out 2>err &
	pid=$!
	# wait for the first commit, then interrupt
	for i in $(seq 600); do
		imgs=$("$B" stats --index idb 2>/dev/null | awk -F'\t' '$1 == "images" { print $2 }')
		[ "${imgs:-0}" -gt 0 ] && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.05
	done
	kill -INT $pid
	wait $pid
	rc=$?
	if [ $rc = 0 ]; then
		echo "SKIP test_interrupt (ingest finished before the signal)"
		t_skip=1
		return
	fi
	[ $rc = 130 ] || fail "interrupted ingest: exit status $rc, want 130: $(cat err)"
	has "interrupted, run again to resume" err
	local done_before
	done_before=$(stat_images idb)
	[ "$done_before" -gt 0 ] && [ "$done_before" -lt $n ] || fail "after the interruption: $done_before images"
	expect 0 "$B" check --index idb
	expect 0 "$B" ingest --index idb many
	has "$n files: $((n - done_before)) embedded, 0 exact duplicates, $done_before unchanged" err
	[ "$(stat_images idb)" = $n ] || fail "after resuming: $(stat_images idb) images"
}

run test_basics
run test_ingest
run test_reingest
run test_query
run test_query_trained
run test_dedup
run test_dedup_no_chaining
run test_calibrated
run test_bad_inputs
run test_remove
run test_html
run test_actions
run test_interrupt
