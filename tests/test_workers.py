"""mvae_tf.workers: the one worker pool (prepare, inspect, corpus)."""

import math
import os

import pytest

from mvae_tf import workers

_initialised = []


@pytest.fixture(autouse=True)
def _fresh():
  _initialised.clear()
  yield
  _initialised.clear()


def _init(value):
  _initialised.append(value)


def _pid_parent_and_init(item):
  return item, os.getpid(), os.getppid(), list(_initialised)


def test_a_pool_keeps_order_runs_the_initializer_and_never_forks_this_process():
  assert workers.start_method() == 'forkserver'  # Linux and macOS have it
  results = list(workers.imap(_pid_parent_and_init, range(40), workers=2, initializer=_init,
                              initargs=('ready',), chunksize=3))
  assert [r[0] for r in results] == list(range(40))
  pids = {r[1] for r in results}
  assert 1 <= len(pids) <= 2 and os.getpid() not in pids  # one may take every chunk
  # Started by the fork server, not forked from this process (whose threads may hold locks).
  assert {r[2] for r in results} != {os.getpid()}
  assert all(r[3] == ['ready'] for r in results)  # once per worker, in the worker
  assert _initialised == []


def test_one_worker_or_few_items_run_here_in_order():
  assert list(workers.imap(math.factorial, range(8), workers=1)) == [
      math.factorial(i) for i in range(8)]
  results = list(workers.imap(_pid_parent_and_init, [5, 6], workers=4, initializer=_init,
                              initargs=('here',), min_items=3))
  assert [(r[0], r[1]) for r in results] == [(5, os.getpid()), (6, os.getpid())]
  assert _initialised == ['here']


def _negated(item):
  return -item if isinstance(item, int) else ('encoded', item)


def _encode(item):
  return 'x%d' % item


def test_encode_applies_only_when_a_pool_is_used():
  """inspect sends NoteSequences to workers as bytes, and converts them here as they are."""
  here = list(workers.imap(_negated, [1, 2, 3], workers=1, encode=_encode))
  assert here == [-1, -2, -3]
  pooled = list(workers.imap(_negated, [1, 2, 3], workers=2, encode=_encode))
  assert pooled == [('encoded', 'x1'), ('encoded', 'x2'), ('encoded', 'x3')]


def test_inspect_gives_the_same_reports_here_and_in_a_pool():
  from conftest import scale_melody
  from mvae_tf.data import windows
  sequences = [scale_melody(bars=2 + i % 3) for i in range(20)]
  here = windows.inspect_sequences(sequences, 'cat-mel_2bar_small', workers=1)
  pooled = windows.inspect_sequences(sequences, 'cat-mel_2bar_small', workers=2)
  assert here == pooled and len(here) == 20 and here[0]['windows'] > 0
