"""The up-front check of training data (every record's checksums read and parsed,
mvae_tf.data.pipeline.check_examples_path) beside one pass of tf.data over the
same file's raw records, in one run.

  .venv/bin/python benchmarks/examples_check.py [MB]
"""

import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'tests'))


def main(megabytes=100):
  from conftest import varied_melody
  from mvae_tf.data import pipeline, tfrecord
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, 'big.tfrecord')
    one = varied_melody(bars=32).SerializeToString()
    count = int(megabytes * 1e6 // len(one))
    with tfrecord.AtomicTFRecordWriter(path) as w:
      for _ in range(count):
        w.write(one)
    size = os.path.getsize(path)
    t0 = time.perf_counter()
    pipeline.check_examples_path(path)
    check = time.perf_counter() - t0
    import tensorflow as tf
    t0 = time.perf_counter()
    n = sum(1 for _ in tf.data.TFRecordDataset(path))
    raw = time.perf_counter() - t0
    assert n == count
    print('%d records, %.1f MB: check %.2f s (%.0f MB/s); tf.data raw pass %.2f s; '
          'ratio %.2f' % (count, size / 1e6, check, size / 1e6 / check, raw, check / raw))


if __name__ == '__main__':
  main(float(sys.argv[1]) if len(sys.argv) > 1 else 100)
