#!/bin/sh
# The main job on the bundled sample corpus (data/, see data/README.md):
#  1. the decode stage: every image decoded as ingest does it (format by magic
#     bytes, EXIF orientation, DCT/box reduction) and preprocessed;
#  2. with the trained model (models/neardup.ndm): ingest data/ into a fresh
#     index, ask for each near-duplicate listed in data/dups.tsv which image
#     it copies, and print the duplicate groups.
#   scripts/demo.sh [path/to/neardup]     (make demo builds it first)
set -eu
bin=${1:-build/rel/neardup}
cd "$(dirname "$0")/.."
[ -x "$bin" ] || make --no-print-directory
"$bin" --version
echo "== decode + prep of data/"
"$bin" inspect --size 224x224 data/*.jpg data/*.png data/*.webp data/*.heic

if [ ! -f models/neardup.ndm ] && [ -z "${NEARDUP_MODEL:-}" ]; then
	echo "== no trained model yet (models/neardup.ndm is missing);"
	echo "   ingest, query and dedup run once it ships, or with NEARDUP_MODEL=FILE"
	exit 0
fi

db=$(mktemp -d "${TMPDIR:-/tmp}/neardup-demo.XXXXXX")
trap 'rm -rf "$db"' EXIT
# A collection of the originals (every sample image not listed as a copy),
# which each near-duplicate is then looked up in.
mkdir "$db/originals"
grep -v '^#' data/dups.tsv | cut -f1 >"$db/copies"
for f in data/*.jpg data/*.png data/*.webp data/*.heic; do
	grep -qxF "$(basename "$f")" "$db/copies" || cp -p "$f" "$db/originals/"
done
echo "== ingest the originals ($(ls "$db/originals" | wc -l) images)"
"$bin" ingest --index "$db/orig.db" "$db/originals"
echo "== query: each near-duplicate's best match among the originals"
ok=0 n=0
while IFS='	' read -r copy orig what; do
	case "$copy" in '#'*|'') continue ;; esac
	n=$((n + 1))
	best=$("$bin" query -q --index "$db/orig.db" -k 1 "data/$copy" | cut -f2,3)
	case "$best" in */"$orig"'	'*) ok=$((ok + 1)); mark=ok ;; *) mark=MISS ;; esac
	printf '%-4s %-24s -> %-34s (%s)\n' "$mark" "$copy" "$(echo "$best" | sed "s|$db/originals/||")" "$what"
done < data/dups.tsv
echo "$ok of $n near-duplicates found their original first"
echo "== ingest all of data/ and group the near-duplicates (kept file first)"
"$bin" ingest --index "$db/all.db" data/
"$bin" dedup -q --index "$db/all.db"
