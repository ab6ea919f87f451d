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
"""

import argparse
import json

from mvae_tf.evaluation import compare


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('a', help='`mvae evaluate --json --per_window` output of model A')
  parser.add_argument('b', help='the same for model B, on the same file')
  parser.add_argument('--examples_path', required=True, help='the file both were evaluated on')
  parser.add_argument('--config', default=None, help="the windows' config (default: A's)")
  parser.add_argument('--resamples', type=int, default=2000)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--json', action='store_true')
  args = parser.parse_args()
  with open(args.a) as f:
    a = json.load(f)
  with open(args.b) as f:
    b = json.load(f)
  compare.check_same_file(a, b, args.examples_path)
  groups = compare.window_groups(args.config or compare.windows_config(a, b),
                                 args.examples_path)
  out = {mode: compare.paired_gap(a, b, groups, mode, args.resamples, args.seed)
         for mode in compare.MODES}
  if args.json:
    print(json.dumps(dict(a=args.a, b=args.b, step_a=a.get('step'), step_b=b.get('step'),
                          gaps=out), indent=2))
    return
  first = out['sampled']
  print('A = %s (step %s), B = %s (step %s): %d windows from %d tunes' % (
      args.a, a.get('step'), args.b, b.get('step'), first['windows'], first['sequences']))
  for mode, r in out.items():
    print('%-15s A %.3f  B %.3f  A-B %+.3f  95%% [%+.3f, %+.3f]' % (
        mode, r['a'], r['b'], r['gap'], r['low'], r['high']))


if __name__ == '__main__':
  main()
