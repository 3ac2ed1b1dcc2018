#!/bin/bash
# End-to-end tests of a damaged or shared index: truncated and byte-flipped
# copies of a real index never crash a command (a signal exit fails) and
# give "index 'X' is damaged: ..."; a writer refuses a damaged index; a
# user who may not write the index's files can still read it; backups.
# Run by `make test` with the binary in $NEARDUP_BIN, from the repository
# root; prints PASS/FAIL per test (SKIP lines are not counted).
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

has() { grep -qF -- "$1" "$2" || fail "'$1' not in $2: $(head -c 600 "$2")"; }
# no_signal RC WHAT: a status of 128 or more is a crash (or a sanitizer's 86)
no_signal() {
	if [ "$1" -ge 128 ] || [ "$1" = 86 ]; then
		fail "$2: exit status $1 (crash)"
		return 1
	fi
	grep -qE 'runtime error:|Sanitizer' err && fail "$2: sanitizer report $(head -c 2000 err)"
	return 0
}

# The index every test damages a copy of: the sample corpus, then a second
# ingest and a removal, so that the file holds a free list too.
"$B" ingest -q --index ix "$DATA"/*.jpg >/dev/null 2>&1 || { echo "FAIL setup: ingest"; exit 1; }
"$B" ingest -q --index ix "$DATA"/*.png >/dev/null 2>&1 || { echo "FAIL setup: ingest png"; exit 1; }
"$B" remove -q --index ix "$DATA/brick.jpg" >/dev/null 2>&1 || { echo "FAIL setup: remove"; exit 1; }
# ... and its compacted copy (no free pages: most bytes are in use), the
# one whose bytes are flipped
"$B" backup -q --index ix cx >/dev/null 2>&1 || { echo "FAIL setup: backup"; exit 1; }
SIZE=$(stat -c %s ix/data.mdb)
CSIZE=$(stat -c %s cx/data.mdb)
NIMG=$(( $(ls "$DATA"/*.jpg "$DATA"/*.png | wc -l) - 1 ))

# fresh_copy NAME: a copy of the index without its lock files
fresh_copy() {
	rm -rf "$1"
	mkdir "$1" && cp ix/data.mdb "$1/"
}

test_intact() {
	expect 0 "$B" check --index ix
	has "0 problems" out
	has "pages sound" out
	expect 0 "$B" stats --index ix
	has "images	$NIMG" out
}

# Cut at a meta page, inside the second, at page boundaries and one byte short.
test_truncated() {
	local sz cmd
	for sz in 100 4096 4200 8192 $((SIZE / 2)) $((SIZE - 4096)) $((SIZE - 1)); do
		fresh_copy tr
		truncate -s "$sz" tr/data.mdb
		for cmd in check stats "query -k 1 $DATA/chelsea.jpg" dedup "remove --missing" \
			"ingest $DATA/chelsea.jpg" "backup bk$sz"; do
			# shellcheck disable=SC2086
			expect 2 "$B" $cmd --index tr
			has "neardup: index 'tr' is damaged: " err
		done
	done
	expect 2 "$B" check --index tr
	has "data.mdb is $((SIZE - 1)) bytes, its last page needs $SIZE" err
	# empty: what a writer killed while creating the index leaves; LMDB
	# (and so a writer) sets it up anew
	fresh_copy tr
	truncate -s 0 tr/data.mdb
	expect 2 "$B" stats --index tr
	has "no index in 'tr'" err
	expect 0 "$B" ingest -q --index tr "$DATA/chelsea.jpg"
	expect 0 "$B" check --index tr
}

# flip_byte FILE OFFSET: the byte at OFFSET xor 0xff
flip_byte() {
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "\\$(printf %03o $((b ^ 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# One flipped byte per copy, every STEP-th byte of the file: check and
# stats never crash; check exits 0, 1 (problems in the values) or 2 (damage,
# naming the index); stats 0 or 2; a writer refuses every copy that check
# calls damaged, and never crashes on the others. Readers leave data.mdb
# as it is, so one copy serves, flipped and flipped back; the writer gets a
# copy of its own.
test_byte_flips() {
	local step=${FLIP_STEP:-$((CSIZE / 256 | 1))} off rc crc n=0 dmg=0 probs=0 ok=0 refused=0
	local -a orig
	read -r -a orig <<<"$(od -An -tu1 -v cx/data.mdb | tr -s ' \n' '  ')"
	[ "${#orig[@]}" = "$CSIZE" ] || { fail "od read ${#orig[@]} of $CSIZE bytes"; return; }
	rm -rf fl && mkdir fl && cp cx/data.mdb fl/
	put() { printf "\\$(printf %03o "$2")" | dd of=fl/data.mdb bs=1 seek="$1" conv=notrunc status=none; }
	for ((off = 0; off < CSIZE; off += step)); do
		put "$off" $((orig[off] ^ 255))
		n=$((n + 1))
		"$B" check --index fl >out 2>err
		crc=$?
		no_signal "$crc" "check, byte $off flipped" || { put "$off" "${orig[off]}"; continue; }
		case $crc in
		0) ok=$((ok + 1)) ;;
		1) probs=$((probs + 1)) ;;
		2)
			dmg=$((dmg + 1))
			grep -qF "neardup: index 'fl' is damaged: " err || fail "check, byte $off: $(cat err)"
			;;
		*) fail "check, byte $off flipped: exit status $crc" ;;
		esac
		"$B" stats --index fl >out 2>err
		rc=$?
		if no_signal "$rc" "stats, byte $off flipped"; then
			[ "$rc" = 0 ] || { [ "$rc" = 2 ] && grep -qF "index 'fl'" err; } ||
				fail "stats, byte $off flipped: exit status $rc: $(head -c 300 err)"
		fi
		# a writer: on every copy check calls damaged, and on every 8th
		if [ "$crc" = 2 ] || [ $((n % 8)) = 0 ]; then
			rm -rf fw && cp -r fl fw
			"$B" remove -q --index fw "$DATA/camera.png" >out 2>err
			rc=$?
			if no_signal "$rc" "remove, byte $off flipped" && [ "$crc" = 2 ]; then
				[ "$rc" = 2 ] && grep -qF "neardup: index 'fw' is damaged: " err ||
					fail "remove wrote into a damaged index (byte $off): $rc $(head -c 300 err)"
				refused=$((refused + 1))
			fi
		fi
		put "$off" "${orig[off]}"
	done
	cmp -s fl/data.mdb cx/data.mdb || fail "the flipped copy was not restored"
	echo "  byte flips: $n copies: $ok ok, $probs with problems, $dmg damaged ($refused refused by a writer)"
	[ "$dmg" -gt 0 ] || fail "no flip was found damaging"
}

# A reader who may not write lock.mdb (or create it) reads all the same;
# a writer gets a clear error.
test_readonly_user() {
	local as=
	if command -v setpriv >/dev/null && setpriv --reuid=nobody --regid=nogroup --clear-groups true 2>/dev/null; then
		as="setpriv --reuid=nobody --regid=nogroup --clear-groups"
	elif command -v runuser >/dev/null && runuser -u nobody -- true 2>/dev/null; then
		as="runuser -u nobody --"
	else
		echo "SKIP test_readonly_user (neither setpriv nor runuser works here)"
		t_skip=1
		return
	fi
	if [ "$(id -u)" != 0 ]; then
		echo "SKIP test_readonly_user (needs root to become another user)"
		t_skip=1
		return
	fi
	if ! $as test -r "$NEARDUP_MODEL"; then
		echo "SKIP test_readonly_user (nobody cannot read $NEARDUP_MODEL)"
		t_skip=1
		return
	fi
	chmod 755 "$T"
	rm -rf ro ro2
	cp -r ix ro
	"$B" stats --index ro >/dev/null # a lock.mdb of root's
	chmod 755 ro && chmod 644 ro/*
	fresh_copy ro2 # no lock.mdb, and nobody may create one
	chmod 755 ro2 && chmod 644 ro2/data.mdb
	local d
	for d in ro ro2; do
		expect 0 $as "$B" query --index $d -k 1 "$DATA/chelsea.jpg"
		has "chelsea.jpg" out
		expect 0 $as "$B" stats --index $d
		has "images	$NIMG" out
		expect 0 $as "$B" check --index $d
		has "0 problems" out
		expect 0 $as "$B" dedup --index $d
		expect 2 $as "$B" ingest --index $d "$DATA/chelsea.jpg"
		has "$d/neardup.lock" err
	done
	[ ! -e ro2/lock.mdb ] || fail "a reader created lock.mdb"
}

test_backup() {
	rm -rf bk bk2
	expect 0 "$B" backup --index ix bk
	has "backed up $NIMG images to 'bk'" err
	has "the copy checks ok" err
	expect 0 "$B" check --index bk
	has "$NIMG images" out
	expect 0 "$B" query --index bk -k 3 --format tsv "$DATA/chelsea.jpg"
	cp out q_bk
	expect 0 "$B" query --index ix -k 3 --format tsv "$DATA/chelsea.jpg"
	cmp -s out q_bk || fail "the copy answers another query result"
	# a second backup never overwrites one
	expect 2 "$B" backup --index ix bk
	has "'bk' already holds an index" err
	expect 2 "$B" backup --index ix
	has "no DEST given" err
	# needs no writer lock: works while a writer holds the index
	flock ix/neardup.lock "$B" backup -q --index ix bk2 >out 2>err
	[ $? = 0 ] || fail "backup under a held writer lock: $(cat err)"
	expect 0 "$B" check --index bk2
	# a damaged index is not backed up (the walk runs before LMDB's copy)
	local pg
	for ((pg = 2; pg < SIZE / 4096; pg++)); do
		fresh_copy dm
		flip_byte dm/data.mdb $((pg * 4096 + 12)) # a page's lower bound
		# damage that only the full walk sees (not an open's light one)
		"$B" check --index dm >/dev/null 2>&1
		[ $? = 2 ] && "$B" stats --index dm >/dev/null 2>&1 && break
	done
	expect 2 "$B" backup --index dm bk3
	has "neardup: index 'dm' is damaged: " err
}

# The same, with ingest running meanwhile: each copy is a consistent snapshot.
test_backup_during_ingest() {
	rm -rf live bk4 corpus
	mkdir corpus
	local i
	for i in 1 2 3 4 5 6; do
		for f in "$DATA"/*.jpg; do cp "$f" "corpus/$i-$(basename "$f")"; done
	done
	"$B" ingest -q --index live "$DATA/chelsea.jpg" >/dev/null 2>&1
	"$B" ingest -q --index live -j 1 corpus >/dev/null 2>&1 &
	local pid=$!
	for i in 1 2 3 4 5; do
		rm -rf bk4
		expect 0 "$B" backup -q --index live bk4
		expect 0 "$B" check --index bk4
	done
	wait $pid || fail "ingest during backups failed"
}

# one test by name: tests/e2e_damage.sh test_truncated
for t in test_intact test_truncated test_byte_flips test_readonly_user test_backup test_backup_during_ingest; do
	[ $# = 0 ] || [ "$1" = "$t" ] && run "$t"
done
