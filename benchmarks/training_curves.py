"""Training curves of one or more runs: accuracy and KL (bits) against steps, as a PNG.

  .venv/bin/python benchmarks/training_curves.py runs/hierdec-mel_16bar_cpu runs/flat-mel_16bar_cpu \\
      --output docs/figures/curves_mel_16bar.png [--json]

Reads each run's TensorBoard summaries (RUN/train and RUN/eval, every event file, a
resumed run's too; for a step written twice the later value wins): train accuracy and
KL every --summary_every steps (thin lines), eval at each checkpoint (markers), and each
run's free-bits budget (dashed) from its run.json. --json prints the eval points.
"""

import argparse
import collections
import glob
import json
import os
import sys


def read_scalars(folder):
  """{tag: {step: value}} from every event file in `folder` (in file-name order)."""
  import tensorflow as tf
  values = {}
  for path in sorted(glob.glob(os.path.join(folder, 'events.out.tfevents.*'))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for v in event.summary.value:
        if v.HasField('tensor'):
          value = float(tf.make_ndarray(v.tensor))
        elif v.HasField('simple_value'):
          value = v.simple_value
        else:
          continue
        values.setdefault(v.tag, {})[event.step] = value
  return values


def two_panels():
  """(figure, (left axes, right axes)): the figures of these scripts, 11 x 4.2 inches."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  fig = Figure(figsize=(11, 4.2), dpi=100)
  FigureCanvasAgg(fig)
  return fig, fig.subplots(1, 2)


def write_png(fig, path):
  from mvae_tf import atomic
  fig.tight_layout()
  atomic.write_file(path, lambda tmp: fig.savefig(tmp, format='png'))
  print('wrote %s' % path, file=sys.stderr)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('run_dirs', nargs='+')
  parser.add_argument('--output', required=True, help='PNG path')
  parser.add_argument('--json', action='store_true')
  args = parser.parse_args(argv)
  from mvae_tf.training import runs

  fig, (acc_ax, kl_ax) = two_panels()
  points = {}
  infos = [runs.read_run_info(d) or {} for d in args.run_dirs]
  configs = collections.Counter(info.get('config') for info in infos)
  for i, (run_dir, info) in enumerate(zip(args.run_dirs, infos)):
    color = 'C%d' % i
    # Labelled by config; runs of one config (say, a beta-0.2 leg and its sequel) are
    # labelled by their directories, so each stays its own series.
    base = os.path.basename(run_dir.rstrip('/'))
    config = info.get('config', base)
    if configs[info.get('config')] > 1:
      config = base
    name = next((n for n in (config, run_dir) if n not in points), '%s (%d)' % (run_dir, i))
    train = read_scalars(os.path.join(run_dir, 'train'))
    evals = read_scalars(os.path.join(run_dir, 'eval'))
    for ax, tag in ((acc_ax, 'accuracy'), (kl_ax, 'kl_bits')):
      if tag in train:
        steps = sorted(train[tag])
        ax.plot(steps, [train[tag][s] for s in steps], color=color, alpha=0.35, lw=0.8)
      if tag in evals:
        steps = sorted(evals[tag])
        ax.plot(steps, [evals[tag][s] for s in steps], 'o-', color=color, ms=3,
                label='%s (eval)' % name)
    free_bits = (info.get('hparams') or {}).get('free_bits')
    if free_bits:
      kl_ax.axhline(free_bits, color=color, ls='--', lw=0.8)
    points[name] = {tag: sorted(evals.get(tag, {}).items())
                    for tag in ('accuracy', 'kl_bits', 'loss')}
  acc_ax.set(xlabel='step', ylabel='accuracy (teacher-forced)', title='accuracy')
  kl_ax.set(xlabel='step', ylabel='KL(q(z|x) || p(z)), bits',
            title='KL (dashed: free bits)')
  acc_ax.legend(fontsize=8)
  write_png(fig, args.output)
  if args.json:
    json.dump(points, sys.stdout, indent=1)
    print()


if __name__ == '__main__':
  main()
