"""The layout of a training run directory, and loading a model from one.

  RUN_DIR/run.json          config name, hparams overrides and the full hparams
  RUN_DIR/checkpoints/      tf.train checkpoints ckpt-<step> (model, optimizer, step),
                            the last N kept; `checkpoint` names the newest
  RUN_DIR/train/, eval/     TensorBoard summaries

`restore_model` gives the trained MusicVAE of a run directory, of one of its
checkpoints (a `.../checkpoints/ckpt-N` prefix) or of a saved model directory
(`model.keras`, from import-magenta or `mvae export`).
"""

import json
import os

RUN_FILE = 'run.json'
CHECKPOINT_DIR = 'checkpoints'


class RunError(ValueError):
  """A run directory or checkpoint that cannot be used (the message says why and what to do)."""


class RunLock:
  """An exclusive lock on a run directory, held while a process trains in it.

  Two trainings writing the same checkpoints would interleave them; the
  second one is refused with the pid of the first. The lock is an flock, so
  it goes away with its process, however that ends (kill -9 included).
  """

  def __init__(self, run_dir):
    self.path = os.path.join(run_dir, '.lock')
    self._file = None

  def __enter__(self):
    import fcntl
    from mvae_tf import atomic
    atomic.make_dirs(os.path.dirname(self.path))
    try:
      f = open(self.path, 'a+')
    except OSError as e:
      raise atomic.WriteError(atomic.describe(self.path, e)) from None
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      f.seek(0)
      pid = f.read().strip() or '?'
      f.close()
      raise RunError('another process (pid %s) is training in %s; wait for it or stop it, '
                     'or use another --run_dir' % (pid, os.path.dirname(self.path))) from None
    try:
      f.seek(0)
      f.truncate()
      f.write(str(os.getpid()))
      f.flush()
    except OSError as e:
      f.close()
      raise atomic.WriteError(atomic.describe(self.path, e)) from None
    self._file = f
    return self

  def __exit__(self, *exc):
    self._file.close()


def checkpoint_dir(run_dir):
  return os.path.join(run_dir, CHECKPOINT_DIR)


def read_run_info(run_dir):
  """The run.json of `run_dir`, or None when there is none."""
  path = os.path.join(run_dir, RUN_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise RunError('%s: unreadable (%s); restore it or start a new --run_dir' % (path, e)) from None


def write_run_info(run_dir, info):
  """Write run.json atomically."""
  from mvae_tf import atomic
  atomic.write_json(os.path.join(run_dir, RUN_FILE), info)


def check_same_run(run_dir, info, keys=('config', 'hparams')):
  """Raise RunError when run_dir was started with another config or hparams."""
  old = read_run_info(run_dir)
  if old is None:
    return
  for key in keys:
    if old.get(key) != info.get(key):
      raise RunError(
          '%s was started with %s=%r, this command has %r; pass the same --config and '
          '--hparams to resume it, or use a new --run_dir' % (
              run_dir, key, old.get(key), info.get(key)))


def _named_weights(layer, prefix=''):
  """(layer path/weight name, weight) for a layer and its sublayers, depth first."""
  for v in layer._trainable_variables + layer._non_trainable_variables:
    yield prefix + v.name, v
  for sub in layer._flatten_layers(include_self=False, recursive=False):
    yield from _named_weights(sub, prefix + sub.name + '/')


def _weights_by_path(model):
  """A trackable holding every weight of `model` under its path in the layer tree.

  tf.train.Checkpoint does not see weights that Keras 3 layers keep in lists
  (our LSTM stacks), and Keras' variable paths repeat across sibling layers
  (each core decoder has an `lstm`), so the checkpoint names each weight by
  the names of the layers that lead to it, e.g. `decoder/lstm/kernel_0`.
  """
  import tensorflow as tf
  weights = dict(_named_weights(model))
  if len(weights) != len(model.weights) or \
      {id(v) for v in weights.values()} != {id(v) for v in model.weights}:
    raise ValueError('cannot name every weight of %s for a checkpoint' % model.name)
  holder = tf.Module(name='weights')
  holder.by_path = weights
  return holder


def make_checkpoint(model, optimizer=None, step=None):
  import tensorflow as tf
  items = dict(model=_weights_by_path(model))
  if optimizer is not None:
    items['optimizer'] = optimizer
  if step is not None:
    items['step'] = step
  return tf.train.Checkpoint(**items)


def checkpoint_step(prefix):
  """The step in a `.../ckpt-<step>` prefix."""
  try:
    return int(os.path.basename(prefix).rsplit('-', 1)[1])
  except (IndexError, ValueError):
    return None


def list_checkpoints(run_dir):
  """Checkpoint prefixes of a run, newest first (complete ones: with .index)."""
  import tensorflow as tf
  directory = checkpoint_dir(run_dir)
  state = tf.train.get_checkpoint_state(directory)
  # get_checkpoint_state joins relative entries to `directory` itself.
  prefixes = list(state.all_model_checkpoint_paths) if state else []
  prefixes = [p for p in prefixes if os.path.exists(p + '.index')]
  return sorted(prefixes, key=lambda p: checkpoint_step(p) or -1, reverse=True)


def _model_for_run(run_dir, config=None, hparams=None):
  from mvae_tf.model.vae import MusicVAE
  info = read_run_info(run_dir) or {}
  config = config or info.get('config')
  if not config:
    raise RunError('%s has no %s: pass --config (and --hparams) of the run' % (run_dir, RUN_FILE))
  overrides = hparams if hparams is not None else info.get('hparams_overrides', '')
  return MusicVAE.from_config_name(config, overrides)


def restore_model(run_dir=None, checkpoint=None, config=None, hparams=None):
  """The MusicVAE of a run dir (newest checkpoint), a checkpoint prefix or a saved model.

  Returns (model, step or None). A checkpoint that fails to restore falls
  back to the previous one of the run with a warning.
  """
  from mvae_tf.model.trained_model import MODEL_FILE, load_model
  if checkpoint is not None:
    if os.path.isdir(checkpoint) and os.path.exists(os.path.join(checkpoint, MODEL_FILE)) or \
        checkpoint.endswith('.keras'):
      return load_model(checkpoint), None
    if os.path.isdir(checkpoint) and os.path.isdir(checkpoint_dir(checkpoint)):
      run_dir, checkpoint = checkpoint, None
    else:
      if not os.path.exists(checkpoint + '.index'):
        raise RunError('%s: not a checkpoint (expected a run dir, a .../checkpoints/ckpt-N '
                       'prefix, or a directory with %s)' % (checkpoint, MODEL_FILE))
      run = os.path.dirname(os.path.dirname(os.path.abspath(checkpoint)))
      model = _model_for_run(run, config, hparams)
      _restore(model, checkpoint)
      return model, checkpoint_step(checkpoint)
  if run_dir is None:
    raise RunError('give a run directory or a checkpoint')
  if not os.path.isdir(run_dir):
    raise RunError('%s: no such run directory' % run_dir)
  prefixes = list_checkpoints(run_dir)
  if not prefixes:
    raise RunError('%s has no checkpoint yet: train first (mvae train --run_dir %s ...)' % (
        run_dir, run_dir))
  model = _model_for_run(run_dir, config, hparams)
  errors = []
  for prefix in prefixes:
    try:
      _restore(model, prefix)
      if errors:
        import sys
        print('warning: %s' % '; '.join(errors), file=sys.stderr)
      return model, checkpoint_step(prefix)
    except RunError as e:
      errors.append(str(e))
  raise RunError('no checkpoint of %s restores: %s' % (run_dir, '; '.join(errors)))


def _restore(model, prefix):
  import tensorflow as tf
  try:
    make_checkpoint(model).read(prefix).assert_existing_objects_matched().expect_partial()
  except (tf.errors.OpError, AssertionError, ValueError) as e:
    raise RunError('%s does not restore into this model (%s): check --config and --hparams'
                   % (prefix, str(e).split('\n')[0])) from None
