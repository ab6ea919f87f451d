"""HParams and the config registry's model settings (no TensorFlow)."""

import pytest

from mvae_tf import configs
from mvae_tf.hparams import HParams, parse_hparams

REFERENCE_NAMES = ['cat-mel_2bar_small', 'cat-mel_2bar_big', 'cat-mel_2bar_med_chords',
                   'cat-drums_2bar_small', 'flat-mel_16bar', 'hierdec-mel_16bar',
                   'flat-trio_16bar', 'hierdec-trio_16bar', 'flat-drums_16bar',
                   'hierdec-drums_16bar']


def test_every_reference_config_has_hparams_and_a_converter():
  for name in REFERENCE_NAMES:
    config = configs.get_config(name)
    assert config.hparams.max_seq_len == config.max_seq_len
    assert config.decoder == ('hierarchical' if name.startswith('hierdec') else 'flat')
    assert config.data.kind in ('melody', 'drums', 'trio')


def test_reference_values_of_cat_mel_2bar_small():
  hp = configs.get_config('cat-mel_2bar_small').hparams
  assert (hp.z_size, hp.enc_rnn_size, hp.dec_rnn_size) == (256, (512,), (256, 256))
  assert (hp.free_bits, hp.max_beta, hp.beta_rate) == (0.0, 0.2, 0.99999)
  assert (hp.sampling_schedule, hp.sampling_rate, hp.batch_size) == ('inverse_sigmoid', 1000, 512)
  assert (hp.learning_rate, hp.decay_rate, hp.min_learning_rate) == (1e-3, 0.9999, 1e-5)
  assert (hp.grad_clip, hp.clip_mode, hp.grad_norm_clip_to_zero) == (1.0, 'global_norm', 1e4)


def test_depths_come_from_the_converter():
  assert configs.get_config('cat-drums_2bar_small').depths() == (10, (512,), 0, 16)
  assert configs.get_config('hierdec-trio_16bar').depths() == (692, (90, 90, 512), 0, 16)
  assert configs.get_config('cat-mel_2bar_med_chords').depths() == (90, (90,), 49, 16)


def test_parse_overrides_with_lists_and_types():
  hp = parse_hparams(HParams(), 'batch_size=32,enc_rnn_size=[48],dec_rnn_size=[32, 32],'
                     'z_size=12,free_bits=48,sampling_schedule=inverse_sigmoid,conditional=false')
  assert hp.batch_size == 32 and hp.enc_rnn_size == (48,) and hp.dec_rnn_size == (32, 32)
  assert hp.free_bits == 48.0 and isinstance(hp.free_bits, float)
  assert hp.sampling_schedule == 'inverse_sigmoid' and hp.conditional is False


def test_unknown_key_is_named_with_a_suggestion():
  with pytest.raises(ValueError, match="unknown hparam 'z_szie'.*did you mean z_size"):
    parse_hparams(HParams(), 'z_szie=3')


@pytest.mark.parametrize('override, message', [
    ('batch_size=abc', 'batch_size'), ('enc_rnn_size=[1.5]', 'enc_rnn_size'),
    ('clip_mode=sideways', 'clip_mode'), ('z_size=0', 'z_size'), ('dropout_keep_prob=2', 'dropout')])
def test_bad_values_are_named(override, message):
  with pytest.raises(ValueError, match=message):
    parse_hparams(HParams(), override)


def test_config_overrides_keep_the_window_length():
  config = configs.get_config('cat-mel_2bar_small').with_hparams('z_size=16')
  assert config.hparams.z_size == 16 and config.name == 'cat-mel_2bar_small'
  with pytest.raises(ValueError, match='max_seq_len=64 does not match'):
    configs.get_config('cat-mel_2bar_small').with_hparams('max_seq_len=64')


def test_hparams_round_trip_through_a_dict():
  hp = configs.get_config('hierdec-trio_16bar').hparams
  assert HParams.from_dict(hp.to_dict()) == hp


def test_presets_for_cpu_and_tests_exist():
  for name in ['cat-mel_2bar_cpu', 'cat-drums_2bar_cpu', 'tiny-mel_2bar', 'tiny-drums_2bar',
               'tiny-mel_2bar_chords', 'tiny-hierdec-mel_16bar', 'tiny-flat-trio_16bar',
               'tiny-hierdec-trio_16bar']:
    assert configs.get_config(name).hparams.batch_size <= 64


def test_importing_the_package_does_not_import_tensorflow():
  import subprocess
  import sys
  code = ('import sys, mvae_tf, mvae_tf.configs, mvae_tf.hparams; '
          'assert "tensorflow" not in sys.modules, "tensorflow imported"')
  subprocess.run([sys.executable, '-c', code], check=True)


@pytest.mark.parametrize('kind', ['mel', 'drums', 'trio'])
def test_the_cpu_flat_and_hierarchical_16bar_models_compare_fairly(kind):
  """The paper's comparison at CPU size: flat and hierarchical get the same data,
  augmentation, encoder, z, free bits, KL weight and batch; only the decoder differs."""
  flat, hier = (configs.get_config('%s-%s_16bar_cpu' % (d, kind)) for d in ('flat', 'hierdec'))
  assert (flat.decoder, hier.decoder) == ('flat', 'hierarchical')
  assert flat.data == hier.data
  same = ('max_seq_len', 'z_size', 'enc_rnn_size', 'free_bits', 'max_beta', 'beta_rate',
          'batch_size', 'sampling_schedule', 'sampling_rate', 'learning_rate')
  assert [getattr(flat.hparams, k) for k in same] == [getattr(hier.hparams, k) for k in same]
  assert flat.hparams.dec_rnn_size != hier.hparams.dec_rnn_size
