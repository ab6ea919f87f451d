#!/usr/bin/env bash
# Package trained models as the shipped presets (mvae_tf/pretrained/NAME).
#
#   scripts/ship_pretrained.sh [folk-mel_2bar] [drums_2bar] [folk-mel_16bar] [folk-mel_16bar_flat]
#                              [trio_16bar] [drums_16bar]
#
# For each preset: evaluates its run (the 2-bar ones $RUNS/NAME, default runs/NAME;
# the 16-bar ones $RUNS/CONFIG, as docs/long_form.md trains them; each trained with
# `mvae train --config CONFIG --run_dir RUN --examples_path
# data/CORPUS/train.tfrecord ...`) on the held-out set into RUN/evaluation.json,
# then writes weights.npz, config.json (with the evaluation), attributes.npz
# (measured on the held-out set) and the float16 .tflite exports. CHECKPOINT=N
# ships step N of each run instead of its newest: RUN/kept/ckpt-N, the copy kept
# out of the run's rotation (cp RUN/checkpoints/ckpt-N.* RUN/kept/), or else
# RUN/checkpoints/ckpt-N.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
py=.venv/bin/python
runs=${RUNS:-runs}

ship() {
  local name=$1 config=$2 corpus=$3 run=${4:-$runs/$1}
  shift $(( $# < 4 ? $# : 4 ))  # the rest: package_pretrained.py flags
  local eval_json="$run/evaluation.json" model=(--run_dir "$run")
  if [ -n "${CHECKPOINT:-}" ]; then
    local prefix="$run/kept/ckpt-$CHECKPOINT"
    [ -f "$prefix.index" ] || prefix="$run/checkpoints/ckpt-$CHECKPOINT"
    model=(--checkpoint "$prefix")
  fi
  .venv/bin/mvae evaluate --config "$config" "${model[@]}" \
    --examples_path "data/$corpus/eval.tfrecord" --json > "$eval_json.tmp"
  mv "$eval_json.tmp" "$eval_json"
  "$py" scripts/package_pretrained.py "${model[@]}" --name "$name" \
    --corpus "$corpus (data/$corpus/train.tfrecord, mvae corpus $corpus)" \
    --evaluation "$eval_json" --attribute_corpus "data/$corpus/eval.tfrecord" "$@"
}

presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(folk-mel_2bar drums_2bar)
for name in "${presets[@]}"; do
  case $name in
    folk-mel_2bar) ship folk-mel_2bar cat-mel_2bar_cpu folk ;;
    drums_2bar) ship drums_2bar cat-drums_2bar_cpu drums ;;
    folk-mel_16bar) ship folk-mel_16bar hierdec-mel_16bar_cpu folk "$runs/hierdec-mel_16bar_cpu" ;;
    folk-mel_16bar_flat)
      ship folk-mel_16bar_flat flat-mel_16bar_cpu folk "$runs/flat-mel_16bar_cpu" ;;
    trio_16bar) ship trio_16bar hierdec-trio_16bar_cpu trio "$runs/hierdec-trio_16bar_cpu" ;;
    drums_16bar)
      ship drums_16bar hierdec-drums_16bar_cpu drums "$runs/hierdec-drums_16bar_cpu" ;;
    *) echo "unknown preset $name (folk-mel_2bar, drums_2bar, folk-mel_16bar," \
            "folk-mel_16bar_flat, trio_16bar, drums_16bar)" >&2; exit 2 ;;
  esac
done
