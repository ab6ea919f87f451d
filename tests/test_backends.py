"""The two backends of TrainedModel: 'litert' (a packaged model's exported .tflite
graphs on LiteRT, edge_demo.runtime) against 'tf' (the Keras model), and the
packaged format that ships models in the package (mvae_tf.pretrained)."""

import importlib.util
import json
import os

import numpy as np
import pytest

tf = pytest.importorskip('tensorflow')

from mvae_tf import configs, pretrained  # noqa: E402
from mvae_tf.generation import trained_model  # noqa: E402
from mvae_tf.generation.trained_model import TrainedModel, save_model  # noqa: E402
from mvae_tf.model.weights import check_weights, weights_from_keras  # noqa: E402

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


def package(model, path, batch_sizes=(1,), quantize='none', dtype='float32'):
  """`model` as a packaged directory with its exports (float32 by default: exact)."""
  from mvae_tf.export import exporter
  pretrained.write_pretrained(path, weights_from_keras(model), pretrained.model_info(model),
                              dtype=dtype)
  for batch, name in zip(batch_sizes, (trained_model.TFLITE_FILE,
                                       trained_model.TFLITE_BATCH_FILE)):
    out = path + '-export-%d' % batch
    exporter.export_model(path, out, formats=('tflite',), quantize=(quantize,),
                          batch_size=batch, progress=lambda msg: None, num_parity=2)
    label = 'float32' if quantize == 'none' else quantize
    os.replace(os.path.join(out, 'tflite', label, 'model.tflite'), os.path.join(path, name))
  return path


@pytest.mark.parametrize('name', ['tiny-mel_2bar', 'tiny-drums_2bar', 'tiny-hierdec-trio_2bar'])
def test_litert_backend_matches_tensorflow(name, tmp_path):
  model = random_model(name)
  path = package(model, str(tmp_path / name), batch_sizes=(1, 4))
  tf_model, lite = TrainedModel(model), TrainedModel.load(path)
  assert (tf_model.backend, lite.backend) == ('tf', 'litert')
  assert lite.model.many.batch_size == 4
  lite.model.BATCH_FILE_FROM = 3  # rows 0-3 through the batch-4 file, row 4 through batch 1
  rng = np.random.default_rng(1)
  inputs, targets, _, lengths = random_batch(model, rng)
  _, mu_tf, sigma_tf = tf_model.encode_tensors(inputs, lengths)
  _, mu_lite, sigma_lite = lite.encode_tensors(inputs, lengths)
  assert np.abs(mu_tf).max() > 0.1  # the weights make mu non-trivial
  np.testing.assert_allclose(mu_lite, mu_tf, atol=1e-4)
  np.testing.assert_allclose(sigma_lite, sigma_tf, atol=1e-4)
  z = rng.standard_normal(mu_tf.shape).astype(np.float32)
  np.testing.assert_allclose(lite.teacher_forced_logits(targets, lengths, z),
                             tf_model.teacher_forced_logits(targets, lengths, z), atol=1e-4)
  steps = model.hparams.max_seq_len
  indices_tf, logits_tf = tf_model.decode_indices(z, steps)
  indices_lite, logits_lite = lite.decode_indices(z, steps)
  np.testing.assert_array_equal(indices_lite, indices_tf)
  np.testing.assert_allclose(logits_lite, logits_tf, atol=1e-4)
  with pytest.raises(ValueError, match='controls'):
    lite.decode_indices(z, steps, controls=np.zeros((5, steps, 1)))


def test_litert_sampling_is_seeded_per_sequence():
  model = TrainedModel.load('drums_2bar')
  assert model.backend == 'litert' and model.model.many is not None
  z = model.random_latents(20, seed=0)
  a = model.decode_indices(z, 32, temperature=1.0, seed=5)[0]  # the batch-64 file
  np.testing.assert_array_equal(a, model.decode_indices(z, 32, temperature=1.0, seed=5)[0])
  assert not np.array_equal(a, model.decode_indices(z, 32, temperature=1.0, seed=6)[0])
  # Each sequence has its own noise: the same notes whatever the batch (and file) it is in.
  np.testing.assert_array_equal(a[:2], model.decode_indices(z[:2], 32, 1.0, seed=5)[0])
  np.testing.assert_array_equal(a[:16], model.decode_indices(z[:16], 32, 1.0, seed=5)[0])


def test_weight_names_must_match_the_model():
  model = random_model('tiny-mel_2bar')
  weights, info = weights_from_keras(model), pretrained.model_info(model)
  assert 'decoder/lstm/kernel_0' in weights and 'encoder/fw_0/kernel_0' in weights
  with pytest.raises(ValueError, match='not used'):
    check_weights(dict(weights, **{'decoder/extra': np.zeros(3)}), info)
  with pytest.raises(KeyError, match='mu_kernel'):
    check_weights({k: v for k, v in weights.items() if k != 'encoder/mu_kernel'}, info)


def test_pretrained_round_trip_in_both_backends(tmp_path):
  model = random_model('tiny-hierdec-trio_2bar', scale=0.2)
  out = str(tmp_path / 'trio')
  pretrained.write_pretrained(out, weights_from_keras(model),
                              pretrained.model_info(model, name='trio', step=7),
                              dtype='float32')
  assert sorted(os.listdir(tmp_path)) == ['trio']  # no temporary left behind
  weights_only = TrainedModel.load(out)  # no model.tflite: the Keras model
  assert weights_only.backend == 'tf' and weights_only.step == 7
  with pytest.raises(ValueError, match='no model.tflite'):
    TrainedModel.load(out, backend='litert')
  package(model, out)
  loaded = TrainedModel.load(out)
  assert loaded.backend == 'litert' and loaded.kind == 'trio'
  as_tf = TrainedModel.load(out, backend='tf')
  z = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
  expected = TrainedModel(model).decode_indices(z, 32)[0]
  for m in (weights_only, loaded, as_tf):
    np.testing.assert_array_equal(m.decode_indices(z, 32)[0], expected)


def test_float16_weights_keep_greedy_decodes(tmp_path):
  model = tiny_models.trained_keras_model()
  out = package(model, str(tmp_path / 'tiny16'), quantize='float16', dtype='float16')
  assert pretrained.read_info(out)['weights_dtype'] == 'float16'
  with np.load(os.path.join(out, pretrained.WEIGHTS_FILE)) as data:
    assert {data[k].dtype for k in data.files} == {np.dtype(np.float16)}
  full, half = TrainedModel(model), TrainedModel.load(out)
  assert half.backend == 'litert'
  z = full.random_latents(256, seed=1)
  a, b = full.decode_indices(z, 32)[0], half.decode_indices(z, 32)[0]
  same_sequences = np.all(a == b, axis=(1, 2)).mean()
  assert same_sequences >= 0.95 and (a == b).mean() >= 0.99, (same_sequences, (a == b).mean())
  onehot, _ = tiny_models.density_batch(np.random.default_rng(2), 64)
  mu_full = full.encode_tensors(onehot, np.full(64, 32))[1]
  mu_half = half.encode_tensors(onehot, np.full(64, 32))[1]
  assert np.abs(mu_full - mu_half).max() < 0.02 * np.abs(mu_full).max()


def test_a_damaged_or_foreign_tflite_is_one_line(tmp_path):
  import shutil
  copy = str(tmp_path / 'folk')
  shutil.copytree(pretrained.preset_dir('folk-mel_2bar'), copy)
  tflite = os.path.join(copy, trained_model.TFLITE_FILE)
  shutil.copy(os.path.join(pretrained.preset_dir('drums_2bar'), trained_model.TFLITE_FILE),
              tflite)
  with pytest.raises(ValueError, match='is an export of cat-drums_2bar_cpu') as e:
    TrainedModel.load(copy)
  assert '\n' not in str(e.value)
  with open(tflite, 'r+b') as f:
    f.truncate(1000)
  with pytest.raises(ValueError, match='model.tflite is damaged') as e:
    TrainedModel.load(copy)
  assert 're-package it' in str(e.value)


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
  assert packed.backend == 'litert' and packed.model.many.batch_size == 64
  z = packed.random_latents(4, seed=0)
  np.testing.assert_array_equal(packed.decode_indices(z, 32)[0],
                                TrainedModel(model).decode_indices(z, 32)[0])
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
  config = configs.get_config(pretrained.PRESETS[name])
  assert info['config'] == config.name and info['decoder_type'] == config.decoder
  assert info['status'] == 'trained' and info['evaluation']['config'] == config.name
  # Stored compactly: float16, about 2 bytes a weight (the trio has 3.8M weights, so the
  # old flat 4 MB limit became one per weight).
  assert info['weights_dtype'] == 'float16'
  assert os.path.getsize(os.path.join(path, pretrained.WEIGHTS_FILE)) < \
      2.1 * info['num_parameters'] + 1e5
  files = [(trained_model.TFLITE_FILE, 1), (trained_model.TFLITE_BATCH_FILE, 64)]
  # Both hold the same float16 weights; a batch-64 file much larger than the batch-1 one
  # would carry zero-filled loop buffers (the trio's was 40 MB before they went).
  sizes = [os.path.getsize(os.path.join(path, f)) for f, _ in files]
  assert sizes[1] < 1.2 * sizes[0], sizes
  for name_, batch in files:
    from edge_demo.metadata import read_tflite_metadata
    meta = read_tflite_metadata(os.path.join(path, name_))
    assert (meta['config'], meta['batch_size'], meta['quantization']) == (
        info['config'], batch, 'float16')
    assert meta['parity']['tokens_agree'] == 1.0 and meta['legacy_tflite_runtime_2_14']
  model = TrainedModel.load(name)
  assert model.backend == 'litert' and model.z_size == info['hparams']['z_size']
  assert set(model.attribute_vectors) >= {'note_density', 'syncopation'}
