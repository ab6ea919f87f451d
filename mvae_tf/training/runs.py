"""The layout of a training run directory, and loading a model from one.

  RUN_DIR/run.json          config name, hparams overrides, the full hparams and the
                            model's weights (`variables`: path -> shape)
  RUN_DIR/checkpoints/      tf.train checkpoints ckpt-<step> (weights and optimizer
                            state, all by weight path: make_checkpoint), the last N
                            kept; `checkpoint` names the newest
  RUN_DIR/train/, eval/     TensorBoard summaries

`restore_model` gives the trained MusicVAE of a run directory or of one of its
checkpoints (a `.../checkpoints/ckpt-N` prefix); mvae_tf.store.resolve loads every other
kind of model (saved, packaged, shipped) and calls it for these two.
"""

import json
import os

from mvae_tf.model.weights import named_weights

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


def _value_text(value):
  if isinstance(value, (list, tuple)):
    return '[%s]' % ','.join(_value_text(v) for v in value)
  return str(value)


def check_same_run(run_dir, info, keys=('config', 'hparams'), max_keys=6):
  """Raise RunError when run_dir was started with another config or hparams.

  The message is one line naming only what differs, e.g. "RUN was started with
  --config X --hparams z_size=256 (run: z_size=256, batch_size=512; this
  command: z_size=128, batch_size=64); pass the same ...".
  """
  old = read_run_info(run_dir)
  if old is None:
    return
  differ = []
  for key in keys:
    a, b = old.get(key), info.get(key)
    if a == b:
      continue
    if isinstance(a, dict) and isinstance(b, dict):
      differ += [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
                 if a.get(k) != b.get(k)]
    else:
      differ.append((key, a, b))
  if not differ:
    return
  started = '--config %s' % old.get('config')
  if 'hparams_overrides' in old:
    started += (' --hparams %s' % old['hparams_overrides'] if old['hparams_overrides']
                else ' and no --hparams')
  more = ' and %d more' % (len(differ) - max_keys) if len(differ) > max_keys else ''
  differ = differ[:max_keys]

  def side(i):
    return ', '.join('%s=%s' % (d[0], '(none)' if d[i] is None else _value_text(d[i]))
                     for d in differ) + more

  raise RunError('%s was started with %s (run: %s; this command: %s); pass the same --config '
                 'and --hparams to resume it, or use a new --run_dir' % (
                     run_dir, started, side(1), side(2)))


def _weights_by_path(model):
  """A trackable holding every weight of `model` under its path in the layer tree.

  tf.train.Checkpoint does not see weights that Keras 3 layers keep in lists
  (our LSTM stacks), and Keras' variable paths repeat across sibling layers
  (each core decoder has an `lstm`), so the checkpoint names each weight by
  the names of the layers that lead to it, e.g. `decoder/lstm/kernel_0`.
  """
  import tensorflow as tf
  weights = dict(named_weights(model))
  if len(weights) != len(model.weights) or \
      {id(v) for v in weights.values()} != {id(v) for v in model.weights}:
    raise ValueError('cannot name every weight of %s for a checkpoint' % model.name)
  holder = tf.Module(name='weights')
  holder.by_path = weights
  return holder


# Checkpoint keys (tf.train spells a '/' inside a name '.S' and a '.' '..').
_VALUE = '/.ATTRIBUTES/VARIABLE_VALUE'
_MODEL = 'model/by_path/'
_OPTIMIZER = 'optimizer/'
_ITERATIONS = 'optimizer/iterations' + _VALUE
# The layout before issue 11: the Keras optimizer object itself, which holds the
# model's weights and its own variables by position (optimizer/_variables/7, ...).
_OLD_OPTIMIZER = 'optimizer/_'
_LOCAL_CHARS = {'S': '/', '.': '.'}


class CheckpointMismatch(RunError):
  """A checkpoint of other variables than the model's (another config or hparams).

  `detail` names the first few missing, unexpected and reshaped paths;
  str() adds what to do.
  """

  def __init__(self, detail, advice=None):
    self.detail = detail
    super().__init__('%s; %s' % (detail, advice or 'pass the --config and --hparams the run '
                                 'was started with (its run.json), or use a new --run_dir'))


def _escape(name):
  return name.replace('.', '..').replace('/', '.S')


def _unescape(name):
  out, i = [], 0
  while i < len(name):
    if name[i] == '.' and i + 1 < len(name):
      out.append(_LOCAL_CHARS.get(name[i + 1], name[i + 1]))
      i += 2
    else:
      out.append(name[i])
      i += 1
  return ''.join(out)


def _display(key):
  """'model/by_path/decoder.Slstm.Skernel_0/.ATTRIBUTES/VARIABLE_VALUE' -> 'decoder/lstm/kernel_0'."""
  if key.endswith(_VALUE):
    key = key[:-len(_VALUE)]
  if key.startswith(_MODEL):
    return _unescape(key[len(_MODEL):])
  head, _, tail = key.rpartition('/')
  return '%s/%s' % (head.replace('/by_path', ''), _unescape(tail)) if head else key


def variable_shapes(model):
  """{weight path: shape} of a model, as run.json records them."""
  return {path: [int(d) for d in v.shape] for path, v in sorted(named_weights(model))}


class _Layout:
  """What make_checkpoint stored under which name (kept on the checkpoint it returns)."""

  def __init__(self, model, weights, items):
    self.model, self.weights, self.items = model, weights, items
    self.optimizer = self.iterations = None
    self.slots, self.others, self.by_attr = {}, {}, {}

  def expected(self, optimizer=True):
    """{checkpoint key: shape} of every variable this layout stores."""
    keys = {_MODEL + _escape(p) + _VALUE: list(v.shape) for p, v in self.weights.items()}
    if optimizer and self.optimizer is not None:
      keys[_ITERATIONS] = list(self.iterations.shape)
      for group, variables in (('by_path', self.slots), ('other', self.others)):
        keys.update({'%s%s/%s%s' % (_OPTIMIZER, group, _escape(k), _VALUE): list(v.shape)
                     for k, v in variables.items()})
    return keys


def _name_optimizer_variables(optimizer, layout):
  """Give every variable of a built Keras optimizer one name in `layout`.

  Slots (lists with one variable per trainable weight: Adam's `_momentums` and
  `_velocities`, ...) are named by the weight they belong to, found with
  `optimizer._get_variable_index`, and by their Keras suffix ('momentum'):
  `decoder/lstm/kernel_0/momentum`. Anything else but `iterations` (e.g. a
  learning rate variable) is named by its own name.
  """
  path_of = {id(v): p for p, v in layout.weights.items()}
  trainable = list(optimizer._trainable_variables)
  strangers = [v.path for v in trainable if id(v) not in path_of]
  if strangers:
    raise ValueError('the optimizer updates variables that are not weights of %s: %s'
                     % (layout.model.name, ', '.join(strangers[:3])))
  owned = {id(v) for v in optimizer.variables}
  layout.optimizer, layout.iterations = optimizer, optimizer._iterations
  named = {id(layout.iterations)}
  for attr, value in sorted(vars(optimizer).items()):
    if attr in ('_variables', '_trainable_variables') or not isinstance(value, (list, tuple)) \
        or not trainable or len(value) != len(trainable) \
        or not all(v is None or id(v) in owned for v in value):
      continue
    for ref in trainable:
      slot = value[optimizer._get_variable_index(ref)]
      if slot is None or id(slot) in named:
        continue
      keras_prefix = ref.path.replace('/', '_') + '_'
      suffix = slot.name[len(keras_prefix):] if slot.name.startswith(keras_prefix) \
          else attr.strip('_')
      key = '%s/%s' % (path_of[id(ref)], suffix)
      if key in layout.slots:
        raise ValueError('two optimizer variables would be saved as %s' % key)
      layout.slots[key] = slot
      layout.by_attr[attr, path_of[id(ref)]] = slot
      named.add(id(slot))
  for v in optimizer.variables:
    if id(v) not in named:
      if v.name in layout.others:
        raise ValueError('two optimizer variables would be saved as %s' % v.name)
      layout.others[v.name] = v
      named.add(id(v))


def make_checkpoint(model, optimizer=None, step=None):
  """A tf.train.Checkpoint of `model` (and `optimizer`, and a `step` variable), all by path.

    model/by_path/<weight path>               every weight, once (e.g. decoder/lstm/kernel_0)
    optimizer/iterations                      the optimizer's step: the global step
    optimizer/by_path/<weight path>/<slot>    each slot, by its weight (.../kernel_0/momentum)
    optimizer/other/<name>                    any other optimizer variable (Adam has none)

  Nothing is stored by position, so a change in the order of the weights or
  of the optimizer's variables cannot swap two weights of the same shape.
  The Keras optimizer object itself is not in the checkpoint (it would hold
  every weight a second time, by position). An optimizer that is not built
  yet is built here on model.trainable_variables: call this under the
  strategy's scope the optimizer was made in. Restore with restore_checkpoint.
  """
  import tensorflow as tf
  holder = _weights_by_path(model)
  items = dict(model=holder)
  layout = _Layout(model, holder.by_path, items)
  if optimizer is not None:
    if not optimizer.built:
      optimizer.build(model.trainable_variables)
    _name_optimizer_variables(optimizer, layout)
    state = tf.Module(name='optimizer_state')
    state.iterations = layout.iterations
    state.by_path = layout.slots
    if layout.others:
      state.other = layout.others
    items['optimizer'] = state
  if step is not None:
    items['step'] = step
  checkpoint = tf.train.Checkpoint(**items)
  checkpoint._mvae_layout = layout  # not trackable: not saved
  return checkpoint


def _listed(keys, shapes, n=3):
  keys = sorted(keys)
  text = ', '.join('%s %s' % (_display(k), list(shapes[k])) for k in keys[:n])
  return text + (' and %d more' % (len(keys) - n) if len(keys) > n else '')


def _compare(prefix, what, expected, stored, scope):
  """Raise CheckpointMismatch when the stored keys under `scope` are not the expected ones."""
  stored = {k: v for k, v in stored.items() if k.startswith(scope)}
  missing = [k for k in expected if k not in stored]
  unexpected = [k for k in stored if k not in expected]
  reshaped = sorted(k for k in expected if k in stored and list(stored[k]) != expected[k])
  parts = []
  if missing:
    parts.append('missing ' + _listed(missing, expected))
  if unexpected:
    parts.append('unexpected ' + _listed(unexpected, stored))
  if reshaped:
    parts.append('other shapes ' + ', '.join('%s %s (model %s)' % (
        _display(k), list(stored[k]), expected[k]) for k in reshaped[:3]) + (
            ' and %d more' % (len(reshaped) - 3) if len(reshaped) > 3 else ''))
  if parts:
    raise CheckpointMismatch('%s does not fit %s: %s' % (prefix, what, '; '.join(parts)))


def restore_checkpoint(checkpoint, prefix, warn=None):
  """Restore the checkpoint `prefix` into `checkpoint` (of make_checkpoint), by path.

  The checkpoint's variable names (tf.train.list_variables) are compared with
  the model's paths (and the optimizer's, when it has one) first: another
  set, or other shapes, raise CheckpointMismatch naming the first few.
  Checkpoints of the old layout (the Keras optimizer by position, before
  issue 11) restore too: the weights by path, `iterations`, and each Adam
  slot matched to its weight's path through the checkpoint's object graph
  (the old optimizer's `_trainable_variables/i` is the node of
  `model/by_path/PATH`), so no position is trusted; slots it cannot match
  restart at zero, with a warning through `warn`. A checkpoint that cannot
  be read raises tf.errors.OpError or AssertionError. Returns 'new' or 'old'.
  """
  import tensorflow as tf
  layout = checkpoint._mvae_layout
  stored = dict(tf.train.list_variables(prefix))
  old = any(k.startswith(_OLD_OPTIMIZER) for k in stored)
  with_optimizer = layout.optimizer is not None
  what = 'the model of %s' % (getattr(layout.model, 'config_name', None) or layout.model.name)
  scopes = (_MODEL, _OPTIMIZER) if with_optimizer and not old else (_MODEL,)
  expected = layout.expected(with_optimizer and not old)
  for scope in scopes:  # the weights first: the optimizer's slots follow them
    _compare(prefix, what, {k: v for k, v in expected.items() if k.startswith(scope)}, stored,
             scope)
  if with_optimizer and old:
    items = {k: v for k, v in layout.items.items() if k != 'optimizer'}
    tf.train.Checkpoint(**items).read(prefix).assert_existing_objects_matched().expect_partial()
    _restore_old_optimizer(prefix, layout, warn)
  else:
    checkpoint.read(prefix).assert_existing_objects_matched().expect_partial()
  return 'old' if old else 'new'


def _restore_old_optimizer(prefix, layout, warn):
  """iterations and the slots of an old-layout checkpoint, matched by path (see above)."""
  import tensorflow as tf
  from tensorflow.core.protobuf import trackable_object_graph_pb2
  reader = tf.train.load_checkpoint(prefix)
  graph = trackable_object_graph_pb2.TrackableObjectGraph()
  graph.ParseFromString(reader.get_tensor('_CHECKPOINTABLE_OBJECT_GRAPH'))

  def children(node):
    return {c.local_name: c.node_id for c in graph.nodes[node].children} if node is not None \
        else {}

  def value(node):
    keys = [a.checkpoint_key for a in graph.nodes[node].attributes if a.name == 'VARIABLE_VALUE']
    return reader.get_tensor(keys[0]) if keys else None

  root = children(0)
  path_of = {node: path for path, node in
             children(children(root.get('model')).get('by_path')).items()}
  optimizer = children(root.get('optimizer'))
  positions = children(optimizer.get('_trainable_variables'))
  weight_at = {int(i): path_of.get(node) for i, node in positions.items() if i.isdigit()}
  found = {}
  for attr, node in optimizer.items():
    for i, slot_node in children(node).items():
      target = layout.by_attr.get((attr, weight_at.get(int(i)))) if i.isdigit() else None
      if target is None or id(target) in found:
        continue
      v = value(slot_node)
      if v is not None and list(v.shape) == list(target.shape):
        found[id(target)] = (target, v)
  step = value(optimizer['_iterations']) if '_iterations' in optimizer else None
  if step is None:
    step = checkpoint_step(prefix) or 0
    if warn:
      warn('warning: %s has no optimizer iterations; the step is taken from its name (%d)'
           % (prefix, step))
  layout.iterations.assign(step)
  for target, v in found.values():
    target.assign(v)
  lost = len(layout.slots) - len(found) + len(layout.others)
  if lost and warn:
    warn('warning: %s is of the old checkpoint layout and %d of its %d optimizer variables '
         'could not be matched to a weight: they restart at zero (Adam moments)'
         % (prefix, lost, len(layout.slots) + len(layout.others)))


def record_variables(run_dir, model):
  """Add the weights' paths and shapes of `model` (or of a make_checkpoint checkpoint) to
  run.json as `variables`."""
  layout = getattr(model, '_mvae_layout', None)
  info = read_run_info(run_dir) or {}
  info['variables'] = variable_shapes(layout.model if layout else model)
  write_run_info(run_dir, info)


def checkpoint_step(prefix):
  """The step in a `.../ckpt-<step>` prefix."""
  try:
    return int(os.path.basename(prefix).rsplit('-', 1)[1])
  except (IndexError, ValueError):
    return None


def _first_line(error):
  return str(error).split('\n')[0].strip() or type(error).__name__


def restore_newest(prefixes, restore, fallback_on=(Exception,)):
  """The one restore-with-fallback loop (training resumes and restore_model use it).

  Calls restore(prefix) for each prefix, newest first, until one succeeds. A
  CheckpointMismatch stops at once (the older checkpoints of a run have the same
  variables); a `fallback_on` error moves to the previous one. Returns (prefix
  restored or None, ['prefix (first line of its error)', ...] of those that failed).
  """
  failures = []
  for prefix in prefixes:
    try:
      restore(prefix)
    except CheckpointMismatch:
      raise
    except fallback_on as e:
      message = _first_line(e)
      # RunError's messages already start with the checkpoint they are about.
      failures.append(message if message.startswith(prefix) else '%s (%s)' % (prefix, message))
      continue
    return prefix, failures
  return None, failures


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
  """The MusicVAE of a run dir (newest checkpoint) or a checkpoint prefix.

  Returns (model, step or None). Weights are restored by path; a checkpoint
  of other variables than the model's raises CheckpointMismatch (one line
  naming the first few paths). A checkpoint that fails to read falls back
  to the previous one of the run with a warning.
  """
  if checkpoint is not None:
    if os.path.isdir(checkpoint) and os.path.isdir(checkpoint_dir(checkpoint)):
      run_dir, checkpoint = checkpoint, None
    else:
      if not os.path.exists(checkpoint + '.index'):
        raise RunError('%s: not a checkpoint (expected a run dir or a .../checkpoints/ckpt-N '
                       'prefix; mvae_tf.store.resolve.load_keras takes any model)' % checkpoint)
      run = os.path.dirname(os.path.dirname(os.path.abspath(checkpoint)))
      model = _model_for_run(run, config, hparams)
      _restore(model, checkpoint, run if config is None and hparams is None else None)
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
  recorded = run_dir if config is None and hparams is None else None
  # _restore turns a damaged checkpoint into a RunError; anything else is a bug.
  prefix, failures = restore_newest(prefixes, lambda p: _restore(model, p, recorded),
                                    fallback_on=(RunError,))
  if prefix is None:
    raise RunError('no checkpoint of %s restores: %s' % (run_dir, '; '.join(failures)))
  if failures:
    import sys
    print('warning: could not restore %s; restored %s instead' % ('; '.join(failures), prefix),
          file=sys.stderr)
  return model, checkpoint_step(prefix)


def _restore(model, prefix, run_dir=None):
  """Restore the weights of `prefix` into `model` by path (restore_checkpoint).

  `run_dir`: the run whose run.json gave the config and hparams; a mismatch
  then says whether the checkpoint is of the variables run.json recorded
  (this version builds another model from them) or not.
  """
  import tensorflow as tf
  try:
    restore_checkpoint(make_checkpoint(model), prefix)
  except CheckpointMismatch as e:
    recorded = (read_run_info(run_dir) or {}).get('variables') if run_dir else None
    if recorded is None or recorded != _stored_shapes(prefix):
      raise
    raise CheckpointMismatch(e.detail, (
        'it has the variables %s records, which this version of mvae_tf no longer builds '
        'from its config and hparams: use the version that trained it' % os.path.join(
            run_dir, RUN_FILE))) from None
  except (tf.errors.OpError, AssertionError, ValueError, IndexError) as e:
    # Its variables match the model's (CheckpointMismatch otherwise): it is damaged
    # (a truncated .data raises IndexError, a truncated .index DataLossError).
    raise RunError('%s is damaged (%s): use an earlier checkpoint of the run, or train again'
                   % (prefix, _first_line(e))) from None


def _stored_shapes(prefix):
  """{weight path: shape} of the model weights in a checkpoint."""
  import tensorflow as tf
  return {_display(k): list(shape) for k, shape in tf.train.list_variables(prefix)
          if k.startswith(_MODEL) and k.endswith(_VALUE)}
