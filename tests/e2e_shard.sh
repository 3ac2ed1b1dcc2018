#!/bin/bash
# End-to-end tests of sharded collections on one machine (no MPI): ingest
# --shards N holds the images a single index holds; stats, check, query,
# dedup and remove work on the collection and answer as the single index
# does; a second ingest skips everything; a manifest and shards that
# disagree are an error naming the file. Run by `make test` with the binary
# in $NEARDUP_BIN, from the repository root. The model is the tiny test
# model (see e2e_cli.sh).
set -u
B=${NEARDUP_BIN:?NEARDUP_BIN must name the neardup binary}
ROOT=$(pwd)
DATA=$ROOT/data
export NEARDUP_MODEL=$ROOT/tests/data/cli/tiny.ndm
unset NEARDUP_INDEX
. "$ROOT/tests/lib_e2e.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/neardup-shard.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
RAW="--score raw --min-sim 0.975" # the tiny model's mild-edit threshold (e2e_cli.sh)

has() { grep -qF -- "$1" "$2" || fail "'$1' not in $2: $(head -c 600 "$2")"; }
cp -r "$DATA" data
# one index and a collection of 3 shards, from the same files, the same way
expect 0 "$B" ingest -q -j 1 --index one data
expect 0 "$B" ingest -q -j 1 --index sh --shards 3 data

test_same_images() {
	expect 0 "$B" stats --index sh
	has $'shards\t3' out
	"$B" stats --list --index one | sort >list1
	"$B" stats --list --index sh | sort >list2
	[ -s list1 ] || fail "no images listed"
	cmp -s list1 list2 || fail "the collection holds other images: $(diff list1 list2 | head -5)"
	for s in sh/shard-0000 sh/shard-0001 sh/shard-0002; do
		[ -f "$s/data.mdb" ] || fail "no shard $s"
	done
	expect 0 "$B" check --index sh
	has "0 problems" out
	# a second run finds everything unchanged
	expect 0 "$B" ingest --index sh data
	has " 0 embedded" err
}

test_query_dedup_equal() {
	# The CNN's batches, and so the last bits of a vector (~1e-5), depend on
	# which images the worker has at hand when it starts a batch: the two
	# ingests above need not store identical vectors. So: the same best hit
	# for every query, and the same groups; exact equality on identical
	# vectors is tests/test_shard.c's.
	"$B" query --index one --format jsonl data/*.jpg data/*.png | jq -c '[.query, .results[0].path]' >q1
	"$B" query --index sh --format jsonl data/*.jpg data/*.png | jq -c '[.query, .results[0].path]' >q2
	[ "$(wc -l <q1)" -gt 10 ] || fail "too few query lines"
	cmp -s q1 q2 || fail "query answers differ: $(diff q1 q2 | head -4)"
	expect 0 "$B" dedup --index one $RAW --format jsonl
	jq -c '[.keep, ([.members[].path] | sort)]' out >d1
	expect 0 "$B" dedup --index sh $RAW --format jsonl
	jq -c '[.keep, ([.members[].path] | sort)]' out >d2
	[ -s d1 ] || fail "no groups"
	cmp -s d1 d2 || fail "dedup groups differ: $(diff d1 d2 | head -4)"
	# on one collection, every answer is the same whatever the threads
	"$B" query --index sh --format jsonl data/*.jpg >q3
	"$B" query --index sh --format jsonl data/*.jpg >q4
	cmp -s q3 q4 || fail "two queries of one collection differ"
}

test_remove() {
	cp -r sh sh2
	expect 0 "$B" remove --index sh2 data/chelsea.jpg
	"$B" stats --list --index sh2 | cut -f1 | sort >l
	! grep -qx data/chelsea.jpg l || fail "removed image still listed"
	[ "$(wc -l <l)" = $(($(wc -l <list1) - 1)) ] || fail "remove took more than one image"
	expect 0 "$B" check --index sh2
}

test_disagree() {
	# another shard count than the manifest's
	expect 2 "$B" ingest -q --index sh --shards 4 data
	has "sh/manifest" err
	has "3 shards" err
	# a damaged manifest: named, with the reason
	cp -r sh bad
	printf '\x55' | dd of=bad/manifest bs=1 seek=60 conv=notrunc 2>/dev/null
	expect 2 "$B" stats --index bad
	has "bad/manifest" err
	has "damaged" err
	# a shard gone
	rm -rf bad
	cp -r sh bad
	rm -rf bad/shard-0002
	expect 2 "$B" query --index bad data/chelsea.jpg
	has "bad/shard-0002" err
	has "missing" err
	# a shard that is another collection's: its images are in the wrong place
	rm -rf bad
	cp -r sh bad
	mv bad/shard-0000 bad/x && mv bad/shard-0001 bad/shard-0000 && mv bad/x bad/shard-0001
	expect 1 "$B" check --index bad
	has "belongs in shard" out
	# --shards on a directory holding one index
	expect 2 "$B" ingest -q --index one --shards 2 data
	has "one index" err
}

run test_same_images
run test_query_dedup_equal
run test_remove
run test_disagree
