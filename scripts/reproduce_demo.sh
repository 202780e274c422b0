#!/usr/bin/env bash
# Rebuild the bundled demonstration checkpoint and the README's ablation table:
# synthetic corpus -> feature cache -> one training run per variant -> test-split scores.
# Usage: scripts/reproduce_demo.sh [WORK_DIR] [EPOCHS] [VIDEOS]   (from the repository root;
# ../shared/media must exist, or build the corpus with --source-media yourself first).
# About 2 hours on 2 CPU cores with the defaults (10 epochs, 800 videos).
set -euo pipefail
work=${1:-data/demo}
epochs=${2:-10}
videos=${3:-800}
configs=$(cd "$(dirname "$0")/../configs" && pwd)
mkdir -p "$work"
# One torch thread per run: two runs share the 2 cores this was measured on.
export OMP_NUM_THREADS=1

[ -f "$work/synth/metadata.json" ] ||
  avdf synth --out "$work/synth" --videos "$videos" --seed 0 --workers 2 --quiet
python - "$work" <<'PY'
import sys
from avdf.datasets import load_dataset
from avdf.types import write_manifest
write_manifest(load_dataset("lavdf", f"{sys.argv[1]}/synth"), f"{sys.argv[1]}/manifest.jsonl")
PY
avdf preprocess "$work/manifest.jsonl" --out "$work/cache" --workers 2 --quiet

train() {  # name config [--set ...]
  local name=$1 config=$2
  shift 2
  avdf train "$configs/$config" --out "$work/runs/$name" --force --max-epochs "$epochs" \
    --set data.root="$work/synth" --set data.cache_dir="$work/cache" "$@" \
    > "$work/$name.log" 2>&1
  avdf evaluate --dataset lavdf --root "$work/synth" --split test --cache "$work/cache" \
    --checkpoint "$work/runs/$name/model.ckpt" --json "$work/$name.test.json" \
    --out "$work/$name.pred" --force > "$work/$name.test.md" 2>/dev/null
}

# Two runs at a time (one per core).
train mmms_ba synth_mmms_ba.yaml & train none synth_none.yaml & wait
train mmus_sa synth_mmus_sa.yaml & train ms_sa synth_ms_sa.yaml & wait
train audio_face synth_mmms_ba.yaml --set 'model.kwargs.modalities=[audio, face]' &
train audio_lips synth_mmms_ba.yaml --set 'model.kwargs.modalities=[audio, lips]' & wait
train face_lips synth_mmms_ba.yaml --set 'model.kwargs.modalities=[face, lips]'
python "$(dirname "$0")/ablation_table.py" "$work"
# Is MMMS-BA's lead over plain concatenation larger than the test split's sampling noise?
python "$(dirname "$0")/compare_runs.py" "$work/synth/metadata.json" "$work/mmms_ba.pred" "$work/none.pred"
