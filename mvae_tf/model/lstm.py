"""A stateless LSTM stack: one step at a time, state passed in and returned.

Weights use the Keras LSTMCell layout per layer: `kernel` [input, 4u],
`recurrent_kernel` [u, 4u], `bias` [4u], gate blocks in the order i, f, c, o,
and the forget bias of 1.0 stored in `bias` (Keras' unit_forget_bias). The
reference's LSTMBlockCell (concat[x, h] @ W + b, blocks i, j, f, o, +1.0 on f at
run time) maps onto it exactly (see magenta_import.py).

Why stateless: the same `step` serves teacher forcing, scheduled sampling,
free-running sampling and TFLite export, which cannot convert stateful RNNs.
Layer 0 takes its input already projected (`x @ kernel_0 + bias_0`) so callers
can compute that product once for a whole sequence, or as a row lookup for a
one-hot token.
"""

import keras
import tensorflow as tf

# Sequences up to this many steps are unrolled in the graph (faster on CPU);
# longer ones run in a tf.while_loop.
UNROLL_LIMIT = 64

# One-layer stacks over an unrolled sequence use lstm_layer's hand-written
# backward pass (the default of `LSTMStack.run(hand_written_backward=None)`,
# read when a function is traced; off: plain autodiff). Inference-only
# functions (mvae_tf.export) pass hand_written_backward=False, so that no
# custom-gradient closure is traced into an exported graph.
HAND_WRITTEN_BACKWARD = True
# Decoders' teacher-forced and scheduled-sampling passes over an unrolled
# sequence use decode_stack's hand-written backward pass (likewise: the default of
# their `teacher_forced(hand_written_backward=None)`). Both are defaults only: a
# caller chooses by the argument (tests/harness.py runs each layer both ways).
HAND_WRITTEN_DECODER_BACKWARD = True

# The dtype of the matrix products in the hand-written passes above (forward and
# backward; read when a function is traced). bfloat16 is mixed precision
# (`mvae train --mixed_precision`): the weights, states, gates, logits, loss and the
# gradients handed to Adam stay float32; only each product's operands are rounded to
# bfloat16 (its sums and result are float32). See matmul_dtype().
MATMUL_DTYPE = tf.float32


class matmul_dtype:
  """`with matmul_dtype(tf.bfloat16): ...` traces the hand-written passes in bfloat16."""

  def __init__(self, dtype):
    self.dtype = tf.as_dtype(dtype)

  def __enter__(self):
    global MATMUL_DTYPE
    self._old, MATMUL_DTYPE = MATMUL_DTYPE, self.dtype
    return self

  def __exit__(self, *exc):
    global MATMUL_DTYPE
    MATMUL_DTYPE = self._old


def _low(x):
  """x in the products' dtype (a weight: once per call, not once per step)."""
  return x if x.dtype == MATMUL_DTYPE else tf.cast(x, MATMUL_DTYPE)


def _mm(a, b, **kwargs):
  """tf.matmul in MATMUL_DTYPE, the result float32."""
  if MATMUL_DTYPE == tf.float32 and a.dtype == b.dtype == tf.float32:
    return tf.matmul(a, b, **kwargs)
  out = tf.matmul(_low(a), _low(b), **kwargs)
  return tf.cast(out, tf.float32)


def _forget_bias_initializer(units):
  def init(shape, dtype=None):
    return tf.concat([tf.zeros([units], dtype), tf.ones([units], dtype),
                      tf.zeros([2 * units], dtype)], 0)
  return init


@keras.saving.register_keras_serializable(package='mvae_tf')
class LSTMStack(keras.layers.Layer):
  """Stacked LSTM layers run one step at a time.

  Args:
    input_size: int, depth of the input of the first layer.
    units: list of int, the size of each layer.

  State: a flat tuple (c_0, h_0, c_1, h_1, ...), each [batch, units_l].

  Example:
    stack = LSTMStack(10, [32, 16])
    states = stack.zero_state(4)
    h, states = stack.step(stack.input_projection(x_t), states)  # x_t [4, 10]
  """

  def __init__(self, input_size, units, **kwargs):
    super().__init__(**kwargs)
    self.input_size = int(input_size)
    self.units = [int(u) for u in units]
    self.kernels, self.recurrent_kernels, self.biases = [], [], []
    size = self.input_size
    for i, u in enumerate(self.units):
      self.kernels.append(self.add_weight(
          shape=(size, 4 * u), initializer='glorot_uniform', name='kernel_%d' % i))
      self.recurrent_kernels.append(self.add_weight(
          shape=(u, 4 * u), initializer='orthogonal', name='recurrent_kernel_%d' % i))
      self.biases.append(self.add_weight(
          shape=(4 * u,), initializer=_forget_bias_initializer(u), name='bias_%d' % i))
      size = u
    self.built = True

  def get_config(self):
    config = super().get_config()
    config.update(input_size=self.input_size, units=list(self.units))
    return config

  @property
  def state_sizes(self):
    """Sizes of the flat state tuple (c_0, h_0, c_1, h_1, ...)."""
    return [u for u in self.units for _ in (0, 1)]

  @property
  def output_size(self):
    return self.units[-1]

  def zero_state(self, batch_size, dtype=tf.float32):
    return tuple(tf.zeros([batch_size, s], dtype) for s in self.state_sizes)

  def states_from_vector(self, vector):
    """Split [batch, sum(state_sizes)] into the flat state tuple (c, h per layer)."""
    return tuple(tf.split(vector, self.state_sizes, axis=-1))

  def input_projection(self, x, rows=None):
    """x @ kernel_0 (+ bias_0): the first layer's input term, for any leading dims.

    `rows` (start, stop) uses only those kernel rows (x covers that slice of
    the input); the bias is added only when `rows` is None.
    """
    kernel = self.kernels[0] if rows is None else self.kernels[0][rows[0]:rows[1]]
    out = tf.tensordot(x, kernel, 1)
    if len(x.shape) == 2:  # tensordot loses the static shape of 2-D inputs
      out = tf.reshape(out, [-1, kernel.shape[1]])
    return out + self.biases[0] if rows is None else out

  def input_rows(self, indices, rows=(0, None)):
    """Rows of kernel_0 picked by int `indices`: the projection of one-hot inputs."""
    kernel = self.kernels[0][rows[0]:rows[1]] if rows != (0, None) else self.kernels[0]
    return tf.gather(kernel, indices)

  def step(self, x_projection, states):
    """One step: (projected input [B, 4u_0], states) -> (top h [B, u_top], states)."""
    new_states = []
    x = None
    for i, u in enumerate(self.units):
      c, h = states[2 * i], states[2 * i + 1]
      if i == 0:
        gates = x_projection + tf.matmul(h, self.recurrent_kernels[0])
      else:
        gates = (tf.matmul(x, self.kernels[i]) + tf.matmul(h, self.recurrent_kernels[i])
                 + self.biases[i])
      gi, gf, gc, go = tf.split(gates, 4, axis=-1)
      c = tf.sigmoid(gf) * c + tf.sigmoid(gi) * tf.tanh(gc)
      h = tf.sigmoid(go) * tf.tanh(c)
      new_states += [c, h]
      x = h
    return x, tuple(new_states)

  def run(self, x_projection, states, lengths=None, hand_written_backward=None):
    """Run over a sequence of projected inputs [B, T, 4u_0].

    With `lengths` [B], the state stops changing at each sequence's end, so the
    final state is the one at step length - 1. `hand_written_backward`: use
    lstm_layer's custom gradient where it applies (None: HAND_WRITTEN_BACKWARD;
    False for inference-only graphs).
    Returns (top h at every step [B, T, u_top], final states).
    """
    num_steps = x_projection.shape[1]
    if hand_written_backward is None:
      hand_written_backward = HAND_WRITTEN_BACKWARD
    if (hand_written_backward and len(self.units) == 1 and isinstance(num_steps, int)
        and (num_steps <= UNROLL_LIMIT or chunk_length(num_steps))):
      # The kernel is read here: the custom gradient sees a tensor, not a variable.
      kernel = tf.convert_to_tensor(self.recurrent_kernels[0])
      mask = None if lengths is None else tf.sequence_mask(lengths, num_steps, tf.float32)
      if num_steps <= UNROLL_LIMIT:
        outputs, c, h = _layer(x_projection, states[0], states[1], kernel, mask)
      else:
        outputs, c, h = lstm_layer_chunked(x_projection, states[0], states[1], kernel, mask)
      return outputs, (c, h)

    def body(t, x_t, states):
      h, new_states = self.step(x_t, states)
      if lengths is not None:
        alive = tf.expand_dims(t < lengths, -1)
        new_states = tuple(tf.where(alive, n, o) for n, o in zip(new_states, states))
      return h, new_states

    return scan(body, x_projection, states, num_steps, output_shapes=[x_projection.shape[0], self.units[-1]])


def scan(body, sequence, carry, num_steps=None, output_dtypes=tf.float32, unroll=None,
         output_shapes=None):
  """outputs[t], carry = body(t, sequence[:, t], carry) over time (axis 1).

  `sequence` may be None (then give `num_steps`) or a nest of tensors (or
  Nones), each sliced at t; outputs may be a nest of tensors whose dtypes
  `output_dtypes` gives (same nest), and whose per-step shapes
  `output_shapes` may give (same nest; TFLite needs them to convert the
  loop). Unrolled when the length is static and short (or `unroll` is
  True), else a tf.while_loop.
  Returns (outputs stacked on axis 1, final carry).
  """
  tensors = [s for s in tf.nest.flatten(sequence) if s is not None]
  if num_steps is None:
    num_steps = tensors[0].shape[1]

  def time_major(x):
    return tf.transpose(x, [1, 0] + list(range(2, len(x.shape))))

  def at(seq, t):
    return tf.nest.map_structure(lambda s: None if s is None else s[t], seq)

  if unroll is None:
    unroll = isinstance(num_steps, int) and num_steps <= UNROLL_LIMIT
  if unroll:
    outputs = []
    for t in range(num_steps):
      x_t = tf.nest.map_structure(lambda s: None if s is None else s[:, t], sequence)
      out, carry = body(tf.constant(t), x_t, carry)
      outputs.append(out)
    return tf.nest.map_structure(lambda *o: tf.stack(o, 1), *outputs), carry
  if num_steps is None:
    num_steps = tf.shape(tensors[0])[1]
  seq_t = tf.nest.map_structure(lambda s: None if s is None else time_major(s), sequence)
  dtypes = tf.nest.flatten(output_dtypes)
  # Shapes are lists themselves: flatten them one level per output dtype.
  shapes = [None] * len(dtypes) if output_shapes is None else (
      list(output_shapes) if isinstance(output_dtypes, (tuple, list)) else [output_shapes])
  size = _unfoldable(num_steps, tensors + tf.nest.flatten(carry))
  arrays = tf.nest.pack_sequence_as(output_dtypes, [
      tf.TensorArray(d, size=size, element_shape=s) for d, s in zip(dtypes, shapes)])

  def loop_body(t, arrays, carry):
    out, carry = body(t, at(seq_t, t), carry)
    arrays = tf.nest.map_structure(lambda a, o: a.write(t, o), arrays, out)
    return t + 1, arrays, carry

  _, arrays, carry = tf.while_loop(
      lambda t, *_: t < num_steps, loop_body, (tf.constant(0), arrays, carry))
  stacked = []
  for a, shape in zip(tf.nest.flatten(arrays), shapes):
    out = a.stack()
    if isinstance(num_steps, int) and shape is not None:
      out.set_shape([num_steps] + list(shape))
    stacked.append(time_major(out))
  return tf.nest.pack_sequence_as(output_dtypes, stacked), carry


def _unfoldable(num_steps, tensors):
  """`num_steps` as a tensor the TFLite converter cannot fold to a constant.

  A TensorArray of static size and element shape becomes a zero-filled buffer
  of the whole output, which the converter folds into a constant in the .tflite
  file: at batch 64 the 16-bar melody's decode and encode held 7 MB of zeros
  beside 2 MB of weights. max(num_steps, int(0 * a value computed at run time))
  is num_steps whatever the value (a NaN casts to 0 or INT_MIN), and costs one
  scalar op.
  """
  if not isinstance(num_steps, int) or not tensors:
    return num_steps
  anchor = tf.cast(tf.reshape(tensors[0], [-1])[:1], tf.float32)
  return tf.maximum(num_steps, tf.cast(tf.reduce_min(anchor) * 0.0, tf.int32))


def _cell(x_t, c, h, recurrent_kernel):
  gates = x_t + _mm(h, recurrent_kernel)
  gi, gf, gc, go = tf.split(gates, 4, axis=-1)
  i, f, g, o = tf.sigmoid(gi), tf.sigmoid(gf), tf.tanh(gc), tf.sigmoid(go)
  c_new = f * c + i * g
  tc = tf.tanh(c_new)
  return c_new, o * tc, (i, f, g, o, tc)


@tf.custom_gradient
def lstm_layer(x_projection, c0, h0, recurrent_kernel, mask=None):
  """One LSTM layer over a short static sequence, with a hand-written backward pass.

  Same result as LSTMStack.run for one layer: outputs [B, T, u] (each step's
  h), and the final (c, h), whose state stops changing where `mask` [B, T]
  (float) is 0. Why by hand: autodiff of the unrolled loop makes one small
  weight-gradient product per step and adds them up; here the recurrent
  kernel's gradient is one [u, B*T] x [B*T, 4u] product.
  """
  num_steps = x_projection.shape[1]
  kernel = _low(recurrent_kernel)
  c, h = c0, h0
  outputs, cache = [], []
  for t in range(num_steps):
    c_new, h_new, gates = _cell(x_projection[:, t], c, h, kernel)
    cache.append((c, h, gates))
    outputs.append(h_new)
    if mask is not None:
      m = mask[:, t:t + 1]
      c_new, h_new = m * c_new + (1 - m) * c, m * h_new + (1 - m) * h
    c, h = c_new, h_new

  def grad(d_outputs, d_c, d_h):
    d_outputs = tf.zeros_like(x_projection[..., :h0.shape[-1]]) if d_outputs is None \
        else d_outputs
    d_c = tf.zeros_like(c0) if d_c is None else d_c
    d_h = tf.zeros_like(h0) if d_h is None else d_h
    d_x, d_c, d_h = _through_time(cache, d_outputs, kernel, d_c, d_h, mask)
    d_kernel = _weight_gradient([entry[1] for entry in cache], d_x)
    grads = (d_x, d_c, d_h, d_kernel)
    return grads + ((None,) if mask is not None else ())

  return (tf.stack(outputs, 1), c, h), grad


def chunk_length(num_steps):
  """The chunk a long sequence is cut into for the hand-written backward passes.

  The largest divisor of `num_steps` that is at most UNROLL_LIMIT and at least a
  quarter of it (256 steps: 64); None when there is none (then autodiff of a
  tf.while_loop runs, as before).
  """
  for length in range(min(UNROLL_LIMIT, num_steps), max(UNROLL_LIMIT // 4, 2) - 1, -1):
    if num_steps % length == 0:
      return length
  return None


def _chunks(x, length):
  """[B, T, ...] -> [B, T // length, length, ...] (static inner dims kept)."""
  return tf.reshape(x, [-1, x.shape[1] // length, length] + x.shape[2:].as_list())


def _unchunk(x):
  """[B, n, length, ...] -> [B, n * length, ...]."""
  return tf.reshape(x, [-1, x.shape[1] * x.shape[2]] + x.shape[3:].as_list())


def _layer(x_projection, c0, h0, recurrent_kernel, mask):
  """lstm_layer, given `mask` only when there is one (its custom gradient takes tensors)."""
  return lstm_layer(x_projection, c0, h0, recurrent_kernel, *([] if mask is None else [mask]))


def lstm_layer_chunked(x_projection, c0, h0, recurrent_kernel, mask=None):
  """lstm_layer over a long sequence: a tf.while_loop over chunks of
  chunk_length(T) steps, each chunk lstm_layer's unrolled steps and hand-written
  backward. Why: autodiff of a per-step tf.while_loop (the 16-bar encoder's
  256 steps) makes its gradient step by step with one small weight product each;
  unrolling all 256 steps takes minutes to trace. Same results as lstm_layer.
  """
  length = chunk_length(x_projection.shape[1])
  units = h0.shape[-1]

  def body(t, inputs, carry):
    x_t, m_t = inputs
    out, c, h = _layer(x_t, carry[0], carry[1], recurrent_kernel, m_t)
    return out, (c, h)

  chunks = (_chunks(x_projection, length), None if mask is None else _chunks(mask, length))
  outputs, (c, h) = scan(body, chunks, (c0, h0), unroll=False,
                         output_shapes=[x_projection.shape[0], length, units])
  return _unchunk(outputs), c, h


def _through_time(cache, d_outputs, recurrent_kernel, d_c, d_h, mask=None):
  """Backward through time of one LSTM layer.

  `cache[t]` = (c_prev, h_prev, (i, f, g, o, tanh(c))) of step t; `d_outputs`
  [B, T, u] the gradient of each step's h, (d_c, d_h) that of the final state.
  Returns (gradient of each step's gate pre-activations [B, T, 4u], d_c0, d_h0).
  """
  num_steps = len(cache)
  d_gates = [None] * num_steps
  for t in reversed(range(num_steps)):
    c_prev, _, (i, f, g, o, tc) = cache[t]
    if mask is not None:
      m = mask[:, t:t + 1]
      pass_c, pass_h = (1 - m) * d_c, (1 - m) * d_h
      d_c, d_h = m * d_c, m * d_h
    d_h = d_h + d_outputs[:, t]
    d_c = d_c + d_h * o * (1 - tc * tc)
    d_gates[t] = tf.concat([d_c * g * i * (1 - i), d_c * c_prev * f * (1 - f),
                            d_c * i * (1 - g * g), d_h * tc * o * (1 - o)], -1)
    d_c = d_c * f
    d_h = _mm(d_gates[t], recurrent_kernel, transpose_b=True)
    if mask is not None:
      d_c, d_h = d_c + pass_c, d_h + pass_h
  return tf.stack(d_gates, 1), d_c, d_h


def _weight_gradient(step_inputs, d_gates):
  """sum_t step_inputs[t]^T d_gates[:, t] as one product: [B, T, n] x [B, T, m] -> [n, m]."""
  x = tf.stack(step_inputs, 1) if isinstance(step_inputs, (list, tuple)) else step_inputs
  return _mm(tf.reshape(x, [-1, x.shape[-1]]),
             tf.reshape(d_gates, [-1, d_gates.shape[-1]]), transpose_a=True)


def decode_stack(x, states, recurrent_kernels, kernels, biases, output_kernel, output_bias,
                 choose=None, other=None, token_table=None, token_offsets=(0,),
                 return_states=False):
  """A stack's teacher-forced (or scheduled-sampling) pass with a hand-written backward.

  Same result as running LSTMStack.step and the output layer at every step of
  `x` [B, T, 4u_0] (the first layer's input term, bias included): logits
  [B, T, D]. With `choose(t, previous_logits) -> (use [B, 1] bool, indices
  [B, P] int)`, a step where `use` is true takes `sum(token_table[rows]) +
  other[:, t]` instead of `x[:, t]`, rows = indices + `token_offsets` (part p's
  first row; scheduled sampling: the indices are sampled tokens, not
  differentiated). Why by hand: autodiff of the unrolled steps makes every
  weight-gradient product once per step; here each is one product over all
  steps, and the output layer's backward is one product too.

  `recurrent_kernels` [L], `kernels` and `biases` [L - 1] (layers 1..L-1) and the
  output layer are tensors (read from the variables by the caller).
  `return_states`: return (logits, final states), the states differentiable too.
  """
  num_layers = len(recurrent_kernels)
  sampling = choose is not None
  tensors = ([x] + list(states) + list(recurrent_kernels) + list(kernels) + list(biases)
             + [output_kernel, output_bias] + ([other, token_table] if sampling else []))

  @tf.custom_gradient
  def run(*args):
    x, rest = args[0], list(args[1:])
    st, rest = rest[:2 * num_layers], rest[2 * num_layers:]
    rec, rest = rest[:num_layers], rest[num_layers:]
    ker, rest = rest[:num_layers - 1], rest[num_layers - 1:]
    bia, rest = rest[:num_layers - 1], rest[num_layers - 1:]
    w_out, b_out = rest[0], rest[1]
    oth, table = (rest[2], rest[3]) if sampling else (None, None)
    # The products' operands, rounded once per call (mixed precision: MATMUL_DTYPE).
    rec, ker, w_low = [_low(r) for r in rec], [_low(k) for k in ker], _low(w_out)
    num_steps = x.shape[1]
    cs, hs = list(st[0::2]), list(st[1::2])
    caches = [[] for _ in range(num_layers)]
    outputs = [[] for _ in range(num_layers)]
    logits, uses, picks = [], [], []
    previous = tf.zeros([tf.shape(x)[0], w_out.shape[-1]])
    for t in range(num_steps):
      x_t = x[:, t]
      if sampling:
        use, indices = choose(t, previous)
        rows = indices + tf.constant(token_offsets, tf.int32)
        x_t = tf.where(use, tf.reduce_sum(tf.gather(table, rows), -2) + oth[:, t], x_t)
        uses.append(use)
        picks.append(rows)
      inp = None
      for l in range(num_layers):
        pre = x_t if l == 0 else _mm(inp, ker[l - 1]) + bia[l - 1]
        c_new, h_new, gates = _cell(pre, cs[l], hs[l], rec[l])
        caches[l].append((cs[l], hs[l], gates))
        outputs[l].append(h_new)
        cs[l], hs[l] = c_new, h_new
        inp = h_new
      previous = _mm(inp, w_low) + b_out
      logits.append(previous)

    def grad(d_logits, *d_final):
      if d_logits is None:
        d_logits = tf.zeros_like(tf.stack(logits, 1))
      top = tf.stack(outputs[-1], 1)
      units = top.shape[-1]
      d_w_out = _weight_gradient(top, d_logits)
      d_b_out = tf.reduce_sum(d_logits, [0, 1])
      d_out = tf.reshape(_mm(tf.reshape(d_logits, [-1, d_logits.shape[-1]]), w_low,
                             transpose_b=True), [-1, num_steps, units])
      d_states = [None] * (2 * num_layers)
      d_rec, d_ker, d_bia = [None] * num_layers, [None] * (num_layers - 1), \
          [None] * (num_layers - 1)
      d_x = None
      for l in reversed(range(num_layers)):
        final = [d_final[i] if i < len(d_final) and d_final[i] is not None
                 else tf.zeros_like(st[i]) for i in (2 * l, 2 * l + 1)]
        d_gates, d_states[2 * l], d_states[2 * l + 1] = _through_time(
            caches[l], d_out, rec[l], final[0], final[1])
        d_rec[l] = _weight_gradient([entry[1] for entry in caches[l]], d_gates)
        if l > 0:
          below = tf.stack(outputs[l - 1], 1)
          d_ker[l - 1] = _weight_gradient(below, d_gates)
          d_bia[l - 1] = tf.reduce_sum(d_gates, [0, 1])
          d_out = tf.reshape(_mm(tf.reshape(d_gates, [-1, d_gates.shape[-1]]),
                                 ker[l - 1], transpose_b=True),
                             [-1, num_steps, below.shape[-1]])
        else:
          d_x = d_gates
      extra = []
      if sampling:
        use = tf.stack(uses, 1)  # [B, T, 1]
        d_other = tf.where(use, d_x, tf.zeros_like(d_x))
        d_x = tf.where(use, tf.zeros_like(d_x), d_x)
        rows = tf.stack(picks, 1)  # [B, T, P]
        flat = tf.reshape(d_other, [-1, d_other.shape[-1]])
        d_table = tf.zeros_like(table)
        for p in range(rows.shape[-1]):
          d_table += tf.math.unsorted_segment_sum(flat, tf.reshape(rows[..., p], [-1]),
                                                  table.shape[0])
        extra = [d_other, d_table]
      return tuple([d_x] + d_states + d_rec + d_ker + d_bia + [d_w_out, d_b_out] + extra)

    final_states = []
    for c, h in zip(cs, hs):
      final_states += [c, h]
    return (tf.stack(logits, 1),) + tuple(final_states), grad

  out = run(*tensors)
  return (out[0], tuple(out[1:])) if return_states else out[0]


def decode_stack_chunked(x, states, *weights):
  """decode_stack (teacher forcing, no scheduled sampling) over a long sequence: a
  tf.while_loop over chunks of chunk_length(T) steps, each chunk decode_stack's
  unrolled steps and hand-written backward, the states carried from chunk to chunk.
  Same results as decode_stack. Returns logits [B, T, D]."""
  length = chunk_length(x.shape[1])

  def body(t, x_t, carry):
    return decode_stack(x_t, carry, *weights, return_states=True)

  logits, _ = scan(body, _chunks(x, length), tuple(states), unroll=False,
                   output_shapes=[x.shape[0], length, weights[-1].shape[-1]])
  return _unchunk(logits)
