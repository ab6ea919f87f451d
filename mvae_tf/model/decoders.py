"""The decoders: flat categorical LSTM and hierarchical (conductor + core decoders).

Every decoder is one explicit step, `step(x_projection, states) -> (logits,
states)`; teacher forcing, scheduled sampling and free-running sampling are
loops around it. Work that is the same at every step is done once per call:
the previous-token term of the first layer is a row lookup of its kernel (a
one-hot times a matrix), and the z (or bar embedding) term plus the bias is one
[B, 4u] product added at each step.
"""

import keras
import tensorflow as tf

from mvae_tf.model import lstm
from mvae_tf.model.lstm import LSTMStack, scan


def _seed(seed):
  """A [2] int32 seed for stateless sampling: from an int, a tensor, or fresh."""
  if seed is None:
    return tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
  if isinstance(seed, int):
    return tf.constant([seed, 0], tf.int32)
  return tf.cast(seed, tf.int32)


def sample_parts(logits, depths, temperature=0.0, seed=None, noise=None):
  """Indices [B, P] of one class per part of `logits` [B, sum(depths)].

  Without `noise`: temperature 0 (a Python number) means argmax; else a draw
  of softmax(logits / temperature) with the stateless `seed`. With `noise`
  [B, sum(depths)] (uniform in (0, 1)), Gumbel-max: see gumbel_max.
  """
  if noise is not None:
    return gumbel_max(logits, depths, temperature, noise)
  parts = tf.split(logits, depths, axis=-1) if len(depths) > 1 else [logits]
  out = []
  for p, part in enumerate(parts):
    if isinstance(temperature, (int, float)) and temperature == 0:
      out.append(tf.argmax(part, -1, output_type=tf.int32))
    else:
      s = tf.random.experimental.stateless_fold_in(seed, p)
      out.append(tf.random.stateless_categorical(
          part / temperature, 1, seed=s, dtype=tf.int32)[:, 0])
  return tf.stack(out, -1)


# Uniform noise is clipped to [NOISE_MIN, 1 - 2^-24] before the Gumbel transform,
# so that 0 and 1 (which a device may draw) give finite scores.
NOISE_MIN = 1e-20


def gumbel_max(logits, depths, temperature, noise):
  """Gumbel-max sampling: argmax(logits / temperature - log(-log(noise))) per part.

  The same draw as softmax(logits / temperature) sampling, with the randomness
  an input: the same `noise` [B, sum(depths)] (uniform in (0, 1)) gives the
  same tokens on every device. `temperature` (a number or [B]) of 0 means
  argmax (the noise is ignored). Returns indices [B, P] int32. No random op.
  """
  temperature = tf.cast(temperature, tf.float32)
  if len(temperature.shape) == 1:
    temperature = temperature[:, None]
  hot = temperature > 0
  noise = tf.clip_by_value(tf.cast(noise, tf.float32), NOISE_MIN, 1.0 - 2.0 ** -24)
  gumbel = -tf.math.log(-tf.math.log(noise))
  scores = tf.where(hot, logits / tf.where(hot, temperature, 1.0) + gumbel, logits)
  parts = tf.split(scores, depths, axis=-1) if len(depths) > 1 else [scores]
  return tf.stack([tf.argmax(part, -1, output_type=tf.int32) for part in parts], -1)


def indices_to_onehot(indices, depths):
  """[..., P] indices -> [..., sum(depths)] float one-hot per part."""
  return tf.concat([tf.one_hot(indices[..., p], d) for p, d in enumerate(depths)], -1)


def z_to_state_init():
  """The initializer of a kernel from z (or a conductor embedding) to an LSTM's initial
  state: N(0, 0.001), as the original's initial_cell_state_from_embedding (not Keras'
  Glorot); a new one per weight (an unseeded Keras initializer called twice repeats its
  values)."""
  return keras.initializers.RandomNormal(stddev=0.001)


@keras.saving.register_keras_serializable(package='mvae_tf')
class CategoricalLSTMDecoder(keras.layers.Layer):
  """Flat LSTM decoder over one-hot parts (melody 90, drums 512, trio 90/90/512).

  Input at each step: [previous token (one-hot per part, zeros at t=0), z,
  control]; initial state tanh(Dense(z)) split into (c, h) per layer; logits
  Dense(top h). Also the core decoder of the hierarchical decoder, where z is
  the bar embedding.

  Args:
    output_depths: list of int, classes of each part (softmax per part).
    rnn_sizes: list of int, LSTM layer sizes.
    z_size: int, conditioning vector size (0: unconditional, zero initial state).
    control_depth: int, control (chord) depth concatenated to every input.
  """

  def __init__(self, output_depths, rnn_sizes, z_size, control_depth=0, **kwargs):
    super().__init__(**kwargs)
    self.output_depths = [int(d) for d in output_depths]
    self.rnn_sizes = [int(u) for u in rnn_sizes]
    self.z_size = int(z_size)
    self.control_depth = int(control_depth)
    self.output_depth = sum(self.output_depths)
    self.cell = LSTMStack(self.output_depth + self.z_size + self.control_depth,
                          self.rnn_sizes, name='lstm')
    if self.z_size:
      self.initial_state_kernel = self.add_weight(
          shape=(self.z_size, sum(self.cell.state_sizes)), initializer=z_to_state_init(),
          name='initial_state_kernel')
      self.initial_state_bias = self.add_weight(
          shape=(sum(self.cell.state_sizes),), initializer='zeros', name='initial_state_bias')
    self.output_kernel = self.add_weight(
        shape=(self.rnn_sizes[-1], self.output_depth), initializer='glorot_uniform',
        name='output_kernel')
    self.output_bias = self.add_weight(shape=(self.output_depth,), initializer='zeros',
                                       name='output_bias')
    self._offsets = [sum(self.output_depths[:p]) for p in range(len(self.output_depths))]
    self.built = True

  def get_config(self):
    config = super().get_config()
    config.update(output_depths=list(self.output_depths), rnn_sizes=list(self.rnn_sizes),
                  z_size=self.z_size, control_depth=self.control_depth)
    return config

  # --- Terms of the first layer's input projection. ---

  def token_projection(self, tokens):
    """One-hot previous tokens [..., D] -> their first-layer term [..., 4u]."""
    return self.cell.input_projection(tf.cast(tokens, tf.float32), rows=(0, self.output_depth))

  def token_rows(self, indices):
    """Previous tokens as indices [B, P] -> the same term by row lookup."""
    rows = tf.gather(self.cell.kernels[0], indices + tf.constant(self._offsets, tf.int32))
    return tf.reduce_sum(rows, -2)

  def condition_projection(self, z):
    """[B, z_size] -> z's first-layer term plus the bias [B, 4u], the same at every step."""
    bias = self.cell.biases[0]
    if not self.z_size:
      return bias
    d = self.output_depth
    return tf.matmul(z, self.cell.kernels[0][d:d + self.z_size]) + bias

  def control_projection(self, controls):
    """Controls [B, T, C] -> their first-layer term [B, T, 4u]."""
    start = self.output_depth + self.z_size
    return self.cell.input_projection(tf.cast(controls, tf.float32), rows=(start, None))

  def initial_state(self, z, batch_size=None):
    if not self.z_size:
      return self.cell.zero_state(batch_size if batch_size is not None else tf.shape(z)[0])
    return self.cell.states_from_vector(
        tf.tanh(tf.matmul(z, self.initial_state_kernel) + self.initial_state_bias))

  # --- The step. ---

  def step(self, x_projection, states):
    """(first-layer input term [B, 4u], states) -> (logits [B, D], states)."""
    h, states = self.cell.step(x_projection, states)
    return tf.matmul(h, self.output_kernel) + self.output_bias, states

  def step_inputs(self, previous_tokens, z, states, controls=None):
    """The step from raw inputs: one-hot previous tokens [B, D], z [B, z], control [B, C]."""
    x = self.token_projection(previous_tokens) + self.condition_projection(z)
    if controls is not None and self.control_depth:
      start = self.output_depth + self.z_size
      x += tf.matmul(tf.cast(controls, tf.float32), self.cell.kernels[0][start:])
    return self.step(x, states)

  # --- Loops around the step. ---

  def _step_terms(self, z, controls, batch):
    cond = self.condition_projection(z)
    cond = tf.broadcast_to(cond, [batch, cond.shape[-1]]) if not self.z_size else cond
    ctrl = self.control_projection(controls) if self.control_depth else None
    return cond, ctrl

  def teacher_forced(self, inputs, z, controls=None, sampling_probability=0.0, seed=None,
                     states=None, rows=None, hand_written_backward=None):
    """Logits [B, T, D] given the previous tokens `inputs` [B, T, D] (zeros at t=0).

    With `sampling_probability` > 0, each step's input is, with that
    probability, a token sampled from the previous step's logits instead
    (scheduled sampling, never at t=0). `rows` (first, total): this batch is
    rows first..first+B of a batch of `total` rows (one replica's share of a
    global batch); each step's draws are made for all `total` rows and this
    batch's taken, so that an example gets the same draws however the global
    batch is split over replicas. `hand_written_backward`: run decode_stack's
    hand-written backward pass where it applies (None: lstm's default,
    HAND_WRITTEN_DECODER_BACKWARD; False: autodiff of the step loop).
    """
    inputs = tf.cast(inputs, tf.float32)
    batch = tf.shape(inputs)[0]
    cond, ctrl = self._step_terms(z, controls, batch)
    x = self.token_projection(inputs) + cond[:, None, :]
    if ctrl is not None:
      x += ctrl
    if states is None:
      states = self.initial_state(z, batch)
    no_sampling = isinstance(sampling_probability, (int, float)) and sampling_probability == 0
    num_steps = x.shape[1]
    if hand_written_backward is None:
      hand_written_backward = lstm.HAND_WRITTEN_DECODER_BACKWARD
    hand_written = (hand_written_backward and isinstance(num_steps, int)
                    and num_steps <= lstm.UNROLL_LIMIT)
    chunked = (hand_written_backward and isinstance(num_steps, int)
               and not hand_written and lstm.chunk_length(num_steps))
    if no_sampling and chunked:
      return self._decode_stack(x, states, chunked=True)
    if no_sampling and not hand_written:
      logits, _ = scan(lambda t, x_t, s: self.step(x_t, s), x, states)
      return logits
    if no_sampling:
      return self._decode_stack(x, states)
    seed = _seed(seed)
    # The non-token term of each step, to add to a sampled token's rows.
    other = cond[:, None, :] + ctrl if ctrl is not None else tf.broadcast_to(
        cond[:, None, :], tf.shape(x))

    def choose(t, previous_logits):
      """(use the sampled token at step t [B, 1], its indices per part [B, P])."""
      step_seed = tf.random.experimental.stateless_fold_in(seed, t)
      use_seed = tf.random.experimental.stateless_fold_in(step_seed, 99)
      if rows is None:
        sampled = sample_parts(previous_logits, self.output_depths, 1.0, step_seed)
        u = tf.random.stateless_uniform([batch], use_seed)
      else:  # the global batch's draws (Gumbel-max: the same distribution), ours sliced
        first, total = rows
        noise = tf.random.stateless_uniform(
            [total, self.output_depth],
            tf.random.experimental.stateless_fold_in(step_seed, 98))[first:first + batch]
        sampled = sample_parts(previous_logits, self.output_depths, 1.0, noise=noise)
        u = tf.random.stateless_uniform([total], use_seed)[first:first + batch]
      use = u < sampling_probability
      use = tf.logical_and(use, t > 0)[:, None]
      return use, sampled

    if hand_written:
      return self._decode_stack(x, states, choose, other)

    def body(t, pair, carry):
      x_t, other_t = pair[:, 0], pair[:, 1]
      states, previous_logits = carry
      use, sampled = choose(t, previous_logits)
      x_t = tf.where(use, self.token_rows(sampled) + other_t, x_t)
      logits, states = self.step(x_t, states)
      return logits, (states, logits)

    elems = tf.stack([x, other], 2)  # [B, T, 2, 4u]
    logits, _ = scan(body, elems,
                     (states, tf.zeros([batch, self.output_depth])))
    return logits

  def _decode_stack(self, x, states, choose=None, other=None, chunked=False):
    """teacher_forced's pass through lstm.decode_stack (hand-written backward);
    `chunked`: through lstm.decode_stack_chunked (long sequences, no sampling)."""
    cell, read = self.cell, tf.convert_to_tensor
    weights = ([read(k) for k in cell.recurrent_kernels], [read(k) for k in cell.kernels[1:]],
               [read(b) for b in cell.biases[1:]], read(self.output_kernel),
               read(self.output_bias))
    if chunked:
      return lstm.decode_stack_chunked(x, states, *weights)
    return lstm.decode_stack(
        x, states, *weights, choose=choose, other=other,
        token_table=None if choose is None else read(cell.kernels[0])[:self.output_depth],
        token_offsets=self._offsets)

  def sample(self, z, num_steps, temperature=0.0, seed=None, controls=None,
             first_input=None, states=None, batch_size=None, noise=None, unroll=None):
    """Free-running decode: each step is fed its own previous sample.

    Returns (indices [B, num_steps, P] int32, logits [B, num_steps, D], final states).
    `first_input` [B, D] one-hot (default zeros) is the first step's previous token.
    With `noise` [B, num_steps, D] (uniform in (0, 1)) the draws are Gumbel-max
    (`gumbel_max`, temperature a number or [B]) and no random op is used:
    the exported graphs decode this way. `unroll`: see lstm.scan.
    """
    batch = batch_size if batch_size is not None else tf.shape(z)[0]
    cond, ctrl = self._step_terms(z, controls, batch)
    if states is None:
      states = self.initial_state(z, batch)
    token = (self.token_projection(first_input) if first_input is not None
             else tf.zeros_like(cond))
    greedy = isinstance(temperature, (int, float)) and temperature == 0
    seed = _seed(seed) if not greedy and noise is None else None

    def body(t, inputs, carry):
      ctrl_t, noise_t = inputs
      states, token = carry
      x_t = token + cond if ctrl_t is None else token + cond + ctrl_t
      logits, states = self.step(x_t, states)
      step_seed = (tf.random.experimental.stateless_fold_in(seed, t)
                   if seed is not None else None)
      indices = sample_parts(logits, self.output_depths, temperature, step_seed, noise_t)
      return (indices, logits), (states, self.token_rows(indices))

    (indices, logits), (states, _) = scan(
        body, (ctrl, noise), (states, token), num_steps,
        output_dtypes=(tf.int32, tf.float32), unroll=unroll,
        output_shapes=([z.shape[0], len(self.output_depths)], [z.shape[0], self.output_depth]))
    return indices, logits, states


@keras.saving.register_keras_serializable(package='mvae_tf')
class HierarchicalLSTMDecoder(keras.layers.Layer):
  """Conductor LSTM + one core decoder per part, writing one bar at a time.

  The conductor (initial state tanh(Dense(z)), input a zero vector of size 1)
  emits one embedding per bar (its top h). Each core decoder starts bar b from
  tanh(Dense(embedding_b)), gets the embedding with every input, and is fed the
  previous bar's last token at the bar's first step (zeros for bar 0), so bars
  are independent given the conductor and can be teacher-forced in parallel.
  Trio: three core decoders share the embedding, each fed only its own part.

  Args:
    output_depths: list of int, one core decoder per part.
    rnn_sizes: list of int, conductor and core decoder layer sizes.
    z_size: int.
    num_bars: int, conductor steps (16 for 16 bars).
    steps_per_bar: int, core decoder steps per bar.
    control_depth: int, controls given to the core decoders.
  """

  def __init__(self, output_depths, rnn_sizes, z_size, num_bars, steps_per_bar=16,
               control_depth=0, **kwargs):
    super().__init__(**kwargs)
    self.output_depths = [int(d) for d in output_depths]
    self.rnn_sizes = [int(u) for u in rnn_sizes]
    self.z_size = int(z_size)
    self.num_bars = int(num_bars)
    self.steps_per_bar = int(steps_per_bar)
    self.control_depth = int(control_depth)
    self.output_depth = sum(self.output_depths)
    self.conductor = LSTMStack(1, self.rnn_sizes, name='conductor')
    self.conductor_initial_kernel = self.add_weight(
        shape=(self.z_size, sum(self.conductor.state_sizes)), initializer=z_to_state_init(),
        name='conductor_initial_kernel')
    self.conductor_initial_bias = self.add_weight(
        shape=(sum(self.conductor.state_sizes),), initializer='zeros',
        name='conductor_initial_bias')
    self.core_decoders = [
        CategoricalLSTMDecoder([d], self.rnn_sizes, self.rnn_sizes[-1], self.control_depth,
                               name='core_decoder_%d' % i)
        for i, d in enumerate(self.output_depths)]
    self.built = True

  def get_config(self):
    config = super().get_config()
    config.update(output_depths=list(self.output_depths), rnn_sizes=list(self.rnn_sizes),
                  z_size=self.z_size, num_bars=self.num_bars,
                  steps_per_bar=self.steps_per_bar, control_depth=self.control_depth)
    return config

  def conductor_step(self, states):
    """One conductor step (its input is always zeros): states -> (embedding, states)."""
    batch = tf.shape(states[0])[0]
    x = tf.broadcast_to(self.conductor.biases[0], [batch, 4 * self.rnn_sizes[0]])
    return self.conductor.step(x, states)

  def embeddings(self, z):
    """z [B, z_size] -> one embedding per bar [B, num_bars, E]."""
    states = self.conductor.states_from_vector(
        tf.tanh(tf.matmul(z, self.conductor_initial_kernel) + self.conductor_initial_bias))
    emb, _ = scan(lambda t, _, s: self.conductor_step(s), None, states, self.num_bars,
                  output_shapes=[z.shape[0], self.rnn_sizes[-1]])
    return emb

  def _split_bars(self, x):
    """[B, bars * spb, ...] -> [B * bars, spb, ...]."""
    return tf.reshape(x, [-1, self.steps_per_bar] + x.shape[2:].as_list())

  def teacher_forced(self, inputs, z, controls=None, sampling_probability=0.0, seed=None,
                     rows=None, hand_written_backward=None):
    """Logits [B, T, D] given previous tokens [B, T, D] shifted over the whole sequence.
    `rows`, `hand_written_backward`: see CategoricalLSTMDecoder.teacher_forced (each
    example is num_bars rows of the core decoders)."""
    inputs = tf.cast(inputs, tf.float32)
    batch = tf.shape(inputs)[0]
    num_steps = self.num_bars * self.steps_per_bar
    emb = tf.reshape(self.embeddings(z), [-1, self.rnn_sizes[-1]])  # [B * bars, E]
    ctrl = self._split_bars(controls) if self.control_depth else None
    parts = tf.split(inputs, self.output_depths, -1) if len(self.output_depths) > 1 \
        else [inputs]
    logits = []
    for p, (core, part) in enumerate(zip(self.core_decoders, parts)):
      part_seed = None if seed is None else tf.random.experimental.stateless_fold_in(
          _seed(seed), p)
      out = core.teacher_forced(
          self._split_bars(part), emb, ctrl, sampling_probability, part_seed,
          rows=None if rows is None else (rows[0] * self.num_bars, rows[1] * self.num_bars),
          hand_written_backward=hand_written_backward)
      logits.append(tf.reshape(out, [batch, num_steps, core.output_depth]))
    return tf.concat(logits, -1) if len(logits) > 1 else logits[0]

  def sample(self, z, num_steps, temperature=0.0, seed=None, controls=None, noise=None):
    """Free-running decode, bar by bar. Returns (indices [B, T, P], logits [B, T, D]).

    With `noise` [B, >= bars * steps_per_bar, D] the draws are Gumbel-max (see
    CategoricalLSTMDecoder.sample).
    """
    if num_steps > self.num_bars * self.steps_per_bar:
      raise ValueError('a hierarchical decoder writes at most %d steps, asked for %d' % (
          self.num_bars * self.steps_per_bar, num_steps))
    batch = tf.shape(z)[0]
    emb = self.embeddings(z)
    greedy = isinstance(temperature, (int, float)) and temperature == 0
    seed = None if greedy or noise is not None else _seed(seed)
    bars = -(-num_steps // self.steps_per_bar)
    num_parts = len(self.core_decoders)
    spb = self.steps_per_bar

    def per_bar(x, depth):
      return tf.reshape(x[:, :bars * spb], [batch, bars, spb, depth])
    ctrl = per_bar(controls, self.control_depth) if self.control_depth else None
    noise = per_bar(noise, self.output_depth) if noise is not None else None
    offsets = [sum(self.output_depths[:p]) for p in range(num_parts)]

    def bar_body(b, inputs, previous):
      ctrl_b, noise_b = inputs
      emb_b = tf.gather(emb, b, axis=1)
      indices, logits, last = [], [], []
      for p, core in enumerate(self.core_decoders):
        s = None if seed is None else tf.random.experimental.stateless_fold_in(
            seed, b * num_parts + p)
        noise_p = None if noise_b is None else \
            noise_b[..., offsets[p]:offsets[p] + core.output_depth]
        idx, lg, _ = core.sample(emb_b, spb, temperature, s, ctrl_b,
                                 first_input=previous[p], batch_size=batch, noise=noise_p)
        last.append(tf.one_hot(idx[:, -1, 0], core.output_depth))
        indices.append(idx)
        logits.append(lg)
      return (tf.concat(indices, -1), tf.concat(logits, -1)), tuple(last)

    # Bars run in a tf.while_loop (a graph of one bar), each bar's steps unrolled.
    first = tuple(tf.zeros([batch, d]) for d in self.output_depths)
    (indices, logits), _ = scan(
        bar_body, (ctrl, noise), first, bars, output_dtypes=(tf.int32, tf.float32),
        unroll=False,
        output_shapes=([z.shape[0], spb, num_parts], [z.shape[0], spb, self.output_depth]))
    indices = tf.reshape(indices, [batch, bars * spb, num_parts])
    logits = tf.reshape(logits, [batch, bars * spb, self.output_depth])
    return indices[:, :num_steps], logits[:, :num_steps]
