"""Import a checkpoint of Magenta's TF1 MusicVAE into our model.

Layout of the reference (names under the TF1 scopes):
  encoder/cell_L/bidirectional_rnn/{fw,bw}/multi_rnn_cell/cell_0/lstm_cell/{kernel,bias}
  encoder/{mu,sigma}/{kernel,bias}
  flat:  decoder/multi_rnn_cell/cell_L/lstm_cell/*, decoder/z_to_initial_state/*,
         decoder/output_projection/*
  hier:  decoder/hierarchical_level_0/cell_L/lstm_cell/*, .../initial_state/*;
         core decoder as the flat one under core_decoder/ (trio:
         core_decoder/core_decoder_i/)
An LSTMBlockCell kernel is [input + units, 4 * units] over concat[x, h], gate
blocks i, j, f, o, with the forget bias 1.0 added at run time. Keras layout:
kernel rows for x, recurrent_kernel rows for h, blocks i, f, c(j), o, and the
1.0 stored in the bias.

Adam slots (`.../Adam`, `.../Adam_1`), `beta1_power`, `beta2_power` and
`global_step` are ignored; any other unknown or missing variable is an error
naming it.

The `mvae import-magenta` subcommand is mvae_tf/cli/import_magenta.py.
"""

import os
import re

import numpy as np

_IGNORED = re.compile(r'(^|/)(Adam(_\d+)?|beta[12]_power|global_step)$|/Adam(_\d+)?$')


class ImportError_(ValueError):
  """A checkpoint that does not fit the model (names the variables)."""


def _reorder(blocks):
  """Columns in blocks i, j, f, o -> i, f, j, o (Keras' i, f, c, o)."""
  i, j, f, o = np.split(blocks, 4, axis=-1)
  return np.concatenate([i, f, j, o], axis=-1)


def lstm_to_keras(kernel, bias, input_size):
  """A TF1 LSTMBlockCell (kernel, bias) -> Keras (kernel, recurrent_kernel, bias)."""
  kernel = _reorder(kernel)
  bias = _reorder(bias).copy()
  units = bias.shape[0] // 4
  bias[units:2 * units] += 1.0
  return kernel[:input_size], kernel[input_size:], bias


def _stack_targets(stack, prefixes):
  """(our LSTMStack, TF1 lstm_cell scope per layer) -> list of assignments."""
  out = []
  for layer, prefix in enumerate(prefixes):
    out.append(('lstm', stack, layer, prefix))
  return out


def _dense(kernel_var, bias_var, prefix):
  return [('dense', kernel_var, prefix + '/kernel'), ('dense', bias_var, prefix + '/bias')]


def _flat_decoder_targets(decoder, prefix):
  n = len(decoder.rnn_sizes)
  out = _stack_targets(decoder.cell, ['%s/multi_rnn_cell/cell_%d/lstm_cell' % (prefix, l)
                                      for l in range(n)])
  if decoder.z_size:
    out += _dense(decoder.initial_state_kernel, decoder.initial_state_bias,
                  prefix + '/z_to_initial_state')
  out += _dense(decoder.output_kernel, decoder.output_bias, prefix + '/output_projection')
  return out


def assignments(model):
  """Every (kind, target, ..., TF1 name) our model needs, in a fixed order."""
  enc = model.encoder
  out = []
  for i in range(len(enc.rnn_sizes)):
    for direction, layers in (('fw', enc.forward_layers), ('bw', enc.backward_layers)):
      out += _stack_targets(layers[i], [
          'encoder/cell_%d/bidirectional_rnn/%s/multi_rnn_cell/cell_0/lstm_cell'
          % (i, direction)])
  out += _dense(enc.mu_kernel, enc.mu_bias, 'encoder/mu')
  out += _dense(enc.sigma_kernel, enc.sigma_bias, 'encoder/sigma')
  dec = model.decoder
  if model.decoder_type == 'flat':
    out += _flat_decoder_targets(dec, 'decoder')
  else:
    out += _stack_targets(dec.conductor, [
        'decoder/hierarchical_level_0/cell_%d/lstm_cell' % l for l in range(len(dec.rnn_sizes))])
    out += _dense(dec.conductor_initial_kernel, dec.conductor_initial_bias,
                  'decoder/hierarchical_level_0/initial_state')
    if len(dec.core_decoders) == 1:
      out += _flat_decoder_targets(dec.core_decoders[0], 'core_decoder/decoder')
    else:
      for i, core in enumerate(dec.core_decoders):
        out += _flat_decoder_targets(core, 'core_decoder/core_decoder_%d/decoder' % i)
  return out


def resolve_checkpoint(path):
  """A checkpoint prefix from a directory (its `checkpoint` file) or a prefix."""
  import tensorflow as tf
  if os.path.isdir(path):
    prefix = tf.train.latest_checkpoint(path)
    if prefix is None:
      raise ImportError_('%s: no checkpoint in this directory (expected a `checkpoint` file '
                         'or model.ckpt.index)' % path)
    return prefix
  if not os.path.exists(path + '.index'):
    raise ImportError_('%s: not a checkpoint (no %s.index)' % (path, path))
  return path


_ENC_BIAS = 'encoder/cell_%d/bidirectional_rnn/fw/multi_rnn_cell/cell_0/lstm_cell/bias'
_ENC_KERNEL = 'encoder/cell_0/bidirectional_rnn/fw/multi_rnn_cell/cell_0/lstm_cell/kernel'
_FLAT_BIAS = 'decoder/multi_rnn_cell/cell_%d/lstm_cell/bias'
_CONDUCTOR_BIAS = 'decoder/hierarchical_level_0/cell_%d/lstm_cell/bias'
_SIZE_KEYS = ('enc_rnn_size', 'dec_rnn_size', 'z_size', 'conditional')


def _layer_sizes(shapes, bias_name):
  """Units of each LSTM layer `bias_name % L` (bias [4 * units]) in a checkpoint."""
  sizes = []
  while bias_name % len(sizes) in shapes and len(shapes[bias_name % len(sizes)]) == 1:
    sizes.append(int(shapes[bias_name % len(sizes)][0]) // 4)
  return sizes


def checkpoint_sizes(shapes):
  """What a Magenta checkpoint's variable shapes say of the model that wrote it.

  {'decoder': 'flat' or 'hierarchical' (or None), 'enc_rnn_size', 'dec_rnn_size',
  'z_size', 'conditional', 'input_depth'}; a value is None when the checkpoint
  does not say (a variable missing).
  """
  hierarchical = _CONDUCTOR_BIAS % 0 in shapes
  flat = _FLAT_BIAS % 0 in shapes
  enc = _layer_sizes(shapes, _ENC_BIAS)
  dec = _layer_sizes(shapes, _CONDUCTOR_BIAS if hierarchical else _FLAT_BIAS)
  mu = shapes.get('encoder/mu/bias')
  kernel = shapes.get(_ENC_KERNEL)
  return {
      'decoder': 'hierarchical' if hierarchical else 'flat' if flat else None,
      'enc_rnn_size': enc or None,
      'dec_rnn_size': dec or None,
      'z_size': int(mu[0]) if mu is not None and len(mu) == 1 else None,
      'conditional': ('decoder/z_to_initial_state/kernel' in shapes) if flat and not
                     hierarchical else True,
      'input_depth': int(kernel[0]) - enc[0] if enc and kernel is not None else None,
  }


def _format_hparam(value):
  if isinstance(value, bool):
    return str(value).lower()
  if isinstance(value, (list, tuple)):
    return '[%s]' % ','.join(str(v) for v in value)
  return str(value)


def _advice(model, sizes, hparams_overrides):
  """One clause saying which --config or --hparams fit the checkpoint's `sizes`."""
  if sizes['decoder'] and sizes['decoder'] != model.decoder_type:
    return 'its decoder is %s: give a %s config' % (
        sizes['decoder'], 'hierdec-' if sizes['decoder'] == 'hierarchical' else 'flat (cat-)')
  depth = model.input_depth + model.control_depth
  if sizes['input_depth'] is not None and sizes['input_depth'] != depth:
    return ('its inputs have depth %d, not %d: give the --config it was trained with' % (
        sizes['input_depth'], depth))
  hp = model.hparams
  found = {k: sizes[k] for k in _SIZE_KEYS if sizes[k] is not None}
  ours = {'enc_rnn_size': list(hp.enc_rnn_size), 'dec_rnn_size': list(hp.dec_rnn_size),
          'z_size': hp.z_size, 'conditional': hp.conditional}
  if all(found[k] == ours[k] for k in found):
    return 'check --config and --hparams (the layer sizes agree)'
  from mvae_tf.hparams import _split_overrides
  try:
    kept = [(k, v) for k, v in _split_overrides(hparams_overrides or '') if k not in _SIZE_KEYS]
  except ValueError:
    kept = []
  for key in _SIZE_KEYS:
    if key in found and (key != 'conditional' or found[key] != ours[key]):
      kept.append((key, _format_hparam(found[key])))
  return "pass --hparams '%s'" % ','.join('%s=%s' % kv for kv in kept)


def _damaged(prefix, error):
  return ImportError_('%s does not read (%s): the checkpoint is truncated or damaged; copy it '
                      'again' % (prefix, str(error).split('\n')[0][:80]))


def _tensor(reader, prefix, name):
  import tensorflow as tf
  try:
    return reader.get_tensor(name)
  except (tf.errors.OpError, IndexError) as e:  # a .data file cut short ("Read less bytes
    # than requested") or overwritten (DataLossError)
    raise _damaged(prefix, e) from None


def _names(names, limit=1):
  more = len(names) - limit
  return ', '.join(names[:limit]) + (' and %d more' % more if more > 0 else '')


def load_magenta_checkpoint(model, checkpoint, hparams_overrides=''):
  """Assign a Magenta TF1 checkpoint's weights to `model` (a MusicVAE).

  Returns the checkpoint's global_step (or None). Raises ImportError_, one
  line naming the first missing, unknown or mis-shaped variables and the
  --hparams (read from the checkpoint's shapes, with `hparams_overrides`'
  other keys) or --config that fit it.
  """
  import tensorflow as tf
  prefix = resolve_checkpoint(checkpoint)
  try:
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
  except (tf.errors.OpError, ValueError) as e:
    raise _damaged(prefix, e) from None
  model_names = {k for k in shapes if not _IGNORED.search(k)}
  plan = assignments(model)
  needed = set()
  for item in plan:
    if item[0] == 'lstm':
      needed |= {item[3] + '/kernel', item[3] + '/bias'}
    else:
      needed.add(item[2])
  missing = sorted(needed - model_names)
  unknown = sorted(model_names - needed)
  problems = []
  if missing:
    problems.append((None, 'missing from the checkpoint: %s' % _names(missing)))
  if unknown:
    problems.append((None, 'extra in the checkpoint: %s' % _names(unknown)))
  values = []
  if not problems:
    for item in plan:
      if item[0] == 'lstm':
        _, stack, layer, scope = item
        kernel = _tensor(reader, prefix, scope + '/kernel')
        bias = _tensor(reader, prefix, scope + '/bias')
        in_size = stack.kernels[layer].shape[0]
        want = (in_size + stack.units[layer], 4 * stack.units[layer])
        if kernel.shape != want or bias.shape != (want[1],):
          problems.append((scope + '/kernel', '%s/kernel has shape %s, the model needs %s' % (
              scope, list(kernel.shape), list(want))))
          continue
        k, rk, b = lstm_to_keras(kernel, bias, in_size)
        values += [(stack.kernels[layer], k), (stack.recurrent_kernels[layer], rk),
                   (stack.biases[layer], b)]
      else:
        _, var, name = item
        value = _tensor(reader, prefix, name)
        if tuple(value.shape) != tuple(var.shape):
          problems.append((name, '%s has shape %s, the model needs %s' % (
              name, list(value.shape), list(var.shape))))
          continue
        values.append((var, value))
  if problems:
    sizes = checkpoint_sizes(shapes)
    if sizes['decoder'] not in (None, model.decoder_type):
      shown = [text for _, text in problems[:1]]  # the advice says it all
    elif missing or unknown:
      shown = [text for _, text in problems]
    else:  # one example, a short name (a kernel shows both sizes), and a count
      example = min(problems, key=lambda p: (not p[0].endswith('kernel'), len(p[0])))[1]
      shown = [example] + (['%d more' % (len(problems) - 1)] if len(problems) > 1 else [])
    raise ImportError_('%s does not fit config %s (%s): %s' % (
        checkpoint, model.config_name, '; '.join(shown),
        _advice(model, sizes, hparams_overrides)))
  for var, value in values:
    var.assign(value.astype(np.float32))
  step = _tensor(reader, prefix, 'global_step') if 'global_step' in shapes else None
  return None if step is None else int(step)


def import_magenta(config_name, checkpoint, output_dir, hparams_overrides=''):
  """Build config `config_name` (+ overrides), load `checkpoint`, save to `output_dir`.

  Writes output_dir/weights.npz and output_dir/config.json atomically (save_model).
  Returns the model.
  """
  from mvae_tf.store.resolve import save_model
  from mvae_tf.model.vae import MusicVAE
  model = MusicVAE.from_config_name(config_name, hparams_overrides)
  step = load_magenta_checkpoint(model, checkpoint, hparams_overrides)
  save_model(model, output_dir, extra={'imported_from': os.path.abspath(checkpoint),
                                       'global_step': step, 'step': step})
  return model
