#!/bin/sh
# The keeper benchmark: how often dedup's keep rule keeps the original of a
# family of near-duplicates, per edit kind, for the default rule "original"
# and the old default "resolution", in the same run (bench/bench_keeper.c).
#
#   sh bench/suite_keeper.sh quick|full        ($O: build dir, default build/rel)
#
# Both modes rank the whole dev set (bench/corpus/make_devset.py: 250
# originals, 17 edited copies each; built into cache/dev/devset/ when
# missing). full also runs the CLI: ingest of the first $KEEPER_CLI_N
# (default 250) families, then `neardup dedup` with each rule, and counts the
# groups as dedup forms them. The files' mtimes are as make_devset.py wrote them: each original
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
if [ "$mode" = full ]; then
	N=${KEEPER_CLI_N:-250}
	W=cache/keeper/run
	rm -rf "$W"
	mkdir -p "$W"
	awk -F'\t' -v n="$N" -v r="$(pwd)/cache/dev/devset/" 'NR > 1 && $3 >= 0 && $3 < n { print r $2 }' \
		cache/dev/devset/manifest.tsv >"$W/files.txt"
	xargs -a "$W/files.txt" -d "\n" "$O/neardup" ingest -q -j 2 --index "$W/db"
	for rule in original resolution; do
		"$O/neardup" dedup --index "$W/db" --keep $rule --format jsonl >"$W/$rule.jsonl"
	done
	$PY - "$W" cache/dev/devset/manifest.tsv "$N" >>"$out" <<'PYEOF'
import json, sys, os
w, manifest, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam, orig = {}, set()
for line in open(manifest):
    f = line.rstrip("\n").split("\t")
    if f[0] == "role" or int(f[2]) < 0 or int(f[2]) >= n:
        continue
    fam[f[1]] = int(f[2])
    if f[3] == "original":
        orig.add(f[1])
def rel(p):
    return p.split("/devset/", 1)[1]
print("\nThrough the CLI (`neardup ingest` of the first %d families, %d files; `neardup dedup` at its "
      "default threshold, each rule): groups with an original and at least one of its copies, and how often "
      "the kept file is that original.\n" % (n, len(fam)))
print("| rule | groups with an original | kept the original | groups | files in groups |\n|---|---:|---:|---:|---:|")
for rule in ("original", "resolution"):
    g = ok = total = files = 0
    for line in open(os.path.join(w, rule + ".jsonl")):
        d = json.loads(line)
        mem = [rel(m["path"]) for m in d["members"]]
        total += 1
        files += len(mem)
        origs = [m for m in mem if m in orig]
        for o in origs:
            if any(fam[m] == fam[o] and m != o for m in mem):
                g += 1
                ok += rel(d["keep"]) == o
    print("| %s | %d | %.1f%% | %d | %d |" % (rule, g, 100.0 * ok / g if g else 0, total, files))
PYEOF
fi
cat "$out"
