"""The accuracy gap between two models on the same held-out windows, with a 95% interval.

  .venv/bin/mvae evaluate --checkpoint RUN_A/kept/ckpt-N --examples_path data/folk/eval.tfrecord \\
      --json --per_window > a.json      # and the same for model B into b.json
  .venv/bin/python benchmarks/paired_gap.py a.json b.json --examples_path data/folk/eval.tfrecord

Prints, for teacher-forced, argmax-fed and sample-fed decoding, A's accuracy minus B's and
the 2.5th-97.5th percentile interval of that difference over bootstrap resamplings of the
held-out tunes (mvae_tf.evaluation.compare: a tune's windows overlap, so tunes, not windows,
are the independent draws). Both results must come from the same file, unchanged since
(the SHA-256 that --per_window records), and from configs that read the same windows.
--config: the windows' config (default: the one A's windows were read with).
A or B may name several evaluations of one checkpoint with different --seed, comma-separated
(a0.json,a1.json,...): their per-window counts are pooled (compare.pool_seeds), which averages
out the draws of z and of the fed samples.
"""

import argparse
import json
import sys

from mvae_tf.errors import UserError
from mvae_tf.evaluation import compare


def _load(paths):
  return compare.pool_seeds([compare.load_result(path) for path in paths.split(',')])


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('a', help='`mvae evaluate --json --per_window` output of model A '
                      '(several seeds of it: comma-separated)')
  parser.add_argument('b', help='the same for model B, on the same file')
  parser.add_argument('--examples_path', required=True, help='the file both were evaluated on')
  parser.add_argument('--config', default=None, help="the windows' config (default: A's)")
  parser.add_argument('--resamples', type=int, default=2000)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--json', action='store_true')
  args = parser.parse_args()
  a, b = _load(args.a), _load(args.b)
  compare.check_same_file(a, b, args.examples_path)
  groups = compare.window_groups(args.config or compare.windows_config(a, b),
                                 args.examples_path)
  out = {mode: compare.paired_gap(a, b, groups, mode, args.resamples, args.seed)
         for mode in compare.MODES}
  if args.json:
    print(json.dumps(dict(a=args.a, b=args.b, step_a=a.get('step'), step_b=b.get('step'),
                          seeds_a=compare.seeds_of(a), seeds_b=compare.seeds_of(b),
                          gaps=out), indent=2))
    return
  first = out['sampled']
  print('A = %s (step %s), B = %s (step %s): %d windows from %d tunes' % (
      args.a, a.get('step'), args.b, b.get('step'), first['windows'], first['sequences']))
  if 'seeds' in a or 'seeds' in b:
    print('pooled over seeds: A %s, B %s' % (compare.seeds_of(a), compare.seeds_of(b)))
  for mode, r in out.items():
    print('%-15s A %.3f  B %.3f  A-B %+.3f  95%% [%+.3f, %+.3f]' % (
        mode, r['a'], r['b'], r['gap'], r['low'], r['high']))


if __name__ == '__main__':
  try:
    main()
  except UserError as e:  # results that cannot be compared: one line, not a traceback
    sys.exit('paired_gap.py: %s' % e)
