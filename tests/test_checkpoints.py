"""Checkpoints by path (issue 11): each weight stored once, optimizer slots by their
weight's path, old-layout checkpoints, one-line mismatch errors, run.json checks."""

import os

import numpy as np
import pytest

from mvae_tf.training import runs
from mvae_tf.model.weights import named_weights

CONFIG = 'tiny-mel_2bar'
GRAPH = '_CHECKPOINTABLE_OBJECT_GRAPH'
VALUE = '/.ATTRIBUTES/VARIABLE_VALUE'


def _key(name):
  return name.replace('.', '..').replace('/', '.S')


def _model_and_optimizer(hparams='', steps=0, seed=0, order=None):
  """A tiny MusicVAE and its Adam; `steps` updates with random gradients, so that
  weights, moments and iterations are all non-trivial. `order(list)` permutes the
  variables the optimizer is built on (its slots' positions)."""
  import tensorflow as tf
  from mvae_tf.model.vae import MusicVAE, make_optimizer
  model = MusicVAE.from_config_name(CONFIG, hparams)
  rng = np.random.default_rng(seed)
  for v in model.weights:
    v.assign(rng.normal(size=v.shape).astype(np.float32))
  optimizer = make_optimizer(model.hparams)
  variables = list(model.trainable_variables)
  optimizer.build(order(variables) if order else variables)
  for _ in range(steps):
    grads = [tf.constant(rng.normal(size=v.shape).astype(np.float32)) for v in variables]
    optimizer.apply_gradients(zip(grads, variables))
  return model, optimizer


def _state(model, optimizer):
  """Weights and Adam slots by weight path, and iterations, as numpy."""
  paths = dict(named_weights(model))
  state = {('weight', p): v.numpy() for p, v in paths.items()}
  for p, v in paths.items():
    i = optimizer._get_variable_index(v)
    state['momentum', p] = optimizer._momentums[i].numpy()
    state['velocity', p] = optimizer._velocities[i].numpy()
  state['iterations'] = int(optimizer.iterations.numpy())
  return state


def _assert_same_state(a, b):
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=str(k))


def _graph(prefix):
  import tensorflow as tf
  from tensorflow.core.protobuf import trackable_object_graph_pb2
  graph = trackable_object_graph_pb2.TrackableObjectGraph()
  graph.ParseFromString(tf.train.load_checkpoint(prefix).get_tensor(GRAPH))
  return graph


def _references(prefix):
  """{node id: how many edges of the object graph lead to it}, for nodes with a value."""
  graph = _graph(prefix)
  counts = {}
  for node in graph.nodes:
    for child in node.children:
      counts[child.node_id] = counts.get(child.node_id, 0) + 1
  return {i: counts.get(i, 0) for i, node in enumerate(graph.nodes)
          if any(a.name == 'VARIABLE_VALUE' for a in node.attributes)}


def _save(checkpoint, run_dir, step):
  import tensorflow as tf
  return tf.train.CheckpointManager(checkpoint, runs.checkpoint_dir(str(run_dir)), 3).save(
      checkpoint_number=step)


def _old_checkpoint(model, optimizer):
  """The layout before issue 11: the Keras optimizer itself, by position."""
  import tensorflow as tf
  return tf.train.Checkpoint(model=runs._weights_by_path(model), optimizer=optimizer)


def _log():
  lines = []
  return lines, lines.append


def test_each_weight_and_optimizer_variable_is_stored_once_by_path(tmp_path):
  import tensorflow as tf
  model, optimizer = _model_and_optimizer(steps=2)
  prefix = runs.make_checkpoint(model, optimizer).write(str(tmp_path / 'ckpt-2'))
  names = dict(tf.train.list_variables(prefix))
  paths = [p for p, _ in named_weights(model)]
  expected = {'model/by_path/%s%s' % (_key(p), VALUE) for p in paths}
  expected |= {'optimizer/by_path/%s%s' % (_key('%s/%s' % (p, slot)), VALUE)
               for p in paths for slot in ('momentum', 'velocity')}
  expected |= {'optimizer/iterations' + VALUE, GRAPH}
  assert set(names) == expected
  assert 'optimizer/by_path/decoder.Slstm.Skernel_0.Smomentum' + VALUE in names
  # Every optimizer variable once: 2 slots per weight and iterations.
  assert len(optimizer.variables) == 2 * len(paths) + 1 == len(names) - 1 - len(paths)
  # No variable is reachable by two routes of the object graph (the old layout
  # reached every weight by its path and by the optimizer's position).
  assert set(_references(prefix).values()) == {1}
  old = _old_checkpoint(model, optimizer).write(str(tmp_path / 'old-2'))
  assert set(_references(old).values()) == {2}  # weights, slots and iterations


def test_restore_by_path_gives_the_same_weights_slots_and_iterations(tmp_path):
  import tensorflow as tf
  from mvae_tf.training import train
  model, optimizer = _model_and_optimizer(steps=3)
  saved = _state(model, optimizer)
  _save(runs.make_checkpoint(model, optimizer), tmp_path, 3)
  runs.write_run_info(str(tmp_path), dict(config=CONFIG, hparams_overrides=''))
  with tf.distribute.MirroredStrategy(['/cpu:0']).scope():  # as train does
    other, other_optimizer = _model_and_optimizer(seed=1)
    checkpoint = runs.make_checkpoint(other, other_optimizer)
  lines, log = _log()
  assert train._restore(checkpoint, str(tmp_path), log) == 3 and not lines
  _assert_same_state(saved, _state(other, other_optimizer))
  # The chief recorded the weights' paths and shapes in run.json.
  info = runs.read_run_info(str(tmp_path))
  assert info['variables'] == runs.variable_shapes(model)
  assert info['variables']['decoder/lstm/kernel_0'] == [98, 64]
  assert info['config'] == CONFIG
  restored, step = runs.restore_model(str(tmp_path))
  assert step == 3
  for (p, v), (q, w) in zip(named_weights(model), named_weights(restored)):
    assert p == q
    np.testing.assert_array_equal(v.numpy(), w.numpy())


def _same_shaped_pair(model):
  by_shape = {}
  for p, v in named_weights(model):
    by_shape.setdefault((tuple(v.shape), v.trainable), []).append(p)
  pairs = [ps for (shape, _), ps in by_shape.items() if len(ps) > 1 and len(shape) == 2]
  assert pairs, 'the tiny model has no two kernels of one shape'
  return pairs[0][:2]


@pytest.mark.parametrize('layout', ['new', 'old'])
def test_another_variable_order_restores_each_weight_to_its_path(tmp_path, monkeypatch, layout):
  from mvae_tf.training import train
  model, optimizer = _model_and_optimizer(steps=2)
  a, b = _same_shaped_pair(model)
  weights = dict(named_weights(model))
  assert not np.array_equal(weights[a].numpy(), weights[b].numpy())
  saved = _state(model, optimizer)
  _save(runs.make_checkpoint(model, optimizer) if layout == 'new'
        else _old_checkpoint(model, optimizer), tmp_path, 2)

  ids = [id(v) for v in model.trainable_variables]
  i, j = ids.index(id(weights[a])), ids.index(id(weights[b]))

  def swap(variables):  # the two same-shaped kernels trade places, the rest reversed
    order = list(variables)
    order[i], order[j] = order[j], order[i]
    return order[::-1]
  holder = runs._weights_by_path

  def reversed_holder(layer):  # the weights' dict filled in the reverse order
    weights = holder(layer)
    weights.by_path = dict(reversed(list(weights.by_path.items())))
    return weights
  monkeypatch.setattr(runs, '_weights_by_path', reversed_holder)
  other, other_optimizer = _model_and_optimizer(seed=1, order=swap)
  assert [v.name for v in other_optimizer._trainable_variables] != \
      [v.name for v in optimizer._trainable_variables]
  checkpoint = runs.make_checkpoint(other, other_optimizer)
  monkeypatch.undo()
  lines, log = _log()
  assert train._restore(checkpoint, str(tmp_path), log) == 2 and not lines
  _assert_same_state(saved, _state(other, other_optimizer))


def test_a_checkpoint_of_other_hparams_is_one_line_naming_paths(tmp_path):
  from mvae_tf.training import train
  model, optimizer = _model_and_optimizer(steps=1)
  _save(runs.make_checkpoint(model, optimizer), tmp_path, 1)
  runs.write_run_info(str(tmp_path), dict(config=CONFIG, hparams_overrides=''))
  other, other_optimizer = _model_and_optimizer('z_size=4,dec_rnn_size=[16]')
  with pytest.raises(train.TrainingError) as e:
    train._restore(runs.make_checkpoint(other, other_optimizer), str(tmp_path), print)
  text = str(e.value)
  assert '\n' not in text and len(text) < 700, text
  assert 'ckpt-1 does not fit the model of %s' % CONFIG in text
  assert 'unexpected decoder/lstm/bias_1 [64], decoder/lstm/kernel_1 [16, 64]' in text
  assert 'decoder/initial_state_kernel [8, 64] (model [4, 32])' in text
  assert 'momentum' not in text  # the weights say it: their slots are not listed
  assert 'pass the --config and --hparams the run was started with' in text
  assert 'variables' not in runs.read_run_info(str(tmp_path))  # not recorded on failure
  with pytest.raises(runs.CheckpointMismatch) as e:
    runs.restore_model(str(tmp_path), hparams='z_size=4')
  assert '\n' not in str(e.value) and 'encoder/mu_bias [8] (model [4])' in str(e.value)
  assert 'unexpected' not in str(e.value)
  assert '--config and --hparams' in str(e.value)


def test_other_optimizer_slots_are_named(tmp_path):
  import keras
  model, optimizer = _model_and_optimizer(steps=1)
  prefix = runs.make_checkpoint(model, optimizer).write(str(tmp_path / 'ckpt-1'))
  amsgrad = keras.optimizers.Adam(amsgrad=True)
  checkpoint = runs.make_checkpoint(model, amsgrad)  # built here, with velocity_hat slots
  assert len(checkpoint._mvae_layout.slots) == 3 * len(model.trainable_variables)
  assert list(checkpoint._mvae_layout.others) == ['learning_rate']  # not a schedule here
  with pytest.raises(runs.CheckpointMismatch) as e:
    runs.restore_checkpoint(checkpoint, prefix)
  assert 'does not fit the model of %s: missing optimizer/decoder/initial_state_bias/' \
      'velocity_hat [64]' % CONFIG in str(e.value) and '\n' not in str(e.value)


def test_a_model_that_no_longer_matches_its_run_json_says_so(tmp_path):
  model, optimizer = _model_and_optimizer()
  _save(runs.make_checkpoint(model, optimizer), tmp_path, 1)
  runs.write_run_info(str(tmp_path), dict(config=CONFIG, hparams_overrides='z_size=4',
                                          variables=runs.variable_shapes(model)))
  with pytest.raises(runs.CheckpointMismatch, match='no longer builds') as e:
    runs.restore_model(str(tmp_path))
  assert '\n' not in str(e.value)


def test_an_old_layout_checkpoint_restores_weights_slots_and_iterations(tmp_path):
  import tensorflow as tf
  model, optimizer = _model_and_optimizer(steps=3)
  saved = _state(model, optimizer)
  prefix = _save(_old_checkpoint(model, optimizer), tmp_path, 3)
  assert any(n.startswith('optimizer/_variables/') for n, _ in tf.train.list_variables(prefix))
  with tf.distribute.MirroredStrategy(['/cpu:0']).scope():  # slots assigned as in train
    other, other_optimizer = _model_and_optimizer(seed=1)
    checkpoint = runs.make_checkpoint(other, other_optimizer)
  assert runs.restore_checkpoint(checkpoint, prefix) == 'old'
  _assert_same_state(saved, _state(other, other_optimizer))
  restored, step = runs.restore_model(checkpoint=prefix, config=CONFIG)
  assert step == 3
  np.testing.assert_array_equal(dict(named_weights(restored))['decoder/lstm/kernel_0'],
                                saved['weight', 'decoder/lstm/kernel_0'])
  # Written again, it is of the new layout.
  new = checkpoint.write(str(tmp_path / 'again'))
  assert not any(n.startswith('optimizer/_') for n, _ in tf.train.list_variables(new))


def test_an_old_checkpoint_without_slots_restarts_them_with_a_warning(tmp_path):
  import tensorflow as tf
  from mvae_tf.training import train
  model, optimizer = _model_and_optimizer()
  state = tf.Module()
  state._iterations = tf.Variable(7, dtype=tf.int64)
  _save(tf.train.Checkpoint(model=runs._weights_by_path(model), optimizer=state), tmp_path, 7)
  other, other_optimizer = _model_and_optimizer(seed=1, steps=1)
  lines, log = _log()
  assert train._restore(runs.make_checkpoint(other, other_optimizer), str(tmp_path), log) == 7
  assert int(other_optimizer.iterations.numpy()) == 7
  assert len(lines) == 1 and 'old checkpoint layout' in lines[0] and '40 of its 40' in lines[0]
  assert 'restart at zero' in lines[0]
  restored = _state(other, other_optimizer)
  for key, value in _state(model, optimizer).items():
    if key[0] == 'weight':
      np.testing.assert_array_equal(restored[key], value, err_msg=str(key))


def test_check_same_run_names_only_the_keys_that_differ(tmp_path):
  from mvae_tf import configs
  run_dir = str(tmp_path)

  def info(overrides):
    config = configs.get_config(CONFIG).with_hparams(overrides)
    return dict(config=CONFIG, hparams=config.hparams.to_dict(), hparams_overrides=overrides)
  runs.write_run_info(run_dir, info('z_size=6'))
  runs.check_same_run(run_dir, info('z_size=6'))  # the same: nothing to say
  with pytest.raises(runs.RunError) as e:
    runs.check_same_run(run_dir, info('z_size=4,batch_size=4'))
  text = str(e.value)
  assert text == (
      '%s was started with --config %s --hparams z_size=6 (run: batch_size=8, z_size=6; this '
      'command: batch_size=4, z_size=4); pass the same --config and --hparams to resume it, '
      'or use a new --run_dir' % (run_dir, CONFIG))
  runs.write_run_info(run_dir, info(''))
  with pytest.raises(runs.RunError, match=r'and no --hparams \(run: enc_rnn_size=\[16\]; '
                                          r'this command: enc_rnn_size=\[8,8\]\)'):
    runs.check_same_run(run_dir, info('enc_rnn_size=[8,8]'))
  with pytest.raises(runs.RunError) as e:
    runs.check_same_run(run_dir, dict(info(''), config='tiny-drums_2bar'))
  assert 'this command: config=tiny-drums_2bar' in str(e.value) and '\n' not in str(e.value)


@pytest.mark.parametrize('part', ['data', 'index'])
def test_a_truncated_checkpoint_is_called_damaged_and_the_run_falls_back(
    tmp_path, capsys, part):
  model, optimizer = _model_and_optimizer(steps=1)
  checkpoint = runs.make_checkpoint(model, optimizer)
  _save(checkpoint, tmp_path, 1)
  newest = _save(checkpoint, tmp_path, 2)
  runs.write_run_info(str(tmp_path), dict(config=CONFIG, hparams_overrides=''))
  path = newest + ('.data-00000-of-00001' if part == 'data' else '.index')
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) // 2)
  restored, step = runs.restore_model(str(tmp_path))
  assert step == 1
  err = capsys.readouterr().err
  assert 'ckpt-2 is damaged' in err and 'restored' in err and 'ckpt-1 instead' in err
  assert '--hparams' not in err
  with pytest.raises(runs.RunError) as e:
    runs.restore_model(checkpoint=newest)
  assert str(e.value).startswith(newest + ' is damaged (') and '\n' not in str(e.value)
  assert 'earlier checkpoint' in str(e.value)


def test_restore_newest_falls_back_stops_on_a_mismatch_and_keeps_bugs():
  """The one restore-with-fallback loop (train resumes and restore_model use it)."""
  tried = []

  def restore(prefix):
    tried.append(prefix)
    if prefix == 'ckpt-3':
      raise runs.RunError('ckpt-3 is damaged\nmore')
  assert runs.restore_newest(['ckpt-3', 'ckpt-2', 'ckpt-1'], restore, (runs.RunError,)) == (
      'ckpt-2', ['ckpt-3 is damaged'])  # a message naming its checkpoint is kept as it is
  assert tried == ['ckpt-3', 'ckpt-2']

  def unnamed(prefix):
    raise OSError('short read')
  assert runs.restore_newest(['ckpt-3'], unnamed) == (None, ['ckpt-3 (short read)'])
  assert runs.restore_newest([], restore) == (None, [])

  def mismatch(prefix):
    raise runs.CheckpointMismatch('x', 'other variables')
  with pytest.raises(runs.CheckpointMismatch):
    runs.restore_newest(['ckpt-2', 'ckpt-1'], mismatch)

  def bug(prefix):
    raise KeyError('a bug, not damage')
  with pytest.raises(KeyError):  # not in fallback_on: its traceback is kept
    runs.restore_newest(['ckpt-2', 'ckpt-1'], bug, (runs.RunError,))
