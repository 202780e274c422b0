#!/usr/bin/env bash
# One run of the source-disjoint fold evaluation: train a variant on a fold's train split
# (checkpoints selected on its dev split, scored as `avdf detect` does), tune decoding and
# calibration on dev with `avdf tune`, then score the fold's test split.
#
# Usage: scripts/run_fold.sh WORK VARIANT FOLD SEED EPOCHS CONFIG [--set key=value ...]
#   WORK holds synth/ (the corpus), cache/ (its features) and folds/ (scripts/make_folds.py);
#   writes WORK/train/VARIANT/foldK/seedS (training run, model.ckpt, model-tuned.ckpt) and
#   WORK/eval/VARIANT/foldK/seedS (localization.json, detection.txt, scores.json), the
#   layout scripts/fold_table.py reads.
#   TRAIN_MANIFEST=FILE trains and tunes on another manifest (e.g. the fold's synthetic
#   train/dev plus realworld-train, scripts/make_realworld_manifest.py); the fold's test
#   split is still what is scored.
#   TUNE_ARGS="--no-rescorer" tunes without the proposal rescorer (how every run before
#   2026-12-02's session 10 was tuned).
set -euo pipefail
work=$1 variant=$2 fold=$3 seed=$4 epochs=$5 config=$6
shift 6
configs=$(cd "$(dirname "$0")/../configs" && pwd)
manifest="$work/folds/fold$fold.jsonl"
train_manifest=${TRAIN_MANIFEST:-$manifest}
run="$work/train/$variant/fold$fold/seed$seed"
eval_dir="$work/eval/$variant/fold$fold/seed$seed"
export OMP_NUM_THREADS=1  # two runs share 2 cores
mkdir -p "$run" "$eval_dir"
avdf train "$configs/$config" --out "$run" --force --max-epochs "$epochs" \
  --set data.dataset=null --set data.root=null --set data.manifest="$train_manifest" \
  --set data.cache_dir="$work/cache" --set trainer.seed="$seed" "$@" > "$run/train.log" 2>&1
avdf tune "$run/model.ckpt" --manifest "$train_manifest" --split dev --cache "$work/cache" \
  --out "$run/model-tuned.ckpt" --force ${TUNE_ARGS:-} > "$run/tune.md" 2>&1
avdf evaluate --manifest "$manifest" --split test --cache "$work/cache" \
  --checkpoint "$run/model-tuned.ckpt" --out "$eval_dir" --json "$eval_dir/scores.json" \
  --force > "$eval_dir/test.md" 2>/dev/null
echo "$variant fold$fold seed$seed done"
