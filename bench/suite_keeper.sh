#!/bin/sh
# The keeper benchmark: how often dedup's keep rule keeps the original of a
# family of near-duplicates, per edit kind, for the default rule "original"
# and the old default "resolution", in the same run (bench/bench_keeper.c).
#
#   sh bench/suite_keeper.sh quick|full        ($O: build dir, default build/rel)
#
# Both modes use the whole dev set (bench/corpus/make_devset.py: 250
# originals, 17 edited copies each); it is built into cache/dev/devset/ when
# missing. The files' mtimes are as make_devset.py wrote them: each original
# before its copies, as a copy is made after its source; the column "no
# file times" shows what the pictures alone decide. Writes
# bench/results/keeper.md.
set -eu
mode=${1:-quick}
cd "$(dirname "$0")/.."
O=${O:-build/rel}
PY=/usr/bin/python3
BK=$O/bench/bench_keeper
case "$mode" in
quick | full) ;;
*) echo "suite_keeper: mode must be quick or full" >&2; exit 2 ;;
esac
make --no-print-directory "$BK" >&2
if [ ! -f cache/dev/devset/manifest.tsv ]; then
	[ -d cache/dev/pkgs ] || bench/corpus/fetch_dev_packages.sh
	$PY bench/corpus/make_devset.py
fi
out=bench/results/keeper.md
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
"$BK" cache/dev/devset/manifest.tsv >"$tmp"
{
	echo "# Keeper benchmark"
	echo
	echo "\`make bench BENCH_ONLY=keeper\` → \`sh bench/suite_keeper.sh $mode\`; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (modified)'), $(date -u +%Y-%m-%dT%H:%M:%S)."
	echo
	echo "How often a keep rule keeps the original, on the dev set (\`bench/corpus/make_devset.py\`): each"
	echo "original with its 17 edited copies. Every file is measured as \`neardup ingest\` measures it"
	echo "(decoded at the model's input scale, originality record from pixels and bytes, size and mtime"
	echo "from the file) and ranked by \`nd_keep_cmp\` (neardup/keep.h), the comparison \`neardup dedup\` uses."
	echo "An *ideal family* counts when the original ranks first of all 18 files; a *pair* when it ranks"
	echo "before that one copy. The mtimes are those make_devset.py gave (each original written before its"
	echo "copies); *no file times* is the default rule with all mtimes equal: what the pictures decide."
	echo
	cat "$tmp"
} >"$out"
cat "$out"
