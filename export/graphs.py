"""The inference-only functions that every exported graph is traced from.

Each is a loop around (or one call of) the decoders' own step: the flat
decoder's `initial_state` / `step_inputs` / `sample`, the hierarchical
decoder's conductor (`embeddings`) and its core decoders' steps. Nothing here
computes an LSTM itself. No function has a random op except `sample` (the
SavedModel's prior sampler): decoding draws by Gumbel-max from a `noise`
input (uniform in (0, 1)), so a device given the same z and noise writes the
same notes, and temperature 0 means argmax. The encoder is traced with
`hand_written_backward=False`: no custom-gradient closure reaches a graph.

Signatures (N: batch, T: max_seq_len steps, D: output depth, P: parts,
S: state size, E: bar embedding size, C: control depth):

  decode(z [N, Z], temperature [N], noise [N, T, D] (, controls [N, T, C]))
      -> tokens [N, T, P] int32, logits [N, T, D], probabilities [N, T, D]
  sample(seed [2] int32, temperature [N]) -> tokens, logits, probabilities, z  (SavedModel)
  encode(inputs [N, T, Din], lengths [N] int32 (, controls)) -> mu [N, Z], sigma [N, Z]
  initial_state(z [N, Z]) -> state_0 .. state_{k-1}                       (flat)
  conductor(z [N, Z]) -> embeddings [N, bars, E]                          (hierarchical)
  bar_initial_state(embedding [N, E]) -> state_0 .. state_{k-1}            (hierarchical)
  step(token [N, D], z [N, Z] | embedding [N, E], state_0 .. state_{k-1} (, control [N, C]))
      -> logits [N, D], state_0 .. state_{k-1}

`token` is the previous step's sample as one-hot per part (zeros at the first
step; for a hierarchical model, at a bar's first step, the previous bar's last
token, zeros for bar 0). The state is explicit tensors, c then h of each LSTM
layer (of each part's core decoder, in part order, for a hierarchical trio):
`state_layout()`. Separate tensors, not one concatenation, so that full-int8
quantization gives the cell state c (unbounded) and the output h (in [-1, 1])
scales of their own.
"""

import numpy as np
import tensorflow as tf

from mvae_tf.model import lstm


def _split_parts(x, depths):
  return tf.split(x, depths, axis=-1) if len(depths) > 1 else [x]


def probabilities(logits, depths):
  """Softmax per part of logits [..., D]."""
  return tf.concat([tf.nn.softmax(p, -1) for p in _split_parts(logits, depths)], -1)


class InferenceGraphs:
  """The exported functions of one MusicVAE (see the module docstring).

  Each method takes and returns tensors (dicts of named outputs); wrap them in
  tf.function with `input_signature(name)` to export.
  """

  def __init__(self, model):
    self.model = model
    self.decoder = model.decoder
    self.hierarchical = model.decoder_type == 'hierarchical'
    hp = model.hparams
    self.depths = list(model.output_depths)
    self.output_depth = sum(self.depths)
    self.num_parts = len(self.depths)
    self.num_steps = int(hp.max_seq_len)
    self.z_size = int(hp.z_size)
    self.input_depth = int(model.input_depth)
    self.control_depth = int(model.control_depth)
    if self.hierarchical:
      self.cores = list(self.decoder.core_decoders)
      self.num_bars = self.decoder.num_bars
      self.steps_per_bar = self.decoder.steps_per_bar
      self.embedding_size = self.decoder.rnn_sizes[-1]
      self.state_sizes = [s for core in self.cores for s in core.cell.state_sizes]
    else:
      self.cores = [self.decoder]
      self.state_sizes = list(self.decoder.cell.state_sizes)
    self.state_size = sum(self.state_sizes)

  def state_layout(self):
    """[{name, core, layer, part: 'c' | 'h', size}] of the state tensors, in order."""
    layout, i = [], 0
    for p, core in enumerate(self.cores):
      for layer, units in enumerate(core.cell.units):
        for part in ('c', 'h'):
          layout.append(dict(name='state_%d' % i, core=p, layer=layer, part=part, size=units))
          i += 1
    return layout

  # --- Signatures. ---

  def names(self, serving=False):
    """The signature names of the serving SavedModel or of the device graphs."""
    if serving:
      return ['decode', 'sample', 'encode']
    names = ['decode', 'encode']
    if self.hierarchical:
      return names + ['conductor', 'bar_initial_state', 'step']
    return names + ['initial_state', 'step']

  def step_names(self):
    """The step-by-step signatures (no WHILE loop: full int8 and the Edge TPU)."""
    return [n for n in self.names() if n not in ('decode', 'encode')]

  def input_signature(self, name, batch=None):
    """[tf.TensorSpec] of a signature's inputs (batch None: any)."""
    n, f = batch, tf.float32
    spec = tf.TensorSpec
    ctrl = self.control_depth
    if name == 'decode':
      out = [spec([n, self.z_size], f, 'z'), spec([n], f, 'temperature'),
             spec([n, self.num_steps, self.output_depth], f, 'noise')]
      return out + ([spec([n, self.num_steps, ctrl], f, 'controls')] if ctrl else [])
    if name == 'sample':
      return [spec([2], tf.int32, 'seed'), spec([n], f, 'temperature')] + (
          [spec([n, self.num_steps, ctrl], f, 'controls')] if ctrl else [])
    if name == 'encode':
      return [spec([n, self.num_steps, self.input_depth], f, 'inputs'),
              spec([n], tf.int32, 'lengths')] + (
                  [spec([n, self.num_steps, ctrl], f, 'controls')] if ctrl else [])
    if name in ('initial_state', 'conductor'):
      return [spec([n, self.z_size], f, 'z')]
    if name == 'bar_initial_state':
      return [spec([n, self.embedding_size], f, 'embedding')]
    if name == 'step':
      cond = (spec([n, self.embedding_size], f, 'embedding') if self.hierarchical
              else spec([n, self.z_size], f, 'z'))
      return ([spec([n, self.output_depth], f, 'token'), cond]
              + [spec([n, size], f, 'state_%d' % i) for i, size in enumerate(self.state_sizes)]
              + ([spec([n, ctrl], f, 'control')] if ctrl else []))
    raise ValueError('unknown signature %r' % name)

  @property
  def can_unroll(self):
    """Whether decode can be one unrolled graph without a WHILE loop (flat, short models):
    the form full-int8 calibration takes."""
    return not self.hierarchical and self.num_steps <= lstm.UNROLL_LIMIT

  def write_saved_model(self, path, names, batch_size=None, unrolled=False):
    """A SavedModel of the signatures `names`, through keras.export.ExportArchive.

    Keras 3 layers held by a plain tf.Module would convert to TFLite without
    their weights: the archive tracks the model. The first name is also
    `serving_default`. batch_size None: any batch (TF Serving); an int: that
    static batch (TFLite lowers the decode loop only with static shapes).
    unrolled: decode without a WHILE loop (see can_unroll), for int8.
    """
    import keras
    archive = keras.export.ExportArchive()
    archive.track(self.model)
    for name in names:
      archive.add_endpoint(name, self.function(name, unrolled=unrolled),
                           input_signature=self.input_signature(name, batch=batch_size))
    archive.write_out(path, verbose=False)

  def function(self, name, unrolled=False):
    """The Python function of a signature (positional tensors -> dict of outputs).

    unrolled=True: decode's steps unrolled in the graph (see can_unroll).
    """
    if name == 'decode' and unrolled:
      if not self.can_unroll:
        raise ValueError('decode of a %s model of %d steps has a loop; it cannot be unrolled'
                         % (self.model.decoder_type, self.num_steps))
      return lambda *args: self.decode(*args, unroll=True)
    return getattr(self, name)

  # --- The functions. ---

  def decode(self, z, temperature, noise, controls=None, unroll=False):
    """Whole-sequence Gumbel-max decode (a WHILE loop over steps, or bars; flat models
    can be unrolled instead)."""
    if self.hierarchical:
      tokens, logits = self.decoder.sample(z, self.num_steps, temperature, controls=controls,
                                           noise=noise)
    else:
      tokens, logits, _ = self.decoder.sample(z, self.num_steps, temperature,
                                              controls=controls, noise=noise, unroll=unroll)
    return dict(tokens=tokens, logits=logits, probabilities=probabilities(logits, self.depths))

  def sample(self, seed, temperature, controls=None):
    """z from the prior and uniform noise drawn in the graph from `seed`, then decode."""
    batch = tf.shape(temperature)[0]
    z = tf.random.stateless_normal([batch, self.z_size], seed)
    noise = tf.random.stateless_uniform(
        [batch, self.num_steps, self.output_depth],
        tf.random.experimental.stateless_fold_in(seed, 1))
    out = self.decode(z, temperature, noise, controls)
    out['z'] = z
    return out

  def encode(self, inputs, lengths, controls=None):
    mu, sigma = self.model.encode(inputs, lengths, controls, hand_written_backward=False)
    return dict(mu=mu, sigma=sigma)

  def _pack(self, states):
    return {'state_%d' % i: s for i, s in enumerate(states)}

  def _unpack(self, states):
    """The flat state list -> a tuple of states per core decoder."""
    out, i = [], 0
    for core in self.cores:
      k = len(core.cell.state_sizes)
      out.append(tuple(states[i:i + k]))
      i += k
    return out

  def initial_state(self, z):
    return self._pack(self.decoder.initial_state(z))

  def conductor(self, z):
    return dict(embeddings=self.decoder.embeddings(z))

  def bar_initial_state(self, embedding):
    return self._pack([s for core in self.cores for s in core.initial_state(embedding)])

  def step(self, token, condition, *states_and_control):
    """(token, z or embedding, state_0 .. state_{k-1} [, control]) -> logits, state_i."""
    states = states_and_control[:len(self.state_sizes)]
    control = states_and_control[len(self.state_sizes)] if self.control_depth else None
    tokens = _split_parts(token, self.depths) if self.hierarchical else [token]
    logits, new_states = [], []
    for core, tok, st in zip(self.cores, tokens, self._unpack(states)):
      lg, st = core.step_inputs(tok, condition, st, control)
      logits.append(lg)
      new_states.extend(st)
    out = self._pack(new_states)
    out['logits'] = tf.concat(logits, -1) if len(logits) > 1 else logits[0]
    return out


def uniform_noise(n, num_steps, depth, seed):
  """Noise [n, num_steps, depth] uniform in (0, 1) from numpy (a device can draw its own)."""
  rng = np.random.default_rng(seed)
  return rng.uniform(np.finfo(np.float32).tiny, 1.0, (n, num_steps, depth)).astype(np.float32)
