"""Every layer of the model through the shared harness (tests/harness.py): config round
trip, save and reload by weight name, hand-written backward against autodiff, Keras
against TFLite."""

import numpy as np
import pytest

tf = pytest.importorskip('tensorflow')

import harness  # noqa: E402
from mvae_tf.model.decoders import CategoricalLSTMDecoder, HierarchicalLSTMDecoder  # noqa: E402
from mvae_tf.model.encoder import BidirectionalLSTMEncoder  # noqa: E402
from mvae_tf.model.lstm import LSTMStack  # noqa: E402
from mvae_tf.model.vae import MusicVAE  # noqa: E402

BATCH = 3


def _tokens(rng, depths, steps):
  """[BATCH, steps, sum(depths)] one-hot per part, as float32."""
  parts = [np.eye(d, dtype=np.float32)[rng.integers(0, d, (BATCH, steps))] for d in depths]
  return np.concatenate(parts, -1)


def _previous(tokens):
  """The teacher-forced inputs of `tokens`: shifted right by one step, zeros first."""
  return np.concatenate([np.zeros_like(tokens[:, :1]), tokens[:, :-1]], 1)


def _stack_forward(stack, x, lengths, hand_written_backward=None):
  outputs, states = stack.run(stack.input_projection(x), stack.zero_state(BATCH), lengths,
                              hand_written_backward)
  return [outputs] + list(states)


def _encoder_forward(encoder, x, lengths, hand_written_backward=None):
  return list(encoder(x, lengths, hand_written_backward=hand_written_backward))


def _decoder_forward(decoder, inputs, z, controls=None, hand_written_backward=None):
  return [decoder.teacher_forced(inputs, z, controls,
                                 hand_written_backward=hand_written_backward)]


def _vae_forward(model, inputs, targets, lengths, controls, hand_written_backward=None):
  mu, sigma = model.encode(inputs, lengths, controls, hand_written_backward)
  return [mu, sigma, model.teacher_forced_logits(
      targets, mu, controls, hand_written_backward=hand_written_backward)]


def _vae_inputs(name):
  def inputs(rng):
    model = MusicVAE.from_config_name(name)
    steps = model.hparams.max_seq_len
    targets = _tokens(rng, model.output_depths, steps)
    controls = np.zeros((BATCH, steps, model.control_depth), np.float32)
    return [tf.constant(targets), tf.constant(targets),
            tf.constant(np.full([BATCH], steps, np.int32)), tf.constant(controls)]
  return inputs


CASES = [
    harness.LayerCase(
        'lstm_stack', lambda: LSTMStack(5, [4, 3], name='stack'),
        lambda rng: [tf.constant(rng.normal(size=(BATCH, 6, 5)).astype(np.float32)),
                     tf.constant([6, 2, 4])],
        _stack_forward),  # two layers: autodiff (the hand-written pass is one layer's)
    harness.LayerCase(
        'lstm_layer', lambda: LSTMStack(5, [4], name='stack'),
        lambda rng: [tf.constant(rng.normal(size=(BATCH, 6, 5)).astype(np.float32)),
                     tf.constant([6, 2, 4])],
        _stack_forward, backward=True, rtol=1e-5),
    harness.LayerCase(
        'encoder', lambda: BidirectionalLSTMEncoder(7, [4, 3], 2, name='encoder'),
        lambda rng: [tf.constant(_tokens(rng, [7], 6)), tf.constant([6, 3, 5])],
        _encoder_forward),
    harness.LayerCase(
        'encoder_one_layer', lambda: BidirectionalLSTMEncoder(7, [4], 2, name='encoder'),
        lambda rng: [tf.constant(_tokens(rng, [7], 6)), tf.constant([6, 3, 5])],
        _encoder_forward, backward=True),
    harness.LayerCase(
        'flat_decoder',
        lambda: CategoricalLSTMDecoder([5, 6], [4, 3], 3, control_depth=2, name='decoder'),
        lambda rng: [tf.constant(_previous(_tokens(rng, [5, 6], 6))),
                     tf.constant(rng.normal(size=(BATCH, 3)).astype(np.float32)),
                     tf.constant((rng.random((BATCH, 6, 2)) < 0.5).astype(np.float32))],
        _decoder_forward, backward=True),
    harness.LayerCase(
        'hierarchical_decoder',
        lambda: HierarchicalLSTMDecoder([5, 6], [4, 3], 3, num_bars=2, steps_per_bar=4,
                                        name='decoder'),
        lambda rng: [tf.constant(_previous(_tokens(rng, [5, 6], 8))),
                     tf.constant(rng.normal(size=(BATCH, 3)).astype(np.float32))],
        _decoder_forward, backward=True),
    harness.LayerCase(
        'music_vae', lambda: MusicVAE.from_config_name('tiny-mel_2bar'),
        _vae_inputs('tiny-mel_2bar'), _vae_forward,
        backward=True),
    harness.LayerCase(
        'music_vae_hierarchical_trio', lambda: MusicVAE.from_config_name('tiny-hierdec-trio_16bar'),
        _vae_inputs('tiny-hierdec-trio_16bar'), _vae_forward,
        backward=True),
]
IDS = [c.name for c in CASES]


@pytest.mark.parametrize('case', CASES, ids=IDS)
def test_config_round_trip(case):
  harness.check_config_round_trip(case)


@pytest.mark.parametrize('case', CASES, ids=IDS)
def test_save_and_reload(case, tmp_path):
  harness.check_save_and_reload(case, tmp_path)


@pytest.mark.parametrize('case', [c for c in CASES if c.backward],
                         ids=[c.name for c in CASES if c.backward])
def test_hand_written_backward_matches_autodiff(case):
  harness.check_gradient(case)


@pytest.mark.parametrize('case', [c for c in CASES if c.tflite],
                         ids=[c.name for c in CASES if c.tflite])
def test_keras_against_tflite(case, tmp_path):
  harness.check_tflite(case, tmp_path)


def test_the_harness_sees_a_broken_layer(tmp_path):
  """Each check fails on a layer or forward that breaks what it checks."""
  case = CASES[4]  # the flat decoder

  class Forgetful(CategoricalLSTMDecoder):  # its config loses control_depth
    def get_config(self):
      config = super().get_config()
      config['control_depth'] = 0
      return config
  broken = harness.LayerCase(case.name, lambda: Forgetful([5, 6], [4, 3], 3, control_depth=2,
                                                          name='decoder'),
                             case.inputs, case.forward)
  with pytest.raises(AssertionError):
    harness.check_config_round_trip(broken)

  @tf.custom_gradient
  def off_by_a_little(x):  # the forward as it is; its gradient 0.1% off
    return tf.identity(x), lambda dy: dy * 1.001

  def wrong_gradient(decoder, inputs, z, controls, hand_written_backward=None):
    logits = decoder.teacher_forced(inputs, z, controls,
                                    hand_written_backward=hand_written_backward)
    return [off_by_a_little(logits) if hand_written_backward else logits]
  with pytest.raises(AssertionError, match='Not equal to tolerance'):
    harness.check_gradient(harness.LayerCase(case.name, case.make, case.inputs,
                                             wrong_gradient, backward=True))

  class Unsaved(CategoricalLSTMDecoder):  # state outside its weights: lost on a reload
    def __init__(self, *args, **kwargs):
      super().__init__(*args, **kwargs)
      self.offset = tf.constant(np.random.default_rng().normal(size=11).astype(np.float32))

  def forward_with_offset(decoder, *inputs, hand_written_backward=None):
    return [case.forward(decoder, *inputs)[0] + decoder.offset]
  with pytest.raises(AssertionError):
    harness.check_save_and_reload(harness.LayerCase(
        case.name, lambda: Unsaved([5, 6], [4, 3], 3, control_depth=2, name='decoder'),
        case.inputs, forward_with_offset), tmp_path)

  def random_forward(decoder, *inputs, hand_written_backward=None):  # not deterministic
    logits = case.forward(decoder, *inputs, hand_written_backward=hand_written_backward)[0]
    return [logits + tf.random.uniform(tf.shape(logits))]
  with pytest.raises(AssertionError):
    harness.check_tflite(harness.LayerCase(case.name, case.make, case.inputs, random_forward),
                         tmp_path)
