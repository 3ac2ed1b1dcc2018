#!/bin/bash
# End-to-end tests of file identity and of what ingest and dedup say about
# files: one file under several spellings (relative, ./, absolute, a
# symlinked directory, hard links) is one image and never a duplicate of
# itself; files gone since ingest are left out of dedup; a full disk is
# reported as such and nothing uncommitted is counted; control characters in
# file names never reach the terminal raw. Run by `make test` with the binary
# in $NEARDUP_BIN, from the repository root; prints PASS/FAIL per test (SKIP
# lines are not counted). The model is the tiny test model (see e2e_cli.sh).
set -u
B=${NEARDUP_BIN:?NEARDUP_BIN must name the neardup binary}
ROOT=$(pwd)
DATA=$ROOT/data
export NEARDUP_MODEL=$ROOT/tests/data/cli/tiny.ndm
unset NEARDUP_INDEX
. "$ROOT/tests/lib_e2e.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/neardup-identity.XXXXXX")
MNT=$T/small
cleanup() {
	mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
	rm -rf "$T"
}
trap cleanup EXIT
cd "$T" || exit 1
RAW="--score raw --min-sim 0.975" # the tiny model's mild-edit threshold (e2e_cli.sh)

has() { grep -qF -- "$1" "$2" || fail "'$1' not in $2: $(head -c 600 "$2")"; }
hasnt() { ! grep -qF -- "$1" "$2" || fail "'$1' unexpectedly in $2: $(head -c 600 "$2")"; }
stat_images() { "$B" stats --index "$1" | awk -F'\t' '$1 == "images" { print $2 }'; }
# no raw control byte (C0 but tab in TSV, DEL) in a file
clean() {
	if LC_ALL=C grep -qP '[\x00-\x08\x0a-\x1f\x7f]' "$1"; then
		fail "raw control characters in $1: $(od -c "$1" | head -5)"
	fi
}

# a tree of 5 unrelated images, one hard link to one of them, and a
# symlinked alias of the tree
mk_tree() {
	mkdir -p tree/sub
	cp "$DATA/chelsea.jpg" "$DATA/coins.png" "$DATA/brick.jpg" tree/
	cp "$DATA/rocket.jpg" "$DATA/hubble.jpg" tree/sub/
	ln tree/coins.png tree/sub/coins-link.png
	ln -s tree alias
}

test_spellings() {
	mk_tree
	expect 0 "$B" ingest --index db tree
	has "6 files: 5 embedded, 0 exact duplicates, 0 unchanged, 1 already indexed under another name" err
	for spelling in ./tree "$T/tree/" alias "$T/alias/sub" tree/../tree; do
		expect 0 "$B" ingest --index db "$spelling"
		has "0 embedded, 0 exact duplicates" err
		[ "$(stat_images db)" = 5 ] || fail "after ingest '$spelling': $(stat_images db) images, want 5"
	done
	# several spellings in one run of a new index
	expect 0 "$B" ingest --index db2 tree ./tree "$T/tree" alias
	has "24 files: 5 embedded, 0 exact duplicates, 0 unchanged, 19 already indexed under another name" err
	[ "$(stat_images db2)" = 5 ] || fail "one run: $(stat_images db2) images, want 5"
	expect 0 "$B" check --index db
	has "file identities: current (5)" out
	# the first spelling is the one kept and printed
	expect 0 "$B" query --index db -k 1 "$T/tree/coins.png"
	has "	tree/coins.png	" out
	# a changed file under a new spelling is read and stored under the first
	cp "$DATA/coffee.jpg" tmp.jpg && cat tmp.jpg >tree/brick.jpg # in place: same inode
	touch -d '2030-01-01' tree/brick.jpg
	expect 0 "$B" ingest --index db "$T/tree"
	has "1 embedded, 0 exact duplicates" err
	expect 0 "$B" query --index db -k 1 "$DATA/coffee.jpg"
	has "	tree/brick.jpg	" out
	[ "$(stat_images db)" = 5 ] || fail "after a change: $(stat_images db) images, want 5"
	# dedup never pairs a file with itself: nothing to do, nothing deleted
	expect 0 "$B" dedup --index db $RAW --format jsonl
	[ -s out ] && fail "groups from one file under several names: $(cat out)"
	# remove finds a file under another spelling too
	expect 0 "$B" remove --index db2 "$T/alias/sub/coins-link.png"
	has "removed 1 images" err
	[ "$(stat_images db2)" = 4 ] || fail "after remove: $(stat_images db2) images, want 4"
	local before
	before=$(find tree -type f | sort | xargs md5sum)
	expect 0 "$B" dedup --index db $RAW --action delete --yes tree
	expect 0 "$B" dedup --index db $RAW --action delete --yes ./tree
	[ "$before" = "$(find tree -type f | sort | xargs md5sum)" ] || fail "dedup changed files"
}

# A hard link made after ingest: two indexed names, one file now. Dedup
# shows no pair; delete leaves the file.
test_hardlink_after_ingest() {
	mkdir -p hl
	cp "$DATA/chelsea.jpg" hl/a.jpg
	cp "$DATA/chelsea.jpg" hl/b.jpg
	cp "$DATA/rocket.jpg" hl/c.jpg
	expect 0 "$B" ingest --index hdb hl
	has "1 exact duplicates" err
	expect 0 "$B" dedup --index hdb $RAW
	has "hl/a.jpg	hl/b.jpg" out
	ln -f hl/a.jpg hl/b.jpg
	expect 0 "$B" dedup --index hdb $RAW
	[ -s out ] && fail "a file paired with itself: $(cat out)"
	expect 0 "$B" dedup --index hdb $RAW --action delete --yes
	[ -f hl/a.jpg ] && [ -f hl/b.jpg ] || fail "a hard-linked file was deleted"
}

test_missing() {
	mkdir -p ms
	cp "$DATA/chelsea.jpg" ms/a.jpg
	cp "$DATA/chelsea.jpg" ms/b.jpg
	cp "$DATA/chelsea.jpg" ms/c.jpg
	cp "$DATA/rocket.jpg" ms/d.jpg
	cp "$DATA/rocket.jpg" ms/e.jpg
	expect 0 "$B" ingest --index mdb ms
	rm ms/b.jpg ms/e.jpg
	expect 0 "$B" dedup --index mdb $RAW
	[ "$(cat out)" = "ms/a.jpg	ms/c.jpg" ] || fail "groups with missing files: $(cat out)"
	has "2 indexed files no longer exist and were left out; 'neardup remove --missing'" err
	expect 0 "$B" dedup --index mdb $RAW --format jsonl
	hasnt "b.jpg" out
	hasnt "e.jpg" out
	expect 0 "$B" remove --index mdb --missing
	expect 0 "$B" dedup --index mdb $RAW
	hasnt "no longer exist" err
}

# A real small filesystem: the index fills it.
test_full_disk() {
	mkdir -p "$MNT"
	if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o size=400k tmpfs "$MNT" 2>/dev/null; then
		echo "SKIP test_full_disk (cannot mount a small tmpfs: not root)"
		t_skip=1
		return
	fi
	mkdir many
	tee many/{1..900}.jpg <"$DATA/chelsea.jpg" >/dev/null
	for i in $(seq 900); do echo "$i" >>many/$i.jpg; done
	expect 2 "$B" ingest --index "$MNT/db" -j 2 many
	has "neardup: cannot write to index '$MNT/db': no space left on device" err
	hasnt "Input/output error" err
	local emb n
	emb=$(sed -n 's/.* files: \([0-9]*\) embedded.*/\1/p' err)
	n=$(stat_images "$MNT/db")
	[ -n "$emb" ] && [ "$emb" = "$n" ] || fail "summary says $emb embedded, the index holds $n: $(cat err)"
	has "read but not added: the index could not be written" err
	expect 0 "$B" check --index "$MNT/db"
	# room again: the same command resumes
	mount -o remount,size=8m "$MNT"
	expect 0 "$B" ingest --index "$MNT/db" many
	has "900 files: $((900 - n)) embedded, 0 exact duplicates, $n unchanged" err
	umount "$MNT"
}

# A file whose name holds a newline, a tab and ESC: every output escapes them.
test_control_chars() {
	local odd=$'odd\nname\tw\033[31mith.jpg' bad=$'bad\033]0;title\007.jpg'
	mkdir -p cc
	cp "$DATA/chelsea.jpg" "cc/$odd"
	cp "$DATA/chelsea.jpg" cc/plain.jpg
	head -c 2000 "$DATA/rocket.jpg" >"cc/$bad"
	expect 1 "$B" ingest --index cdb cc
	clean err
	has "neardup: cannot decode 'cc/bad\\x1b]0;title\\x07.jpg': " err
	expect 0 "$B" query --index cdb -k 2 "cc/$odd"
	clean out
	clean err
	has 'cc/odd\nname\tw\x1b[31mith.jpg' out
	expect 0 "$B" dedup --index cdb $RAW
	clean out
	has 'cc/odd\nname\tw\x1b[31mith.jpg' out
	expect 0 "$B" dedup --index cdb $RAW --keep first-path --action delete
	clean out
	has 'would delete	cc/plain.jpg' out
	expect 0 "$B" dedup --index cdb $RAW --keep first-path --action hardlink
	clean out
	has 'would hardlink	cc/plain.jpg	cc/odd\nname\tw\x1b[31mith.jpg' out
	expect 1 "$B" remove --index cdb "cc/$bad"
	clean err
	has "cannot remove 'cc/bad\\x1b]0;title\\x07.jpg': not in the index" err
}

run test_spellings
run test_hardlink_after_ingest
run test_missing
run test_full_disk
run test_control_chars
