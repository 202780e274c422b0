#!/usr/bin/env bash
# Rebuild the README's synthetic-corpus results: corpus -> feature cache -> 4 source-disjoint
# folds -> per fold and seed: train, tune on dev, score test -> tables.
# Usage: scripts/reproduce_folds.sh [WORK_DIR] [EPOCHS]   (from the repository root, with
# ../shared beside it). About 15 hours on 2 CPU cores with the defaults (80 runs, 16 retunes).
# EPOCHS (default 10) is the ablation's length; the default model is also trained for 32
# epochs (mmms_ba_32, the README's headline column; 16 epochs was the headline before
# 2026-12-02: `mmms_ba_long`).
set -euo pipefail
work=${1:-data}
epochs=${2:-10}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"

[ -f "$work/synth/metadata.json" ] ||
  avdf synth --out "$work/synth" --videos 600 --seed 0 --workers 2 --quiet
avdf preprocess "$work/synth" --out "$work/cache" --experts speaker motion --workers 2 --quiet
[ -f "$work/folds/folds.json" ] || python "$here/make_folds.py" "$work/synth" "$work/folds" --k 4

# The first wave's model and training (per-frame face block, no temporal contrast or sync
# stream, unscaled attention over the whole window, no augmentation) as overrides.
first_wave="--set model.kwargs.face_block=face_cnn --set model.kwargs.temporal_contrast=false \
--set model.kwargs.sync_dim=0 --set model.kwargs.attention_scale=false \
--set model.kwargs.attention_band=null --set data.augment=false --set loss.sync=0"

# variant fold seed epochs config [overrides], two runs at a time (one per core)
jobs() {
  for seed in 0 1; do for fold in 0 1 2 3; do
    echo "mmms_ba_32 $fold $seed 32 synth_mmms_ba.yaml --set trainer.early_stopping_patience=40"
  done; done
  for seed in 0 1; do for fold in 0 1 2 3; do
    echo "mmms_ba $fold $seed $epochs synth_mmms_ba.yaml"; done; done
  for seed in 0 1; do for fold in 0 1 2 3; do
    echo "first_wave $fold $seed $epochs synth_mmms_ba.yaml $first_wave"; done; done
  for fold in 0 1 2 3; do
    echo "no_augment $fold 0 $epochs synth_mmms_ba.yaml --set data.augment=false"; done
  for fold in 0 1 2 3; do
    echo "speaker $fold 0 $epochs synth_mmms_ba.yaml --set model.kwargs.experts=[speaker]"; done
  for fold in 0 1 2 3; do echo "motion_expert $fold 0 32 synth_mmms_ba.yaml \
    --set model.kwargs.experts=[motion] --set trainer.early_stopping_patience=40"; done
  for fold in 0 1; do echo "whole_x3 $fold 0 32 synth_mmms_ba.yaml \
    --set data.whole_fake_factor=3 --set trainer.early_stopping_patience=40"; done
  for fold in 0 1 2 3; do echo "paper_attention $fold 0 $epochs synth_mmms_ba.yaml \
    --set model.kwargs.attention_scale=false --set model.kwargs.attention_band=null"; done
  for fold in 0 1 2 3; do
    echo "first_wave_single_scale $fold 0 $epochs synth_mmms_ba_single_scale.yaml $first_wave"
  done
  for fold in 0 1 2 3; do echo "first_wave_none $fold 0 $epochs synth_none.yaml $first_wave"; done
}
jobs | while read -r variant fold seed run_epochs config overrides; do
  # shellcheck disable=SC2086  # overrides are word lists on purpose
  echo "$here/run_fold.sh $work $variant $fold $seed $run_epochs $config $overrides \
    --set data.windows_per_video=3 --set trainer.limit_val_batches=5"
done | xargs -P 2 -I{} sh -c "{}"

python "$here/fold_table.py" "$work/folds" "$work/eval/mmms_ba_32" "$work/eval/mmms_ba" \
  "$work/eval/first_wave" --compare mmms_ba_32 mmms_ba
python "$here/fold_table.py" "$work/folds" "$work/eval/mmms_ba" "$work/eval/first_wave" \
  "$work/eval/no_augment" "$work/eval/speaker" "$work/eval/paper_attention" \
  --compare mmms_ba first_wave
python "$here/fold_table.py" "$work/folds" "$work/eval/first_wave" \
  "$work/eval/first_wave_single_scale" "$work/eval/first_wave_none" \
  --compare first_wave first_wave_none
python "$here/fold_table.py" "$work/folds" "$work/eval/mmms_ba_32" "$work/eval/motion_expert" \
  --compare motion_expert mmms_ba_32
for variant in mmms_ba_32 motion_expert; do
  python "$here/family_table.py" "$work" $variant --extent
  python "$here/family_table.py" "$work" $variant --kinds
done
python "$here/fold_table.py" "$work/folds" "$work/eval/mmms_ba_32" "$work/eval/whole_x3" \
  --compare whole_x3 mmms_ba_32
python "$here/family_table.py" "$work" whole_x3 --extent
python "$here/family_table.py" "$work" mmms_ba_32 --extent --folds 0,1

# The same trained runs retuned two other ways (session 17): the stacker with the peak
# statistics, and test-time flip; each scored into eval/VARIANT_peaks and eval/VARIANT_flip.
for how in peaks flip; do for variant in mmms_ba_32 motion_expert; do for fold in 0 1 2 3; do
  run="$work/train/$variant/fold$fold/seed0"
  out="$work/eval/${variant}_$how/fold$fold/seed0"
  manifest="$work/folds/fold$fold.jsonl"
  mkdir -p "$out"
  if [ $how = peaks ]; then option=--peak-statistics; else option=--flip; fi
  avdf tune "$run/model.ckpt" --manifest "$manifest" --split dev --cache "$work/cache" \
    --out "$run/model-tuned-$how.ckpt" --force $option > "$run/tune-$how.md" 2>&1
  avdf evaluate --manifest "$manifest" --split test --cache "$work/cache" \
    --checkpoint "$run/model-tuned-$how.ckpt" --out "$out" --json "$out/scores.json" \
    --force > "$out/test.md" 2>/dev/null
done; done; done
for how in peaks flip; do for variant in mmms_ba_32 motion_expert; do
  python "$here/fold_table.py" "$work/folds" "$work/eval/$variant" "$work/eval/${variant}_$how" \
    --compare "${variant}_$how" $variant --per-run
done; done

# Ensembles (session 18): trained runs averaged by `avdf ensemble`, then tuned and scored
# like a run (WORK/train/ENSEMBLE/foldK/seed0).
ensemble_members() {  # ensemble fold -> its members' model.ckpt
  local t="$work/train"
  case $1 in
    ens_default_motion) echo "$t/mmms_ba_32/fold$2/seed0/model.ckpt $t/motion_expert/fold$2/seed0/model.ckpt" ;;
    ens_seeds) echo "$t/mmms_ba_32/fold$2/seed0/model.ckpt $t/mmms_ba_32/fold$2/seed1/model.ckpt" ;;
    ens3) echo "$(ensemble_members ens_seeds "$2") $t/motion_expert/fold$2/seed0/model.ckpt" ;;
  esac
}
for variant in ens_default_motion ens_seeds ens3; do for fold in 0 1 2 3; do
  run="$work/train/$variant/fold$fold/seed0"
  out="$work/eval/$variant/fold$fold/seed0"
  manifest="$work/folds/fold$fold.jsonl"
  mkdir -p "$run" "$out"
  # shellcheck disable=SC2046  # the member list is a word list on purpose
  avdf ensemble $(ensemble_members $variant $fold) --out "$run/model.ckpt" --force
  avdf tune "$run/model.ckpt" --manifest "$manifest" --split dev --cache "$work/cache" \
    --out "$run/model-tuned.ckpt" --force > "$run/tune.md" 2>&1
  avdf evaluate --manifest "$manifest" --split test --cache "$work/cache" \
    --checkpoint "$run/model-tuned.ckpt" --out "$out" --json "$out/scores.json" \
    --force > "$out/test.md" 2>/dev/null
done; done
python "$here/fold_table.py" "$work/folds" "$work/eval/mmms_ba_32" "$work/eval/motion_expert" \
  "$work/eval/ens_default_motion" --compare ens_default_motion mmms_ba_32
python "$here/fold_table.py" "$work/folds" "$work/eval/motion_expert" \
  "$work/eval/ens_default_motion" --compare ens_default_motion motion_expert
for variant in ens_seeds ens3; do for seed in 0 1; do
  # each member seed of the default against the ensemble (its runs are named seed0)
  python "$here/fold_table.py" "$work/folds" "$work/eval/mmms_ba_32" "$work/eval/$variant" \
    --compare $variant mmms_ba_32 --seed-of mmms_ba_32=seed$seed
done; done
python "$here/fold_table.py" "$work/folds" "$work/eval/motion_expert" "$work/eval/ens3" \
  --compare ens3 motion_expert
for variant in ens_default_motion ens_seeds ens3; do
  python "$here/family_table.py" "$work" $variant --extent
done

# Decision-threshold rules (sessions 17-18): the dev split scored by each tuned checkpoint.
for variant in mmms_ba_32 motion_expert whole_x3; do
  folds="0 1 2 3"; [ $variant = whole_x3 ] && folds="0 1"
  seeds="0"; [ $variant = mmms_ba_32 ] && seeds="0 1"
  for fold in $folds; do for seed in $seeds; do
    out="$work/eval-dev/$variant/fold$fold/seed$seed"
    mkdir -p "$out"
    avdf evaluate --manifest "$work/folds/fold$fold.jsonl" --split dev --cache "$work/cache" \
      --checkpoint "$work/train/$variant/fold$fold/seed$seed/model-tuned.ckpt" --out "$out" \
      --json "$out/scores.json" --force > "$out/dev.md" 2>/dev/null
  done; done
  python "$here/threshold_rules.py" "$work" $variant
done

# More people in training (sessions 19-20): a second corpus made from realworld-train's real
# clips with audio (13 people absent from media/talking) joins every fold's train split
# (`make_folds.py --extra-train`; dev and test unchanged). Compute-matched against the same
# recipe without them: 2 windows per video per epoch against 3 (~920 against ~850 windows).
shared=${SHARED:-../shared}
extra_media="$work/extra_media"
mkdir -p "$extra_media/talking"
awk -F'\t' '$2 == "real" && $10 == "yes" {print $1}' "$shared/realworld-train/labels.tsv" |
  while read -r clip; do
    ln -sf "$(cd "$shared/realworld-train" && pwd)/$clip" "$extra_media/talking/$clip"
  done
ln -sfn "$(cd "$shared/media/speech" && pwd)" "$extra_media/speech"
[ -f "$work/extra_synth/metadata.json" ] || avdf synth --out "$work/extra_synth" --videos 180 \
  --seed 1 --source-media "$extra_media" --workers 2 --quiet
[ -f "$work/folds_people/folds.json" ] || python "$here/make_folds.py" "$work/synth" \
  "$work/folds_people" --k 4 --extra-train "$work/extra_synth"
for fold in 0 1 2 3; do  # the cache is keyed by the manifest's ids
  avdf preprocess "$work/folds_people/fold$fold.jsonl" --out "$work/cache" --workers 2 --quiet
done
short="--set model.kwargs.experts=[] --set trainer.limit_val_batches=5 \
--set trainer.early_stopping_patience=40"
for seed in 0 1; do for fold in 0 1 2 3; do
  echo "$here/run_fold.sh $work mmms_ba_16 $fold $seed 16 synth_mmms_ba.yaml $short \
    --set data.windows_per_video=3"
  echo "TRAIN_MANIFEST=$work/folds_people/fold$fold.jsonl $here/run_fold.sh $work \
    more_people_16 $fold $seed 16 synth_mmms_ba.yaml $short --set data.windows_per_video=2"
done; done | xargs -P 2 -I{} sh -c "{}"
python "$here/fold_table.py" "$work/folds" "$work/eval/mmms_ba_16" "$work/eval/more_people_16" \
  --per-run --compare more_people_16 mmms_ba_16
# The same recipe trained 32 epochs (session 22), paired with the 16-epoch runs above.
for seed in 0 1; do for fold in 0 1 2 3; do
  echo "TRAIN_MANIFEST=$work/folds_people/fold$fold.jsonl $here/run_fold.sh $work \
    more_people_32 $fold $seed 32 synth_mmms_ba.yaml $short --set data.windows_per_video=2"
done; done | xargs -P 2 -I{} sh -c "{}"
python "$here/fold_table.py" "$work/folds" "$work/eval/more_people_16" "$work/eval/more_people_32" \
  --per-run --compare more_people_32 more_people_16
for variant in mmms_ba_16 more_people_16 more_people_32; do
  python "$here/family_table.py" "$work" $variant --extent
done

# realworld-train's own people as synthetic fakes (session 21, docs/realworld.md): the bundled
# recipe (fold 0's synthetic train + re-encoded realworld-train) with and without the extra
# corpus above, seeds 0-2; scored on realworld-train's dev generators and on realworld-dev
# (measured only). make_realworld_manifest.py leaves out extra videos of dev people.
rw="$work/realworld"
[ -f "$rw/train_reencoded/labels.tsv" ] || python "$here/reencode_corpus.py" \
  "$shared/realworld-train" "$rw/train_reencoded" --real-copies 3
for arm in "mix_fold0 folds" "mix_people_clean_fold0 folds_people"; do
  set -- $arm
  [ -f "$rw/$1.jsonl" ] || python "$here/make_realworld_manifest.py" "$rw/$1.jsonl" \
    --synth-manifest "$work/$2/fold0.jsonl" --realworld "$rw/train_reencoded"
  avdf preprocess "$rw/$1.jsonl" --out "$work/cache" --workers 2 --quiet
done
avdf preprocess "$shared/realworld-dev" --out "$rw/dev_cache" --workers 2 --quiet
rw_set="--set data.windows_per_video=3 --set trainer.limit_val_batches=5 \
--set trainer.early_stopping_patience=20"
for seed in 0 1 2; do
  echo "TRAIN_MANIFEST=$rw/mix_fold0.jsonl $here/run_fold.sh $work rw_16 0 $seed 16 \
    realworld_mmms_ba.yaml $rw_set"
  echo "TRAIN_MANIFEST=$rw/mix_people_clean_fold0.jsonl $here/run_fold.sh $work rw_people_16 0 \
    $seed 16 realworld_mmms_ba.yaml $rw_set"
done | xargs -P 2 -I{} sh -c "{}"
python "$here/fold_table.py" "$work/folds" "$work/eval/rw_16" "$work/eval/rw_people_16" \
  --per-run --compare rw_people_16 rw_16
for set in rwt_dev realworld_dev; do
  columns=()
  for variant in rw_16 rw_people_16; do
    files=()
    for seed in 0 1 2; do
      ckpt="$work/train/$variant/fold0/seed$seed/model-tuned.ckpt" json="$rw/${variant}_s${seed}_$set.json"
      if [ $set = rwt_dev ]; then where=("$rw/mix_fold0.jsonl" --split dev --cache "$work/cache")
      else where=("$shared/realworld-dev" --cache "$rw/dev_cache"); fi
      python "$here/eval_realworld.py" "${where[@]}" --checkpoint "$ckpt" --json "$json" > /dev/null
      files+=("$json")
    done
    columns+=("$variant=$(IFS=,; echo "${files[*]}")")
  done
  python "$here/realworld_table.py" "${columns[@]}"
done
