"""MusicVAE inference in numpy: encode, teacher-force and sample without TensorFlow.

The same computation as mvae_tf/model (lstm.py, encoder.py, decoders.py) on a
dict of weights named by their path in the Keras layer tree, as
`weights_from_keras` (and the training checkpoints) name them:
'encoder/fw_0/kernel_0', 'encoder/mu_kernel', 'decoder/lstm/bias_1',
'decoder/core_decoder_0/output_kernel', ... A model shipped as an .npz file
(mvae_tf.pretrained) thus runs with numpy alone: importing TensorFlow takes
longer than decoding a batch of 2-bar sequences.

Layout (Keras LSTMCell): per layer `kernel_L` [input, 4u], `recurrent_kernel_L`
[u, 4u] and `bias_L` [4u], the forget bias of 1.0 included, gate blocks in the
order i, f, c, o. Flat decoder: initial state tanh(z @ W + b) split into
(c, h) per layer; first-layer input [previous one-hot token, z, controls];
logits = top h @ output_kernel + output_bias. Hierarchical decoder: a
conductor (input zeros) emits one embedding per bar, each starting a core
decoder per part for that bar.

Sampling at a temperature draws from numpy Generators, one per sequence, so
a seed gives the same music on every run and whatever the batch; it is not
the TensorFlow backend's random stream, so only greedy decodes (temperature
0) agree across the two backends.
"""

import contextlib

import numpy as np


def sigmoid(x):
  return 0.5 * (np.tanh(0.5 * x) + 1.0)  # no overflow for large |x|


def softplus(x):
  return np.logaddexp(0.0, x)


def split_parts(x, depths):
  """[..., sum(depths)] -> one view per part."""
  if len(depths) == 1:
    return [x]
  bounds = np.cumsum([0] + list(depths))
  return [x[..., a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def log_softmax(logits, depths):
  """Log-probabilities per part of logits [..., sum(depths)]."""
  out = []
  for part in split_parts(logits, depths):
    part = part - part.max(-1, keepdims=True)
    out.append(part - np.log(np.exp(part).sum(-1, keepdims=True)))
  return np.concatenate(out, -1)


def choose(logits, depths, temperature=0.0, uniforms=None):
  """One class index per part of logits [B, sum(depths)] -> [B, P] int32.

  temperature 0 is argmax; else a draw from softmax(logits / temperature),
  by inverting its CDF at `uniforms` [B, P] (draws in [0, 1)).
  """
  out = np.empty((len(logits), len(depths)), np.int32)
  for p, part in enumerate(split_parts(logits, depths)):
    if temperature == 0:
      out[:, p] = part.argmax(-1)
      continue
    scaled = part / temperature
    cdf = np.cumsum(np.exp(scaled - scaled.max(-1, keepdims=True)), -1)
    u = uniforms[:, p:p + 1] * cdf[:, -1:]
    out[:, p] = np.minimum((cdf < u).sum(-1), part.shape[-1] - 1)
  return out


def sampling_uniforms(seed, batch, num_steps, num_parts):
  """Uniform draws [B, T, P] for sampling, one stream per sequence.

  With an int seed, sequence i draws from default_rng([seed, 3, i]), so it does
  not depend on the batch it is decoded in (the first output of a run is the
  same whatever the number of outputs). A Generator is used as it is.
  """
  if isinstance(seed, np.random.Generator):
    return seed.random((batch, num_steps, num_parts))
  if seed is None:
    seed = int(np.random.default_rng().integers(2**63))
  return np.stack([np.random.default_rng([int(seed), 3, i]).random((num_steps, num_parts))
                   for i in range(batch)]) if batch else np.zeros((0, num_steps, num_parts))


def dense(x, kernel):
  """x [..., n] @ kernel [n, m] as one 2-D product (numpy's stacked matmul is slow)."""
  return (x.reshape(-1, x.shape[-1]) @ kernel).reshape(x.shape[:-1] + (kernel.shape[1],))


_controller = None


def single_threaded_blas():
  """A context limiting BLAS to one thread (threadpoolctl, when installed).

  The recurrent steps are small products: BLAS threads cost more than they
  give, and on a busy machine they spin (batch 64 sampled 80x slower here).
  """
  global _controller
  if _controller is None:
    try:
      import threadpoolctl
      _controller = threadpoolctl.ThreadpoolController()
    except Exception:  # not installed, or no BLAS it knows
      _controller = False
  if not _controller:
    return contextlib.nullcontext()
  return _controller.limit(limits=1, user_api='blas')


class WeightError(KeyError, ValueError):
  """A weight missing from a model's weights (a KeyError, and a ValueError for callers
  that catch those; str() is the message, not its repr)."""

  def __str__(self):
    return str(self.args[0]) if self.args else ''


def _sizes(value, field):
  """[int, ...] of an hparam that is a list of sizes (or a single size)."""
  try:
    sizes = [int(u) for u in (value if isinstance(value, (list, tuple)) else [value])]
  except (TypeError, ValueError):
    raise ValueError('hparam %s is %r, not a list of sizes' % (field, value)) from None
  if not sizes or min(sizes) < 1:
    raise ValueError('hparam %s is %r, not a list of positive sizes' % (field, value))
  return sizes


def _lstm_shapes(prefix, input_size, sizes):
  out = {}
  for i, u in enumerate(sizes):
    out.update({prefix + 'kernel_%d' % i: (input_size, 4 * u),
                prefix + 'recurrent_kernel_%d' % i: (u, 4 * u),
                prefix + 'bias_%d' % i: (4 * u,)})
    input_size = u
  return out


def _flat_shapes(prefix, output_depth, sizes, z_size, control_depth):
  out = _lstm_shapes(prefix + 'lstm/', output_depth + z_size + control_depth, sizes)
  if z_size:
    out.update({prefix + 'initial_state_kernel': (z_size, 2 * sum(sizes)),
                prefix + 'initial_state_bias': (2 * sum(sizes),)})
  out.update({prefix + 'output_kernel': (sizes[-1], output_depth),
              prefix + 'output_bias': (output_depth,)})
  return out


def expected_shapes(info):
  """{weight name: shape} of the model `info` (config.json fields) describes.

  The names and shapes mvae_tf.model builds (and weights_from_keras gives);
  ValueError naming the field when `info` lacks one or holds a bad value.
  """
  try:
    hp = info['hparams']
    z_size = int(hp['z_size'])
    enc, dec = _sizes(hp['enc_rnn_size'], 'enc_rnn_size'), _sizes(hp['dec_rnn_size'],
                                                                   'dec_rnn_size')
    conditional = hp.get('conditional', True)
    decoder_type = info['decoder_type']
    input_depth = int(info['input_depth'])
    output_depths = [int(d) for d in info['output_depths']]
    control_depth = int(info.get('control_depth') or 0)
  except KeyError as e:
    raise ValueError('the model info has no field %s' % e) from None
  except (TypeError, ValueError) as e:
    raise ValueError('the model info has a bad value (%s)' % e) from None
  shapes, size = {}, input_depth + control_depth
  for i, u in enumerate(enc):
    shapes.update(_lstm_shapes('encoder/fw_%d/' % i, size, [u]))
    shapes.update(_lstm_shapes('encoder/bw_%d/' % i, size, [u]))
    size = 2 * u
  shapes.update({'encoder/mu_kernel': (size, z_size), 'encoder/mu_bias': (z_size,),
                 'encoder/sigma_kernel': (size, z_size), 'encoder/sigma_bias': (z_size,)})
  if decoder_type == 'flat':
    shapes.update(_flat_shapes('decoder/', sum(output_depths), dec,
                               z_size if conditional else 0, control_depth))
  elif decoder_type == 'hierarchical':
    shapes.update(_lstm_shapes('decoder/conductor/', 1, dec))
    shapes.update({'decoder/conductor_initial_kernel': (z_size, 2 * sum(dec)),
                   'decoder/conductor_initial_bias': (2 * sum(dec),)})
    for i, depth in enumerate(output_depths):
      shapes.update(_flat_shapes('decoder/core_decoder_%d/' % i, depth, dec, dec[-1],
                                 control_depth))
  else:
    raise ValueError('unknown decoder_type %r' % (decoder_type,))
  return shapes


def check_weights(weights, info, source='weights'):
  """Raise naming the weight when `weights` do not fit the model `info` describes.

  WeightError (a KeyError and a ValueError) for a missing weight, ValueError
  for a weight of another shape (both shapes) or one the model does not use.
  `source` starts each message (e.g. the file they came from).
  """
  shapes = expected_shapes(info)
  missing = [name for name in shapes if name not in weights]
  if missing:
    raise WeightError('%s: weight %s is missing%s' % (
        source, missing[0], ' (and %d more)' % (len(missing) - 1) if len(missing) > 1 else ''))
  for name, shape in shapes.items():
    have = tuple(np.shape(weights[name]))
    if have != shape:
      raise ValueError('%s: weight %s: shape %s, model has %s' % (source, name, have, shape))
  unused = sorted(set(weights) - set(shapes))
  if unused:
    raise ValueError('%s: weights not used by a %s model: %s' % (
        source, info['decoder_type'], ', '.join(unused[:8])))


class _Weights:
  """The weight dict, recording which names were used (to catch naming mismatches)."""

  def __init__(self, weights):
    self.arrays = {k: np.asarray(v, np.float32) for k, v in weights.items()}
    self.used = set()

  def __contains__(self, name):
    return name in self.arrays

  def __getitem__(self, name):
    if name not in self.arrays:
      raise WeightError('weight %r missing (have %s...)' % (
          name, ', '.join(sorted(self.arrays)[:6])))
    self.used.add(name)
    return self.arrays[name]


class LSTMStack:
  """Stacked LSTM layers `prefix + kernel_L` etc., one step at a time.

  State: a list (c_0, h_0, c_1, h_1, ...). Layer 0 takes its input already
  projected (x @ kernel_0 + bias_0), as in mvae_tf.model.lstm.
  """

  def __init__(self, weights, prefix):
    self.kernels, self.recurrent_kernels, self.biases = [], [], []
    while prefix + 'kernel_%d' % len(self.kernels) in weights:
      i = len(self.kernels)
      self.kernels.append(weights[prefix + 'kernel_%d' % i])
      self.recurrent_kernels.append(weights[prefix + 'recurrent_kernel_%d' % i])
      self.biases.append(weights[prefix + 'bias_%d' % i])
    if not self.kernels:
      raise KeyError('no LSTM weights under %r' % prefix)
    self.units = [b.shape[0] // 4 for b in self.biases]

  @property
  def state_sizes(self):
    return [u for u in self.units for _ in (0, 1)]

  def zero_state(self, batch):
    return [np.zeros((batch, s), np.float32) for s in self.state_sizes]

  def states_from_vector(self, vector):
    return list(np.split(vector, np.cumsum(self.state_sizes)[:-1], -1))

  def step(self, x_projection, states):
    """(projected input [B, 4u_0], states) -> (top h, new states)."""
    new_states, x = [], None
    for i, u in enumerate(self.units):
      c, h = states[2 * i], states[2 * i + 1]
      if i == 0:
        gates = x_projection + h @ self.recurrent_kernels[0]
      else:
        gates = x @ self.kernels[i] + h @ self.recurrent_kernels[i] + self.biases[i]
      g = sigmoid(gates)  # the c block's sigmoid is not used: one call is faster than three
      c = g[:, u:2 * u] * c + g[:, :u] * np.tanh(gates[:, 2 * u:3 * u])
      h = g[:, 3 * u:] * np.tanh(c)
      new_states += [c, h]
      x = h
    return x, new_states

  def run(self, x_projection, lengths):
    """Over [B, T, 4u] from zero state; the state stops at each length. (outputs, states)."""
    batch, steps = x_projection.shape[:2]
    states = self.zero_state(batch)
    outputs = np.zeros((batch, steps, self.units[-1]), np.float32)
    for t in range(steps):
      h, new_states = self.step(x_projection[:, t], states)
      alive = (t < lengths)[:, None]
      states = [np.where(alive, n, o) for n, o in zip(new_states, states)]
      outputs[:, t] = h
    return outputs, states


class Encoder:
  """The bidirectional LSTM encoder: (inputs [B, T, D], lengths [B]) -> (mu, sigma)."""

  def __init__(self, weights, prefix='encoder/'):
    self.layers = []
    while prefix + 'fw_%d/kernel_0' % len(self.layers) in weights:
      i = len(self.layers)
      self.layers.append((LSTMStack(weights, prefix + 'fw_%d/' % i),
                          LSTMStack(weights, prefix + 'bw_%d/' % i)))
    self.mu_kernel, self.mu_bias = weights[prefix + 'mu_kernel'], weights[prefix + 'mu_bias']
    self.sigma_kernel = weights[prefix + 'sigma_kernel']
    self.sigma_bias = weights[prefix + 'sigma_bias']

  def __call__(self, inputs, lengths):
    x = np.asarray(inputs, np.float32)
    lengths = np.asarray(lengths, np.int64)
    steps = np.arange(x.shape[1])[None, :]
    # Reverses each sequence within its length (and is its own inverse).
    reverse = np.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)
    rows = np.arange(len(x))[:, None]
    for fw, bw in self.layers:
      fw_out, fw_state = fw.run(dense(x, fw.kernels[0]) + fw.biases[0], lengths)
      bw_out, bw_state = bw.run(dense(x[rows, reverse], bw.kernels[0]) + bw.biases[0],
                               lengths)
      x = np.concatenate([fw_out, bw_out[rows, reverse]], -1)
    h = np.concatenate([fw_state[-1], bw_state[-1]], -1)
    return h @ self.mu_kernel + self.mu_bias, softplus(h @ self.sigma_kernel + self.sigma_bias)


class FlatDecoder:
  """The categorical LSTM decoder (also each core decoder of the hierarchical one)."""

  def __init__(self, weights, prefix, output_depths, z_size, control_depth=0):
    self.output_depths = list(output_depths)
    self.output_depth = sum(self.output_depths)
    self.z_size = z_size
    self.control_depth = control_depth
    self.cell = LSTMStack(weights, prefix + 'lstm/')
    if z_size:
      self.initial_kernel = weights[prefix + 'initial_state_kernel']
      self.initial_bias = weights[prefix + 'initial_state_bias']
    self.output_kernel = weights[prefix + 'output_kernel']
    self.output_bias = weights[prefix + 'output_bias']
    kernel = self.cell.kernels[0]
    d = self.output_depth
    self.token_kernel = kernel[:d]
    self.z_kernel = kernel[d:d + z_size]
    self.control_kernel = kernel[d + z_size:]
    self.offsets = np.cumsum([0] + self.output_depths[:-1])

  def initial_state(self, z, batch):
    if not self.z_size:
      return self.cell.zero_state(batch)
    return self.cell.states_from_vector(np.tanh(z @ self.initial_kernel + self.initial_bias))

  def condition(self, z, batch):
    """z's first-layer term plus the bias [B, 4u]: the same at every step."""
    bias = self.cell.biases[0]
    if not self.z_size:
      return np.broadcast_to(bias, (batch, bias.shape[0]))
    return z @ self.z_kernel + bias

  def teacher_forced(self, previous, z, controls=None):
    """Logits [B, T, D] given the previous tokens [B, T, D] (zeros at t=0)."""
    previous = np.asarray(previous, np.float32)
    batch, steps = previous.shape[:2]
    x = dense(previous, self.token_kernel) + self.condition(z, batch)[:, None]
    if self.control_depth:
      x = x + dense(np.asarray(controls, np.float32), self.control_kernel)
    states = self.initial_state(z, batch)
    hs = np.zeros((batch, steps, self.cell.units[-1]), np.float32)
    for t in range(steps):
      hs[:, t], states = self.cell.step(x[:, t], states)
    return dense(hs, self.output_kernel) + self.output_bias

  def sample(self, z, num_steps, temperature, uniforms, controls=None, first=None, batch=None):
    """Free-running decode: (indices [B, T, P] int32, logits [B, T, D]).

    `uniforms` [B, T, P]: the draws of temperature sampling (None for argmax).
    `first` [B, P] indices is the token before step 0 (default: none, zeros).
    """
    batch = len(z) if batch is None else batch
    cond = self.condition(z, batch)
    states = self.initial_state(z, batch)
    token = 0.0 if first is None else self.token_kernel[first + self.offsets].sum(1)
    indices = np.zeros((batch, num_steps, len(self.output_depths)), np.int32)
    logits = np.zeros((batch, num_steps, self.output_depth), np.float32)
    for t in range(num_steps):
      x = token + cond
      if self.control_depth:
        x = x + np.asarray(controls[:, t], np.float32) @ self.control_kernel
      h, states = self.cell.step(x, states)
      logits[:, t] = h @ self.output_kernel + self.output_bias
      indices[:, t] = choose(logits[:, t], self.output_depths, temperature,
                             None if uniforms is None else uniforms[:, t])
      token = self.token_kernel[indices[:, t] + self.offsets].sum(1)
    return indices, logits


class HierarchicalDecoder:
  """Conductor + one core decoder per part, a bar at a time."""

  def __init__(self, weights, prefix, output_depths, z_size, num_bars, steps_per_bar,
               control_depth=0):
    self.output_depths = list(output_depths)
    self.num_bars = num_bars
    self.steps_per_bar = steps_per_bar
    self.control_depth = control_depth
    self.conductor = LSTMStack(weights, prefix + 'conductor/')
    self.initial_kernel = weights[prefix + 'conductor_initial_kernel']
    self.initial_bias = weights[prefix + 'conductor_initial_bias']
    size = self.conductor.units[-1]
    self.cores = [FlatDecoder(weights, prefix + 'core_decoder_%d/' % i, [d], size, control_depth)
                  for i, d in enumerate(self.output_depths)]

  def embeddings(self, z, num_bars):
    """[B, num_bars, E]: the conductor's top h at each step (its input is zeros)."""
    states = self.conductor.states_from_vector(np.tanh(z @ self.initial_kernel
                                                       + self.initial_bias))
    x = np.broadcast_to(self.conductor.biases[0], (len(z), self.conductor.biases[0].shape[0]))
    out = []
    for _ in range(num_bars):
      h, states = self.conductor.step(x, states)
      out.append(h)
    return np.stack(out, 1)

  def teacher_forced(self, previous, z, controls=None):
    batch, steps = previous.shape[:2]
    spb, bars = self.steps_per_bar, steps // self.steps_per_bar
    emb = self.embeddings(z, bars).reshape(batch * bars, -1)
    ctrl = None
    if self.control_depth:
      ctrl = np.asarray(controls, np.float32).reshape(batch * bars, spb, -1)
    parts = split_parts(np.asarray(previous, np.float32), self.output_depths)
    logits = [core.teacher_forced(part.reshape(batch * bars, spb, -1), emb, ctrl)
              .reshape(batch, steps, -1) for core, part in zip(self.cores, parts)]
    return np.concatenate(logits, -1)

  def sample(self, z, num_steps, temperature, uniforms, controls=None):
    if num_steps > self.num_bars * self.steps_per_bar:
      raise ValueError('a hierarchical decoder writes at most %d steps, asked for %d' % (
          self.num_bars * self.steps_per_bar, num_steps))
    batch, spb = len(z), self.steps_per_bar
    bars = -(-num_steps // spb)
    emb = self.embeddings(z, bars)
    previous = [None] * len(self.cores)
    indices, logits = [], []
    for b in range(bars):
      ctrl = controls[:, b * spb:(b + 1) * spb] if self.control_depth else None
      bar_indices, bar_logits = [], []
      for p, core in enumerate(self.cores):
        u = None if uniforms is None else uniforms[:, b * spb:(b + 1) * spb, p:p + 1]
        idx, lg = core.sample(emb[:, b], spb, temperature, u, ctrl, previous[p], batch)
        previous[p] = idx[:, -1]
        bar_indices.append(idx)
        bar_logits.append(lg)
      indices.append(np.concatenate(bar_indices, -1))
      logits.append(np.concatenate(bar_logits, -1))
    return (np.concatenate(indices, 1)[:, :num_steps],
            np.concatenate(logits, 1)[:, :num_steps])


def shift_right(targets):
  """Decoder inputs: the previous target at each step, zeros at t=0."""
  targets = np.asarray(targets, np.float32)
  return np.pad(targets[:, :-1], [(0, 0), (1, 0), (0, 0)])


class NumpyMusicVAE:
  """A MusicVAE's inference in numpy.

  Args:
    weights: dict name -> array (any float dtype; computed in float32).
    info: dict with 'decoder_type', 'input_depth', 'output_depths',
      'control_depth', 'steps_per_bar' and 'hparams' (z_size, max_seq_len,
      conditional), as mvae_tf.pretrained writes in config.json.
  """

  def __init__(self, weights, info):
    check_weights(weights, info)  # names the weight, not a broadcast error at run time
    w = _Weights(weights)
    hp = info['hparams']
    self.info = info
    self.weights = w.arrays
    self.decoder_type = info['decoder_type']
    self.output_depths = [int(d) for d in info['output_depths']]
    self.control_depth = int(info.get('control_depth', 0))
    self.z_size = int(hp['z_size'])
    self.max_seq_len = int(hp['max_seq_len'])
    self.encoder = Encoder(w)
    z_size = self.z_size if hp.get('conditional', True) else 0
    if self.decoder_type == 'flat':
      self.decoder = FlatDecoder(w, 'decoder/', self.output_depths, z_size, self.control_depth)
    elif self.decoder_type == 'hierarchical':
      spb = int(info.get('steps_per_bar', 16))
      self.decoder = HierarchicalDecoder(w, 'decoder/', self.output_depths, z_size,
                                         self.max_seq_len // spb, spb, self.control_depth)
    else:
      raise ValueError('unknown decoder_type %r' % self.decoder_type)
    unused = sorted(set(w.arrays) - w.used)
    if unused:
      raise ValueError('weights not used by a %s model: %s' % (
          self.decoder_type, ', '.join(unused[:8])))

  @classmethod
  def from_keras(cls, model):
    """The numpy twin of a mvae_tf MusicVAE (same weights)."""
    from mvae_tf.pretrained import model_info
    return cls(weights_from_keras(model), model_info(model))

  def _controls(self, controls):
    if not self.control_depth:
      return None
    if controls is None:
      raise ValueError('this model is conditioned on controls (depth %d); pass controls'
                       % self.control_depth)
    return np.asarray(controls, np.float32)

  def encode(self, inputs, lengths, controls=None):
    """(mu, sigma) of q(z|x), each [B, z_size]."""
    x = np.asarray(inputs, np.float32)
    if self.control_depth:
      x = np.concatenate([x, self._controls(controls)], -1)
    with single_threaded_blas():
      return self.encoder(x, lengths)

  def teacher_forced_logits(self, targets, z, controls=None):
    """Logits [B, T, D] with the decoder fed the previous targets."""
    z = np.asarray(z, np.float32)
    with single_threaded_blas():
      return self.decoder.teacher_forced(shift_right(targets), z, self._controls(controls))

  def sample(self, z, num_steps, temperature=0.0, seed=None, controls=None):
    """Free-running decode from z: (indices [B, T, P] int32, logits [B, T, D]).

    `seed`: int, None or a numpy Generator (used only when temperature > 0);
    see sampling_uniforms.
    """
    z = np.asarray(z, np.float32)
    num_steps = int(num_steps)
    uniforms = None
    if temperature:
      steps = -(-num_steps // self.decoder.steps_per_bar) * self.decoder.steps_per_bar \
          if self.decoder_type == 'hierarchical' else num_steps
      uniforms = sampling_uniforms(seed, len(z), steps, len(self.output_depths))
    with single_threaded_blas():
      return self.decoder.sample(z, num_steps, float(temperature), uniforms,
                                 self._controls(controls))


def weights_from_keras(model):
  """{layer path/weight name: float32 array} of a mvae_tf MusicVAE (imports TensorFlow)."""
  from mvae_tf.runs import _named_weights
  weights = {name: np.asarray(v.numpy(), np.float32) for name, v in _named_weights(model)}
  if len(weights) != len(model.weights):
    raise ValueError('cannot name every weight of %s' % model.name)
  return weights


def assign_keras_weights(model, weights):
  """Set a MusicVAE's weights from a dict named as weights_from_keras names them."""
  from mvae_tf.runs import _named_weights
  named = dict(_named_weights(model))
  missing, extra = sorted(set(named) - set(weights)), sorted(set(weights) - set(named))
  if missing or extra:
    raise ValueError('weights do not match model %s: missing %s, unexpected %s' % (
        model.name, missing[:5], extra[:5]))
  for name, variable in named.items():
    if tuple(variable.shape) != weights[name].shape:
      raise ValueError('weight %s: shape %s, model has %s' % (
          name, weights[name].shape, tuple(variable.shape)))
    variable.assign(np.asarray(weights[name], np.float32))
