"""Training throughput (examples/s) of a config on synthetic batches; prints JSON.

  .venv/bin/python benchmarks/train_throughput.py --config cat-mel_2bar_small --batch_size 64
  .venv/bin/python benchmarks/train_throughput.py --replicas 1 2 --rounds 3

Synthetic batches (random one-hot melodies, full length) isolate the model
from the input pipeline. The timed steps are the real training step of `mvae
train` (train.make_train_step): encoder, q(z|x) sample, scheduled sampling at
the config's schedule, the loss, gradients summed over replicas, Adam with
clipping and the skip test, compiled with tf.function.

With several --replicas counts, the CPU is split into that many logical
devices and each count gets its own model and strategy; the counts are timed
in turn, `--rounds` times, so that they share the machine's load (this
machine is shared: compare the ratios, not the absolute figures).
"""

import argparse
import json
import os
import time


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--config', default='cat-mel_2bar_small')
  parser.add_argument('--hparams', default='')
  parser.add_argument('--batch_size', type=int, default=64, help='the global batch')
  parser.add_argument('--replicas', type=int, nargs='+', default=[1])
  parser.add_argument('--rounds', type=int, default=1)
  parser.add_argument('--warmup', type=int, default=10, help='untimed steps (incl. tracing)')
  parser.add_argument('--steps', type=int, default=60, help='timed steps per round')
  parser.add_argument('--start_step', type=int, default=0,
                      help='global step the schedules (beta, sampling) are evaluated at')
  args = parser.parse_args()

  import numpy as np
  import tensorflow as tf
  cpu = tf.config.list_physical_devices('CPU')[0]
  if max(args.replicas) > 1:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * max(args.replicas))
  from mvae_tf.training import train
  from mvae_tf.model import vae as vae_lib

  overrides = ','.join(x for x in [args.hparams, 'batch_size=%d' % args.batch_size] if x)
  runs = {}
  for r in args.replicas:
    strategy = tf.distribute.MirroredStrategy(['/cpu:%d' % i for i in range(r)])
    with strategy.scope():
      model = vae_lib.MusicVAE.from_config_name(args.config, overrides)
      optimizer = vae_lib.make_optimizer(model.hparams, model)
      optimizer.iterations.assign(args.start_step)
    hp = model.hparams
    rng = np.random.default_rng(0)
    b, t = args.batch_size, hp.max_seq_len
    outputs = np.concatenate([np.eye(d, dtype=bool)[rng.integers(0, d, (b, t))]
                              for d in model.output_depths], -1)
    inputs = outputs if model.input_depth == model.output_depth else \
        rng.random((b, t, model.input_depth)) < 0.2
    batch = (inputs, outputs, rng.random((b, t, model.control_depth)) < 0.5,
             np.full([b], t, np.int32))
    per = b // r
    dist = strategy.experimental_distribute_values_from_function(
        lambda ctx, batch=batch, per=per: tuple(
            tf.constant(x[ctx.replica_id_in_sync_group * per:
                          (ctx.replica_id_in_sync_group + 1) * per]) for x in batch))
    step_fn = train.make_train_step(strategy, model, optimizer)
    t0 = time.perf_counter()
    for _ in range(args.warmup):
      metrics = step_fn(dist)
    float(metrics['loss'])
    runs[r] = dict(step_fn=step_fn, dist=dist, seconds=0.0, steps=0,
                   warmup_seconds=time.perf_counter() - t0, model=model)

  for _ in range(args.rounds):
    for r in args.replicas:
      run = runs[r]
      t0 = time.perf_counter()
      for _ in range(args.steps):
        metrics = run['step_fn'](run['dist'])
      float(metrics['loss'])
      run['seconds'] += time.perf_counter() - t0
      run['steps'] += args.steps

  results = {}
  for r in args.replicas:
    run = runs[r]
    results[str(r)] = dict(
        steps=run['steps'], seconds=round(run['seconds'], 3),
        steps_per_sec=round(run['steps'] / run['seconds'], 3),
        examples_per_sec=round(run['steps'] * args.batch_size / run['seconds'], 1),
        warmup_seconds=round(run['warmup_seconds'], 1))
  base = results[str(args.replicas[0])]['examples_per_sec']
  for r in args.replicas:
    results[str(r)]['ratio_to_first'] = round(results[str(r)]['examples_per_sec'] / base, 3)
  model = runs[args.replicas[0]]['model']
  print(json.dumps(dict(
      config=args.config, hparams=overrides, global_batch_size=args.batch_size,
      rounds=args.rounds, replicas=results,
      num_params=int(sum(np.prod(v.shape) for v in model.trainable_variables)),
      tensorflow=tf.__version__, cpu_count=os.cpu_count(),
      load_average_1min=os.getloadavg()[0]), indent=1))


if __name__ == '__main__':
  main()
