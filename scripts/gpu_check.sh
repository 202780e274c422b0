#!/usr/bin/env bash
# Training on a GPU, checked end to end: a few epochs of the default recipe on a GPU
# (validation scores videos through the detector, as `avdf detect` does), the same on the
# CPU for the time ratio; the GPU-trained checkpoint comes back for `avdf tune` and `avdf evaluate`
# (run here too when PyAV is installed).
# CI has no GPU; run this where one is lent.
#
# Usage:
#   scripts/gpu_check.sh prepare MANIFEST CACHE DIR [N]   # here: N videos per split (default 8)
#   scripts/gpu_check.sh run DIR [EPOCHS]                 # on the GPU machine (default 3)
# `prepare` copies N cached train, dev and test videos of a fold manifest (scripts/make_folds.py)
# and their cache files into DIR (about 2 MB per video), so DIR can travel without the corpus.
# `run` needs torch and lightning only (no PyAV or MediaPipe: everything is read from the
# cache); it uses python3 and PYTHONPATH=src, writes logs and a timing table to ${OUT:-DIR/out}
# and exits non-zero at the first failing step.
set -euo pipefail
mode=$1
root=$(cd "$(dirname "$0")/.." && pwd)

if [[ $mode == prepare ]]; then
  manifest=$2 cache=$3 dir=$4 n=${5:-8}
  mkdir -p "$dir/cache"
  PYTHONPATH="$root/src" python3 - "$manifest" "$cache" "$dir" "$n" <<'EOF'
import json, shutil, sys
from pathlib import Path

from avdf.preprocess.cache import cache_path_for

manifest, cache, out, n = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
kept, per_split = [], {}
for line in open(manifest):
    row = json.loads(line)
    if per_split.get(row["split"], 0) >= n:
        continue
    source = cache_path_for(cache, row["id"])
    if not source.is_file():
        continue
    per_split[row["split"]] = per_split.get(row["split"], 0) + 1
    shutil.copy(source, out / "cache" / source.name)
    kept.append(line)
(out / "manifest.jsonl").write_text("".join(kept))
print(f"{out}: {per_split}")
EOF
  exit 0
fi

dir=$2 epochs=${3:-3}
out=${OUT:-$dir/out}
mkdir -p "$out"
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
cd "$root"
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())"
common=(--max-epochs "$epochs" --force --set data.dataset=null --set data.root=null
  --set data.manifest="$dir/manifest.jsonl" --set data.cache_dir="$dir/cache"
  --set model.kwargs.experts=[] --set trainer.early_stopping_patience=100
  --set data.windows_per_video=24)  # enough steps per epoch for the time ratio
train() {  # train DEVICE: one run, its log in $out; prints its wall seconds
  local t0=$SECONDS
  python3 -m avdf train configs/synth_mmms_ba.yaml --out "/tmp/gpu_check/$1" \
    --accelerator "$1" "${common[@]}" > "$out/train_$1.log" 2>&1 || {
    tail -30 "$out/train_$1.log" >&2; return 1; }
  echo $((SECONDS - t0))
}
gpu_s=$(train gpu)
cpu_s=$(OMP_NUM_THREADS=1 train cpu)
{
  echo "| training, $epochs epochs, $(grep -c '"split": "train"' "$dir/manifest.jsonl") train videos | wall s |"
  echo "|---|---|"
  echo "| GPU ($(python3 -c 'import torch; print(torch.cuda.get_device_name())')) | $gpu_s |"
  echo "| CPU, 1 thread | $cpu_s |"
} | tee "$out/timing.md"
cp /tmp/gpu_check/gpu/model.ckpt "$out/model-gpu.ckpt"
# Tuning and scoring read the cache through the preprocessing module, which needs PyAV.
if ! python3 -c "import av" 2>/dev/null; then
  echo "no PyAV here: tune and evaluate $out/model-gpu.ckpt where avdf is installed"
  exit 0
fi
python3 -m avdf tune /tmp/gpu_check/gpu/model.ckpt --manifest "$dir/manifest.jsonl" --split dev \
  --cache "$dir/cache" --out /tmp/gpu_check/gpu/model-tuned.ckpt --force > "$out/tune.md" 2>&1
python3 -m avdf evaluate --manifest "$dir/manifest.jsonl" --split test --cache "$dir/cache" \
  --checkpoint /tmp/gpu_check/gpu/model-tuned.ckpt --out /tmp/gpu_check/eval \
  --json "$out/scores.json" --force > "$out/test.md" 2>&1
