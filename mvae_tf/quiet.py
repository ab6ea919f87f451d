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

import os
import sys

from edge_demo.quiet import silenced, verbose  # noqa: F401  (one copy, TF-free)


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
