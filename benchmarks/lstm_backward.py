"""The hand-written LSTM backward pass against plain autodiff, side by side; prints JSON.

  .venv/bin/python benchmarks/lstm_backward.py [--config cat-mel_2bar_small] [--rounds 3]

Two copies of the model train on the same synthetic batch (global batch 64),
one traced with mvae_tf.model.lstm.HAND_WRITTEN_BACKWARD off and one with it
on; their steps are timed in turn, `--rounds` times, so that both see the
same machine load (compare the ratio).
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
  for hand_written in (False, True):
    lstm.HAND_WRITTEN_BACKWARD = hand_written
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
    runs[hand_written] = dict(step=step, batch=batch, seconds=0.0)
  for _ in range(args.rounds):
    for hand_written, run in runs.items():
      t0 = time.perf_counter()
      for _ in range(args.steps):
        metrics = run['step'](run['batch'], tf.constant(1000, tf.int64))
      float(metrics['loss'])
      run['seconds'] += time.perf_counter() - t0
  steps = args.rounds * args.steps
  result = {('hand_written' if k else 'autodiff'): dict(
      steps_per_sec=round(steps / r['seconds'], 3),
      examples_per_sec=round(steps * args.batch_size / r['seconds'], 1))
      for k, r in runs.items()}
  result.update(config=args.config, batch_size=args.batch_size, steps=steps,
                speedup=round(runs[False]['seconds'] / runs[True]['seconds'], 3),
                load_average_1min=os.getloadavg()[0], cpu_count=os.cpu_count())
  print(json.dumps(result, indent=1))


if __name__ == '__main__':
  main()
