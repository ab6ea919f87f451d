"""The shared layer test harness: the same four checks for every layer of the model.

  config round trip   from_config(get_config()) gives the same config, the same weight
                      names and, with the same weights, the same outputs
  save and reload     the weights written by name (mvae_tf.model.weights, the naming
                      checkpoints and packaged models use) to an .npz file and read into
                      a fresh layer give identical outputs
  gradient            with the hand-written backward pass, the outputs and every
                      gradient equal autodiff's (layers that have one)
  TFLite              the forward function, exported through keras.export.ExportArchive
                      and converted with TFLiteConverter.from_saved_model (the project's
                      export path), gives the Keras outputs on the TFLite interpreter

A layer joins by a `LayerCase` in tests/test_layers.py: how to make it, its inputs and
its forward function. Tiny sizes: each check takes seconds.
"""

import dataclasses
import os

import numpy as np

import tensorflow as tf
import keras

from mvae_tf.model.weights import assign_keras_weights, named_weights, weights_from_keras


@dataclasses.dataclass
class LayerCase:
  """make() -> a layer; inputs(rng) -> [tf.Tensor]; forward(layer, *inputs,
  hand_written_backward=None) -> [tf.Tensor] (deterministic; the argument passed on to
  the layer's call). `backward`: whether the forward runs through a hand-written backward
  pass (the gradient check). `tflite`: whether the forward is meant to convert to TFLite
  builtin ops."""
  name: str
  make: object
  inputs: object
  forward: object
  backward: bool = False
  tflite: bool = True
  seed: int = 0
  rtol: float = 1e-4  # of the gradient check

  def built(self):
    """(layer, inputs): the layer built by one forward pass."""
    layer = self.make()
    inputs = self.inputs(np.random.default_rng(self.seed))
    self.forward(layer, *inputs)
    return layer, inputs

  def outputs(self, layer, inputs):
    return [np.asarray(t) for t in self.forward(layer, *inputs)]


def _assert_same(actual, expected, what):
  assert len(actual) == len(expected) > 0, what
  for a, e in zip(actual, expected):
    np.testing.assert_array_equal(a, e, err_msg=what)


def check_config_round_trip(case):
  layer, inputs = case.built()
  clone = type(layer).from_config(layer.get_config())
  assert clone.get_config() == layer.get_config()
  case.forward(clone, *inputs)  # build
  names = [(n, tuple(v.shape)) for n, v in named_weights(layer)]
  assert [(n, tuple(v.shape)) for n, v in named_weights(clone)] == names
  assert len(names) == len(layer.weights)
  assign_keras_weights(clone, weights_from_keras(layer))
  _assert_same(case.outputs(clone, inputs), case.outputs(layer, inputs), 'clone')


def check_save_and_reload(case, directory):
  layer, inputs = case.built()
  path = os.path.join(str(directory), case.name + '.npz')
  np.savez(path, **{k.replace('/', '|'): v for k, v in weights_from_keras(layer).items()})
  fresh = type(layer).from_config(layer.get_config())
  case.forward(fresh, *inputs)  # build, with fresh (different) initial weights
  before = case.outputs(fresh, inputs)
  with np.load(path) as data:
    assign_keras_weights(fresh, {k.replace('|', '/'): data[k] for k in data.files})
  after, expected = case.outputs(fresh, inputs), case.outputs(layer, inputs)
  assert any(not np.array_equal(b, e) for b, e in zip(before, expected)), \
      'a fresh layer already gives the outputs: the check would not see a failed load'
  _assert_same(after, expected, 'reloaded')


def check_gradient(case, atol=1e-6):
  """Hand-written backward against autodiff, on sum(tanh(outputs) * random weights).
  Each gradient's atol is scaled by its largest entry (at least 1): float32 sums over
  a batch and steps in another order differ by rounding relative to that scale, so an
  entry near zero beside entries of 20 (a bias summed over 90 terms) is compared at
  the rounding of its neighbours, not at 1e-6."""
  assert case.backward, '%s has no hand-written backward to check' % case.name
  layer, inputs = case.built()
  rng = np.random.default_rng(case.seed + 1)
  for v in layer.trainable_variables:  # the N(0, 0.001) kernels (z to the decoders' initial
    # state; the encoder's mu and sigma): sized up, so that every gradient counts
    if ('initial' in v.name and 'kernel' in v.name) or v.name in ('mu_kernel', 'sigma_kernel'):
      v.assign(rng.normal(0.0, 0.5, v.shape).astype(np.float32))
  variables = [tf.Variable(x) if x.dtype.is_floating else x for x in inputs]
  outputs = case.forward(layer, *variables)
  weights = [tf.constant(rng.normal(size=o.shape).astype(np.float32)) for o in outputs]
  targets = layer.trainable_variables + [v for v in variables if isinstance(v, tf.Variable)]

  def run(hand_written):
    with tf.GradientTape() as tape:
      outs = case.forward(layer, *variables, hand_written_backward=hand_written)
      loss = tf.add_n([tf.reduce_sum(tf.tanh(o) * w) for o, w in zip(outs, weights)])
    return [o.numpy() for o in outs], tape.gradient(loss, targets)

  outs, grads = run(True)
  expected_outs, expected = run(False)
  for o, e in zip(outs, expected_outs):
    np.testing.assert_allclose(o, e, rtol=1e-5, atol=1e-6)
  assert len(grads) == len(expected) == len(targets)
  for variable, g, e in zip(targets, grads, expected):
    if e is None:  # an input term that is a constant (the conductor's zero input)
      assert g is None, variable.name
      continue
    g, e = tf.convert_to_tensor(g).numpy(), tf.convert_to_tensor(e).numpy()
    # Every gradient is sizeable, so that agreeing says something.
    assert np.abs(e).max() > 1e-3, '%s: gradient %g' % (variable.name, np.abs(e).max())
    np.testing.assert_allclose(g, e, rtol=case.rtol, atol=atol * max(1.0, np.abs(e).max()),
                               err_msg=variable.name)


def check_tflite(case, directory, rtol=1e-4, atol=1e-5):
  """Keras against the converted TFLite graph of the forward function (inference: the
  hand-written backward passes off while it is traced, as mvae_tf.export does)."""
  layer, inputs = case.built()
  expected = case.outputs(layer, inputs)
  specs = [tf.TensorSpec(x.shape, x.dtype, name='input_%d' % i) for i, x in enumerate(inputs)]
  archive = keras.export.ExportArchive()
  archive.track(layer)
  archive.add_endpoint(
      'serve', lambda *xs: tuple(case.forward(layer, *xs, hand_written_backward=False)),
      input_signature=specs)
  saved = os.path.join(str(directory), case.name + '_saved')
  archive.write_out(saved, verbose=False)
  converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=['serve'])
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  flatbuffer = converter.convert()
  from ai_edge_litert.interpreter import Interpreter
  interpreter = Interpreter(model_content=flatbuffer)
  runner = interpreter.get_signature_runner('serve')
  names = ['input_%d' % i for i in range(len(inputs))]
  assert sorted(runner.get_input_details()) == sorted(names)
  result = runner(**{n: np.asarray(x) for n, x in zip(names, inputs)})
  actual = [result[k] for k in sorted(result, key=lambda n: (len(n), n))]
  assert len(actual) == len(expected)
  for a, e in zip(actual, expected):
    assert np.isfinite(a).all()  # a file without weights gives NaN
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)
