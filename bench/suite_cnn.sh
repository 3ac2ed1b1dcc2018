#!/bin/sh
# CNN engine benchmark: bench_cnn (sgemm reference rate, per-layer GFLOP/s,
# images/s on 1 and 2 worker threads at batch 1 and 16) on the benchmark
# architecture (bench/benchnet.py), beside PyTorch's CPU inference of the
# same model (bench/torch_infer.py) in the same run, then the engine with
# OpenBLAS's Haswell and Prescott kernels forced (Debian's own choices on
# this kind of CPU) for comparison. Writes bench/results/cnn.md.
#   sh bench/suite_cnn.sh quick|full      ($O = build dir, default build/rel)
set -eu
mode=${1:-quick}
O=${O:-build/rel}
secs=2
[ "$mode" = full ] && secs=5
py=/usr/bin/python3
model=cache/bench/benchnet.ndm
out=bench/results/cnn.md
mkdir -p cache/bench bench/results
if [ ! -f "$model" ] || [ bench/benchnet.py -nt "$model" ] || [ models/export.py -nt "$model" ]; then
	$py bench/benchnet.py "$model" >/dev/null
fi
[ -x "$O/bench/bench_cnn" ] || { echo "suite_cnn: build $O/bench/bench_cnn first (make bench)" >&2; exit 2; }
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
{
	echo "# CNN engine benchmark ($mode)"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'),"
	echo "CPU: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1), $(nproc) cores;"
	echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared: figures are"
	echo "the best 0.5 s window of each ${secs} s point, means beside them)."
	echo
	echo "Command: \`O=$O sh bench/suite_cnn.sh $mode\`"
	echo
	echo "## neardup engine (OpenBLAS core chosen automatically)"
	echo
	"$O/bench/bench_cnn" "$model" --seconds "$secs" --embed cache/bench/c_embed.f32
	echo
	echo "## PyTorch CPU, same model, same input"
	echo
	echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	$py bench/torch_infer.py --seconds "$secs" --check cache/bench/c_embed.f32
	echo
	for core in Haswell Prescott; do
		echo "## neardup engine with OPENBLAS_CORETYPE=$core"
		echo
		OPENBLAS_CORETYPE=$core "$O/bench/bench_cnn" "$model" --seconds "$secs" --threads 1 --batches 1,16 --no-layers
		echo
	done
} >"$tmp"
mv "$tmp" "$out"
trap - EXIT
cat "$out"
