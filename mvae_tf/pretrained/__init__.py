"""Models that ship inside the package (and packaged models like them).

  mvae_tf/pretrained/NAME/weights.npz       every weight by layer path ('decoder/lstm/
                                            kernel_0', ...), float16, np.savez_compressed:
                                            the Keras model (tf backend, export, training)
  mvae_tf/pretrained/NAME/model.tflite      the exported graphs (float16, batch 1), run on
                                            LiteRT without TensorFlow (litert backend)
  mvae_tf/pretrained/NAME/model_b64.tflite  the same at batch 64 (for batches of 15 or more)
  mvae_tf/pretrained/NAME/config.json       config name, hparams, depths, how outputs become
                                            notes, training step, corpus, evaluation, status
  mvae_tf/pretrained/NAME/attributes.npz    attribute vectors (mvae_tf.generation.attributes), optional

Reading one for generation needs LiteRT and numpy only; writing one from a Keras
model imports TensorFlow (scripts/package_pretrained.py, which exports the .tflite
files with `mvae export`).
"""

import json
import os
import zipfile
import zlib

import numpy as np

from mvae_tf import atomic

WEIGHTS_FILE = 'weights.npz'
INFO_FILE = 'config.json'
ATTRIBUTES_FILE = 'attributes.npz'
FORMAT = 'mvae_tf-pretrained-1'

# Preset name -> the config it was trained with.
PRESETS = {
    'folk-mel_2bar': 'cat-mel_2bar_cpu',
    'drums_2bar': 'cat-drums_2bar_cpu',
    # 16-bar melodies: the hierarchical model, and the flat one as the paper's baseline
    # (so that `mvae evaluate --preset` reruns the comparison).
    'folk-mel_16bar': 'hierdec-mel_16bar_cpu',
    'folk-mel_16bar_flat': 'flat-mel_16bar_cpu',
    # 16-bar trios (melody, bass, drums) from the Debian MIDI songs, hierarchical decoder.
    'trio_16bar': 'hierdec-trio_16bar_cpu',
    # 16-bar drum grooves (the drum corpus: MMA grooves and Debian MIDI songs),
    # hierarchical decoder.
    'drums_16bar': 'hierdec-drums_16bar_cpu',
}
DEFAULT_PRESET = 'folk-mel_2bar'
DRUMS_PRESET = 'drums_2bar'
PLACEHOLDER = 'untrained placeholder'

HERE = os.path.dirname(os.path.abspath(__file__))


def preset_dir(name):
  return os.path.join(HERE, name)


def preset_for_config(config_name):
  """The preset trained with `config_name`, or None."""
  for name, config in PRESETS.items():
    if config == config_name:
      return name
  return None


def is_pretrained_dir(path):
  return os.path.isfile(os.path.join(path, WEIGHTS_FILE)) and \
      os.path.isfile(os.path.join(path, INFO_FILE))


def remedy(path):
  """What to do about a damaged packaged model at `path`."""
  if os.path.dirname(os.path.abspath(path)) == HERE:
    return 'reinstall mvae_tf'  # a shipped model
  return 're-package it (scripts/package_pretrained.py) or re-save it, or copy it again'


def read_info(path):
  """config.json of a packaged model.

  ValueError, one line naming the file, when it is not JSON (truncated or
  damaged), not ours, lacks a field the model needs or names an unknown config.
  """
  file = os.path.join(path, INFO_FILE)
  with open(file, 'rb') as f:
    text = f.read()
  try:
    info = json.loads(text.decode('utf-8'))
  except UnicodeDecodeError:
    raise ValueError('%s is damaged (not UTF-8 text); %s' % (file, remedy(path))) from None
  except json.JSONDecodeError as e:
    raise ValueError('%s is truncated or damaged (not valid JSON: %s at line %d); %s' % (
        file, e.msg.lower(), e.lineno, remedy(path))) from None
  if not isinstance(info, dict):
    raise ValueError('%s is damaged (a JSON %s, not an object); %s' % (
        file, type(info).__name__, remedy(path)))
  if info.get('format') != FORMAT:
    raise ValueError('%s: not a %s directory (format %r)' % (path, FORMAT, info.get('format')))
  from mvae_tf import configs
  try:
    configs.get_config(info.get('config'))
  except (ValueError, TypeError) as e:
    raise ValueError('%s: %s' % (file, e)) from None
  from mvae_tf.model.weights import expected_shapes
  try:
    expected_shapes(info)
  except ValueError as e:
    raise ValueError('%s: %s; %s' % (file, e, remedy(path))) from None
  return info


# What np.load raises on a truncated or damaged .npz (a zip of .npy files).
_DAMAGED_NPZ = (zipfile.BadZipFile, zlib.error, EOFError, ValueError)


def read_weights(path, info=None):
  """{name: float32 array} of a pretrained directory.

  Raises ValueError, one line naming weights.npz, when it is truncated or
  damaged, lacks a weight or holds one of another shape than its config.json
  (`info`, read when not given) describes, or holds NaN or infinite values (a
  damaged model would otherwise generate silence or one repeated note).
  """
  file = os.path.join(path, WEIGHTS_FILE)
  try:
    data = np.load(file, allow_pickle=False)
    if not isinstance(data, np.lib.npyio.NpzFile):
      raise ValueError('one array, not an .npz of named weights')
    with data:
      weights = {name: data[name].astype(np.float32) for name in data.files}
  except _DAMAGED_NPZ as e:
    detail = str(e).split('\n')[0].split('. ')[0] or type(e).__name__
    raise ValueError('%s is truncated or damaged (%s); %s' % (
        file, detail, remedy(path))) from None
  from mvae_tf.model.weights import check_weights
  info = read_info(path) if info is None else info
  try:
    check_weights(weights, info, file)
  except ValueError as e:  # a missing weight (WeightError) or one of another shape
    raise ValueError('%s; %s' % (e, remedy(path))) from None
  for name, value in weights.items():
    if not np.isfinite(value).all():
      raise ValueError('%s: weight %s holds NaN or infinite values; the model is damaged: '
                       're-package it from its training run' % (file, name))
  return weights


def write_pretrained(output_dir, weights, info, dtype='float16', attributes=None):
  """Write weights.npz (as `dtype`), config.json and attributes.npz atomically.

  The files are written to a temporary directory beside `output_dir`, which
  then replaces it: a killed run leaves the previous model (or nothing).
  """
  dtype = np.dtype(dtype)
  arrays = {}
  for name, value in weights.items():
    value = np.asarray(value, np.float32)
    if dtype == np.float16 and np.abs(value).max(initial=0.0) > np.finfo(np.float16).max:
      raise ValueError('weight %s exceeds the float16 range; use dtype float32' % name)
    arrays[name] = value.astype(dtype)
  info = dict(info, format=FORMAT, weights_dtype=dtype.name,
              num_parameters=int(sum(v.size for v in arrays.values())))
  def fill(tmp):
    np.savez_compressed(os.path.join(tmp, WEIGHTS_FILE), **arrays)
    with open(os.path.join(tmp, INFO_FILE), 'w') as f:
      json.dump(info, f, indent=1, sort_keys=True)
    if attributes is not None:
      from mvae_tf.store.attribute_vectors import save_attribute_vectors
      save_attribute_vectors(os.path.join(tmp, ATTRIBUTES_FILE), *attributes)
  atomic.write_dir(output_dir, fill)
  return info


def decoding_info(config_name):
  """How a config's outputs become notes (mvae_tf.generation.render), without its converter.

  Imports the converters (and note_seq): call it when packaging, not when loading.
  """
  from mvae_tf import configs
  from mvae_tf.data import converters
  config = configs.get_config(config_name)
  converter = config.make_converter('eval')
  info = dict(kind=config.data.kind, steps_per_quarter=converter.steps_per_quarter,
              steps_per_bar=converter.steps_per_bar, qpm=converters.OUTPUT_QPM,
              velocity=converters.OUTPUT_VELOCITY, slice_steps=converter.slice_steps)
  melody = converter.melody_converter if config.data.kind == 'trio' else converter
  drums = converter.drums_converter if config.data.kind == 'trio' else converter
  if config.data.kind in ('melody', 'trio'):
    info.update(min_pitch=melody.min_pitch, num_special_events=melody.num_special_events)
  if config.data.kind in ('drums', 'trio'):
    info.update(drum_pitches=[c[0] for c in drums.pitch_classes])
  if config.data.kind == 'trio':
    info.update(bass_program=converters.OUTPUT_BASS_PROGRAM)
  return info


def model_info(model, **extra):
  """The config.json fields that describe a MusicVAE (and how to decode its outputs)."""
  info = dict(config=model.config_name, decoder_type=model.decoder_type,
              hparams=model.hparams.to_dict(), input_depth=model.input_depth,
              output_depths=list(model.output_depths), control_depth=model.control_depth,
              steps_per_bar=model.steps_per_bar, data=decoding_info(model.config_name))
  info.update(extra)
  return info


def keras_model(weights, info):
  """A MusicVAE (TensorFlow) with these weights, for the TF backend."""
  from mvae_tf.model.weights import assign_keras_weights
  from mvae_tf.model.vae import MusicVAE
  model = MusicVAE(info['hparams'], info['decoder_type'], info['input_depth'],
                   info['output_depths'], info.get('control_depth', 0),
                   info.get('steps_per_bar', 16), config_name=info['config'])
  assign_keras_weights(model, weights)
  return model
