"""`mvae prepare` throughput (files/s) with 1 and 2 worker processes, measured
side by side, alternating, so that machine noise hits both alike.

  .venv/bin/python benchmarks/prepare_throughput.py DIR [DIR ...] [--rounds 2]
"""

import argparse
import json
import os
import tempfile

from mvae_tf.data import prepare


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('inputs', nargs='+')
  parser.add_argument('--rounds', type=int, default=2)
  args = parser.parse_args()
  results = {1: [], 2: []}
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, 'bench.tfrecord')
    for _ in range(args.rounds):
      for workers in (1, 2):
        s = prepare.prepare(args.inputs, out, workers=workers, progress=False).as_dict()
        results[workers].append(s)
  best = {w: max(r['files_per_second'] for r in rs) for w, rs in results.items()}
  first = results[1][0]
  print(json.dumps({
      'files': first['files_found'], 'files_read': first['files_read'],
      'notes': first['notes'], 'rounds': args.rounds,
      'files_per_second': {'workers_1': [r['files_per_second'] for r in results[1]],
                           'workers_2': [r['files_per_second'] for r in results[2]]},
      'best_files_per_second': best,
      'speedup_2_over_1': round(best[2] / best[1], 2),
      'cpu_count': os.cpu_count(),
  }, indent=2))


if __name__ == '__main__':
  main()
