"""Tiny models shared by tests/test_backends.py and tests/test_generate.py.

`trained_keras_model()`: a tiny 2-bar melody model trained for a few hundred
steps (built once per test process, about 15 s once TensorFlow is imported)
on one pitch (C4 or G4) played every k steps (k in 1, 2, 4, 8: note density
1 to 1/8), so that z carries the density and the pitch.
`random_model(name)`: a model whose weights are all N(0, scale).
"""

import functools

import numpy as np

CONFIG = 'tiny-mel_2bar'
# One wider decoder layer: the config's two layers of 16 stall for hundreds of steps.
HPARAMS = ('learning_rate=0.005,max_beta=0.01,beta_rate=0.0,sampling_schedule=constant,'
           'sampling_rate=0.0,enc_rnn_size=[32],dec_rnn_size=[64]')
STEPS = 400


def density_batch(rng, n):
  """(one-hot [n, 32, 90] float32, class indices [n, 32]) of the synthetic melodies:
  a note every k steps (k in 1, 2, 4, 8), all at one pitch, C4 or G4."""
  k = rng.choice([1, 2, 4, 8], n)
  pitch = rng.choice([60, 67], n)
  t = np.arange(32)
  indices = np.where(t[None] % k[:, None] == 0, pitch[:, None] - 21 + 2, 0)
  return np.eye(90, dtype=np.float32)[indices], indices


@functools.lru_cache(maxsize=None)
def trained_keras_model():
  """The trained MusicVAE (Keras)."""
  import tensorflow as tf
  from mvae_tf.model import vae as vae_lib
  import keras
  keras.utils.set_random_seed(0)
  model = vae_lib.MusicVAE.from_config_name(CONFIG, HPARAMS)
  optimizer = vae_lib.make_optimizer(model.hparams, model)
  step = tf.function(lambda batch, s: vae_lib.train_step(model, optimizer, batch, s))
  rng = np.random.default_rng(0)
  for s in range(STEPS):
    onehot, _ = density_batch(rng, 32)
    step((onehot, onehot, np.zeros((32, 32, 0), np.float32), np.full(32, 32, np.int32)),
         tf.constant(s))
  return model


def save_legacy_keras(model, output_dir):
  """A model directory as save_model wrote it before the one format (model.keras +
  config.json): such directories still load, and their damage is still reported."""
  import json
  import os
  os.makedirs(output_dir)
  model.save(os.path.join(output_dir, 'model.keras'))
  info = dict(config=model.config_name, decoder_type=model.decoder_type,
              hparams=model.hparams.to_dict(), input_depth=model.input_depth,
              output_depths=model.output_depths, control_depth=model.control_depth)
  with open(os.path.join(output_dir, 'config.json'), 'w') as f:
    json.dump(info, f, indent=1)


def random_model(name, overrides='', seed=0, scale=0.3):
  """A model of config `name` with every weight N(0, scale): nothing near zero or tied."""
  from mvae_tf.model.vae import MusicVAE
  from mvae_tf.model.weights import named_weights
  model = MusicVAE.from_config_name(name, overrides)
  rng = np.random.default_rng(seed)
  for _, v in named_weights(model):
    v.assign(rng.normal(0, scale, v.shape).astype(np.float32))
  return model


def trained_model(backend='tf'):
  from mvae_tf.generation.trained_model import TrainedModel
  return TrainedModel(trained_keras_model(), backend=backend)
