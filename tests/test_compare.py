"""Paired comparison of two evaluations: the bootstrap over tunes, and which tune each window is."""

import numpy as np
import pytest

from conftest import make_sequence, varied_melody
from mvae_tf import atomic
from mvae_tf.errors import UserError
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
  # Tune sums of A - B: 6, 5, 5 correct of 20: every resample's gap lies in [0.25, 0.3].
  assert 0.25 <= r['low'] <= r['gap'] <= r['high'] <= 0.3 and r['low'] < r['high']
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


def test_resamples_weigh_windows_by_their_steps():
  """A ratio of sums, not a mean of per-window ratios: two tunes, one long window where A
  and B tie and one short window where A leads; the gap is 2 / 110, in every resample
  between 0 (the long tune twice) and 2 / 10 (the short one twice)."""
  a = _results([50, 7], [100, 10])
  b = _results([50, 5], [100, 10])
  r = compare.paired_gap(a, b, [0, 1])
  assert r['gap'] == pytest.approx(2 / 110)
  assert r['low'] == pytest.approx(0) and r['high'] == pytest.approx(2 / 10)
  # A mean of ratios would say (0 + 0.2) / 2 = 0.1.


def test_results_that_do_not_pair_are_refused():
  a = _results([1, 2], [3, 3])
  with pytest.raises(ValueError, match='do not score the same windows'):
    compare.paired_gap(a, _results([1, 2, 3], [3, 3, 3]), [0, 0])
  with pytest.raises(ValueError, match='do not score the same windows'):
    compare.paired_gap(a, _results([1, 2], [3, 4]), [0, 0])
  with pytest.raises(ValueError, match=r'--json --per_window'):
    compare.paired_gap(a, {'model': 'old.json'}, [0, 0])
  with pytest.raises(ValueError, match='counts out of range'):
    compare.paired_gap(a, _results([1, 4], [3, 3]), [0, 0])


def test_results_from_another_file_or_other_windows_are_refused(tmp_path):
  path = tmp_path / 'eval.tfrecord'
  path.write_bytes(b'one')
  a = dict(_results([1], [2]), examples_sha256=atomic.file_sha256(str(path)))
  b = dict(_results([1], [2]), model='b.json', examples_sha256=atomic.file_sha256(str(path)))
  compare.check_same_file(a, b, str(path))
  compare.check_same_file(a, _results([1], [2]), str(path))  # one without: on trust
  path.write_bytes(b'two')  # rebuilt since
  with pytest.raises(ValueError, match='evaluated on another file than .*eval.tfrecord'):
    compare.check_same_file(a, b, str(path))
  # A hierarchical and a flat config of one kind read the same windows; a drum one does not.
  assert compare.windows_config({'config': 'hierdec-mel_16bar_cpu'},
                                {'config': 'flat-mel_16bar_cpu'}) == 'hierdec-mel_16bar_cpu'
  assert compare.windows_config({'config': 'x', 'windows_config': 'tiny-mel_2bar'},
                                {'config': 'tiny-mel_2bar'}) == 'tiny-mel_2bar'
  with pytest.raises(ValueError, match='read different windows'):
    compare.windows_config({'config': 'hierdec-mel_16bar_cpu'},
                           {'config': 'hierdec-drums_16bar_cpu'})


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


def _seeded(seed, correct, steps, **extra):
  r = {'model': 'm', 'step': 7, 'seed': seed, 'examples_sha256': 'abc',
       'windows_config': 'tiny-mel_2bar', 'per_window': {'steps': list(steps)}}
  for mode in compare.MODES:
    r['per_window'][mode] = list(correct)
  r.update(extra)
  return r


def test_pooled_seeds_average_each_window_and_pair_like_one_result():
  steps = [10, 10, 20]
  pooled = compare.pool_seeds([_seeded(0, [4, 6, 10], steps), _seeded(1, [6, 6, 14], steps),
                               _seeded(2, [5, 9, 12], steps)])
  assert pooled['seeds'] == [0, 1, 2] and pooled['step'] == 7
  assert pooled['per_window']['sampled'] == pytest.approx([5, 7, 12])
  assert pooled['per_window']['steps'] == steps
  assert pooled['sampled']['accuracy'] == pytest.approx(24 / 40)
  assert pooled['sampled']['per_seed'] == pytest.approx([20 / 40, 26 / 40, 26 / 40])
  # A pooled result pairs with a single one like any other (same windows, same steps).
  r = compare.paired_gap(pooled, _seeded(0, [5, 5, 10], steps), [0, 0, 1])
  assert r['gap'] == pytest.approx(4 / 40)
  # Both tunes lead by 2 of 20 steps: every resample's gap is 0.1.
  assert r['low'] == pytest.approx(0.1) and r['high'] == pytest.approx(0.1)
  # One result is returned as it is.
  one = _seeded(3, [1, 2, 3], steps)
  assert compare.pool_seeds([one]) is one
  # Seeds given out of order come back in order, each with its own accuracy.
  again = compare.pool_seeds([_seeded(2, [5, 9, 12], steps), _seeded(0, [4, 6, 10], steps)])
  assert again['seeds'] == [0, 2]
  assert again['sampled']['per_seed'] == pytest.approx([20 / 40, 26 / 40])


def test_pooling_narrows_the_interval_by_the_draws_not_the_tunes():
  """Tunes that differ keep their spread; draws that differ per seed average out.
  40 tunes of one window, a true per-tune lead that varies, and per-seed noise on top:
  pooling 8 seeds narrows the interval (the noise shrinks) but not below the tunes'
  own spread (the interval of the noise-free lead)."""
  rng = np.random.default_rng(3)
  steps = np.full(40, 100)
  lead = rng.integers(0, 20, 40)  # the tunes' spread
  b = _seeded(0, np.full(40, 50), steps)
  exact = compare.paired_gap(_seeded(0, 50 + lead, steps), b, np.arange(40))
  noisy = [_seeded(k, np.clip(50 + lead + rng.integers(-15, 16, 40), 0, 100), steps)
           for k in range(8)]
  one = compare.paired_gap(noisy[0], b, np.arange(40))
  pooled = compare.paired_gap(compare.pool_seeds(noisy), b, np.arange(40))
  width = {name: r['high'] - r['low'] for name, r in
           (('exact', exact), ('one', one), ('pooled', pooled))}
  assert width['pooled'] < 0.8 * width['one']
  assert width['pooled'] > 0.8 * width['exact']
  assert abs(pooled['gap'] - exact['gap']) < abs(one['gap'] - exact['gap']) + 0.01


def test_pooling_refuses_a_repeated_seed_or_other_checkpoints():
  steps = [10, 10]
  a = _seeded(0, [5, 5], steps)
  with pytest.raises(compare.MismatchError, match='own --seed'):
    compare.pool_seeds([a, _seeded(0, [6, 6], steps)])
  with pytest.raises(ValueError, match='differ in step'):
    compare.pool_seeds([a, _seeded(1, [6, 6], steps, step=8)])
  with pytest.raises(ValueError, match='differ in model'):
    compare.pool_seeds([a, _seeded(1, [6, 6], steps, model='other')])
  with pytest.raises(ValueError, match='differ in examples_sha256'):
    compare.pool_seeds([a, _seeded(1, [6, 6], steps, examples_sha256='def')])
  with pytest.raises(ValueError, match='do not score the same windows'):
    compare.pool_seeds([a, _seeded(1, [6, 6], [10, 11])])
  with pytest.raises(ValueError, match='differ in windows_config'):
    compare.pool_seeds([a, _seeded(1, [6, 6], steps, windows_config='tiny-drums_2bar')])
  no_seed = _seeded(1, [6, 6], steps)
  del no_seed['seed']
  with pytest.raises(compare.MismatchError, match='own --seed'):
    compare.pool_seeds([a, no_seed])
  with pytest.raises(compare.MismatchError, match='out of range in the evaluation with seed 1'):
    compare.pool_seeds([a, _seeded(1, [6, 11], steps)])
  short = _seeded(1, [6, 6], steps)
  short['per_window']['sampled'] = [6]
  with pytest.raises(compare.MismatchError, match='seed 1: 1 of 20'):
    compare.pool_seeds([a, short])
  # A result from before --per_window recorded the file's digest is taken on trust.
  old = _seeded(1, [6, 6], steps)
  del old['examples_sha256']
  assert compare.pool_seeds([old, a])['examples_sha256'] == 'abc'
  # Mismatches are a user's mistake: one line from the scripts, not a traceback.
  assert issubclass(compare.MismatchError, UserError)


def test_paired_gap_script_pools_seeds_and_refuses_in_one_line(tmp_path):
  pytest.importorskip('tensorflow')
  import json
  import os
  import subprocess
  import sys
  from mvae_tf.data import tfrecord
  path = tmp_path / 'eval.tfrecord'
  with tfrecord.AtomicTFRecordWriter(str(path)) as writer:
    writer.write(varied_melody(bars=3).SerializeToString())  # 2 windows of 2 bars
    writer.write(varied_melody(bars=4).SerializeToString())  # 3
  digest = atomic.file_sha256(str(path))
  steps = [32] * 5
  files = {}
  for name, seed, correct in (('a0', 0, [20, 20, 20, 20, 20]), ('a1', 1, [22, 22, 24, 24, 24]),
                              ('b0', 0, [16, 16, 16, 16, 16])):
    files[name] = str(tmp_path / (name + '.json'))
    with open(files[name], 'w') as f:
      json.dump(_seeded(seed, correct, steps, model=name[0], examples_sha256=digest), f)
  script = os.path.join(os.path.dirname(__file__), '..', 'benchmarks', 'paired_gap.py')
  run = subprocess.run([sys.executable, script, files['a0'] + ',' + files['a1'], files['b0'],
                        '--examples_path', str(path), '--json'], capture_output=True, text=True)
  assert run.returncode == 0, run.stderr
  out = json.loads(run.stdout)
  assert out['seeds_a'] == [0, 1] and out['seeds_b'] == [0]
  # A's windows: 21, 21, 22, 22, 22 of 32; B's 16 each: (108 - 80) / 160.
  assert out['gaps']['sampled']['gap'] == pytest.approx(28 / 160)
  run = subprocess.run([sys.executable, script, files['a0'] + ',' + files['a0'], files['b0'],
                        '--examples_path', str(path)], capture_output=True, text=True)
  assert run.returncode == 1 and 'Traceback' not in run.stderr
  assert run.stderr.strip().splitlines()[-1].startswith('paired_gap.py: evaluations to pool')


def test_gap_curve_pools_a_steps_seed_files_and_names_what_it_refuses(tmp_path):
  import json
  import os
  import sys
  sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'benchmarks'))
  import gap_curve
  steps = [10, 10]
  for name, result in (('evaluation-100.json', _seeded(0, [5, 5], steps)),
                       ('evaluation-100-seed2.json', _seeded(2, [7, 7], steps)),
                       ('evaluation-100-seed1.json', _seeded(1, [6, 6], steps)),
                       ('evaluation-200.json', _seeded(0, [8, 8], steps, step=200)),
                       ('evaluation-200.json.tmp', {}), ('evaluation-300-seed1.jsonx', {})):
    (tmp_path / name).write_text(json.dumps(result))
  found = gap_curve._evaluations(str(tmp_path))
  assert sorted(found) == [100, 200]
  assert found[100]['seeds'] == [0, 1, 2]
  assert found[100]['sampled']['accuracy'] == pytest.approx(0.6)
  assert 'seeds' not in found[200] and found[200]['seed'] == 0
  (tmp_path / 'evaluation-200-seed0.json').write_text(json.dumps(_seeded(0, [8, 8], steps, step=200)))
  with pytest.raises(UserError, match=r'step 200: evaluations to pool must each have their own'):
    gap_curve._evaluations(str(tmp_path))
  (tmp_path / 'evaluation-200-seed0.json').write_text(json.dumps({'seed': 3}))  # no per_window
  with pytest.raises(UserError, match='step 200: some evaluations have per-window counts'):
    gap_curve._evaluations(str(tmp_path))
  (tmp_path / 'evaluation-200-seed0.json').write_text('{"seed": ')  # a killed write
  with pytest.raises(UserError, match='cannot read .*evaluation-200-seed0.json'):
    gap_curve._evaluations(str(tmp_path))
