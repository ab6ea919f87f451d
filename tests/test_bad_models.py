"""Damaged or mismatched models give one line naming the file and what to do (exit 2).

Issue 11: a truncated model.keras said "File not found"; a packaged model's
weights.npz with a weight missing, cut short or of another shape gave a
KeyError, BadZipFile or numpy broadcast traceback; a config.json that is not
JSON gave a bare JSON message or an AttributeError; `mvae import-magenta`
without the checkpoint's --hparams printed a kilobyte of shapes. Each case
runs the command line (mvae_tf.cli.main, and one through `python -m mvae_tf`).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from conftest import REFERENCE

tf = pytest.importorskip('tensorflow')

from mvae_tf.cli import main as cli  # noqa: E402
from mvae_tf import pretrained  # noqa: E402
from mvae_tf.store import resolve  # noqa: E402
from mvae_tf.generation import trained_model  # noqa: E402
from mvae_tf.model.weights import check_weights, expected_shapes, weights_from_keras  # noqa: E402
from mvae_tf.generation.trained_model import TrainedModel  # noqa: E402

import tiny_models  # noqa: E402
from tiny_models import random_model  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(REFERENCE, 'models')
DRUMS_HPARAMS = 'enc_rnn_size=[48],dec_rnn_size=[32,32],z_size=12'
MAX_LINE = 300  # the message itself is under ~250 characters; paths of tmp_path add some


def run(capsys, *argv):
  code = cli.main([str(a) for a in argv])
  out, err = capsys.readouterr()
  return code, out, err


def assert_one_line(code, err, command, *names):
  """Exit 2, one `mvae COMMAND: error:` line naming each of `names`, no traceback."""
  assert code == 2, err
  assert 'Traceback' not in err, err
  lines = err.strip().split('\n')
  assert len(lines) == 1, err
  assert lines[0].startswith('mvae %s: error: ' % command), err
  for name in names:
    assert str(name) in lines[0], (name, err)
  assert len(lines[0]) < MAX_LINE + sum(len(str(n)) for n in names), err
  return lines[0]


# --- 1. A saved model (model.keras) that is truncated or damaged. ---

@pytest.fixture(scope='module')
def saved_model(tmp_path_factory):
  out = tmp_path_factory.mktemp('saved') / 'drums'
  tiny_models.save_legacy_keras(random_model('tiny-drums_2bar'), str(out))
  return out


def _damaged_copy(saved_model, tmp_path, damage):
  out = tmp_path / 'damaged'
  shutil.copytree(saved_model, out)
  path = out / resolve.MODEL_FILE
  path.write_bytes(damage(path.read_bytes()))
  return out, path


def test_a_truncated_model_keras_is_named_as_truncated(saved_model, tmp_path, capsys):
  """It said: "not a MusicVAE saved model (File not found: filepath=...)"."""
  out, path = _damaged_copy(saved_model, tmp_path, lambda b: b[:len(b) // 2])
  for argv in (['generate', '--checkpoint_file', out, '--output_dir', tmp_path / 'o'],
               ['generate', '--checkpoint_file', path, '--output_dir', tmp_path / 'o'],
               ['export', out, '--output', tmp_path / 'e']):
    line = assert_one_line(*run(capsys, *argv)[::2], argv[0], path)
    assert 'truncated or damaged (not a zip archive' in line and 'File not found' not in line
    assert 'save it again' in line
  examples = tmp_path / 'empty.tfrecord'
  examples.write_bytes(b'')
  line = assert_one_line(*run(capsys, 'evaluate', '--config', 'tiny-drums_2bar',
                              '--checkpoint', out, '--examples_path', examples)[::2],
                         'evaluate', path)
  assert 'truncated or damaged' in line
  assert not (tmp_path / 'o').exists() and not (tmp_path / 'e').exists()


def test_a_model_keras_damaged_inside_is_named(saved_model, tmp_path, capsys):
  """Bytes overwritten inside the zip: a CRC or header error, not a traceback."""
  size = os.path.getsize(saved_model / resolve.MODEL_FILE)
  out, path = _damaged_copy(saved_model, tmp_path,
                            lambda b: b[:size // 2] + b'\0' * 4096 + b[size // 2 + 4096:])
  line = assert_one_line(*run(capsys, 'generate', '--checkpoint_file', out,
                              '--output_dir', tmp_path / 'o')[::2], 'generate', path)
  assert 'is damaged' in line


def test_a_model_keras_without_its_weights_is_named(saved_model, tmp_path, capsys):
  out = tmp_path / 'noweights'
  out.mkdir()
  with zipfile.ZipFile(saved_model / resolve.MODEL_FILE) as zin, \
      zipfile.ZipFile(out / resolve.MODEL_FILE, 'w') as zout:
    for item in zin.infolist():
      if not item.filename.endswith('.h5'):
        zout.writestr(item, zin.read(item))
  line = assert_one_line(*run(capsys, 'export', out, '--output', tmp_path / 'e')[::2],
                         'export', out / resolve.MODEL_FILE)
  assert 'damaged or not a MusicVAE saved model' in line


def test_the_real_command_prints_no_traceback(saved_model, tmp_path):
  """Through `python -m mvae_tf`, as a user runs it."""
  out, path = _damaged_copy(saved_model, tmp_path, lambda b: b[:1000])
  proc = subprocess.run(
      [sys.executable, '-m', 'mvae_tf', 'generate', '--checkpoint_file', str(out),
       '--output_dir', str(tmp_path / 'o')], capture_output=True, text=True, cwd=ROOT,
      timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
  lines = [l for l in proc.stderr.strip().split('\n') if l.startswith('mvae ')]
  assert proc.returncode == 2 and 'Traceback' not in proc.stderr, proc.stderr
  assert len(lines) == 1 and str(path) in lines[0] and 'truncated' in lines[0], proc.stderr


# --- 2. A packaged model (weights.npz + config.json) whose weights are damaged. ---

def _packaged_copy(tmp_path, name='packaged', tflite=False):
  """A copy of the folk preset; without its .tflite files (by default) it is a
  weights-only package, which every backend reads weights.npz for (the litert
  backend of a package with model.tflite never reads weights.npz)."""
  out = tmp_path / name
  shutil.copytree(pretrained.preset_dir('folk-mel_2bar'), out)
  if not tflite:
    for f in (trained_model.TFLITE_FILE, trained_model.TFLITE_BATCH_FILE):
      os.remove(out / f)
  return out


def _weights(path):
  with np.load(path / pretrained.WEIGHTS_FILE) as data:
    return {k: data[k] for k in data.files}


def _generate(capsys, model, tmp_path, backend):
  return run(capsys, 'generate', '--checkpoint_file', model, '--backend', backend,
             '--num_outputs', 1, '--seed', 1, '--output_dir', tmp_path / 'o')


@pytest.mark.parametrize('backend', ['auto', 'tf'])
def test_a_missing_weight_is_named(tmp_path, capsys, backend):
  """It raised KeyError: "weight 'decoder/output_bias' missing (have ...)"."""
  model = _packaged_copy(tmp_path)
  weights = _weights(model)
  del weights['decoder/output_bias']
  np.savez_compressed(model / pretrained.WEIGHTS_FILE, **weights)
  code, _, err = _generate(capsys, model, tmp_path, backend)
  line = assert_one_line(code, err, 'generate', model / pretrained.WEIGHTS_FILE)
  assert 'weight decoder/output_bias is missing' in line and 're-package it' in line
  assert not (tmp_path / 'o').exists()


@pytest.mark.parametrize('backend', ['auto', 'tf'])
@pytest.mark.parametrize('name,shape', [('decoder/output_kernel', (128, 80)),
                                        ('encoder/mu_kernel', (512, 32))])
def test_a_weight_of_another_shape_is_named_with_both_shapes(tmp_path, capsys, backend, name,
                                                             shape):
  """The numpy backend (gone since) said "operands could not be broadcast together with
  shapes (1,80) (90,)", or (a smaller mu) nothing at all."""
  model = _packaged_copy(tmp_path)
  weights = _weights(model)
  expected = weights[name].shape
  weights[name] = weights[name][:shape[0], :shape[1]]
  np.savez_compressed(model / pretrained.WEIGHTS_FILE, **weights)
  code, _, err = _generate(capsys, model, tmp_path, backend)
  line = assert_one_line(code, err, 'generate', model / pretrained.WEIGHTS_FILE)
  assert 'weight %s: shape %s, model has %s' % (name, shape, expected) in line, line
  assert 'broadcast' not in line


@pytest.mark.parametrize('damage', ['truncated', 'overwritten', 'empty', 'not_npz'])
def test_a_damaged_weights_npz_is_named(tmp_path, capsys, damage):
  """It raised zipfile.BadZipFile or EOFError."""
  model = _packaged_copy(tmp_path)
  path = model / pretrained.WEIGHTS_FILE
  data = path.read_bytes()
  path.write_bytes({'truncated': data[:len(data) // 2],
                    'overwritten': data[:2000] + b'\0' * 3000 + data[5000:],
                    'empty': b'',
                    'not_npz': b'just some text\n'}[damage])
  for backend in ('auto', 'tf') if damage == 'truncated' else ('auto',):
    code, _, err = _generate(capsys, model, tmp_path, backend)
    line = assert_one_line(code, err, 'generate', path)
    assert 'is truncated or damaged' in line and 're-package it' in line
  line = assert_one_line(*run(capsys, 'export', model, '--output', tmp_path / 'e')[::2],
                         'export', path)
  assert 'is truncated or damaged' in line


def test_the_library_raises_a_value_error_naming_the_file(tmp_path):
  model = _packaged_copy(tmp_path)
  weights = _weights(model)
  del weights['encoder/mu_bias']
  np.savez_compressed(model / pretrained.WEIGHTS_FILE, **weights)
  with pytest.raises(ValueError, match=re.escape(str(model / pretrained.WEIGHTS_FILE)) +
                     ': weight encoder/mu_bias is missing'):
    TrainedModel.load(str(model))
  with pytest.raises(resolve.ModelError, match='encoder/mu_bias is missing'):
    resolve.load_keras(str(model))


@pytest.mark.parametrize('damaged', [pretrained.WEIGHTS_FILE, trained_model.TFLITE_FILE])
def test_a_shipped_model_that_is_damaged_says_reinstall(monkeypatch, tmp_path, capsys,
                                                        damaged):
  """The remedy for a model inside the package is to reinstall it, not to re-package it."""
  fake_here = tmp_path / 'pretrained'
  model = _packaged_copy(fake_here, 'folk-mel_2bar', tflite=True)
  (model / damaged).write_bytes(b'PK\x03\x04 cut')
  monkeypatch.setattr(pretrained, 'HERE', str(fake_here))
  backend = 'tf' if damaged == pretrained.WEIGHTS_FILE else 'auto'
  line = assert_one_line(*run(capsys, 'generate', '--backend', backend, '--output_dir',
                              tmp_path / 'o')[::2], 'generate', model / damaged)
  assert 'reinstall mvae_tf' in line


@pytest.mark.parametrize('name,overrides', [
    ('tiny-mel_2bar', ''), ('tiny-mel_2bar', 'conditional=false'), ('tiny-drums_2bar', ''),
    ('tiny-mel_2bar_chords', ''), ('tiny-hierdec-trio_2bar', ''),
    ('tiny-hierdec-mel_16bar', 'enc_rnn_size=[8,6]')])
def test_expected_shapes_are_those_of_the_keras_model(name, overrides):
  """Weights are checked against the shapes mvae_tf.model builds from config.json."""
  from mvae_tf.pretrained import model_info
  model = random_model(name, overrides)
  weights = weights_from_keras(model)
  assert expected_shapes(model_info(model)) == {k: v.shape for k, v in weights.items()}
  check_weights(weights, model_info(model))  # accepted as it is


def test_check_weights_names_a_weight_of_another_shape():
  from mvae_tf.pretrained import model_info
  model = random_model('tiny-drums_2bar')
  weights, info = weights_from_keras(model), model_info(model)
  wrong = dict(weights, **{'decoder/lstm/bias_1': np.zeros(3, np.float32)})
  with pytest.raises(ValueError, match=r'weight decoder/lstm/bias_1: shape \(3,\), model has'):
    check_weights(wrong, info)
  missing = {k: v for k, v in weights.items() if k != 'decoder/output_bias'}
  with pytest.raises(KeyError, match='weight decoder/output_bias is missing'):
    check_weights(missing, info)  # a ValueError too


# --- 3. `mvae import-magenta` without the checkpoint's --hparams. ---

def _import(capsys, tmp_path, config, checkpoint, hparams=None):
  argv = ['import-magenta', '--config', config, '--checkpoint',
          os.path.join(MODELS, checkpoint), '--output', tmp_path / 'imported']
  return run(capsys, *argv + (['--hparams', hparams] if hparams is not None else []))


def _suggested(line):
  found = re.search(r"--hparams '([^']*)'", line)
  assert found, line
  return found.group(1)


def test_import_without_hparams_suggests_the_checkpoints_sizes(tmp_path, capsys):
  """It printed 1.1 kB: every variable's shape against the config's defaults."""
  code, _, err = _import(capsys, tmp_path, 'cat-drums_2bar_small', 'cat-drums_2bar_small')
  line = assert_one_line(code, err, 'import-magenta',
                         os.path.join(MODELS, 'cat-drums_2bar_small'))
  assert len(line) - len(MODELS) < 250, line
  assert _suggested(line) == DRUMS_HPARAMS
  # The suggestion works as given.
  code, out, err = _import(capsys, tmp_path, 'cat-drums_2bar_small', 'cat-drums_2bar_small',
                           _suggested(line))
  assert code == 0 and (tmp_path / 'imported' / pretrained.WEIGHTS_FILE).exists(), err


def test_import_with_wrong_hparams_keeps_the_others_in_the_suggestion(tmp_path, capsys):
  code, _, err = _import(capsys, tmp_path, 'cat-drums_2bar_small', 'cat-drums_2bar_small',
                         'batch_size=32,' + DRUMS_HPARAMS.replace('z_size=12', 'z_size=64'))
  line = assert_one_line(code, err, 'import-magenta')
  assert 'encoder/mu/kernel has shape [96, 12], the model needs [96, 64]' in line
  assert _suggested(line) == 'batch_size=32,' + DRUMS_HPARAMS
  code, _, err = _import(capsys, tmp_path, 'cat-mel_2bar_small', 'cat-mel_2bar_small',
                         'dec_rnn_size=[48]')  # one decoder layer too few
  line = assert_one_line(code, err, 'import-magenta')
  assert 'extra in the checkpoint: decoder/multi_rnn_cell/cell_1' in line
  assert _suggested(line) == 'enc_rnn_size=[64],dec_rnn_size=[48,48],z_size=16'
  assert not (tmp_path / 'imported').exists()


def test_import_hierarchical_suggests_every_layer(tmp_path, capsys):
  # A layer short in the encoder and the decoder (small: the defaults take 25 s to build).
  code, _, err = _import(capsys, tmp_path, 'hierdec-mel_16bar', 'hierdec-mel_16bar',
                         'enc_rnn_size=[48],dec_rnn_size=[40],z_size=8')
  line = assert_one_line(code, err, 'import-magenta')
  assert 'extra in the checkpoint: ' in line
  assert _suggested(line) == 'enc_rnn_size=[48,32],dec_rnn_size=[40,32],z_size=16'


SMALL = 'enc_rnn_size=[16],dec_rnn_size=[16],z_size=8'


@pytest.mark.parametrize('config,checkpoint,advice', [
    ('hierdec-mel_16bar', 'cat-mel_2bar_small', 'its decoder is flat: give a flat (cat-) config'),
    ('cat-mel_2bar_small', 'hierdec-mel_16bar', 'its decoder is hierarchical: give a hierdec-'),
    ('cat-mel_2bar_small', 'cat-drums_2bar_small',
     'its inputs have depth 10, not 90: give the --config it was trained with')])
def test_import_with_the_wrong_config_says_which_to_give(tmp_path, capsys, config, checkpoint,
                                                          advice):
  code, _, err = _import(capsys, tmp_path, config, checkpoint, SMALL)
  line = assert_one_line(code, err, 'import-magenta', checkpoint)
  assert advice in line and len(line) - len(MODELS) < 250, line


@pytest.mark.parametrize('part,damage', [('data-00000-of-00001', 'truncated'),
                                         ('data-00000-of-00001', 'overwritten'),
                                         ('index', 'truncated')])
def test_import_of_a_damaged_checkpoint_is_one_line(tmp_path, capsys, part, damage):
  copy = tmp_path / 'ckpt'
  shutil.copytree(os.path.join(MODELS, 'cat-drums_2bar_small'), copy)
  path = copy / ('model.ckpt.' + part)
  data = bytearray(path.read_bytes())
  if damage == 'truncated':
    data = data[:len(data) // 2]
  else:
    data[1000:3000] = b'\0' * 2000
  path.write_bytes(bytes(data))
  code, _, err = run(capsys, 'import-magenta', '--config', 'cat-drums_2bar_small',
                     '--checkpoint', copy, '--hparams', DRUMS_HPARAMS,
                     '--output', tmp_path / 'imported')
  line = assert_one_line(code, err, 'import-magenta', copy / 'model.ckpt')
  assert 'the checkpoint is truncated or damaged' in line
  assert not (tmp_path / 'imported').exists()


# --- 4. A packaged model whose config.json is not JSON (or not ours). ---

@pytest.mark.parametrize('content,says', [
    ('truncated', 'is truncated or damaged (not valid JSON'),
    (b'\xff\xfe\x00\x00binary', 'is damaged (not UTF-8 text)'),
    ('[1, 2]', 'is damaged (a JSON list, not an object)'),
    ('no_decoder_type', "has no field 'decoder_type'"),
    ('bad_sizes', 'hparam dec_rnn_size is'),
])
def test_a_damaged_config_json_is_named(tmp_path, capsys, content, says):
  """Truncated, it said "Expecting value: line 51 column 16 (char 1061)"; a list raised
  AttributeError; a field missing raised KeyError."""
  model = _packaged_copy(tmp_path)
  path = model / pretrained.INFO_FILE
  text = path.read_text()
  info = json.loads(text)
  if content == 'truncated':
    content = text[:len(text) // 2]
  elif content == 'no_decoder_type':
    del info['decoder_type']
    content = json.dumps(info)
  elif content == 'bad_sizes':
    info['hparams']['dec_rnn_size'] = 'big'
    content = json.dumps(info)
  path.write_bytes(content if isinstance(content, bytes) else content.encode())
  for backend in ('auto', 'tf') if says.startswith('is truncated') else ('auto',):
    code, _, err = _generate(capsys, model, tmp_path, backend)
    line = assert_one_line(code, err, 'generate', path)
    assert says in line and 're-package it' in line, line
  line = assert_one_line(*run(capsys, 'export', model, '--output', tmp_path / 'e')[::2],
                         'export', path)
  assert says in line
