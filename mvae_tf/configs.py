"""The config registry: every reference config name, with the data converter
it uses.

A `Config` says how music becomes tensors (`data`), how long a sequence is
(`max_seq_len`), which decoder the model uses (`decoder`: 'flat' or
'hierarchical') and its hyperparameters (`hparams`, the reference's values and
names). Names are the reference's, so that users' commands carry over; the
`*_cpu` presets train in about an hour on two CPU cores and the `tiny-*` ones
exist for tests.
"""

import dataclasses
import difflib
import types

from mvae_tf.hparams import HParams, parse_hparams

# Transposition applied in training to pitched parts, in semitones.
TRANSPOSE_RANGE = (-5, 5)
# The melody programs of the reference (converters.MEL_PROGRAMS; a test checks they agree).
# Written here so that importing the configs does not import the converters (note_seq):
# the TF-free generate path checks a model's config name with them.
MEL_PROGRAMS = tuple(range(0, 32))


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """Which converter a config uses and its settings."""
  kind: str  # 'melody', 'drums' or 'trio'
  # Keyword arguments of the converter class (see mvae_tf.data.converters).
  options: types.MappingProxyType
  # Training-time transposition range, or None (drums: pitch is the instrument).
  transpose_range: tuple = None

  def make_converter(self, mode='eval', seed=None):
    from mvae_tf.data import converters
    cls = {'melody': converters.MelodyConverter,
           'drums': converters.DrumsConverter,
           'trio': converters.TrioConverter}[self.kind]
    converter = cls(transpose_range=self.transpose_range, **dict(self.options))
    converter.set_mode(mode, seed=seed)
    return converter


@dataclasses.dataclass(frozen=True)
class Config:
  name: str
  description: str
  data: DataSpec
  max_seq_len: int  # steps per window: 32 for 2 bars, 256 for 16 bars
  # Model hyperparameters (reference names); None means HParams() defaults.
  hparams: HParams = None
  # 'flat' (one LSTM over all steps) or 'hierarchical' (conductor + one core
  # decoder per part writing a bar at a time).
  decoder: str = 'flat'

  def make_converter(self, mode='eval', seed=None):
    return self.data.make_converter(mode, seed)

  def with_hparams(self, overrides):
    """This config with "key=value,..." `overrides` applied to its hparams."""
    hparams = parse_hparams(self.hparams or HParams(max_seq_len=self.max_seq_len), overrides)
    if hparams.max_seq_len != self.max_seq_len:
      raise ValueError('--hparams: max_seq_len=%d does not match config %s, whose windows '
                       'have %d steps' % (hparams.max_seq_len, self.name, self.max_seq_len))
    return dataclasses.replace(self, hparams=hparams)

  def depths(self):
    """(input_depth, output_depths per part, control_depth, steps_per_bar) of the converter."""
    converter = self.make_converter()
    parts = tuple(getattr(converter, 'split_depths', None) or (converter.output_depth,))
    return converter.input_depth, parts, converter.control_depth, converter.steps_per_bar


def _spec(kind, transpose=None, **options):
  """transpose: the training augmentation's range of semitones, or None (none)."""
  return DataSpec(kind, types.MappingProxyType(options),
                  tuple(transpose) if transpose else None)


def _melody(slice_bars, transpose=None, **options):
  return _spec('melody', transpose, max_bars=100, slice_bars=slice_bars, gap_bars=1.0,
               skip_polyphony=False, **options)


def _drums(slice_bars):
  return _spec('drums', max_bars=100, slice_bars=slice_bars, gap_bars=1.0, roll_input=True)


# As the original's configs: its 16-bar melody and trio configs and the drums have no
# augmenter; the 2-bar melody ones transpose by -5..+5 and the chord-conditioned one by
# -3..+3 (keeping every program).
_TRIO = _spec('trio', slice_bars=16, gap_bars=2, max_bars=1024)

def _hp(max_seq_len, z, enc, dec, free_bits=0, max_beta=1.0, beta_rate=0.0,
        sampling=None, batch_size=512, **other):
  """Reference hparams: sizes, KL settings and scheduled sampling (None = off)."""
  schedule = dict(sampling_schedule='inverse_sigmoid', sampling_rate=sampling) if sampling \
      else dict(sampling_schedule='constant', sampling_rate=0.0)
  return HParams(max_seq_len=max_seq_len, z_size=z, enc_rnn_size=tuple(enc),
                 dec_rnn_size=tuple(dec), free_bits=free_bits, max_beta=max_beta,
                 beta_rate=beta_rate, batch_size=batch_size, **schedule, **other)


_MEL2 = _melody(2, TRANSPOSE_RANGE, valid_programs=MEL_PROGRAMS)
_BIG16 = dict(z=512, enc=[2048, 2048])

CONFIGS = {c.name: c for c in [
    # The reference's configs (and the paper's 16-bar drums), reference sizes.
    Config('cat-mel_2bar_small', '2-bar melody, flat decoder (small)', _MEL2, 32,
           _hp(32, 256, [512], [256, 256], 0, 0.2, 0.99999, sampling=1000)),
    Config('cat-mel_2bar_big', '2-bar melody, flat decoder (big)', _MEL2, 32,
           _hp(32, 512, [2048], [2048, 2048, 2048], 0, 0.5, 0.99999, sampling=1000)),
    Config('cat-mel_2bar_med_chords', '2-bar melody conditioned on chords',
           _melody(2, (-3, 3), chord_encoding='triad'), 32,
           _hp(32, 256, [1024], [512, 512, 512], 0, 1.0, 0.0)),
    Config('cat-drums_2bar_small', '2-bar drums, flat decoder', _drums(2), 32,
           _hp(32, 256, [512], [256, 256], 48, 0.2, 0.0, sampling=1000)),
    Config('flat-mel_16bar', '16-bar melody, flat decoder', _melody(16), 256,
           _hp(256, dec=[2048, 2048, 2048], free_bits=256, max_beta=0.2, **_BIG16)),
    Config('hierdec-mel_16bar', '16-bar melody, hierarchical decoder', _melody(16), 256,
           _hp(256, dec=[1024, 1024], free_bits=256, max_beta=0.2, **_BIG16),
           'hierarchical'),
    Config('flat-drums_16bar', '16-bar drums, flat decoder', _drums(16), 256,
           _hp(256, dec=[2048, 2048, 2048], free_bits=256, max_beta=0.2, **_BIG16)),
    Config('hierdec-drums_16bar', '16-bar drums, hierarchical decoder', _drums(16), 256,
           _hp(256, dec=[1024, 1024], free_bits=256, max_beta=0.2, **_BIG16),
           'hierarchical'),
    Config('flat-trio_16bar', '16-bar trio, flat decoder', _TRIO, 256,
           _hp(256, dec=[2048, 2048, 2048], free_bits=0, max_beta=1.0, batch_size=256,
               **_BIG16)),
    Config('hierdec-trio_16bar', '16-bar trio, hierarchical decoder', _TRIO, 256,
           _hp(256, dec=[1024, 1024], free_bits=256, max_beta=0.2, batch_size=256,
               **_BIG16), 'hierarchical'),
    # Presets sized to train in about an hour on two CPU cores (batch 64).
    Config('cat-mel_2bar_cpu', '2-bar melody, flat decoder sized for CPU training', _MEL2, 32,
           _hp(32, 64, [256], [128, 128], 0, 0.2, 0.9999, sampling=1000, batch_size=64)),
    Config('cat-drums_2bar_cpu', '2-bar drums, flat decoder sized for CPU training',
           _drums(2), 32,
           _hp(32, 64, [256], [128, 128], 48, 0.2, 0.0, sampling=1000, batch_size=64)),
    # Unlike the reference's 16-bar configs, it transposes by -5..+5 in training: our
    # corpora are small (the folk tunes), and augmentation multiplies their windows.
    # All 16-bar CPU configs take beta 0.05, not the reference's 0.2. The hinge is per
    # window (max(KL - free bits, 0), then the batch mean), so at beta 0.2 each window's KL
    # stops at the budget and those needing less stay under it: trained at 0.2 this pair's
    # mean held-out KL sat just under its 64 free bits (62.4 and 63.7 at step 9,000), the
    # trio's under its 128 (118.9), and a first drum run's at 15-30 of 32. At 0.05 the KL
    # rises above the budget (the drum pair: 69.9 and 111.4 bits over 32), which is what
    # free bits are for: no posterior collapse.
    Config('hierdec-mel_16bar_cpu', '16-bar melody, hierarchical decoder sized for CPU',
           _melody(16, TRANSPOSE_RANGE), 256,
           _hp(256, 64, [128], [128, 128], 64, 0.05, 0.0, batch_size=32), 'hierarchical'),
    # The paper's baseline at the same size: the same encoder, z, free bits, beta, data and
    # augmentation as hierdec-mel_16bar_cpu; one flat decoder twice as wide as the core
    # decoder (as the reference's flat 2048 to hierarchical 1024).
    Config('flat-mel_16bar_cpu', '16-bar melody, flat decoder sized for CPU (the baseline)',
           _melody(16, TRANSPOSE_RANGE), 256,
           _hp(256, 64, [128], [256, 256], 64, 0.05, 0.0, batch_size=32)),
    # The same pair with decoders twice as wide (conductor and core 2 x 256, flat 2 x 512;
    # encoder, z, free bits, beta and data unchanged): does the hierarchical model's lead
    # grow with the core decoder, nearer the paper's 2 x 1024? About 0.6x (hierarchical)
    # and 0.55x (flat) of the pair above's steps/s on this CPU.
    Config('hierdec-mel_16bar_wide_cpu',
           '16-bar melody, hierarchical decoder, decoders twice the CPU size',
           _melody(16, TRANSPOSE_RANGE), 256,
           _hp(256, 64, [128], [256, 256], 64, 0.05, 0.0, batch_size=32), 'hierarchical'),
    Config('flat-mel_16bar_wide_cpu',
           '16-bar melody, flat decoder twice the CPU size (the baseline)',
           _melody(16, TRANSPOSE_RANGE), 256,
           _hp(256, 64, [128], [512, 512], 64, 0.05, 0.0, batch_size=32)),
    # The same pairs for 16-bar drums (no transposition: drums have no pitch to move) and
    # trios (melody and bass transposed -5..+5 as above, drums untouched; z and free bits
    # twice the melody's for three parts).
    # Drums take 32 free bits, not 64: drum grooves repeat, so z gains a drum decoder less
    # per bit (beta 0.05 as above).
    Config('hierdec-drums_16bar_cpu', '16-bar drums, hierarchical decoder sized for CPU',
           _drums(16), 256,
           _hp(256, 64, [128], [128, 128], 32, 0.05, 0.0, batch_size=32), 'hierarchical'),
    Config('flat-drums_16bar_cpu', '16-bar drums, flat decoder sized for CPU (the baseline)',
           _drums(16), 256, _hp(256, 64, [128], [256, 256], 32, 0.05, 0.0, batch_size=32)),
    Config('hierdec-trio_16bar_cpu', '16-bar trio, hierarchical decoder sized for CPU',
           _spec('trio', TRANSPOSE_RANGE, slice_bars=16, gap_bars=2, max_bars=1024), 256,
           _hp(256, 128, [256], [128, 128], 128, 0.05, 0.0, batch_size=32), 'hierarchical'),
    Config('flat-trio_16bar_cpu', '16-bar trio, flat decoder sized for CPU (the baseline)',
           _spec('trio', TRANSPOSE_RANGE, slice_bars=16, gap_bars=2, max_bars=1024), 256,
           _hp(256, 128, [256], [256, 256], 128, 0.05, 0.0, batch_size=32)),
    # Tiny models for tests: every family, seconds to build and run.
    Config('tiny-mel_2bar', 'test-sized 2-bar melody model', _MEL2, 32,
           _hp(32, 8, [16], [16, 16], 0, 0.2, 0.99, sampling=1000, batch_size=8)),
    Config('tiny-mel_2bar_chords', 'test-sized 2-bar melody model with chords',
           _melody(2, (-3, 3), valid_programs=MEL_PROGRAMS, chord_encoding='triad'), 32,
           _hp(32, 8, [16], [16, 16], batch_size=8)),
    Config('tiny-drums_2bar', 'test-sized 2-bar drums model', _drums(2), 32,
           _hp(32, 8, [16], [16, 16], 4, 0.2, batch_size=8)),
    Config('tiny-hierdec-mel_16bar', 'test-sized 16-bar hierarchical melody model',
           _melody(16), 256, _hp(256, 8, [16, 12], [16, 12], batch_size=4), 'hierarchical'),
    Config('tiny-hierdec-drums_16bar', 'test-sized 16-bar hierarchical drums model',
           _drums(16), 256, _hp(256, 8, [16], [16], batch_size=4), 'hierarchical'),
    Config('tiny-flat-trio_16bar', 'test-sized 16-bar flat trio model', _TRIO, 256,
           _hp(256, 8, [16], [16], batch_size=4)),
    Config('tiny-hierdec-trio_16bar', 'test-sized 16-bar hierarchical trio model', _TRIO, 256,
           _hp(256, 8, [16], [16, 12], batch_size=4), 'hierarchical'),
    Config('tiny-hierdec-trio_2bar', 'test-sized 2-bar hierarchical trio model',
           _spec('trio', slice_bars=2, gap_bars=2, max_bars=1024), 32,
           _hp(32, 8, [16], [16, 16], batch_size=4), 'hierarchical'),
]}


def get_config(name):
  """The config called `name`; an unknown name is an error listing the known ones."""
  try:
    return CONFIGS[name]
  except KeyError:
    close = difflib.get_close_matches(name, CONFIGS, n=1)
    hint = ' (did you mean %s?)' % close[0] if close else ''
    raise ValueError('unknown config %r%s; known configs: %s' % (
        name, hint, ', '.join(sorted(CONFIGS)))) from None
