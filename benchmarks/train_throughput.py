"""Training throughput (examples/s) of a config on synthetic batches; prints JSON.

  .venv/bin/python benchmarks/train_throughput.py --config cat-mel_2bar_small --batch_size 64

Synthetic batches (random one-hot melodies, full length) isolate the model
from the input pipeline. The timed steps are the real training step: encoder,
q(z|x) sample, scheduled sampling at the config's schedule, the loss, Adam
with clipping and the skip test, compiled with tf.function.
"""

import argparse
import json
import os
import time


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--config', default='cat-mel_2bar_small')
  parser.add_argument('--hparams', default='')
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--warmup', type=int, default=10, help='untimed steps (incl. tracing)')
  parser.add_argument('--steps', type=int, default=60, help='timed steps')
  parser.add_argument('--start_step', type=int, default=0,
                      help='global step the schedules (beta, sampling) are evaluated at')
  parser.add_argument('--jit_compile', action='store_true', help='compile the step with XLA')
  args = parser.parse_args()

  import numpy as np
  import tensorflow as tf
  from mvae_tf.model import vae as vae_lib

  overrides = ','.join(x for x in [args.hparams, 'batch_size=%d' % args.batch_size] if x)
  model = vae_lib.MusicVAE.from_config_name(args.config, overrides)
  hp = model.hparams
  rng = np.random.default_rng(0)
  b, t = args.batch_size, hp.max_seq_len
  outputs = np.concatenate([np.eye(d, dtype=bool)[rng.integers(0, d, (b, t))]
                            for d in model.output_depths], -1)
  inputs = outputs if model.input_depth == model.output_depth else \
      rng.random((b, t, model.input_depth)) < 0.2
  batch = (tf.constant(inputs), tf.constant(outputs),
           tf.constant(rng.random((b, t, model.control_depth)) < 0.5),
           tf.constant(np.full([b], t, np.int32)))
  optimizer = vae_lib.make_optimizer(hp, model)
  step_fn = tf.function(lambda batch, step: vae_lib.train_step(model, optimizer, batch, step),
                        jit_compile=args.jit_compile)

  t0 = time.perf_counter()
  for i in range(args.warmup):
    metrics = step_fn(batch, tf.constant(args.start_step + i, tf.int64))
  float(metrics['loss'])
  warmup_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  for i in range(args.steps):
    metrics = step_fn(batch, tf.constant(args.start_step + args.warmup + i, tf.int64))
  float(metrics['loss'])
  elapsed = time.perf_counter() - t0
  print(json.dumps(dict(
      config=args.config, hparams=overrides, jit_compile=args.jit_compile, batch_size=b, timed_steps=args.steps,
      seconds=round(elapsed, 3), steps_per_sec=round(args.steps / elapsed, 3),
      examples_per_sec=round(args.steps * b / elapsed, 1), warmup_seconds=round(warmup_s, 1),
      sampling_probability=float(metrics['sampling_probability']),
      num_params=int(sum(np.prod(v.shape) for v in model.trainable_variables)),
      tensorflow=tf.__version__, cpu_count=os.cpu_count(),
      load_average_1min=os.getloadavg()[0])))


if __name__ == '__main__':
  main()
