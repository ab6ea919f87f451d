"""Hierarchical against flat on held-out data as training goes on: the paper's comparison as a PNG.

  .venv/bin/python benchmarks/gap_curve.py \\
      --pair wide runs/hierdec-mel_16bar_wide_cpu runs/flat-mel_16bar_wide_cpu \\
      --pair cpu runs/hierdec-mel_16bar_cpu runs/flat-mel_16bar_cpu \\
      --examples_path data/folk/eval.tfrecord --output docs/figures/gap_mel_16bar.png [--json]

Reads RUN/evaluation-STEP.json (`mvae evaluate --json --per_window` of RUN's checkpoint
STEP on --examples_path; runs/eval_at.sh-style files) at every step both runs of a pair
have, pooled with RUN/evaluation-STEP-seedK.json (the same checkpoint evaluated with
--seed K: compare.pool_seeds) where there are any. Left: sampled accuracy of each decoder (argmax-fed solid, sample-fed dashed) against
steps. Right: hierarchical minus flat, sampled both ways, with the 95% interval of a
bootstrap over the held-out tunes (mvae_tf.evaluation.compare), the issue's target (+0.10)
and the paper's gap (+0.19, Lakh MIDI). --json prints the points.
"""

import argparse
import glob
import json
import os
import re
import sys

from mvae_tf.errors import UserError
from mvae_tf.evaluation import compare

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from training_curves import two_panels, write_png  # noqa: E402

TARGET_GAP, PAPER_GAP = 0.10, 0.812 - 0.620


def _evaluations(run_dir):
  """{step: result}; a step's evaluations with other seeds (evaluation-STEP-seedK.json) pooled."""
  found = {}
  for path in sorted(glob.glob(os.path.join(run_dir, 'evaluation-*.json'))):
    m = re.search(r'evaluation-(\d+)(-seed\d+)?\.json$', path)
    if m:
      found.setdefault(int(m.group(1)), []).append((path, compare.load_result(path)))
  out = {}
  for step, found_at_step in found.items():
    paths = [path for path, _ in found_at_step]
    results = [result for _, result in found_at_step]
    with_windows = sum('per_window' in r for r in results)
    if len(results) > 1 and with_windows != len(results):
      raise UserError('%s step %d: some evaluations have per-window counts and some do not '
                      '(%s): evaluate every seed with --json --per_window' % (
                          run_dir, step, ', '.join(paths)))
    try:
      out[step] = compare.pool_seeds(results) if with_windows else results[0]
    except compare.MismatchError as e:
      raise UserError('%s step %d: %s' % (run_dir, step, e)) from None
  return out


def pair_points(hier_dir, flat_dir, examples_path):
  """[{step, hier, flat, gap}] at each step with both runs' per-window evaluations."""
  hier, flat = _evaluations(hier_dir), _evaluations(flat_dir)
  points, groups = [], None
  for step in sorted(set(hier) & set(flat)):
    if 'per_window' not in hier[step] or 'per_window' not in flat[step]:
      continue
    try:
      compare.check_same_file(hier[step], flat[step], examples_path)
    except compare.MismatchError as e:
      raise UserError('step %d: %s' % (step, e)) from None
    if groups is None:
      groups = compare.window_groups(compare.windows_config(hier[step], flat[step]),
                                     examples_path)
    gaps = {mode: compare.paired_gap(hier[step], flat[step], groups, mode)
            for mode in ('sampled', 'sampled_t1')}
    seeds = [compare.seeds_of(hier[step]), compare.seeds_of(flat[step])]
    if len(seeds[0]) > 1 or len(seeds[1]) > 1:  # its interval is narrower than one seed's
      print('gap_curve.py: step %d pools evaluation seeds %s of %s and %s of %s' % (
          step, seeds[0], hier_dir, seeds[1], flat_dir), file=sys.stderr)
    points.append(dict(step=step, gap=gaps, seeds=seeds,
                       hier={m: hier[step][m]['accuracy'] for m in compare.MODES},
                       flat={m: flat[step][m]['accuracy'] for m in compare.MODES}))
  return points


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--pair', nargs=3, action='append', required=True,
                      metavar=('NAME', 'HIER_RUN', 'FLAT_RUN'))
  parser.add_argument('--examples_path', required=True)
  parser.add_argument('--output', required=True, help='PNG path')
  parser.add_argument('--json', action='store_true')
  args = parser.parse_args(argv)
  fig, (acc_ax, gap_ax) = two_panels()
  table = {}
  for i, (name, hier_dir, flat_dir) in enumerate(args.pair):
    points = table[name] = pair_points(hier_dir, flat_dir, args.examples_path)
    if not points:
      raise SystemExit('%s: no step with per-window evaluations of both runs' % name)
    steps = [p['step'] for p in points]
    for decoder, marker in (('hier', 'o'), ('flat', 's')):
      color = 'C%d' % (2 * i + (decoder == 'flat'))
      for mode, ls in (('sampled', '-'), ('sampled_t1', '--')):
        acc_ax.plot(steps, [p[decoder][mode] for p in points], marker + ls, color=color,
                    ms=4, label='%s %s, %s' % (name, decoder,
                                               'argmax-fed' if mode == 'sampled' else
                                               'sample-fed'))
    for mode, ls, shift in (('sampled', '-', -0.01), ('sampled_t1', '--', 0.01)):
      gap = [p['gap'][mode] for p in points]
      x = [s * (1 + shift) for s in steps]  # side by side, not on top of each other
      gap_ax.errorbar(x, [g['gap'] for g in gap],
                      yerr=[[g['gap'] - g['low'] for g in gap],
                            [g['high'] - g['gap'] for g in gap]],
                      fmt='o' + ls, color='C%d' % (2 * i), ms=4, capsize=3,
                      label='%s, %s' % (name, 'argmax-fed' if mode == 'sampled'
                                        else 'sample-fed'))
  gap_ax.axhline(TARGET_GAP, color='k', ls=':', lw=1, label='target +0.10')
  gap_ax.axhline(PAPER_GAP, color='0.5', ls='-.', lw=1, label='paper +0.19 (Lakh MIDI)')
  gap_ax.axhline(0, color='0.7', lw=0.8)
  acc_ax.set(xlabel='step', ylabel='held-out accuracy, sampled', title='sampled accuracy')
  gap_ax.set(xlabel='step', ylabel='hierarchical - flat',
             title='the gap (bars: 95%, bootstrap over tunes)')
  # Below the axes, in three columns: inside, it covered points (the CPU flat model's).
  acc_ax.legend(fontsize=7, ncol=3, loc='upper center', bbox_to_anchor=(0.5, -0.16))
  gap_ax.legend(fontsize=7, ncol=2, loc='upper center', bbox_to_anchor=(0.5, -0.16))
  write_png(fig, args.output)
  if args.json:
    json.dump(table, sys.stdout, indent=1)
    print()


if __name__ == '__main__':
  try:
    main()
  except UserError as e:  # results that cannot be compared: one line, not a traceback
    sys.exit('gap_curve.py: %s' % e)
