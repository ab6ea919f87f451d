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
# backward pass (read when a function is traced; off: plain autodiff).
HAND_WRITTEN_BACKWARD = True


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

  def run(self, x_projection, states, lengths=None):
    """Run over a sequence of projected inputs [B, T, 4u_0].

    With `lengths` [B], the state stops changing at each sequence's end, so the
    final state is the one at step length - 1.
    Returns (top h at every step [B, T, u_top], final states).
    """
    num_steps = x_projection.shape[1]
    if (HAND_WRITTEN_BACKWARD and len(self.units) == 1 and isinstance(num_steps, int)
        and num_steps <= UNROLL_LIMIT):
      # The kernel is read here: the custom gradient sees a tensor, not a variable.
      args = [x_projection, states[0], states[1], tf.convert_to_tensor(self.recurrent_kernels[0])]
      if lengths is not None:
        args.append(tf.sequence_mask(lengths, num_steps, tf.float32))
      outputs, c, h = lstm_layer(*args)
      return outputs, (c, h)

    def body(t, x_t, states):
      h, new_states = self.step(x_t, states)
      if lengths is not None:
        alive = tf.expand_dims(t < lengths, -1)
        new_states = tuple(tf.where(alive, n, o) for n, o in zip(new_states, states))
      return h, new_states

    return scan(body, x_projection, states, num_steps)


def scan(body, sequence, carry, num_steps=None, output_dtypes=tf.float32, unroll=None):
  """outputs[t], carry = body(t, sequence[:, t], carry) over time (axis 1).

  `sequence` may be None (then give `num_steps`); outputs may be a nest of
  tensors whose dtypes `output_dtypes` gives (same nest). Unrolled when the
  length is static and short (or `unroll` is True), else a tf.while_loop.
  Returns (outputs stacked on axis 1, final carry).
  """
  if num_steps is None:
    num_steps = sequence.shape[1]

  def time_major(x):
    return tf.transpose(x, [1, 0] + list(range(2, len(x.shape))))

  if unroll is None:
    unroll = isinstance(num_steps, int) and num_steps <= UNROLL_LIMIT
  if unroll:
    outputs = []
    for t in range(num_steps):
      out, carry = body(tf.constant(t), sequence[:, t] if sequence is not None else None, carry)
      outputs.append(out)
    return tf.nest.map_structure(lambda *o: tf.stack(o, 1), *outputs), carry
  if num_steps is None:
    num_steps = tf.shape(sequence)[1]
  seq_t = time_major(sequence) if sequence is not None else None
  arrays = tf.nest.map_structure(lambda d: tf.TensorArray(d, size=num_steps), output_dtypes)

  def loop_body(t, arrays, carry):
    out, carry = body(t, seq_t[t] if seq_t is not None else None, carry)
    arrays = tf.nest.map_structure(lambda a, o: a.write(t, o), arrays, out)
    return t + 1, arrays, carry

  _, arrays, carry = tf.while_loop(
      lambda t, *_: t < num_steps, loop_body, (tf.constant(0), arrays, carry))
  return tf.nest.map_structure(lambda a: time_major(a.stack()), arrays), carry


def _cell(x_t, c, h, recurrent_kernel):
  gates = x_t + tf.matmul(h, recurrent_kernel)
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
  c, h = c0, h0
  outputs, cache = [], []
  for t in range(num_steps):
    c_new, h_new, gates = _cell(x_projection[:, t], c, h, recurrent_kernel)
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
      d_h = tf.matmul(d_gates[t], recurrent_kernel, transpose_b=True)
      if mask is not None:
        d_c, d_h = d_c + pass_c, d_h + pass_h
    d_x = tf.stack(d_gates, 1)
    h_prev = tf.stack([entry[1] for entry in cache], 1)
    units = h0.shape[-1]
    d_kernel = tf.matmul(tf.reshape(h_prev, [-1, units]),
                         tf.reshape(d_x, [-1, 4 * units]), transpose_a=True)
    grads = (d_x, d_c, d_h, d_kernel)
    return grads + ((None,) if mask is not None else ())

  return (tf.stack(outputs, 1), c, h), grad
