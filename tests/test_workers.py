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
