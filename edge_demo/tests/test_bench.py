"""`python -m edge_demo bench`: the figures it prints (--json), on the shipped 2-bar
exports (a 16-bar model is timed the same way; BUILD_NOTES has those figures).

Needs only edge_demo's requirements and the exports; no TensorFlow, no mvae_tf.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MELODY = REPO / 'mvae_tf' / 'pretrained' / 'folk-mel_2bar' / 'model.tflite'
DRUMS = REPO / 'mvae_tf' / 'pretrained' / 'drums_2bar' / 'model.tflite'

pytestmark = pytest.mark.skipif(not (MELODY.is_file() and DRUMS.is_file()),
                                reason='the shipped 2-bar .tflite exports are missing')


def edge(*args, cwd, timeout=300):
  env = dict(os.environ)
  env['PYTHONPATH'] = os.pathsep.join([str(REPO)] + [
      p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
  return subprocess.run([sys.executable, '-m', 'edge_demo'] + [str(a) for a in args],
                        cwd=str(cwd), env=env, capture_output=True, text=True, timeout=timeout)


def test_stats_ms():
  from edge_demo import bench
  s = bench.stats_ms([0.001, 0.002, 0.003, 0.004])
  assert s['median_ms'] == pytest.approx(2.5) and s['n'] == 4
  assert s['min_ms'] == pytest.approx(1.0) and s['max_ms'] == pytest.approx(4.0)
  assert s['median_ms'] <= s['p95_ms'] <= s['max_ms']


def test_bench_json(tmp_path):
  r = edge('bench', '--model', MELODY, '--numThreads', 1, '--num', 5, '--warmup', 1,
           '--cold_runs', 2, '--json', cwd=tmp_path)
  assert r.returncode == 0, r.stderr
  out = json.loads(r.stdout)
  assert out['name'] == 'folk-mel_2bar' and out['kind'] == 'melody'
  assert out['batch_size'] == 1 and out['num_threads'] == 1
  assert out['bars'] == 2 and out['qpm'] == 120.0
  assert out['seconds_of_music'] == pytest.approx(4.0)
  for graph in ('decode', 'decode_steps'):
    s = out[graph]
    assert s['n'] == 5
    assert 0 < s['min_ms'] <= s['median_ms'] <= s['p95_ms'] <= s['max_ms']
    assert s['real_time_factor'] == pytest.approx(4.0 / (s['median_ms'] / 1e3))
    assert s['real_time_factor'] > 1
  cold = out['cold_start']
  assert cold['error'] is None and cold['runs'] == 2
  assert 0 < cold['first_midi_s'] <= cold['exit_s']
  assert len(cold['all_first_midi_s']) == 2
  assert cold['peak_rss_mb'] > 10
  assert out['process_peak_rss_mb'] > 10
  assert out['runtime'] in ('ai_edge_litert', 'tflite_runtime', 'tf.lite')


def test_bench_table(tmp_path):
  r = edge('bench', '--model', DRUMS, '--num', 3, '--warmup', 0, '--cold_runs', 0,
           '--qpm', 60, cwd=tmp_path)
  assert r.returncode == 0, r.stderr
  text = r.stdout
  assert 'drums_2bar' in text and '8.00 s of music at 60 qpm' in text
  for word in ('decode (one graph)', 'decode_steps', 'median', 'p95', 'real-time',
               'cold start: skipped', 'peak RSS'):
    assert word in text, text


def test_bench_bad_num(tmp_path):
  r = edge('bench', '--model', MELODY, '--num', 0, cwd=tmp_path)
  assert r.returncode == 2
  assert len(r.stderr.strip().splitlines()) == 1 and '--num' in r.stderr
