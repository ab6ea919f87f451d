"""A damaged or truncated TFRecord never hangs `train` or `evaluate`: they stop
within seconds with one line naming the file, the record and `mvae inspect`."""

import os
import subprocess
import sys
import time

import pytest

from conftest import scale_melody, varied_melody
from mvae_tf.training import runs
from mvae_tf.data import tfrecord

CONFIG = 'tiny-mel_2bar'
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONUNBUFFERED='1')
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope='module')
def files(tmp_path_factory):
  d = tmp_path_factory.mktemp('damaged')
  good = d / 'good.tfrecord'
  with tfrecord.AtomicTFRecordWriter(str(good)) as w:
    for i in range(40):
      ns = varied_melody(bars=10) if i % 2 else scale_melody(bars=6, start_pitch=50 + i % 20)
      w.write(ns.SerializeToString())
  data = good.read_bytes()
  flipped = bytearray(data)
  flipped[len(data) * 2 // 3] ^= 0xFF
  (d / 'flipped.tfrecord').write_bytes(bytes(flipped))
  (d / 'truncated.tfrecord').write_bytes(data[:len(data) * 2 // 3])
  return {p.stem: str(p) for p in d.iterdir()}


def _run(args, timeout=120):
  t0 = time.time()
  out = subprocess.run([sys.executable, '-m', 'mvae_tf', *args], capture_output=True,
                       text=True, env=ENV, timeout=timeout)
  return out, time.time() - t0


def _one_line_naming(out, path):
  lines = out.stderr.strip().splitlines()
  assert out.returncode == 2, out.stderr[-3000:]
  assert 'Traceback' not in out.stderr, out.stderr[-3000:]
  assert len(lines) == 1, out.stderr[-3000:]
  assert path in lines[0] and 'record' in lines[0] and 'mvae inspect' in lines[0], lines[0]
  return lines[0]


@pytest.mark.parametrize('damage', ['flipped', 'truncated'])
def test_train_on_a_damaged_file_stops_at_once_and_releases_its_lock(tmp_path, files, damage):
  run_dir = str(tmp_path / 'run')
  out, seconds = _run(['train', '--config', CONFIG, '--run_dir', run_dir, '--examples_path',
                       files['good'], files[damage], '--num_steps', '20', '--no_progress'])
  line = _one_line_naming(out, files[damage])
  assert ('bad data checksum' if damage == 'flipped' else 'truncated') in line
  assert seconds < 90
  with runs.RunLock(run_dir):  # not left held
    pass


def test_a_damaged_eval_file_is_refused_before_training(tmp_path, files):
  out, _ = _run(['train', '--config', CONFIG, '--run_dir', str(tmp_path / 'run'),
                 '--examples_path', files['good'], '--eval_examples_path', files['flipped'],
                 '--num_steps', '20', '--no_progress'])
  _one_line_naming(out, files['flipped'])
  assert not os.path.exists(os.path.join(tmp_path, 'run', 'checkpoints'))


def test_evaluate_on_a_damaged_file_is_one_line(tmp_path, files):
  out, _ = _run(['evaluate', '--config', CONFIG, '--run_dir', str(tmp_path / 'nowhere'),
                 '--examples_path', files['truncated']])
  _one_line_naming(out, files['truncated'])


def test_inspect_on_a_damaged_file_names_the_record(files):
  out, _ = _run(['inspect', files['flipped'], '--config', CONFIG])
  assert out.returncode == 2 and 'Traceback' not in out.stderr
  assert 'bad data checksum' in out.stderr and 'record' in out.stderr


_UNCHECKED = '''
import sys
from mvae_tf.data import pipeline
pipeline.check_examples_path = lambda p, name='': [p] if isinstance(p, str) else list(p)
from mvae_tf.cli import main as cli
sys.exit(cli.main(sys.argv[1:]))
'''


def test_damage_met_while_training_stops_instead_of_hanging(tmp_path, files):
  """Should tf.data meet damage the up-front check did not see (a file changed
  under a running training), the step loop stops with one line; before, the
  DataLossError left 16 threads waiting forever."""
  t0 = time.time()
  out = subprocess.run(
      [sys.executable, '-c', _UNCHECKED, 'train', '--config', CONFIG, '--run_dir',
       str(tmp_path / 'run'), '--examples_path', files['flipped'], '--num_steps', '50',
       '--no_progress'], capture_output=True, text=True, env=ENV, timeout=120)
  assert time.time() - t0 < 90
  assert out.returncode == 2, out.stderr[-3000:]
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith('mvae train: error: reading ') and files['flipped'] in last
  assert 'corrupted record' in last and 'mvae inspect' in last
