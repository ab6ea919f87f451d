"""The TF-free backends side by side: the numpy forward pass (mvae_tf.inference,
what `mvae generate` runs for shipped models) and LiteRT on the exported .tflite
of the same preset (edge_demo.runtime); prints JSON.

  .venv/bin/mvae export folk-mel_2bar --output /tmp/exp_folk --format tflite --quantize all
  .venv/bin/mvae export folk-mel_2bar --output /tmp/exp_folk64 --format tflite --batch_size 64
  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/numpy_vs_litert.py \
      --export /tmp/exp_folk --export64 /tmp/exp_folk64 [--preset folk-mel_2bar]

It needs the numpy backend, which was removed once these figures decided it
(issue 12): run it at commit 0c29664 or earlier (git worktree add DIR 0c29664,
then PYTHONPATH=DIR).

Start-up: a fresh process that imports the backend, loads the model and writes
nothing (median of --repeats), and the same process's peak RSS. Speed: 2-bar
samples per second at batch 1 and 64, temperature 1.0, one thread, the two
backends alternating in one run (--rounds), each timed for --min_seconds.
LiteRT graphs have a static batch: batch 64 is 64 calls of the batch-1
`decode` graph, and (--export64) one call of a batch-64 export.
"""

import argparse
import json
import os
import subprocess
import sys
import time

STARTUP = {
    'numpy': ('from mvae_tf.generation.trained_model import TrainedModel\n'
              'm = TrainedModel.load({preset!r}, backend="numpy")\n'
              'm.decode_indices(m.random_latents(1, 0), 32, 1.0, 0)\n'),
    'litert': ('import numpy as np\nfrom edge_demo.runtime import TFLiteModel\n'
               'm = TFLiteModel({path!r}, num_threads=1)\n'
               'rng = np.random.default_rng(0)\n'
               'm.decode(rng.standard_normal((1, m.z_size)).astype(np.float32), 1.0, '
               'rng.uniform(size=(1, m.num_steps, sum(m.depths))).astype(np.float32))\n'),
}
# VmHWM of the process itself: ru_maxrss would carry over the parent's peak (fork, then exec).
RSS = ('\nprint([l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")][0])\n')


def startup(kind, preset, path, repeats):
  code = STARTUP[kind].format(preset=preset, path=path) + RSS
  times, rss = [], []
  for _ in range(repeats):
    start = time.perf_counter()
    out = subprocess.run([sys.executable, '-c', code], check=True, capture_output=True,
                         text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    times.append(time.perf_counter() - start)
    rss.append(int(out.stdout.split()[-1]) / 1024)
  return dict(median_s=round(sorted(times)[len(times) // 2], 3),
              peak_rss_mb=round(sorted(rss)[len(rss) // 2], 1))


def rate(fn, batch, min_seconds):
  fn(batch, 0)
  runs, start = 0, time.perf_counter()
  while True:
    fn(batch, runs + 1)
    runs += 1
    elapsed = time.perf_counter() - start
    if elapsed >= min_seconds and runs >= 3:
      return batch * runs / elapsed


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--export', required=True, help='an `mvae export --format tflite` dir')
  parser.add_argument('--export64', default=None, help='an export with --batch_size 64')
  parser.add_argument('--preset', default='folk-mel_2bar')
  parser.add_argument('--quantize', default='float32')
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--min_seconds', type=float, default=2.0)
  args = parser.parse_args()
  import numpy as np
  from edge_demo.runtime import TFLiteModel
  from mvae_tf.generation.trained_model import TrainedModel
  path = os.path.join(args.export, 'tflite', args.quantize, 'model.tflite')
  numpy_model = TrainedModel.load(args.preset, backend='numpy')
  lite = TFLiteModel(path, num_threads=1)
  depth = sum(lite.depths)
  lite64 = TFLiteModel(os.path.join(args.export64, 'tflite', args.quantize, 'model.tflite'),
                       num_threads=1) if args.export64 else None

  def numpy_fn(batch, seed):
    z = numpy_model.random_latents(batch, seed)
    numpy_model.decode_indices(z, 32, 1.0, seed)

  def litert_fn(batch, seed, model=lite):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((batch, model.z_size)).astype(np.float32)
    model.decode(z, 1.0, rng.uniform(size=(batch, model.num_steps, depth)).astype(np.float32))

  results = dict(preset=args.preset, file=path, quantization=args.quantize,
                 runtime='%s %s' % (lite.runtime, lite.runtime_version),
                 load_average_at_start=[round(x, 2) for x in os.getloadavg()],
                 samples_per_second={}, startup={})
  for batch in (1, 64):
    runs = {'numpy': [], 'litert': []}
    if batch == 64 and lite64 is not None:
      runs['litert_batch64_graph'] = []
    for _ in range(args.rounds):
      runs['numpy'].append(rate(numpy_fn, batch, args.min_seconds))
      runs['litert'].append(rate(litert_fn, batch, args.min_seconds))
      if 'litert_batch64_graph' in runs:
        runs['litert_batch64_graph'].append(rate(
            lambda b, s: litert_fn(b, s, lite64), batch, args.min_seconds))
    med = {k: sorted(v)[len(v) // 2] for k, v in runs.items()}
    row = {k: round(v, 1) for k, v in med.items()}
    row.update({'%s_over_numpy' % k: round(v / med['numpy'], 2) for k, v in med.items()
                if k != 'numpy'})
    results['samples_per_second']['batch_%d' % batch] = row
  for kind in ('numpy', 'litert'):
    results['startup'][kind] = startup(kind, args.preset, path, args.repeats)
  results['load_average_at_end'] = [round(x, 2) for x in os.getloadavg()]
  print(json.dumps(results, indent=1))


if __name__ == '__main__':
  main()
