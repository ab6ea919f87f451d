"""Melody and drum-track extraction from a quantized NoteSequence.

These follow the reference implementation's extraction rules exactly (the
converter parity tests depend on it): tracks are searched instrument by
instrument, a track ends after `gap_bars` of silence, the next search starts on
the following bar boundary, and tracks shorter than `min_bars` are dropped.
The per-step work is done by note_seq's `Melody` and `DrumTrack`.
"""

import collections

import numpy as np
from note_seq import drums_lib, melodies_lib, sequences_lib


def _steps_per_bar(quantized_sequence):
  return int(sequences_lib.steps_per_bar_in_quantized_sequence(quantized_sequence))


def _truncate(track, max_steps_truncate, pad_end, stats, name):
  if max_steps_truncate is not None and len(track) > max_steps_truncate:
    length = max_steps_truncate
    if pad_end:
      length -= max_steps_truncate % track.steps_per_bar
    track.set_length(length)
    stats[name + '_truncated'] += 1


def extract_melodies(quantized_sequence, search_start_step=0, min_bars=7,
                     max_steps_truncate=None, max_steps_discard=None,
                     gap_bars=1.0, min_unique_pitches=5,
                     ignore_polyphonic_notes=True, pad_end=False,
                     filter_drums=True):
  """Returns (list of `Melody`, Counter of what was discarded and why)."""
  sequences_lib.assert_is_relative_quantized_sequence(quantized_sequence)
  stats = collections.Counter()
  melodies = []
  steps_per_bar = _steps_per_bar(quantized_sequence)
  # A set, iterated as the reference iterates it: the order of the resulting
  # melodies decides which windows survive de-duplication.
  instruments = set(n.instrument for n in quantized_sequence.notes)
  for instrument in instruments:
    start = search_start_step
    while True:
      melody = melodies_lib.Melody()
      try:
        melody.from_quantized_sequence(
            quantized_sequence, instrument=instrument, search_start_step=start,
            gap_bars=gap_bars, ignore_polyphonic_notes=ignore_polyphonic_notes,
            pad_end=pad_end, filter_drums=filter_drums)
      except melodies_lib.PolyphonicMelodyError:
        stats['polyphonic_tracks_discarded'] += 1
        break
      # The next search starts at the next bar boundary (inclusive).
      start = melody.end_step + (search_start_step - melody.end_step) % steps_per_bar
      if not melody:
        break
      if len(melody) < melody.steps_per_bar * min_bars:
        stats['melodies_discarded_too_short'] += 1
        continue
      if max_steps_discard is not None and len(melody) > max_steps_discard:
        stats['melodies_discarded_too_long'] += 1
        continue
      _truncate(melody, max_steps_truncate, pad_end, stats, 'melodies')
      if np.count_nonzero(melody.get_note_histogram()) < min_unique_pitches:
        stats['melodies_discarded_too_few_pitches'] += 1
        continue
      melodies.append(melody)
  return melodies, stats


def extract_drum_tracks(quantized_sequence, search_start_step=0, min_bars=7,
                        max_steps_truncate=None, max_steps_discard=None,
                        gap_bars=1.0, pad_end=False, ignore_is_drum=False):
  """Returns (list of `DrumTrack`, Counter of what was discarded and why)."""
  sequences_lib.assert_is_relative_quantized_sequence(quantized_sequence)
  stats = collections.Counter()
  tracks = []
  steps_per_bar = _steps_per_bar(quantized_sequence)
  start = search_start_step
  while True:
    track = drums_lib.DrumTrack()
    track.from_quantized_sequence(
        quantized_sequence, search_start_step=start, gap_bars=gap_bars,
        pad_end=pad_end, ignore_is_drum=ignore_is_drum)
    start = track.end_step + (search_start_step - track.end_step) % steps_per_bar
    if not track:
      break
    if len(track) < track.steps_per_bar * min_bars:
      stats['drum_tracks_discarded_too_short'] += 1
      continue
    if max_steps_discard is not None and len(track) > max_steps_discard:
      stats['drum_tracks_discarded_too_long'] += 1
      continue
    _truncate(track, max_steps_truncate, pad_end, stats, 'drum_tracks')
    tracks.append(track)
  return tracks, stats
