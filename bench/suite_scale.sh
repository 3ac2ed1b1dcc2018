#!/bin/sh
# Scaling measurements of neardup-mpi on one machine (bench/results/scale.md):
# ingest of IMG_DIR, query and dedup of a 1M-vector synthetic collection,
# at 1, 2 and 4 ranks, each rank reporting its time and bytes per stage
# (NEARDUP_MPI_STATS). Wall and CPU time from /usr/bin/time.
#   O=build/rel sh bench/suite_scale.sh IMG_DIR WORK_DIR [N]
set -u
O=${O:-build/rel}
IMG=${1:?IMG_DIR}
W=${2:?WORK_DIR}
N=${3:-1000000}
B=$O/neardup
M=$O/neardup-mpi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NEARDUP_MPI_STATS=1
TIME="/usr/bin/time -f %e_s_wall_%U_s_user_%S_s_sys_%M_KB_maxrss"
mkdir -p "$W"
echo "== ingest of $(ls "$IMG" | wc -l) images"
rm -rf "$W/one"
$TIME $B ingest -q --index "$W/one" "$IMG"
for np in 1 2 4; do
	rm -rf "$W/ing$np"
	echo "-- $np ranks, -j 1 each"
	$TIME mpirun -np $np --oversubscribe $M ingest -q -j 1 --shards 4 --index "$W/ing$np" "$IMG"
done
echo "-- walk only (everything unchanged), 4 ranks"
$TIME mpirun -np 4 --oversubscribe $M ingest -q -j 1 --index "$W/ing4" "$IMG"
echo "== collection of $N synthetic vectors, 4 shards"
[ -f "$W/syn/manifest" ] || $TIME $O/bench/bench_shard -n "$N" -s 4 -o "$W/syn"
Q=$(ls data/*.jpg)
echo "== query of $(echo $Q | wc -w) images"
$TIME $B query --index "$W/syn" --format jsonl $Q >"$W/q_local"
for np in 1 2 4; do
	echo "-- $np ranks"
	$TIME mpirun -np $np --oversubscribe $M query --index "$W/syn" --format jsonl $Q >"$W/q$np"
	cmp -s "$W/q_local" "$W/q$np" && echo "same answers as one machine" || echo "ANSWERS DIFFER"
done
echo "== dedup (self-join, --score raw --min-sim 0.8)"
$TIME $B dedup -q --index "$W/syn" --score raw --min-sim 0.8 --format jsonl >"$W/d_local"
for np in 1 2 4; do
	echo "-- $np ranks"
	$TIME mpirun -np $np --oversubscribe $M dedup -q --index "$W/syn" --score raw --min-sim 0.8 --format jsonl >"$W/d$np"
done
