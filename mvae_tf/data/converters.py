"""Converters between NoteSequences and MusicVAE's tensors.

Each converter turns a NoteSequence into windows of one-hot (or multi-hot)
steps and back:

* `to_tensors(note_sequence)` -> `ConverterTensors(inputs, outputs, controls,
  lengths)`, one entry per window;
* `from_tensors(samples, controls=None)` -> list of NoteSequences.

In "eval" mode the choice of windows is deterministic and matches the
reference implementation element for element (tests/test_converter_parity.py);
in "train" mode windows are chosen at random and pitched parts are transposed
by a random amount in `transpose_range`, dropping notes that leave the range.

Representations (4 steps per quarter note, 16 per bar, 4/4 only):

* melody: 90 classes, 0 = no event, 1 = note off, 2..89 = MIDI pitch 21..108;
* drums: output one of 512 classes (bit k = drum class k hit), input a 9-bit
  roll plus a "no hit" bit;
* trio: [melody 90 | bass 90 | drums 512] = 692 per step;
* chords (control): 49 classes, no chord + 12 roots x {maj, min, aug, dim}.

Why a window set is empty is recorded in `ConverterTensors.skipped` (a list of
reasons), which `mvae inspect` reports.
"""

import collections
import copy
import itertools

import note_seq
import numpy as np
from note_seq import chords_lib, sequences_lib
from note_seq.protobuf import music_pb2

# The nine drum classes and the MIDI pitches mapped to each (the first pitch of a class
# is the one written back): one copy, in the TF-free edge_demo.
from edge_demo.music import DRUM_PITCH_CLASSES
from mvae_tf.data import extract

PIANO_MIN_PITCH = 21
PIANO_MAX_PITCH = 108
MEL_PROGRAMS = range(0, 32)
BASS_PROGRAMS = range(32, 40)
# Bass written back by the trio converter: electric bass (finger).
OUTPUT_BASS_PROGRAM = 33
MAX_INSTRUMENT_NUMBER = 127
OUTPUT_VELOCITY = 80
OUTPUT_QPM = 120.0


_QUANTIZE_ERRORS = (
    sequences_lib.BadTimeSignatureError,
    note_seq.NonIntegerStepsPerBarError,
    sequences_lib.NegativeTimeError,
    sequences_lib.MultipleTimeSignatureError,
    sequences_lib.MultipleTempoError,
)


class ConverterTensors(collections.namedtuple(
    'ConverterTensors', ['inputs', 'outputs', 'controls', 'lengths', 'skipped'])):
  """Windows of one NoteSequence: lists of [T, depth] arrays and lengths.

  `controls` holds a [T, 0] array per window when there is no control, so the
  four lists always have the same length. `skipped` lists the reasons for
  which parts of the sequence yielded nothing (for `mvae inspect`).
  """

  def __new__(cls, inputs=None, outputs=None, controls=None, lengths=None,
              skipped=None):
    inputs = list(inputs or [])
    outputs = list(outputs or [])
    if lengths is None:
      lengths = [len(x) for x in inputs]
    if not controls:
      controls = [np.zeros([n, 0], bool) for n in lengths]
    return super().__new__(cls, inputs, outputs, list(controls), list(lengths),
                           list(skipped or []))

  def __len__(self):  # number of windows, not of fields
    return len(self.inputs)

  def windows(self):
    return list(zip(self.inputs, self.outputs, self.controls, self.lengths))

  @classmethod
  def from_windows(cls, windows, skipped=None):
    if not windows:
      return cls(skipped=skipped)
    inputs, outputs, controls, lengths = zip(*windows)
    return cls(inputs, outputs, controls, lengths, skipped)


def np_onehot(indices, depth, dtype=bool):
  """[len(indices), depth] one-hot rows."""
  onehot = np.zeros((len(indices), depth), dtype=dtype)
  onehot[np.arange(len(indices)), indices] = 1
  return onehot


def extract_instrument(note_sequence, instrument):
  """A copy of `note_sequence` holding only the notes of `instrument`."""
  extracted = music_pb2.NoteSequence()
  extracted.CopyFrom(note_sequence)
  del extracted.notes[:]
  extracted.notes.extend(n for n in note_sequence.notes if n.instrument == instrument)
  return extracted


def transpose(note_sequence, amount, min_pitch=PIANO_MIN_PITCH,
              max_pitch=PIANO_MAX_PITCH):
  """Transposes the pitched notes by `amount`, dropping those out of range, and the key
  and chord symbols with them (as the original's NoteSequenceAugmenter does: a chord
  left behind would condition the model on the wrong harmony)."""
  ns = music_pb2.NoteSequence()
  ns.CopyFrom(note_sequence)
  if amount == 0:
    return ns
  kept = []
  for note in ns.notes:
    if not note.is_drum:
      note.pitch += amount
      if not min_pitch <= note.pitch <= max_pitch:
        continue
    kept.append(note)
  del ns.notes[:]
  ns.notes.extend(kept)
  for key in ns.key_signatures:
    key.key = (key.key + amount) % 12
  chord = music_pb2.NoteSequence.TextAnnotation.CHORD_SYMBOL
  for annotation in ns.text_annotations:
    if annotation.annotation_type == chord and annotation.text != note_seq.NO_CHORD:
      try:
        annotation.text = chords_lib.chord_symbols_lib.transpose_chord_symbol(
            annotation.text, amount)
      except chords_lib.chord_symbols_lib.ChordSymbolError:
        pass  # not a chord it can read: the converter says so when it encodes it
  return ns


def _time_signature_names(note_sequence):
  sigs = sorted({'%d/%d' % (ts.numerator, ts.denominator)
                 for ts in note_sequence.time_signatures})
  return ', '.join(sigs) if sigs else '4/4 (none given)'


class BaseConverter:
  """Shared machinery: splitting at time changes, window caps, modes.

  Subclasses implement `_to_tensors_fn(note_sequence, skipped)` (one piece of
  constant tempo and metre) and `from_tensors`.
  """

  input_depth = None
  output_depth = None
  control_depth = 0
  end_token = None

  def __init__(self, steps_per_quarter=4, quarters_per_bar=4, slice_bars=None,
               max_tensors_per_notesequence=5, presplit_on_time_changes=True,
               transpose_range=None):
    self.steps_per_quarter = steps_per_quarter
    self.steps_per_bar = steps_per_quarter * quarters_per_bar
    self.slice_bars = slice_bars
    self.slice_steps = slice_bars * self.steps_per_bar if slice_bars else None
    self.max_tensors_per_notesequence = max_tensors_per_notesequence
    self.presplit_on_time_changes = presplit_on_time_changes
    self.transpose_range = tuple(transpose_range) if transpose_range else None
    self.mode = 'eval'
    self._rng = np.random.default_rng()

  @property
  def is_training(self):
    return self.mode == 'train'

  def set_mode(self, mode, seed=None):
    """'eval': deterministic windows; 'train': random windows and transposition."""
    if mode not in ('train', 'eval'):
      raise ValueError("mode must be 'train' or 'eval', got %r" % (mode,))
    self.mode = mode
    if seed is not None:
      self._rng = np.random.default_rng(seed)

  def _maybe_sample(self, items):
    limit = self.max_tensors_per_notesequence
    if not limit or len(items) <= limit:
      return list(items)
    if self.is_training:
      picked = self._rng.choice(len(items), size=limit, replace=False)
      return [items[i] for i in sorted(picked)]
    return list(items[:limit])

  def _quantize(self, note_sequence, skipped):
    """The quantized piece, or None (with the reason) if its metre is not 16 steps a bar."""
    backwards = sum(n.end_time < n.start_time for n in note_sequence.notes)
    if backwards:  # only damaged data has them; note_seq's extraction raises on them
      skipped.append('%d note%s before %s start%s (damaged data)' % (
          backwards, ' ends' if backwards == 1 else 's end', 'it' if backwards == 1 else 'they',
          's' if backwards == 1 else ''))
      return None
    try:
      quantized = sequences_lib.quantize_note_sequence(
          note_sequence, self.steps_per_quarter)
      steps_per_bar = sequences_lib.steps_per_bar_in_quantized_sequence(quantized)
    except _QUANTIZE_ERRORS as e:
      skipped.append('cannot quantize (%s: %s)' % (type(e).__name__, e))
      return None
    if steps_per_bar != self.steps_per_bar:
      skipped.append('metre %s is not %d steps per bar (only 4/4 and 2/2 are used)' % (
          _time_signature_names(note_sequence), self.steps_per_bar))
      return None
    return quantized

  def to_tensors(self, note_sequence):
    """All windows of `note_sequence` (at most `max_tensors_per_notesequence`)."""
    if self.is_training and self.transpose_range:
      low, high = self.transpose_range
      note_sequence = transpose(note_sequence, int(self._rng.integers(low, high + 1)))
    if self.presplit_on_time_changes:
      pieces = sequences_lib.split_note_sequence_on_time_changes(note_sequence)
    else:
      pieces = [note_sequence]
    windows, skipped = [], []
    for piece in pieces:
      tensors = self._to_tensors_fn(copy.deepcopy(piece), skipped)
      windows.extend(self._maybe_sample(tensors.windows()))
    if not pieces:
      skipped.append('no notes')
    return ConverterTensors.from_windows(self._maybe_sample(windows), skipped)

  def _to_tensors_fn(self, note_sequence, skipped):
    raise NotImplementedError

  def from_tensors(self, samples, controls=None):
    raise NotImplementedError

  def _slice(self, event_lists):
    """Windows of slice_steps sliding by one bar (event sequences keep their steps)."""
    if not self.slice_steps:
      return list(event_lists)
    return [events[i - self.slice_steps:i]
            for events in event_lists
            for i in range(self.slice_steps, len(events) + 1, self.steps_per_bar)]


def _decode_indices(sample):
  """Class index per step from one-hot rows, logits or indices."""
  sample = np.asarray(sample)
  return sample if sample.ndim == 1 else np.argmax(sample, axis=-1)


class MelodyConverter(BaseConverter):
  """Monophonic melody <-> 90-class one-hot steps.

  Args:
    valid_programs: MIDI programs whose notes are used (None: every program).
    min_pitch, max_pitch: range kept; other notes are dropped first.
    skip_polyphony: if True, a polyphonic instrument yields no melody;
      otherwise the highest simultaneous onset is kept.
    max_bars: melodies are truncated to this many bars.
    slice_bars: window length in bars (windows slide by one bar).
    gap_bars: bars of silence that end a melody (None: never).
    chord_encoding: None or 'triad' to add the 49-class chord control.
    dedupe: remove duplicate windows.
    pad_to_total_time: pad melodies to the sequence's start and total length.
  """

  def __init__(self, valid_programs=None, min_pitch=PIANO_MIN_PITCH,
               max_pitch=PIANO_MAX_PITCH, skip_polyphony=False, max_bars=None,
               slice_bars=None, gap_bars=1.0, chord_encoding=None, dedupe=True,
               pad_to_total_time=False, **kwargs):
    super().__init__(slice_bars=slice_bars, **kwargs)
    self.valid_programs = None if valid_programs is None else frozenset(valid_programs)
    self.min_pitch = min_pitch
    self.max_pitch = max_pitch
    self.skip_polyphony = skip_polyphony
    self.max_bars = max_bars
    self.gap_bars = gap_bars
    self.dedupe = dedupe
    self.pad_to_total_time = pad_to_total_time
    self.num_special_events = 2  # no event, note off
    self.output_depth = self.input_depth = max_pitch - min_pitch + 1 + self.num_special_events
    self.chord_encoding = None
    if chord_encoding == 'triad':
      self.chord_encoding = note_seq.TriadChordOneHotEncoding()
      self.control_depth = self.chord_encoding.num_classes
    elif chord_encoding is not None:
      raise ValueError('unknown chord_encoding %r (use None or "triad")' % (chord_encoding,))
    max_steps = max_bars * self.steps_per_bar if max_bars else None
    self._extract_kwargs = dict(
        min_bars=1, gap_bars=gap_bars or float('inf'), max_steps_truncate=max_steps,
        min_unique_pitches=1, ignore_polyphonic_notes=not skip_polyphony, pad_end=True)

  def encode_event(self, event):
    return event + self.num_special_events if event < 0 else (
        event - self.min_pitch + self.num_special_events)

  def decode_event(self, index):
    index = int(index)
    return index - self.num_special_events if index < self.num_special_events else (
        index - self.num_special_events + self.min_pitch)

  def _keep(self, note):
    if self.valid_programs is not None and note.program not in self.valid_programs:
      return False
    return self.min_pitch <= note.pitch <= self.max_pitch

  def _to_tensors_fn(self, note_sequence, skipped):
    all_notes = list(note_sequence.notes)
    kept = [n for n in all_notes if self._keep(n)]
    pitched = [n for n in all_notes if not n.is_drum]
    if all_notes and not pitched:
      skipped.append('no pitched notes (drums only)')
      return ConverterTensors()  # melody extraction ignores drums anyway
    if all_notes and not kept:
      in_programs = [n for n in pitched if self.valid_programs is None
                     or n.program in self.valid_programs]
      if not in_programs:
        skipped.append('no melody instrument (programs %s found, %d..%d used)' % (
            sorted({n.program for n in pitched}), min(self.valid_programs),
            max(self.valid_programs)))
      else:
        skipped.append('all notes out of the pitch range %d..%d' % (
            self.min_pitch, self.max_pitch))
    del note_sequence.notes[:]
    note_sequence.notes.extend(kept)

    quantized = self._quantize(note_sequence, skipped)
    if quantized is None:
      return ConverterTensors()

    if self.chord_encoding is not None and not any(
        ta.annotation_type == music_pb2.NoteSequence.TextAnnotation.CHORD_SYMBOL
        for ta in quantized.text_annotations):
      try:
        note_seq.infer_chords_for_sequence(quantized)
      except note_seq.ChordInferenceError as e:
        skipped.append('chord inference failed (%s)' % e)
        return ConverterTensors()

    melodies, stats = extract.extract_melodies(quantized, **self._extract_kwargs)
    if self.pad_to_total_time:
      for melody in melodies:
        melody.set_length(len(melody) + melody.start_step, from_left=True)
        melody.set_length(quantized.total_quantized_steps)
    event_lists = self._slice(melodies)

    # Each window becomes a tuple of per-step tuples: (event,) or (event, chord).
    # The exact form matters: the reference de-duplicates these through a set,
    # and the set's iteration order decides which windows eval mode keeps.
    parts = [event_lists]
    if self.chord_encoding is not None:
      try:
        parts.append(chords_lib.event_list_chords(quantized, event_lists))
      except chords_lib.CoincidentChordsError:
        skipped.append('coincident chords')
        return ConverterTensors()
    windows = [tuple(zip(*lists)) for lists in zip(*parts)]
    if self.dedupe and self.chord_encoding is None:
      windows = list(set(windows))  # deterministic order for tuples of ints
    elif self.dedupe:
      # Chord names are strings, whose set order changes with the hash seed:
      # keep first occurrences in time order instead, so eval stays deterministic.
      windows = list(dict.fromkeys(windows))
    windows = [w for w in self._maybe_sample(windows) if w]
    if not windows:
      skipped.append(self._why_no_melody(quantized, stats))
      return ConverterTensors()

    unique = [[step[0] for step in w] for w in windows]
    controls = []
    if self.chord_encoding is not None:
      for w in windows:
        try:
          tokens = [self.chord_encoding.encode_event(step[1]) for step in w]
        except (note_seq.ChordSymbolError, note_seq.ChordEncodingError) as e:
          skipped.append('chord cannot be encoded (%s)' % e)
          return ConverterTensors()
        controls.append(np_onehot(tokens, self.control_depth))

    seqs = [np_onehot([self.encode_event(e) for e in events], self.output_depth)
            for events in unique]
    return ConverterTensors(inputs=seqs, outputs=seqs, controls=controls)

  def _why_no_melody(self, quantized, stats):
    if not quantized.notes:
      return 'no notes left after filtering programs and pitch range'
    bars = quantized.total_quantized_steps / self.steps_per_bar
    if self.slice_bars and stats.get('melodies_discarded_too_short', 0) == 0:
      return ('too short: no melody of %d bars (piece is %.1f bars; a melody ends '
              'after %s bar(s) of silence)' % (self.slice_bars, bars, self.gap_bars))
    return 'too short: no melody of %s bars or more (piece is %.1f bars)' % (
        self.slice_bars or 1, bars)

  def events_from_tensor(self, sample):
    return [self.decode_event(i) for i in _decode_indices(sample)]

  def from_tensors(self, samples, controls=None):
    sequences = []
    for i, sample in enumerate(samples):
      melody = note_seq.Melody(steps_per_bar=self.steps_per_bar,
                               steps_per_quarter=self.steps_per_quarter)
      for event in self.events_from_tensor(sample):
        melody.append(event)
      ns = melody.to_sequence(velocity=OUTPUT_VELOCITY, qpm=OUTPUT_QPM)
      if self.chord_encoding is not None and controls is not None:
        seconds_per_step = 60.0 / (self.steps_per_quarter * OUTPUT_QPM)
        chords = [self.chord_encoding.decode_event(e)
                  for e in _decode_indices(controls[i])[:len(melody)]]
        chord_times = [step * seconds_per_step for step in melody.steps]
        chords_lib.add_chords_to_sequence(ns, chords, chord_times)
      sequences.append(ns)
    return sequences


class DrumsConverter(BaseConverter):
  """Drum track <-> steps: 9 drum classes.

  Args:
    max_bars, slice_bars, gap_bars, pad_to_total_time: as for melodies.
    roll_input: input is the 9-class multi-hot roll plus a "no hit" bit (10
      dims) rather than the 512-way one-hot.
    roll_output: output is the 9-class roll rather than the 512-way one-hot.
  """

  def __init__(self, max_bars=None, slice_bars=None, gap_bars=1.0,
               pitch_classes=DRUM_PITCH_CLASSES, pad_to_total_time=False,
               roll_input=False, roll_output=False, **kwargs):
    super().__init__(slice_bars=slice_bars, **kwargs)
    self.pitch_classes = tuple(tuple(c) for c in pitch_classes)
    self.pitch_class_map = {p: i for i, pitches in enumerate(self.pitch_classes)
                            for p in pitches}
    self.num_classes = len(self.pitch_classes)
    self.max_bars = max_bars
    self.gap_bars = gap_bars
    self.pad_to_total_time = pad_to_total_time
    self.roll_input = roll_input
    self.roll_output = roll_output
    self.num_labels = 2 ** self.num_classes
    self.output_depth = self.num_classes if roll_output else self.num_labels
    self.input_depth = self.num_classes + 1 if roll_input else self.num_labels
    max_steps = max_bars * self.steps_per_bar if max_bars else None
    self._extract_kwargs = dict(min_bars=1, gap_bars=gap_bars or float('inf'),
                                max_steps_truncate=max_steps, pad_end=True)

  @staticmethod
  def encode_event(classes):
    return sum(2 ** c for c in set(classes))

  def decode_event(self, label):
    return frozenset(c for c in range(self.num_classes) if int(label) >> c & 1)

  def roll_from_labels(self, labels):
    """The 9-class roll of event labels [..., T] (each a bitmask of classes):
    [..., T, num_classes] bool, row t holding the classes hit at step t."""
    labels = np.asarray(labels, np.int64)
    return (labels[..., None] >> np.arange(self.num_classes)) & 1 == 1

  def inputs_from_labels(self, labels):
    """The encoder's input rows for event labels [..., T]: [..., T, input_depth] bool,
    the 512-way one-hot or, with roll_input, the 9-class roll plus a "no hit" bit."""
    labels = np.asarray(labels, np.int64)
    if not self.roll_input:
      return np.arange(self.num_labels) == labels[..., None]
    roll = self.roll_from_labels(labels)
    return np.concatenate([roll, ~roll.any(axis=-1, keepdims=True)], axis=-1)

  def _to_tensors_fn(self, note_sequence, skipped):
    quantized = self._quantize(note_sequence, skipped)
    if quantized is None:
      return ConverterTensors()
    drum_notes = [n for n in quantized.notes if n.is_drum]
    mapped = []
    for note in drum_notes:
      if note.pitch in self.pitch_class_map:
        note.pitch = self.pitch_class_map[note.pitch]
        mapped.append(note)
    del quantized.notes[:]
    quantized.notes.extend(mapped)

    tracks, _ = extract.extract_drum_tracks(quantized, **self._extract_kwargs)
    if self.pad_to_total_time:
      for track in tracks:
        track.set_length(len(track) + track.start_step, from_left=True)
        track.set_length(quantized.total_quantized_steps)
    unique = self._maybe_sample(list(set(tuple(w) for w in self._slice(tracks))))
    if not unique:
      if not drum_notes:
        skipped.append('no drum notes (no is_drum track)')
      elif not mapped:
        skipped.append('no drum note on a mapped drum pitch')
      else:
        skipped.append('too short: no drum track of %d bars (piece is %.1f bars; a '
                       'track ends after %s bar(s) of silence)' % (
                           self.slice_bars or 1,
                           quantized.total_quantized_steps / self.steps_per_bar,
                           self.gap_bars))
      return ConverterTensors()

    labels = [np.array([self.encode_event(e) for e in events], np.int64) for events in unique]
    inputs = [self.inputs_from_labels(l) for l in labels]
    if self.roll_output:
      outputs = [self.roll_from_labels(l) for l in labels]
    else:
      outputs = [np_onehot(l, self.num_labels) for l in labels]
    return ConverterTensors(inputs=inputs, outputs=outputs)

  def events_from_tensor(self, sample):
    sample = np.asarray(sample)
    if self.roll_output and sample.ndim == 2:
      return [frozenset(np.flatnonzero(row > 0.5 if row.dtype != bool else row))
              for row in sample]
    return [self.decode_event(label) for label in _decode_indices(sample)]

  def from_tensors(self, samples, controls=None):
    sequences = []
    for sample in samples:
      events = [frozenset(self.pitch_classes[c][0] for c in classes)
                for classes in self.events_from_tensor(sample)]
      track = note_seq.DrumTrack(events=events, steps_per_bar=self.steps_per_bar,
                                 steps_per_quarter=self.steps_per_quarter)
      sequences.append(track.to_sequence(velocity=OUTPUT_VELOCITY, qpm=OUTPUT_QPM))
    return sequences


def _pad_with_rests(onehot, steps):
  """Pads one-hot rows with class 0 (no event / no hit) to `steps` rows.

  An instrument quantized on its own can end a step short of the whole piece
  (its total time rounds down where the piece's last note rounded up); the
  reference then fails in np.concatenate, we pad.
  """
  if len(onehot) >= steps:
    return onehot
  pad = np.zeros((steps - len(onehot), onehot.shape[1]), onehot.dtype)
  pad[:, 0] = 1
  return np.concatenate([onehot, pad])


class TrioConverter(BaseConverter):
  """Melody + bass + drums <-> 692-dim steps ([90 | 90 | 512]).

  Instruments are typed by program (0..31 melody, 32..39 bass) or is_drum;
  an instrument of several types is invalid. Every combination of one
  instrument of each type yields the windows over which all three play,
  gaps of up to `gap_bars` filled.
  """

  UNK, MEL, BASS, DRUMS, INVALID = range(5)
  TYPE_NAMES = {MEL: 'melody', BASS: 'bass', DRUMS: 'drums'}

  def __init__(self, slice_bars=None, gap_bars=2, max_bars=1024, **kwargs):
    super().__init__(slice_bars=slice_bars, **kwargs)
    inner = dict(steps_per_quarter=self.steps_per_quarter,
                 quarters_per_bar=self.steps_per_bar // self.steps_per_quarter,
                 gap_bars=None, pad_to_total_time=True, presplit_on_time_changes=False,
                 max_tensors_per_notesequence=None)
    self.melody_converter = MelodyConverter(**inner)
    self.drums_converter = DrumsConverter(**inner)
    self.gap_bars = gap_bars
    self.max_bars = max_bars
    self.split_depths = (self.melody_converter.output_depth,
                         self.melody_converter.output_depth,
                         self.drums_converter.output_depth)
    self.input_depth = self.output_depth = sum(self.split_depths)
    self._program_map = {p: self.MEL for p in MEL_PROGRAMS}
    self._program_map.update({p: self.BASS for p in BASS_PROGRAMS})

  def _to_tensors_fn(self, note_sequence, skipped):
    quantized = self._quantize(note_sequence, skipped)
    if quantized is None:
      return ConverterTensors()
    steps_per_bar = self.steps_per_bar
    total_bars = int(np.ceil(quantized.total_quantized_steps / steps_per_bar))
    total_bars = min(total_bars, self.max_bars)

    # Type every instrument and the bars it covers.
    instrument_type = np.zeros(MAX_INSTRUMENT_NUMBER + 1, np.uint8)
    coverage = np.zeros((total_bars, MAX_INSTRUMENT_NUMBER + 1), bool)
    for note in quantized.notes:
      i = note.instrument
      if i > MAX_INSTRUMENT_NUMBER:
        continue
      inferred = self.DRUMS if note.is_drum else self._program_map.get(note.program, self.INVALID)
      if not instrument_type[i]:
        instrument_type[i] = inferred
      elif instrument_type[i] != inferred:
        instrument_type[i] = self.INVALID
      start_bar = note.quantized_start_step // steps_per_bar
      end_bar = int(np.ceil(note.quantized_end_step / steps_per_bar))
      if start_bar >= total_bars:
        continue
      coverage[start_bar:min(end_bar, total_bars), i] = True

    by_type = collections.defaultdict(list)
    for i, kind in enumerate(instrument_type):
      if kind not in (self.UNK, self.INVALID):
        by_type[kind].append(i)
    if len(by_type) < 3:
      missing = [name for kind, name in self.TYPE_NAMES.items() if kind not in by_type]
      skipped.append('no %s instrument (a trio needs melody programs 0..31, bass '
                     '32..39 and drums)' % ' or '.join(missing))
      return ConverterTensors()

    # Encode each instrument over the piece's whole bars, as the original does: its total
    # time becomes total_bars bars at its tempo, so an instrument whose last note ends
    # before that (even mid-bar, at the piece's end) is extended, and note_seq's
    # Melody.set_length ends that note with a note-off at its end step.
    qpm = note_sequence.tempos[0].qpm if note_sequence.tempos else \
        note_seq.DEFAULT_QUARTERS_PER_MINUTE
    note_sequence.total_time = total_bars * steps_per_bar * 60.0 / qpm / self.steps_per_quarter
    encoded = {}
    for kind, converter in ((self.MEL, self.melody_converter),
                            (self.BASS, self.melody_converter),
                            (self.DRUMS, self.drums_converter)):
      for i in by_type[kind]:
        tensors = converter.to_tensors(extract_instrument(note_sequence, i))
        if tensors.outputs:
          encoded[i] = _pad_with_rests(tensors.outputs[0], total_bars * steps_per_bar)
        else:
          coverage[:, i] = False

    # Fill coverage gaps of up to gap_bars.
    gap = self.gap_bars
    original = coverage.copy()
    for j in range(total_bars):
      coverage[j] = np.any(original[max(0, j - gap):min(total_bars, j + gap) + 1], axis=0)

    seqs = []
    for group in itertools.product(by_type[self.MEL], by_type[self.BASS], by_type[self.DRUMS]):
      group_coverage = np.all(coverage[:, group], axis=1)
      # Near either end, one instrument playing is enough (lenient re-slicing).
      group_coverage[:gap] = np.any(coverage[:gap, group])
      group_coverage[-gap:] = np.any(coverage[-gap:, group])
      if not all(i in encoded for i in group):
        continue
      for j in range(total_bars - self.slice_bars + 1):
        if np.all(group_coverage[j:j + self.slice_bars]):
          start, end = j * steps_per_bar, (j + self.slice_bars) * steps_per_bar
          seqs.append(np.concatenate([encoded[i][start:end] for i in group], axis=-1))
    if not seqs:
      skipped.append('too short: melody, bass and drums never play together for %d bars '
                     '(gaps of up to %d bars are filled; piece is %d bars)' % (
                         self.slice_bars, gap, total_bars))
    return ConverterTensors(inputs=seqs, outputs=seqs)

  def from_tensors(self, samples, controls=None):
    bounds = np.cumsum(self.split_depths)
    sequences = []
    for sample in samples:
      sample = np.asarray(sample)
      melody = self.melody_converter.from_tensors([sample[:, :bounds[0]]])[0]
      bass = self.melody_converter.from_tensors([sample[:, bounds[0]:bounds[1]]])[0]
      for note in bass.notes:
        note.instrument = 1
        note.program = OUTPUT_BASS_PROGRAM
      drums = self.drums_converter.from_tensors([sample[:, bounds[1]:]])[0]
      for note in drums.notes:
        note.instrument = 9
      melody.notes.extend(bass.notes)
      melody.notes.extend(drums.notes)
      melody.total_time = max(melody.total_time, bass.total_time, drums.total_time)
      sequences.append(melody)
    return sequences
