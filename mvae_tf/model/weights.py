"""A MusicVAE's weights by name: the layout packaged models (mvae_tf.pretrained) and
checkpoints (mvae_tf.training.runs) share, and the shapes a model's config.json implies.

Weights are named by their path in the Keras layer tree: 'encoder/fw_0/kernel_0',
'encoder/mu_kernel', 'decoder/lstm/bias_1', 'decoder/core_decoder_0/output_kernel',
... Layout (Keras LSTMCell): per layer `kernel_L` [input, 4u], `recurrent_kernel_L`
[u, 4u] and `bias_L` [4u], gate blocks in the order i, f, c, o.
"""

import numpy as np


def named_weights(layer, prefix=''):
  """(layer path/weight name, variable) of a Keras layer and its sublayers, depth first.

  The one naming of weights: checkpoints (mvae_tf.training.runs) store each variable
  under this name and packaged models (weights_from_keras) key their arrays by it.
  """
  for v in layer._trainable_variables + layer._non_trainable_variables:
    yield prefix + v.name, v
  for sub in layer._flatten_layers(include_self=False, recursive=False):
    yield from named_weights(sub, prefix + sub.name + '/')


class WeightError(KeyError, ValueError):
  """A weight missing from a model's weights (a KeyError, and a ValueError for callers
  that catch those; str() is the message, not its repr)."""

  def __str__(self):
    return str(self.args[0]) if self.args else ''


def _sizes(value, field):
  """[int, ...] of an hparam that is a list of sizes (or a single size)."""
  try:
    sizes = [int(u) for u in (value if isinstance(value, (list, tuple)) else [value])]
  except (TypeError, ValueError):
    raise ValueError('hparam %s is %r, not a list of sizes' % (field, value)) from None
  if not sizes or min(sizes) < 1:
    raise ValueError('hparam %s is %r, not a list of positive sizes' % (field, value))
  return sizes


def _lstm_shapes(prefix, input_size, sizes):
  out = {}
  for i, u in enumerate(sizes):
    out.update({prefix + 'kernel_%d' % i: (input_size, 4 * u),
                prefix + 'recurrent_kernel_%d' % i: (u, 4 * u),
                prefix + 'bias_%d' % i: (4 * u,)})
    input_size = u
  return out


def _flat_shapes(prefix, output_depth, sizes, z_size, control_depth):
  out = _lstm_shapes(prefix + 'lstm/', output_depth + z_size + control_depth, sizes)
  if z_size:
    out.update({prefix + 'initial_state_kernel': (z_size, 2 * sum(sizes)),
                prefix + 'initial_state_bias': (2 * sum(sizes),)})
  out.update({prefix + 'output_kernel': (sizes[-1], output_depth),
              prefix + 'output_bias': (output_depth,)})
  return out


def expected_shapes(info):
  """{weight name: shape} of the model `info` (config.json fields) describes.

  The names and shapes mvae_tf.model builds (and weights_from_keras gives);
  ValueError naming the field when `info` lacks one or holds a bad value.
  """
  try:
    hp = info['hparams']
    z_size = int(hp['z_size'])
    enc, dec = _sizes(hp['enc_rnn_size'], 'enc_rnn_size'), _sizes(hp['dec_rnn_size'],
                                                                   'dec_rnn_size')
    conditional = hp.get('conditional', True)
    decoder_type = info['decoder_type']
    input_depth = int(info['input_depth'])
    output_depths = [int(d) for d in info['output_depths']]
    control_depth = int(info.get('control_depth') or 0)
  except KeyError as e:
    raise ValueError('the model info has no field %s' % e) from None
  except (TypeError, ValueError) as e:
    raise ValueError('the model info has a bad value (%s)' % e) from None
  shapes, size = {}, input_depth + control_depth
  for i, u in enumerate(enc):
    shapes.update(_lstm_shapes('encoder/fw_%d/' % i, size, [u]))
    shapes.update(_lstm_shapes('encoder/bw_%d/' % i, size, [u]))
    size = 2 * u
  shapes.update({'encoder/mu_kernel': (size, z_size), 'encoder/mu_bias': (z_size,),
                 'encoder/sigma_kernel': (size, z_size), 'encoder/sigma_bias': (z_size,)})
  if decoder_type == 'flat':
    shapes.update(_flat_shapes('decoder/', sum(output_depths), dec,
                               z_size if conditional else 0, control_depth))
  elif decoder_type == 'hierarchical':
    shapes.update(_lstm_shapes('decoder/conductor/', 1, dec))
    shapes.update({'decoder/conductor_initial_kernel': (z_size, 2 * sum(dec)),
                   'decoder/conductor_initial_bias': (2 * sum(dec),)})
    for i, depth in enumerate(output_depths):
      shapes.update(_flat_shapes('decoder/core_decoder_%d/' % i, depth, dec, dec[-1],
                                 control_depth))
  else:
    raise ValueError('unknown decoder_type %r' % (decoder_type,))
  return shapes


def check_weights(weights, info, source='weights'):
  """Raise naming the weight when `weights` do not fit the model `info` describes.

  WeightError (a KeyError and a ValueError) for a missing weight, ValueError
  for a weight of another shape (both shapes) or one the model does not use.
  `source` starts each message (e.g. the file they came from).
  """
  shapes = expected_shapes(info)
  missing = [name for name in shapes if name not in weights]
  if missing:
    raise WeightError('%s: weight %s is missing%s' % (
        source, missing[0], ' (and %d more)' % (len(missing) - 1) if len(missing) > 1 else ''))
  for name, shape in shapes.items():
    have = tuple(np.shape(weights[name]))
    if have != shape:
      raise ValueError('%s: weight %s: shape %s, model has %s' % (source, name, have, shape))
  unused = sorted(set(weights) - set(shapes))
  if unused:
    raise ValueError('%s: weights not used by a %s model: %s' % (
        source, info['decoder_type'], ', '.join(unused[:8])))


def weights_from_keras(model):
  """{layer path/weight name: float32 array} of a mvae_tf MusicVAE (imports TensorFlow)."""
  weights = {name: np.asarray(v.numpy(), np.float32) for name, v in named_weights(model)}
  if len(weights) != len(model.weights):
    raise ValueError('cannot name every weight of %s' % model.name)
  return weights


def assign_keras_weights(model, weights):
  """Set a MusicVAE's weights from a dict named as weights_from_keras names them."""
  named = dict(named_weights(model))
  missing, extra = sorted(set(named) - set(weights)), sorted(set(weights) - set(named))
  if missing or extra:
    raise ValueError('weights do not match model %s: missing %s, unexpected %s' % (
        model.name, missing[:5], extra[:5]))
  for name, variable in named.items():
    if tuple(variable.shape) != weights[name].shape:
      raise ValueError('weight %s: shape %s, model has %s' % (
          name, weights[name].shape, tuple(variable.shape)))
    variable.assign(np.asarray(weights[name], np.float32))
