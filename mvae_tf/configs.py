"""The config registry: every reference config name, with the data converter
it uses.

A `Config` says how music becomes tensors (`data`) and how long a sequence is
(`max_seq_len`); the model hyperparameters are added by the model issue. Names
are the reference's, so that users' commands carry over.
"""

import dataclasses
import difflib
import types

from mvae_tf.data import converters

# Transposition applied in training to pitched parts, in semitones.
TRANSPOSE_RANGE = (-5, 5)
MEL_PROGRAMS = tuple(converters.MEL_PROGRAMS)


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """Which converter a config uses and its settings."""
  kind: str  # 'melody', 'drums' or 'trio'
  # Keyword arguments of the converter class (see mvae_tf.data.converters).
  options: types.MappingProxyType
  # Training-time transposition range, or None (drums: pitch is the instrument).
  transpose_range: tuple = None

  def make_converter(self, mode='eval', seed=None):
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

  def make_converter(self, mode='eval', seed=None):
    return self.data.make_converter(mode, seed)


def _spec(kind, transpose=True, **options):
  return DataSpec(kind, types.MappingProxyType(options),
                  TRANSPOSE_RANGE if transpose else None)


def _melody(slice_bars, **options):
  return _spec('melody', max_bars=100, slice_bars=slice_bars, gap_bars=1.0,
               skip_polyphony=False, **options)


def _drums(slice_bars):
  return _spec('drums', transpose=False, max_bars=100, slice_bars=slice_bars,
               gap_bars=1.0, roll_input=True)


_TRIO = _spec('trio', slice_bars=16, gap_bars=2, max_bars=1024)

CONFIGS = {c.name: c for c in [
    Config('cat-mel_2bar_small', '2-bar melody, flat decoder (small)',
           _melody(2, valid_programs=MEL_PROGRAMS), 32),
    Config('cat-mel_2bar_big', '2-bar melody, flat decoder (big)',
           _melody(2, valid_programs=MEL_PROGRAMS), 32),
    Config('cat-mel_2bar_med_chords', '2-bar melody conditioned on chords',
           _melody(2, valid_programs=MEL_PROGRAMS, chord_encoding='triad'), 32),
    Config('cat-drums_2bar_small', '2-bar drums, flat decoder', _drums(2), 32),
    Config('flat-mel_16bar', '16-bar melody, flat decoder', _melody(16), 256),
    Config('hierdec-mel_16bar', '16-bar melody, hierarchical decoder', _melody(16), 256),
    Config('flat-drums_16bar', '16-bar drums, flat decoder', _drums(16), 256),
    Config('hierdec-drums_16bar', '16-bar drums, hierarchical decoder', _drums(16), 256),
    Config('flat-trio_16bar', '16-bar trio, flat decoder', _TRIO, 256),
    Config('hierdec-trio_16bar', '16-bar trio, hierarchical decoder', _TRIO, 256),
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
