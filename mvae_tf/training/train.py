"""`mvae train`: training with tf.distribute, resumable, with TensorBoard summaries.

One process trains on its local devices (MirroredStrategy over the GPUs or
the CPU, `--cpu_replicas N` to split the CPU); several processes described by
TF_CONFIG train together (MultiWorkerMirroredStrategy). Each replica takes
global_batch / replicas examples; gradients are of each replica's mean loss
divided by the number of replicas and summed (vae.train_step), so the update
is the global batch's whatever the number of replicas.

The global step is the optimizer's `iterations`: it is saved with the
weights and the Adam moments, so a re-run of the same command resumes at the
exact step with the same learning rate, beta and sampling probability.
Checkpoints are written every --checkpoint_every steps, at the end, and on
SIGINT/SIGTERM; TensorFlow writes each one under a temporary name and then
updates the `checkpoint` index atomically, so `kill -9` loses at most one
interval and the index never names a partial checkpoint (should one still
fail to restore, the previous one is used, with a warning). A checkpoint is
written only when every weight is finite.
"""

import contextlib
import os
import shutil
import signal
import sys
import time

from mvae_tf.training import runs

SUMMARY_KEYS = ('loss', 'r_loss', 'kl_loss', 'kl_bits', 'beta', 'sampling_probability',
                'accuracy', 'grad_norm')


class TrainingError(RuntimeError):
  """Training cannot go on (the message says why and what to do)."""


class _Signals:
  """Turns SIGINT/SIGTERM into a flag the loop checks between steps."""

  def __init__(self):
    self.received = None
    self._old = {}

  def __enter__(self):
    for sig in (signal.SIGINT, signal.SIGTERM):
      try:
        self._old[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread
        pass
    return self

  def _handle(self, signum, frame):
    if self.received is not None:  # a second signal: stop now
      raise KeyboardInterrupt
    self.received = signum

  def __exit__(self, *exc):
    for sig, old in self._old.items():
      signal.signal(sig, old)


def _replica_step(model, optimizer, batch, step, seed):
  """One replica's share of a training step (inside strategy.run)."""
  import tensorflow as tf
  from mvae_tf.model import vae
  context = tf.distribute.get_replica_context()
  replica = context.replica_id_in_sync_group
  per_replica = tf.shape(batch[3])[0]
  # Every draw is made for the global batch and sliced (z's noise here, scheduled
  # sampling's in the decoder, `rows`), so that one replica and several draw the same
  # for the same example.
  total = per_replica * context.num_replicas_in_sync
  first = replica * per_replica
  noise = tf.random.stateless_normal([total, model.hparams.z_size], seed)
  noise = noise[first:first + per_replica]
  metrics = vae.train_step(model, optimizer, batch, step,
                           seed=tf.random.experimental.stateless_fold_in(seed, 1),
                           noise=noise, rows=(first, total))
  metrics['skipped'] = tf.cast(metrics['skipped'], tf.float32)
  return metrics


def make_train_step(strategy, model, optimizer, seed=0, mixed_precision=False):
  """A tf.function (distributed batch) -> metrics averaged over replicas.

  mixed_precision: the LSTM passes' matrix products in bfloat16 (lstm.matmul_dtype);
  weights, optimizer state and loss stay float32.
  """
  import tensorflow as tf
  from mvae_tf.model import lstm, vae
  dtype = tf.bfloat16 if mixed_precision else tf.float32

  def step_on(batch):
    step = tf.convert_to_tensor(optimizer.iterations)
    step_seed = tf.stack([tf.constant(seed, tf.int32), tf.cast(step, tf.int32)])
    with lstm.matmul_dtype(dtype):  # read while the step is traced
      per_replica = strategy.run(_replica_step,
                                 args=(model, optimizer, batch, step, step_seed))
    metrics = {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
               for k, v in per_replica.items()}
    metrics['learning_rate'] = vae.learning_rate(model.hparams, step)
    metrics['step'] = step
    return metrics

  # No autograph: the step's loops are explicit tf.while_loops, and converting the
  # model's source costs 4-7 s per trace (every `mvae train` start) for nothing.
  return tf.function(step_on, autograph=False)


def _dataset_fn(config, examples_path, global_batch, seed):
  from mvae_tf.data import pipeline

  def fn(context):
    return pipeline.get_dataset(
        config, examples_path, context.get_per_replica_batch_size(global_batch), mode='train',
        seed=seed + 7919 * context.input_pipeline_id,
        shard=(context.num_input_pipelines, context.input_pipeline_id))
  return fn


def _first_line(error):
  """The message of a TensorFlow error without its op and node lines."""
  text = getattr(error, 'message', None) or str(error)
  text = text.split('\n')[0]
  return text.split('}} ')[-1].strip()


def _all_finite(model):
  import numpy as np
  return all(np.isfinite(v.numpy()).all() for v in model.weights)


def _restore(checkpoint, run_dir, log):
  """Restore the newest checkpoint of run_dir that restores; its step, or 0.

  Weights and optimizer state (iterations: the global step, Adam moments)
  are restored by weight path (runs.restore_checkpoint; old-layout
  checkpoints too). A checkpoint of other variables stops with their paths
  (the older ones of the run have the same); one that cannot be read falls
  back to the previous one with a warning. The chief then records the
  model's weight paths and shapes in run.json (`variables`).
  """
  from mvae_tf.training import strategy as strategy_lib
  try:  # any failure to read one: try the previous one (runs.restore_newest)
    prefix, failures = runs.restore_newest(
        runs.list_checkpoints(run_dir),
        lambda p: runs.restore_checkpoint(checkpoint, p, warn=log))
  except runs.CheckpointMismatch as e:
    raise TrainingError(str(e)) from None
  if prefix is None and failures:
    raise TrainingError('no checkpoint of %s restores: %s; pass the --config and --hparams '
                        'the run was started with, or start a new --run_dir'
                        % (run_dir, '; '.join(failures)))
  if failures:
    log('warning: could not restore %s; resumed from %s' % ('; '.join(failures), prefix))
  step = runs.checkpoint_step(prefix) if prefix is not None else 0
  if strategy_lib.is_chief():
    runs.record_variables(run_dir, checkpoint)
  return step


def _initialise(model, optimizer, load, config, log):
  """Set model's weights (by name) and the global step from the model load() gives as
  (Keras model, step, name); the step."""
  from mvae_tf.model.weights import assign_keras_weights, weights_from_keras
  other, step, name = load()
  if other.config_name != config.name:
    raise TrainingError('--init_from %s is a model of --config %s, not of this run\'s --config '
                        '%s: give a model of the same config' % (
                            name, other.config_name, config.name))
  try:  # other hparams may differ (batch size, learning rate), not the weights' shapes
    assign_keras_weights(model, weights_from_keras(other))
  except ValueError as e:
    raise TrainingError('--init_from %s: %s; pass the --hparams it was trained with' % (
        name, str(e).split('\n')[0])) from None
  step = int(step or 0)
  optimizer.iterations.assign(step)
  log('initialised from %s at step %d (its weights; Adam moments start at zero)' % (
      name, step))
  return step


def _checkpoint_bytes(save_dir):
  """Bytes of the newest complete checkpoint in save_dir (0 if none)."""
  import tensorflow as tf
  prefix = tf.train.latest_checkpoint(save_dir)
  if not prefix:
    return 0
  directory, name = os.path.split(prefix)
  return sum(os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory)
             if n.startswith(name + '.'))


def _save_checkpoint(manager, save_dir, step):
  """manager.save; a full disk removes the partial checkpoint (TensorFlow leaves
  `ckpt-N_temp/` and perhaps `ckpt-N.*`) and raises a one-line WriteError; the
  earlier checkpoints and the index naming them are untouched."""
  import tensorflow as tf
  from mvae_tf import atomic
  try:
    manager.save(checkpoint_number=step)
  except (tf.errors.OpError, OSError) as e:
    if not atomic.is_disk_full(e):
      raise
    name = 'ckpt-%d' % step
    for n in os.listdir(save_dir):
      if n.startswith(name + '_temp') or n.startswith(name + '.'):
        path = os.path.join(save_dir, n)
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    raise atomic.WriteError(
        '%s: no space left on the device for the checkpoint of step %d (%s free, about %s '
        'needed); the earlier checkpoints are intact: free some space and re-run the same '
        'command to resume' % (
            save_dir, step, atomic.megabytes(atomic.free_bytes(save_dir) or 0),
            atomic.megabytes(_checkpoint_bytes(save_dir) or 1))) from None


def make_eval_step(model):
  """A tf.function (batch, step) -> metrics: teacher-forced, z from q with a fixed seed."""
  import tensorflow as tf
  return tf.function(lambda b, s: model.compute_loss(b, s, training=False, seed=[1, 2])[1],
                     autograph=False)


def _evaluate(fn, dataset, step, num_batches):
  """Mean eval metrics over up to num_batches batches."""
  totals, n = {}, 0
  for batch in dataset.take(num_batches):
    metrics = fn(batch, step)
    for k in SUMMARY_KEYS:
      if k in metrics:
        totals[k] = totals.get(k, 0.0) + float(metrics[k])
    n += 1
  return {k: v / n for k, v in totals.items()} if n else {}


def train(config, run_dir, examples_path, num_steps, hparams='', eval_examples_path=None,
          checkpoint_every=500, keep_checkpoints=5, summary_every=50, eval_batches=8,
          cpu_replicas=None, seed=0, max_bad_steps=20, progress=True, log=None,
          mixed_precision=False, init_from=None, keep_alive=None):
  """Train `config` in `run_dir` up to global step `num_steps` (resuming if it has checkpoints).

  mixed_precision: bfloat16 matrix products in the LSTM passes, float32 weights and
  loss (see make_train_step); recorded in run.json, and a run may change it on resume.
  init_from: a function giving (Keras MusicVAE, its training step, its name), called
  only when the run has no checkpoint: a model of the same config and weight shapes
  whose weights the run starts from, at that step (so the learning-rate, beta and
  sampling schedules go on from there); Adam's moments start at zero. A run with
  checkpoints resumes from them and never loads it. `mvae train --init_from NAME`
  passes a loader through mvae_tf.store.resolve (a later stage, so the caller
  supplies it). This is how a run continues on a machine that kept only the shipped model
  (float16 weights) and not the run directory.
  keep_alive: a list, or None. Given a list, the training input pipeline (its dataset and
  iterator) is appended to it instead of being destroyed when this returns. Destroying
  tf.data's multi-device iterator waits for the pipeline's work in flight while holding
  the GIL, which that work (the converter, Python in a numpy_function) needs; it took
  50-60 s after a SIGTERM in 2 of 3 tries (cat-mel_2bar_small, folk corpus), with the
  run's lock held all the while. A process that is about to exit (`mvae train`) passes a
  list and leaves without tearing the pipeline down; the checkpoint and summaries are
  written before this returns either way. Only a normal return (an interrupt included)
  hands it over: after an error (a damaged record, say) the pipeline is destroyed as the
  exception unwinds, which does not wait.

  Returns a dict: start_step, step, interrupted (signal number or None),
  seconds, steps_per_sec, last metrics.
  """
  from mvae_tf import configs
  from mvae_tf.training import strategy as strategy_lib
  log = log or (lambda msg: print(msg, file=sys.stderr))
  config = configs.get_config(config) if isinstance(config, str) else config
  config = config.with_hparams(hparams or '')
  hp = config.hparams
  info = dict(config=config.name, hparams=hp.to_dict(), hparams_overrides=hparams or '',
              mixed_precision=bool(mixed_precision))
  runs.check_same_run(run_dir, info)
  from mvae_tf.data import pipeline
  pipeline.check_examples_path(examples_path, config.name)
  if eval_examples_path:
    pipeline.check_examples_path(eval_examples_path, config.name)

  strategy = strategy_lib.make_strategy(cpu_replicas)
  replicas = strategy.num_replicas_in_sync
  if hp.batch_size % replicas:
    raise TrainingError('batch_size %d does not split over %d replicas; pass --hparams '
                        'batch_size=N with N a multiple of %d' % (hp.batch_size, replicas,
                                                                    replicas))
  chief = strategy_lib.is_chief()
  with contextlib.ExitStack() as stack:
    if chief:
      stack.enter_context(runs.RunLock(run_dir))
      runs.write_run_info(run_dir, info)
    return _train(config, run_dir, examples_path, num_steps, eval_examples_path,
                  checkpoint_every, keep_checkpoints, summary_every, eval_batches, seed,
                  max_bad_steps, progress, log, strategy, chief, mixed_precision, init_from,
                  keep_alive)


def _train(config, run_dir, examples_path, num_steps, eval_examples_path, checkpoint_every,
           keep_checkpoints, summary_every, eval_batches, seed, max_bad_steps, progress, log,
           strategy, chief, mixed_precision=False, init_from=None, keep_alive=None):
  import tensorflow as tf
  from mvae_tf.training import strategy as strategy_lib
  from mvae_tf.data import pipeline
  from mvae_tf.model.vae import MusicVAE, make_optimizer
  hp = config.hparams
  with strategy.scope():
    model = MusicVAE.from_config_name(config)
    optimizer = make_optimizer(hp, model)
    checkpoint = runs.make_checkpoint(model, optimizer)
  start = _restore(checkpoint, run_dir, log)
  if start:
    log('resuming %s from step %d' % (run_dir, start))
  elif init_from is not None:
    start = _initialise(model, optimizer, init_from, config, log)
  if start >= num_steps:
    log('%s is already at step %d (--num_steps %d): nothing to do' % (run_dir, start, num_steps))
    return dict(start_step=start, step=start, interrupted=None, seconds=0.0,
                steps_per_sec=0.0, metrics={})
  # Non-chief workers must take part in saving, into a directory of their own.
  save_dir = runs.checkpoint_dir(run_dir) if chief else os.path.join(
      run_dir, '.worker-%d-%d' % (strategy_lib.task()[1], os.getpid()))
  manager = tf.train.CheckpointManager(checkpoint, save_dir, max_to_keep=keep_checkpoints,
                                       step_counter=optimizer.iterations)

  data_seed = (seed * 1000003 + start) % (2**31 - 1)
  dataset = strategy.distribute_datasets_from_function(
      _dataset_fn(config, examples_path, hp.batch_size, data_seed))
  iterator = iter(dataset)
  step_fn = make_train_step(strategy, model, optimizer, seed, mixed_precision)
  eval_data = None
  if eval_examples_path and chief:
    eval_data = pipeline.get_dataset(config, eval_examples_path, min(hp.batch_size, 64),
                                     mode='eval')
    eval_fn = make_eval_step(model)
  writers = {}
  if chief:
    writers['train'] = tf.summary.create_file_writer(os.path.join(run_dir, 'train'))
    if eval_data is not None:
      writers['eval'] = tf.summary.create_file_writer(os.path.join(run_dir, 'eval'))

  def save(step):
    if not _all_finite(model):
      raise TrainingError('weights are not finite at step %d; not checkpointed. The last '
                          'good checkpoint is kept in %s' % (step, runs.checkpoint_dir(run_dir)))
    _save_checkpoint(manager, save_dir, step)
    if eval_data is not None:
      metrics = _evaluate(eval_fn, eval_data, step, eval_batches)
      with writers['eval'].as_default(step=step):
        for k, v in metrics.items():
          tf.summary.scalar(k, v)
      if metrics:
        log('step %d eval: loss %.3f accuracy %.3f kl %.1f bits' % (
            step, metrics['loss'], metrics['accuracy'], metrics['kl_bits']))

  bar = None
  if progress and chief:
    from tqdm import tqdm
    bar = tqdm(total=num_steps, initial=start, unit='step', desc='train', file=sys.stderr,
               dynamic_ncols=True, smoothing=0.1)
  step, bad, metrics = start, 0, {}
  t0 = time.perf_counter()
  window_t, window_steps = t0, 0
  interrupted = None
  try:
    with _Signals() as signals:
      while step < num_steps:
        try:
          metrics = step_fn(next(iterator))
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
          if 'IteratorGetNext' not in str(e) and 'corrupted record' not in str(e):
            raise
          raise TrainingError(
              'reading %s at step %d: %s; check it with `mvae inspect FILE --config %s`' % (
                  ', '.join(examples_path if isinstance(examples_path, (list, tuple))
                            else [examples_path]), step, _first_line(e), config.name)) from None
        step += 1
        window_steps += 1
        loss, skipped = float(metrics['loss']), float(metrics['skipped'])
        if skipped > 0 or not tf.math.is_finite(loss):
          bad += 1
          if bad >= max_bad_steps:
            raise TrainingError(
                '%d steps in a row had a non-finite loss or a gradient norm of at least %g '
                '(last loss %r at step %d); their gradients were zeroed and they were not '
                'checkpointed. Lower the learning rate (--hparams learning_rate=...) or check '
                'the data'
                % (bad, hp.grad_norm_clip_to_zero, loss, step))
        else:
          bad = 0
        if bar is not None:
          bar.update(1)
          if step % 10 == 0:
            bar.set_postfix(loss='%.2f' % loss, acc='%.3f' % float(metrics['accuracy']))
        if 'train' in writers and (step % summary_every == 0 or step == num_steps):
          now = time.perf_counter()
          with writers['train'].as_default(step=step):
            for k in SUMMARY_KEYS + ('learning_rate',):
              tf.summary.scalar(k, metrics[k])
            tf.summary.scalar('steps_per_sec', window_steps / max(now - window_t, 1e-9))
          window_t, window_steps = now, 0
        if signals.received is not None:
          interrupted = signals.received
          break
        if step % checkpoint_every == 0 and step < num_steps:
          save(step)
      save(step)
  finally:
    if bar is not None:
      bar.close()
    for w in writers.values():
      try:
        w.flush()
      except tf.errors.OpError as e:  # a full disk: the checkpoint's error says so
        log('warning: TensorBoard summaries of %s not flushed: %s' % (
            run_dir, str(e).split('\n')[0]))
    if not chief:
      shutil.rmtree(save_dir, ignore_errors=True)
  seconds = time.perf_counter() - t0
  if interrupted is not None:
    log('stopped by %s at step %d; checkpoint saved, re-run the same command to resume'
        % (signal.Signals(interrupted).name, step))
  if keep_alive is not None:  # a normal end only: an error unwinds and destroys it as before
    keep_alive.extend([dataset, iterator])
  return dict(start_step=start, step=step, interrupted=interrupted, seconds=seconds,
              steps_per_sec=(step - start) / max(seconds, 1e-9),
              metrics={k: float(v) for k, v in metrics.items()})
