"""Which exported .tflite files the legacy tflite-runtime 2.14 runs, and whether they agree.

Two steps, in two environments (tflite-runtime needs numpy < 2 and must not
share a process with TensorFlow):

  # 1. in the project's venv: the Keras model's decodes for fixed z and noise
  .venv/bin/python benchmarks/legacy_runtime_check.py reference --export out/folk \\
      --model folk-mel_2bar --out /tmp/ref.npz
  # 2. in a venv with only numpy<2 and tflite-runtime==2.14.0 (+ this package, --no-deps)
  legacy/bin/python benchmarks/legacy_runtime_check.py check --export out/folk --reference /tmp/ref.npz

`check` loads every tflite/*/model.tflite, says whether the runtime accepts
it (and its error when not), and for those it runs, the token agreement of
the whole-sequence and step-by-step decodes with Keras; it compares that with
`legacy_tflite_runtime_2_14` in each file's metadata. Prints JSON.
"""

import argparse
import glob
import json
import os
import sys

import numpy as np


def reference(args):
  import tensorflow as tf
  from mvae_tf.store import resolve
  from mvae_tf.export.graphs import InferenceGraphs
  model, _, _, _ = resolve.load_keras(args.model)
  g = InferenceGraphs(model)
  rng = np.random.default_rng(0)
  z = rng.standard_normal((args.n, g.z_size)).astype(np.float32)
  temperature = np.linspace(0, 1.5, args.n).astype(np.float32)
  noise = rng.uniform(0, 1, (args.n, g.num_steps, g.output_depth)).astype(np.float32)
  tokens = g.decode(tf.constant(z), tf.constant(temperature), tf.constant(noise))['tokens']
  np.savez(args.out, z=z, temperature=temperature, noise=noise, tokens=tokens.numpy())
  print('wrote %s' % args.out)


def check(args):
  from edge_demo import runtime
  ref = np.load(args.reference)
  results = {}
  for path in sorted(glob.glob(os.path.join(args.export, 'tflite', '*', 'model.tflite'))):
    name = os.path.basename(os.path.dirname(path))
    entry = {}
    try:
      device = runtime.TFLiteModel(path)
      entry['runtime'] = '%s %s' % (device.runtime, device.runtime_version)
      entry['expected_to_run'] = device.metadata['legacy_tflite_runtime_2_14']
      if 'decode' in device.signatures:
        tokens, _ = device.decode(ref['z'], ref['temperature'], ref['noise'])
        entry['tokens_agree'] = float(np.mean(tokens == ref['tokens']))
      tokens, _ = device.decode_steps(ref['z'], ref['temperature'], ref['noise'])
      entry['steps_tokens_agree'] = float(np.mean(tokens == ref['tokens']))
      entry['runs'] = True
    except Exception as e:  # what the runtime says about a file it cannot run
      entry.update(runs=False, error=str(e).strip().splitlines()[0][:300])
    results[name] = entry
  print(json.dumps(dict(python=sys.version.split()[0], numpy=np.__version__,
                        files=results), indent=1))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  sub = parser.add_subparsers(dest='mode', required=True)
  r = sub.add_parser('reference')
  r.add_argument('--export', required=True)
  r.add_argument('--model', required=True)
  r.add_argument('--n', type=int, default=8)
  r.add_argument('--out', required=True)
  c = sub.add_parser('check')
  c.add_argument('--export', required=True)
  c.add_argument('--reference', required=True)
  args = parser.parse_args()
  (reference if args.mode == 'reference' else check)(args)


if __name__ == '__main__':
  main()
