"""Generation speed: 2-bar sequences per second and the wall time of `mvae generate`; prints JSON.

  .venv/bin/python benchmarks/generate_speed.py [--preset folk-mel_2bar] [--repeats 3]

Sequences/s: free-running sampling (temperature 1.0) of the shipped 2-bar
model at batch 1 and batch 64, with the litert backend (what `mvae generate`
uses for shipped models) and the TensorFlow backend (tf.function, traced
before timing) on the same weights. Command wall time: `mvae generate --mode
sample --num_outputs 5` (and the README's main command, with --plot) in a
fresh process, each run --repeats times, beside the TensorFlow backend's and
the time of `import tensorflow` alone.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def sequences_per_second(model, batch, min_seconds, z_size):
  import numpy as np
  z = np.random.default_rng(0).standard_normal((batch, z_size)).astype(np.float32)
  model.decode_indices(z, 32, temperature=1.0, seed=0)  # warm-up (and tracing)
  runs, start = 0, time.perf_counter()
  while True:
    model.decode_indices(z, 32, temperature=1.0, seed=runs)
    runs += 1
    elapsed = time.perf_counter() - start
    if elapsed >= min_seconds and runs >= 3:
      return round(batch * runs / elapsed, 1)


def wall_times(argv, repeats):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times.append(round(time.perf_counter() - start, 2))
  return dict(median_s=sorted(times)[len(times) // 2], runs_s=times)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--preset', default='folk-mel_2bar')
  parser.add_argument('--repeats', type=int, default=3, help='runs of each command')
  parser.add_argument('--min_seconds', type=float, default=2.0,
                      help='timing per measurement of sequences/s')
  args = parser.parse_args()

  from mvae_tf.generation.trained_model import TrainedModel
  results = dict(preset=args.preset, cpus=os.cpu_count(),
                 load_average_at_start=[round(x, 2) for x in os.getloadavg()])
  litert_model = TrainedModel.load(args.preset)
  results['config'] = litert_model.config_name
  results['sequences_per_second'] = {}
  mvae = os.path.join(os.path.dirname(sys.executable), 'mvae')
  command = [mvae] if os.path.exists(mvae) else [sys.executable, '-m', 'mvae_tf']
  with tempfile.TemporaryDirectory() as out:
    base = command + ['generate', '--preset', args.preset, '--output_dir', out, '--seed', '1']
    results['command_wall_time'] = {
        'mvae generate --mode sample --num_outputs 5': wall_times(
            base + ['--mode', 'sample', '--num_outputs', '5'], args.repeats),
        'mvae generate --mode sample --num_outputs 4 --plot (README main command)': wall_times(
            base + ['--mode', 'sample', '--num_outputs', '4', '--plot'], args.repeats),
        'mvae generate --mode sample --num_outputs 5 --backend tf': wall_times(
            base + ['--mode', 'sample', '--num_outputs', '5', '--backend', 'tf'],
            max(1, args.repeats - 1)),
        'python -c "import tensorflow"': wall_times(
            [sys.executable, '-c', 'import tensorflow'], 1),
    }
  tf_model = TrainedModel.load(args.preset, backend='tf')
  for name, model in (('litert', litert_model), ('tf', tf_model)):
    results['sequences_per_second'][name] = {
        'batch_%d' % b: sequences_per_second(model, b, args.min_seconds, model.z_size)
        for b in (1, 64)}
  results['load_average_at_end'] = [round(x, 2) for x in os.getloadavg()]
  print(json.dumps(results, indent=1))


if __name__ == '__main__':
  main()
