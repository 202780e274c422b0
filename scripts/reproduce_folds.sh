#!/usr/bin/env bash
# Rebuild the README's synthetic-corpus results: corpus -> feature cache -> 4 source-disjoint
# folds -> per fold and seed: train, tune on dev, score test -> tables.
# Usage: scripts/reproduce_folds.sh [WORK_DIR] [EPOCHS]   (from the repository root, with
# ../shared/media beside it). About 95 minutes on 2 CPU cores with the defaults.
set -euo pipefail
work=${1:-data}
epochs=${2:-10}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"

[ -f "$work/synth/metadata.json" ] ||
  avdf synth --out "$work/synth" --videos 600 --seed 0 --workers 2 --quiet
avdf preprocess "$work/synth" --out "$work/cache" --workers 2 --quiet
[ -f "$work/folds/folds.json" ] || python "$here/make_folds.py" "$work/synth" "$work/folds" --k 4

# variant fold seed config, two runs at a time (one per core)
jobs() {
  for seed in 0 1; do for fold in 0 1 2 3; do
    echo "mmms_ba $fold $seed synth_mmms_ba.yaml"; done; done
  for fold in 0 1 2 3; do echo "single_scale $fold 0 synth_mmms_ba_single_scale.yaml"; done
  for fold in 0 1 2 3; do echo "none $fold 0 synth_none.yaml"; done
}
jobs | xargs -P 2 -L 1 sh -c "'$here/run_fold.sh' '$work' \$0 \$1 \$2 $epochs \$3 \
  --set data.windows_per_video=3 --set trainer.limit_val_batches=5"

python "$here/fold_table.py" "$work/folds" "$work/eval/mmms_ba" "$work/eval/single_scale" \
  "$work/eval/none" --compare mmms_ba single_scale
python "$here/family_table.py" "$work" mmms_ba
