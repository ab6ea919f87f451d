"""Choosing the tf.distribute strategy, in one place.

- TF_CONFIG naming more than one worker: MultiWorkerMirroredStrategy.
- Otherwise MirroredStrategy over the local GPUs, or over the CPU; with
  `cpu_replicas=N` the CPU is split into N logical devices (for tests and for
  checking multi-replica code on a laptop).
"""

import json
import os

import tensorflow as tf


def _tf_config():
  try:
    return json.loads(os.environ.get('TF_CONFIG', '') or '{}')
  except json.JSONDecodeError as e:
    raise ValueError('TF_CONFIG is not valid JSON (%s)' % e) from None


def tf_config_workers():
  cluster = _tf_config().get('cluster', {})
  return list(cluster.get('chief', [])) + list(cluster.get('worker', []))


def task():
  """(task type, index) of this process in TF_CONFIG, ('worker', 0) without one."""
  t = _tf_config().get('task', {})
  return t.get('type', 'worker'), int(t.get('index', 0))


def is_chief():
  """Whether this process writes checkpoints and summaries (the chief, else worker 0)."""
  cluster = _tf_config().get('cluster', {})
  kind, index = task()
  return kind == 'chief' or (not cluster.get('chief') and kind == 'worker' and index == 0)


def make_strategy(cpu_replicas=None):
  """The strategy for this process (see module docstring)."""
  if len(tf_config_workers()) > 1:
    return tf.distribute.MultiWorkerMirroredStrategy()
  if cpu_replicas and cpu_replicas > 1:
    cpus = tf.config.list_physical_devices('CPU')
    try:
      tf.config.set_logical_device_configuration(
          cpus[0], [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
    except RuntimeError as e:  # devices already initialised in this process
      if len(tf.config.list_logical_devices('CPU')) < cpu_replicas:
        raise RuntimeError('cannot split the CPU into %d replicas after TensorFlow has '
                           'started (%s)' % (cpu_replicas, e)) from None
    devices = ['/cpu:%d' % i for i in range(cpu_replicas)]
    return tf.distribute.MirroredStrategy(devices)
  if tf.config.list_logical_devices('GPU'):
    return tf.distribute.MirroredStrategy()
  return tf.distribute.MirroredStrategy(['/cpu:0'])
