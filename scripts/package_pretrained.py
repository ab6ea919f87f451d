"""Package a trained model compactly for shipping inside mvae_tf (mvae_tf/pretrained/NAME).

  .venv/bin/python scripts/package_pretrained.py --run_dir runs/folk-mel_2bar \\
      --name folk-mel_2bar --corpus 'folk (data/folk/train.tfrecord)' \\
      --evaluation folk_eval.json --attribute_corpus data/folk/eval.tfrecord

Writes weights.npz (float16, compressed), config.json (config, hparams,
training step, corpus, evaluation, status) and, with --attribute_corpus,
attributes.npz (attribute vectors measured with the packaged weights), all
atomically. --evaluation takes the output of `mvae evaluate --json`.
--random_init CONFIG packages a randomly initialised model instead, marked
"untrained placeholder" (what ships until the real models are trained).
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
  source.add_argument('--checkpoint', help='a .../checkpoints/ckpt-N prefix or a saved model')
  source.add_argument('--random_init', metavar='CONFIG',
                      help='an untrained model of CONFIG (a placeholder)')
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
  args = parser.parse_args(argv)

  import numpy as np
  from mvae_tf import pretrained
  from mvae_tf.inference import NumpyMusicVAE, weights_from_keras
  from mvae_tf.model.trained_model import TrainedModel

  if args.random_init:
    import keras
    from mvae_tf.model.vae import MusicVAE
    keras.utils.set_random_seed(args.seed)
    model, step = MusicVAE.from_config_name(args.random_init), None
    status, source = pretrained.PLACEHOLDER, 'random initialisation (seed %d)' % args.seed
  else:
    from mvae_tf import runs
    model, step = runs.restore_model(run_dir=args.run_dir, checkpoint=args.checkpoint,
                                     config=args.config)
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
    from mvae_tf.attributes import compute_attribute_vectors
    from mvae_tf.data import tfrecord
    # Measured with the weights as they ship (rounded to --dtype).
    shipped = {k: v.astype(args.dtype).astype(np.float32) for k, v in weights.items()}
    numpy_model = TrainedModel(NumpyMusicVAE(shipped, info), info=info)
    sequences = []
    for ns in tfrecord.read_note_sequences(args.attribute_corpus):
      sequences.append(ns)
      if len(sequences) == args.attribute_max_sequences:
        break
    vectors, meta = compute_attribute_vectors(numpy_model, sequences)
    meta.update(corpus=args.attribute_corpus)
    attributes = (vectors, meta)

  output_dir = args.output_dir or pretrained.preset_dir(args.name)
  info = pretrained.write_pretrained(output_dir, weights, info, args.dtype, attributes)
  size = sum(os.path.getsize(os.path.join(output_dir, f)) for f in os.listdir(output_dir))
  print(json.dumps(dict(output_dir=output_dir, config=info['config'], step=step, status=status,
                        num_parameters=info['num_parameters'], bytes=size,
                        attributes=sorted(attributes[0]) if attributes else None), indent=1))
  return 0


if __name__ == '__main__':
  sys.exit(main())
