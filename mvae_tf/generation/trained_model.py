"""A trained MusicVAE for inference: `TrainedModel.load(name_or_path)`.

Two levels of API:

* tensors: `encode_tensors`, `teacher_forced_logits`, `decode_tensors`,
  `decode_indices` (arrays in, numpy arrays out, batches of any size);
* music: `sample`, `encode`, `decode`, `interpolate`, `similar`, `grid`,
  `log_likelihood`, `apply_attribute` (NoteSequences in and out, through the
  config's converter in eval mode; tensors too with `return_tensors=True`);
  `bar_windows` and `choose_window` pick a window of a longer sequence by bar.

Two backends compute the same model: 'litert' (the packaged model's exported
.tflite graphs on LiteRT, through edge_demo.runtime as on a device: no
TensorFlow import; the default for the shipped presets and packaged models
that carry model.tflite) and 'tf' (the Keras model; the default for
everything else). Greedy decodes agree between them; sampling at a
temperature is reproducible with a seed within one backend.

`load` takes a preset name ('folk-mel_2bar', 'drums_2bar'; see
mvae_tf.pretrained), a model directory (weights.npz + config.json: what
`save_model` and `mvae import-magenta` write, and the shipped models' format), a
directory with model.keras or a .keras file (written by earlier versions), or a
training run directory or one of its checkpoints (mvae_tf.training.runs).
"""

import collections
import math
import os

import numpy as np

from edge_demo.music import format_bars, slerp  # noqa: F401  (one copy, TF-free)
from mvae_tf import pretrained
# The saved-model format is the resolver's; re-exported for callers of the old place.
from mvae_tf.store.resolve import MODEL_FILE, load_model, save_model  # noqa: F401


class EncodeError(ValueError):
  """A sequence that yields no window (or several, where one is needed).

  Attributes: index and name of the sequence, windows (count), reasons (list).
  """

  def __init__(self, message, index, name, windows, reasons=()):
    super().__init__(message)
    self.index, self.name, self.windows, self.reasons = index, name, windows, list(reasons)


class BarWindow(collections.namedtuple(
    'BarWindow', ['first_bar', 'last_bar', 'total_bars', 'sequence', 'windows', 'reasons'])):
  """A candidate window of a sequence: its bars first_bar to last_bar of total_bars.

  Bars are numbered from 1, as musicians count, from the start of the
  sequence in its own metre (a part after a change of tempo or metre
  continues the count). `sequence`: the NoteSequence of those bars (notes
  on the model's grid of steps, shifted to start at 0), or the input itself
  when the window is all of it. `windows`: how many windows the model's
  converter finds there (0: not usable, and `reasons` says why; more than
  one: one per melody or track, of which encode uses the first).
  """
  __slots__ = ()

  @property
  def usable(self):
    return self.windows > 0


class BarError(EncodeError):
  """No usable window starts at the bar asked for (`TrainedModel.choose_window`).

  Attributes, besides EncodeError's: bar (asked for), total_bars,
  usable_bars (the first bars of the usable windows, in order) and
  reasons (why the window at `bar` is not usable; empty if there is none).
  """

  def __init__(self, message, index, name, bar, total_bars, usable_bars, reasons=()):
    super().__init__(message, index, name, len(usable_bars), reasons)
    self.bar, self.total_bars, self.usable_bars = bar, total_bars, list(usable_bars)


# --- Latent arithmetic (numpy; shared with `mvae generate`). ---

def _rng(seed, stream):
  return np.random.default_rng(None if seed is None else [int(seed), stream])


def random_latents(n, z_size, seed=None):
  """n draws of the prior N(0, I): [n, z_size] float32."""
  return _rng(seed, 1).standard_normal((n, z_size)).astype(np.float32)


def interpolate_latents(a, b, num_steps, method='slerp'):
  """[num_steps, z] from a to b, both included."""
  if method not in ('slerp', 'lerp'):
    raise ValueError("method must be 'slerp' or 'lerp', got %r" % (method,))
  if num_steps < 2:
    raise ValueError('num_steps must be at least 2 (the two end points), got %d' % num_steps)
  a, b = np.asarray(a, np.float32).reshape(-1), np.asarray(b, np.float32).reshape(-1)
  ts = np.linspace(0.0, 1.0, num_steps)
  if method == 'lerp':
    z = [(1 - t) * a + t * b for t in ts]
  else:
    z = [slerp(a, b, t) for t in ts]
  z = np.asarray(z, np.float32)
  z[0], z[-1] = a, b
  return z


def grid_latents(a, b, c, d, rows, cols, method='slerp'):
  """[rows, cols, z]: a top left, b top right, c bottom left, d bottom right."""
  left = interpolate_latents(a, c, rows, method)
  right = interpolate_latents(b, d, rows, method)
  return np.stack([interpolate_latents(l, r, cols, method) for l, r in zip(left, right)])


def similar_latents(z, n, similarity, seed=None):
  """n latents `similarity * z + (1 - similarity) * noise` (similarity in [0, 1])."""
  if not 0.0 <= similarity <= 1.0:
    raise ValueError('similarity must be in [0, 1], got %r' % (similarity,))
  z = np.asarray(z, np.float32).reshape(1, -1)
  noise = _rng(seed, 2).standard_normal((n, z.shape[1])).astype(np.float32)
  return (similarity * z + (1.0 - similarity) * noise).astype(np.float32)


def log_softmax(logits, depths):
  """Log-probabilities per part of logits [..., sum(depths)]."""
  bounds = np.cumsum([0] + list(depths))
  out = []
  for a, b in zip(bounds[:-1], bounds[1:]):
    part = logits[..., a:b] - logits[..., a:b].max(-1, keepdims=True)
    out.append(part - np.log(np.exp(part).sum(-1, keepdims=True)))
  return np.concatenate(out, -1)


def onehot(indices, depths):
  """Class indices [..., P] -> one-hot [..., sum(depths)] (bool), part by part."""
  return np.concatenate([np.eye(d, dtype=bool)[indices[..., p]] for p, d in enumerate(depths)],
                        -1)


def _tf_seed(seed):
  return np.random.randint(0, 2**31 - 1, 2) if seed is None else [seed, 0]


class _TFBackend:
  """The Keras model under tf.function."""

  name = 'tf'

  def __init__(self, model):
    from mvae_tf import quiet
    self.tf = tf = quiet.import_tensorflow()
    self.model = model
    # No autograph (as in training.train.make_train_step): the loops are explicit.
    self._encode = tf.function(self._encode_fn, reduce_retracing=True, autograph=False)
    self._teacher = tf.function(self._teacher_fn, reduce_retracing=True, autograph=False)
    self._decoders = {}

  def _encode_fn(self, inputs, lengths, controls, seed):
    mu, sigma = self.model.encode(inputs, lengths, controls)
    z = mu + sigma * self.tf.random.stateless_normal(self.tf.shape(mu), seed)
    return z, mu, sigma

  def _teacher_fn(self, targets, z, controls):
    return self.model.teacher_forced_logits(targets, z, controls)

  def _controls(self, controls):
    if not self.model.control_depth:
      return None
    if controls is None:
      raise ValueError('model %s needs controls [N, T, %d]' % (
          self.model.config_name, self.model.control_depth))
    return self.tf.convert_to_tensor(np.asarray(controls, np.float32))

  def encode(self, inputs, lengths, controls, seed):
    tf = self.tf
    z, mu, sigma = self._encode(
        tf.constant(np.asarray(inputs, np.float32)), tf.constant(np.asarray(lengths, np.int32)),
        self._controls(controls), tf.constant(_tf_seed(seed), tf.int32))
    return z.numpy(), mu.numpy(), sigma.numpy()

  def teacher_forced_logits(self, targets, z, controls):
    tf = self.tf
    return self._teacher(tf.constant(np.asarray(targets, np.float32)),
                         tf.constant(np.asarray(z, np.float32)),
                         self._controls(controls)).numpy()

  def sample(self, z, length, temperature, seed, controls):
    tf = self.tf
    key = (int(length), float(temperature))
    if key not in self._decoders:
      model = self.model

      def fn(z, seed, controls):
        return model.sample(z, int(length), float(temperature), seed, controls)
      self._decoders[key] = tf.function(fn, reduce_retracing=True, autograph=False)
    indices, logits = self._decoders[key](
        tf.constant(np.asarray(z, np.float32)), tf.constant(_tf_seed(seed), tf.int32),
        self._controls(controls))
    return indices.numpy(), logits.numpy()


TFLITE_FILE = 'model.tflite'  # a packaged model's export for LiteRT, batch 1
TFLITE_BATCH_FILE = 'model_b64.tflite'  # the same graphs at batch 64


class LiteRTModel:
  """The exported .tflite files of a packaged model directory (TFLITE_FILE, and
  TFLITE_BATCH_FILE when it is there), run on LiteRT through edge_demo.runtime,
  the same code that runs them on a device: no TensorFlow.

  `num_threads`: LiteRT's threads (None: its default).
  """

  # Rows from which one call of the batch-64 graph beats that many batch-1 calls
  # (18.3 ms against 1.31 ms a row here; BUILD_NOTES.md, issue 12).
  BATCH_FILE_FROM = 15

  def __init__(self, directory, info, num_threads=None):
    self.directory, self.info = directory, info
    self.one = self._open(os.path.join(directory, TFLITE_FILE), num_threads)
    batch = os.path.join(directory, TFLITE_BATCH_FILE)
    self.many = self._open(batch, num_threads) if os.path.exists(batch) else None
    self.num_steps, self.depths = self.one.num_steps, self.one.depths

  def _open(self, path, num_threads):
    """A TFLiteModel; a damaged file (or one of another model) is a one-line ValueError."""
    from edge_demo.runtime import TFLiteModel
    try:
      model = TFLiteModel(path, num_threads)
    except (ValueError, RuntimeError) as e:  # MetadataError; the interpreter's own
      raise ValueError('%s is damaged (%s); %s' % (
          path, str(e).strip().split('\n')[0][:200] or type(e).__name__,
          pretrained.remedy(self.directory))) from None
    want = (self.info.get('config'), int(self.info['hparams']['z_size']))
    have = (model.metadata.get('config'), model.z_size)
    if want != have:
      raise ValueError('%s is an export of %s (z %d), but %s describes %s (z %d); %s' % (
          path, have[0], have[1], os.path.join(self.directory, pretrained.INFO_FILE),
          want[0], want[1], pretrained.remedy(self.directory)))
    return model

  @staticmethod
  def available(directory):
    return os.path.exists(os.path.join(directory, TFLITE_FILE))

  def split(self, n):
    """(start, end, TFLiteModel) covering rows 0..n: the batch graph for big chunks."""
    start = 0
    if self.many is not None:
      size = self.many.batch_size
      while n - start >= self.BATCH_FILE_FROM:
        end = min(start + size, n)
        yield start, end, self.many
        start = end
    if start < n:
      yield start, n, self.one


class _LiteRTBackend:
  """LiteRTModel: the whole-sequence `decode` graph samples (Gumbel-max on noise
  drawn here, one numpy Generator per sequence: a seed gives the same music
  whatever the batch), `encode` encodes, the step graphs teacher-force."""

  name = 'litert'

  def __init__(self, model):
    self.model = model

  @staticmethod
  def _no_controls(controls):
    if controls is not None:
      raise ValueError('the exported graphs take no controls (chord-conditioned models run '
                       "with backend='tf')")

  def encode(self, inputs, lengths, controls, seed):
    self._no_controls(controls)
    inputs = np.asarray(inputs, np.float32)
    lengths = np.maximum(np.asarray(lengths, np.int32), 1)
    mu, sigma = np.empty((2, len(inputs), self.model.one.z_size), np.float32)
    for a, b, m in self.model.split(len(inputs)):
      mu[a:b], sigma[a:b] = m.encode(inputs[a:b], lengths[a:b])
    noise = np.random.default_rng(seed).standard_normal(mu.shape).astype(np.float32)
    return (mu + sigma * noise).astype(np.float32), mu, sigma

  def teacher_forced_logits(self, targets, z, controls):
    self._no_controls(controls)
    targets = np.asarray(targets, np.float32)
    previous = np.concatenate([np.zeros_like(targets[:, :1]), targets[:, :-1]], 1)
    z = np.asarray(z, np.float32)
    logits = np.empty(targets.shape[:2] + (sum(self.model.depths),), np.float32)
    for a, b, m in self.model.split(len(targets)):
      logits[a:b] = m.teacher_forced(z[a:b], previous[a:b])
    return logits

  def sample(self, z, length, temperature, seed, controls):
    self._no_controls(controls)
    steps = self.model.num_steps
    if length > steps:
      raise ValueError('length %d: the exported graphs decode %d steps' % (length, steps))
    z = np.asarray(z, np.float32)
    seed = np.random.SeedSequence().entropy if seed is None else seed
    noise = np.stack([np.random.default_rng([seed, i]).random(
        (steps, sum(self.model.depths)), np.float32) for i in range(len(z))]) if len(z) else \
        np.zeros((0, steps, sum(self.model.depths)), np.float32)
    tokens = np.empty((len(z), steps, len(self.model.depths)), np.int32)
    logits = np.empty((len(z), steps, sum(self.model.depths)), np.float32)
    for a, b, m in self.model.split(len(z)):
      tokens[a:b], logits[a:b] = m.decode(z[a:b], temperature, noise[a:b])
    if not np.isfinite(logits).all():
      raise ValueError('%s gives NaN or infinite values: the model is damaged; %s' % (
          self.model.one.path, pretrained.remedy(self.model.directory)))
    return tokens[:, :length], logits[:, :length]


class TrainedModel:
  """Inference with a trained MusicVAE (see the module docstring).

  Args:
    model: a MusicVAE (Keras) or a LiteRTModel (a packaged model's exported files).
    backend: 'tf', 'litert' or 'auto' (the model's own).
    info: the model's config.json fields (mvae_tf.pretrained.model_info).
    path: where it was loaded from.
  """

  def __init__(self, model, backend='auto', info=None, path=None, step=None):
    if backend not in ('auto', 'tf', 'litert'):
      raise ValueError("backend must be 'auto', 'tf' or 'litert', got %r" % (backend,))
    exported = isinstance(model, LiteRTModel)
    if backend == 'litert' and not exported:
      raise ValueError("backend='litert' runs a packaged model's exported files (%s); this "
                       'is a Keras model: export it (`mvae export`) or use the tf backend'
                       % TFLITE_FILE)
    if backend == 'tf' and exported:
      model = pretrained.keras_model(pretrained.read_weights(model.directory, model.info),
                                     model.info)
      exported = False
    self.model = model
    self._backend = _LiteRTBackend(model) if exported else _TFBackend(model)
    self._info = info or (model.info if exported else None)
    self.path = path
    self.step = step if step is not None else (self._info or {}).get('step')
    self._converter = None
    self._attribute_vectors = None

  @classmethod
  def load(cls, name_or_path, backend='auto', config=None):
    """A preset name or a path (see the module docstring).

    `config`: the config of a run directory that has no run.json.
    Every kind of name goes through mvae_tf.store.resolve; raises
    resolve.ModelNotFound (a FileNotFoundError) for a name that is none.
    """
    from mvae_tf.store import resolve
    resolved = resolve.resolve(name_or_path)
    path = resolved.path
    if resolved.kind in ('preset', 'packaged'):
      info = pretrained.read_info(path)
      if backend != 'tf' and LiteRTModel.available(path):
        return cls(LiteRTModel(path, info), backend, info, path)
      if backend == 'litert':
        raise ValueError('%s has no %s to run on LiteRT: package it with '
                         'scripts/package_pretrained.py (which exports it), or use the tf '
                         'backend' % (path, TFLITE_FILE))
      return cls(pretrained.keras_model(pretrained.read_weights(path, info), info), 'tf',
                 info, path)
    model, _, step, _ = resolve.load_keras(resolved, config=config)  # saved, run, checkpoint
    return cls(model, backend, path=path, step=step)

  # --- What the model is. ---

  @property
  def backend(self):
    return self._backend.name

  @property
  def info(self):
    """config.json fields: config, decoder_type, hparams, depths, data (decoding), ..."""
    if self._info is None:
      self._info = pretrained.model_info(self.model)
    return self._info

  @property
  def config_name(self):
    return self.info['config']

  @property
  def hparams(self):
    from mvae_tf.hparams import HParams
    return self.model.hparams if self.backend == 'tf' else HParams.from_dict(
        self.info['hparams'])

  @property
  def z_size(self):
    return int(self.info['hparams']['z_size'])

  @property
  def max_seq_len(self):
    return int(self.info['hparams']['max_seq_len'])

  @property
  def output_depths(self):
    return [int(d) for d in self.info['output_depths']]

  @property
  def data(self):
    """How outputs become notes: kind ('melody', 'drums', 'trio'), pitches, tempo."""
    return self.info['data']

  @property
  def kind(self):
    return self.data['kind']

  @property
  def converter(self):
    """The config's converter in eval mode (imports note_seq)."""
    if self._converter is None:
      from mvae_tf import configs
      self._converter = configs.get_config(self.config_name).make_converter('eval')
    return self._converter

  @property
  def name(self):
    """The preset's name, else the name of the file or directory it came from."""
    return self.info.get('name') or (os.path.basename(os.path.normpath(self.path))
                                     if self.path else self.config_name)

  def describe(self):
    """'folk-mel_2bar (cat-mel_2bar_cpu, melody, step 12000)'."""
    details = [self.config_name, self.kind]
    if self.step is not None:
      details.append('step %d' % self.step)
    if self.info.get('status') == pretrained.PLACEHOLDER:
      details.append(pretrained.PLACEHOLDER)
    return '%s (%s)' % (self.name, ', '.join(details))

  # --- Tensors. ---

  def encode_tensors(self, inputs, lengths, controls=None, seed=None):
    """(z, mu, sigma), each [N, z_size]; z is drawn from q(z|x)."""
    return self._backend.encode(inputs, lengths, controls, seed)

  def teacher_forced_logits(self, targets, lengths, z, controls=None):
    """Logits [N, T, D] with the decoder fed the previous targets (the converter's outputs).

    Steps at t >= lengths[i] are computed but not meaningful.
    """
    del lengths  # causal: steps before a length do not depend on later ones
    return self._backend.teacher_forced_logits(targets, z, controls)

  def decode_tensors(self, z, length, temperature=0.0, seed=None, controls=None):
    """Free-running decode: one-hot samples [N, length, D] bool (like the converter's outputs).

    temperature 0.0 means argmax; else softmax(logits / temperature) with `seed` (int).
    """
    indices, _ = self.decode_indices(z, length, temperature, seed, controls)
    return onehot(indices, self.output_depths)

  def decode_indices(self, z, length, temperature=0.0, seed=None, controls=None):
    """Like decode_tensors, as class indices [N, length, P] plus the logits [N, length, D]."""
    if not np.isfinite(temperature) or temperature < 0:
      raise ValueError('temperature must be a finite number >= 0 (0 is argmax; useful range '
                       '0.1 to 1.5), got %r' % (temperature,))
    return self._backend.sample(z, int(length), float(temperature), seed, controls)

  # --- NoteSequences. ---

  @staticmethod
  def _as_list(note_sequences):
    return [note_sequences] if hasattr(note_sequences, 'notes') else list(note_sequences)

  def _describe_sequence(self, ns, index):
    name = ns.filename or ns.id
    return 'sequence %d (%s)' % (index, name) if name else 'sequence %d' % index

  def _window_words(self):
    bars = self.converter.slice_bars
    return '%d-bar window' % bars if bars else 'window'

  def windows(self, note_sequences, all_windows=True, skip_empty=False):
    """The converter's windows of the sequences (eval mode: at most 5 per sequence).

    Returns (inputs, outputs, controls or None, lengths, owners): owners[i]
    is the index of the sequence window i comes from. Raises EncodeError for
    a sequence with no window (unless skip_empty) or, when not all_windows,
    with several.
    """
    from mvae_tf.data import windows
    rows, owners = [], []
    for i, ns in enumerate(self._as_list(note_sequences)):
      tensors = self.converter.to_tensors(ns)
      if not len(tensors):
        if skip_empty:
          continue
        reasons = windows.inspect_sequence(self.converter, ns)['reasons']
        raise EncodeError('%s yields no %s for %s: %s' % (
            self._describe_sequence(ns, i), self._window_words(), self.config_name,
            '; '.join(reasons)), i, ns.filename or ns.id, 0, reasons)
      if len(tensors) > 1 and not all_windows:
        raise EncodeError(
            '%s yields %d %ss for %s, and encode takes one per sequence: cut it to %d '
            'bars, or pass all_windows=True to encode every window' % (
                self._describe_sequence(ns, i), len(tensors), self._window_words(),
                self.config_name, self.converter.slice_bars or 0),
            i, ns.filename or ns.id, len(tensors))
      rows.extend(tensors.windows())
      owners.extend([i] * len(tensors))
    if not rows:
      return None, None, None, np.zeros([0], np.int32), np.zeros([0], np.int64)
    steps = max(len(w[0]) for w in rows)

    def stack(k):
      return np.stack([np.pad(np.asarray(w[k], np.float32), [(0, steps - len(w[k])), (0, 0)])
                       for w in rows])
    controls = stack(2) if self.converter.control_depth else None
    return (stack(0), stack(1), controls, np.array([w[3] for w in rows], np.int32),
            np.array(owners))

  def _mu_sigma(self, inputs, lengths, controls, batch_size=256):
    mus, sigmas = [], []
    for s in range(0, len(inputs), batch_size):
      ctrl = None if controls is None else controls[s:s + batch_size]
      _, mu, sigma = self._backend.encode(inputs[s:s + batch_size], lengths[s:s + batch_size],
                                          ctrl, 0)
      mus.append(mu)
      sigmas.append(sigma)
    return np.concatenate(mus), np.concatenate(sigmas)

  def encode(self, note_sequences, seed=None, all_windows=False):
    """(z, mu, sigma) [N, z_size] of NoteSequences; z is drawn from q(z|x) with `seed`.

    Each sequence must yield exactly one window (a 2-bar model: a 2-bar
    excerpt), else EncodeError names it and says why; with all_windows=True
    every window of every sequence is encoded, in order (see `windows`).
    """
    inputs, _, controls, lengths, _ = self.windows(note_sequences, all_windows)
    if inputs is None:
      empty = np.zeros([0, self.z_size], np.float32)
      return empty, empty, empty
    mu, sigma = self._mu_sigma(inputs, lengths, controls)
    z = mu + sigma * np.random.default_rng(seed).standard_normal(mu.shape).astype(np.float32)
    return z.astype(np.float32), mu, sigma

  def encode_windows(self, note_sequences, batch_size=256):
    """(mu [W, z], output class indices [W, T, P], owners [W]) of every window; sequences
    without one are skipped (for attribute vectors)."""
    inputs, outputs, controls, lengths, owners = self.windows(note_sequences, skip_empty=True)
    if inputs is None:
      return np.zeros([0, self.z_size], np.float32), [], owners
    mu, _ = self._mu_sigma(inputs, lengths, controls, batch_size)
    parts = np.split(outputs, np.cumsum(self.output_depths)[:-1], -1)
    indices = np.stack([p.argmax(-1) for p in parts], -1)
    return mu, [idx[:n] for idx, n in zip(indices, lengths)], owners

  # --- Choosing a window of a longer sequence (`mvae generate --input_bar`). ---

  def _bar_pieces(self, ns):
    """[(piece on the step grid, steps a second, steps a bar, first bar - 1, bars)]: the
    parts the converter splits `ns` into (at changes of tempo or metre), bars counted on."""
    from note_seq import sequences_lib
    from mvae_tf.data.converters import _QUANTIZE_ERRORS
    converter = self.converter
    spq = converter.steps_per_quarter
    pieces = (sequences_lib.split_note_sequence_on_time_changes(ns)
              if converter.presplit_on_time_changes else [ns])
    out, offset = [], 0
    for piece in pieces:
      qpm = piece.tempos[0].qpm if piece.tempos else 120.0
      steps_per_second = qpm / 60.0 * spq
      try:
        quantized = sequences_lib.quantize_note_sequence(piece, spq)
        bar_steps = sequences_lib.steps_per_bar_in_quantized_sequence(quantized)
      except _QUANTIZE_ERRORS:  # the converter refuses it too, and says why
        ts = piece.time_signatures[0] if piece.time_signatures else None
        bar_steps = spq * (4.0 * ts.numerator / ts.denominator if ts and ts.denominator
                           else 4.0)
        steps = piece.total_time * steps_per_second
      else:
        steps = quantized.total_quantized_steps
        gridded = type(piece)()
        gridded.CopyFrom(piece)
        # Notes on the grid, so that bar lines cut them where the converter's steps do
        # (quantizing keeps the notes in order).
        for note, step in zip(gridded.notes, quantized.notes):
          note.start_time = step.quantized_start_step / steps_per_second
          note.end_time = step.quantized_end_step / steps_per_second
        gridded.total_time = steps / steps_per_second
        piece = gridded
      bars = max(0, int(math.ceil(steps / bar_steps - 1e-6))) if bar_steps else 0
      out.append((piece, steps_per_second, bar_steps, offset, bars))
      offset += bars
    return out

  def _bar_window(self, ns, pieces, bar):
    """The BarWindow starting at `bar` (1-based), or None if no window fits there."""
    converter = self.converter
    size = converter.slice_bars
    total = pieces[-1][3] + pieces[-1][4] if pieces else 0
    if not size:  # a converter that does not slice: the whole sequence is the window
      if bar != 1:
        return None
      sequence, first, last = ns, 1, max(total, 1)
    else:
      for piece, steps_per_second, bar_steps, offset, bars in pieces:
        if offset < bar <= offset + bars - size + 1:
          break
      else:
        return None
      first, last = bar, bar + size - 1
      if len(pieces) == 1 and bars == size:
        sequence = ns  # the window is the whole input: encode it as it is
      else:
        from note_seq import sequences_lib
        start = bar - 1 - offset
        sequence = sequences_lib.extract_subsequence(
            piece, start * bar_steps / steps_per_second,
            (start + size) * bar_steps / steps_per_second)
    tensors = converter.to_tensors(sequence)
    reasons = [] if len(tensors) else (list(dict.fromkeys(tensors.skipped)) or
                                       ['no window of the required length'])
    return BarWindow(first, last, total, sequence, len(tensors), reasons)

  def _window_starts(self, pieces):
    size = self.converter.slice_bars
    if not size:
      return [1]
    return [offset + b for _, _, _, offset, bars in pieces for b in range(1, bars - size + 2)]

  def bar_windows(self, note_sequence):
    """Every candidate window of one NoteSequence: one starting at each bar (BarWindow).

    Unlike `windows` (the converter's choice: deduplicated, at most 5, in no
    particular order), these are in order of their first bar, one per bar, and
    say which bars they cover; those with `usable` False yield nothing (their
    `reasons` say why). Bars are counted from 1 (see BarWindow).
    """
    pieces = self._bar_pieces(note_sequence)
    return [self._bar_window(note_sequence, pieces, b) for b in self._window_starts(pieces)]

  def choose_window(self, note_sequence, first_bar=None):
    """The window of one NoteSequence to encode (a BarWindow): the first usable one, or
    the one starting at bar `first_bar` (counted from 1, as musicians count).

    Encode it with `encode([window.sequence], all_windows=True)` (first row).
    Raises EncodeError (windows 0, with the reasons) when the sequence yields
    no window at all, and BarError when no usable window starts at
    `first_bar` (it lists the bars where usable ones start).
    """
    pieces = self._bar_pieces(note_sequence)
    starts = self._window_starts(pieces)
    if first_bar is None:
      for bar in starts:
        window = self._bar_window(note_sequence, pieces, bar)
        if window.usable:
          return window
      return self._whole_window(note_sequence, pieces)
    window = self._bar_window(note_sequence, pieces, first_bar) if first_bar in starts \
        else None
    if window is not None and window.usable:
      return window
    usable = [b for b in starts if b != first_bar and
              self._bar_window(note_sequence, pieces, b).usable]
    if not usable:
      return self._whole_window(note_sequence, pieces)
    total = pieces[-1][3] + pieces[-1][4]
    size = self.converter.slice_bars or total
    if window is None:
      where = 'it has %d bars' % total if total < first_bar + size - 1 or first_bar < 1 \
          else 'bars %d-%d cross a change of tempo or metre' % (first_bar, first_bar + size - 1)
    else:
      where = 'bars %d-%d yield none: %s' % (first_bar, window.last_bar,
                                             '; '.join(window.reasons))
    raise BarError('%s has no usable %s at bar %d (%s); usable ones start at bars %s' % (
        self._describe_sequence(note_sequence, 0), self._window_words(), first_bar, where,
        format_bars(usable)), 0, note_sequence.filename or note_sequence.id, first_bar,
        total, usable, window.reasons if window is not None else ())

  def _whole_window(self, ns, pieces):
    """No bar window is usable: the converter's own view of the whole sequence (raises
    EncodeError saying why it yields none, as `encode` does)."""
    self.windows([ns])  # raises EncodeError with the reasons when there is no window
    total = pieces[-1][3] + pieces[-1][4] if pieces else 0
    count = len(self.converter.to_tensors(ns))
    if count > 1:
      raise EncodeError('%s yields %d %ss for %s, but none of them starts at a bar' % (
          self._describe_sequence(ns, 0), count, self._window_words(), self.config_name),
          0, ns.filename or ns.id, count)
    return BarWindow(1, total, total, ns, count, [])

  def to_note_sequences(self, indices, controls=None):
    """NoteSequences of decoded class indices [N, T, P] (the converter's from_tensors)."""
    return self.converter.from_tensors(onehot(np.asarray(indices), self.output_depths),
                                       controls)

  def random_latents(self, n, seed=None):
    """n draws of the prior N(0, I): [n, z_size]."""
    return random_latents(n, self.z_size, seed)

  def decode(self, z, length=None, temperature=1.0, seed=None, controls=None,
             return_tensors=False):
    """NoteSequences decoded from z [N, z_size]; length in steps (default: the config's).

    temperature 0 is argmax. With return_tensors: (sequences, z, indices [N, T, P]).
    """
    z = np.asarray(z, np.float32).reshape(-1, self.z_size)
    indices, _ = self.decode_indices(z, length or self.max_seq_len, temperature, seed, controls)
    sequences = self.to_note_sequences(indices, controls)
    return (sequences, z, indices) if return_tensors else sequences

  def sample(self, n, length=None, temperature=1.0, seed=None, controls=None,
             return_tensors=False):
    """n NoteSequences from z drawn from the prior; the same seed gives the same music."""
    return self.decode(self.random_latents(n, seed), length, temperature, seed, controls,
                       return_tensors)

  def _latent(self, x):
    """mu of a NoteSequence (one window), or x itself as a [z_size] vector."""
    if hasattr(x, 'notes'):
      return self.encode([x])[1][0]
    return np.asarray(x, np.float32).reshape(self.z_size)

  def interpolate(self, a, b, num_steps, method='slerp', length=None, temperature=0.0,
                  seed=None, return_tensors=False):
    """num_steps NoteSequences from a to b (NoteSequences or latents), end points included.

    Interpolates the inputs' mu (slerp or lerp); greedy (temperature 0) by
    default, so the end points are the inputs' reconstructions.
    """
    z = interpolate_latents(self._latent(a), self._latent(b), num_steps, method)
    return self.decode(z, length, temperature, seed, return_tensors=return_tensors)

  def similar(self, sequence, n, similarity, length=None, temperature=0.0, seed=None,
              return_tensors=False):
    """n variations of `sequence`: z = similarity * mu + (1 - similarity) * N(0, I) noise."""
    z = similar_latents(self._latent(sequence), n, similarity, seed)
    return self.decode(z, length, temperature, seed, return_tensors=return_tensors)

  def grid(self, a, b, c, d, size=4, method='slerp', length=None, temperature=0.0, seed=None,
           return_tensors=False):
    """A rows x cols grid (nested lists) between four corners: a top left, b top right,
    c bottom left, d bottom right. `size`: int or (rows, cols)."""
    rows, cols = (size, size) if isinstance(size, int) else size
    z = grid_latents(*[self._latent(x) for x in (a, b, c, d)], rows, cols, method)
    sequences, _, indices = self.decode(z.reshape(rows * cols, -1), length, temperature, seed,
                                        return_tensors=True)
    grid = [sequences[r * cols:(r + 1) * cols] for r in range(rows)]
    if return_tensors:
      return grid, z, indices.reshape((rows, cols) + indices.shape[1:])
    return grid

  def log_likelihood(self, note_sequences, batch_size=256):
    """Reconstruction score of each sequence, [N] float (nats; higher is better).

    For each window of a sequence (eval mode, at most 5): the teacher-forced
    log p(x | z = mu), summed over the window's steps (and parts); a
    sequence's score is the mean over its windows, i.e. nats per window
    (per 32 steps for a 2-bar model). A sequence with no window is an EncodeError.
    """
    seqs = self._as_list(note_sequences)
    inputs, outputs, controls, lengths, owners = self.windows(seqs)
    mu, _ = self._mu_sigma(inputs, lengths, controls, batch_size)
    scores = []
    for s in range(0, len(inputs), batch_size):
      ctrl = None if controls is None else controls[s:s + batch_size]
      logits = self._backend.teacher_forced_logits(outputs[s:s + batch_size], mu[s:s + batch_size],
                                                   ctrl)
      logp = (log_softmax(logits, self.output_depths) * outputs[s:s + batch_size]).sum(-1)
      mask = np.arange(logp.shape[1])[None, :] < lengths[s:s + batch_size, None]
      scores.append((logp * mask).sum(1))
    scores = np.concatenate(scores)
    return np.array([scores[owners == i].mean() for i in range(len(seqs))], np.float64)

  # --- Attribute vectors (mvae_tf.generation.attributes). ---

  @property
  def attribute_vectors(self):
    """{name: [z_size] vector} shipped with the model (attributes.npz), or {}."""
    if self._attribute_vectors is None:
      from mvae_tf.store.attribute_vectors import load_attribute_vectors
      path = os.path.join(self.path or '', pretrained.ATTRIBUTES_FILE)
      self._attribute_vectors = load_attribute_vectors(path)[0] if self.path and \
          os.path.isfile(path) else {}
    return self._attribute_vectors

  def attribute_vector(self, attribute):
    """A vector given as an array, or by name among the shipped ones."""
    if isinstance(attribute, str):
      if attribute not in self.attribute_vectors:
        raise KeyError('no attribute vector %r ships with %s (has: %s); compute one with '
                       'mvae_tf.generation.attributes.compute_attribute_vectors' % (
                           attribute, self.describe(),
                           ', '.join(sorted(self.attribute_vectors)) or 'none'))
      return self.attribute_vectors[attribute]
    return np.asarray(attribute, np.float32)

  def apply_attribute(self, target, attribute, strength=1.0, length=None, temperature=0.0,
                      seed=None, return_tensors=False):
    """Decode z + strength * vector; `target` is NoteSequences (their mu) or latents [N, z]."""
    from mvae_tf.generation.attributes import apply
    if hasattr(target, 'notes') or (isinstance(target, (list, tuple)) and target and
                                    hasattr(target[0], 'notes')):
      z = self.encode(target)[1]
    else:
      z = np.asarray(target, np.float32).reshape(-1, self.z_size)
    z = apply(z, self.attribute_vector(attribute), strength)
    return self.decode(z, length, temperature, seed, return_tensors=return_tensors)
