"""The hand-written LSTM backward passes against plain autodiff, side by side; prints JSON.

  .venv/bin/python benchmarks/lstm_backward.py [--config cat-mel_2bar_small] [--rounds 3]
      [--variants autodiff,encoder,encoder_and_decoder,unchunked,mixed_precision]

Copies of the model train on the same synthetic batch (global batch 64), each
traced one way: plain autodiff; the hand-written backward of one-layer runs (the
encoder: mvae_tf.model.lstm.HAND_WRITTEN_BACKWARD); that of the decoder too
(HAND_WRITTEN_DECODER_BACKWARD: the default); `autograph`, the default traced with
autograph on, as train steps were before (its first_step_seconds against the default's:
run each alone, `--variants autograph` and `--variants encoder_and_decoder`, so that
neither pays the other's first-trace costs); `unchunked`, the default but with
sequences longer than lstm.UNROLL_LIMIT (16-bar: 256 steps) run step by step under
autodiff, as before chunking (lstm.chunk_length); `mixed_precision`, the default
with bfloat16 products (`mvae train --mixed_precision`). Their steps are timed in
turn, `--rounds` times, so that all see the same machine load (compare the ratios).
"""

import argparse
import json
import os
import time


# name: (hand-written encoder backward, decoder backward, chunked long sequences, products,
#        autograph)
VARIANTS = {'autodiff': (False, False, True, 'float32', False),
            'encoder': (True, False, True, 'float32', False),
            'encoder_and_decoder': (True, True, True, 'float32', False),
            'autograph': (True, True, True, 'float32', True),
            'unchunked': (True, True, False, 'float32', False),
            'mixed_precision': (True, True, True, 'bfloat16', False)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--config', default='cat-mel_2bar_small')
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--steps', type=int, default=10, help='timed steps per round')
  parser.add_argument('--hparams', default='', help='more overrides, e.g. dec_rnn_size=[256]')
  parser.add_argument('--variants', default='autodiff,encoder,encoder_and_decoder',
                      help='comma-separated, of: ' + ', '.join(VARIANTS))
  args = parser.parse_args()

  import numpy as np
  import tensorflow as tf
  from mvae_tf.model import lstm, vae

  rng = np.random.default_rng(0)
  runs = {}
  names = args.variants.split(',')
  unknown = sorted(set(names) - set(VARIANTS))
  if unknown:
    parser.error('unknown variants %s; known: %s' % (unknown, ', '.join(VARIANTS)))
  chunk_length = lstm.chunk_length
  for name in names:
    encoder, decoder, chunked, dtype, autograph = VARIANTS[name]
    lstm.HAND_WRITTEN_BACKWARD = encoder
    lstm.HAND_WRITTEN_DECODER_BACKWARD = decoder
    lstm.chunk_length = chunk_length if chunked else (lambda num_steps: None)
    overrides = ','.join(x for x in ('batch_size=%d' % args.batch_size, args.hparams) if x)
    model = vae.MusicVAE.from_config_name(args.config, overrides)
    optimizer = vae.make_optimizer(model.hparams, model)
    b, t = args.batch_size, model.hparams.max_seq_len
    outputs = np.concatenate([np.eye(d, dtype=bool)[rng.integers(0, d, (b, t))]
                              for d in model.output_depths], -1)
    inputs = outputs if model.input_depth == model.output_depth else \
        rng.random((b, t, model.input_depth)) < 0.2
    batch = (tf.constant(inputs), tf.constant(outputs),
             tf.zeros((b, t, model.control_depth), tf.bool), tf.constant(np.full(b, t, np.int32)))
    step = tf.function(lambda batch, s, model=model, optimizer=optimizer:
                       vae.train_step(model, optimizer, batch, s), autograph=autograph)
    with lstm.matmul_dtype(dtype):
      t0 = time.perf_counter()
      float(step(batch, tf.constant(0, tf.int64))['loss'])  # trace
      trace = time.perf_counter() - t0
    for i in range(2):  # warm up
      float(step(batch, tf.constant(i + 1, tf.int64))['loss'])
    runs[name] = dict(step=step, batch=batch, seconds=0.0, trace=trace)
  lstm.chunk_length = chunk_length
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
      first_step_seconds=round(r['trace'], 1),
      speedup=round(runs[names[0]]['seconds'] / r['seconds'], 3))  # over the first variant
      for k, r in runs.items()}
  result.update(config=args.config, hparams=args.hparams, batch_size=args.batch_size,
                steps=steps,
                load_average_1min=os.getloadavg()[0], cpu_count=os.cpu_count())
  print(json.dumps(result, indent=1))


if __name__ == '__main__':
  main()
