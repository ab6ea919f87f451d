"""The numpy backend (mvae_tf.inference) against the TensorFlow model, and the
compact format that ships models in the package (mvae_tf.pretrained)."""

import importlib.util
import json
import os

import numpy as np
import pytest

tf = pytest.importorskip('tensorflow')

from mvae_tf import pretrained  # noqa: E402
from mvae_tf.inference import NumpyMusicVAE, choose, weights_from_keras  # noqa: E402
from mvae_tf.model.trained_model import TrainedModel, save_model  # noqa: E402

import tiny_models  # noqa: E402
from tiny_models import random_model  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def random_batch(model, rng, batch=5):
  steps, depth = model.hparams.max_seq_len, model.input_depth
  inputs = np.eye(depth, dtype=np.float32)[rng.integers(0, depth, (batch, steps))]
  targets = np.concatenate([np.eye(d, dtype=np.float32)[rng.integers(0, d, (batch, steps))]
                            for d in model.output_depths], -1)
  controls = None
  if model.control_depth:
    controls = np.eye(model.control_depth, dtype=np.float32)[
        rng.integers(0, model.control_depth, (batch, steps))]
  lengths = np.array([steps, steps - 3, steps // 2, 5, steps][:batch], np.int32)
  return inputs, targets, controls, lengths


@pytest.mark.parametrize('name,overrides', [
    ('tiny-mel_2bar', ''), ('tiny-mel_2bar', 'conditional=false'), ('tiny-drums_2bar', ''),
    ('tiny-mel_2bar_chords', ''), ('tiny-hierdec-trio_2bar', ''), ('tiny-hierdec-mel_16bar', '')])
def test_numpy_backend_matches_tensorflow(name, overrides):
  model = random_model(name, overrides)
  tf_model, np_model = TrainedModel(model), TrainedModel(model, backend='numpy')
  assert (tf_model.backend, np_model.backend) == ('tf', 'numpy')
  rng = np.random.default_rng(1)
  inputs, targets, controls, lengths = random_batch(model, rng)
  _, mu_tf, sigma_tf = tf_model.encode_tensors(inputs, lengths, controls)
  _, mu_np, sigma_np = np_model.encode_tensors(inputs, lengths, controls)
  assert np.abs(mu_tf).max() > 0.1  # the weights make mu non-trivial
  np.testing.assert_allclose(mu_np, mu_tf, atol=1e-5)
  np.testing.assert_allclose(sigma_np, sigma_tf, atol=1e-5)
  z = rng.standard_normal(mu_tf.shape).astype(np.float32)
  np.testing.assert_allclose(np_model.teacher_forced_logits(targets, lengths, z, controls),
                             tf_model.teacher_forced_logits(targets, lengths, z, controls),
                             atol=1e-5)
  steps = model.hparams.max_seq_len
  indices_tf, logits_tf = tf_model.decode_indices(z, steps, controls=controls)
  indices_np, logits_np = np_model.decode_indices(z, steps, controls=controls)
  np.testing.assert_array_equal(indices_np, indices_tf)
  np.testing.assert_allclose(logits_np, logits_tf, atol=1e-5)
  np.testing.assert_array_equal(np_model.decode_tensors(z, steps, controls=controls),
                                tf_model.decode_tensors(z, steps, controls=controls))


def test_numpy_sampling_is_seeded_and_follows_the_softmax():
  model = TrainedModel(random_model('tiny-drums_2bar'), backend='numpy')
  z = model.random_latents(4, seed=0)
  a = model.decode_indices(z, 32, temperature=1.0, seed=5)[0]
  np.testing.assert_array_equal(a, model.decode_indices(z, 32, temperature=1.0, seed=5)[0])
  assert not np.array_equal(a, model.decode_indices(z, 32, temperature=1.0, seed=6)[0])
  # Each sequence has its own stream: the same whatever the batch it is in.
  np.testing.assert_array_equal(a[:2], model.decode_indices(z[:2], 32, 1.0, seed=5)[0])
  logits = np.tile(np.log(np.array([[0.5, 0.3, 0.2, 1e-9]])), (20000, 1))
  uniforms = np.random.default_rng(0).random((20000, 1))
  counts = np.bincount(choose(logits, [4], 1.0, uniforms)[:, 0], minlength=4)
  np.testing.assert_allclose(counts / 20000, [0.5, 0.3, 0.2, 0.0], atol=0.015)
  sharp = choose(logits, [4], 0.05, uniforms)[:, 0]
  assert (sharp == 0).mean() > 0.99


def test_weight_names_must_match_the_model():
  model = random_model('tiny-mel_2bar')
  weights, info = weights_from_keras(model), pretrained.model_info(model)
  assert 'decoder/lstm/kernel_0' in weights and 'encoder/fw_0/kernel_0' in weights
  with pytest.raises(ValueError, match='not used'):
    NumpyMusicVAE(dict(weights, **{'decoder/extra': np.zeros(3)}), info)
  with pytest.raises(KeyError, match='mu_kernel'):
    NumpyMusicVAE({k: v for k, v in weights.items() if k != 'encoder/mu_kernel'}, info)


def test_pretrained_round_trip_in_both_backends(tmp_path):
  model = random_model('tiny-hierdec-trio_2bar', scale=0.2)
  out = tmp_path / 'trio'
  pretrained.write_pretrained(str(out), weights_from_keras(model),
                              pretrained.model_info(model, name='trio', step=7),
                              dtype='float32')
  assert sorted(os.listdir(tmp_path)) == ['trio']  # no temporary left behind
  loaded = TrainedModel.load(str(out))
  assert loaded.backend == 'numpy' and loaded.step == 7 and loaded.kind == 'trio'
  as_tf = TrainedModel.load(str(out), backend='tf')
  z = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
  expected = TrainedModel(model).decode_indices(z, 32)[0]
  np.testing.assert_array_equal(loaded.decode_indices(z, 32)[0], expected)
  np.testing.assert_array_equal(as_tf.decode_indices(z, 32)[0], expected)


def test_float16_weights_keep_greedy_decodes(tmp_path):
  model = tiny_models.trained_keras_model()
  out = str(tmp_path / 'tiny16')
  info = pretrained.write_pretrained(out, weights_from_keras(model),
                                     pretrained.model_info(model))
  assert info['weights_dtype'] == 'float16'
  with np.load(os.path.join(out, pretrained.WEIGHTS_FILE)) as data:
    assert {data[k].dtype for k in data.files} == {np.dtype(np.float16)}
  full, half = TrainedModel(model, backend='numpy'), TrainedModel.load(out)
  z = full.random_latents(256, seed=1)
  a, b = full.decode_indices(z, 32)[0], half.decode_indices(z, 32)[0]
  same_sequences = np.all(a == b, axis=(1, 2)).mean()
  assert same_sequences >= 0.95 and (a == b).mean() >= 0.99, (same_sequences, (a == b).mean())
  onehot, _ = tiny_models.density_batch(np.random.default_rng(2), 64)
  mu_full = full.encode_tensors(onehot, np.full(64, 32))[1]
  mu_half = half.encode_tensors(onehot, np.full(64, 32))[1]
  assert np.abs(mu_full - mu_half).max() < 0.02 * np.abs(mu_full).max()


def _package_script():
  spec = importlib.util.spec_from_file_location(
      'package_pretrained', os.path.join(ROOT, 'scripts', 'package_pretrained.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_package_script_from_a_saved_model_and_as_placeholder(tmp_path, capsys):
  script = _package_script()
  model = random_model('tiny-drums_2bar')
  save_model(model, str(tmp_path / 'saved'))
  evaluation = tmp_path / 'eval.json'
  evaluation.write_text(json.dumps({'accuracy_teacher_forced': 0.5}))
  assert script.main(['--checkpoint', str(tmp_path / 'saved'), '--name', 'tiny-drums',
                      '--output_dir', str(tmp_path / 'packed'), '--corpus', 'synthetic',
                      '--evaluation', str(evaluation)]) == 0
  info = pretrained.read_info(str(tmp_path / 'packed'))
  assert info['status'] == 'trained' and info['corpus'] == 'synthetic'
  assert info['evaluation'] == {'accuracy_teacher_forced': 0.5}
  assert info['data']['drum_pitches'][:3] == [36, 38, 42]
  packed = TrainedModel.load(str(tmp_path / 'packed'))
  z = packed.random_latents(4, seed=0)
  np.testing.assert_array_equal(packed.decode_indices(z, 32)[0],
                                TrainedModel(model, backend='numpy').decode_indices(z, 32)[0])
  assert script.main(['--random_init', 'tiny-mel_2bar', '--name', 'tiny-placeholder',
                      '--output_dir', str(tmp_path / 'placeholder')]) == 0
  assert pretrained.read_info(str(tmp_path / 'placeholder'))['status'] == \
      pretrained.PLACEHOLDER
  with pytest.raises(SystemExit):  # a preset name must come with its config
    script.main(['--random_init', 'tiny-mel_2bar', '--name', 'folk-mel_2bar',
                 '--output_dir', str(tmp_path / 'wrong')])
  capsys.readouterr()


@pytest.mark.parametrize('name', sorted(pretrained.PRESETS))
def test_presets_ship_with_the_package(name):
  path = pretrained.preset_dir(name)
  assert pretrained.is_pretrained_dir(path)
  info = pretrained.read_info(path)
  assert info['config'] == pretrained.PRESETS[name] and info['decoder_type'] == 'flat'
  assert os.path.getsize(os.path.join(path, pretrained.WEIGHTS_FILE)) < 4e6
  model = TrainedModel.load(name)
  assert model.backend == 'numpy' and model.z_size == info['hparams']['z_size']
  assert set(model.attribute_vectors) >= {'note_density', 'syncopation'}
