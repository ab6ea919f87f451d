"""edge_demo's figures for BUILD_NOTES.md: `python -m edge_demo bench --json` of each
exported model file, run in the device-like venv (.venv-edge: ai-edge-litert, numpy,
mido; no TensorFlow), one thread, beside each model's multiply-adds per step and
weight bytes, and an estimate for a Raspberry Pi 4 and a Pi 5 from those.

  .venv/bin/mvae export folk-mel_2bar --output /tmp/exp_folk --format tflite --quantize all
  .venv/bin/mvae export drums_2bar --output /tmp/exp_drums --format tflite --quantize all
  .venv/bin/python benchmarks/edge_bench.py --random_init hierdec-mel_16bar_cpu \\
      --export folk-mel_2bar=/tmp/exp_folk --export drums_2bar=/tmp/exp_drums

--random_init CONFIG exports an untrained model of CONFIG (the same compute as a trained
one) to time a 16-bar hierarchical model before one ships. Prints JSON, then a markdown
table.
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The boards, for the estimate (published figures, not measured here): one core's peak
# fp32 throughput (NEON FMA per cycle x clock), its caches, and a sustained one-core
# DRAM read bandwidth for streaming weights.
BOARDS = {
    'Raspberry Pi 4 (Cortex-A72, 1.8 GHz)': dict(peak_gflops=1.8 * 8, cache_mb=1.0,
                                                   dram_gb_s=3.0),
    'Raspberry Pi 5 (Cortex-A76, 2.4 GHz)': dict(peak_gflops=2.4 * 16, cache_mb=2.5,
                                                   dram_gb_s=8.0),
}
# The share of peak a batch-1 matrix-vector product reaches when its weights are in cache
# (what this machine reaches, measured below, is of the same order).
GEMV_EFFICIENCY = 0.25


def step_work(config_name):
  """(multiply-adds per output step, per-step weight count) of a config's decoder."""
  from mvae_tf.model.vae import MusicVAE
  from mvae_tf.model.weights import named_weights
  model = MusicVAE.from_config_name(config_name)
  weights = dict(named_weights(model))
  steps_per_bar = model.steps_per_bar
  macs = 0.0
  for name, v in weights.items():
    if not name.startswith('decoder/') or name.endswith(('bias', 'initial_bias')) or \
        '/bias_' in name or 'initial' in name:
      continue
    size = float(v.shape.num_elements())
    macs += size / steps_per_bar if '/conductor/' in name else size
  return macs, macs


def bench(python, path, num, cold_runs):
  out = subprocess.run([python, '-m', 'edge_demo', 'bench', '--model', path, '--num', str(num),
                        '--cold_runs', str(cold_runs), '--json'], cwd=ROOT, check=True,
                       capture_output=True, text=True)
  return json.loads(out.stdout)


def estimate(board, macs, weight_bytes, steps):
  """ms per sample on `board`: per step, the slower of compute and weight traffic (from
  DRAM when the weights exceed the caches)."""
  compute = 2 * macs / (board['peak_gflops'] * 1e9 * GEMV_EFFICIENCY)
  memory = weight_bytes / (board['dram_gb_s'] * 1e9) if \
      weight_bytes > board['cache_mb'] * 2**20 else 0.0
  return 1e3 * steps * max(compute, memory)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--export', action='append', default=[], metavar='NAME=DIR')
  parser.add_argument('--random_init', action='append', default=[], metavar='CONFIG')
  parser.add_argument('--python', default=os.path.join(ROOT, '.venv-edge', 'bin', 'python'))
  parser.add_argument('--num', type=int, default=100)
  parser.add_argument('--cold_runs', type=int, default=5)
  args = parser.parse_args()
  from edge_demo.metadata import read_tflite_metadata
  files = []
  for item in args.export:
    name, directory = item.split('=', 1)
    for path in sorted(glob.glob(os.path.join(directory, 'tflite', '*', 'model.tflite'))):
      files.append((name, path))
  work = tempfile.mkdtemp(prefix='edge-bench-')
  for config in args.random_init:
    from mvae_tf.export import exporter
    from mvae_tf.store.resolve import save_model
    from mvae_tf.model.vae import MusicVAE
    import keras
    keras.utils.set_random_seed(0)
    src = os.path.join(work, config)
    save_model(MusicVAE.from_config_name(config), src)
    out = os.path.join(work, config + '-export')
    exporter.export_model(src, out, formats=('tflite',), quantize=('none', 'float16'),
                          progress=lambda m: None, num_parity=2)
    for path in sorted(glob.glob(os.path.join(out, 'tflite', '*', 'model.tflite'))):
      files.append((config + ' (untrained)', path))
  rows = []
  for name, path in files:
    meta = read_tflite_metadata(path)
    macs, count = step_work(meta['config'])
    q = meta['quantization']
    bytes_per_weight = 1 if q in ('dynamic', 'int8') else 4  # float16 is dequantized at load
    result = bench(args.python, path, args.num, args.cold_runs)
    steps = int(meta['max_seq_len'])
    row = dict(model=name, config=meta['config'], quantization=q, file_mb=os.path.getsize(
        path) / 1e6, steps=steps, macs_per_step=macs, weight_bytes_per_step=count *
        bytes_per_weight, bench=result)
    latency = result.get('decode') or result['decode_steps']
    row['here_gflops'] = 2 * macs * steps / (latency['median_ms'] / 1e3) / 1e9
    row['estimate_ms'] = {b: estimate(spec, macs, count * bytes_per_weight, steps)
                          for b, spec in BOARDS.items()}
    rows.append(row)
    print('%s %s done' % (name, q), file=sys.stderr, flush=True)
  print(json.dumps(rows, indent=1))
  print()
  print('| model | quantization | file | median (p95) ms, one graph | steps graphs ms | '
        'real time x | cold start s | peak RSS MB | MACs/step | Pi 4 est. ms | Pi 5 est. ms |')
  print('|---|---|---|---|---|---|---|---|---|---|---|')
  for r in rows:
    b = r['bench']
    whole, steps = b.get('decode'), b['decode_steps']
    est = list(r['estimate_ms'].values())
    print('| %s | %s | %.1f MB | %s | %.2f | %.0f | %.2f | %.0f | %.0fk | %.1f | %.1f |' % (
        r['model'], r['quantization'], r['file_mb'],
        '%.2f (%.2f)' % (whole['median_ms'], whole['p95_ms']) if whole else '-',
        steps['median_ms'], (whole or steps)['real_time_factor'],
        b['cold_start']['first_midi_s'], b['cold_start']['peak_rss_mb'],
        r['macs_per_step'] / 1e3, est[0], est[1]))


if __name__ == '__main__':
  main()
