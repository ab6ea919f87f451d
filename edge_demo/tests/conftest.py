"""Fixtures of edge_demo's tests: they run with only a LiteRT runtime, numpy, mido and
pytest (no mvae_tf, note_seq or TensorFlow import), from the repository root:

  python -m pytest -c edge_demo/pytest.ini edge_demo/tests

The models are the ones the repository ships (mvae_tf/pretrained/*/model.tflite),
found relative to this file; MVAE_EDGE_LEGACY=1 marks the run on tflite-runtime 2.14
(test_cli.py checks the runtime is the one it says).
"""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(HERE, 'data')
PRETRAINED = os.path.join(REPO, 'mvae_tf', 'pretrained')


def _model(name):
  path = os.path.join(PRETRAINED, name, 'model.tflite')
  if not os.path.isfile(path):
    pytest.skip('no %s (run from the mvae_tf repository)' % os.path.relpath(path, REPO))
  return path


@pytest.fixture(scope='session')
def melody_model():
  """The shipped 2-bar melody model (float16, batch 1)."""
  return _model('folk-mel_2bar')


@pytest.fixture(scope='session')
def melody_16bar_model():
  """The shipped 16-bar hierarchical melody model (float16, batch 1)."""
  return _model('folk-mel_16bar')


@pytest.fixture(scope='session')
def trio_16bar_model():
  """The shipped 16-bar hierarchical trio model (melody, bass, drums; float16, batch 1)."""
  return _model('trio_16bar')


@pytest.fixture(scope='session')
def drums_model():
  """The shipped 2-bar drums model (float16, batch 1)."""
  return _model('drums_2bar')


@pytest.fixture(scope='session')
def data_dir():
  """edge_demo/tests/data: midi/{melody,drums}/*.mid (copies of mvae_tf's converter
  reference files) and windows_expected.json (mvae_tf's windows of them)."""
  return DATA


@pytest.fixture
def cli(capsys):
  """Runs `python -m edge_demo ARGS` in this process: (exit status, stdout, stderr)."""
  from edge_demo import cli as cli_lib

  def run(*args):
    try:
      rc = cli_lib.main([str(a) for a in args])
    except SystemExit as e:  # argparse
      rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err
  return run


@pytest.fixture
def run_process():
  """Runs `python [OPTIONS] -m edge_demo ARGS` in a new process from the repository root:
  the CompletedProcess (text)."""
  def run(*args, python_options=()):
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    return subprocess.run([sys.executable] + list(python_options) + ['-m', 'edge_demo'] +
                          [str(a) for a in args], cwd=REPO, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
  return run
