"""TFLite conversion of the device graphs, in four numeric forms.

  none     float32 weights and arithmetic
  float16  float16 weights, dequantized at load (tflite-runtime 2.14 runs it)
  dynamic  dynamic-range int8: int8 weights, float activations (op versions
           that tflite-runtime 2.14 rejects: FULLY_CONNECTED v12)
  int8     full integer: int8 weights and activations, calibrated on a
           representative set; the step graphs, and for flat models short
           enough to unroll (2-bar) a decode whose steps are unrolled: int8
           calibration of a WHILE loop crashes the converter, and the Edge TPU
           takes no WHILE

The graphs come from a SavedModel of the device signatures (decode, encode
and the step graphs, all of one static batch size: TFLite lowers a loop's
TensorArray only with a static element shape), written by
`InferenceGraphs.write_saved_model` through keras.export.ExportArchive.
"""

import numpy as np
import tensorflow as tf

from edge_demo import runtime
from mvae_tf.export.graphs import InferenceGraphs, uniform_noise

QUANTIZATIONS = ('none', 'float16', 'dynamic', 'int8')
# Which graph forms each quantization can take.
WHOLE_GRAPHS = ('decode', 'encode')


class ConversionError(RuntimeError):
  """The TFLite converter refused a graph (the message names it and the quantization)."""


def signatures_for(graphs, quantize):
  """The signatures a file of this quantization holds."""
  if quantize == 'int8':
    return (['decode'] if graphs.can_unroll else []) + graphs.step_names()
  return graphs.names()


def convert(saved_model_dir, signatures, quantize, representative=None, loops=WHOLE_GRAPHS):
  """The .tflite bytes of `signatures` of a SavedModel, quantized as asked.

  `loops`: the signatures that hold a WHILE loop in this SavedModel (int8 refuses them).
  """
  if quantize not in QUANTIZATIONS:
    raise ValueError('quantization %r: use one of %s' % (quantize, ', '.join(QUANTIZATIONS)))
  if quantize == 'int8':
    whole = [s for s in signatures if s in loops]
    if whole:
      raise ConversionError(
          'full int8 applies to graphs without a loop only, not to %s (a WHILE loop: int8 '
          'calibration of a loop crashes the converter); use float16 or dynamic for them, '
          'or the step graphs (initial_state, step) for int8' % ', '.join(whole))
    if representative is None:
      raise ValueError('int8 needs a representative dataset')
  converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir,
                                                       signature_keys=list(signatures))
  if quantize != 'none':
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  if quantize == 'float16':
    converter.target_spec.supported_types = [tf.float16]
  if quantize == 'int8':
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
  from mvae_tf import quiet
  try:
    with quiet.silenced((1, 2)):  # the converter's C++ prints its settings on stdout
      return converter.convert()
  except Exception as e:  # the converter raises ConverterError and plain exceptions alike
    first = next((line for line in str(e).splitlines() if 'error' in line.lower()),
                 str(e).split('\n')[0])
    raise ConversionError('TFLite conversion (%s) of %s failed: %s' % (
        quantize, ', '.join(signatures), first[:300])) from e


# Op versions the legacy tflite-runtime 2.14 (many Raspberry Pi images) rejects, seen
# with TF 2.21's converter (benchmarks/legacy_runtime_check.py, BUILD_NOTES.md):
# dynamic-range FULLY_CONNECTED v12 and int8 LOG v2.
LEGACY_2_14_REJECTS = {'FULLY_CONNECTED': 12, 'LOG': 2}


def operator_versions(model_bytes):
  """{operator name: highest version} of a .tflite flatbuffer."""
  from tensorflow.lite.python import schema_py_generated as schema
  from tensorflow.lite.tools import flatbuffer_utils
  model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
  names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith('_')}
  out = {}
  for code in model.operatorCodes:
    name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), 'CUSTOM')
    out[name] = max(out.get(name, 0), int(code.version))
  return dict(sorted(out.items()))


def legacy_runtime_ok(versions):
  """Whether tflite-runtime 2.14 loads a file with these operator versions (as far as known)."""
  return not any(versions.get(op, 0) >= v for op, v in LEGACY_2_14_REJECTS.items())


def step_records(graphs, z, temperature=1.0, seed=0):
  """{signature: [input dicts]} of the step graphs along free-running decodes from z.

  The inputs each step graph sees when a device decodes z (the representative
  set for int8 calibration, and the inputs of the per-step parity check).
  Runs the Keras layers eagerly, one batch row per record.
  """
  z = np.asarray(z, np.float32)
  n = len(z)
  noise = uniform_noise(n, graphs.num_steps, graphs.output_depth, seed)
  temp = np.full([n], temperature, np.float32)
  tokens = graphs.decode(tf.constant(z), tf.constant(temp), tf.constant(noise))['tokens'].numpy()
  onehot = runtime.onehot(tokens, graphs.depths)  # [n, T, D]
  previous = np.concatenate([np.zeros_like(onehot[:, :1]), onehot[:, :-1]], 1)
  records = {name: [] for name in graphs.step_names()}

  def add(name, **inputs):
    for i in range(n):
      records[name].append({k: v[i:i + 1].astype(np.float32) for k, v in inputs.items()})

  records['decode'] = [dict(z=z[i:i + 1], temperature=np.float32([(0.0, 0.5, 1.0)[i % 3]]),
                            noise=noise[i:i + 1]) for i in range(n)]

  def states(out):
    return [out['state_%d' % i] for i in range(len(graphs.state_sizes))]

  def numbered(state):
    return {'state_%d' % i: s.numpy() for i, s in enumerate(state)}

  if graphs.hierarchical:
    emb = graphs.conductor(tf.constant(z))['embeddings'].numpy()
    add('conductor', z=z)
    spb = graphs.steps_per_bar
    for b in range(graphs.num_bars):
      e = emb[:, b]
      add('bar_initial_state', embedding=e)
      state = states(graphs.bar_initial_state(tf.constant(e)))
      for t in range(b * spb, (b + 1) * spb):
        add('step', token=previous[:, t], embedding=e, **numbered(state))
        state = states(graphs.step(tf.constant(previous[:, t]), tf.constant(e), *state))
  else:
    add('initial_state', z=z)
    state = states(graphs.initial_state(tf.constant(z)))
    for t in range(graphs.num_steps):
      add('step', token=previous[:, t], z=z, **numbered(state))
      state = states(graphs.step(tf.constant(previous[:, t]), tf.constant(z), *state))
  return records


def representative_dataset(records, batch_size, max_per_signature=300, seed=0):
  """A converter representative_dataset over step records: (signature, inputs) samples."""
  rng = np.random.default_rng(seed)

  def gen():
    for name, rows in records.items():
      take = rng.permutation(len(rows))[:max_per_signature * batch_size]
      for start in range(0, len(take) - batch_size + 1, batch_size):
        chunk = [rows[i] for i in take[start:start + batch_size]]
        yield name, {k: np.concatenate([r[k] for r in chunk]) for k in chunk[0]}
  return gen


def calibration_latents(graphs, n=64, mus=None, seed=0):
  """z for calibration: draws of the prior, plus encoded real windows' mu if given."""
  z = np.random.default_rng(seed).standard_normal((n, graphs.z_size)).astype(np.float32)
  if mus is not None and len(mus):
    z = np.concatenate([np.asarray(mus, np.float32), z])
  return z


__all__ = ['InferenceGraphs', 'QUANTIZATIONS', 'ConversionError', 'convert',
           'step_records', 'representative_dataset']
