"""Attribute vectors: directions in latent space that change one musical attribute.

The paper's recipe (never published by the reference): over a corpus, the
mean mu of the windows with the highest values of an attribute minus the
mean mu of those with the lowest (the top and bottom `quantile`). Adding
`strength * vector` to a z raises the attribute (on average), subtracting it
lowers it.

Attributes of a window (its notes, in steps; see mvae_tf.generation.render.Note):

  note_density      notes (drum hits) per step
  pitch_range       highest minus lowest pitch, in semitones (pitched notes)
  syncopation       fraction of onsets off the beat (not on a quarter note)
  average_interval  mean absolute interval between consecutive notes, in semitones

Drum models have note_density and syncopation only. Vectors are saved as
.npz (one [z_size] array per attribute, plus a JSON '__meta__' entry).
"""


import numpy as np

# The .npz file of attribute vectors is the store's (a packaged model holds one).
from mvae_tf.store.attribute_vectors import (  # noqa: F401
    META_KEY, load_attribute_vectors, save_attribute_vectors)

ATTRIBUTES = ('note_density', 'pitch_range', 'syncopation', 'average_interval')
PITCHED_ONLY = ('pitch_range', 'average_interval')


def _pitched(notes):
  return sorted((n for n in notes if not n.is_drum), key=lambda n: (n.start, n.pitch))


def note_density(notes, num_steps, steps_per_quarter=4):
  return len(notes) / float(num_steps) if num_steps else 0.0


def pitch_range(notes, num_steps=None, steps_per_quarter=4):
  pitches = [n.pitch for n in notes if not n.is_drum]
  return float(max(pitches) - min(pitches)) if pitches else 0.0


def syncopation(notes, num_steps=None, steps_per_quarter=4):
  onsets = [n.start for n in notes]
  return sum(1 for t in onsets if t % steps_per_quarter) / len(onsets) if onsets else 0.0


def average_interval(notes, num_steps=None, steps_per_quarter=4):
  pitches = [n.pitch for n in _pitched(notes)]
  return float(np.mean(np.abs(np.diff(pitches)))) if len(pitches) > 1 else 0.0


FUNCTIONS = dict(note_density=note_density, pitch_range=pitch_range, syncopation=syncopation,
                 average_interval=average_interval)


def available(kind):
  """The attributes that make sense for a model kind ('melody', 'drums', 'trio')."""
  return tuple(a for a in ATTRIBUTES if kind != 'drums' or a not in PITCHED_ONLY)


def attribute(name, notes, num_steps, steps_per_quarter=4):
  """The value of attribute `name` for notes (mvae_tf.generation.render.Note, in steps)."""
  if name not in FUNCTIONS:
    raise ValueError('unknown attribute %r; known: %s' % (name, ', '.join(ATTRIBUTES)))
  return FUNCTIONS[name](notes, num_steps, steps_per_quarter)


def of_indices(name, indices, data):
  """Attribute of one decoded window: class indices [T, P] (data: a model's decoding info)."""
  from mvae_tf.generation.render import notes_from_indices
  return attribute(name, notes_from_indices(indices, data), len(indices),
                   data.get('steps_per_quarter', 4))


def of_sequence(name, note_sequence, num_steps=None, qpm=None, steps_per_quarter=4):
  """Attribute of a NoteSequence, its notes placed on a grid of 16th notes.

  `num_steps` defaults to the sequence's total time in steps.
  """
  from mvae_tf.generation.render import notes_from_sequence
  data = dict(steps_per_quarter=steps_per_quarter, qpm=qpm or 120.0)
  notes = notes_from_sequence(note_sequence, data)
  if num_steps is None:
    q = note_sequence.tempos[0].qpm if note_sequence.tempos else data['qpm']
    num_steps = int(round(note_sequence.total_time / (60.0 / q / steps_per_quarter)))
  return attribute(name, notes, num_steps, steps_per_quarter)


def vectors_from_latents(mu, values, quantile=0.25):
  """Mean mu of the top `quantile` of `values` minus that of the bottom one.

  mu [N, z], values [N]. Raises ValueError when the two groups do not differ.
  """
  mu, values = np.asarray(mu, np.float64), np.asarray(values, np.float64)
  if not 0 < quantile <= 0.5:
    raise ValueError('quantile must be in (0, 0.5], got %r' % quantile)
  k = int(np.floor(len(values) * quantile))
  if k < 1:
    raise ValueError('%d windows are too few for quantile %g' % (len(values), quantile))
  order = np.argsort(values, kind='stable')
  low, high = order[:k], order[-k:]
  if values[high].mean() <= values[low].mean():
    raise ValueError('the attribute does not vary over these windows')
  return (mu[high].mean(0) - mu[low].mean(0)).astype(np.float32), dict(
      low_mean=float(values[low].mean()), high_mean=float(values[high].mean()), count=k)


def compute_attribute_vectors(model, sequences, attributes=None, quantile=0.25,
                              batch_size=256):
  """Attribute vectors of `model` over NoteSequences (all their windows).

  Sequences that yield no window are skipped. Each window's attribute is
  measured on the window itself (its converter outputs). Returns
  (vectors {name: [z_size] float32}, meta dict).
  """
  attributes = tuple(attributes or available(model.kind))
  for name in attributes:
    if name not in FUNCTIONS:
      raise ValueError('unknown attribute %r; known: %s' % (name, ', '.join(ATTRIBUTES)))
  mu, indices, owners = model.encode_windows(sequences, batch_size=batch_size)
  if not len(mu):
    raise ValueError('no sequence yields a window for %s' % model.config_name)
  vectors, meta = {}, dict(config=model.config_name, quantile=quantile, windows=len(mu),
                           sequences=len(set(owners)), attributes={})
  for name in attributes:
    values = [of_indices(name, w, model.data) for w in indices]
    try:
      vectors[name], meta['attributes'][name] = vectors_from_latents(mu, values, quantile)
    except ValueError as e:
      raise ValueError('%s: %s' % (name, e)) from None
  return vectors, meta


def apply(z, vector, strength=1.0):
  """z + strength * vector, for z [N, z_size] or [z_size]."""
  z, vector = np.asarray(z, np.float32), np.asarray(vector, np.float32)
  if z.shape[-1] != vector.shape[-1]:
    raise ValueError('attribute vector has %d dimensions, the model\'s z has %d' % (
        vector.shape[-1], z.shape[-1]))
  return z + np.float32(strength) * vector
