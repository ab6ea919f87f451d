"""`export_model`: a SavedModel for TF Serving and TFLite files for devices, checked.

Layout of an export directory (written to a temporary directory beside it,
then renamed: a failed export leaves nothing under the output name):

  DIR/saved_model/1/                 the SavedModel (TF Serving's numbered version folder):
                                     serving_default = decode, sample, encode
  DIR/saved_model/metadata.json
  DIR/tflite/float32/model.tflite    decode, encode and the step graphs, float32
  DIR/tflite/float16/model.tflite    the same, float16 weights
  DIR/tflite/dynamic/model.tflite    the same, dynamic-range int8
  DIR/tflite/int8/model.tflite       the step graphs only, full int8
  DIR/tflite/*/metadata.json         beside each file (the same JSON is packed inside it)
  DIR/export.json                    the summary: every artefact with its parity figures

Parity is measured on every artefact before it is written: the SavedModel's
signatures and each .tflite file (run with LiteRT) against the Keras model on
the same z, temperatures and noise.
"""

import json
import os
import shutil
import tempfile
import time

import numpy as np

import mvae_tf
from mvae_tf import atomic
from mvae_tf.export import metadata as metadata_lib

FORMATS = ('saved_model', 'tflite')
QUANTIZE_DIRS = {'none': 'float32', 'float16': 'float16', 'dynamic': 'dynamic', 'int8': 'int8'}
SERVING_VERSION = '1'


class ExportError(ValueError):
  """An export that cannot be done as asked (the message names the input and what to do)."""


def _parity_inputs(graphs, n, seed):
  rng = np.random.default_rng(seed)
  z = rng.standard_normal((n, graphs.z_size)).astype(np.float32)
  temperature = np.array([0.0, 0.5, 1.0, 1.5][:n] + [1.0] * max(0, n - 4), np.float32)
  noise = rng.uniform(1e-6, 1.0, (n, graphs.num_steps, graphs.output_depth)).astype(np.float32)
  inputs = np.zeros((n, graphs.num_steps, graphs.input_depth), np.float32)
  inputs[np.arange(n)[:, None], np.arange(graphs.num_steps)[None],
         rng.integers(0, graphs.input_depth, (n, graphs.num_steps))] = 1.0
  lengths = np.full([n], graphs.num_steps, np.int32)
  lengths[-1] = max(1, graphs.num_steps - 7)  # one shorter sequence: the length mask
  return dict(z=z, temperature=temperature, noise=noise, inputs=inputs, lengths=lengths)


def keras_reference(graphs, parity):
  """The Keras model's own outputs on the parity inputs (eager, no export involved)."""
  import tensorflow as tf
  model = graphs.model
  p = parity
  out = graphs.decode(tf.constant(p['z']), tf.constant(p['temperature']),
                      tf.constant(p['noise']))
  greedy, _ = model.sample(tf.constant(p['z']), graphs.num_steps, 0.0)
  mu, sigma = model.encode(tf.constant(p['inputs']), tf.constant(p['lengths']))
  return dict(tokens=out['tokens'].numpy(), logits=out['logits'].numpy(),
              greedy=greedy.numpy(), mu=mu.numpy(), sigma=sigma.numpy())


def _compare(tokens, logits, ref):
  return dict(tokens_agree=float(np.mean(tokens == ref['tokens'])),
              logits_max_abs=float(np.max(np.abs(logits - ref['logits']))))


def check_saved_model(path, graphs, parity, ref):
  """Parity of a SavedModel's signatures (loaded back) with the Keras model."""
  import tensorflow as tf
  loaded = tf.saved_model.load(path)
  p = parity
  dec = loaded.signatures['decode'](z=tf.constant(p['z']),
                                    temperature=tf.constant(p['temperature']),
                                    noise=tf.constant(p['noise']))
  default = loaded.signatures['serving_default'](
      z=tf.constant(p['z']), temperature=tf.constant(p['temperature']),
      noise=tf.constant(p['noise']))
  enc = loaded.signatures['encode'](inputs=tf.constant(p['inputs']),
                                    lengths=tf.constant(p['lengths']))
  sample = loaded.signatures['sample'](seed=tf.constant([1, 2], tf.int32),
                                       temperature=tf.constant(p['temperature']))
  result = _compare(dec['tokens'].numpy(), dec['logits'].numpy(), ref)
  result.update(
      serving_default_same=bool(np.array_equal(default['tokens'].numpy(),
                                               dec['tokens'].numpy())),
      mu_max_abs=float(np.max(np.abs(enc['mu'].numpy() - ref['mu']))),
      sigma_max_abs=float(np.max(np.abs(enc['sigma'].numpy() - ref['sigma']))),
      sample_tokens_shape=list(sample['tokens'].shape))
  return result


def check_tflite(path, graphs, parity, ref, quantize, step_reference=None):
  """Parity of a .tflite file run with LiteRT: whole-sequence, step-by-step and encode."""
  from edge_demo.runtime import TFLiteModel
  model = TFLiteModel(path)
  p = parity
  result = dict(runtime='%s %s' % (model.runtime, model.runtime_version))
  if 'decode' in model.signatures:
    tokens, logits = model.decode(p['z'], p['temperature'], p['noise'])
    result.update(_compare(tokens, logits, ref))
    greedy, _ = model.decode(p['z'], 0.0, p['noise'])
    result['greedy_agree'] = float(np.mean(greedy == ref['greedy']))
  if 'step' in model.signatures:
    tokens, logits = model.decode_steps(p['z'], p['temperature'], p['noise'])
    steps = _compare(tokens, logits, ref)
    result.update(steps_tokens_agree=steps['tokens_agree'],
                  steps_logits_max_abs=steps['logits_max_abs'])
    if step_reference is not None:
      result['step_argmax_agree'] = step_argmax_agreement(model, graphs, step_reference)
  if 'encode' in model.signatures:
    mu, sigma = model.encode(p['inputs'], p['lengths'])
    result.update(mu_max_abs=float(np.max(np.abs(mu - ref['mu']))),
                  sigma_max_abs=float(np.max(np.abs(sigma - ref['sigma']))))
  return result


def step_argmax_agreement(model, graphs, records):
  """Fraction of steps whose argmax per part matches Keras, each step fed Keras's own
  token and state (so one early flip does not count for the rest of the sequence)."""
  import tensorflow as tf
  from edge_demo.runtime import argmax_parts
  runner = model.runner('step')
  cond = 'embedding' if graphs.hierarchical else 'z'
  rows = records['step']
  rows = rows[:len(rows) - len(rows) % model.batch_size]
  feed = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
  states = [tf.constant(feed['state_%d' % i]) for i in range(len(graphs.state_sizes))]
  ref = graphs.step(tf.constant(feed['token']), tf.constant(feed[cond]), *states)['logits'].numpy()
  got = np.concatenate([
      runner(**{k: v[a:a + model.batch_size] for k, v in feed.items()})['logits']
      for a in range(0, len(ref), model.batch_size)])
  return float(np.mean(argmax_parts(got, graphs.depths) == argmax_parts(ref, graphs.depths)))


def _summary_parity(kind, q, result):
  if kind == 'saved_model':
    return 'tokens %.4f, logits %.1e, mu %.1e' % (result['tokens_agree'],
                                                   result['logits_max_abs'], result['mu_max_abs'])
  parts = []
  if 'tokens_agree' in result:
    parts.append('tokens %.4f' % result['tokens_agree'])
  if q == 'none' and 'logits_max_abs' in result:
    parts.append('logits %.1e' % result['logits_max_abs'])
  if 'steps_tokens_agree' in result:
    parts.append('steps %.4f' % result['steps_tokens_agree'])
  if 'step_argmax_agree' in result:
    parts.append('per-step argmax %.4f' % result['step_argmax_agree'])
  return ', '.join(parts)


def export_model(source, output_dir, formats=FORMATS, quantize=('none',), batch_size=1,
                 force=False, progress=print, calibration_mus=None, num_parity=8, seed=0,
                 config=None):
  """Export the model `source` names (anything mvae_tf.store.resolve takes) to `output_dir`.

  Returns the summary dict (also written as export.json). Raises ExportError
  (or resolve.ModelNotFound, runs.RunError) with a message for the user.
  """
  from mvae_tf import pretrained
  from mvae_tf.store import resolve
  formats = tuple(formats)
  quantize = tuple(quantize)
  for f in formats:
    if f not in FORMATS:
      raise ExportError('format %r: use saved_model, tflite or all' % (f,))
  for q in quantize:
    if q not in QUANTIZE_DIRS:
      raise ExportError('quantization %r: use none, float16, dynamic, int8 or all' % (q,))
  if 'tflite' not in formats and quantize != ('none',):
    raise ExportError('--quantize applies to TFLite files; add --format tflite (or all)')
  if batch_size < 1:
    raise ExportError('--batch_size must be at least 1')
  if num_parity < 2:
    raise ExportError('--parity_samples must be at least 2')
  output_dir = os.path.abspath(output_dir)
  if os.path.exists(output_dir) and not force:
    raise ExportError('%s exists; pass --force to replace it, or choose another --output'
                      % output_dir)
  if os.path.exists(output_dir) and not os.path.isdir(output_dir):
    raise ExportError('%s is a file; give a directory for --output' % output_dir)
  parent = os.path.dirname(output_dir)
  if os.path.isdir(parent) and not os.access(parent, os.W_OK):
    raise ExportError('%s: cannot write there (permission denied); choose another --output'
                      % parent)

  started = time.time()
  model, info, step, resolved = resolve.load_keras(source, config=config)
  if info is None:
    info = pretrained.model_info(model)
  name = resolved.name or info.get('name') or os.path.basename(os.path.normpath(resolved.path))
  from mvae_tf.export.graphs import InferenceGraphs
  graphs = InferenceGraphs(model)
  if graphs.control_depth:
    raise ExportError('%s is conditioned on chords (control depth %d); exporting '
                      'chord-conditioned models is not supported yet' % (name,
                                                                        graphs.control_depth))
  base = metadata_lib.base_metadata(info, graphs, mvae_tf.__version__, step, name)
  parity = _parity_inputs(graphs, num_parity, seed)
  ref = keras_reference(graphs, parity)
  rows = []
  summary = dict(model=name, source=resolved.path, kind=resolved.kind, config=info['config'],
                 decoder_type=info['decoder_type'], batch_size=batch_size, artefacts=rows)

  def fill(tmp):
    if 'saved_model' in formats:
      progress('saved_model: writing decode (serving_default), sample, encode ...')
      sm_dir = os.path.join(tmp, 'saved_model', SERVING_VERSION)
      graphs.write_saved_model(sm_dir, graphs.names(serving=True))
      result = check_saved_model(sm_dir, graphs, parity, ref)
      meta = dict(base, artefact='saved_model', quantization='none',
                  signatures=serving_signatures(sm_dir), parity=result,
                  checked_on=['tensorflow %s' % _tf_version()])
      metadata_lib.write_json(os.path.join(tmp, 'saved_model', metadata_lib.METADATA_FILE),
                              meta)
      rows.append(dict(file='saved_model/%s/' % SERVING_VERSION, size_bytes=_dir_size(sm_dir),
                       signatures=sorted(meta['signatures']), quantization='none',
                       parity=result, summary=_summary_parity('saved_model', 'none', result)))
      progress('saved_model: %s' % rows[-1]['summary'])
    if 'tflite' in formats:
      work = tempfile.mkdtemp(prefix='.device-', dir=tmp)
      try:
        device_dir = os.path.join(work, 'device')
        progress('tflite: tracing the device graphs (batch %d) ...' % batch_size)
        graphs.write_saved_model(device_dir, graphs.names(), batch_size)
        records = None
        for q in quantize:
          records = _export_tflite(q, tmp, device_dir, graphs, parity, ref, base, rows,
                                   batch_size, progress, records, calibration_mus, seed)
      finally:
        shutil.rmtree(work, ignore_errors=True)
    summary['seconds'] = round(time.time() - started, 1)
    with open(os.path.join(tmp, 'export.json'), 'w') as f:
      json.dump(summary, f, indent=1, sort_keys=True)

  try:
    atomic.write_dir(output_dir, fill)
  except OSError as e:
    raise ExportError('%s: cannot write the export (%s); nothing was left there' % (
        output_dir, e.strerror or e)) from None
  return summary


def _export_tflite(q, tmp, device_dir, graphs, parity, ref, base, rows, batch_size, progress,
                   records, calibration_mus, seed):
  from mvae_tf.export import tflite as tflite_lib
  signatures = tflite_lib.signatures_for(graphs, q)
  label = QUANTIZE_DIRS[q]
  progress('tflite %s: converting %s ...' % (label, ', '.join(signatures)))
  representative = None
  if q != 'none' and records is None:  # the quantized files' calibration and step checks
    records = tflite_lib.step_records(
        graphs, tflite_lib.calibration_latents(graphs, 64 if graphs.num_steps <= 64 else 8,
                                               calibration_mus, seed), temperature=1.0,
        seed=seed)
  source, loops = device_dir, tflite_lib.WHOLE_GRAPHS
  if q == 'int8':
    keep = set(signatures)
    representative = tflite_lib.representative_dataset(
        {k: v for k, v in records.items() if k in keep}, batch_size)
    if 'decode' in signatures:  # decode unrolled (no WHILE): a SavedModel of its own
      source = device_dir + '-unrolled'
      graphs.write_saved_model(source, signatures, batch_size, unrolled=True)
      loops = ()
  data = tflite_lib.convert(source, signatures, q, representative, loops)
  folder = os.path.join(tmp, 'tflite', label)
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, 'model.tflite')
  from edge_demo.runtime import load_interpreter
  interpreter, _, _ = load_interpreter(content=data)
  versions = tflite_lib.operator_versions(data)
  meta = dict(base, artefact='tflite', quantization=label, batch_size=batch_size,
              signatures=metadata_lib.signature_details(interpreter),
              operators=versions,
              legacy_tflite_runtime_2_14=tflite_lib.legacy_runtime_ok(versions),
              whole_sequence='decode' in signatures)
  del interpreter
  with open(path, 'wb') as f:
    f.write(metadata_lib.pack_tflite_metadata(data, meta))
  step_reference = records if q != 'none' else None
  result = check_tflite(path, graphs, parity, ref, q, step_reference)
  meta.update(parity=result, checked_on=[result['runtime']])
  # The packed copy carries the parity too (the file is rewritten once).
  with open(path, 'wb') as f:
    f.write(metadata_lib.pack_tflite_metadata(data, meta))
  meta_file = dict(meta, sha256=atomic.file_sha256(path), size_bytes=os.path.getsize(path))
  metadata_lib.write_json(os.path.join(folder, metadata_lib.METADATA_FILE), meta_file)
  rows.append(dict(file='tflite/%s/model.tflite' % label, size_bytes=os.path.getsize(path),
                   signatures=sorted(meta['signatures']), quantization=label, parity=result,
                   summary=_summary_parity('tflite', q, result)))
  progress('tflite %s: %s' % (label, rows[-1]['summary']))
  return records


def serving_signatures(path):
  """{signature: {inputs: {name: {shape, dtype}}, outputs: ...}} of a SavedModel."""
  import tensorflow as tf
  loaded = tf.saved_model.load(path)
  out = {}
  for name, fn in loaded.signatures.items():
    _, kwargs = fn.structured_input_signature
    out[name] = dict(
        inputs={k: dict(shape=_shape(s.shape), dtype=s.dtype.name) for k, s in kwargs.items()},
        outputs={k: dict(shape=_shape(s.shape), dtype=s.dtype.name)
                 for k, s in fn.structured_outputs.items()})
  return out


def _shape(shape):
  return [-1 if d is None else int(d) for d in shape.as_list()]


def _dir_size(path):
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def _tf_version():
  import tensorflow as tf
  return tf.__version__


def format_summary(summary):
  """The table printed at the end of `mvae export`."""
  lines = ['%s (%s, %s) exported in %.0f s:' % (summary['model'], summary['config'],
                                                 summary['decoder_type'], summary['seconds'])]
  header = ('file', 'size', 'signatures', 'quantization', 'parity with Keras')
  table = [header] + [(r['file'], _human(r['size_bytes']), ' '.join(r['signatures']),
                       r['quantization'], r['summary']) for r in summary['artefacts']]
  widths = [max(len(row[i]) for row in table) for i in range(len(header))]
  for i, row in enumerate(table):
    lines.append('  ' + '  '.join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    if i == 0:
      lines.append('  ' + '  '.join('-' * w for w in widths))
  return '\n'.join(lines)


def _human(n):
  for unit in ('B', 'kB', 'MB', 'GB'):
    if n < 1000 or unit == 'GB':
      return ('%d %s' if unit == 'B' else '%.1f %s') % (n, unit)
    n /= 1000.0
