"""Paired comparison of two evaluations: the bootstrap over tunes, and which tune each window is."""

import numpy as np
import pytest

from conftest import make_sequence, varied_melody
from mvae_tf.evaluation import compare


def _results(correct, steps, mode='sampled'):
  return {'model': 'm', 'per_window': {'steps': list(steps), mode: list(correct)}}


def test_gap_and_interval_on_a_hand_made_pair():
  steps = [10] * 6
  a = _results([9, 8, 9, 7, 8, 9], steps)
  b = _results([6, 5, 7, 4, 6, 6], steps)
  r = compare.paired_gap(a, b, [0, 0, 1, 1, 2, 2])
  assert r['a'] == pytest.approx(50 / 60) and r['b'] == pytest.approx(34 / 60)
  assert r['gap'] == pytest.approx(16 / 60)
  assert (r['windows'], r['sequences']) == (6, 3)
  # Tune sums of A - B: 6, 6, 4 correct of 20: every resample's gap lies in [0.2, 0.3].
  assert 0.2 <= r['low'] <= r['gap'] <= r['high'] <= 0.3 and r['low'] < r['high']
  # A constant gap in every tune leaves no uncertainty.
  r = compare.paired_gap(_results([5, 5, 5], [10] * 3), _results([4, 4, 4], [10] * 3),
                         [0, 1, 2])
  assert r['low'] == pytest.approx(0.1) and r['high'] == pytest.approx(0.1)


def test_overlapping_windows_of_one_tune_do_not_narrow_the_interval():
  """Each tune's windows repeated 5 times (as overlapping windows nearly are) give the
  same interval: tunes are resampled, not windows."""
  rng = np.random.default_rng(1)
  steps = rng.integers(50, 100, 40)
  ca, cb = rng.binomial(steps, 0.6), rng.binomial(steps, 0.5)
  groups = np.arange(40)
  once = compare.paired_gap(_results(ca, steps), _results(cb, steps), groups)
  five = compare.paired_gap(_results(np.repeat(ca, 5), np.repeat(steps, 5)),
                            _results(np.repeat(cb, 5), np.repeat(steps, 5)),
                            np.repeat(groups, 5))
  for key in ('gap', 'low', 'high'):
    assert five[key] == pytest.approx(once[key])
  # Resampling the 200 windows as if independent would narrow it by about sqrt(5).
  as_windows = compare.paired_gap(_results(np.repeat(ca, 5), np.repeat(steps, 5)),
                                  _results(np.repeat(cb, 5), np.repeat(steps, 5)),
                                  np.arange(200))
  assert (as_windows['high'] - as_windows['low']) < 0.6 * (once['high'] - once['low'])


def test_results_that_do_not_pair_are_refused():
  a = _results([1, 2], [3, 3])
  with pytest.raises(ValueError, match='do not score the same windows'):
    compare.paired_gap(a, _results([1, 2, 3], [3, 3, 3]), [0, 0])
  with pytest.raises(ValueError, match='do not score the same windows'):
    compare.paired_gap(a, _results([1, 2], [3, 4]), [0, 0])
  with pytest.raises(ValueError, match=r'--json --per_window'):
    compare.paired_gap(a, {'model': 'old.json'}, [0, 0])


def test_window_groups_follow_the_eval_pipeline(tmp_path):
  pytest.importorskip('tensorflow')
  from mvae_tf.data import pipeline, tfrecord
  path = tmp_path / 'three.tfrecord'
  with tfrecord.AtomicTFRecordWriter(str(path)) as writer:
    writer.write(varied_melody(bars=6).SerializeToString())  # 5 windows of 2 bars
    writer.write(make_sequence([]).SerializeToString())  # none
    writer.write(varied_melody(bars=3).SerializeToString())  # 2
  groups = compare.window_groups('tiny-mel_2bar', str(path))
  assert groups.tolist() == [0] * 5 + [2] * 2
  windows = sum(len(b[3]) for b in pipeline.get_dataset('tiny-mel_2bar', str(path), 3,
                                                        mode='eval'))
  assert windows == len(groups)
