"""One resolver for everything a user can name as a model.

`resolve(name_or_path)` says what a name is, without loading anything:

  preset      a model that ships in the package (pretrained.PRESETS: 'folk-mel_2bar', ...)
  packaged    a directory with weights.npz + config.json: the one model directory format
              (save_model, `mvae import-magenta`, scripts/package_pretrained.py)
  saved       a directory with model.keras or a .keras file (what `mvae import-magenta` and
              save_model wrote before they wrote the packaged format: still loaded)
  run         a training run directory (its newest checkpoint)
  checkpoint  a .../checkpoints/ckpt-N prefix of a run

`load_keras(name_or_path)` gives the Keras MusicVAE of any of them, with its
config.json fields and training step; `TrainedModel.load`, `mvae generate`,
`mvae evaluate` and `mvae export` all go through here. Errors are
`ModelNotFound` (nothing there), `ModelError` (something there that is not
a usable model of ours) and `runs.RunError` (a run that does not restore): each message names
the path and says what to give instead.
"""

import collections
import os
import zipfile
import zlib

from mvae_tf import pretrained

MODEL_FILE = 'model.keras'

Resolved = collections.namedtuple('Resolved', 'kind path name')

KINDS_HELP = ('a shipped model (%s), a model directory (weights.npz + config.json, e.g. '
              'from `mvae import-magenta`), a saved model of an earlier version (a directory '
              'with model.keras, or a .keras file), or a training run directory or one of '
              'its checkpoints (.../checkpoints/ckpt-N)')


class ModelNotFound(FileNotFoundError):
  """Nothing at the path a user gave (the message says what may be given)."""


class ModelError(ValueError):
  """Something at the path that is not a usable model of ours (the message says why)."""


def kinds_help():
  return KINDS_HELP % ', '.join(pretrained.PRESETS)


def resolve(name_or_path):
  """What `name_or_path` names (see the module docstring); ModelNotFound when nothing."""
  path = os.fspath(name_or_path)
  if path in pretrained.PRESETS and not os.path.exists(path):
    directory = pretrained.preset_dir(path)
    if not pretrained.is_pretrained_dir(directory):
      raise ModelNotFound('the shipped model %s is missing from %s: reinstall mvae_tf'
                          % (path, directory))
    return Resolved('preset', directory, path)
  if os.path.isdir(path):
    if pretrained.is_pretrained_dir(path):
      return Resolved('packaged', path, None)
    if os.path.isfile(os.path.join(path, MODEL_FILE)):
      return Resolved('saved', path, None)
    from mvae_tf.training import runs
    if os.path.isdir(runs.checkpoint_dir(path)) or os.path.isfile(
        os.path.join(path, runs.RUN_FILE)):
      return Resolved('run', path, None)
    raise ModelNotFound('%s is a directory but not a model: give %s' % (path, kinds_help()))
  if os.path.isfile(path) and path.endswith('.keras'):
    return Resolved('saved', path, None)
  if os.path.exists(path + '.index'):
    return Resolved('checkpoint', path, None)
  if os.path.exists(path):
    raise ModelNotFound('%s is not a model file: give %s' % (path, kinds_help()))
  raise ModelNotFound('%s: no such model; give %s' % (path, kinds_help()))


# What reading a damaged .keras file (a zip of config.json and model.weights.h5) raises.
_DAMAGED_ZIP = (zipfile.BadZipFile, zlib.error, EOFError)
RESAVE = ('save it again (`mvae import-magenta` or save_model, which now write weights.npz + '
          'config.json) or restore a copy')


def load_saved(path):
  """A MusicVAE from a directory with model.keras, or a .keras file.

  ModelError, one line naming the file, when it is truncated or damaged (not a
  zip archive, or a member that does not read) or not a MusicVAE.
  """
  import keras
  from mvae_tf.model.vae import MusicVAE
  if os.path.isdir(path):
    path = os.path.join(path, MODEL_FILE)
  if not os.path.exists(path):
    raise ModelNotFound('%s: no such model (expected a directory with %s or a .keras '
                        'file)' % (path, MODEL_FILE))
  try:
    with open(path, 'rb'):
      pass
  except IsADirectoryError:
    pass  # Keras' directory format: load_model says what it makes of it
  except OSError as e:
    raise ModelError('%s: cannot read it (%s)' % (path, e.strerror or e)) from None
  if os.path.isfile(path) and not zipfile.is_zipfile(path):  # Keras says "File not found"
    raise ModelError('%s is truncated or damaged (not a zip archive, %d bytes); %s' % (
        path, os.path.getsize(path), RESAVE))
  try:
    return keras.saving.load_model(path, custom_objects={'MusicVAE': MusicVAE}, compile=False)
  except _DAMAGED_ZIP as e:
    raise ModelError('%s is damaged (%s); %s' % (path, _first_line(e), RESAVE)) from None
  except OSError as e:
    if e.errno is not None:  # the system's (no space for a temporary file, ...), not damage
      raise ModelError('%s: cannot load it (%s)' % (path, e.strerror or e)) from None
    # h5py's, errno None: the weights file inside does not read
    raise ModelError('%s is damaged (its weights do not read: %s); %s' % (
        path, _first_line(e), RESAVE)) from None
  except (ValueError, TypeError, KeyError) as e:  # a member missing or not ours
    raise ModelError('%s is damaged or not a MusicVAE saved model (%s); %s' % (
        path, _first_line(e), RESAVE)) from None


def _first_line(error, limit=70):
  text = str(error).split('\n')[0] or type(error).__name__
  return text if len(text) <= limit else text[:limit - 3] + '...'


def load_keras(name_or_path, config=None, hparams=None):
  """(Keras MusicVAE, info dict or None, step or None, Resolved) of any model name or path
  (or of what `resolve` already said of one).

  `config` / `hparams`: those of a run directory without run.json. info is
  the packaged model's config.json (presets and packaged directories) or
  None (the caller can build it with pretrained.model_info).
  """
  resolved = name_or_path if isinstance(name_or_path, Resolved) else resolve(name_or_path)
  from mvae_tf import quiet
  quiet.import_tensorflow()  # every kind becomes a Keras model
  if resolved.kind in ('preset', 'packaged'):
    try:  # a damaged or mismatched file: one line naming it and what to do
      info = pretrained.read_info(resolved.path)
      weights = pretrained.read_weights(resolved.path, info)
    except (OSError, ValueError) as e:
      raise ModelError(str(e).split('\n')[0]) from None
    try:
      model = pretrained.keras_model(weights, info)
    except ValueError as e:  # read_weights checked names and shapes: not expected
      raise ModelError('%s: its weights do not fit its config.json (%s); re-package it' % (
          resolved.path, _first_line(e))) from None
    return model, info, info.get('step'), resolved
  if resolved.kind == 'saved':
    return load_saved(resolved.path), None, None, resolved
  from mvae_tf.training import runs
  if resolved.kind == 'run':
    model, step = runs.restore_model(run_dir=resolved.path, config=config, hparams=hparams)
  else:
    model, step = runs.restore_model(checkpoint=resolved.path, config=config, hparams=hparams)
  return model, None, step, resolved


def save_model(model, output_dir, extra=None):
  """Write a model directory in the one format: weights.npz (float32, every weight by
  its layer path, mvae_tf.model.weights) and config.json (the config, hparams, sizes
  and how outputs become notes, plus `extra`), atomically (temporary directory, then
  rename). It is the format of the shipped models (mvae_tf.pretrained), which add
  their .tflite exports and attribute vectors; `load_keras` and `TrainedModel.load`
  read it. Directories with model.keras, written before this format, still load.
  The model's config_name must be a registered config (mvae_tf.configs): loading
  builds the model from it (ValueError otherwise)."""
  from mvae_tf.model.weights import weights_from_keras
  info = pretrained.model_info(model, **(extra or {}))
  return pretrained.write_pretrained(output_dir, weights_from_keras(model), info,
                                     dtype='float32')


def load_model(path):
  """The Keras MusicVAE of a directory written by save_model (or, older, a directory
  with model.keras or a .keras file)."""
  return load_keras(path)[0]
