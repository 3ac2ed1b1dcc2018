#!/bin/bash
# End-to-end tests of the image formats beyond JPEG and PNG: a folder that
# mixes every format with files that are not images (all images embedded,
# the others counted by kind and listed by -v), cross-format near-duplicates
# found with the trained model, and undecodable files named. Run by
# `make test` with the binary in $NEARDUP_BIN, from the repository root.
set -u
B=${NEARDUP_BIN:?NEARDUP_BIN must name the neardup binary}
ROOT=$(pwd)
DATA=$ROOT/data
FMT=$ROOT/tests/data/formats
export NEARDUP_MODEL=$ROOT/tests/data/cli/tiny.ndm
unset NEARDUP_INDEX
. "$ROOT/tests/lib_e2e.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/neardup-e2e.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
has() { grep -qF -- "$1" "$2" || fail "'$1' not in $2: $(head -c 600 "$2")"; }

test_mixed_folder() {
	mkdir -p mixed/sub
	cp "$FMT/lossy.webp" "$FMT/anim.gif" "$FMT/lzw.tif" "$FMT/rgb24.bmp" "$FMT/p6.ppm" \
		"$FMT/rgb.heic" "$FMT/rgb.avif" "$DATA/chelsea.jpg" "$DATA/coins.png" mixed/
	cp "$FMT/tiled.tif" mixed/sub/scan # no extension: told by content
	echo "shopping list" >mixed/notes.txt
	printf '\0\0\0\030ftypmp42\0\0\0\0mp42isom' >mixed/sub/clip.mp4
	printf 'PK\003\004\024\0\0\0' >mixed/photos.zip
	expect 0 "$B" ingest -v --index db mixed
	has "13 files: 10 embedded, 0 exact duplicates, 0 unchanged, 0 failed, 3 ignored: 1 text, 1 video, 1 archive in" err
	has "neardup: ignored 'mixed/notes.txt': text" err
	has "neardup: ignored 'mixed/sub/clip.mp4': video" err
	# without -v the kinds are still counted, the files not listed
	expect 0 "$B" ingest --index db2 mixed
	has "3 ignored: 1 text, 1 video, 1 archive" err
	! grep -q "neardup: ignored" err || fail "ignored files listed without -v"
}

test_bad_files_named() {
	mkdir -p bad
	echo "not a picture" >bad/holiday.webp
	head -c 300 "$FMT/rgb.heic" >bad/cut.heic
	head -c 100 "$FMT/lzw.tif" >bad/cut.tif
	expect 1 "$B" ingest --index db3 bad
	has "neardup: cannot decode 'bad/holiday.webp': not a supported image format" err
	has "neardup: cannot decode 'bad/cut.heic': " err
	has "neardup: cannot decode 'bad/cut.tif': " err
	has "3 files: 0 embedded, 0 exact duplicates, 0 unchanged, 3 failed, 0 ignored" err
}

# A large progressive JPEG (24 MP: its coefficients need more than the
# per-decode bound) is decoded in the one wide decoding lane, not refused;
# one far beyond it (10000 x 10000) is refused, naming the file.
test_large_progressive() {
	mkdir -p big
	{ printf 'P6\n6000 4000\n255\n'; head -c 72000000 /dev/zero | tr '\0' '\200'; } >big.pgm
	cjpeg -progressive -quality 90 big.pgm >big/p24.jpg || { fail "cjpeg failed"; return; }
	{ printf 'P5\n10000 10000\n255\n'; head -c 100000000 /dev/zero; } >huge.pgm
	cjpeg -progressive huge.pgm >big/huge.jpg || { fail "cjpeg failed"; return; }
	rm -f big.pgm huge.pgm
	expect 1 "$B" ingest -j 2 --index db5 big
	has "2 files: 1 embedded" err
	has "neardup: cannot decode 'big/huge.jpg': progressive JPEG 10000x10000 needs" err
	expect 0 "$B" query --index db5 big/p24.jpg
}

test_cross_format_trained() {
	if [ ! -f "$ROOT/models/neardup.ndm" ]; then
		echo "SKIP test_cross_format_trained (no models/neardup.ndm)"
		t_skip=1
		return
	fi
	mkdir -p orig
	cp "$DATA/chelsea.jpg" "$DATA/coffee.jpg" "$DATA/astronaut.jpg" "$DATA/rocket.jpg" orig/
	expect 0 "$B" ingest --model "$ROOT/models/neardup.ndm" --index tdb orig
	for pair in "coffee_web.webp coffee.jpg" "chelsea_phone.heic chelsea.jpg"; do
		set -- $pair
		expect 0 "$B" query --model "$ROOT/models/neardup.ndm" --index tdb -k 1 "$DATA/$1"
		first=$(awk -F'\t' 'NR == 1 { n = split($2, p, "/"); print p[n] }' out)
		[ "$first" = "$2" ] || fail "$1: first result '$first', want '$2'"
	done
}

run test_mixed_folder
run test_bad_files_named
run test_large_progressive
run test_cross_format_trained
