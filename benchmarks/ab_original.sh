#!/bin/bash
# Training speed against the original MusicVAE, side by side: the original's music_vae_train
# (run by ../shared/reference_runner/mvae.py in its own venv), `mvae train` in float32 and
# `mvae train --mixed_precision` (bfloat16 products), the same config, batch and NoteSequence
# TFRecord, one after another in each round (ref, ours, ours bf16), so all three see the
# same load. Steady-state steps/s: the original's global_step/sec lines, ours from the
# TensorBoard steps_per_sec summaries (each side's first window dropped: tracing, start-up).
# Also one batch's training loss near the original's last logged step (noisy: one batch).
#
#   benchmarks/ab_original.sh REF_VENV OUR_VENV TFRECORD CONFIG BATCH STEPS ROUNDS OUTDIR
#   benchmarks/ab_original.sh $HOME/mvae-ref-venv .venv data/folk/train.tfrecord cat-mel_2bar_small 64 300 2 runs/ab
#
# REF_VENV: ../shared/reference_runner/setup_venv.sh REF_VENV builds it (about 3 minutes).
# Run it on an idle machine: nothing else may use the cores while it runs.
set -u
if [ $# -ne 8 ]; then sed -n 2,14p "$0" >&2; exit 2; fi
REFV=$1; OURV=$2; DATA=$3; CFG=$4; B=$5; N=$6; R=$7; O=$8
RUNNER=${REFERENCE_RUNNER:-$(cd "$(dirname "$0")/.." && pwd)/../shared/reference_runner}
[ -f "$RUNNER/mvae.py" ] || { echo "ab_original.sh: $RUNNER/mvae.py not found; set REFERENCE_RUNNER to the reference_runner folder" >&2; exit 2; }
[ -x "$REFV/bin/python" ] || { echo "ab_original.sh: $REFV is not a venv; build it with $RUNNER/setup_venv.sh $REFV" >&2; exit 2; }
[ -f "$DATA" ] || { echo "ab_original.sh: $DATA not found; build it with ./run mvae corpus folk" >&2; exit 2; }
mkdir -p "$O"

ours_stats() {  # RUN_DIR STEP -> "steps_per_sec loss_at_the_summary_nearest_STEP"
  "$OURV/bin/python" - "$1" "$2" 2>/dev/null <<'PY'
import glob, sys
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.util import tensor_util
a = ea.EventAccumulator(glob.glob(sys.argv[1] + '/train/events*')[0], size_guidance={'tensors': 0})
a.Reload()
def values(tag):
  return [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in a.Tensors(tag)]
v = [x for _, x in values('steps_per_sec')[1:]]
step = int(sys.argv[2]) if sys.argv[2].isdigit() else 10 ** 9
print('%.3f %.3f' % (sum(v) / len(v), min(values('loss'), key=lambda e: abs(e[0] - step))[1]))
PY
}

for r in $(seq 1 "$R"); do
  rm -rf "$O/ref$r" "$O/our$r" "$O/bf16_$r"
  load=$(cut -d' ' -f1 /proc/loadavg)
  timeout 900 "$REFV/bin/python" "$RUNNER/mvae.py" train --config="$CFG" --run_dir="$O/ref$r" --mode=train \
    --examples_path="$DATA" --hparams=batch_size=$B --num_steps=$N > "$O/ref$r.log" 2>&1
  # Its hook logs every 100 steps, each line twice (absl and tf logging): the INFO: copies only.
  ref=$(grep -o "^INFO:tensorflow:global_step/sec: [0-9.]*" "$O/ref$r.log" \
        | awk 'NR>1{s+=$2;n++} END{if(n) printf "%.3f", s/n; else print "nan"}')
  read -r ref_step ref_loss <<< "$(grep -o "^INFO:tensorflow:global_step = [0-9]*, loss = [0-9.]*" "$O/ref$r.log" \
        | tail -1 | sed 's/.*global_step = \([0-9]*\), loss = \([0-9.]*\)/\1 \2/')"
  for variant in our bf16_; do
    flags=""; [ "$variant" = bf16_ ] && flags="--mixed_precision"
    timeout 900 "$OURV/bin/mvae" train --config "$CFG" --run_dir "$O/$variant$r" --examples_path "$DATA" \
      --hparams batch_size=$B --num_steps $N --no_progress --checkpoint_every 100000 --summary_every 50 \
      $flags > "$O/$variant$r.log" 2>&1
  done
  read -r our our_loss <<< "$(ours_stats "$O/our$r" "${ref_step:-}")"
  read -r bf16 bf16_loss <<< "$(ours_stats "$O/bf16_$r" "${ref_step:-}")"
  python3 - <<PY
ref, our, bf16 = float('$ref'), float('$our'), float('$bf16')
print('round $r (load before %s): original %.3f steps/s, mvae train %.3f (%.2fx), --mixed_precision %.3f '
      '(%.2fx); one batch\'s loss near step ${ref_step:-?}: ${ref_loss:-?}, $our_loss, $bf16_loss'
      % ('$load', ref, our, our / ref, bf16, bf16 / ref))
PY
done
