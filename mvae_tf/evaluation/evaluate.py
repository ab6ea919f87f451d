"""`mvae evaluate`: reconstruction accuracy as the paper measures it, beside its table.

For every window, z is drawn from q(z|x) (a stateless seed per batch, so a
run is reproducible) and decoded three times: teacher-forced (fed the previous
target); sampled, fed its own argmax ("sampled"); and sampled, fed its own
temperature-1 samples ("sampled_t1": what the original's eval job measures, whose
scheduled-sampling probability is 1 outside training). Accuracy is the
fraction of real (unpadded) steps whose argmax equals the target, rest and
hold steps included; for a trio, per part (melody, bass, drums) and their
mean. Also: accuracy per bar, mean-per-class accuracy (the mean over the
classes that occur as targets of each class's recall), the reconstruction
loss (cross-entropy summed over real steps, nats per window, teacher-forced)
and KL(q(z|x) || N(0, I)) in bits per window.

Counts are summed over batches before dividing (a short last batch weighs
what its steps weigh). The metric functions work on numpy arrays of class
indices, so they can be checked by hand; `evaluate` feeds them a model.
Importing this module does not import TensorFlow.
"""

import dataclasses
import itertools
import math
import weakref

import numpy as np

TRIO_PARTS = ('melody', 'bass', 'drums')

# The paper's Table 1 (reconstruction accuracy, Lakh MIDI held-out data).
# Columns, in its order: (decoder, decoding mode).
PAPER_COLUMNS = (('flat', 'teacher_forced'), ('hierarchical', 'teacher_forced'),
                 ('flat', 'sampled'), ('hierarchical', 'sampled'))
COLUMN_TITLES = ('flat, teacher-forced', 'hierarchical, teacher-forced', 'flat, sampled',
                 'hierarchical, sampled')
# Rows: (model, converter kind, bars, part, accuracies in PAPER_COLUMNS order; None: not run).
PAPER_TABLE = (
    ('2-bar drum', 'drums', 2, 'drums', (0.979, None, 0.917, None)),
    ('2-bar melody', 'melody', 2, 'melody', (0.986, None, 0.951, None)),
    ('16-bar melody', 'melody', 16, 'melody', (0.883, 0.919, 0.620, 0.812)),
    ('16-bar drum', 'drums', 16, 'drums', (0.884, 0.928, 0.549, 0.879)),
    ('trio (melody)', 'trio', 16, 'melody', (0.796, 0.848, 0.579, 0.753)),
    ('trio (bass)', 'trio', 16, 'bass', (0.829, 0.880, 0.565, 0.773)),
    ('trio (drums)', 'trio', 16, 'drums', (0.903, 0.912, 0.641, 0.863)),
)
STEPS_PER_BAR = 16


class EmptyDatasetError(ValueError):
  """The data set yields no window to evaluate."""


# --- Metrics on class indices (numpy). ---

def step_mask(lengths, num_steps):
  """[B, num_steps] bool: True at the real steps t < lengths[b]."""
  return np.arange(num_steps)[None, :] < np.asarray(lengths).reshape(-1, 1)


def part_names(output_depths):
  """Names of a model's output parts: trio's three, else 'melody' (90) or 'drums' (512)."""
  if len(output_depths) == 3:
    return TRIO_PARTS
  if len(output_depths) == 1:
    return ({90: 'melody', 512: 'drums'}.get(int(output_depths[0]), 'output'),)
  return tuple('part%d' % p for p in range(len(output_depths)))


def _ratio(num, den):
  return num / den if den else float('nan')


@dataclasses.dataclass
class Counts:
  """Correct and real steps of one decoding mode; `a + b` sums two batches' counts."""
  correct: np.ndarray  # [P, bars] correct real steps per part and bar
  real: np.ndarray  # [bars] real steps per bar (the same for every part)
  class_correct: tuple  # per part, [D_p]: correct real steps by target class
  class_real: tuple  # per part, [D_p]: real steps by target class

  def __add__(self, other):
    return Counts(self.correct + other.correct, self.real + other.real,
                  tuple(a + b for a, b in zip(self.class_correct, other.class_correct)),
                  tuple(a + b for a, b in zip(self.class_real, other.class_real)))

  def accuracy(self):
    """Correct real steps over real steps, all parts together (the mean over parts)."""
    return _ratio(self.correct.sum(), self.correct.shape[0] * self.real.sum())

  def per_part(self):
    """[P] accuracy of each part."""
    return np.array([_ratio(c, self.real.sum()) for c in self.correct.sum(1)])

  def per_bar(self):
    """[bars] accuracy of each bar over all parts; nan for a bar no window reaches."""
    parts = self.correct.shape[0]
    return np.array([_ratio(c, parts * r) for c, r in zip(self.correct.sum(0), self.real)])

  def mean_per_class(self):
    """[P] per part: the mean, over classes that occur as targets, of their recall."""
    out = []
    for correct, real in zip(self.class_correct, self.class_real):
      seen = real > 0
      out.append(float(np.mean(correct[seen] / real[seen])) if seen.any() else float('nan'))
    return np.array(out)


def count_correct(predictions, targets, lengths, depths, steps_per_bar=STEPS_PER_BAR):
  """Counts of predictions equal to targets at the real steps.

  predictions, targets: class indices [B, T, P] (or [B, T] for one part);
  lengths: [B] real steps per window; depths: classes per part;
  steps_per_bar: bar length in steps (a partial last bar is a bar).
  """
  pred, tgt = np.asarray(predictions, np.int64), np.asarray(targets, np.int64)
  if tgt.ndim == 2:
    pred, tgt = pred[..., None], tgt[..., None]
  batch, steps, parts = tgt.shape
  if pred.shape != tgt.shape or parts != len(depths):
    raise ValueError('predictions %s and targets %s must both be [B, T, %d]'
                     % (pred.shape, tgt.shape, len(depths)))
  mask = step_mask(lengths, steps)
  hit = (pred == tgt) & mask[..., None]
  bars = -(-steps // steps_per_bar)
  pad = [(0, 0), (0, bars * steps_per_bar - steps)]
  by_bar = np.pad(hit, pad + [(0, 0)]).reshape(batch, bars, steps_per_bar, parts)
  real = np.pad(mask, pad).reshape(batch, bars, steps_per_bar).sum((0, 2))
  return Counts(
      correct=by_bar.sum((0, 2)).T.astype(np.int64), real=real.astype(np.int64),
      class_correct=tuple(np.bincount(tgt[..., p][hit[..., p]], minlength=d)
                          for p, d in enumerate(depths)),
      class_real=tuple(np.bincount(tgt[..., p][mask], minlength=d)
                       for p, d in enumerate(depths)))


def window_correct(predictions, targets, lengths):
  """([B] correct, [B] scored) per window: predictions equal to targets at the real steps,
  summed over parts, and real steps times parts (their ratio summed over windows is
  Counts.accuracy)."""
  pred, tgt = np.asarray(predictions, np.int64), np.asarray(targets, np.int64)
  if tgt.ndim == 2:
    pred, tgt = pred[..., None], tgt[..., None]
  mask = step_mask(lengths, tgt.shape[1])
  correct = ((pred == tgt) & mask[..., None]).sum((1, 2))
  return correct.astype(np.int64), (mask.sum(1) * tgt.shape[2]).astype(np.int64)


def kl_bits(mu, sigma):
  """[B] KL(N(mu, sigma^2) || N(0, I)) in bits, summed over z dimensions."""
  mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
  nats = 0.5 * np.sum(mu**2 + sigma**2 - 1.0 - 2.0 * np.log(sigma), -1)
  return nats / math.log(2.0)


def _number(x):
  x = float(x)
  return None if math.isnan(x) else x


def summarize(counts, names, per_bar=True):
  """The JSON-ready metrics of `counts`: accuracy, per_part, per_bar, mean_per_class."""
  return dict(
      accuracy=_number(counts.accuracy()),
      per_part={n: _number(a) for n, a in zip(names, counts.per_part())},
      per_bar=[_number(a) for a in counts.per_bar()] if per_bar else None,
      mean_per_class={n: _number(a) for n, a in zip(names, counts.mean_per_class())})


# --- The paper's table. ---

def paper_rows(config, decoder=None):
  """The paper's rows for a config (a Config or its name), in its decoder's column.

  Rows match on the config's converter kind and window length, so presets
  (*_cpu, tiny-*) match the row of the model they shrink. Returns a list of
  dicts (model, part, teacher_forced, sampled), None where the paper has no
  number; empty when the paper has no such model.
  """
  if isinstance(config, str):
    from mvae_tf import configs
    config = configs.get_config(config)
  return _rows(config.data.kind, config.max_seq_len, decoder or config.decoder)


def _rows(kind, num_steps, decoder):
  rows = []
  for model, row_kind, bars, part, values in PAPER_TABLE:
    if row_kind == kind and bars * STEPS_PER_BAR == num_steps:
      column = dict(zip(PAPER_COLUMNS, values))
      rows.append(dict(model=model, part=part,
                       teacher_forced=column[decoder, 'teacher_forced'],
                       sampled=column[decoder, 'sampled']))
  return rows


def _model_kind(model):
  """The converter kind of a model: its registered config's, else from its outputs."""
  from mvae_tf import configs
  try:
    return configs.get_config(model.config_name).data.kind
  except (ValueError, TypeError):
    names = part_names(model.output_depths)
    return 'trio' if names == TRIO_PARTS else names[0]


# --- Evaluating a model. ---

# model -> {input signature: tf.function}: each model is traced once per window shape.
_FUNCTIONS = weakref.WeakKeyDictionary()


def _batch_function(model, batch):
  """A tf.function (inputs, outputs, controls, lengths, seed) -> what the metrics need.

  Arguments are float32 (lengths, seed int32) with any batch size, so a
  short last batch does not trace again; the function holds the model weakly.
  """
  import tensorflow as tf
  specs = tuple(tf.TensorSpec([None] + list(x.shape[1:]), tf.float32) for x in batch[:3]) + (
      tf.TensorSpec([None], tf.int32), tf.TensorSpec([2], tf.int32))
  functions = _FUNCTIONS.setdefault(model, {})
  if specs not in functions:
    functions[specs] = tf.function(_per_batch(weakref.ref(model)), input_signature=specs,
                                   autograph=False)  # explicit loops; see make_train_step
  return functions[specs]


def _class_indices(x, depths):
  """[..., sum(depths)] logits or one-hot -> [..., P] argmax of each part (TensorFlow)."""
  import tensorflow as tf
  parts = tf.split(x, depths, -1) if len(depths) > 1 else [x]
  return tf.stack([tf.argmax(p, -1, output_type=tf.int32) for p in parts], -1)


def _per_batch(model_ref):
  import tensorflow as tf
  from mvae_tf.model.vae import reconstruction_loss

  def run(inputs, outputs, controls, lengths, seed):
    model = model_ref()
    depths = list(model.output_depths)
    mu, sigma = model.encode(inputs, lengths, controls)
    z = mu + sigma * tf.random.stateless_normal(tf.shape(mu), seed)
    logits = model.teacher_forced_logits(outputs, z, controls, 0.0)
    r_loss, _, _ = reconstruction_loss(logits, outputs, lengths, depths)
    num_steps = int(model.hparams.max_seq_len)
    sampled, _ = model.sample(z, num_steps, 0.0, controls=controls)
    # Fed its own samples (temperature 1); its prediction at each step is still the argmax.
    _, fed_logits = model.sample(z, num_steps, 1.0, controls=controls,
                                 seed=tf.random.experimental.stateless_fold_in(seed, 1))
    return dict(targets=_class_indices(outputs, depths),
                teacher_forced=_class_indices(logits, depths), sampled=sampled,
                sampled_t1=_class_indices(fed_logits, depths),
                r_loss=r_loss, mu=mu, sigma=sigma)

  return run


def evaluate(model, dataset, num_batches=None, seed=0, per_window=False):
  """Teacher-forced and sampled reconstruction metrics of `model` over `dataset`.

  dataset: batches (inputs, outputs, controls, lengths) as mvae_tf.data.pipeline
  yields them; the first `num_batches` (None: all) are used. z = mu + sigma * e,
  e drawn with the stateless seed (seed, batch index). Returns a JSON-ready dict;
  with `per_window`, also each window's scored steps and correct steps per mode in
  the data set's order (for paired comparisons of two models on the same windows:
  mvae_tf.evaluation.compare). Raises EmptyDatasetError when there is no window.
  """
  import tensorflow as tf
  depths, spb = list(model.output_depths), int(model.steps_per_bar)
  num_steps = int(model.hparams.max_seq_len)
  totals = dict(teacher_forced=None, sampled=None, sampled_t1=None)
  windows = {'steps': []}
  windows.update((mode, []) for mode in totals)
  r_loss = kl = 0.0
  num_examples = batches_seen = 0
  batches = dataset if num_batches is None else itertools.islice(dataset, num_batches)
  for i, (inputs, outputs, controls, lengths) in enumerate(batches):
    if outputs.shape[1] != num_steps:
      raise ValueError('windows have %d steps, the model %d: evaluate with the config the '
                       'model was trained with' % (outputs.shape[1], num_steps))
    batch = [tf.cast(x, tf.float32) for x in (inputs, outputs, controls)] + [
        tf.cast(lengths, tf.int32), tf.constant([seed, i], tf.int32)]
    out = _batch_function(model, batch)(*batch)
    out = {k: v.numpy() for k, v in out.items()}
    lengths = batch[3].numpy()
    for mode in totals:
      counts = count_correct(out[mode], out['targets'], lengths, depths, spb)
      totals[mode] = counts if totals[mode] is None else totals[mode] + counts
      if per_window:
        correct, steps = window_correct(out[mode], out['targets'], lengths)
        windows[mode].extend(int(c) for c in correct)
    if per_window:
      windows['steps'].extend(int(n) for n in steps)
    r_loss += float(out['r_loss'].sum())
    kl += float(kl_bits(out['mu'], out['sigma']).sum())
    num_examples += len(lengths)
    batches_seen += 1
  if not num_examples:
    raise EmptyDatasetError('the data set yields no window to evaluate')
  names = part_names(depths)
  per_bar = model.decoder_type == 'hierarchical' or num_steps > 2 * spb
  results = dict(
      config=model.config_name, decoder=model.decoder_type, parts=list(names),
      num_examples=num_examples, num_batches=batches_seen,
      num_steps=int(totals['teacher_forced'].real.sum()), seed=seed,
      teacher_forced=summarize(totals['teacher_forced'], names, per_bar),
      sampled=summarize(totals['sampled'], names, per_bar),
      sampled_t1=summarize(totals['sampled_t1'], names, per_bar),
      r_loss=r_loss / num_examples, kl_bits=kl / num_examples,
      paper=_rows(_model_kind(model), num_steps, model.decoder_type))
  if per_window:
    results['per_window'] = windows
  return results


# --- The report. ---

def _fmt(x, digits=3):
  return '-' if x is None else '%.*f' % (digits, x)


def _table(rows):
  widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
  return ['  '.join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]


def format_report(results):
  """The paper's table with ours beside the paper's in the matching row(s), then the rest."""
  ours = {r['model']: r for r in results['paper']}
  decoder = results['decoder']
  rows = [('model',) + COLUMN_TITLES]
  for model, _, _, part, values in PAPER_TABLE:
    cells = []
    for (col_decoder, mode), paper in zip(PAPER_COLUMNS, values):
      if model in ours and col_decoder == decoder:
        cells.append('%s (paper %s)' % (_fmt(results[mode]['per_part'][part]), _fmt(paper)))
      else:
        cells.append(_fmt(paper))
    rows.append((('> ' if model in ours else '  ') + model,) + tuple(cells))
  step = results.get('step')
  lines = ['%s%s, %s decoder: %d windows in %d batches, z ~ q(z|x), seed %d' % (
      results['config'], '' if step is None else ' at step %d' % step, decoder,
      results['num_examples'], results['num_batches'], results['seed']), '',
      "Reconstruction accuracy: the paper's Table 1 (Lakh MIDI held-out data); in the rows "
      'marked >, ours (paper)']
  lines += _table(rows)
  if not ours:
    lines.append('(the paper has no row for this model: its kind and length are not in the '
                 'table)')
  modes = [('teacher-forced', results['teacher_forced']),
           ('sampled, argmax-fed', results['sampled'])]
  if 'sampled_t1' in results:
    modes.append(('sampled, sample-fed (T=1)', results['sampled_t1']))
  metrics = [('',) + tuple(t for t, _ in modes),
             ('accuracy',) + tuple(_fmt(m['accuracy']) for _, m in modes)]
  if len(results['parts']) > 1:
    metrics += [('accuracy, %s' % p,) + tuple(_fmt(m['per_part'][p]) for _, m in modes)
                for p in results['parts']]
  metrics += [('mean-per-class, %s' % p,) + tuple(_fmt(m['mean_per_class'][p])
                                                  for _, m in modes)
              for p in results['parts']]
  lines += ['', "The table's sampled columns are ours fed their own argmax; the original's "
            'eval job feeds its own temperature-1 samples (the last column below).']
  lines += [''] + _table(metrics)
  if modes[0][1]['per_bar'] is not None:
    lines.append('')
    for title, m in modes:
      lines.append('per bar, %s: %s' % (title, ' '.join(_fmt(a, 2) for a in m['per_bar'])))
  lines += ['', 'reconstruction loss: %.3f nats per window (teacher-forced, summed over real '
            'steps)' % results['r_loss'],
            'KL(q(z|x) || N(0, I)): %.2f bits per window' % results['kl_bits']]
  return '\n'.join(lines)
