"""Running an exported .tflite model with numpy and a LiteRT runtime only.

No TensorFlow import unless neither ai_edge_litert nor tflite_runtime is
installed (then tf.lite, in that order, as the TensorFlow Lite Raspberry Pi
examples do). `TFLiteModel(path)` reads the model's packed metadata
(edge_demo.metadata) and offers:

  decode(z, temperature, noise)        the whole-sequence graph (one call per batch)
  decode_steps(z, temperature, noise)  the step graphs, driven from Python with
                                       Gumbel-max in numpy (the same draw)
  encode(inputs, lengths)              mu, sigma

Graphs have a static batch (metadata `batch_size`, 1 by default); inputs of
any batch are cut into chunks of it (the last one padded).
"""

import os

import numpy as np

from edge_demo import metadata as metadata_lib
from edge_demo import quiet

NOISE_MIN = 1e-20  # as mvae_tf.model.decoders.NOISE_MIN


EDGETPU_LIBRARY = 'libedgetpu.so.1'
EDGETPU_INSTALL = ('install the Edge TPU runtime: add the Coral apt repository '
                   '(https://coral.ai/docs/accelerator/get-started/#runtime-on-linux), then '
                   'sudo apt-get install libedgetpu1-std')


class RuntimeMissing(ImportError):
  """No LiteRT runtime (nor TensorFlow) is installed."""


def find_runtime():
  """(module with Interpreter and load_delegate, name, version): ai_edge_litert, else
  tflite_runtime, else tf.lite, in the order of the TensorFlow Lite Raspberry Pi examples."""
  try:
    from ai_edge_litert import interpreter as litert
    import ai_edge_litert
    return litert, 'ai_edge_litert', getattr(ai_edge_litert, '__version__', '?')
  except ImportError:
    pass
  try:
    from tflite_runtime import interpreter as litert
    import tflite_runtime
    return litert, 'tflite_runtime', getattr(tflite_runtime, '__version__', '?')
  except ImportError:
    pass
  try:
    import tensorflow as tf
  except ImportError:
    raise RuntimeMissing(
        'no TFLite runtime is installed: pip install ai-edge-litert (Python 3.10-3.13), or '
        'tflite-runtime==2.14.0 with numpy<2 (Python 3.9-3.11)') from None
  return tf.lite, 'tf.lite', tf.__version__


def load_interpreter(path=None, num_threads=None, content=None, edgetpu=False):
  """(Interpreter, runtime name, version) of a file or of .tflite bytes (`content`),
  on the runtime find_runtime picks; `edgetpu` adds the libedgetpu delegate (an
  OSError whose message says how to install it when the library is missing)."""
  litert, name, version = find_runtime()
  delegates = None
  if edgetpu:
    try:
      import ctypes
      ctypes.CDLL(EDGETPU_LIBRARY)  # LiteRT's own failure leaves a half-made delegate
      delegates = [litert.load_delegate(EDGETPU_LIBRARY)]
    except (ValueError, OSError, RuntimeError) as e:
      raise OSError('cannot load the Edge TPU delegate %s (%s): %s' % (
          EDGETPU_LIBRARY, str(e).strip().splitlines()[0] if str(e).strip() else
          type(e).__name__, EDGETPU_INSTALL)) from None
  with quiet.silenced():  # "Created TensorFlow Lite XNNPACK delegate for CPU."
    kwargs = dict(num_threads=num_threads)
    if delegates:
      kwargs['experimental_delegates'] = delegates
    if content is not None:
      interpreter = litert.Interpreter(model_content=bytes(content), **kwargs)
    else:
      interpreter = litert.Interpreter(model_path=os.fspath(path), **kwargs)
    interpreter.allocate_tensors()
  return interpreter, name, version


def gumbel(noise):
  """-log(-log(noise)) of uniform noise (any shape), clipped as the exported graphs clip it."""
  noise = np.clip(np.asarray(noise, np.float32), NOISE_MIN, np.float32(1.0 - 2.0 ** -24))
  return -np.log(-np.log(noise))


def argmax_parts(scores, depths):
  """Indices [B, P] int32: the argmax of each part of scores [B, sum(depths)]."""
  bounds = np.cumsum([0] + list(depths))
  return np.stack([scores[:, a:b].argmax(-1) for a, b in zip(bounds[:-1], bounds[1:])],
                  -1).astype(np.int32)


def gumbel_max(logits, depths, temperature, gumbel_draws):
  """numpy twin of mvae_tf.model.decoders.gumbel_max, given gumbel(noise) of the step:
  argmax(logits / temperature + gumbel) per part; temperature 0 is argmax."""
  t = np.asarray(temperature, np.float32).reshape(-1, 1)
  hot = t > 0
  scores = np.where(hot, logits / np.where(hot, t, np.float32(1.0)) + gumbel_draws, logits)
  return argmax_parts(scores, depths)


def onehot(indices, depths):
  """[..., P] indices -> [..., sum(depths)] float32 one-hot per part."""
  return np.concatenate([np.eye(d, dtype=np.float32)[indices[..., p]]
                         for p, d in enumerate(depths)], -1)


class _Runner:
  """A signature runner that resizes and allocates once (our graphs have static shapes).

  LiteRT's SignatureRunner resizes every input and re-allocates the subgraph
  on every call; for a step graph called 32 to 256 times per sample that is
  most of the time at batch 1. After a first ordinary call, this one only
  sets the inputs, invokes and reads the outputs, through the same wrapper
  calls (ai_edge_litert and tflite_runtime 2.14 name them alike); without
  them it falls back to the ordinary call.
  """

  def __init__(self, runner):
    self._runner = runner
    self._wrapper = getattr(runner, '_interpreter_wrapper', None)
    self._index = getattr(runner, '_subgraph_index', None)
    inputs, outputs = getattr(runner, '_inputs', None), getattr(runner, '_outputs', None)
    self._inputs = dict(inputs) if inputs is not None else None
    self._outputs = (list(outputs.items()) if isinstance(outputs, dict) else
                     list(outputs) if outputs is not None else None)
    self._fast = None not in (self._wrapper, self._index, self._inputs, self._outputs)
    self._shapes = None

  def __call__(self, **inputs):
    shapes = {k: np.shape(v) for k, v in inputs.items()}
    if not self._fast or shapes != self._shapes:
      out = self._runner(**inputs)
      self._shapes = shapes
      return out
    wrapper, index = self._wrapper, self._index
    for name, value in inputs.items():
      wrapper.SetTensor(self._inputs[name], value, index)
    wrapper.Invoke(index)
    return {name: wrapper.GetTensor(i, index) for name, i in self._outputs}

  def get_input_details(self):
    return self._runner.get_input_details()

  def get_output_details(self):
    return self._runner.get_output_details()


class TFLiteModel:
  """An exported model file (see the module docstring)."""

  def __init__(self, path, num_threads=None, edgetpu=False):
    self.path = os.fspath(path)
    self.metadata = metadata_lib.read_tflite_metadata(self.path)
    self.interpreter, self.runtime, self.runtime_version = load_interpreter(
        self.path, num_threads, edgetpu=edgetpu)
    self.signatures = sorted(self.interpreter.get_signature_list())
    self._runners = {}
    m = self.metadata
    self.batch_size = int(m['batch_size'])
    self.depths = [int(d) for d in m['output_depths']]
    self.num_steps = int(m['max_seq_len'])
    self.z_size = int(m['z_size'])
    self.hierarchical = m['decoder_type'] == 'hierarchical'

  def runner(self, name):
    if name not in self._runners:
      if name not in self.signatures:
        raise ValueError('%s has no %r signature (has: %s)' % (
            self.path, name, ', '.join(self.signatures)))
      self._runners[name] = _Runner(self.interpreter.get_signature_runner(name))
    return self._runners[name]

  def _chunks(self, n):
    for start in range(0, n, self.batch_size):
      yield start, min(start + self.batch_size, n)

  def _pad(self, x, fill=0.0):
    x = np.asarray(x)
    short = self.batch_size - len(x)
    if short <= 0:
      return x
    return np.concatenate([x, np.full((short,) + x.shape[1:], fill, x.dtype)])

  def _batched(self, decode_chunk, z, temperature, noise):
    """decode_chunk over chunks of the static batch; (tokens, logits) of all rows."""
    z = np.asarray(z, np.float32)
    temperature = np.broadcast_to(np.asarray(temperature, np.float32), (len(z),))
    noise = np.asarray(noise, np.float32)
    tokens, logits = [], []
    for a, b in self._chunks(len(z)):
      tk, lg = decode_chunk(self._pad(z[a:b]), self._pad(temperature[a:b]),
                            self._pad(noise[a:b], 0.5))
      tokens.append(tk[:b - a])
      logits.append(lg[:b - a])
    return np.concatenate(tokens), np.concatenate(logits)

  def decode(self, z, temperature, noise):
    """(tokens [N, T, P] int32, logits [N, T, D]) from the whole-sequence graph."""
    def chunk(z, temperature, noise):
      out = self.runner('decode')(z=z, temperature=temperature, noise=noise)
      return out['tokens'], out['logits']
    return self._batched(chunk, z, temperature, noise)

  def decode_steps(self, z, temperature, noise):
    """The same decode through the step graphs, one call per step (and per bar)."""
    return self._batched(self._decode_chunk, z, temperature, noise)

  def teacher_forced(self, z, previous):
    """Logits [N, T, D] of the step graphs fed `previous` [N, T, D]: the tokens before
    each step (the targets shifted right by one step, zeros first), not their own samples."""
    previous = np.asarray(previous, np.float32)
    n = len(previous)
    logits = []
    for a, b in self._chunks(n):
      _, lg = self._decode_chunk(self._pad(np.asarray(z, np.float32)[a:b]),
                                 np.zeros(self.batch_size, np.float32),
                                 np.full((self.batch_size,) + previous.shape[1:], 0.5,
                                         np.float32), forced=self._pad(previous[a:b]))
      logits.append(lg[:b - a])
    return np.concatenate(logits)

  @staticmethod
  def _states(outputs):
    """The state tensors (state_0 ..) among a graph's outputs."""
    return {k: v for k, v in outputs.items() if k.startswith('state_')}

  def _decode_chunk(self, z, temperature, noise, forced=None):
    step = self.runner('step')
    depths = self.depths
    eyes = [np.eye(d, dtype=np.float32) for d in depths]
    draws = gumbel(noise)  # every step's Gumbel draws at once
    token = np.zeros((len(z), sum(depths)), np.float32)
    tokens, logits = [], []

    def run(state, **cond):
      nonlocal token
      if forced is not None:
        token = np.ascontiguousarray(forced[:, len(tokens)])
      out = step(token=token, **cond, **state)
      idx = gumbel_max(out['logits'], depths, temperature, draws[:, len(tokens)])
      token = np.concatenate([eye[idx[:, p]] for p, eye in enumerate(eyes)], -1)
      tokens.append(idx)
      logits.append(out['logits'])
      return self._states(out)

    if self.hierarchical:
      embeddings = self.runner('conductor')(z=z)['embeddings']
      spb = int(self.metadata['steps_per_bar'])
      for b in range(-(-self.num_steps // spb)):
        emb = np.ascontiguousarray(embeddings[:, b])
        state = self._states(self.runner('bar_initial_state')(embedding=emb))
        for _ in range(b * spb, min((b + 1) * spb, self.num_steps)):
          state = run(state, embedding=emb)
    else:
      state = self._states(self.runner('initial_state')(z=z))
      for _ in range(self.num_steps):
        state = run(state, z=z)
    return np.stack(tokens, 1), np.stack(logits, 1)

  def encode(self, inputs, lengths):
    """(mu, sigma) [N, z_size] of encoder inputs [N, T, Din] and lengths [N]."""
    inputs = np.asarray(inputs, np.float32)
    lengths = np.asarray(lengths, np.int32)
    mus, sigmas = [], []
    for a, b in self._chunks(len(inputs)):
      out = self.runner('encode')(inputs=self._pad(inputs[a:b]),
                                  lengths=self._pad(lengths[a:b], 1))
      mus.append(out['mu'][:b - a])
      sigmas.append(out['sigma'][:b - a])
    return np.concatenate(mus), np.concatenate(sigmas)
