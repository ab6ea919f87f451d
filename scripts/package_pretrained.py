"""Package a trained model compactly for shipping inside mvae_tf (mvae_tf/pretrained/NAME).

  .venv/bin/python scripts/package_pretrained.py --run_dir runs/folk-mel_2bar \\
      --name folk-mel_2bar --corpus 'folk (data/folk/train.tfrecord)' \\
      --evaluation folk_eval.json --attribute_corpus data/folk/eval.tfrecord

Writes weights.npz (float16, compressed), config.json (config, hparams,
training step, corpus, evaluation, status), model.tflite and model_b64.tflite
(the float16 export at batch 1 and 64, `mvae export`, each checked against the
Keras model) and, with --attribute_corpus, attributes.npz (attribute vectors
measured with the packaged weights), all atomically. --evaluation takes the output of `mvae evaluate --json`.
--random_init CONFIG packages a randomly initialised model instead, marked
"untrained placeholder" (what ships until the real models are trained).
--refresh_exports DIR writes a packaged model's .tflite files again (after a change
to the export), keeping its weights, config.json and attribute vectors.
"""

import argparse
import datetime
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument('--run_dir', help='a training run (its newest checkpoint)')
  source.add_argument('--checkpoint', help='a .../checkpoints/ckpt-N prefix, a saved or a packaged model')
  source.add_argument('--random_init', metavar='CONFIG',
                      help='an untrained model of CONFIG (a placeholder)')
  source.add_argument('--refresh_exports', metavar='DIR',
                      help='a packaged model (e.g. mvae_tf/pretrained/NAME): write its .tflite '
                           'files again from its own weights, config.json and attributes.npz '
                           '(after a change to the export)')
  parser.add_argument('--name', required=True, help='preset name, e.g. folk-mel_2bar')
  parser.add_argument('--output_dir', default=None,
                      help='default: mvae_tf/pretrained/NAME')
  parser.add_argument('--config', default=None, help='config of a run without run.json')
  parser.add_argument('--evaluation', default=None, metavar='JSON',
                      help='results of `mvae evaluate --json` to record')
  parser.add_argument('--corpus', default=None, help='what it was trained on (recorded)')
  parser.add_argument('--attribute_corpus', default=None, metavar='FILE.tfrecord',
                      help='NoteSequences to measure attribute vectors on')
  parser.add_argument('--attribute_max_sequences', type=int, default=3000)
  parser.add_argument('--dtype', default='float16', choices=['float16', 'float32'])
  parser.add_argument('--seed', type=int, default=0, help='seed of --random_init')
  parser.add_argument('--no_batch_file', action='store_true',
                      help='export at batch 1 only (no model_b64.tflite; generation then '
                           'runs batch-1 calls)')
  args = parser.parse_args(argv)

  import numpy as np
  from mvae_tf import pretrained
  from mvae_tf.generation.trained_model import TrainedModel
  from mvae_tf.model.weights import weights_from_keras

  if args.refresh_exports:
    return refresh_exports(args.refresh_exports, args.output_dir or args.refresh_exports,
                           batch_file=not args.no_batch_file)
  if args.random_init:
    import keras
    from mvae_tf.model.vae import MusicVAE
    keras.utils.set_random_seed(args.seed)
    model, step = MusicVAE.from_config_name(args.random_init), None
    status, source = pretrained.PLACEHOLDER, 'random initialisation (seed %d)' % args.seed
  else:
    from mvae_tf.store import resolve
    model, _, step, _ = resolve.load_keras(args.run_dir or args.checkpoint, config=args.config)
    status, source = 'trained', os.path.abspath(args.run_dir or args.checkpoint)
  expected = pretrained.PRESETS.get(args.name)
  if expected and model.config_name != expected:
    parser.error('preset %s is config %s, this model is %s' % (
        args.name, expected, model.config_name))
  evaluation = None
  if args.evaluation:
    with open(args.evaluation) as f:
      evaluation = json.load(f)
  info = pretrained.model_info(
      model, name=args.name, step=step, status=status, source=source, corpus=args.corpus,
      evaluation=evaluation, created=datetime.datetime.now(datetime.timezone.utc)
      .strftime('%Y-%m-%dT%H:%M:%SZ'))
  weights = weights_from_keras(model)

  attributes = None
  if args.attribute_corpus:
    from mvae_tf.generation.attributes import compute_attribute_vectors
    from mvae_tf.data import tfrecord
    # Measured with the weights as they ship (rounded to --dtype).
    shipped = {k: v.astype(args.dtype).astype(np.float32) for k, v in weights.items()}
    shipped_model = TrainedModel(pretrained.keras_model(shipped, info), info=info)
    sequences = []
    for ns in tfrecord.read_note_sequences(args.attribute_corpus):
      sequences.append(ns)
      if len(sequences) == args.attribute_max_sequences:
        break
    vectors, meta = compute_attribute_vectors(shipped_model, sequences)
    meta.update(corpus=args.attribute_corpus)
    attributes = (vectors, meta)

  output_dir = args.output_dir or pretrained.preset_dir(args.name)
  info = with_tflite(output_dir, weights, info, args.dtype, attributes,
                     batch_file=not args.no_batch_file)
  size = sum(os.path.getsize(os.path.join(output_dir, f)) for f in os.listdir(output_dir))
  print(json.dumps(dict(output_dir=output_dir, config=info['config'], step=step, status=status,
                        num_parameters=info['num_parameters'], bytes=size,
                        attributes=sorted(attributes[0]) if attributes else None), indent=1))
  return 0


def refresh_exports(path, output_dir, batch_file=True):
  """A packaged model's .tflite files written again from its own files (nothing retrained,
  its weights, config.json and attribute vectors kept as they are)."""
  from mvae_tf import pretrained
  from mvae_tf.store.attribute_vectors import load_attribute_vectors
  info = pretrained.read_info(path)
  weights = pretrained.read_weights(path, info)
  attributes_file = os.path.join(path, pretrained.ATTRIBUTES_FILE)
  attributes = (load_attribute_vectors(attributes_file) if os.path.exists(attributes_file)
                else None)
  info = with_tflite(output_dir, weights, info, info['weights_dtype'], attributes, batch_file)
  sizes = {f: os.path.getsize(os.path.join(output_dir, f)) for f in sorted(os.listdir(output_dir))}
  print(json.dumps(dict(output_dir=output_dir, config=info['config'], bytes=sizes), indent=1))
  return 0


def with_tflite(output_dir, weights, info, dtype, attributes, batch_file=True):
  """write_pretrained, plus the float16 exports of the packaged weights at batch 1 and
  64 (model.tflite, model_b64.tflite): staged beside output_dir, then put in place."""
  import shutil
  import tempfile
  from mvae_tf import atomic, pretrained
  from mvae_tf.export import exporter
  from mvae_tf.generation import trained_model
  staging = tempfile.mkdtemp(prefix='.package-', dir=os.path.dirname(os.path.abspath(
      output_dir)))
  try:
    package = os.path.join(staging, 'package')
    info = pretrained.write_pretrained(package, weights, info, dtype, attributes)
    exports = {}
    files = ((trained_model.TFLITE_FILE, 1),) + (
        ((trained_model.TFLITE_BATCH_FILE, 64),) if batch_file else ())
    for name, batch in files:
      out = os.path.join(staging, 'export-%d' % batch)
      exporter.export_model(package, out, formats=('tflite',), quantize=('float16',),
                            batch_size=batch, progress=lambda msg: None)
      exports[name] = os.path.join(out, 'tflite', 'float16', 'model.tflite')

    def fill(tmp):
      for entry in os.listdir(package):
        shutil.copy2(os.path.join(package, entry), tmp)
      for name, path in exports.items():
        shutil.copy2(path, os.path.join(tmp, name))
    atomic.write_dir(output_dir, fill)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return info


if __name__ == '__main__':
  sys.exit(main())
