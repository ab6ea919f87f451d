#!/usr/bin/env bash
# Package the trained 2-bar models as the shipped presets (mvae_tf/pretrained/NAME).
#
#   scripts/ship_pretrained.sh [folk-mel_2bar] [drums_2bar]
#
# For each preset: evaluates its run ($RUNS/NAME, default runs/NAME, trained with
# `mvae train --config CONFIG --run_dir runs/NAME --examples_path
# data/CORPUS/train.tfrecord ...`) on the held-out set into
# runs/NAME/evaluation.json, then writes weights.npz, config.json (with the
# evaluation) and attributes.npz (measured on the held-out set).
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
py=.venv/bin/python
runs=${RUNS:-runs}

ship() {
  local name=$1 config=$2 corpus=$3
  local eval_json="$runs/$name/evaluation.json"
  .venv/bin/mvae evaluate --config "$config" --run_dir "$runs/$name" \
    --examples_path "data/$corpus/eval.tfrecord" --json > "$eval_json.tmp"
  mv "$eval_json.tmp" "$eval_json"
  "$py" scripts/package_pretrained.py --run_dir "$runs/$name" --name "$name" \
    --corpus "$corpus (data/$corpus/train.tfrecord, mvae corpus $corpus)" \
    --evaluation "$eval_json" --attribute_corpus "data/$corpus/eval.tfrecord"
}

presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(folk-mel_2bar drums_2bar)
for name in "${presets[@]}"; do
  case $name in
    folk-mel_2bar) ship folk-mel_2bar cat-mel_2bar_cpu folk ;;
    drums_2bar) ship drums_2bar cat-drums_2bar_cpu drums ;;
    *) echo "unknown preset $name (folk-mel_2bar, drums_2bar)" >&2; exit 2 ;;
  esac
done
