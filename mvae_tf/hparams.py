"""Model and training hyperparameters, with the reference's names.

`HParams` is a frozen dataclass: every field the reference's `--hparams`
accepts for MusicVAE, typed. `parse_hparams(base, "key=value,...")` applies an
override string the way `music_vae_train --hparams` does (lists written as
[512,512]) and names the key or value it cannot use.
"""

import dataclasses
import difflib
import json
import math
import re


@dataclasses.dataclass(frozen=True)
class HParams:
  max_seq_len: int = 32  # steps per window; must equal the config's window
  z_size: int = 32  # latent dimensions
  free_bits: float = 0.0  # KL budget in bits not penalised (total, not per dimension)
  max_beta: float = 1.0  # final KL weight
  beta_rate: float = 0.0  # beta = (1 - beta_rate^step) * max_beta; 0 = constant max_beta
  batch_size: int = 512
  grad_clip: float = 1.0
  clip_mode: str = 'global_norm'  # 'global_norm' or 'value'
  grad_norm_clip_to_zero: float = 10000.0  # a larger gradient norm: zero gradients applied
  learning_rate: float = 0.001
  decay_rate: float = 0.9999
  min_learning_rate: float = 0.00001
  conditional: bool = True  # False: the decoder ignores z (a language model)
  dec_rnn_size: tuple = (512,)  # decoder (and conductor) LSTM layer sizes
  enc_rnn_size: tuple = (256,)  # bidirectional encoder layer sizes (per direction)
  # Input keep probability of every encoder and decoder LSTM layer in the reference;
  # not implemented here: values below 1 are refused (the reference configs keep 1.0).
  dropout_keep_prob: float = 1.0
  sampling_schedule: str = 'constant'  # 'constant', 'exponential' or 'inverse_sigmoid'
  sampling_rate: float = 0.0
  use_cudnn: bool = False  # accepted for compatibility; has no effect here
  residual_encoder: bool = False  # accepted for compatibility; must stay False
  residual_decoder: bool = False  # accepted for compatibility; must stay False
  control_preprocessing_rnn_size: tuple = (256,)  # accepted; unused by these models

  def __post_init__(self):
    for f in dataclasses.fields(self):  # 0 -> 0.0, [512] -> (512,), as declared
      object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name)))
    problems = []
    if self.clip_mode not in ('global_norm', 'value'):
      problems.append("clip_mode must be 'global_norm' or 'value', got %r" % (self.clip_mode,))
    if self.sampling_schedule not in ('constant', 'exponential', 'inverse_sigmoid'):
      problems.append("sampling_schedule must be 'constant', 'exponential' or "
                      "'inverse_sigmoid', got %r" % (self.sampling_schedule,))
    for name in ('z_size', 'max_seq_len', 'batch_size'):
      if getattr(self, name) < 1:
        problems.append('%s must be positive, got %r' % (name, getattr(self, name)))
    for name in ('enc_rnn_size', 'dec_rnn_size'):
      sizes = getattr(self, name)
      if not sizes or any(int(s) < 1 for s in sizes):
        problems.append('%s must be a non-empty list of positive sizes, got %r' % (name, sizes))
    if not 0.0 < self.dropout_keep_prob <= 1.0:
      problems.append('dropout_keep_prob must be in (0, 1], got %r' % (self.dropout_keep_prob,))
    if self.residual_encoder or self.residual_decoder:
      problems.append('residual_encoder / residual_decoder are not supported')
    if problems:
      raise ValueError('; '.join(problems))

  def replace(self, **changes):
    return dataclasses.replace(self, **changes)

  def to_dict(self):
    d = dataclasses.asdict(self)
    for k, v in d.items():
      if isinstance(v, tuple):
        d[k] = list(v)
    return d

  @classmethod
  def from_dict(cls, d):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
      raise ValueError('unknown hparams: %s' % ', '.join(unknown))
    return cls(**{k: _coerce(k, v) for k, v in d.items()})


_FIELDS = {f.name: f for f in dataclasses.fields(HParams)}


def _coerce(name, value):
  """`value` (parsed JSON-ish or a raw string) as the type of field `name`."""
  default = _FIELDS[name].default
  try:
    if isinstance(default, bool):
      if isinstance(value, str):
        if value.lower() in ('true', '1'):
          return True
        if value.lower() in ('false', '0'):
          return False
        raise ValueError
      return bool(value)
    if isinstance(default, tuple):
      if isinstance(value, str):
        value = json.loads(value)
      if isinstance(value, (int, float)):
        value = [value]
      out = []
      for v in value:
        if float(v) != int(v):
          raise ValueError
        out.append(int(v))
      return tuple(out)
    if isinstance(default, int):
      f = float(value)
      if f != int(f) or math.isinf(f):
        raise ValueError
      return int(f)
    if isinstance(default, float):
      f = float(value)
      if math.isnan(f):
        raise ValueError
      return f
    if isinstance(default, str):
      if not isinstance(value, str):
        raise ValueError
      return value.strip('\'"')
  except (TypeError, ValueError, json.JSONDecodeError):
    pass
  raise ValueError('hparam %s: bad value %r (expected %s, e.g. %s=%s)' % (
      name, value, type(default).__name__ if not isinstance(default, tuple) else 'a list of ints',
      name, json.dumps(list(default)).replace(' ', '') if isinstance(default, tuple)
      else default))


def _split_overrides(text):
  """'a=1,b=[2,3],c=x' -> [('a', '1'), ('b', '[2,3]'), ('c', 'x')] (commas in [] kept)."""
  items, depth, current = [], 0, ''
  for ch in text:
    if ch == '[':
      depth += 1
    elif ch == ']':
      depth -= 1
    if ch == ',' and depth == 0:
      items.append(current)
      current = ''
    else:
      current += ch
  items.append(current)
  pairs = []
  for item in items:
    item = item.strip()
    if not item:
      continue
    m = re.match(r'^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$', item)
    if not m:
      raise ValueError('--hparams: cannot parse %r (write key=value,key=[1,2])' % item)
    pairs.append((m.group(1), m.group(2)))
  return pairs


def parse_hparams(base, overrides):
  """`base` (an HParams) with the "key=value,..." `overrides` applied.

  Unknown keys and values of the wrong type are errors naming them.
  """
  if base is None:
    base = HParams()
  if not overrides:
    return base
  changes = {}
  for key, value in _split_overrides(overrides):
    if key not in _FIELDS:
      close = difflib.get_close_matches(key, _FIELDS, n=1)
      hint = ' (did you mean %s?)' % close[0] if close else ''
      raise ValueError('--hparams: unknown hparam %r%s; known: %s' % (
          key, hint, ', '.join(sorted(_FIELDS))))
    changes[key] = _coerce(key, value)
  return base.replace(**changes)
