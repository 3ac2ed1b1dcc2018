#!/bin/bash
# End-to-end tests of neardup-mpi under `mpirun -np 4 --oversubscribe` on
# one machine: a distributed ingest holds the images a single-machine
# ingest holds; query and dedup under mpirun answer exactly as the same
# collection searched on one machine, and group as one index does; a rank
# killed during ingest loses nothing that was committed, and the same
# command resumes; shards that disagree with the manifest are an error.
# Run by `make test-mpi` with $NEARDUP_BIN and $NEARDUP_MPI_BIN, from the
# repository root. The model is the tiny test model (see e2e_cli.sh).
set -u
B=${NEARDUP_BIN:?NEARDUP_BIN must name the neardup binary}
M=${NEARDUP_MPI_BIN:?NEARDUP_MPI_BIN must name the neardup-mpi binary}
ROOT=$(pwd)
export NEARDUP_MODEL=$ROOT/tests/data/cli/tiny.ndm
unset NEARDUP_INDEX
# mpirun refuses root unless told; CI runs as root
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
. "$ROOT/tests/lib_e2e.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/neardup-mpi.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
RAW="--score raw --min-sim 0.975" # the tiny model's mild-edit threshold (e2e_cli.sh)
MPI="mpirun -np 4 --oversubscribe"

has() { grep -qF -- "$1" "$2" || fail "'$1' not in $2: $(head -c 600 "$2")"; }
cp -r "$ROOT/data" data
expect 0 "$B" ingest -q -j 1 --index one data
"$B" stats --list --index one | sort >list1

test_ingest() {
	expect 0 $MPI "$M" ingest -q -j 1 --shards 4 --index sh data
	"$B" stats --list --index sh | sort >list2
	[ -s list1 ] || fail "no images listed"
	cmp -s list1 list2 || fail "the collection holds other images: $(diff list1 list2 | head -5)"
	expect 0 "$B" check --index sh
	has "0 problems" out
	# each rank wrote only the shards it owns, and every shard got images
	for s in 0 1 2 3; do
		n=$("$B" stats --index sh/shard-000$s | awk -F'\t' '$1 == "images" { print $2 }')
		[ "${n:-0}" -gt 0 ] || fail "shard $s is empty"
	done
	# a second run: everything unchanged, nothing sent
	expect 0 $MPI "$M" ingest -j 1 --index sh data
	! grep -q " [1-9][0-9]* embedded" err || fail "files embedded again: $(cat err)"
}

test_query() {
	"$B" query --index sh --format jsonl data/*.jpg data/*.png >q_local
	expect 0 $MPI "$M" query --index sh --format jsonl data/*.jpg data/*.png
	[ "$(wc -l <out)" -gt 10 ] || fail "too few query lines"
	cmp -s q_local out || fail "mpirun query differs from the local one: $(diff q_local out | head -4)"
	# against one index: the same best hit (the vectors' last bits depend
	# on the CNN's batches, which differ between the runs)
	"$B" query --index one --format jsonl data/*.jpg data/*.png | jq -c '[.query, .results[0].path]' >t1
	jq -c '[.query, .results[0].path]' out >t2
	cmp -s t1 t2 || fail "best hits differ from one index's: $(diff t1 t2 | head -4)"
}

test_dedup() {
	"$B" dedup -q --index sh $RAW --format jsonl >d_local
	[ -s d_local ] || fail "no groups"
	for np in 4 3; do
		expect 0 mpirun -np $np --oversubscribe "$M" dedup -q --index sh $RAW --format jsonl
		cmp -s d_local out || fail "mpirun -np $np dedup differs from the local one: $(diff d_local out | head -4)"
	done
	"$B" dedup -q --index one $RAW --format jsonl | jq -c '[.keep, ([.members[].path] | sort)]' >g1
	jq -c '[.keep, ([.members[].path] | sort)]' out >g2
	cmp -s g1 g2 || fail "groups differ from one index's: $(diff g1 g2 | head -4)"
}

test_kill_resume() {
	# rank 1 dies after its pipeline committed, before the records for
	# other ranks' shards are exchanged
	NEARDUP_TEST_KILL_RANK=1 $MPI "$M" ingest -q -j 1 --shards 4 --index k data >out 2>err
	[ $? != 0 ] || fail "mpirun did not fail when a rank was killed"
	expect 0 "$B" check --index k
	has "0 problems" out
	"$B" stats --list --index k | sort >partial
	[ -s partial ] || fail "nothing committed before the kill"
	[ "$(wc -l <partial)" -lt "$(wc -l <list1)" ] || fail "nothing lost with the killed rank: test shows nothing"
	[ -z "$(comm -23 partial list1)" ] || fail "images that a single ingest does not hold"
	# the same command again finishes the job, skipping what was committed
	expect 0 $MPI "$M" ingest -j 1 --shards 4 --index k data
	unchanged=$(grep -o '[0-9]* unchanged' err | awk '{ s += $1 } END { print s + 0 }')
	[ "$unchanged" = "$(wc -l <partial)" ] || fail "resumed run skipped $unchanged files, $(wc -l <partial) were committed"
	"$B" stats --list --index k | sort >resumed
	cmp -s list1 resumed || fail "resumed collection differs: $(diff list1 resumed | head -5)"
	expect 0 "$B" check --index k
}

test_disagree() {
	cp -r sh bad
	rm -rf bad/shard-0003
	expect 2 $MPI "$M" dedup --index bad $RAW
	has "bad/shard-0003" err
	has "missing" err
	rm -rf bad
	expect 2 $MPI "$M" ingest -q --index none data
	has "--shards" err
}

run test_ingest
run test_query
run test_dedup
run test_kill_resume
run test_disagree
