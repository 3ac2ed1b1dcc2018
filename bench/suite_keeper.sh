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
# groups as dedup forms them; bench_keeper then reads the vectors that
# ingest stored, for the group choice (nd_keep_choose). The files' mtimes are as make_devset.py wrote them: each original
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
N=${KEEPER_CLI_N:-250}
W=cache/keeper/run
idx=""
if [ "$mode" = full ]; then
	rm -rf "$W"
	mkdir -p "$W"
	awk -F'\t' -v n="$N" -v r="$(pwd)/cache/dev/devset/" 'NR > 1 && $3 >= 0 && $3 < n { print r $2 }' \
		cache/dev/devset/manifest.tsv >"$W/files.txt"
	xargs -a "$W/files.txt" -d "\n" "$O/neardup" ingest -q -j 2 --index "$W/db"
	for rule in original resolution; do
		"$O/neardup" dedup --index "$W/db" --keep $rule --format jsonl >"$W/$rule.jsonl"
	done
	$PY -c 'import json, sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    for m in d["members"]:
        print("%d\t%s" % (d["group"], m["path"]))' "$W/original.jsonl" >"$W/groups.tsv"
	idx="--index $W/db --prefix $(pwd)/cache/dev/devset/ --groups $W/groups.tsv --groups-out $W/groups-out.tsv"
fi
# shellcheck disable=SC2086 # idx is a list of options
"$BK" $idx cache/dev/devset/manifest.tsv >"$tmp"
{
	echo "# Keeper benchmark"
	echo
	echo "\`make bench$([ "$mode" = full ] && echo -full) BENCH_ONLY=keeper\` → \`sh bench/suite_keeper.sh $mode\`; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (modified)'), $(date -u +%Y-%m-%dT%H:%M:%S)."
	echo
	echo "How often a keep rule keeps the original, on the dev set (\`bench/corpus/make_devset.py\`): each"
	echo "original with its 17 edited copies. Every file is measured as \`neardup ingest\` measures it"
	echo "(decoded at the model's input scale, originality record from pixels and bytes, size and mtime"
	echo "from the file) and ranked by \`nd_keep_cmp\` (neardup/keep.h), the comparison \`neardup dedup\` uses."
	echo "An *ideal family* counts when the original is kept of all 18 files; a *pair* when it is kept"
	echo "of it and that one copy. *group* is \`nd_keep_choose\`, the choice dedup makes for a group: the"
	echo "most central members (mean cosine of the CNN vectors stored by ingest, in full mode) of the shape"
	echo "most members share, then the pair rule; *pair rule* is \`nd_keep_cmp\` alone (dedup before)."
	echo "For a pair, centrality is symmetric and the pair rule decides. The mtimes are those make_devset.py"
	echo "gave (each original written before its copies); *no file times* is with all mtimes equal: what"
	echo "the pictures decide."
	echo
	cat "$tmp"
} >"$out"
if [ "$mode" = full ]; then
	$PY - "$W" cache/dev/devset/manifest.tsv "$N" >>"$out" <<'PYEOF'
import json, sys, os, collections
w, manifest, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam, orig, kind = {}, set(), {}
for line in open(manifest):
    f = line.rstrip("\n").split("\t")
    if f[0] == "role" or int(f[2]) < 0 or int(f[2]) >= n:
        continue
    fam[f[1]] = int(f[2])
    kind[f[1]] = f[3]
    if f[3] == "original":
        orig.add(f[1])
def rel(p):
    return p.split("/devset/", 1)[1] if p else ""
bench = {}
for line in open(os.path.join(w, "groups-out.tsv")):
    g, pair, content = line.rstrip("\n").split("\t")
    bench[int(g)] = (rel(pair), rel(content))
print("\nThrough the CLI (`neardup ingest` of the first %d families, %d files; `neardup dedup` at its "
      "default threshold): groups with an original and at least one of its copies, and how often "
      "the kept file is that original. *original, group* and *resolution* are dedup's own output; the "
      "other two rows are dedup's groups of the default rule, kept by bench_keeper: by the pair rule "
      "(what dedup kept before), and by the group choice with all mtimes equal (all members candidates; "
      "dedup only lets members within the threshold of every other one be kept).\n" % (n, len(fam)))
print("| rule | groups with an original | kept the original | odd-numbered families | kept instead (edit kind: groups) | groups | files in groups |\n|---|---:|---:|---:|---|---:|---:|")
def tally(title, src, pick):
    g = ok = total = files = go = okodd = 0
    lost = collections.Counter()
    for line in open(os.path.join(w, src + ".jsonl")):
        d = json.loads(line)
        mem = [rel(m["path"]) for m in d["members"]]
        total += 1
        files += len(mem)
        kept = pick(d)
        for o in [m for m in mem if m in orig]:
            if any(fam[m] == fam[o] and m != o for m in mem):
                g += 1
                ok += kept == o
                if fam[o] % 2:
                    go += 1
                    okodd += kept == o
                if kept != o:
                    lost[kind.get(kept, "other family")] += 1
    print("| %s | %d | %.1f%% | %.1f%% | %s | %d | %d |" % (title, g, 100.0 * ok / g if g else 0,
          100.0 * okodd / go if go else 0, ", ".join("%s: %d" % kv for kv in lost.most_common()), total, files))
tally("original, group (default)", "original", lambda d: rel(d["keep"]))
tally("original, group, no file times", "original", lambda d: bench[d["group"]][1])
tally("original, pair rule (before)", "original", lambda d: bench[d["group"]][0])
tally("resolution", "resolution", lambda d: rel(d["keep"]))
PYEOF
fi
cat "$out"
