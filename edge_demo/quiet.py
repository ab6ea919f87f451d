"""Keeping LiteRT's and TensorFlow's C++ start-up lines ("Created TensorFlow Lite
XNNPACK delegate for CPU.", absl and CUDA notes) off the terminal: the process's
stderr points at /dev/null around those calls. MVAE_VERBOSE=1 keeps them."""

import contextlib
import os
import sys


def verbose():
  return os.environ.get('MVAE_VERBOSE', '').strip() not in ('', '0')


@contextlib.contextmanager
def silenced(streams=(2,)):
  """File descriptors `streams` (2: stderr, 1: stdout) to /dev/null, unless verbose."""
  if verbose():
    yield
    return
  for f in (sys.stdout, sys.stderr):
    try:
      f.flush()
    except (OSError, ValueError):
      pass
  saved = []
  devnull = os.open(os.devnull, os.O_WRONLY)
  try:
    for fd in streams:
      saved.append((fd, os.dup(fd)))
      os.dup2(devnull, fd)
    yield
  finally:
    for fd, copy in saved:
      os.dup2(copy, fd)
      os.close(copy)
    os.close(devnull)
