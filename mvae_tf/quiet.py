"""Keeping TensorFlow's and LiteRT's start-up noise off the terminal.

Importing TensorFlow prints 4-9 lines from C++ (absl's "All log messages before
absl::InitializeLog()", "Could not find cuda drivers", cuInit errors, oneDNN and
cpu_feature_guard notes) that no Python setting filters, and LiteRT prints
"Created TensorFlow Lite XNNPACK delegate"; the TFLite converter prints its
quantization settings on stdout. The `mvae` command silences them by
pointing the process's stderr (and for the converter, stdout) at /dev/null
around those calls; Python exceptions still propagate with their messages.
MVAE_VERBOSE=1 in the environment keeps everything.
"""

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


def import_tensorflow():
  """Import TensorFlow (and find its devices) without its start-up lines; returns tf."""
  if not verbose():
    os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'
  already = 'tensorflow' in sys.modules
  with silenced():
    import tensorflow as tf
    if not already:
      tf.config.list_physical_devices()  # cuInit and its error happen here
  if not verbose():
    tf.get_logger().setLevel('ERROR')
  return tf
