"""How much a run's training accuracy rises and falls from batch to batch, per stretch of steps.

  .venv/bin/python benchmarks/epoch_ripple.py runs/cat-mel_2bar_small_b64_beta 4000:8000 8100:10050 \\
      [--lags 400,450]

For each stretch LO:HI of the run's train accuracy summaries (RUN/train, every event file):
a quadratic trend is removed, and the residual's standard deviation, its largest absolute
value and its autocorrelation at --lags steps (default: about one epoch of the folk corpus at
batch 64, 434 steps, between two summaries 50 steps apart) are printed as JSON. Batches drawn
from one stretch of a file in source order at a time show as a large residual that repeats
each epoch; batches drawn from the whole file as a small one with no such repeat.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from training_curves import read_scalars  # noqa: E402


def ripple(steps, values, lo, hi, lags):
  keep = (steps >= lo) & (steps < hi)
  s, v = steps[keep], values[keep]
  if len(s) < 8:
    raise SystemExit('%d:%d: %d summaries, too few' % (lo, hi, len(s)))
  summaries = len(s)
  every = int(np.median(np.diff(s)))
  # A resumed run's summaries can sit off the grid or leave a gap: put them on a regular
  # grid first, so that a lag of k summaries is k * every steps.
  grid = np.arange(s[0], s[-1] + 1, every)
  v, s = np.interp(grid, s, v), grid
  residual = v - np.polyval(np.polyfit(s, v, 2), s)
  auto = {}
  for lag in lags:
    k = int(round(lag / every))
    if 0 < k < len(residual) - 2:
      auto[str(k * every)] = round(float(np.corrcoef(residual[:-k], residual[k:])[0, 1]), 3)
  return dict(steps='%d:%d' % (lo, hi), summaries=summaries, std=round(float(residual.std()), 4),
              max_abs=round(float(np.abs(residual).max()), 4), autocorrelation=auto)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('run_dir')
  parser.add_argument('stretches', nargs='+', metavar='LO:HI')
  parser.add_argument('--lags', default='400,450')
  args = parser.parse_args(argv)
  train = read_scalars(os.path.join(args.run_dir, 'train'))['accuracy']
  steps = np.array(sorted(train))
  values = np.array([train[s] for s in steps])
  lags = [int(x) for x in args.lags.split(',')]
  out = [ripple(steps, values, *map(int, st.split(':')), lags) for st in args.stretches]
  json.dump(out, sys.stdout, indent=1)
  print()


if __name__ == '__main__':
  main()
