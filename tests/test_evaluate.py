"""`mvae evaluate`: each metric on hand-computed cases, evaluate() on models, report, CLI."""

import argparse
import hashlib
import json
import math
import subprocess
import sys

import numpy as np
import pytest

tf = pytest.importorskip('tensorflow')

from conftest import rock_beat, varied_melody  # noqa: E402
from mvae_tf.evaluation import evaluate as ev  # noqa: E402
from mvae_tf.data import tfrecord  # noqa: E402

# --- Metrics on hand-computed cases. ---


def test_accuracy_counts_only_real_steps():
  predictions = [[1, 2, 3, 0], [4, 4, 4, 4]]
  targets = [[1, 2, 0, 5], [4, 4, 1, 4]]
  counts = ev.count_correct(predictions, targets, [3, 4], [6])
  assert counts.accuracy() == pytest.approx(5 / 7)  # 2 of 3, then 3 of 4
  # What is predicted past a length does not count.
  padded = ev.count_correct([[1, 2, 3, 5], [4, 4, 4, 4]], targets, [3, 4], [6])
  assert padded.accuracy() == pytest.approx(5 / 7)
  np.testing.assert_array_equal(ev.step_mask([3, 4], 4), [[1, 1, 1, 0], [1, 1, 1, 1]])


def test_accuracy_per_part_and_their_mean():
  targets = np.array([[[0, 1, 2], [1, 1, 3], [2, 0, 0], [0, 2, 1]]])  # [1, 4, 3]
  predictions = targets.copy()
  predictions[0, :2, 1] = 2  # bass: 2 of 4 right
  predictions[0, :, 2] = [1, 2, 3, 0]  # drums: none right
  counts = ev.count_correct(predictions, targets, [4], [3, 3, 4])
  np.testing.assert_allclose(counts.per_part(), [1.0, 0.5, 0.0])
  assert counts.accuracy() == pytest.approx(6 / 12)
  summary = ev.summarize(counts, ev.part_names([90, 90, 512]))
  assert summary['per_part'] == {'melody': 1.0, 'bass': 0.5, 'drums': 0.0}


def test_accuracy_per_bar_with_a_short_sequence():
  targets = np.zeros([2, 6], int)  # 3 bars of 2 steps
  predictions = np.zeros([2, 6], int)
  predictions[1, :3] = 1  # the short window's 3 real steps are wrong
  counts = ev.count_correct(predictions, targets, [6, 3], [2], steps_per_bar=2)
  np.testing.assert_array_equal(counts.real, [4, 3, 2])
  np.testing.assert_allclose(counts.per_bar(), [2 / 4, 2 / 3, 2 / 2])
  assert counts.accuracy() == pytest.approx(6 / 9)
  # A bar that no window reaches has no accuracy (None in the JSON).
  counts = ev.count_correct(predictions, targets, [3, 3], [2], steps_per_bar=2)
  np.testing.assert_array_equal(counts.real, [4, 2, 0])
  assert ev.summarize(counts, ['melody'])['per_bar'] == [0.5, 0.5, None]
  # A partial last bar is a bar.
  counts = ev.count_correct(np.zeros([1, 5]), np.zeros([1, 5]), [5], [2], steps_per_bar=2)
  np.testing.assert_array_equal(counts.real, [2, 2, 1])


def test_mean_per_class_accuracy_averages_the_recall_of_classes_that_occur():
  targets = [[0, 0, 0, 1, 2]]  # class 2 only past the length; class 3 never
  predictions = [[0, 0, 0, 0, 2]]
  counts = ev.count_correct(predictions, targets, [4], [4])
  assert counts.accuracy() == pytest.approx(3 / 4)
  # Recall of class 0 is 1, of class 1 is 0: the mean is 0.5, whatever is frequent.
  np.testing.assert_allclose(counts.mean_per_class(), [0.5])
  trio = ev.count_correct([[[0, 1]], [[1, 1]]], [[[0, 1]], [[0, 1]]], [1, 1], [2, 3])
  np.testing.assert_allclose(trio.mean_per_class(), [0.5, 1.0])


def test_kl_in_bits_of_known_gaussians():
  assert ev.kl_bits(np.zeros([1, 4]), np.ones([1, 4])) == pytest.approx([0.0])
  # KL of N(mu, 1) to N(0, 1) is mu^2 / 2 nats: mu^2 = 2 ln 2 is one bit per dimension.
  mu = np.full([2, 3], math.sqrt(2 * math.log(2)))
  np.testing.assert_allclose(ev.kl_bits(mu, np.ones([2, 3])), [3.0, 3.0])
  # N(0, 0.5^2): (0.25 - 1 - 2 ln 0.5) / 2 nats.
  expected = 0.5 * (0.25 - 1 + 2 * math.log(2)) / math.log(2)
  assert ev.kl_bits([[0.0]], [[0.5]]) == pytest.approx([expected])


def test_counts_accumulate_over_batches_not_as_a_mean_of_batch_means():
  a = ev.count_correct([[1, 2, 3, 0]], [[1, 2, 3, 0]], [4], [4])  # 4 of 4
  b = ev.count_correct([[1, 0, 0, 0]], [[2, 0, 0, 0]], [1], [4])  # 0 of 1
  total = a + b
  assert total.accuracy() == pytest.approx(4 / 5)
  assert (a.accuracy() + b.accuracy()) / 2 == 0.5
  np.testing.assert_array_equal(total.class_real[0], [1, 1, 2, 1])
  np.testing.assert_allclose(total.mean_per_class(), [(1 + 1 + 0.5 + 1) / 4])  # class 2: 1 of 2


# --- The paper's table. ---


def test_configs_map_to_the_paper_rows_by_kind_and_length():
  def numbers(name, decoder=None):
    return [(r['model'], r['teacher_forced'], r['sampled'])
            for r in ev.paper_rows(name, decoder)]

  assert numbers('cat-mel_2bar_small') == [('2-bar melody', 0.986, 0.951)]
  assert numbers('cat-drums_2bar_cpu') == [('2-bar drum', 0.979, 0.917)]
  assert numbers('hierdec-mel_16bar_cpu') == [('16-bar melody', 0.919, 0.812)]
  assert numbers('flat-drums_16bar') == [('16-bar drum', 0.884, 0.549)]
  assert numbers('tiny-hierdec-trio_16bar') == [
      ('trio (melody)', 0.848, 0.753), ('trio (bass)', 0.880, 0.773),
      ('trio (drums)', 0.912, 0.863)]
  assert [r['part'] for r in ev.paper_rows('flat-trio_16bar')] == ['melody', 'bass', 'drums']
  assert numbers('tiny-mel_2bar', 'hierarchical') == [('2-bar melody', None, None)]
  assert numbers('tiny-hierdec-trio_2bar') == []


def _results(kind, steps, decoder, parts, accuracy=0.5):
  names = ev.part_names(parts)
  targets = np.zeros([1, steps, len(parts)], int)
  predictions = targets.copy()
  predictions[0, :int(steps * (1 - accuracy))] = 1
  counts = ev.count_correct(predictions, targets, [steps], parts)
  summary = ev.summarize(counts, names, per_bar=decoder == 'hierarchical')
  return dict(config='test', decoder=decoder, parts=list(names), num_examples=1,
              num_batches=1, num_steps=steps, seed=0, teacher_forced=summary,
              sampled=summary, r_loss=12.5, kl_bits=3.25, step=7,
              paper=ev._rows(kind, steps, decoder))


def test_report_puts_ours_beside_the_paper_in_the_models_row_and_column():
  text = ev.format_report(_results('trio', 256, 'hierarchical', [90, 90, 512]))
  lines = text.splitlines()
  melody = next(l for l in lines if 'trio (melody)' in l)
  assert melody.startswith('> ')
  assert '0.796' in melody and '0.500 (paper 0.848)' in melody
  assert '0.500 (paper 0.753)' in melody and '0.579' in melody
  assert '0.500 (paper 0.912)' in next(l for l in lines if 'trio (drums)' in l)
  melody16 = next(l for l in lines if '16-bar melody' in l)
  assert not melody16.startswith('>') and '0.883' in melody16 and 'paper' not in melody16
  for word in ('accuracy, bass', 'mean-per-class, drums', 'per bar, sampled', '12.500 nats',
               '3.25 bits', 'at step 7'):
    assert word in text


def test_report_of_a_model_without_a_paper_row():
  results = _results('trio', 32, 'hierarchical', [90, 90, 512])
  text = ev.format_report(results)
  assert 'no row for this model' in text and '(paper 0.' not in text
  assert '0.986' in text  # the table is still printed
  flat = ev.format_report(_results('melody', 32, 'flat', [90], accuracy=1.0))
  assert '1.000 (paper 0.986)' in flat and 'per bar' not in flat
  json.dumps(results)


# --- evaluate() on models. ---


class _Hparams:
  max_seq_len = 4


class OracleModel:
  """Teacher-forced logits are 2 * the targets; sampling always answers class 0.

  Its posterior is N(sqrt(2 ln 2), 1) in 2 dimensions: 2 bits of KL.
  """
  output_depths = [4]
  steps_per_bar = 2
  decoder_type = 'hierarchical'
  config_name = None
  hparams = _Hparams()

  def encode(self, inputs, lengths, controls=None):
    mu = tf.fill([tf.shape(inputs)[0], 2], math.sqrt(2 * math.log(2)))
    return mu, tf.ones_like(mu)

  def teacher_forced_logits(self, targets, z, controls=None, sampling_probability=0.0):
    return 2.0 * tf.cast(targets, tf.float32)

  def sample(self, z, num_steps, temperature=0.0, seed=None, controls=None):
    """Fed its argmax (temperature 0) it predicts class 0; fed samples, class 1."""
    label = 0 if temperature == 0 else 1
    logits = tf.one_hot(tf.fill([tf.shape(z)[0], num_steps], label), 4)
    return tf.fill([tf.shape(z)[0], num_steps, 1], label), logits


def _dataset(targets, lengths, batch_size, depth):
  outputs = np.eye(depth, dtype=bool)[np.asarray(targets)]
  controls = np.zeros(outputs.shape[:2] + (0,), bool)
  return tf.data.Dataset.from_tensor_slices(
      (outputs, outputs, controls, np.asarray(lengths, np.int32))).batch(batch_size)


def test_evaluate_plumbing_on_an_oracle_model():
  targets = [[0, 1, 0, 2], [0, 0, 3, 3], [1, 0, 0, 0]]
  lengths = [4, 2, 3]
  results = ev.evaluate(OracleModel(), _dataset(targets, lengths, 2, 4))
  assert results['num_examples'] == 3 and results['num_batches'] == 2
  assert results['num_steps'] == 9
  assert results['teacher_forced']['accuracy'] == 1.0
  # Sampled: class 0 is right at the real steps whose target is 0 (2 + 2 + 2 of 9).
  sampled = results['sampled']
  assert sampled['accuracy'] == pytest.approx(6 / 9)
  assert sampled['per_bar'] == pytest.approx([4 / 6, 2 / 3])
  assert sampled['mean_per_class'] == {'output': pytest.approx((1 + 0 + 0) / 3)}
  # Sample-fed: its logits' argmax, class 1, is right at the 2 real steps whose target is 1.
  assert results['sampled_t1']['accuracy'] == pytest.approx(2 / 9)
  assert results['sampled_t1']['per_bar'] == pytest.approx([2 / 6, 0 / 3])  # both in bar 0
  step_ce = math.log(math.exp(2) + 3) - 2
  assert results['r_loss'] == pytest.approx(step_ce * 9 / 3, rel=1e-5)
  assert results['kl_bits'] == pytest.approx(2.0, rel=1e-5)
  assert results['paper'] == []
  json.dumps(results)
  assert 'per_window' not in results
  # Per window, in the data's order: real steps, and correct steps of each mode.
  windows = ev.evaluate(OracleModel(), _dataset(targets, lengths, 2, 4),
                        per_window=True)['per_window']
  assert windows == {'steps': [4, 2, 3], 'teacher_forced': [4, 2, 3],
                     'sampled': [2, 2, 2], 'sampled_t1': [1, 0, 1]}
  assert ev.evaluate(OracleModel(), _dataset(targets, lengths, 2, 4), num_batches=1)[
      'num_examples'] == 2
  with pytest.raises(ev.EmptyDatasetError):
    ev.evaluate(OracleModel(), _dataset(targets, lengths, 2, 4).take(0))


@pytest.fixture(scope='module')
def melody_examples(tmp_path_factory):
  path = tmp_path_factory.mktemp('evaluate') / 'melody.tfrecord'
  with tfrecord.AtomicTFRecordWriter(str(path)) as writer:
    writer.write(varied_melody(bars=6).SerializeToString())
  return str(path)


@pytest.fixture(scope='module')
def tiny_model():
  from mvae_tf.model.vae import MusicVAE
  tf.keras.utils.set_random_seed(3)
  return MusicVAE.from_config_name('tiny-mel_2bar')


def test_evaluate_a_tiny_model_is_reproducible_and_matches_a_direct_computation(
    tiny_model, melody_examples):
  from mvae_tf.data import pipeline
  model = tiny_model
  dataset = pipeline.get_dataset('tiny-mel_2bar', melody_examples, 3, mode='eval')
  results = ev.evaluate(model, dataset, seed=5)
  assert results['num_batches'] == 2 and results['num_examples'] == 5
  assert results['paper'][0]['model'] == '2-bar melody'
  assert ev.evaluate(model, dataset, seed=5) == results
  assert ev.evaluate(model, dataset, seed=6)['r_loss'] != results['r_loss']
  # The same numbers, computed directly.
  correct = {'teacher_forced': 0, 'sampled': 0, 'sampled_t1': 0}
  real = r_loss = kl = 0.0
  for i, (inputs, outputs, controls, lengths) in enumerate(dataset):
    mu, sigma = model.encode(inputs, lengths)
    z = mu + sigma * tf.random.stateless_normal(tf.shape(mu), [5, i])
    logits = model.teacher_forced_logits(outputs, z).numpy()
    sampled = model.sample(z, 32)[0].numpy()[..., 0]
    fed = model.sample(z, 32, 1.0, seed=tf.random.experimental.stateless_fold_in(
        tf.constant([5, i]), 1))[1].numpy().argmax(-1)
    target = outputs.numpy().argmax(-1)
    mask = np.arange(32)[None] < lengths.numpy()[:, None]
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    r_loss += -np.sum(np.take_along_axis(log_p, target[..., None], -1)[..., 0] * mask)
    correct['teacher_forced'] += np.sum((logits.argmax(-1) == target) & mask)
    correct['sampled'] += np.sum((sampled == target) & mask)
    correct['sampled_t1'] += np.sum((fed == target) & mask)
    real += mask.sum()
    kl += np.sum(0.5 * np.sum(mu**2 + sigma**2 - 1 - 2 * np.log(sigma), -1)) / math.log(2)
  for mode in correct:
    assert results[mode]['accuracy'] == pytest.approx(correct[mode] / real)
  assert results['r_loss'] == pytest.approx(r_loss / 5, rel=1e-4)
  assert results['kl_bits'] == pytest.approx(kl / 5, rel=1e-4)


def test_evaluate_a_hierarchical_trio_per_part_and_per_bar():
  from mvae_tf.model.vae import MusicVAE
  model = MusicVAE.from_config_name('tiny-hierdec-trio_2bar')
  rng = np.random.default_rng(0)
  targets = np.stack([rng.integers(0, d, [3, 32]) for d in (90, 90, 512)], -1)
  outputs = np.concatenate([np.eye(d, dtype=bool)[targets[..., p]]
                            for p, d in enumerate((90, 90, 512))], -1)
  dataset = tf.data.Dataset.from_tensor_slices(
      (outputs, outputs, np.zeros([3, 32, 0], bool), np.array([32, 20, 10], np.int32))).batch(3)
  results = ev.evaluate(model, dataset)
  assert results['parts'] == ['melody', 'bass', 'drums']
  for mode in ('teacher_forced', 'sampled', 'sampled_t1'):
    m = results[mode]
    assert set(m['per_part']) == {'melody', 'bass', 'drums'} and len(m['per_bar']) == 2
    assert m['accuracy'] == pytest.approx(np.mean(list(m['per_part'].values())))
  assert results['num_steps'] == 62 and results['paper'] == []
  # Per window, parts add up: the windows' correct over scored steps is the accuracy.
  windows = ev.evaluate(model, dataset, per_window=True)['per_window']
  assert windows['steps'] == [96, 60, 30]
  for mode in ('teacher_forced', 'sampled', 'sampled_t1'):
    assert sum(windows[mode]) / sum(windows['steps']) == pytest.approx(
        results[mode]['accuracy'])


def test_window_correct_sums_parts_at_real_steps():
  predictions = np.array([[[0, 1], [2, 2], [0, 0]], [[1, 1], [0, 0], [3, 3]]])
  targets = np.array([[[0, 1], [2, 0], [1, 1]], [[1, 0], [0, 0], [3, 3]]])
  correct, steps = ev.window_correct(predictions, targets, [2, 3])
  assert correct.tolist() == [3, 5] and steps.tolist() == [4, 6]
  correct, steps = ev.window_correct([[1, 2, 3]], [[1, 0, 3]], [3])  # one part, [B, T]
  assert correct.tolist() == [2] and steps.tolist() == [3]


# --- The command. ---


def _parser():
  from mvae_tf.cli import evaluate as evaluate_command
  parser = argparse.ArgumentParser(prog='mvae')
  evaluate_command.add_evaluate_parser(parser.add_subparsers(dest='command'))
  return parser


def _run(*argv):
  args = _parser().parse_args(['evaluate'] + list(argv))
  return args.func(args)


def test_parser_flags_and_defaults():
  args = _parser().parse_args(['evaluate', '--config', 'tiny-mel_2bar', '--run_dir', 'r',
                               '--examples_path', 'x.tfrecord'])
  assert (args.num_batches, args.batch_size, args.hparams, args.seed, args.json,
          args.checkpoint) == (None, None, '', 0, False, None)
  for argv in ([], ['--run_dir', 'r', '--checkpoint', 'c']):
    with pytest.raises(SystemExit):
      _parser().parse_args(['evaluate', '--config', 'c', '--examples_path', 'x'] + argv)
  # generate's spelling of the flag works here too.
  args = _parser().parse_args(['evaluate', '--config', 'c', '--examples_path', 'x',
                               '--checkpoint_file', 'm'])
  assert args.checkpoint == 'm'


def test_building_the_parser_does_not_import_tensorflow():
  code = ('import argparse, sys; from mvae_tf.cli import evaluate; '
          'evaluate.add_evaluate_parser(argparse.ArgumentParser().add_subparsers()); '
          'print("tensorflow" in sys.modules)')
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == 'False'


@pytest.fixture(scope='module')
def saved_model(tiny_model, tmp_path_factory):
  from mvae_tf.store.resolve import save_model
  path = tmp_path_factory.mktemp('saved') / 'tiny'
  save_model(tiny_model, str(path))
  return str(path)


def test_cli_errors_name_the_input_and_what_to_do(tmp_path, melody_examples, saved_model):
  from mvae_tf.errors import UserError
  common = ['--config', 'tiny-mel_2bar', '--examples_path', melody_examples]
  with pytest.raises(UserError, match='nowhere: no such run directory'):
    _run('--run_dir', str(tmp_path / 'nowhere'), *common)
  (tmp_path / 'empty').mkdir()
  with pytest.raises(UserError, match='has no checkpoint yet: train first'):
    _run('--run_dir', str(tmp_path / 'empty'), *common)
  with pytest.raises(UserError, match='ckpt-3: no such model; give a shipped model'):
    _run('--checkpoint', str(tmp_path / 'ckpt-3'), *common)
  with pytest.raises(UserError, match='missing.tfrecord: no such examples file'):
    _run('--checkpoint', saved_model, '--config', 'tiny-mel_2bar',
         '--examples_path', str(tmp_path / 'missing.tfrecord'))
  with pytest.raises(UserError, match='unknown config'):
    _run('--checkpoint', saved_model, '--config', 'tiny-mel', '--examples_path',
         melody_examples)
  with pytest.raises(UserError, match='--config tiny-drums_2bar: pass the --config it was'):
    _run('--checkpoint', saved_model, '--config', 'tiny-drums_2bar', '--examples_path',
         melody_examples)
  with pytest.raises(UserError, match='--num_batches must be positive'):
    _run('--checkpoint', saved_model, *common, '--num_batches', '0')
  drums = tmp_path / 'drums.tfrecord'
  with tfrecord.AtomicTFRecordWriter(str(drums)) as writer:
    writer.write(rock_beat(bars=4).SerializeToString())
  with pytest.raises(UserError, match=r'drums.tfrecord: no sequence yields a tiny-mel_2bar '
                                      r'window; run `mvae inspect .*drums.tfrecord'):
    _run('--checkpoint', saved_model, '--config', 'tiny-mel_2bar', '--examples_path',
         str(drums))


def test_cli_end_to_end_on_a_saved_model(saved_model, melody_examples, capsys):
  assert _run('--checkpoint', saved_model, '--config', 'tiny-mel_2bar', '--examples_path',
              melody_examples, '--json', '--batch_size', '3', '--seed', '5') == 0
  results = json.loads(capsys.readouterr().out)
  assert results['num_examples'] == 5 and results['num_batches'] == 2
  assert results['config'] == 'tiny-mel_2bar' and results['step'] is None
  assert results['model'] == saved_model and results['examples_path'] == melody_examples
  # The numbers are evaluate()'s on the same model, windows, batch size and seed.
  from mvae_tf.data import pipeline
  from mvae_tf.generation.trained_model import load_model
  direct = ev.evaluate(load_model(saved_model), pipeline.get_dataset(
      'tiny-mel_2bar', melody_examples, 3, mode='eval'), seed=5)
  for mode in ('teacher_forced', 'sampled', 'sampled_t1'):
    assert results[mode] == direct[mode]
  assert 'per_window' not in results
  assert _run('--checkpoint', saved_model, '--examples_path', melody_examples, '--json',
              '--batch_size', '3', '--seed', '5', '--per_window') == 0
  with_windows = json.loads(capsys.readouterr().out)
  assert with_windows['windows_config'] == 'tiny-mel_2bar'
  with open(melody_examples, 'rb') as f:
    assert with_windows['examples_sha256'] == hashlib.sha256(f.read()).hexdigest()
  windows = with_windows['per_window']
  assert len(windows['steps']) == 5 and sum(windows['steps']) == results['num_steps']
  assert sum(windows['sampled']) / sum(windows['steps']) == pytest.approx(
      results['sampled']['accuracy'])
  from mvae_tf.errors import UserError
  with pytest.raises(UserError, match='--per_window adds to the JSON output: pass --json'):
    _run('--checkpoint', saved_model, '--examples_path', melody_examples, '--per_window')


def test_cli_prints_the_report(tiny_model, tmp_path, melody_examples, capsys, monkeypatch):
  from mvae_tf.training import runs
  calls = []

  def restore_model(**kwargs):
    calls.append(kwargs)
    return tiny_model, 1200

  monkeypatch.setattr(runs, 'restore_model', restore_model)
  assert _run('--run_dir', str(tmp_path), '--config', 'tiny-mel_2bar', '--examples_path',
              melody_examples, '--num_batches', '1') == 0
  assert calls == [dict(run_dir=str(tmp_path), config='tiny-mel_2bar', hparams=None)]
  text = capsys.readouterr().out
  assert '(paper 0.986)' in text and '(paper 0.951)' in text
  assert 'at step 1200' in text and '5 windows in 1 batches' in text  # batch_size 8


def test_evaluate_a_shipped_model_by_name_without_config(melody_examples, capsys):
  """Both --checkpoint folk-mel_2bar and --checkpoint mvae_tf/pretrained/folk-mel_2bar
  were refused (--config was required); --config now defaults to the model's own. The
  name (--preset), the name as --checkpoint and the package directory give the same
  numbers, those of a trained model (teacher-forced 0.8 on this melody; the same config
  untrained, seeds 3 and 4: 0.006 and 0.0)."""
  from mvae_tf import pretrained
  results = []
  for how, model in (('--preset', 'folk-mel_2bar'), ('--checkpoint', 'folk-mel_2bar'),
                     ('--checkpoint', pretrained.preset_dir('folk-mel_2bar'))):
    assert _run(how, model, '--examples_path', melody_examples, '--num_batches', '1',
                '--json') == 0
    results.append(json.loads(capsys.readouterr().out))
    assert results[-1]['model'] == model and results[-1]['config'] == 'cat-mel_2bar_cpu'
    assert results[-1]['step'] == 20000
  for r in results[1:]:
    assert r['teacher_forced'] == results[0]['teacher_forced']
    assert r['sampled'] == results[0]['sampled']
  assert results[0]['teacher_forced']['accuracy'] >= 0.7


def test_evaluate_refuses_a_config_that_reads_other_windows(melody_examples):
  from mvae_tf.cli import main as cli
  with pytest.raises(cli.UserError, match='pass the --config it was trained with'):
    _run('--preset', 'folk-mel_2bar', '--config', 'cat-drums_2bar_cpu', '--examples_path',
         melody_examples)
