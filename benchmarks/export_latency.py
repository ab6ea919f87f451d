"""Decode latency per sample of every way to run a model, side by side on one thread; JSON.

  .venv/bin/python benchmarks/export_latency.py [--models folk-mel_2bar,hierdec-mel_16bar_cpu]
      [--min_seconds 1.0] [--out results.json]

For each model (a shipped preset, or a config name: then untrained weights,
which time the same), exported to TFLite at batch 1 and batch 64, this times
one free-running decode at temperature 1 (Gumbel-max where the graph takes
noise) at batch 1 and 64 and reports seconds per sample (median of repeated
runs over --min_seconds), for: Keras eager (the decoder's sample loop run
op by op), tf.function (the same traced once), and the TFLite files float32 / float16 / dynamic /
int8, whole-sequence (the WHILE graph, one call per batch) and step by step
(the step graphs driven from Python, with Gumbel-max in numpy). Everything
runs in this one process on one thread (TensorFlow intra/inter-op 1, BLAS 1,
LiteRT num_threads=1), so the figures are ratios measured together. File
sizes of each .tflite are reported too.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np


def timed(fn, min_seconds, max_runs=200):
  fn()  # warm-up (tracing, allocation)
  times, start = [], time.perf_counter()
  while len(times) < max_runs:
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
    if time.perf_counter() - start >= min_seconds and len(times) >= 3:
      break
  return statistics.median(times)


def build_model(name):
  from mvae_tf import pretrained
  from mvae_tf.store import resolve
  if name in pretrained.PRESETS:
    model, _, _, _ = resolve.load_keras(name)
    return model, 'shipped preset %s (%s)' % (name, pretrained.PRESETS[name])
  import keras
  from mvae_tf.model.vae import MusicVAE
  keras.utils.set_random_seed(0)
  return MusicVAE.from_config_name(name), 'config %s, untrained weights' % name


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--models', default='folk-mel_2bar,hierdec-mel_16bar_cpu')
  parser.add_argument('--batches', default='1,64')
  parser.add_argument('--min_seconds', type=float, default=1.0)
  parser.add_argument('--skip_eager_above', type=int, default=64,
                      help='time Keras eager at batch 1 only for models longer than this')
  parser.add_argument('--out', default=None)
  args = parser.parse_args()
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  import tensorflow as tf
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  from threadpoolctl import threadpool_limits
  threadpool_limits(1)
  from mvae_tf.export import exporter
  from mvae_tf.export.graphs import InferenceGraphs
  from edge_demo.runtime import TFLiteModel
  from mvae_tf.store.resolve import save_model

  batches = [int(b) for b in args.batches.split(',')]
  results = dict(cpus=os.cpu_count(), load_average_at_start=list(os.getloadavg()),
                 threads=1, tensorflow=tf.__version__, models={})
  work = tempfile.mkdtemp(prefix='export-latency-')
  for name in args.models.split(','):
    model, what = build_model(name)
    graphs = InferenceGraphs(model)
    entry = dict(model=what, steps=graphs.num_steps, seconds_of_music=graphs.num_steps / 4 *
                 60.0 / 120.0, latency_s_per_sample={}, file_bytes={})
    results['models'][name] = entry
    src = os.path.join(work, name + '-model')
    save_model(model, src)
    decode_fn = tf.function(graphs.decode)
    files = {}
    for batch in batches:
      out = os.path.join(work, '%s-b%d' % (name, batch))
      print('exporting %s at batch %d ...' % (name, batch), file=sys.stderr, flush=True)
      exporter.export_model(src, out, formats=('tflite',),
                            quantize=('none', 'float16', 'dynamic', 'int8'), batch_size=batch,
                            progress=lambda _: None, num_parity=2)
      files[batch] = {q: os.path.join(out, 'tflite', q, 'model.tflite')
                      for q in ('float32', 'float16', 'dynamic', 'int8')}
    entry['file_bytes'] = {q: os.path.getsize(p) for q, p in files[batches[0]].items()}
    for batch in batches:
      rng = np.random.default_rng(batch)
      z = rng.standard_normal((batch, graphs.z_size)).astype(np.float32)
      temp = np.ones([batch], np.float32)
      noise = rng.uniform(0, 1, (batch, graphs.num_steps, graphs.output_depth)).astype(
          np.float32)
      row = {}
      zt, tt, nt = tf.constant(z), tf.constant(temp), tf.constant(noise)
      if graphs.num_steps <= args.skip_eager_above or batch == 1:
        row['keras_eager'] = timed(lambda: graphs.decode(zt, tt, nt), args.min_seconds,
                                   max_runs=5)
      row['tf_function'] = timed(lambda: decode_fn(zt, tt, nt), args.min_seconds)
      for q, path in files[batch].items():
        device = TFLiteModel(path, num_threads=1)
        if 'decode' in device.signatures:
          row['tflite_%s_whole' % q] = timed(lambda: device.decode(z, temp, noise),
                                             args.min_seconds)
        row['tflite_%s_steps' % q] = timed(lambda: device.decode_steps(z, temp, noise),
                                           args.min_seconds)
      entry['latency_s_per_sample'][str(batch)] = {k: v / batch for k, v in row.items()}
      print(json.dumps({name: {batch: {k: '%.3g ms' % (1e3 * v / batch)
                                       for k, v in row.items()}}}), file=sys.stderr,
            flush=True)
  text = json.dumps(results, indent=1)
  if args.out:
    with open(args.out, 'w') as f:
      f.write(text + '\n')
  print(text)


if __name__ == '__main__':
  main()
