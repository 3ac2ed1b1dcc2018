#!/bin/sh
# One slice of training on a lent GPU machine (the `device` tool's `run`; see
# models/README.md, "Training on a GPU machine"). Nothing depends on it: the
# same train.py runs on the CPU.
#
#   sh models/train/gpu_train.sh train.py-options...
#
# The 64 MiB that travel with the working tree cannot hold the 1.7 GB image
# store, so `data.py pack cache/gpu` splits it into WebP parts of ~42 MB and
# each call carries one (carry: ["cache/gpu/partK"]). Parts are kept under
# /tmp/ndtrain/packs while the machine stays warm, and every part seen so far
# is unpacked into the store this slice trains on. The run's state lives in
# /tmp/ndtrain/run, so a following call resumes with --resume; the compact
# checkpoint, the log and the last snapshot come back through $OUT (a
# machine given back loses /tmp: resume from the returned compact file).
set -eu
cd "$(dirname "$0")/../.."
W=/tmp/ndtrain
export NEARDUP_TRAIN_CACHE=$W/store PYTHONUNBUFFERED=1
mkdir -p "$W/packs" "$W/run" "$W/store"
new=0
for d in cache/gpu/part*; do
	[ -f "$d/pack.bin" ] || continue
	k=$(basename "$d")
	if [ ! -f "$W/packs/$k/pack.bin" ]; then
		mkdir -p "$W/packs/$k" && cp "$d/pack.bin" "$d/pack.npz" "$W/packs/$k/"
		new=1
	fi
done
# augment.py draws text in the training fonts (Debian's fonts-dejavu), absent there
if [ -d cache/gpu/fonts ] && [ ! -d "$W/fonts" ]; then cp -r cache/gpu/fonts "$W/fonts"; fi
if [ -d "$W/fonts" ]; then export NEARDUP_FONT_DIR=$W/fonts; fi
python3 -c 'import sys; sys.path.insert(0, "models/train"); import augment as a, os; \
missing = [f for f in a.TRAIN_FONTS if not os.path.exists(os.path.join(a.FONT_DIR, f))]; \
print("fonts:", a.FONT_DIR, "missing", missing) if missing else print("fonts: ok")'
if [ $new = 1 ] || [ ! -f "$W/store/index.npz" ]; then
	python3 models/train/data.py unpack "$W"/packs/part*
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
status=0
python3 models/train/train.py --device cuda --out "$W/run" --compact "$W/run/checkpoint.pt" "$@" || status=$?
out=${OUT:-$W/out}
mkdir -p "$out"
cp "$W/run/checkpoint.pt" "$W/run/log.txt" "$out/" 2>/dev/null || true
last=$(ls -t "$W"/run/ckpt_step*.pt 2>/dev/null | head -1 || true)
[ -n "$last" ] && cp "$last" "$out/" || true
exit $status
