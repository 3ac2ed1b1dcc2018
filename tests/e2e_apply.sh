#!/bin/bash
# End-to-end tests of `neardup apply` without a browser: the decisions are
# the review page's own JSON (taken out of a real report) with decisions set
# by jq, as the page's export writes them. A decision file that is not valid
# JSON, not the page's, stale (a file changed or indexed again), names an
# unknown path, reaches a file through a symbolic link or has no keeper is
# refused as a whole with nothing touched; a dry run touches nothing; --yes
# acts on exactly the marked files, journaled (undo puts them back).
# Run by `make test` with the binary in $NEARDUP_BIN, from the repository
# root; one test by name: tests/e2e_apply.sh test_stale.
set -u
B=${NEARDUP_BIN:?NEARDUP_BIN must name the neardup binary}
ROOT=$(pwd)
DATA=$ROOT/data
export NEARDUP_MODEL=$ROOT/tests/data/cli/tiny.ndm
unset NEARDUP_INDEX
. "$ROOT/tests/lib_e2e.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/neardup-apply.XXXXXX")
T=$(cd "$T" && pwd -P) # the physical path: actions refuse symbolic links
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
export XDG_DATA_HOME=$T/xdg

has() { grep -qF -- "$1" "$2" || fail "'$1' not in $2: $(head -c 800 "$2")"; }
sums() { find "$@" -type f -exec md5sum {} + | sort -k 2; }

# p/ holds three groups (chelsea x3, rocket x2, hubble x2) and a loner; the
# report's data goes to page.json
setup() {
	rm -rf p db xdg moved ./*.json report.html
	mkdir -p p/sub
	cp "$DATA/chelsea.jpg" "$DATA/chelsea_q25.jpg" "$DATA/rocket.jpg" "$DATA/rocket_exif6.jpg" \
		"$DATA/coins.png" p/
	cp "$DATA/chelsea.jpg" p/sub/chelsea_copy.jpg
	cp "$DATA/hubble.jpg" "$DATA/hubble_crop_q70.jpg" p/sub/
	expect 0 "$B" ingest -q --index db "$T/p"
	expect 0 "$B" dedup -q --index db --score raw --min-sim 0.975 --format html -o report.html
	awk '/id="nd-data">/ { f = 1; sub(/.*id="nd-data">/, "") }
	     f { if (sub(/<\/script>.*/, "")) { print; exit } print }' report.html >page.json
	jq -e '.groups | length == 3' page.json >/dev/null || fail "want 3 groups: $(head -c 300 page.json)"
}
# decide FILTER: page.json with every file's decision set (keep for the
# first, leave for the rest), then FILTER applied, into d.json
decide() {
	jq "del(.groups[].files[] | (.thumb, .name, .w, .h, .format, .date, .date_src, .sim, .raw, .exact, .protect))
	    | .groups[].files |= (to_entries | map(.value + {decision: (if .key == 0 then \"keep\" else \"leave\" end)}))
	    | $1" page.json >d.json || fail "jq: $1"
}
# on NAME EXPR: EXPR applied to every file whose path ends with NAME
on() { echo ".groups[].files[] |= (if (.path | endswith(\"$1\")) then $2 else . end)"; }
# marks every file whose path ends with $1
mark() { on "$1" '.decision = "mark"'; }

test_bad_json() {
	setup
	printf '{"format": "neardup-decisions", "version": 1, "groups": [' >bad.json
	expect 2 "$B" apply bad.json --action trash
	has "cannot read 'bad.json': not valid JSON at line 1" err
	echo '{"groups": []}' >other.json
	expect 2 "$B" apply other.json --action trash
	has "not a decision file of neardup's review page" err
	expect 2 "$B" apply missing.json --action trash
	has "cannot read 'missing.json'" err
	decide "$(mark chelsea_q25.jpg) | .version = 7"
	expect 2 "$B" apply d.json --action trash
	has "decision file version 7" err
	decide "$(mark chelsea_q25.jpg) | .groups[0].files[1].decision = \"maybe\""
	expect 2 "$B" apply d.json --action trash
	has "\"decision\" is not keep, mark or leave" err
	decide "$(mark chelsea_q25.jpg) | $(on chelsea_q25.jpg '.hash = "xyz"')"
	expect 2 "$B" apply d.json --action trash
	has "no valid \"hash\"" err
	decide "$(mark chelsea_q25.jpg)"
	expect 2 "$B" apply d.json
	has "apply needs --action" err
	expect 2 "$B" apply d.json --action move
	has "--action move needs --to DIR" err
}

test_dry_run_and_yes() {
	setup
	local before
	before=$(sums p)
	decide "$(mark chelsea_q25.jpg) | $(mark rocket_exif6.jpg)"
	expect 0 "$B" apply d.json --action trash
	[ "$(sums p)" = "$before" ] || fail "the dry run changed files"
	[ "$(grep -c '^would trash' out)" = 2 ] || fail "want 2 'would trash' lines: $(cat out)"
	has "would trash 2 files" err
	expect 0 "$B" apply d.json --action trash --yes
	[ "$(grep -c '^trashed' out)" = 2 ] || fail "want 2 'trashed' lines: $(cat out)"
	[ ! -e p/chelsea_q25.jpg ] && [ ! -e p/rocket_exif6.jpg ] || fail "marked files still there"
	[ "$(sums p | grep -vc -e chelsea_q25 -e rocket_exif6)" = 6 ] || fail "unmarked files changed: $(sums p)"
	[ "$(sums p | grep -v -e chelsea_q25 -e rocket_exif6)" = "$(echo "$before" | grep -v -e chelsea_q25 -e rocket_exif6)" ] ||
		fail "unmarked files changed"
	[ -f xdg/Trash/files/chelsea_q25.jpg ] || fail "not in the trash: $(ls -R xdg)"
	grep -q '"action": "trash"' db/journal.jsonl || fail "not journaled"
	# the index forgot them; undo puts them back
	expect 0 "$B" undo --index db --yes
	[ "$(sums p)" = "$before" ] || fail "undo did not restore the files"
	# the same decisions again: the index no longer lists them
	expect 2 "$B" apply d.json --action trash --yes
	has "is not in the index" err
}

test_stale() {
	setup
	local before
	decide "$(mark chelsea_q25.jpg) | $(mark rocket_exif6.jpg)"
	# a marked file rewritten in place, same size: its hash no longer matches
	printf 'X' | dd of=p/rocket_exif6.jpg bs=1 seek=5000 conv=notrunc status=none
	before=$(sums p)
	expect 2 "$B" apply d.json --action delete --yes
	has "'$T/p/rocket_exif6.jpg' changed since the report" err
	has "nothing was done" err
	[ "$(sums p)" = "$before" ] || fail "a stale decision file changed files"
	# the keeper changed: nothing of its group may go
	setup
	decide "$(mark chelsea_q25.jpg)"
	printf 'X' | dd of=p/chelsea.jpg bs=1 seek=5000 conv=notrunc status=none
	before=$(sums p)
	expect 2 "$B" apply d.json --action delete --yes
	has "'$T/p/chelsea.jpg' changed since the report" err
	[ "$(sums p)" = "$before" ] || fail "files changed although the keeper did"
	# a file indexed again since the report (its record's hash differs)
	setup
	decide "$(mark chelsea_q25.jpg)"
	cp "$DATA/coins.png" p/chelsea_q25.jpg
	expect 0 "$B" ingest -q --index db "$T/p"
	before=$(sums p)
	expect 2 "$B" apply d.json --action delete --yes
	has "was indexed again since the report" err
	[ "$(sums p)" = "$before" ] || fail "files changed"
}

test_unknown_path() {
	setup
	local before
	before=$(sums p)
	decide "$(mark chelsea_q25.jpg) | $(on chelsea_q25.jpg ".path = \"$T/p/nothing.jpg\"")"
	expect 2 "$B" apply d.json --action delete --yes
	has "'$T/p/nothing.jpg' is not in the index" err
	decide "$(mark chelsea_q25.jpg) | $(on chelsea_q25.jpg ".path = \"$T/p/coins.png\"")"
	expect 2 "$B" apply d.json --action delete --yes
	has "'$T/p/coins.png' was indexed again since the report" err
	decide "$(mark chelsea_q25.jpg) | $(on chelsea_q25.jpg '.ino = "1"')"
	expect 2 "$B" apply d.json --action delete --yes
	has "chelsea_q25.jpg' was indexed again since the report" err
	decide "$(mark chelsea_q25.jpg) | .groups[1].files += [.groups[].files[] | select(.path | endswith(\"q25.jpg\"))]"
	expect 2 "$B" apply d.json --action delete --yes
	has "is named twice" err
	[ "$(sums p)" = "$before" ] || fail "files changed"
	# another index
	expect 0 "$B" ingest -q --index db2 "$DATA/brick.jpg"
	decide "$(mark chelsea_q25.jpg)"
	expect 2 "$B" apply d.json --action delete --yes --index db2
	has "is not in the index" err
}

test_keeper_rules() {
	setup
	local before
	before=$(sums p)
	# a group with marked files and no keeper, or the keeper marked too
	decide "$(mark chelsea_q25.jpg) | $(on chelsea.jpg '.decision = "leave"')"
	expect 2 "$B" apply d.json --action delete --yes
	has "has 1 marked files and 0 keepers" err
	decide ".groups[0].files[].decision = \"mark\""
	expect 2 "$B" apply d.json --action delete --yes
	has "and 0 keepers (one keeper must stay)" err
	decide "$(mark chelsea_q25.jpg) | .groups[0].files[].decision |= if . == \"leave\" then \"keep\" else . end"
	expect 2 "$B" apply d.json --action delete --yes
	has "has 1 marked files and 2 keepers" err
	[ "$(sums p)" = "$before" ] || fail "files changed"
	# a keeper chosen on the page other than the report's: the report's keeper goes
	decide ".groups[0].files[0].decision = \"mark\" | .groups[0].files[1].decision = \"keep\""
	local kept gone
	gone=$(jq -r '.groups[0].files[0].path' d.json)
	kept=$(jq -r '.groups[0].files[1].path' d.json)
	expect 0 "$B" apply d.json --action move --to moved --yes
	[ ! -e "$gone" ] && [ -f "$kept" ] && [ -f "moved$gone" ] || fail "keeper change not applied: $(cat out err)"
}

test_symlinked_component() {
	setup
	decide "$(mark hubble_crop_q70.jpg)"
	mv p/sub p/real
	ln -s real p/sub
	local before
	before=$(sums p/real)
	expect 2 "$B" apply d.json --action delete --yes
	has "symbolic link" err
	has "nothing was done" err
	[ "$(sums p/real)" = "$before" ] || fail "a file reached through a symbolic link was touched"
}

# names that are not UTF-8 (the page carries their bytes in path_b64) or
# hold a newline
test_odd_names() {
	rm -rf p db xdg ./*.json report.html
	mkdir p
	cp "$DATA/chelsea.jpg" p/
	cp "$DATA/chelsea.jpg" "p/caf"$'\xe9'".jpg"
	cp "$DATA/chelsea_q25.jpg" "p/new"$'\n'"line.jpg"
	expect 0 "$B" ingest -q --index db "$T/p"
	expect 0 "$B" dedup -q --index db --score raw --min-sim 0.975 --format html -o report.html
	awk '/id="nd-data">/ { f = 1; sub(/.*id="nd-data">/, "") }
	     f { if (sub(/<\/script>.*/, "")) { print; exit } print }' report.html >page.json
	jq -e '[.groups[].files[] | select(.path_b64)] | length == 1' page.json >/dev/null ||
		fail "want one path_b64: $(head -c 600 page.json)"
	jq -e '.groups | length == 1' page.json >/dev/null || fail "want one group"
	decide '.groups[].files[] |= (.decision = (if (.path | endswith("/chelsea.jpg")) then "keep" else "mark" end))'
	expect 0 "$B" apply d.json --action trash --yes
	[ -f p/chelsea.jpg ] && [ "$(find p -type f -printf x)" = x ] || fail "left: $(ls p) $(cat err)"
	[ "$(find xdg/Trash/files -type f -printf x)" = xx ] || fail "trash: $(ls xdg/Trash/files)"
}

if [ $# -gt 0 ]; then
	for t in "$@"; do run "$t"; done
	exit 0
fi
run test_bad_json
run test_dry_run_and_yes
run test_stale
run test_unknown_path
run test_keeper_rules
run test_symlinked_component
run test_odd_names
