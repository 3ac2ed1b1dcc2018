#!/bin/bash
# End-to-end tests of `neardup dedup --action` and `neardup undo` on real
# files in a temporary directory, always with --yes: the actions must never
# lose a picture (one file under several spellings, symbolic links in
# directory components, a directory swapped while dedup runs, files
# rewritten with the same size and mtime, near-duplicates and formats for
# hardlink), and trash, journal, undo and the totals line work as documented.
# Run by `make test` with the binary in $NEARDUP_BIN, from the repository
# root; one test by name: tests/e2e_actions.sh test_trash_undo.
set -u
B=${NEARDUP_BIN:?NEARDUP_BIN must name the neardup binary}
ROOT=$(pwd)
DATA=$ROOT/data
export NEARDUP_MODEL=$ROOT/tests/data/cli/tiny.ndm
unset NEARDUP_INDEX
. "$ROOT/tests/lib_e2e.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/neardup-act.XXXXXX")
T=$(cd "$T" && pwd -P) # the physical path: actions refuse symbolic links
trap 'chmod -R u+rwX "$T" 2>/dev/null; rm -rf "$T"' EXIT
cd "$T" || exit 1
export XDG_DATA_HOME=$T/xdg # the home trash of these tests
# the tiny model's threshold for mild edits, on the plain cosine (as in
# e2e_cli.sh); byte-identical files pair at any threshold
SIM="--score raw --min-sim 0.975"

has() { grep -qF -- "$1" "$2" || fail "'$1' not in $2: $(head -c 800 "$2")"; }
hasnt() { ! grep -qF -- "$1" "$2" || fail "'$1' unexpectedly in $2: $(head -c 800 "$2")"; }
# a fingerprint of every file under the given directories (path, content)
sums() { find "$@" -type f -exec md5sum {} + | sort -k 2; }
# expect a status of 0 or 1 (files left alone are fine), never worse
expect01() {
	"$@" >out 2>err
	local rc=$?
	[ "$rc" -le 1 ] || fail "exit status $rc: $* (stderr: $(head -c 600 err))"
	! grep -qE 'runtime error:|Sanitizer' err || fail "sanitizer report: $* $(head -c 2000 err)"
}
# a fresh directory $1 with the images named after it, same mtime everywhere
# (the keep rule then falls back to the path)
fresh() {
	local d=$1
	shift
	rm -rf "$d"
	mkdir -p "$d"
	local f
	for f in "$@"; do
		mkdir -p "$d/$(dirname "${f#*=}")"
		cp "$DATA/${f%%=*}" "$d/${f#*=}"
	done
	find "$d" -type f -exec touch -d '2024-01-02 03:04:05' {} +
}

# One file under several spellings (relative, ./, absolute, a symbolic
# link to the directory named on the command line) is still one file:
# no action may remove or move the only copy.
test_two_spellings() {
	local a before
	fresh tree chelsea.jpg coins.png coffee.jpg
	rm -rf db moved alias xdg
	ln -s tree alias
	before=$(sums tree)
	expect 0 "$B" ingest --index db tree
	expect 0 "$B" ingest --index db ./tree
	expect 0 "$B" ingest --index db "$T/tree"
	expect 0 "$B" ingest --index db alias
	# one file is one image whatever its spelling, so there is no pair
	has "3 already indexed under another name" err
	# nothing may change, so the same index serves every action
	for a in delete "move --to moved" trash hardlink "delete ./tree"; do
		expect01 "$B" dedup --index db --action $a --yes
		[ "$(sums tree)" = "$before" ] || { fail "--action $a lost or changed a picture: $(cat out err)"; return; }
		[ ! -e moved ] || [ -z "$(find moved -type f)" ] || fail "--action $a moved the only copy"
		[ ! -e xdg/Trash/files ] || [ -z "$(ls xdg/Trash/files)" ] || fail "--action $a trashed the only copy"
	done
	has "0 groups" err
}

# tree/sub, holding copies of tree's images, replaced after ingest by a
# symbolic link to a directory outside with the same names and bytes (so
# that only the walk, not the content check, can tell): no action touches
# the outside directory, and each refusal names the link.
test_symlinked_component() {
	local a before
	fresh tree chelsea.jpg coffee.jpg coins.png chelsea.jpg=sub/chelsea.jpg coffee.jpg=sub/coffee.jpg \
		coins.png=sub/coins.png
	rm -rf db moved xdg outside
	expect 0 "$B" ingest --index db tree
	cp -a tree/sub outside
	before=$(sums outside)
	rm -rf tree/sub
	ln -s ../outside tree/sub
	for a in delete "move --to moved" trash hardlink; do
		expect 1 "$B" dedup --index db --action $a --yes
		has "cannot ${a%% *} 'tree/sub/chelsea.jpg': '$T/tree/sub' is a symbolic link (not followed)" err
		[ "$(sums outside)" = "$before" ] || { fail "--action $a changed the outside directory"; return; }
		[ "$(stat -c %h outside/chelsea.jpg)" = 1 ] || fail "--action $a linked an outside file"
		[ ! -e moved ] || [ -z "$(find moved -type f)" ] || fail "--action $a moved an outside file"
		[ -f tree/chelsea.jpg ] || fail "the kept file went"
		grep -qE "(deleted|moved|trashed|hardlinked) 0 files" err || fail "totals: $(cat err)"
	done
	# a kept file behind a symbolic link: its copies are left alone
	fresh tree coins.png=sub/coins.png coins.png=z.png
	rm -rf db outside
	expect 0 "$B" ingest --index db tree
	mv tree/sub outside
	ln -s ../outside tree/sub
	expect 1 "$B" dedup --index db --action delete --yes
	has "cannot delete 'tree/z.png': left alone: the kept file 'tree/sub/coins.png' '$T/tree/sub' is a symbolic link" err
	[ -f tree/z.png ] || fail "deleted the copy of a kept file reached through a link"
}

# A background loop swaps tree/sub between the real directory and a symbolic
# link to an outside directory (same names, same bytes) while dedup --yes
# runs: whatever the interleaving, nothing outside is ever touched.
test_race() {
	local n=40 i a it
	mkdir -p race
	cd race || return
	for a in delete "move --to moved"; do
		rm -rf tree outside db moved
		mkdir -p tree/sub outside
		cp "$DATA/chelsea.jpg" tree/keep.jpg
		for i in $(seq $n); do cp "$DATA/chelsea.jpg" tree/sub/$i.jpg; done
		cp tree/sub/*.jpg outside/
		local before
		before=$(sums outside)
		for it in 1 2 3; do
			# restore the victims, index them, race
			for i in $(seq $n); do [ -f tree/sub/$i.jpg ] || cp "$DATA/chelsea.jpg" tree/sub/$i.jpg; done
			expect 0 "$B" ingest --index db -q tree
			rm -f stop
			(
				for i in $(seq 2000); do
					[ -e stop ] && break
					mv tree/sub tree/sub.real && ln -s ../outside tree/sub &&
						rm tree/sub && mv tree/sub.real tree/sub
				done
			) 2>/dev/null &
			local pid=$!
			expect01 "$B" dedup --index db --action $a --yes
			touch stop
			wait $pid
			rm -rf moved
			[ -d tree/sub ] && [ ! -L tree/sub ] || { rm -f tree/sub; mv tree/sub.real tree/sub; }
			[ "$(sums outside)" = "$before" ] || { fail "--action $a (round $it) touched the outside directory"; break; }
			[ -f tree/keep.jpg ] || fail "the kept file went"
		done
	done
	cd "$T" || return
}

# Rewritten with the same size and the old mtime (cp -p, rsync -a,
# exiftool -P): a member is left alone, and so is every copy of a kept file
# that no longer holds its picture.
test_rewritten() {
	fresh tree chelsea.jpg=a.jpg chelsea.jpg=b.jpg
	rm -rf db
	expect 0 "$B" ingest --index db tree
	printf 'X' | dd of=tree/b.jpg bs=1 seek=2000 conv=notrunc 2>/dev/null
	touch -r tree/a.jpg tree/b.jpg
	local b
	b=$(md5sum <tree/b.jpg)
	expect 1 "$B" dedup --index db --action delete --yes
	has "cannot delete 'tree/b.jpg': changed since it was indexed" err
	[ "$(md5sum <tree/b.jpg)" = "$b" ] || fail "a rewritten member was deleted or changed"
	# the kept file rewritten
	fresh tree chelsea.jpg=a.jpg chelsea.jpg=b.jpg
	rm -rf db
	expect 0 "$B" ingest --index db tree
	printf 'X' | dd of=tree/a.jpg bs=1 seek=2000 conv=notrunc 2>/dev/null
	touch -r tree/b.jpg tree/a.jpg
	for a in delete trash "move --to moved" hardlink; do
		expect 1 "$B" dedup --index db --action $a --yes
		has "cannot ${a%% *} 'tree/b.jpg': left alone: the kept file 'tree/a.jpg' changed since it was indexed" err
		cmp -s tree/b.jpg "$DATA/chelsea.jpg" || fail "--action $a: the copy of a rewritten kept file went"
	done
}

# hardlink: byte-identical copies only, unless --hardlink-near; never across
# formats, so a .png name never ends up holding JPEG bytes.
test_hardlink_rules() {
	fresh tree chelsea.jpg chelsea_q25.jpg chelsea.jpg=copy.jpg
	rm -rf db
	expect 0 "$B" ingest --index db tree
	expect 0 "$B" dedup --index db $SIM --action hardlink --yes
	has "skipped	tree/chelsea_q25.jpg	not byte-identical to the kept file" out
	has "hardlinked	tree/copy.jpg	tree/chelsea.jpg" out
	cmp -s tree/chelsea_q25.jpg "$DATA/chelsea_q25.jpg" || fail "a near-duplicate was linked by default"
	[ "$(stat -c %i tree/copy.jpg)" = "$(stat -c %i tree/chelsea.jpg)" ] || fail "exact copy not linked"
	expect 0 "$B" ingest --index db tree
	expect 0 "$B" dedup --index db $SIM --action hardlink --hardlink-near --yes
	has "hardlinked	tree/chelsea_q25.jpg	tree/chelsea.jpg" out
	[ "$(stat -c %i tree/chelsea_q25.jpg)" = "$(stat -c %i tree/chelsea.jpg)" ] || fail "--hardlink-near"
	# across formats: astronaut.jpg kept, its PNG rescale a near-duplicate
	fresh tree astronaut.jpg astronaut_half.png
	rm -rf db
	expect 0 "$B" ingest --index db tree
	expect 0 "$B" dedup --index db $SIM --action hardlink --hardlink-near --yes
	has "skipped	tree/astronaut_half.png	another format than the kept file (never linked)" out
	[ "$(head -c 4 tree/astronaut_half.png | od -An -tx1 | tr -d ' ')" = 89504e47 ] ||
		fail "a .png name holds other bytes"
	cmp -s tree/astronaut_half.png "$DATA/astronaut_half.png" || fail "cross-format link"
	expect 2 "$B" dedup --index db --action delete --hardlink-near
	has "--hardlink-near is only for --action hardlink" err
}

# trash: the freedesktop.org layout, exact .trashinfo, journal, undo
# restores the exact bytes and path and cannot be applied twice; the totals.
test_trash_undo() {
	fresh tree chelsea.jpg "chelsea.jpg=my copy.jpg" chelsea.jpg=sub/my\ copy.jpg coins.png
	rm -rf db xdg
	expect 0 "$B" ingest --index db tree
	local size
	size=$(stat -c %s "$DATA/chelsea.jpg")
	expect 0 "$B" dedup --index db --action trash
	has "would trash	tree/my copy.jpg	$T/xdg/Trash/files" out
	has "would trash 2 files, $(awk -v b=$((2 * size)) 'BEGIN { printf "%.1f kB", b / 1000 }')" err
	[ "$(tail -n 1 err)" = "neardup: would trash 2 files, $(awk -v b=$((2 * size)) 'BEGIN { printf "%.1f kB", b / 1000 }')" ] ||
		fail "the totals line is not last: $(cat err)"
	[ ! -e xdg ] || fail "a dry run created the trash"
	[ ! -e db/journal.jsonl ] || fail "a dry run wrote the journal"
	expect 0 "$B" dedup --index db --action trash --yes
	has "trashed	tree/my copy.jpg	$T/xdg/Trash/files/my copy.jpg" out
	has "trashed	tree/sub/my copy.jpg	$T/xdg/Trash/files/my copy.2.jpg" out
	has "trashed 2 files" err
	[ ! -e "tree/my copy.jpg" ] && [ ! -e "tree/sub/my copy.jpg" ] || fail "not trashed"
	cmp -s "xdg/Trash/files/my copy.jpg" "$DATA/chelsea.jpg" || fail "trashed bytes differ"
	local info="xdg/Trash/info/my copy.jpg.trashinfo"
	[ "$(sed -n 1p "$info")" = "[Trash Info]" ] || fail "trashinfo header: $(cat "$info")"
	[ "$(sed -n 2p "$info")" = "Path=$T/tree/my%20copy.jpg" ] || fail "trashinfo Path: $(cat "$info")"
	sed -n 3p "$info" | grep -qE '^DeletionDate=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$' ||
		fail "trashinfo DeletionDate: $(cat "$info")"
	[ "$(wc -l <"$info")" = 3 ] || fail "trashinfo lines: $(cat "$info")"
	[ "$(sed -n 2p "xdg/Trash/info/my copy.2.jpg.trashinfo")" = "Path=$T/tree/sub/my%20copy.jpg" ] ||
		fail "second trashinfo"
	[ "$(stat -c %a xdg/Trash)" = 700 ] || fail "trash mode $(stat -c %a xdg/Trash)"
	# gio writes the same layout (when it is installed)
	if command -v gio >/dev/null; then
		cp "$DATA/coins.png" "tree/g i.png"
		gio trash "tree/g i.png" 2>/dev/null &&
			[ "$(sed -n 2p "xdg/Trash/info/g i.png.trashinfo")" = "Path=$T/tree/g%20i.png" ] ||
			fail "gio's trashinfo differs: $(cat "xdg/Trash/info/g i.png.trashinfo")"
	fi
	# the journal: a begin line with the content hash, then done
	[ "$(grep -c '"state": "begin", "action": "trash"' db/journal.jsonl)" = 2 ] || fail "journal: $(cat db/journal.jsonl)"
	[ "$(grep -c '"state": "done"' db/journal.jsonl)" = 2 ] || fail "journal: $(cat db/journal.jsonl)"
	jq -e -s 'length == 4 and (.[0].state == "begin") and (.[1].state == "done") and
		(.[0].size == '"$size"') and (.[0].hash | test("^[0-9a-f]{32}$")) and
		(.[0].source | startswith("/"))' db/journal.jsonl >/dev/null || fail "journal JSON: $(cat db/journal.jsonl)"
	# undo: a dry run first, then for real; a second undo does nothing
	expect 0 "$B" undo --index db
	has "would restore	$T/tree/my copy.jpg	$T/xdg/Trash/files/my copy.jpg" out
	[ ! -e "tree/my copy.jpg" ] || fail "a dry undo restored"
	expect 0 "$B" undo --index db --yes
	has "restored	$T/tree/sub/my copy.jpg	$T/xdg/Trash/files/my copy.2.jpg" out
	has "restored 2 files" err
	cmp -s "tree/my copy.jpg" "$DATA/chelsea.jpg" && cmp -s "tree/sub/my copy.jpg" "$DATA/chelsea.jpg" ||
		fail "undo did not restore the exact bytes"
	[ ! -e "xdg/Trash/files/my copy.jpg" ] && [ ! -e "$info" ] || fail "undo left the trash entries"
	[ -e "xdg/Trash/info/g i.png.trashinfo" ] || fail "undo removed what it did not trash"
	expect 0 "$B" undo --index db --yes
	has "already undone" err
	has "restored 0 files" err
	[ "$(grep -c '"action": "undo-trash"' db/journal.jsonl)" = 2 ] || fail "undo not journaled"
}

# move: the journal's begin line comes before the attempt (a failed move
# has begin + failed); undo refuses a file changed since and one whose name
# was taken, and says why deletes and hard links cannot be undone.
test_move_undo() {
	fresh tree chelsea.jpg=a.jpg chelsea.jpg=b.jpg chelsea.jpg=c.jpg
	rm -rf db moved
	expect 0 "$B" ingest --index db tree
	mkdir -p moved/tree
	echo precious >moved/tree/c.jpg
	expect 1 "$B" dedup --index db --action move --to moved --yes
	has "cannot move 'tree/c.jpg': 'moved/tree/c.jpg': destination exists" err
	hasnt '"action": "move", "source": "'"$T"'/tree/c.jpg"' db/journal.jsonl
	has "moved	tree/b.jpg	moved/tree/b.jpg" out
	has "moved 1 file" err
	has "skipped 1" err
	[ "$(cat moved/tree/c.jpg)" = precious ] || fail "overwrote"
	expect 0 "$B" undo --index db --yes
	has "restored	$T/tree/b.jpg	$T/moved/tree/b.jpg" out
	cmp -s tree/b.jpg "$DATA/chelsea.jpg" || fail "undo move"
	# changed since the move, and a name taken: left where they are
	rm -f moved/tree/c.jpg
	expect 0 "$B" ingest --index db tree
	expect 0 "$B" dedup --index db --action move --to moved --yes
	echo >>moved/tree/b.jpg
	cp "$DATA/coins.png" tree/c.jpg
	expect 1 "$B" undo --index db --yes
	has "cannot undo the move of '$T/tree/b.jpg': '$T/moved/tree/b.jpg' has changed since it was moved" err
	has "cannot undo the move of '$T/tree/c.jpg': another file now has its name" err
	cmp -s tree/c.jpg "$DATA/coins.png" || fail "undo overwrote"
	expect 0 "$B" undo --help
	has "usage: neardup undo" out
	expect 2 "$B" undo --index db extra
	# delete cannot be undone, and undo says so
	fresh tree chelsea.jpg=a.jpg chelsea.jpg=b.jpg
	rm -rf db
	expect 0 "$B" ingest --index db tree
	expect 0 "$B" dedup --index db --action delete --yes
	has "deleted 1 file" err
	grep -q '"state": "begin", "action": "delete", "source": "'"$T"'/tree/b.jpg"' db/journal.jsonl ||
		fail "delete not journaled: $(cat db/journal.jsonl)"
	expect 1 "$B" undo --index db --yes
	has "cannot undo the delete of '$T/tree/b.jpg': deleted files cannot be restored" err
}

# Names that are not UTF-8 or hold JSON's special characters survive the
# journal: trash, then undo, puts them back under the same bytes.
test_odd_names() {
	local odd=$'odd \xff"\\name.jpg'
	fresh tree chelsea.jpg=a.jpg
	cp tree/a.jpg "tree/$odd"
	touch -r tree/a.jpg "tree/$odd"
	rm -rf db xdg
	expect 0 "$B" ingest --index db tree
	expect 0 "$B" dedup --index db --action trash --yes
	[ ! -e "tree/$odd" ] && [ -f "xdg/Trash/files/$odd" ] || fail "not trashed: $(cat out err)"
	grep -qF '\udcff\"\\name.jpg' db/journal.jsonl || fail "journal encoding: $(cat db/journal.jsonl)"
	grep -qF 'Path='"$T"'/tree/odd%20%FF%22%5Cname.jpg' "xdg/Trash/info/$odd.trashinfo" ||
		fail "trashinfo encoding: $(cat "xdg/Trash/info/$odd.trashinfo")"
	expect 0 "$B" undo --index db --yes
	cmp -s "tree/$odd" "$DATA/chelsea.jpg" || fail "not restored under the same bytes: $(ls tree)"
}

# PATHs on the command line are matched by directory identity: a file of
# the index reached under another spelling of a given directory is in it,
# one under a same-named directory elsewhere is not.
test_paths_identity() {
	fresh tree chelsea.jpg chelsea.jpg=in/b.jpg chelsea.jpg=out/c.jpg
	rm -rf db
	expect 0 "$B" ingest --index db ./tree
	# (dedup ingests the PATH too: the second spelling of b.jpg then finds it gone)
	expect01 "$B" dedup --index db --action delete --yes "$T/tree/in"
	has "skipped	./tree/out/c.jpg	outside the given PATHs" out
	has "deleted	./tree/in/b.jpg" out
	[ -f tree/out/c.jpg ] && [ ! -e tree/in/b.jpg ] || fail "PATHs by identity"
	# --protect by identity too (another spelling of the directory)
	fresh tree chelsea.jpg chelsea.jpg=in/b.jpg
	rm -rf db
	expect 0 "$B" ingest --index db tree
	expect 0 "$B" dedup --index db --action delete --protect "$T/./tree/in" --keep first-path --yes
	[ -f tree/in/b.jpg ] || fail "deleted a protected file"
}

# The top-directory trash of another file system ($topdir/.Trash-$uid, or
# $topdir/.Trash/$uid when .Trash is sticky), in a private mount namespace
# with a tmpfs; skipped where unshare is not allowed.
test_topdir_trash() {
	if ! unshare -rm true 2>/dev/null; then
		echo "SKIP test_topdir_trash (no unshare)"
		t_skip=1
		return
	fi
	mkdir -p vol
	cat >topdir.sh <<'EOF'
set -u
mount -t tmpfs none vol || exit 3
cp "$DATA/chelsea.jpg" vol/a.jpg && cp "$DATA/chelsea.jpg" vol/b.jpg
"$B" ingest --index vdb -q vol || exit 4
"$B" dedup --index vdb --action trash --yes >tout 2>terr || exit 5
u=$(id -u)
[ -f vol/.Trash-$u/files/b.jpg ] || exit 6
[ "$(stat -c %a vol/.Trash-$u)" = 700 ] || exit 7
[ "$(sed -n 2p vol/.Trash-$u/info/b.jpg.trashinfo)" = "Path=b.jpg" ] || exit 8
"$B" undo --index vdb --yes >>tout 2>>terr || exit 9
cmp -s vol/b.jpg "$DATA/chelsea.jpg" || exit 10
# a sticky .Trash is used first
mkdir vol/.Trash && chmod 1777 vol/.Trash
"$B" ingest --index vdb -q vol || exit 11
"$B" dedup --index vdb --action trash --yes >>tout 2>>terr || exit 12
[ -f vol/.Trash/$u/files/b.jpg ] || exit 13
# a .Trash that is a symbolic link is not
"$B" undo --index vdb --yes >>tout 2>>terr || exit 14
rm -rf vol/.Trash vol/.Trash-$u && mkdir vol/elsewhere && chmod 1777 vol/elsewhere &&
	ln -s elsewhere vol/.Trash
"$B" ingest --index vdb -q vol || exit 15
"$B" dedup --index vdb --action trash --yes >>tout 2>>terr || exit 16
[ -f vol/.Trash-$u/files/b.jpg ] && [ -z "$(ls vol/elsewhere)" ] || exit 17
# nor one without the sticky bit
"$B" undo --index vdb --yes >>tout 2>>terr || exit 18
rm -rf vol/.Trash vol/.Trash-$u && mkdir -m 0777 vol/.Trash
"$B" ingest --index vdb -q vol || exit 19
"$B" dedup --index vdb --action trash --yes >>tout 2>>terr || exit 20
[ -f vol/.Trash-$u/files/b.jpg ] && [ -z "$(ls vol/.Trash)" ] || exit 21
umount vol
EOF
	DATA=$DATA B=$B unshare -rm bash topdir.sh
	local rc=$?
	[ $rc = 0 ] || fail "top-directory trash: step $rc: $(cat tout terr 2>/dev/null | head -c 1500)"
}

if [ $# -gt 0 ]; then
	for t in "$@"; do run "$t"; done
	exit 0
fi
run test_two_spellings
run test_symlinked_component
run test_race
run test_rewritten
run test_hardlink_rules
run test_trash_undo
run test_move_undo
run test_odd_names
run test_paths_identity
run test_topdir_trash
