"""The hand-written LSTM backward passes against plain autodiff, side by side; prints JSON.

  .venv/bin/python benchmarks/lstm_backward.py [--config cat-mel_2bar_small] [--rounds 3]

Three copies of the model train on the same synthetic batch (global batch 64),
traced with plain autodiff, with the hand-written backward of one-layer runs
(the encoder: mvae_tf.model.lstm.HAND_WRITTEN_BACKWARD) and with that of the
decoder too (HAND_WRITTEN_DECODER_BACKWARD); their steps are timed in turn,
`--rounds` times, so that all see the same machine load (compare the ratios).
"""

import argparse
import json
import os
import time


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--config', default='cat-mel_2bar_small')
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--steps', type=int, default=10, help='timed steps per round')
  args = parser.parse_args()

  import numpy as np
  import tensorflow as tf
  from mvae_tf.model import lstm, vae

  rng = np.random.default_rng(0)
  runs = {}
  variants = {'autodiff': (False, False), 'encoder': (True, False),
              'encoder_and_decoder': (True, True)}
  for name, (encoder, decoder) in variants.items():
    lstm.HAND_WRITTEN_BACKWARD = encoder
    lstm.HAND_WRITTEN_DECODER_BACKWARD = decoder
    model = vae.MusicVAE.from_config_name(args.config, 'batch_size=%d' % args.batch_size)
    optimizer = vae.make_optimizer(model.hparams, model)
    b, t = args.batch_size, model.hparams.max_seq_len
    outputs = np.concatenate([np.eye(d, dtype=bool)[rng.integers(0, d, (b, t))]
                              for d in model.output_depths], -1)
    inputs = outputs if model.input_depth == model.output_depth else \
        rng.random((b, t, model.input_depth)) < 0.2
    batch = (tf.constant(inputs), tf.constant(outputs),
             tf.zeros((b, t, model.control_depth), tf.bool), tf.constant(np.full(b, t, np.int32)))
    step = tf.function(lambda batch, s, model=model, optimizer=optimizer:
                       vae.train_step(model, optimizer, batch, s))
    for i in range(3):  # trace and warm up
      float(step(batch, tf.constant(i, tf.int64))['loss'])
    runs[name] = dict(step=step, batch=batch, seconds=0.0)
  for _ in range(args.rounds):
    for run in runs.values():
      t0 = time.perf_counter()
      for _ in range(args.steps):
        metrics = run['step'](run['batch'], tf.constant(1000, tf.int64))
      float(metrics['loss'])
      run['seconds'] += time.perf_counter() - t0
  steps = args.rounds * args.steps
  result = {k: dict(
      steps_per_sec=round(steps / r['seconds'], 3),
      examples_per_sec=round(steps * args.batch_size / r['seconds'], 1),
      speedup=round(runs['autodiff']['seconds'] / r['seconds'], 3))
      for k, r in runs.items()}
  result.update(config=args.config, batch_size=args.batch_size, steps=steps,
                load_average_1min=os.getloadavg()[0], cpu_count=os.cpu_count())
  print(json.dumps(result, indent=1))


if __name__ == '__main__':
  main()
