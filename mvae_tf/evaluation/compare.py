"""Paired comparison of two models' `mvae evaluate --json --per_window` results.

Both models are scored on the same held-out windows; the difference of their
accuracies is estimated with a bootstrap over source sequences (tunes), not over
windows: a tune's windows overlap (a 16-bar window slides by one bar), so they
are not independent draws, and resampling windows would understate the
uncertainty. `window_groups` recovers which sequence each window came from by
running the config's eval converter over the file in the order the eval
pipeline reads it. Importing this module does not import TensorFlow.
"""

import numpy as np

from mvae_tf.atomic import file_sha256
from mvae_tf.errors import UserError

MODES = ('teacher_forced', 'sampled', 'sampled_t1')


class MismatchError(UserError, ValueError):
  """Results that cannot be compared or pooled (other windows, another file, no counts)."""


def windows_config(a, b):
  """The config whose eval windows both results scored; ValueError if theirs differ.

  Eval windows depend on the converter's kind and options only (not on training's
  transposition), so a hierarchical and a flat config of one kind read the same ones."""
  from mvae_tf import configs
  names = [r.get('windows_config') or r.get('config') for r in (a, b)]
  data = [configs.get_config(n).data for n in names]
  if (data[0].kind, dict(data[0].options)) != (data[1].kind, dict(data[1].options)):
    raise MismatchError('%s and %s read different windows: compare models evaluated on the '
                         'same kind of window' % tuple(names))
  return names[0]


def check_same_file(a, b, examples_path):
  """ValueError unless both results were evaluated on `examples_path` as it is now
  (by the SHA-256 each recorded; results without one are taken on trust)."""
  now = None
  for r in (a, b):
    recorded = r.get('examples_sha256')
    if recorded is None:
      continue
    now = now or file_sha256(examples_path)
    if recorded != now:
      raise MismatchError('%s was evaluated on another file than %s as it is now (SHA-256 '
                           'differs): evaluate both models again on it' % (
                               r.get('model', 'a result'), examples_path))


def window_groups(config, examples_path):
  """[windows] the index of the sequence of `examples_path` each eval window comes from,
  in mvae_tf.data.pipeline's eval order (the file's order, each sequence's windows in turn)."""
  from mvae_tf import configs
  from mvae_tf.data import tfrecord
  if isinstance(config, str):
    config = configs.get_config(config)
  converter = config.make_converter('eval')
  groups = []
  for i, ns in enumerate(tfrecord.read_note_sequences(examples_path)):
    groups.extend([i] * len(converter.to_tensors(ns)))
  return np.asarray(groups, np.int64)


def load_result(path):
  """An `mvae evaluate --json` result from `path`; MismatchError (one line) if unreadable."""
  import json
  try:
    with open(path) as f:
      result = json.load(f)
  except (OSError, ValueError) as e:
    raise MismatchError('cannot read %s (%s): give `mvae evaluate --json --per_window` output, '
                        'or evaluate the checkpoint again' % (path, e)) from None
  if not isinstance(result, dict):
    raise MismatchError('%s is not `mvae evaluate --json --per_window` output (a JSON %s)' % (
        path, type(result).__name__))
  return result


def seeds_of(result):
  """The evaluation seeds behind a result: pooled ones, or its one --seed."""
  return result.get('seeds', [result.get('seed')])


def _arrays(results, mode):
  """(correct, scored) steps per window in `mode`, checked: 0 <= correct <= scored."""
  w = results.get('per_window')
  if w is None:
    raise MismatchError('%s has no per-window counts: evaluate it with `mvae evaluate --json '
                         '--per_window`' % results.get('model', 'a result'))
  correct, steps = np.asarray(w[mode], np.float64), np.asarray(w['steps'], np.float64)
  if len(correct) == len(steps) and ((correct < 0).any() or (correct > steps).any()):
    raise MismatchError('per-window counts out of range in the evaluation with seed %s of %s '
                        '(correct steps outside 0..scored steps): not `mvae evaluate '
                        '--per_window` output' % (results.get('seed'),
                                                  results.get('model', 'a result')))
  return correct, steps


def pool_seeds(results):
  """One result from evaluations of one model on the same windows with different seeds.

  Each window's correct steps become their mean over the seeds (its scored steps are
  the same in all), so a paired gap of pooled results is the seed-averaged gap, and
  its bootstrap over tunes sees the spread of that average (tunes, and draws of z and
  of the fed samples shrunk by the number of seeds). MismatchError if the results
  are of different models, steps, files or windows, lack a seed or repeat one (that
  would count the same draws twice). The pooled result lists its seeds in order.
  """
  if len(results) == 1:
    return results[0]
  for key in ('model', 'step', 'examples_sha256', 'windows_config'):
    # A result without a file digest or windows' config (before --per_window recorded
    # them) is taken on trust, as check_same_file does.
    values = {str(r.get(key)) for r in results
              if r.get(key) is not None or key in ('model', 'step')}
    if len(values) > 1:
      raise MismatchError('evaluations to pool differ in %s (%s): pool only evaluations of one '
                          'checkpoint on one file with different --seed' % (
                              key, ', '.join(sorted(values))))
  seeds = [r.get('seed') for r in results]
  if None in seeds or len(set(seeds)) < len(seeds):
    raise MismatchError('evaluations to pool must each have their own --seed (got %s)' % seeds)
  results = [r for _, r in sorted(zip(seeds, results), key=lambda pair: pair[0])]
  seeds = sorted(seeds)
  first = results[0]
  _, steps = _arrays(first, MODES[0])
  per_window = {'steps': first['per_window']['steps']}
  pooled = {}
  for mode in MODES:
    counts = []
    for seed, r in zip(seeds, results):
      c, n = _arrays(r, mode)
      if not np.array_equal(n, steps) or len(c) != len(n):
        raise MismatchError(
            'evaluations to pool do not score the same windows (seed %d: %d windows of %d '
            'steps; seed %d: %d of %d): evaluate every seed on the whole file, no '
            '--num_batches' % (seeds[0], len(steps), steps.sum(), seed, len(c), n.sum()))
      counts.append(c)
    mean = np.mean(counts, axis=0)
    per_window[mode] = mean.tolist()
    pooled[mode] = dict(accuracy=float(mean.sum() / steps.sum()),
                        per_seed=[float(c.sum() / steps.sum()) for c in counts])
  keep = ('config', 'decoder', 'parts', 'num_examples', 'step', 'examples_path', 'model',
          'windows_config', 'examples_sha256')
  pooled_result = {k: next(r[k] for r in results if r.get(k) is not None)
                   for k in keep if any(r.get(k) is not None for r in results)}
  return dict(pooled_result, seeds=seeds, per_window=per_window, **pooled)


def paired_gap(a, b, groups, mode='sampled', num_resamples=2000, seed=0):
  """Accuracy of `a` minus `b` in `mode` on the same windows, with a 95% interval.

  a, b: `evaluate(..., per_window=True)` results on the same windows; groups: each
  window's sequence (window_groups). The interval is the 2.5th and 97.5th
  percentiles of the gap over `num_resamples` resamplings of the sequences with
  replacement (each drawn sequence brings all its windows). Returns a dict:
  gap, low, high, a, b (accuracies), windows, sequences.
  """
  ca, na = _arrays(a, mode)
  cb, nb = _arrays(b, mode)
  groups = np.asarray(groups)
  if not len(ca) == len(cb) == len(groups) or not np.array_equal(na, nb):
    raise MismatchError('the two results do not score the same windows (%d and %d windows, '
                         '%d in the data): evaluate both on the same file with the same config '
                         'and no --num_batches' % (len(ca), len(cb), len(groups)))
  ids, index = np.unique(groups, return_inverse=True)
  # Per sequence sums: the bootstrap draws sequences and adds up their windows.
  sums = np.stack([np.bincount(index, weights=x, minlength=len(ids))
                   for x in (ca, cb, na)], -1)  # [sequences, 3]
  rng = np.random.default_rng(seed)
  draws = rng.integers(0, len(ids), size=(num_resamples, len(ids)))
  counts = np.apply_along_axis(np.bincount, 1, draws, minlength=len(ids))  # [R, sequences]
  resampled = counts @ sums  # [R, 3]
  gaps = (resampled[:, 0] - resampled[:, 1]) / resampled[:, 2]
  acc_a, acc_b = ca.sum() / na.sum(), cb.sum() / nb.sum()
  low, high = np.percentile(gaps, [2.5, 97.5])
  return dict(gap=float(acc_a - acc_b), low=float(low), high=float(high), a=float(acc_a),
              b=float(acc_b), windows=int(len(ca)), sequences=int(len(ids)))
