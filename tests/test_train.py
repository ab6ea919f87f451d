"""`mvae train`: replicas, workers on loopback, resuming, signals, bad steps."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import tiny_models
from conftest import scale_melody, varied_melody
from mvae_tf.training import runs
from mvae_tf.data import tfrecord
from mvae_tf.model.weights import named_weights

CONFIG = 'tiny-mel_2bar'
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONUNBUFFERED='1')


@pytest.fixture(scope='module')
def examples(tmp_path_factory):
  path = tmp_path_factory.mktemp('train') / 'examples.tfrecord'
  with tfrecord.AtomicTFRecordWriter(str(path)) as writer:
    for i in range(6):
      ns = varied_melody(bars=10) if i % 2 else scale_melody(bars=6, start_pitch=55 + i)
      writer.write(ns.SerializeToString())
  return str(path)


def _mvae(*args):
  return [sys.executable, '-m', 'mvae_tf', *args]


def _train_args(run_dir, examples, num_steps, *extra):
  return _mvae('train', '--config', CONFIG, '--run_dir', str(run_dir), '--examples_path',
               examples, '--num_steps', str(num_steps), '--no_progress', *extra)


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _wait_for_checkpoints(run_dir, count, proc, timeout=240):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if proc.poll() is not None:
      raise AssertionError('training ended early: %s' % proc.communicate()[1][-2000:])
    if len(runs.list_checkpoints(str(run_dir))) >= count:
      return runs.list_checkpoints(str(run_dir))
    time.sleep(0.2)
  proc.kill()
  raise AssertionError('no %d checkpoints within %ds' % (count, timeout))


_REPLICA_SCRIPT = textwrap.dedent('''
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from mvae_tf.training import train
    from mvae_tf.model.vae import MusicVAE, make_optimizer

    config, sampling = sys.argv[1], float(sys.argv[2])
    # Scheduled sampling at a constant rate: half the decoder's inputs are its own draws.
    hparams = 'sampling_schedule=constant,sampling_rate=%r,batch_size=8' % sampling
    initial_model = MusicVAE.from_config_name(config, hparams)
    rng = np.random.default_rng(0)
    steps = initial_model.hparams.max_seq_len
    outputs = np.concatenate([np.eye(d, dtype=bool)[rng.integers(0, d, (8, steps))]
                              for d in initial_model.output_depths], -1)
    lengths = np.array([steps, 20, steps, 7, steps, steps, 11, steps], np.int32)
    if initial_model.decoder_type == 'hierarchical':
      lengths[:] = steps
    batch = (outputs, outputs, np.zeros((8, steps, 0), bool), lengths)
    initial = initial_model.get_weights()
    results = {}
    for replicas in (1, 2):
      strategy = tf.distribute.MirroredStrategy(['/cpu:%d' % i for i in range(replicas)])
      with strategy.scope():
        model = MusicVAE.from_config_name(config, hparams)
        model.set_weights(initial)
        optimizer = make_optimizer(model.hparams, model)
      step = train.make_train_step(strategy, model, optimizer, seed=3)
      per = 8 // replicas
      for _ in range(2):
        dist = strategy.experimental_distribute_values_from_function(
            lambda ctx: tuple(tf.constant(x[ctx.replica_id_in_sync_group * per:
                                            (ctx.replica_id_in_sync_group + 1) * per])
                              for x in batch))
        metrics = step(dist)
      results[replicas] = dict(weights=[w.tolist() for w in model.get_weights()],
                               loss=float(metrics['loss']), step=int(optimizer.iterations.numpy()),
                               sampling=float(metrics['sampling_probability']))
    results['initial'] = dict(weights=[w.tolist() for w in initial],
                              names=[w.path for w in initial_model.weights])
    json.dump(results, sys.stdout)
''')


def _replica_results(config, sampling):
  out = subprocess.run([sys.executable, '-c', _REPLICA_SCRIPT, config, str(sampling)],
                       capture_output=True, text=True, env=ENV, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout)


def test_one_and_two_replicas_make_the_same_update_with_scheduled_sampling():
  """Every draw (z's noise and scheduled sampling's) is made for the global batch and
  sliced per replica, so the split does not change the update. A hierarchical trio: its
  core decoders are the flat decoder run on bars (rows scaled by the bars), three parts."""
  config = 'tiny-hierdec-trio_2bar'
  results = _replica_results(config, 0.5)
  one, two = results['1'], results['2']
  assert one['step'] == two['step'] == 2
  assert one['sampling'] == two['sampling'] == 0.5
  assert one['loss'] == pytest.approx(two['loss'], rel=1e-5)
  unmoved = []
  for a, b, start, name in zip(one['weights'], two['weights'], results['initial']['weights'],
                               results['initial']['names']):
    np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-4, atol=1e-6)
    if np.allclose(np.array(a), np.array(start), rtol=0, atol=1e-6):
      unmoved.append(name)
  # Every weight was updated but the conductor's input kernel: its input is zeros (as in
  # the original), so its gradient is.
  assert unmoved == ['conductor/kernel_0']


def test_two_workers_on_loopback_train_and_checkpoint(tmp_path, examples):
  run_dir = tmp_path / 'run'
  ports = [_free_port(), _free_port()]
  cluster = {'worker': ['127.0.0.1:%d' % p for p in ports]}
  procs = []
  for index in range(2):
    env = dict(ENV, TF_CONFIG=json.dumps({'cluster': cluster,
                                          'task': {'type': 'worker', 'index': index}}))
    procs.append(subprocess.Popen(
        _train_args(run_dir, examples, 4, '--checkpoint_every', '2'),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
  outs = []
  for p in procs:
    try:
      outs.append(p.communicate(timeout=400))
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      raise
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  assert [runs.checkpoint_step(c) for c in runs.list_checkpoints(str(run_dir))] == [4, 2]
  assert not [d for d in os.listdir(run_dir) if d.startswith('.worker-')]
  model, step = runs.restore_model(str(run_dir))
  assert step == 4 and model.config_name == CONFIG


def test_kill_9_keeps_every_whole_checkpoint_and_resumes_from_the_newest(tmp_path, examples):
  """What a SIGKILL costs is the steps since the newest whole checkpoint (at most one
  interval): every checkpoint complete before the kill is kept and restores, at most one
  more completes while the kill is sent, and the rerun resumes from the newest."""
  run_dir = tmp_path / 'run'
  proc = subprocess.Popen(_train_args(run_dir, examples, 100000, '--checkpoint_every', '3'),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
  _wait_for_checkpoints(run_dir, 2, proc)
  before = runs.checkpoint_step(runs.list_checkpoints(str(run_dir))[0])
  proc.send_signal(signal.SIGKILL)
  proc.communicate()
  newest = runs.list_checkpoints(str(run_dir))
  last = runs.checkpoint_step(newest[0])
  assert last in (before, before + 3)
  assert [runs.checkpoint_step(p) for p in newest] == list(range(last, 0, -3))[:len(newest)]
  for prefix in newest:  # every checkpoint the index names restores
    runs.restore_model(checkpoint=prefix)
  out = subprocess.run(_train_args(run_dir, examples, last + 2, '--checkpoint_every', '3'),
                       capture_output=True, text=True, env=ENV, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert 'resuming %s from step %d' % (run_dir, last) in out.stderr
  assert runs.checkpoint_step(runs.list_checkpoints(str(run_dir))[0]) == last + 2


def test_sigterm_saves_a_checkpoint_and_exits(tmp_path, examples):
  run_dir = tmp_path / 'run'
  proc = subprocess.Popen(_train_args(run_dir, examples, 100000, '--checkpoint_every', '1000'),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
  deadline = time.time() + 240
  while not os.path.exists(run_dir / 'train') and time.time() < deadline:
    time.sleep(0.2)
  time.sleep(3)  # a few steps
  proc.send_signal(signal.SIGTERM)
  err = []
  for line in proc.stderr:  # until the last line, then the time from it to the exit
    err.append(line)
    if 'stopped by SIGTERM' in line:
      break
  stopped = time.time()
  err = ''.join(err) + proc.stderr.read()
  proc.wait(timeout=120)
  exit_seconds = time.time() - stopped
  assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
  assert 'stopped by SIGTERM' in err and 're-run the same command to resume' in err
  checkpoints = runs.list_checkpoints(str(run_dir))
  assert len(checkpoints) == 1 and runs.checkpoint_step(checkpoints[0]) > 0
  # It leaves at once, releasing the run's lock. Tearing down the input pipeline used to
  # take 12-13 s here from this message to the exit (0.12-0.14 s now that it is skipped)
  # and up to a minute on a real corpus (see keep_alive in mvae_tf.training.train.train),
  # during which re-running the same command, as the message says, was refused.
  assert exit_seconds < 1.5, exit_seconds


def test_resume_continues_the_step_and_the_schedules(tmp_path, examples):
  from mvae_tf.training import train
  from mvae_tf.model import vae
  run_dir = str(tmp_path / 'run')
  first = train.train(CONFIG, run_dir, examples, 3, checkpoint_every=2, progress=False)
  assert (first['start_step'], first['step']) == (0, 3)
  second = train.train(CONFIG, run_dir, examples, 5, checkpoint_every=2, progress=False)
  assert (second['start_step'], second['step']) == (3, 5)
  assert [runs.checkpoint_step(p) for p in runs.list_checkpoints(run_dir)] == [5, 4, 3, 2]
  model, _ = runs.restore_model(run_dir)
  # The metrics of step 5 (index 4) were computed with the schedules at step 4.
  hp = model.hparams
  assert second['metrics']['step'] == 4
  assert second['metrics']['beta'] == pytest.approx(float(vae.beta(hp, 4)), rel=1e-6)
  assert second['metrics']['learning_rate'] == pytest.approx(
      float(vae.learning_rate(hp, 4)), rel=1e-6)
  assert second['metrics']['sampling_probability'] == pytest.approx(
      float(vae.sampling_probability(hp, 4)), rel=1e-6)
  # The run belongs to its config and hparams: anything else is refused.
  with pytest.raises(runs.RunError, match='was started with'):
    train.train('tiny-drums_2bar', run_dir, examples, 6, progress=False)
  with pytest.raises(runs.RunError, match='was started with'):
    train.train(CONFIG, run_dir, examples, 6, hparams='z_size=4', progress=False)


def test_repeated_bad_steps_stop_without_a_checkpoint(tmp_path, examples):
  from mvae_tf.training import train
  run_dir = str(tmp_path / 'run')
  with pytest.raises(train.TrainingError, match='3 steps in a row'):
    train.train(CONFIG, run_dir, examples, 50, hparams='grad_norm_clip_to_zero=0.0',
                checkpoint_every=1, max_bad_steps=3, progress=False)
  # Steps 1 and 2 applied zero gradients through Adam with no momentum yet: checkpointed,
  # the weights unmoved; the third bad step stopped the run before its checkpoint.
  prefixes = runs.list_checkpoints(run_dir)
  assert [runs.checkpoint_step(p) for p in prefixes] == [2, 1]
  first, _ = runs.restore_model(checkpoint=prefixes[1])
  second, _ = runs.restore_model(checkpoint=prefixes[0])
  for a, b in zip(first.weights, second.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_cli_names_a_missing_examples_file(tmp_path):
  out = subprocess.run(_train_args(tmp_path / 'run', str(tmp_path / 'nope.tfrecord'), 5),
                       capture_output=True, text=True, env=ENV, timeout=120)
  assert out.returncode == 2
  assert 'nope.tfrecord: no such examples file' in out.stderr
  assert 'Traceback' not in out.stderr


def test_a_checkpoint_holds_and_restores_every_weight(tmp_path, examples):
  """Weights set to known distinct values are saved by train's checkpoint and come back,
  each to its own weight, in a fresh model; each is stored once, under its path."""
  import tensorflow as tf
  from mvae_tf.training import train
  from mvae_tf.model.vae import MusicVAE, make_optimizer
  run_dir = str(tmp_path / 'run')
  train.train(CONFIG, run_dir, examples, 2, progress=False)  # a real run dir, and its layout
  model = MusicVAE.from_config_name(CONFIG)
  rng = np.random.default_rng(7)
  truth = [rng.normal(size=w.shape).astype(np.float32) for w in model.weights]
  model.set_weights(truth)
  checkpoint = runs.make_checkpoint(model, make_optimizer(model.hparams, model))
  prefix = checkpoint.write(str(tmp_path / 'ckpt-7'))
  restored, _ = runs.restore_model(checkpoint=prefix, config=CONFIG)
  assert len(restored.weights) == len(truth) > 10
  for w, expected in zip(restored.weights, truth):
    np.testing.assert_array_equal(w.numpy(), expected)
  reader = tf.train.load_checkpoint(runs.list_checkpoints(run_dir)[0])
  stored = [k for k in reader.get_variable_to_shape_map() if k.startswith('model/')]
  assert sorted(stored) == sorted(
      'model/by_path/%s/.ATTRIBUTES/VARIABLE_VALUE' % name.replace('/', '.S')
      for name, _ in named_weights(model))


@pytest.mark.parametrize('name', ['tiny-hierdec-trio_16bar', 'tiny-mel_2bar_chords'])
def test_every_weight_has_its_own_checkpoint_name(name):
  from mvae_tf.model.vae import MusicVAE
  model = MusicVAE.from_config_name(name)
  names = dict(named_weights(model))
  assert len(names) == len(model.weights)
  assert 'decoder/core_decoder_2/lstm/kernel_0' in names or name.endswith('chords')


def test_a_second_training_in_the_same_run_dir_is_refused(tmp_path):
  run_dir = str(tmp_path / 'run')
  with runs.RunLock(run_dir):
    with pytest.raises(runs.RunError, match='another process \\(pid %d\\) is training' %
                       os.getpid()):
      with runs.RunLock(run_dir):
        pass
  with runs.RunLock(run_dir):  # released with its holder
    pass


def test_init_from_starts_a_run_from_a_models_weights_and_step(tmp_path, examples):
  """A run continues from a model (e.g. a shipped one) when its run directory is gone:
  its weights, at its step (the schedules go on), Adam afresh; a run with checkpoints
  ignores it; a model of another config is refused in one line."""
  from mvae_tf.store import resolve
  from mvae_tf.training import train
  source = tiny_models.random_model(CONFIG, scale=0.2)
  resolve.save_model(source, str(tmp_path / 'model'), extra={'step': 40})
  run_dir = str(tmp_path / 'run')
  lines = []
  loaded, _, step, _ = resolve.load_keras(str(tmp_path / 'model'))
  assert step == 40
  result = train.train(CONFIG, run_dir, examples, 41, progress=False, log=lines.append,
                       init_from=lambda: (loaded, step, 'model'))
  assert (result['start_step'], result['step']) == (40, 41)
  assert any('initialised from' in line and 'step 40' in line for line in lines)
  restored, step = runs.restore_model(run_dir=run_dir)
  assert step == 41
  fresh = tiny_models.random_model(CONFIG, seed=5, scale=0.2)
  for after, before, other in zip(restored.weights, source.weights, fresh.weights):
    moved = np.abs(after.numpy() - before.numpy()).max()
    assert moved < 0.01 < np.abs(other.numpy() - before.numpy()).max()  # one Adam step
  # Resuming: the checkpoint wins, --init_from is not even loaded.
  def never():
    raise AssertionError('loaded on resume')
  result = train.train(CONFIG, run_dir, examples, 42, progress=False, log=lines.append,
                       init_from=never)
  assert result['start_step'] == 41
  other = tiny_models.random_model('tiny-drums_2bar')
  with pytest.raises(train.TrainingError, match='is a model of --config tiny-drums_2bar'):
    train.train(CONFIG, str(tmp_path / 'run2'), examples, 3, progress=False,
                init_from=lambda: (other, 0, 'drums'))
  # The command loads what --init_from names (a name that is no model: one line).
  from mvae_tf.cli import main as cli
  assert cli.main(['train', '--config', CONFIG, '--run_dir', str(tmp_path / 'run3'),
                   '--examples_path', examples, '--num_steps', '41', '--no_progress',
                   '--init_from', str(tmp_path / 'model')]) == 0
  assert runs.restore_model(run_dir=str(tmp_path / 'run3'))[1] == 41
  assert cli.main(['train', '--config', CONFIG, '--run_dir', str(tmp_path / 'run4'),
                   '--examples_path', examples, '--num_steps', '3', '--no_progress',
                   '--init_from', str(tmp_path / 'nothing')]) == 2
