"""A saved model for inference on tensors: `TrainedModel.load(path)`.

Our format is a directory holding `model.keras` (the Keras 3 archive: config
and weights) and `config.json` (config name, hparams and where the weights
came from). `TrainedModel.load` takes the directory or the .keras file.
"""

import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf
import keras

from mvae_tf.model.decoders import indices_to_onehot
from mvae_tf.model.vae import MusicVAE

MODEL_FILE = 'model.keras'


def save_model(model, output_dir, extra=None):
  """Write output_dir/model.keras and config.json atomically (temp dir, then rename)."""
  output_dir = os.path.abspath(output_dir)
  parent = os.path.dirname(output_dir)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix='.tmp-', dir=parent)
  try:
    model.save(os.path.join(tmp, MODEL_FILE))
    info = dict(config=model.config_name, decoder_type=model.decoder_type,
                hparams=model.hparams.to_dict(), input_depth=model.input_depth,
                output_depths=model.output_depths, control_depth=model.control_depth)
    info.update(extra or {})
    with open(os.path.join(tmp, 'config.json'), 'w') as f:
      json.dump(info, f, indent=1)
    if os.path.isdir(output_dir):
      old = output_dir + '.old-%d' % os.getpid()
      os.rename(output_dir, old)
      os.rename(tmp, output_dir)
      shutil.rmtree(old)
    else:
      os.rename(tmp, output_dir)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def load_model(path):
  """A MusicVAE from a directory written by save_model or a .keras file."""
  if os.path.isdir(path):
    path = os.path.join(path, MODEL_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError('%s: no such model (expected a directory with %s or a .keras '
                            'file)' % (path, MODEL_FILE))
  return keras.saving.load_model(path, custom_objects={'MusicVAE': MusicVAE}, compile=False)


class TrainedModel:
  """Inference on tensors with a trained MusicVAE.

  Arrays in, numpy arrays out; batches of any size. Controls are needed only
  by chord-conditioned models.
  """

  def __init__(self, model):
    self.model = model
    self._encode = tf.function(self._encode_fn, reduce_retracing=True)
    self._teacher = tf.function(self._teacher_fn, reduce_retracing=True)
    self._decoders = {}

  @classmethod
  def load(cls, path):
    return cls(load_model(path))

  @property
  def hparams(self):
    return self.model.hparams

  def _encode_fn(self, inputs, lengths, controls, seed):
    mu, sigma = self.model.encode(inputs, lengths, controls)
    z = mu + sigma * tf.random.stateless_normal(tf.shape(mu), seed)
    return z, mu, sigma

  def _teacher_fn(self, targets, z, controls):
    return self.model.teacher_forced_logits(targets, z, controls)

  def _controls(self, controls, n, length):
    if not self.model.control_depth:
      return None
    if controls is None:
      raise ValueError('model %s needs controls [N, T, %d]' % (
          self.model.config_name, self.model.control_depth))
    return tf.convert_to_tensor(np.asarray(controls, np.float32))

  def encode_tensors(self, inputs, lengths, controls=None, seed=None):
    """(z, mu, sigma), each [N, z_size]; z is drawn from q(z|x)."""
    inputs = np.asarray(inputs, np.float32)
    seed = np.random.randint(0, 2**31 - 1, 2) if seed is None else [seed, 0]
    z, mu, sigma = self._encode(tf.constant(inputs), tf.constant(np.asarray(lengths, np.int32)),
                                self._controls(controls, *inputs.shape[:2]),
                                tf.constant(seed, tf.int32))
    return z.numpy(), mu.numpy(), sigma.numpy()

  def teacher_forced_logits(self, targets, lengths, z, controls=None):
    """Logits [N, T, D] with the decoder fed the previous targets (the converter's outputs).

    Steps at t >= lengths[i] are computed but not meaningful.
    """
    del lengths  # causal: steps before a length do not depend on later ones
    targets = np.asarray(targets, np.float32)
    return self._teacher(tf.constant(targets), tf.constant(np.asarray(z, np.float32)),
                         self._controls(controls, *targets.shape[:2])).numpy()

  def _decode(self, z, length, temperature, seed, controls):
    key = (int(length), float(temperature))
    if key not in self._decoders:
      model = self.model

      def fn(z, seed, controls):
        return model.sample(z, int(length), float(temperature), seed, controls)
      self._decoders[key] = tf.function(fn, reduce_retracing=True)
    seed = np.random.randint(0, 2**31 - 1, 2) if seed is None else [seed, 0]
    z = np.asarray(z, np.float32)
    indices, logits = self._decoders[key](
        tf.constant(z), tf.constant(seed, tf.int32), self._controls(controls, len(z), length))
    return indices, logits

  def decode_tensors(self, z, length, temperature=0.0, seed=None, controls=None):
    """Free-running decode: one-hot samples [N, length, D] bool (like the converter's outputs).

    temperature 0.0 means argmax; else softmax(logits / temperature) with `seed` (int).
    """
    indices, _ = self._decode(z, length, temperature, seed, controls)
    return indices_to_onehot(indices, self.model.output_depths).numpy().astype(bool)

  def decode_indices(self, z, length, temperature=0.0, seed=None, controls=None):
    """Like decode_tensors, as class indices [N, length, P] plus the logits [N, length, D]."""
    indices, logits = self._decode(z, length, temperature, seed, controls)
    return indices.numpy(), logits.numpy()
