"""The model family at tiny sizes: shapes, the step, hierarchy, objective, training."""

import dataclasses
import math

import numpy as np
import pytest

tf = pytest.importorskip('tensorflow')
import keras  # noqa: E402

from mvae_tf import configs  # noqa: E402
from mvae_tf.training import runs  # noqa: E402
from mvae_tf.model import vae as vae_lib  # noqa: E402
from mvae_tf.model.decoders import CategoricalLSTMDecoder, HierarchicalLSTMDecoder  # noqa: E402
from mvae_tf.model.vae import MusicVAE  # noqa: E402

TINY = ['tiny-mel_2bar', 'tiny-mel_2bar_chords', 'tiny-drums_2bar', 'tiny-hierdec-mel_16bar',
        'tiny-hierdec-drums_16bar', 'tiny-flat-trio_16bar', 'tiny-hierdec-trio_16bar']


def make_batch(model, batch_size=3, vocab=512, seed=0, length=None):
  """A batch of period-4 patterns: one-hot per part, drums' 10-bit roll as input."""
  rng = np.random.default_rng(seed)
  steps = model.hparams.max_seq_len
  parts = []
  for depth in model.output_depths:
    pattern = rng.integers(0, min(depth, vocab), (batch_size, 4))
    parts.append(np.eye(depth, dtype=bool)[np.tile(pattern, (1, steps // 4))])
  outputs = np.concatenate(parts, -1)
  inputs = outputs
  if model.input_depth == 10:  # drums: 9 class bits + "no hit"
    label = outputs.argmax(-1)
    inputs = np.concatenate([(label[..., None] >> np.arange(9)) & 1, (label == 0)[..., None]],
                            -1).astype(bool)
  controls = np.zeros((batch_size, steps, model.control_depth), bool)
  if model.control_depth:
    controls[np.arange(batch_size)[:, None], np.arange(steps)[None, :],
             rng.integers(0, model.control_depth, (batch_size, 1))] = True
  lengths = np.full([batch_size], steps if length is None else length, np.int32)
  return inputs, outputs, controls, lengths


@pytest.mark.parametrize('name', TINY)
def test_shapes_of_every_family(name):
  model = MusicVAE.from_config_name(name)
  inputs, outputs, controls, lengths = batch = make_batch(model)
  steps, z_size = model.hparams.max_seq_len, model.hparams.z_size
  mu, sigma = model.encode(inputs, lengths, controls)
  assert mu.shape == sigma.shape == (3, z_size) and np.all(sigma.numpy() > 0)
  logits = model.teacher_forced_logits(outputs, mu, controls)
  assert logits.shape == (3, steps, sum(model.output_depths))
  indices, sample_logits = model.sample(mu, steps, controls=controls)
  assert indices.shape == (3, steps, len(model.output_depths))
  assert sample_logits.shape == logits.shape
  loss, metrics = model.compute_loss(batch, 10)
  assert np.isfinite(loss.numpy())
  # The accuracy metric, teacher-forced at z = mu, against numpy: the mean over parts of
  # each part's share of real steps whose argmax is the target.
  _, metrics = model.compute_loss(batch, 10, training=False, noise=tf.zeros_like(mu))
  mask = np.arange(steps)[None] < np.asarray(lengths)[:, None]
  bounds = np.cumsum([0] + list(model.output_depths))
  expected = np.mean([
      ((logits.numpy()[..., a:b].argmax(-1) == np.asarray(outputs)[..., a:b].argmax(-1))
       & mask).sum() / mask.sum() for a, b in zip(bounds, bounds[1:])])
  assert float(metrics['accuracy']) == pytest.approx(expected, abs=1e-6)


def test_encoder_ignores_steps_past_the_length():
  model = MusicVAE.from_config_name('tiny-mel_2bar')
  inputs, _, _, _ = make_batch(model, 2)
  lengths = np.array([32, 20], np.int32)
  changed = inputs.copy()
  changed[1, 20:] = np.eye(90, dtype=bool)[5]
  a = model.encode(inputs, lengths)[0].numpy()
  b = model.encode(changed, lengths)[0].numpy()
  np.testing.assert_array_equal(a, b)
  changed[1, 19] = np.eye(90, dtype=bool)[7]
  assert not np.allclose(a[1], model.encode(changed, lengths)[0].numpy()[1])


@pytest.mark.parametrize('name', ['tiny-mel_2bar', 'tiny-flat-trio_16bar', 'tiny-hierdec-mel_16bar',
                                  'tiny-hierdec-trio_16bar'])
def test_teacher_forcing_on_a_greedy_decode_gives_its_logits(name):
  """The loops share one step: feeding a free-running decode back in reproduces it."""
  model = MusicVAE.from_config_name(name)
  z = tf.random.stateless_normal([2, model.hparams.z_size], [1, 2])
  indices, logits = model.sample(z, model.hparams.max_seq_len)
  onehot = np.concatenate([np.eye(d, dtype=bool)[indices.numpy()[..., p]]
                           for p, d in enumerate(model.output_depths)], -1)
  np.testing.assert_allclose(model.teacher_forced_logits(onehot, z).numpy(), logits.numpy(),
                             atol=1e-5)
  np.testing.assert_array_equal(
      indices.numpy(), np.stack([np.split(logits.numpy(), np.cumsum(model.output_depths)[:-1],
                                          -1)[p].argmax(-1) for p in range(len(
                                              model.output_depths))], -1))


def test_step_from_raw_inputs_matches_the_first_teacher_forced_step():
  model = MusicVAE.from_config_name('tiny-mel_2bar_chords')
  _, outputs, controls, _ = make_batch(model, 2)
  z = tf.random.stateless_normal([2, 8], [3, 4])
  logits = model.teacher_forced_logits(outputs, z, controls)
  dec = model.decoder
  step_logits, _ = dec.step_inputs(tf.zeros([2, 90]), z, dec.initial_state(z),
                                   controls=controls[:, 0])
  np.testing.assert_allclose(step_logits.numpy(), logits.numpy()[:, 0], atol=1e-5)


def test_hierarchical_bars_depend_only_on_their_own_inputs_and_the_previous_last_token():
  model = MusicVAE.from_config_name('tiny-hierdec-mel_16bar')
  _, outputs, _, _ = make_batch(model, 1)
  z = tf.random.stateless_normal([1, 8], [5, 6])
  base = model.teacher_forced_logits(outputs, z).numpy()[0]

  def changed_steps(step):
    targets = outputs.copy()
    targets[0, step] = np.roll(targets[0, step], 1)
    diff = np.abs(model.teacher_forced_logits(targets, z).numpy()[0] - base).max(-1)
    return set(np.nonzero(diff > 1e-6)[0])

  # A target inside bar 2 is the input of the next steps of bar 2 only.
  assert changed_steps(32 + 5) == set(range(32 + 6, 48))
  # The last target of bar 2 is the first input of bar 3, and reaches all of bar 3 only.
  assert changed_steps(47) == set(range(48, 64))
  # The last step of the sequence is nobody's input.
  assert changed_steps(255) == set()


def test_hierarchical_embedding_per_bar_initialises_each_core_decoder():
  model = MusicVAE.from_config_name('tiny-hierdec-mel_16bar')
  dec = model.decoder
  z = tf.random.stateless_normal([2, 8], [7, 8])
  emb = dec.embeddings(z)
  assert emb.shape == (2, 16, 12)
  _, logits = model.sample(z, 256)
  core = dec.core_decoders[0]
  idx, bar_logits, _ = core.sample(emb[:, 0], 16)
  np.testing.assert_allclose(bar_logits.numpy(), logits.numpy()[:, :16], atol=1e-6)


def test_scheduled_sampling_at_probability_zero_is_teacher_forcing():
  model = MusicVAE.from_config_name('tiny-drums_2bar')
  _, outputs, _, _ = make_batch(model, 2)
  z = tf.random.stateless_normal([2, 8], [1, 1])
  a = model.teacher_forced_logits(outputs, z).numpy()
  b = model.teacher_forced_logits(outputs, z, sampling_probability=tf.constant(0.0),
                                  seed=[1, 2]).numpy()
  np.testing.assert_allclose(a, b, atol=1e-6)
  c = model.teacher_forced_logits(outputs, z, sampling_probability=tf.constant(1.0),
                                  seed=[1, 2]).numpy()
  np.testing.assert_allclose(a[:, 0], c[:, 0], atol=1e-6)  # t=0 never sampled
  assert not np.allclose(a[:, 1:], c[:, 1:])


def test_schedules_follow_the_reference_formulas():
  hp = configs.get_config('cat-mel_2bar_small').hparams
  assert float(vae_lib.beta(hp, 0)) == 0.0
  np.testing.assert_allclose(float(vae_lib.beta(hp, 100000)), (1 - 0.99999**100000) * 0.2,
                             rtol=1e-5)
  np.testing.assert_allclose(float(vae_lib.sampling_probability(hp, 5000)),
                             1 - 1000 / (1000 + math.exp(5)), rtol=1e-6)
  assert float(vae_lib.sampling_probability(hp, 10**7)) == 1.0
  np.testing.assert_allclose(float(vae_lib.learning_rate(hp, 20000)),
                             (1e-3 - 1e-5) * 0.9999**20000 + 1e-5, rtol=1e-5)
  drums = configs.get_config('cat-drums_2bar_small').hparams
  assert float(vae_lib.beta(drums, 7)) == pytest.approx(0.2)
  constant = configs.get_config('hierdec-mel_16bar').hparams
  assert float(vae_lib.sampling_probability(constant, 123)) == 0.0


def test_loss_is_reconstruction_plus_beta_times_kl_above_free_bits():
  model = MusicVAE.from_config_name('tiny-drums_2bar', 'free_bits=2,max_beta=0.5,beta_rate=0.9')
  batch = make_batch(model, 4)
  loss, m = model.compute_loss(batch, 3, training=False, seed=[4, 4])
  mu, sigma = model.encode(batch[0], batch[3])
  kl = 0.5 * tf.reduce_sum(mu**2 + sigma**2 - 1 - 2 * tf.math.log(sigma), -1).numpy()
  beta = (1 - 0.9**3) * 0.5
  expected_kl = np.maximum(kl - 2 * math.log(2), 0).mean()
  np.testing.assert_allclose(m['kl_loss'].numpy(), expected_kl, rtol=1e-5)
  np.testing.assert_allclose(loss.numpy(), m['r_loss'].numpy() + beta * expected_kl, rtol=1e-5)
  np.testing.assert_allclose(m['kl_bits'].numpy(), kl.mean() / math.log(2), rtol=1e-5)


def test_reconstruction_loss_counts_only_real_steps():
  logits = tf.random.stateless_normal([2, 6, 5], [1, 2])
  targets = np.eye(5, dtype=bool)[np.arange(12).reshape(2, 6) % 5]
  full, _, _ = vae_lib.reconstruction_loss(logits, targets, [6, 6], [5])
  short, _, _ = vae_lib.reconstruction_loss(logits, targets, [6, 3], [5])
  ce = tf.nn.softmax_cross_entropy_with_logits(targets.astype(np.float32), logits).numpy()
  np.testing.assert_allclose(full.numpy(), ce.sum(1), rtol=1e-6)
  np.testing.assert_allclose(short.numpy()[1], ce[1, :3].sum(), rtol=1e-6)


def test_a_step_with_a_huge_gradient_applies_zero_gradients_as_the_original():
  """The original zeroes the gradients and still applies Adam: the step counts, the
  moments decay, and the weights move by the momentum of earlier steps only."""
  model = MusicVAE.from_config_name('tiny-mel_2bar', 'grad_norm_clip_to_zero=1e-6')
  optimizer = vae_lib.make_optimizer(model.hparams)
  before = [v.numpy() for v in model.trainable_variables]
  metrics = vae_lib.train_step(model, optimizer, make_batch(model), 0)
  assert bool(metrics['skipped']) and int(optimizer.iterations) == 1
  for v, b in zip(model.trainable_variables, before):  # no momentum yet: no move
    np.testing.assert_array_equal(v.numpy(), b)
  # After an ordinary step, a zeroed one moves the weights by Adam's momentum alone.
  model.hparams = dataclasses.replace(model.hparams, grad_norm_clip_to_zero=1e4)
  assert not bool(vae_lib.train_step(model, optimizer, make_batch(model), 1)['skipped'])
  m = {v.path: optimizer._momentums[optimizer._get_variable_index(v)].numpy()
       for v in model.trainable_variables}
  after_ok = [v.numpy() for v in model.trainable_variables]
  model.hparams = dataclasses.replace(model.hparams, grad_norm_clip_to_zero=1e-6)
  assert bool(vae_lib.train_step(model, optimizer, make_batch(model), 2)['skipped'])
  assert int(optimizer.iterations) == 3
  moved = [not np.array_equal(v.numpy(), b) for v, b in zip(model.trainable_variables,
                                                            after_ok)]
  assert any(moved)
  for v in model.trainable_variables:  # the first moment decayed by beta_1, nothing added
    np.testing.assert_allclose(optimizer._momentums[optimizer._get_variable_index(v)].numpy(),
                               optimizer.beta_1 * m[v.path], rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize('name', ['tiny-mel_2bar', 'tiny-drums_2bar', 'tiny-hierdec-trio_2bar'])
def test_tiny_model_overfits_a_fixed_batch(name):
  keras.utils.set_random_seed(0)
  model = MusicVAE.from_config_name(
      name, 'learning_rate=0.02,decay_rate=1.0,max_beta=0.0,sampling_schedule=constant,'
            'sampling_rate=0')
  inputs, outputs, controls, lengths = batch = make_batch(model, 4, vocab=512)
  optimizer = vae_lib.make_optimizer(model.hparams)
  step_fn = tf.function(lambda b, s: vae_lib.train_step(model, optimizer, b, s,
                                                        seed=tf.stack([s, 7])))
  batch = tuple(tf.constant(x) for x in batch)
  accuracy = 0.0
  for step in range(800):
    step_fn(batch, tf.constant(step))
    if step % 50 == 49:
      logits = model(batch).numpy()  # teacher-forced, z = mu
      splits = np.cumsum(model.output_depths)[:-1]
      accuracy = np.mean([(lg.argmax(-1) == tg.argmax(-1)).mean() for lg, tg in zip(
          np.split(logits, splits, -1), np.split(outputs, splits, -1))])
      if accuracy == 1.0:
        break
  assert accuracy == 1.0


def test_keras_save_and_load_give_identical_outputs(tmp_path):
  from mvae_tf.generation.trained_model import TrainedModel, save_model
  model = MusicVAE.from_config_name('tiny-hierdec-trio_16bar')
  save_model(model, tmp_path / 'saved')
  loaded = TrainedModel.load(str(tmp_path / 'saved'))
  config = model.get_config()
  assert loaded.model.get_config() == dict(config, name=loaded.model.name)  # its own name
  assert [v.path for v in loaded.model.weights] == [v.path for v in model.weights]
  for a, b in zip(model.weights, loaded.model.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  original = TrainedModel(model)
  inputs, outputs, _, lengths = make_batch(model, 2)
  for a, b in zip(original.encode_tensors(inputs, lengths, seed=3),
                  loaded.encode_tensors(inputs, lengths, seed=3)):
    np.testing.assert_array_equal(a, b)
  z = original.encode_tensors(inputs, lengths, seed=3)[0]
  np.testing.assert_array_equal(original.teacher_forced_logits(outputs, lengths, z),
                                loaded.teacher_forced_logits(outputs, lengths, z))
  np.testing.assert_array_equal(original.decode_tensors(z, 256, temperature=1.0, seed=5),
                                loaded.decode_tensors(z, 256, temperature=1.0, seed=5))
  assert loaded.decode_tensors(z, 256).shape == (2, 256, 692)


def test_one_model_directory_format_and_the_old_one_still_loads(tmp_path):
  """save_model writes the shipped models' format (weights.npz in float32 + config.json);
  a directory with model.keras, as earlier versions saved, loads to the same model."""
  import json
  import os
  import tiny_models
  from mvae_tf import pretrained
  from mvae_tf.store import resolve
  model = tiny_models.random_model('tiny-hierdec-mel_16bar')
  resolve.save_model(model, str(tmp_path / 'new'), extra={'step': 7})
  assert sorted(os.listdir(tmp_path / 'new')) == ['config.json', 'weights.npz']
  info = json.loads((tmp_path / 'new' / 'config.json').read_text())
  assert (info['format'], info['weights_dtype'], info['step']) == (
      pretrained.FORMAT, 'float32', 7)
  tiny_models.save_legacy_keras(model, str(tmp_path / 'old'))
  new, _, step, found = resolve.load_keras(str(tmp_path / 'new'))
  old, _, _, found_old = resolve.load_keras(str(tmp_path / 'old'))
  assert (found.kind, found_old.kind, step) == ('packaged', 'saved', 7)
  def config(m):  # the Keras name is the instance's (music_vae, music_vae_1, ...)
    return {k: v for k, v in m.get_config().items() if k != 'name'}
  assert config(new) == config(old) == config(model)
  for loaded in (new, old):
    assert [v.path for v in loaded.weights] == [v.path for v in model.weights]
    for a, b in zip(loaded.weights, model.weights):
      np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_checkpoint_with_optimizer_state_resumes_exactly(tmp_path):
  batch = None
  results = []
  for restore in (False, True):
    keras.utils.set_random_seed(1)
    model = MusicVAE.from_config_name('tiny-mel_2bar')
    optimizer = vae_lib.make_optimizer(model.hparams, model)
    batch = batch or make_batch(model, 2)
    # The project's checkpoint (every weight and Adam slot by path), not a raw one.
    ckpt = runs.make_checkpoint(model, optimizer)
    if restore:
      runs.restore_checkpoint(ckpt, str(tmp_path / 'ckpt-1'))
      assert int(optimizer.iterations) == 2
    else:
      for step in range(2):
        vae_lib.train_step(model, optimizer, batch, step, seed=[step, 1])
      assert ckpt.save(str(tmp_path / 'ckpt')) == str(tmp_path / 'ckpt-1')
    vae_lib.train_step(model, optimizer, batch, 2, seed=[2, 1])
    results.append([v.numpy() for v in model.weights + optimizer.variables])
  for a, b in zip(*results):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize('with_lengths,chunked', [(False, False), (True, True), (False, True)])
def test_hand_written_lstm_backward_matches_autodiff(with_lengths, chunked, monkeypatch):
  """lstm_layer's outputs, final state and every gradient equal autodiff's. chunked: a
  sequence longer than UNROLL_LIMIT (16-bar models) runs lstm_layer chunk by chunk in a
  tf.while_loop, traced as in training, against autodiff of the per-step loop. (With
  lengths, unchunked: tests/test_layers.py's harness, case lstm_layer.)"""
  from mvae_tf.model import lstm
  steps = 6
  if chunked:
    monkeypatch.setattr(lstm, 'UNROLL_LIMIT', 4)
    assert lstm.chunk_length(12) == 4 and lstm.chunk_length(7) is None
    steps = 12
  stack = lstm.LSTMStack(7, [5])
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(size=(3, steps, 7)).astype(np.float32))
  lengths = tf.constant([steps, 2, steps - 2]) if with_lengths else None
  weights = tf.constant(rng.normal(size=(3, steps, 5)).astype(np.float32))

  def loss_and_grads(hand_written):
    monkeypatch.setattr(lstm, 'HAND_WRITTEN_BACKWARD', hand_written)

    def run():
      with tf.GradientTape() as tape:
        outputs, (c, h) = stack.run(stack.input_projection(x), stack.zero_state(3), lengths)
        loss = tf.reduce_sum(outputs * weights) + tf.reduce_sum(2.0 * c) + tf.reduce_sum(h ** 2)
      return outputs, loss, tape.gradient(loss, stack.trainable_variables)
    return (tf.function(run) if chunked else run)()

  outputs, loss, grads = loss_and_grads(True)
  expected_outputs, expected_loss, expected = loss_and_grads(False)
  np.testing.assert_allclose(outputs.numpy(), expected_outputs.numpy(), rtol=1e-5, atol=1e-6)
  assert float(loss) == pytest.approx(float(expected_loss), rel=1e-6)
  for g, e in zip(grads, expected):
    assert float(tf.reduce_max(tf.abs(e))) > 0.1
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('decoder_kind', ['flat', 'hierarchical'])
@pytest.mark.parametrize('sampling_probability', [0.5])
def test_hand_written_decoder_backward_matches_autodiff(decoder_kind, sampling_probability,
                                                        monkeypatch):
  """decode_stack's logits and every gradient equal autodiff's through the step loop,
  with scheduled sampling (teacher-forced: tests/test_layers.py's harness)."""
  from mvae_tf.model import lstm
  if decoder_kind == 'flat':  # two parts, two layers, controls
    decoder = CategoricalLSTMDecoder([5, 6], [4, 3], 3, control_depth=2)
    steps = 6
  else:
    decoder = HierarchicalLSTMDecoder([5, 6], [4, 3], 3, num_bars=2, steps_per_bar=4)
    steps = 8
  rng = np.random.default_rng(1)
  depth = 11
  tokens = np.concatenate([np.eye(5)[rng.integers(0, 5, (3, steps))],
                           np.eye(6)[rng.integers(0, 6, (3, steps))]], -1)
  inputs = tf.constant(np.concatenate([np.zeros((3, 1, depth)), tokens[:, :-1]], 1),
                       tf.float32)
  z = tf.Variable(rng.normal(size=(3, 3)).astype(np.float32))
  controls = tf.constant(rng.random((3, steps, 2)) < 0.5) if decoder_kind == 'flat' else None
  weights = tf.constant(rng.normal(size=(3, steps, depth)).astype(np.float32))
  decoder.teacher_forced(inputs, z, controls)  # build
  for v in decoder.trainable_variables:  # N(0, 0.001) at init: make z's gradients sizeable
    if 'initial' in v.name and 'kernel' in v.name:
      v.assign(rng.normal(0.0, 0.5, v.shape).astype(np.float32))

  def logits_and_grads(hand_written):
    monkeypatch.setattr(lstm, 'HAND_WRITTEN_DECODER_BACKWARD', hand_written)
    with tf.GradientTape() as tape:
      logits = decoder.teacher_forced(inputs, z, controls, sampling_probability, seed=7)
      loss = tf.reduce_sum(tf.tanh(logits) * weights)
    return logits, tape.gradient(loss, decoder.trainable_variables + [z])

  logits, grads = logits_and_grads(True)
  expected_logits, expected = logits_and_grads(False)
  np.testing.assert_allclose(logits.numpy(), expected_logits.numpy(), rtol=1e-5, atol=1e-6)
  assert len(grads) == len(expected) > 4
  for g, e in zip(grads, expected):
    if e is None:  # the conductor's input kernel: its input is a constant zero
      assert g is None
      continue
    g, e = tf.convert_to_tensor(g).numpy(), tf.convert_to_tensor(e).numpy()
    assert np.abs(e).max() > 1e-3
    np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)


def test_chunked_decoder_backward_matches_autodiff(monkeypatch):
  """A flat decoder over more than UNROLL_LIMIT steps (16-bar models), teacher-forced:
  decode_stack chunk by chunk, the states carried between chunks, gives autodiff's
  logits and gradients (z's included)."""
  from mvae_tf.model import lstm
  monkeypatch.setattr(lstm, 'UNROLL_LIMIT', 4)
  decoder = CategoricalLSTMDecoder([5, 6], [4, 3], 3, control_depth=2)
  steps, depth = 12, 11
  rng = np.random.default_rng(2)
  tokens = np.concatenate([np.eye(5)[rng.integers(0, 5, (3, steps))],
                           np.eye(6)[rng.integers(0, 6, (3, steps))]], -1)
  inputs = tf.constant(np.concatenate([np.zeros((3, 1, depth)), tokens[:, :-1]], 1),
                       tf.float32)
  z = tf.Variable(rng.normal(size=(3, 3)).astype(np.float32))
  controls = tf.constant(rng.random((3, steps, 2)) < 0.5)
  weights = tf.constant(rng.normal(size=(3, steps, depth)).astype(np.float32))
  decoder.teacher_forced(inputs, z, controls)  # build
  decoder.initial_state_kernel.assign(rng.normal(0.0, 0.5, (3, 14)).astype(np.float32))

  def logits_and_grads(hand_written):
    monkeypatch.setattr(lstm, 'HAND_WRITTEN_DECODER_BACKWARD', hand_written)

    @tf.function
    def run():
      with tf.GradientTape() as tape:
        logits = decoder.teacher_forced(inputs, z, controls)
        loss = tf.reduce_sum(tf.tanh(logits) * weights)
      return logits, tape.gradient(loss, decoder.trainable_variables + [z])
    return run()

  logits, grads = logits_and_grads(True)
  expected_logits, expected = logits_and_grads(False)
  np.testing.assert_allclose(logits.numpy(), expected_logits.numpy(), rtol=1e-5, atol=1e-6)
  assert len(grads) == len(expected) > 4
  for g, e in zip(grads, expected):
    g, e = tf.convert_to_tensor(g).numpy(), tf.convert_to_tensor(e).numpy()
    assert np.abs(e).max() > 1e-3
    np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('name', ['tiny-mel_2bar', 'hierdec-mel_16bar_cpu'])
def test_initialisation_and_adam_are_the_originals(name):
  """The z-to-initial-state kernels are N(0, 0.001) and Adam's epsilon is 1e-8, as in the
  original (initial_cell_state_from_embedding; tf.train.AdamOptimizer)."""
  from mvae_tf.model.vae import MusicVAE, make_optimizer
  from mvae_tf.model.weights import named_weights
  model = MusicVAE.from_config_name(name)
  kernels = {k: v.numpy() for k, v in named_weights(model)
             if k.endswith(('initial_state_kernel', 'conductor_initial_kernel'))}
  assert kernels
  for k, v in kernels.items():
    assert 0.0005 < v.std() < 0.002, (k, v.std())
  assert make_optimizer(model.hparams).epsilon == 1e-8
  # Each weight draws its own values (an unseeded initializer reused repeats them).
  weights = {k: v.numpy() for k, v in named_weights(model)}
  assert not np.array_equal(weights['encoder/mu_kernel'], weights['encoder/sigma_kernel'])


def test_the_core_decoders_start_from_different_weights():
  from mvae_tf.model.vae import MusicVAE
  from mvae_tf.model.weights import named_weights
  weights = {k: v.numpy() for k, v in named_weights(
      MusicVAE.from_config_name('tiny-hierdec-trio_16bar'))}
  kernels = [v for k, v in sorted(weights.items()) if k.endswith('initial_state_kernel')]
  assert len(kernels) == 3
  assert not any(np.array_equal(kernels[0], k) for k in kernels[1:])


def test_mixed_precision_steps_follow_float32():
  """Five training steps with bfloat16 products (train --mixed_precision) from the same
  start as five float32 steps: the losses agree within 0.1% (measured 8e-6 relative) and
  no weight ends further from its float32 twin than Adam's largest move in 5 steps
  (5 * learning rate = 5e-3; measured 2.0e-3: Adam's normalised step turns a tiny
  gradient's rounding into a full-size move); and the products are bfloat16."""
  import tensorflow as tf
  from mvae_tf.training import train
  from mvae_tf.model import lstm
  from mvae_tf.model.vae import MusicVAE, make_optimizer
  rng = np.random.default_rng(0)
  outputs = np.eye(90, dtype=bool)[rng.integers(0, 90, (8, 32))]
  lengths = np.array([32, 20, 32, 7, 32, 32, 11, 32], np.int32)
  batch = tuple(tf.constant(x) for x in (outputs, outputs, np.zeros((8, 32, 0), bool), lengths))
  initial = MusicVAE.from_config_name('tiny-mel_2bar').get_weights()
  strategy = tf.distribute.get_strategy()
  runs = {}
  for mixed in (False, True):
    model = MusicVAE.from_config_name('tiny-mel_2bar')
    model.set_weights(initial)
    optimizer = make_optimizer(model.hparams, model)
    step = train.make_train_step(strategy, model, optimizer, seed=3, mixed_precision=mixed)
    losses = [float(step(batch)['loss']) for _ in range(5)]
    graph = step.get_concrete_function(batch).graph.as_graph_def()
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    dtypes = {n.attr['T'].type for n in nodes if n.op in ('MatMul', 'BatchMatMulV2')}
    runs[mixed] = losses, model.get_weights(), dtypes
  assert tf.bfloat16.as_datatype_enum in runs[True][2]
  assert tf.bfloat16.as_datatype_enum not in runs[False][2]
  assert lstm.MATMUL_DTYPE == tf.float32  # the setting does not leak out of the trace
  np.testing.assert_allclose(runs[True][0], runs[False][0], rtol=1e-3)
  assert runs[True][0] != runs[False][0]
  bound = 5 * 1e-3
  for a, b in zip(runs[True][1], runs[False][1]):
    assert np.abs(a - b).max() <= bound
