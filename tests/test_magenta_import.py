"""Import of Magenta TF1 checkpoints: parity with the reference's recorded numbers."""

import argparse
import json
import os

import numpy as np
import pytest

from conftest import REFERENCE

tf = pytest.importorskip('tensorflow')

from mvae_tf import TrainedModel  # noqa: E402
from mvae_tf.store import magenta_import  # noqa: E402

MODELS = os.path.join(REFERENCE, 'models')
NAMES = ['cat-mel_2bar_small', 'cat-drums_2bar_small', 'hierdec-mel_16bar']


def _reference(name):
  with open(os.path.join(MODELS, name, 'config.json')) as f:
    config = json.load(f)
  return config, dict(np.load(os.path.join(MODELS, name, 'vectors.npz')))


@pytest.fixture(scope='module')
def imported(tmp_path_factory):
  """Each reference checkpoint imported with the CLI's function, saved and reloaded."""
  cache = {}

  def get(name):
    if name not in cache:
      config, vectors = _reference(name)
      out = str(tmp_path_factory.mktemp('imported') / name)
      magenta_import.import_magenta(config['config'], os.path.join(MODELS, name), out,
                                    config['hparams_override'])
      cache[name] = (TrainedModel.load(out), vectors, out)
    return cache[name]
  return get


# Measured (2026-12-02, tf backend, the three models): mu and sigma differ from the
# original's by at most 1.4e-6, logits by at most 1.1e-5 (hierdec-mel_16bar's greedy
# decode); the tolerances leave about 5x of that.
LATENT_TOL = dict(atol=1e-5, rtol=1e-5)
LOGIT_TOL = dict(atol=5e-5, rtol=1e-5)


@pytest.mark.parametrize('name', NAMES)
def test_import_reproduces_encoder_teacher_forcing_and_greedy_decodes(imported, name):
  model, d, _ = imported(name)
  steps = d['inputs'].shape[1]
  valid = np.arange(steps)[None, :] < d['lengths'][:, None]
  _, mu, sigma = model.encode_tensors(d['inputs'], d['lengths'], seed=0)
  np.testing.assert_allclose(mu, d['mu'], **LATENT_TOL)
  np.testing.assert_allclose(sigma, d['sigma'], **LATENT_TOL)
  for z_name, z in (('zfixed', d['z_fixed']), ('mu', d['mu'])):
    logits = model.teacher_forced_logits(d['outputs'], d['lengths'], z)
    np.testing.assert_allclose(logits[valid], d['teacher_%s_logits' % z_name][valid],
                               **LOGIT_TOL)
    indices, greedy_logits = model.decode_indices(z, steps)
    np.testing.assert_array_equal(indices, d['greedy_%s_indices' % z_name])
    np.testing.assert_allclose(greedy_logits, d['greedy_%s_logits' % z_name], **LOGIT_TOL)
    samples = model.decode_tensors(z, steps, temperature=0.0)
    np.testing.assert_array_equal(samples, d['greedy_%s_samples' % z_name])


def test_import_reproduces_kl_and_reconstruction_loss(imported):
  model, d, _ = imported('cat-mel_2bar_small')
  vae = model.model
  batch = (d['inputs'], d['outputs'], np.zeros(d['inputs'].shape[:2] + (0,), bool),
           d['lengths'])
  mu, sigma = vae.encode(d['inputs'], d['lengths'])
  kl = vae.posterior(mu, sigma).kl_divergence(
      vae.posterior(tf.zeros_like(mu), tf.ones_like(sigma)))
  np.testing.assert_allclose(kl.numpy(), d['kl_div'], rtol=1e-4, atol=1e-5)
  from mvae_tf.model.vae import reconstruction_loss
  logits = vae.teacher_forced_logits(d['outputs'], tf.constant(d['z_fixed']))
  r_loss, _, _ = reconstruction_loss(logits, d['outputs'], d['lengths'], [90])
  np.testing.assert_allclose(r_loss.numpy(), d['teacher_zfixed_r_loss'], rtol=1e-4)
  del batch


def test_imported_model_directory_has_config_and_step(imported):
  _, _, out = imported('cat-drums_2bar_small')
  with open(os.path.join(out, 'config.json')) as f:
    info = json.load(f)
  assert info['config'] == 'cat-drums_2bar_small'
  assert info['hparams']['z_size'] == 12 and info['global_step'] == 2000


def _write_tf1_checkpoint(prefix, tensors):
  names = sorted(tensors)
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[''] * len(names),
                    tensors=[tf.constant(tensors[n]) for n in names])


def _checkpoint_tensors(name):
  reader = tf.train.load_checkpoint(os.path.join(MODELS, name, 'model.ckpt'))
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()}


def test_checkpoint_with_adam_slots_loads_the_same(tmp_path, imported):
  name = 'cat-drums_2bar_small'
  config, d = _reference(name)
  tensors = _checkpoint_tensors(name)
  for k in [k for k in tensors if k != 'global_step']:
    tensors[k + '/Adam'] = np.zeros_like(tensors[k])
    tensors[k + '/Adam_1'] = np.ones_like(tensors[k])
  tensors['beta1_power'] = np.float32(0.9)
  tensors['beta2_power'] = np.float32(0.999)
  prefix = str(tmp_path / 'model.ckpt-2000')
  _write_tf1_checkpoint(prefix, tensors)
  model = magenta_import.import_magenta(config['config'], prefix, str(tmp_path / 'out'),
                                        config['hparams_override'])
  mu, _ = model.encode(d['inputs'], d['lengths'])
  np.testing.assert_allclose(mu.numpy(), d['mu'], **LATENT_TOL)


def test_unknown_and_missing_variables_are_named(tmp_path):
  name = 'cat-drums_2bar_small'
  config, _ = _reference(name)
  tensors = _checkpoint_tensors(name)
  del tensors['encoder/sigma/bias']
  tensors['decoder/extra_layer/kernel'] = np.zeros([2, 2], np.float32)
  prefix = str(tmp_path / 'model.ckpt')
  _write_tf1_checkpoint(prefix, tensors)
  with pytest.raises(ValueError) as e:
    magenta_import.import_magenta(config['config'], prefix, str(tmp_path / 'out'),
                                  config['hparams_override'])
  assert 'encoder/sigma/bias' in str(e.value) and 'decoder/extra_layer/kernel' in str(e.value)
  assert not os.path.exists(tmp_path / 'out')


def test_wrong_sizes_name_the_variable_and_suggest_hparams(tmp_path):
  with pytest.raises(ValueError, match=r'encoder/mu/kernel has shape \[96, 12\].*--hparams'):
    magenta_import.import_magenta(
        'cat-drums_2bar_small', os.path.join(MODELS, 'cat-drums_2bar_small'),
        str(tmp_path / 'out'), 'enc_rnn_size=[48],dec_rnn_size=[32,32],z_size=16')


def test_wrong_decoder_family_names_the_variables(tmp_path):
  with pytest.raises(ValueError, match='missing from the checkpoint: core_decoder/decoder'):
    magenta_import.import_magenta(
        'hierdec-mel_16bar', os.path.join(MODELS, 'cat-mel_2bar_small'),
        str(tmp_path / 'out'), 'enc_rnn_size=[64],dec_rnn_size=[48,48],z_size=16')


def test_import_magenta_command(tmp_path, capsys):
  from mvae_tf.cli import import_magenta as import_command
  parser = argparse.ArgumentParser()
  import_command.add_import_magenta_parser(parser.add_subparsers(dest='command'))
  out = tmp_path / 'imported'
  args = parser.parse_args([
      'import-magenta', '--config', 'cat-drums_2bar_small',
      '--checkpoint', os.path.join(MODELS, 'cat-drums_2bar_small', 'model.ckpt'),
      '--hparams', 'batch_size=32,enc_rnn_size=[48],dec_rnn_size=[32,32],z_size=12',
      '--output', str(out)])
  assert args.func(args) == 0
  assert sorted(os.listdir(out)) == ['config.json', 'weights.npz']
  from mvae_tf.cli import main as cli
  args = parser.parse_args(['import-magenta', '--config', 'cat-drums_2bar_small',
                            '--checkpoint', str(tmp_path / 'nothing'), '--output', str(out)])
  with pytest.raises(cli.UserError, match='nothing'):
    args.func(args)
