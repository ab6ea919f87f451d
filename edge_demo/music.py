"""Tokens <-> notes <-> MIDI files, with numpy and mido only.

* Decoded tokens -> notes: `notes_from_indices(indices, rep)` (melody class 0 =
  no event, 1 = note off, k >= 2 = pitch min_pitch + k - 2, a note lasting
  until the next onset or note off; drums one step per hit, the first pitch of
  each drum class; trio bass on its own program). These are the notes the
  converters' `from_tensors` write; mvae_tf.generation.render uses these same functions.
* Notes -> a MIDI file: `write_midi` (melody on channel 1 with its program,
  bass on channel 2, drums on channel 10; a tempo and a 4/4 time signature;
  written atomically).
* A MIDI file -> notes: `read_midi` (times in seconds, as pretty_midi reads
  them, which is what mvae_tf reads through note_seq).
* A MIDI file -> encoder inputs: `windows(score, rep, bar=None)`, the window
  of a file that `mvae generate` would encode (the first usable one, or the one
  starting at bar N), and `converter_windows(score, rep)`, the windows
  mvae_tf's converters give in eval mode. Both follow the converters and
  note_seq's extraction rules step for step (tests/test_edge_parity.py checks
  them against mvae_tf on the reference MIDI files); see `windows` for what
  they do and do not do.

`rep` is the `representation` block of an exported model's metadata
(edge_demo.metadata), or the `data` block of a model's config.json.
"""

import bisect
import collections
import os
import tempfile

import numpy as np

from edge_demo.errors import EdgeError

# Start and end in steps.
Note = collections.namedtuple('Note', ['pitch', 'start', 'end', 'is_drum', 'program',
                                       'instrument'])

# A note read from a MIDI file: times in seconds; `instrument` numbers the
# (track, channel, program) groups in the order pretty_midi makes them.
MidiNote = collections.namedtuple('MidiNote', ['pitch', 'start', 'end', 'program', 'is_drum',
                                               'channel', 'velocity', 'instrument'])

# A MIDI file: notes, tempos [(seconds, qpm)], time signatures [(seconds, numerator,
# denominator)], ticks per beat, total time (the last note's end), path.
Score = collections.namedtuple('Score', ['notes', 'tempos', 'time_signatures', 'ticks_per_beat',
                                         'total_time', 'path'])

# The window of a MIDI file to encode (`windows`): inputs [T, input_depth] float32 and
# length, or None and `reason`; first_bar..last_bar of total_bars (counted from 1),
# usable_bars (where usable windows start), renotated (2/4 read as 4/4).
Window = collections.namedtuple('Window', ['inputs', 'length', 'first_bar', 'last_bar',
                                           'total_bars', 'usable_bars', 'reason', 'renotated'])

# The nine drum classes of mvae_tf.data.converters (the reference's) and the MIDI
# pitches mapped to each; the first pitch of a class is the one written back.
# General MIDI soundfonts where distributions install them (fluidsynth needs one).
SOUNDFONTS = (
    '/usr/share/sounds/sf2/FluidR3_GM.sf2',
    '/usr/share/sounds/sf2/default-GM.sf2',
    '/usr/share/sounds/sf3/default-GM.sf3',
    '/usr/share/sounds/sf3/FluidR3_GM.sf3',
    '/usr/share/soundfonts/default.sf2',
    '/usr/share/soundfonts/FluidR3_GM.sf2',
    '/usr/local/share/soundfonts/default.sf2',
    '/opt/homebrew/share/soundfonts/default.sf2',
)

def find_soundfont(explicit=None):
  """A General MIDI soundfont: `explicit`, else $MVAE_SOUNDFONT (either must exist:
  FileNotFoundError naming it), else the first of SOUNDFONTS installed, else None."""
  for path in (explicit, os.environ.get('MVAE_SOUNDFONT')):
    if path:
      if not os.path.isfile(path):
        raise FileNotFoundError(2, 'no soundfont', path)
      return path
  return next((p for p in SOUNDFONTS if os.path.isfile(p)), None)


DRUM_PITCH_CLASSES = (
    (36, 35),  # kick
    (38, 27, 28, 31, 32, 33, 34, 37, 39, 40, 56, 65, 66, 75, 85),  # snare
    (42, 44, 54, 68, 69, 70, 71, 73, 78, 80, 22),  # closed hi-hat
    (46, 67, 72, 74, 79, 81, 26),  # open hi-hat
    (45, 29, 41, 43, 61, 64, 84),  # low tom
    (48, 47, 60, 63, 77, 86, 87),  # mid tom
    (50, 30, 62, 76, 83),  # high tom
    (49, 52, 55, 57, 58),  # crash
    (51, 53, 59, 82),  # ride
)
# Melody programs the 2-bar melody configs read (mvae_tf.configs.MEL_PROGRAMS); the
# 16-bar ones read every program. The exported metadata does not say (yet).
MEL_PROGRAMS = tuple(range(0, 32))
DEFAULT_BASS_PROGRAM = 33  # trio bass: electric bass (finger)
DRUM_CHANNEL = 9  # MIDI channel 10
TICKS_PER_BEAT = 480
# The converters' settings for melodies and drums (mvae_tf.configs _melody / _drums):
GAP_BARS = 1.0  # a melody or drum track ends after a bar of silence
MAX_BARS = 100  # and is cut after 100 bars
MAX_TICK = 1e7  # pretty_midi's limit: a larger tick is a corrupt file
# mvae_tf's limits on an input (mvae_tf.data.sources), and one on the steps it quantizes to.
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_NOTES = 500000
MAX_SECONDS = 4 * 3600.0
MAX_STEPS = 1000000

# note_seq's melody events.
NO_EVENT, NOTE_OFF = -2, -1


# --- Tokens -> notes. ---

def melody_notes(classes, min_pitch=21, num_special_events=2, program=0, instrument=0):
  """Notes of one melody part: class indices [T]."""
  notes, current = [], None
  for t, c in enumerate(np.asarray(classes).tolist()):
    if c == 0 or (c < num_special_events and current is None):
      continue
    if current is not None:
      notes.append(Note(current[0], current[1], t, False, program, instrument))
      current = None
    if c >= num_special_events:
      current = (min_pitch + c - num_special_events, t)
  if current is not None:
    notes.append(Note(current[0], current[1], len(classes), False, program, instrument))
  return notes


def drum_notes(labels, drum_pitches):
  """Notes of one drum part: 512-way labels [T] (bit k = drum class k)."""
  notes = []
  for t, label in enumerate(np.asarray(labels).tolist()):
    for k, pitch in enumerate(drum_pitches):
      if label >> k & 1:
        notes.append(Note(pitch, t, t + 1, True, 0, 9))
  return notes


def data_from_representation(rep):
  """The decoding dict notes_from_indices reads (a config.json `data` block) of an
  exported model's `representation`; a `data` dict is returned as it is."""
  if 'classes' not in rep and 'part_offsets' not in rep:
    return rep
  data = dict(kind=rep['kind'], steps_per_quarter=rep.get('steps_per_quarter', 4),
              steps_per_bar=rep.get('steps_per_bar', 16), velocity=rep.get('velocity', 80),
              slice_steps=rep.get('window_steps'))
  for key in ('min_pitch', 'num_special_events', 'drum_pitches'):
    if key in rep:
      data[key] = rep[key]
  if rep['kind'] == 'trio':
    data['bass_program'] = int((rep.get('programs') or {}).get('bass', DEFAULT_BASS_PROGRAM))
  return data


def notes_from_indices(indices, data):
  """Notes of one decoded sequence: class indices [T, P] (or [T]).

  `data`: a model's decoding dict (config.json `data`: kind, min_pitch,
  num_special_events, drum_pitches, bass_program) or an exported model's
  `representation`.
  """
  data = data_from_representation(data)
  indices = np.asarray(indices)
  if indices.ndim == 1:
    indices = indices[:, None]
  melody = dict(min_pitch=data.get('min_pitch', 21),
                num_special_events=data.get('num_special_events', 2))
  if data['kind'] == 'melody':
    return melody_notes(indices[:, 0], **melody)
  if data['kind'] == 'drums':
    return drum_notes(indices[:, 0], data['drum_pitches'])
  if data['kind'] == 'trio':
    return (melody_notes(indices[:, 0], **melody)
            + melody_notes(indices[:, 1], program=data.get('bass_program',
                                                           DEFAULT_BASS_PROGRAM),
                           instrument=1, **melody)
            + drum_notes(indices[:, 2], data['drum_pitches']))
  raise ValueError('unknown kind %r' % data['kind'])


# --- Notes -> MIDI. ---

def _channel(instrument, is_drum):
  if is_drum:
    return DRUM_CHANNEL
  channel = int(instrument)
  if channel >= DRUM_CHANNEL:
    channel += 1
  return min(channel, 15)


def midi_file(notes, qpm=120.0, velocity=80, steps_per_quarter=4, ticks_per_beat=TICKS_PER_BEAT):
  """A mido.MidiFile (type 1) of `notes` (Note, in steps): track 0 holds the tempo and a
  4/4 time signature, then one track per instrument: pitched instruments on channels 1,
  2, .. (MIDI numbering) with a program change, drums on channel 10."""
  import mido
  ticks_per_step = ticks_per_beat / float(steps_per_quarter)
  f = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
  meta = mido.MidiTrack()
  meta.append(mido.MetaMessage('set_tempo', tempo=mido.bpm2tempo(qpm), time=0))
  meta.append(mido.MetaMessage('time_signature', numerator=4, denominator=4, time=0))
  f.tracks.append(meta)
  parts = collections.OrderedDict()
  for n in sorted(notes, key=lambda n: (n.instrument, n.program, n.is_drum)):
    parts.setdefault((n.instrument, n.program, n.is_drum), []).append(n)
  for (instrument, program, is_drum), part in parts.items():
    channel = _channel(instrument, is_drum)
    track = mido.MidiTrack()
    if not is_drum:
      track.append(mido.Message('program_change', channel=channel, program=int(program), time=0))
    events = []
    for n in part:
      on, off = int(round(n.start * ticks_per_step)), int(round(n.end * ticks_per_step))
      events.append((on, 1, int(n.pitch)))
      events.append((max(off, on + 1), 0, int(n.pitch)))
    now = 0
    for tick, is_on, pitch in sorted(events):  # offs before ons at the same tick
      track.append(mido.Message('note_on' if is_on else 'note_off', channel=channel,
                                note=pitch, velocity=int(velocity) if is_on else 0,
                                time=tick - now))
      now = tick
    f.tracks.append(track)
  return f


def atomic_write(path, write):
  """Calls write(temporary path) in the directory of `path`, then renames it to `path`;
  an OSError (a missing or unwritable directory, a full disk) is an EdgeError."""
  path = os.fspath(path)
  folder = os.path.dirname(os.path.abspath(path))
  tmp = None
  try:
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.tmp',
                               dir=folder)
    os.close(fd)
    write(tmp)
    os.replace(tmp, path)
    tmp = None
  except OSError as e:
    raise EdgeError('cannot write %s: %s' % (path, e.strerror or e)) from None
  finally:
    if tmp is not None:
      try:
        os.unlink(tmp)
      except OSError:
        pass


def write_midi(notes, path, qpm=120.0, velocity=80, steps_per_quarter=4,
               ticks_per_beat=TICKS_PER_BEAT):
  """Writes `notes` (Note, in steps) to a MIDI file at `path`, atomically (see midi_file)."""
  f = midi_file(notes, qpm, velocity, steps_per_quarter, ticks_per_beat)
  atomic_write(path, f.save)
  return path


# --- MIDI -> notes. ---

def read_midi(path):
  """A Score of a MIDI file, read as pretty_midi reads it (and so mvae_tf, through
  note_seq): tempos and time signatures from the first track, times in seconds from its
  tempo map, one instrument per (track, channel, program), a note off closing every open
  note of its pitch. Raises EdgeError (naming the file) when it is missing or is not a
  MIDI file."""
  import mido
  path = os.fspath(path)
  if os.path.isdir(path):
    raise EdgeError('%s is a directory; give a MIDI file' % path)
  if not os.path.exists(path):
    raise EdgeError('%s: no such file' % path)
  if os.path.isfile(path) and not os.path.getsize(path):
    raise EdgeError('%s is empty, not a MIDI file' % path)
  if os.path.isfile(path) and os.path.getsize(path) > MAX_FILE_BYTES:
    raise EdgeError('%s is %.1f MB, more than the %d MB a MIDI input may be: cut a shorter '
                    'excerpt (the model reads one window of it)' % (
                        path, os.path.getsize(path) / 2.0 ** 20, MAX_FILE_BYTES // 2 ** 20))
  try:
    midi = mido.MidiFile(path, charset='latin1')
  except OSError as e:
    if e.errno is not None:
      raise EdgeError('%s: cannot read it (%s)' % (path, e.strerror or e)) from None
    raise EdgeError('%s is not a MIDI file, or it is damaged (%s)' % (path, e)) from None
  except Exception as e:  # whatever mido's parser trips on (EOFError, ValueError, ..)
    raise EdgeError('%s is not a MIDI file, or it is damaged (%s)' % (
        path, _one_line(e) or type(e).__name__)) from None
  if not midi.tracks:
    raise EdgeError('%s is a MIDI file without tracks' % path)
  return _score(midi, path)


def _one_line(error):
  return ' '.join(str(error).split())[:200]


def _absolute(track):
  tick = 0
  for event in track:
    tick += event.time
    yield tick, event


def _score(midi, path):
  resolution = midi.ticks_per_beat
  if not resolution or resolution <= 0:
    raise EdgeError('%s: bad MIDI header (%s ticks per beat)' % (path, resolution))
  tracks = [list(_absolute(t)) for t in midi.tracks]
  max_tick = max([max([tick for tick, _ in t], default=0) for t in tracks]) + 1
  if max_tick > MAX_TICK:
    raise EdgeError('%s: its largest tick is %d: the file is probably damaged' % (
        path, max_tick))
  # Tempo map (pretty_midi's _load_tempo_changes and _update_tick_to_time, the same
  # float operations, so that times round to the same steps).
  scales = [(0, 60.0 / (120.0 * resolution))]
  for tick, event in tracks[0]:
    if event.type == 'set_tempo':
      if event.tempo <= 0:
        raise EdgeError('%s: a tempo of %d microseconds a beat: the file is damaged' % (
            path, event.tempo))
      scale = 60.0 / ((6e7 / event.tempo) * resolution)
      if tick == 0:
        scales = [(0, scale)]
      elif scale != scales[-1][1]:
        scales.append((tick, scale))
  starts, bases = [], []
  last_end = 0.0
  for (start, scale), (end, _) in zip(scales[:-1], scales[1:]):
    starts.append(start)
    bases.append((last_end, scale))
    last_end = last_end + scale * (end - start)
  starts.append(scales[-1][0])
  bases.append((last_end, scales[-1][1]))

  def seconds(tick):
    i = bisect.bisect_right(starts, tick) - 1
    base, scale = bases[i]
    return base + scale * (tick - starts[i])

  tempos = [(seconds(tick), 60.0 / (scale * resolution)) for tick, scale in scales]
  signatures = [(seconds(tick), int(e.numerator), int(e.denominator))
                for tick, e in tracks[0] if e.type == 'time_signature']
  for _, numerator, denominator in signatures:
    if denominator > 64:
      raise EdgeError('%s: time signature %d/%d: the file is damaged' % (
          path, numerator, denominator))

  instruments = collections.OrderedDict()  # (program, channel, track) -> notes
  for index, track in enumerate(tracks):
    open_notes = collections.defaultdict(list)
    programs = [0] * 16
    for tick, event in track:
      kind = event.type
      if kind == 'program_change':
        programs[event.channel] = event.program
      elif kind == 'note_on' and event.velocity > 0:
        open_notes[(event.channel, event.note)].append((tick, event.velocity))
      elif kind == 'note_off' or (kind == 'note_on' and event.velocity == 0):
        key = (event.channel, event.note)
        if key not in open_notes:
          continue
        close = [(s, v) for s, v in open_notes[key] if s != tick]
        keep = [(s, v) for s, v in open_notes[key] if s == tick]
        for start, velocity in close:
          program = programs[event.channel]
          part = instruments.setdefault((program, event.channel, index), [])
          part.append((event.note, seconds(start), seconds(tick), program,
                       event.channel == DRUM_CHANNEL, event.channel, velocity))
        if close and keep:
          open_notes[key] = keep
        else:
          del open_notes[key]
  notes = [MidiNote(*n, instrument=i) for i, part in enumerate(instruments.values())
           for n in part]
  total = max([n.end for n in notes], default=0.0)
  if len(notes) > MAX_NOTES or total > MAX_SECONDS:
    raise EdgeError('%s holds %d notes over %.0f s, more than the %d notes or %.0f s an input '
                    'may have: cut a shorter excerpt (the model reads one window of it)' % (
                        path, len(notes), total, MAX_NOTES, MAX_SECONDS))
  return Score(notes, tempos, signatures, resolution, total, path)


# --- MIDI -> encoder inputs. ---

class _Spec:
  """What the converter of a model's representation reads."""

  def __init__(self, rep, input_depth=None):
    rep = dict(rep)
    self.kind = rep['kind']
    if self.kind == 'trio':
      raise EdgeError('MIDI input for trio models is not supported yet (melody and drums '
                      'models only)')
    if self.kind not in ('melody', 'drums'):
      raise EdgeError('unknown model kind %r' % (self.kind,))
    self.steps_per_quarter = int(rep.get('steps_per_quarter', 4))
    self.steps_per_bar = int(rep.get('steps_per_bar', 4 * self.steps_per_quarter))
    self.window_steps = int(rep.get('window_steps') or rep.get('slice_steps') or
                            2 * self.steps_per_bar)
    self.slice_bars = self.window_steps // self.steps_per_bar
    classes = list(rep.get('classes') or [])
    if self.kind == 'melody':
      self.min_pitch = int(rep.get('min_pitch', 21))
      self.num_special_events = int(rep.get('num_special_events', 2))
      depth = classes[0] if classes else 90
      self.max_pitch = self.min_pitch + depth - self.num_special_events - 1
      programs = rep.get('valid_programs', MEL_PROGRAMS if self.slice_bars == 2 else None)
      self.valid_programs = None if programs is None else frozenset(programs)
      self.input_depth = int(input_depth or depth)
      if self.input_depth != depth:
        raise EdgeError('a melody model with %d input classes and %d output classes: not '
                        'supported' % (self.input_depth, depth))
    else:
      pitches = [int(p) for p in rep.get('drum_pitches') or [c[0] for c in DRUM_PITCH_CLASSES]]
      if pitches == [c[0] for c in DRUM_PITCH_CLASSES]:
        classes_ = DRUM_PITCH_CLASSES
      else:  # another drum map: only the written-back pitches are known
        classes_ = tuple((p,) for p in pitches)
      self.pitch_class_map = {p: i for i, group in enumerate(classes_) for p in group}
      self.num_classes = len(classes_)
      self.input_depth = int(input_depth or self.num_classes + 1)
      if self.input_depth == self.num_classes + 1:
        self.roll_input = True
      elif self.input_depth == 2 ** self.num_classes:
        self.roll_input = False
      else:
        raise EdgeError('a drums model with input depth %d: neither the %d-class roll plus '
                        'a no-hit bit nor the %d-way one-hot' % (
                            self.input_depth, self.num_classes, 2 ** self.num_classes))

  def inputs(self, events):
    """[T, input_depth] float32 encoder inputs of a window's events."""
    steps = len(events)
    x = np.zeros((steps, self.input_depth), np.float32)
    if self.kind == 'melody':
      for t, e in enumerate(events):
        x[t, e + self.num_special_events if e < 0 else
          e - self.min_pitch + self.num_special_events] = 1
    elif self.roll_input:
      for t, classes in enumerate(events):
        if classes:
          x[t, sorted(classes)] = 1
        else:
          x[t, self.num_classes] = 1
    else:
      for t, classes in enumerate(events):
        x[t, sum(2 ** c for c in set(classes))] = 1
    return x


# A piece: the notes between two changes of tempo or metre (times from its start), its
# tempo and metre (as note_seq.split_note_sequence_on_time_changes cuts a sequence).
_Piece = collections.namedtuple('_Piece', ['notes', 'qpm', 'numerator', 'denominator',
                                           'total_time'])
# A note on the grid of steps.
_QNote = collections.namedtuple('_QNote', ['start', 'end', 'pitch', 'velocity', 'program',
                                           'is_drum', 'instrument'])


def _time_signatures(score, renotate):
  sigs = list(score.time_signatures)
  if renotate:
    sigs = [(t, 4, 4) if (n, d) == (2, 4) else (t, n, d) for t, n, d in sigs]
  return sigs, renotate and any((n, d) == (2, 4) for _, n, d in score.time_signatures)


def _pieces(score, renotate=True):
  """([_Piece], renotated): the pieces note_seq's split_note_sequence_on_time_changes
  makes of the score (2/4 read as 4/4 first when renotate, as mvae generate does)."""
  sigs, renotated = _time_signatures(score, renotate)
  total = score.total_time
  if not score.notes or not total:
    return [], renotated
  changes = sorted([('ts', t, (n, d)) for t, n, d in sigs] +
                   [('tempo', t, q) for t, q in score.tempos], key=lambda c: c[1])
  changes = [c for c in changes if c[1] < total]
  metre, qpm = (4, 4), 120.0
  splits = [0.0]
  for kind, time, value in changes:
    if kind == 'ts':
      if value == metre:
        continue
    elif value == qpm:
      continue
    if time > splits[-1]:
      splits.append(time)
    if kind == 'ts':
      metre = value
    else:
      qpm = value
  if total > splits[-1]:
    splits.append(total)
  pieces = []
  ordered = sorted(score.notes, key=lambda n: n.start)
  for k, (a, b) in enumerate(zip(splits[:-1], splits[1:])):
    # The tempo and metre in force at a piece's start: the last change at or before it.
    qpm = ([q for t, q in score.tempos if t <= a] or [120.0])[-1]
    num, den = ([(n, d) for t, n, d in sigs if t <= a] or [(4, 4)])[-1]
    notes = [n._replace(start=n.start - a, end=min(n.end, b) - a) for n in ordered
             if a <= n.start < b]
    pieces.append(_Piece(notes, qpm, num, den, max([n.end for n in notes], default=0.0)))
  return pieces, renotated


def _quantize_step(seconds, steps_per_second):
  return int(seconds * steps_per_second + 0.5)


def _metre(piece):
  return '%d/%d' % (piece.numerator, piece.denominator)


def _quantize(piece, spec):
  """(notes on the grid, total steps, steps per bar (float)) of a piece; steps per bar
  None when its metre cannot be quantized."""
  num, den = piece.numerator, piece.denominator
  if num <= 0 or den <= 0 or den & (den - 1):
    bar_steps = None
  else:
    bar_steps = spec.steps_per_quarter * (4.0 / den * num)
  sps = spec.steps_per_quarter * piece.qpm / 60.0
  notes = []
  total = _quantize_step(piece.total_time, sps)
  if total > MAX_STEPS:
    raise EdgeError('%.0f s at %g quarters a minute is %d steps, more than the %d an input may '
                    'have: cut a shorter excerpt (or is its tempo wrong?)' % (
                        piece.total_time, piece.qpm, total, MAX_STEPS))
  for n in piece.notes:
    start, end = _quantize_step(n.start, sps), _quantize_step(n.end, sps)
    if end == start:
      end += 1
    total = max(total, end)
    notes.append(_QNote(start, end, n.pitch, n.velocity, n.program, n.is_drum, n.instrument))
  return notes, total, bar_steps


class _Events(list):
  """A note_seq event sequence (Melody or DrumTrack) as a list, with its start step."""
  start_step = 0
  end_step = 0


def _set_length(events, steps, pad):
  if steps > len(events):
    events.extend([pad] * (steps - len(events)))
  else:
    del events[steps:]


def _set_melody_length(melody, steps):
  """Melody.set_length: lengthening ends a note still sounding at the old end."""
  old = len(melody)
  _set_length(melody, steps, NO_EVENT)
  if steps > old:
    for i in reversed(range(old)):
      if melody[i] == NOTE_OFF:
        break
      if melody[i] != NO_EVENT:
        melody[old] = NOTE_OFF
        break


class _Polyphonic(Exception):
  pass


def _extract_melody(notes, instrument, search_start, steps_per_bar, gap_bars):
  """note_seq's Melody.from_quantized_sequence (ignore_polyphonic_notes: the highest
  onset of a step wins; pad_end; drums and zero-velocity notes ignored)."""
  melody = _Events()
  chosen = sorted([n for n in notes if n.instrument == instrument and n.start >= search_start],
                  key=lambda n: (n.start, -n.pitch))
  if not chosen:
    return melody
  start_step = chosen[0].start - (chosen[0].start - search_start) % steps_per_bar
  for n in chosen:
    if n.is_drum or not n.velocity:
      continue
    on, off = n.start - start_step, n.end - start_step
    if melody:
      last_on, last_off = None, len(melody)
      for i in range(len(melody) - 1, -1, -1):
        if melody[i] == NOTE_OFF:
          last_off = i
        if melody[i] >= 0:
          last_on = i
          break
      if on == last_on:
        continue  # a lower note starting with a higher one
      if on < last_on:
        raise _Polyphonic()
      if on - last_off >= gap_bars * steps_per_bar:
        break
    # Melody._add_note
    _set_melody_length(melody, off + 1)
    melody[on] = n.pitch
    melody[off] = NOTE_OFF
    for i in range(on + 1, off):
      melody[i] = NO_EVENT
  if not melody:
    return melody
  melody.start_step = start_step
  if melody[-1] == NOTE_OFF:
    del melody[-1]
  _set_melody_length(melody, len(melody) + (-len(melody) % steps_per_bar))
  melody.end_step = start_step + len(melody)
  return melody


def _extract_drum_track(notes, search_start, steps_per_bar, gap_bars):
  """note_seq's DrumTrack.from_quantized_sequence (pad_end; notes' pitches are classes)."""
  track = _Events()
  groups = collections.defaultdict(list)
  for n in notes:
    if n.is_drum and n.velocity and n.start >= search_start:
      groups[n.start].append(n)
  if not groups:
    return track
  steps = sorted(groups)
  start_step = steps[0] - (steps[0] - search_start) % steps_per_bar
  gap_start = 0
  for step in steps:
    index = step - start_step
    if track and index - gap_start >= gap_bars * steps_per_bar:
      break
    _set_length(track, index + 1, frozenset())
    track[index] = frozenset(n.pitch for n in groups[step])
    gap_start = index + 1
  track.start_step = start_step
  _set_length(track, len(track) + (-len(track) % steps_per_bar), frozenset())
  track.end_step = start_step + len(track)
  return track


def _truncate(events, max_steps, steps_per_bar, pad):
  if max_steps is not None and len(events) > max_steps:
    _set_length(events, max_steps - max_steps % steps_per_bar, pad)


def _melodies(notes, steps_per_bar, spec, stats):
  """mvae_tf.data.extract.extract_melodies (min_bars 1, one bar gap, 100 bars at most)."""
  melodies = []
  for instrument in set(n.instrument for n in notes):  # the order the reference uses
    start = 0
    while True:
      try:
        melody = _extract_melody(notes, instrument, start, steps_per_bar, GAP_BARS)
      except _Polyphonic:
        stats['polyphonic_tracks_discarded'] += 1
        break
      start = melody.end_step + (0 - melody.end_step) % steps_per_bar
      if not melody:
        break
      if len(melody) < steps_per_bar:
        stats['melodies_discarded_too_short'] += 1
        continue
      _truncate(melody, MAX_BARS * spec.steps_per_bar, steps_per_bar, NO_EVENT)
      if not any(e >= 0 for e in melody):
        continue
      melodies.append(melody)
  return melodies


def _drum_tracks(notes, steps_per_bar, spec):
  """mvae_tf.data.extract.extract_drum_tracks (min_bars 1, one bar gap, 100 bars)."""
  tracks, start = [], 0
  while True:
    track = _extract_drum_track(notes, start, steps_per_bar, GAP_BARS)
    start = track.end_step + (0 - track.end_step) % steps_per_bar
    if not track:
      break
    if len(track) < steps_per_bar:
      continue
    _truncate(track, MAX_BARS * spec.steps_per_bar, steps_per_bar, frozenset())
    tracks.append(track)
  return tracks


def _slice(event_lists, spec):
  """Windows of window_steps sliding by a bar. A melody's window is a new Melody, whose
  note offs before its first note become no events (note_seq's Melody does that)."""
  size = spec.window_steps
  out = []
  for events in event_lists:
    for i in range(size, len(events) + 1, spec.steps_per_bar):
      window = list(events[i - size:i])
      if spec.kind == 'melody':
        for t, e in enumerate(window):
          if e >= 0:
            break
          window[t] = NO_EVENT
      out.append(window)
  return out


def _first(items, limit=5):
  """The converters' eval-mode cap: the first `limit` windows."""
  return list(items[:limit])


def _convert(notes, total_steps, bar_steps, metre, spec, reasons):
  """The windows (event lists) mvae_tf's converter `_to_tensors_fn` finds in one piece:
  notes on the grid (of one tempo and metre), its total steps and steps per bar."""
  if spec.kind == 'melody':
    pitched = [n for n in notes if not n.is_drum]
    kept = [n for n in notes if (spec.valid_programs is None or
                                 n.program in spec.valid_programs)
            and spec.min_pitch <= n.pitch <= spec.max_pitch]
    if notes and not pitched:
      reasons.append('no pitched notes (drums only)')
      return []
    if notes and not kept:
      if not [n for n in pitched if spec.valid_programs is None
              or n.program in spec.valid_programs]:
        reasons.append('no melody instrument (programs %s found, %d..%d used)' % (
            sorted({n.program for n in pitched}), min(spec.valid_programs),
            max(spec.valid_programs)))
      else:
        reasons.append('all notes out of the pitch range %d..%d' % (
            spec.min_pitch, spec.max_pitch))
    notes = kept
  if bar_steps is None:
    reasons.append('cannot quantize (time signature %s)' % metre)
    return []
  if bar_steps != spec.steps_per_bar:
    reasons.append('metre %s is not %d steps per bar (only 4/4 and 2/2 are used)' % (
        metre, spec.steps_per_bar))
    return []
  steps_per_bar = int(bar_steps)
  if spec.kind == 'melody':
    stats = collections.Counter()
    melodies = _melodies(notes, steps_per_bar, spec, stats)
    windows = [tuple((e,) for e in w) for w in _slice(melodies, spec)]
    windows = [w for w in _first(list(set(windows))) if w]
    if not windows:
      if not notes:
        reasons.append('no notes left after filtering programs and pitch range')
      elif stats.get('melodies_discarded_too_short', 0) == 0:
        reasons.append('too short: no melody of %d bars (this part is %.1f bars; a melody '
                       'ends after %g bar of silence)' % (
                           spec.slice_bars, total_steps / spec.steps_per_bar, GAP_BARS))
      else:
        reasons.append('too short: no melody of %d bars or more (this part is %.1f bars)' % (
            spec.slice_bars, total_steps / spec.steps_per_bar))
      return []
    return [[step[0] for step in w] for w in windows]
  drums = [n for n in notes if n.is_drum]
  mapped = [n._replace(pitch=spec.pitch_class_map[n.pitch]) for n in drums
            if n.pitch in spec.pitch_class_map]
  tracks = _drum_tracks(mapped, steps_per_bar, spec)
  unique = _first(list(set(tuple(w) for w in _slice(tracks, spec))))
  if not unique:
    if not drums:
      reasons.append('no drum notes (no drum track on channel 10)')
    elif not mapped:
      reasons.append('no drum note on a mapped drum pitch')
    else:
      reasons.append('too short: no drum track of %d bars (this part is %.1f bars; a track '
                     'ends after %g bar of silence)' % (
                         spec.slice_bars, total_steps / spec.steps_per_bar, GAP_BARS))
    return []
  return [list(w) for w in unique]


def converter_windows(score, rep, input_depth=None, renotate=False):
  """(inputs [[T, input_depth] float32], reasons): the windows mvae_tf's converter gives
  for the whole file in eval mode, in its order (`make_converter('eval').to_tensors`):
  every window of every melody (or drum track) sliding by a bar, de-duplicated, at most
  5. renotate: read 2/4 as 4/4 first (the converter alone does not; mvae generate does)."""
  return _converter_windows(score, _Spec(rep, input_depth), renotate)


def _converter_windows(score, spec, renotate):
  pieces, _ = _pieces(score, renotate)
  windows, reasons = [], []
  for piece in pieces:
    notes, total, bar_steps = _quantize(piece, spec)
    windows.extend(_first(_convert(notes, total, bar_steps, _metre(piece), spec, reasons)))
  if not pieces:
    reasons.append('no notes')
  return [spec.inputs(w) for w in _first(windows)], list(dict.fromkeys(reasons))


def _bar_pieces(score, spec, renotate):
  """([_BarPiece], renotated), bars counted as mvae_tf's TrainedModel._bar_pieces counts
  them (from 1, continuing across pieces; a piece that cannot be quantized is counted
  in its own metre)."""
  pieces, renotated = _pieces(score, renotate)
  out, offset = [], 0
  for piece in pieces:
    notes, total, bar_steps = _quantize(piece, spec)
    if bar_steps is None:
      count_steps = spec.steps_per_quarter * (4.0 * piece.numerator / piece.denominator
                                              if piece.denominator else 4.0)
      steps = piece.total_time * (piece.qpm / 60.0 * spec.steps_per_quarter)
    else:
      count_steps, steps = bar_steps, total
    bars = max(0, int(np.ceil(steps / count_steps - 1e-6))) if count_steps else 0
    out.append(_BarPiece(notes, [n.start for n in notes], bar_steps, count_steps, offset, bars,
                         _metre(piece)))
    offset += bars
  return out, renotated


# A piece of a file on the grid: its notes (in order of their starts) and their starts,
# steps per bar (None: its metre cannot be quantized) and as bars are counted, the bars
# before it, its bars, its metre.
_BarPiece = collections.namedtuple('_BarPiece', ['notes', 'starts', 'bar_steps', 'count_steps',
                                                 'offset', 'bars', 'metre'])


def bar_windows(score, rep, input_depth=None, renotate=True):
  """One entry per bar where a window can start: (bar, inputs [T, input_depth] or None,
  reasons), in bar order; bars are counted from 1 as mvae generate counts them."""
  spec = _Spec(rep, input_depth)
  pieces, _ = _bar_pieces(score, spec, renotate)
  return [_bar_window(pieces, spec, bar) for bar in _window_starts(pieces, spec)]


def _window_starts(pieces, spec, usable_metre_only=False):
  """The bars where a window can start (only in pieces of the model's metre: the others
  yield none)."""
  return [p.offset + b for p in pieces
          if not usable_metre_only or p.bar_steps == spec.steps_per_bar
          for b in range(1, p.bars - spec.slice_bars + 2)]


def _piece_at(pieces, spec, bar):
  for piece in pieces:
    if piece.offset < bar <= piece.offset + piece.bars - spec.slice_bars + 1:
      return piece
  return None


def _bar_window(pieces, spec, bar):
  """(bar, inputs or None, reasons) of the window starting at `bar` (mvae_tf's
  TrainedModel._bar_window: the bars cut out of their piece, then the converter)."""
  size = spec.slice_bars
  piece = _piece_at(pieces, spec, bar)
  if piece is None:
    return bar, None, ['no window of %d bars starts there' % size]
  if piece.bar_steps != spec.steps_per_bar:  # the converter refuses the metre
    reasons = []
    _convert([], 0, piece.bar_steps, piece.metre, spec, reasons)
    return bar, None, reasons
  start = (bar - 1 - piece.offset) * piece.count_steps
  end = start + size * piece.count_steps
  lo, hi = bisect.bisect_left(piece.starts, start), bisect.bisect_left(piece.starts, end)
  window = [n._replace(start=int(n.start - start), end=int(min(n.end, end) - start))
            for n in piece.notes[lo:hi]]
  total = max([n.end for n in window], default=0)
  reasons = []
  events = _first(_convert(window, total, piece.bar_steps, piece.metre, spec, reasons)) \
      if window else []
  if not window:
    reasons.append('no notes')
  if not events:
    return bar, None, list(dict.fromkeys(reasons)) or ['no window of the required length']
  return bar, spec.inputs(events[0]), []


def format_bars(bars):
  """[1, 2, 3, 5, 8, 9] -> '1-3, 5, 8-9'."""
  runs = []
  for b in bars:
    if runs and b == runs[-1][1] + 1:
      runs[-1][1] = b
    else:
      runs.append([b, b])
  return ', '.join('%d' % a if a == b else '%d-%d' % (a, b) for a, b in runs)


def slerp(a, b, t):
  """Spherical interpolation between vectors a and b at t in [0, 1] (lerp when parallel);
  float64. One copy for edge_demo and mvae_tf (interpolate, the musicbox's walk)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  cos = np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)
  omega = np.arccos(np.clip(cos, -1.0, 1.0))
  if np.sin(omega) < 1e-6:
    return (1 - t) * a + t * b
  return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def windows(score, rep, bar=None, input_depth=None, renotate=True):
  """The window of a MIDI file (Score) to encode, as `mvae generate` chooses it: the
  first usable one, or the one starting at bar `bar` (counted from 1). A Window: its
  inputs [window_steps, input_depth] float32, or None with the reason.

  What it does, as mvae_tf does (tests/test_edge_parity.py compares them):
  * 2/4 is read as 4/4 (two 2/4 bars make a bar); the file is cut into pieces at
    changes of tempo or metre, each quantized at its own tempo to the
    representation's steps per quarter; bars are counted from the start of the
    file, each piece in its own metre, continuing across pieces; only metres of
    steps_per_bar steps (4/4, 2/2) yield windows ("metre 3/4 is not 16 steps per
    bar").
  * A window is the bars [bar, bar + window bars) of one piece, given to the
    converter's rules: melody: notes of programs 0-31 (2-bar models) in the
    pitch range, per instrument (track, channel and program), a monophonic line
    from the first onset, the highest note when several start on the same step
    (a lower note that started earlier is cut by a new onset, as note_seq's
    Melody does), ended by a bar of silence; drums: every drum note (channel 10)
    mapped to the nine drum classes. It is usable when that line fills the window
    (it starts in the window's first bar and has no bar of silence).
  * Encoding: melody one-hot (0 no event, 1 note off, k >= 2 pitch min_pitch + k - 2);
    drums the 9-class roll plus a no-hit bit (input depth 10), or the 512-way one-hot.
  * With no usable bar window, the whole file when the converter finds exactly one
    window in it.
  Not done: trio models (an EdgeError: not supported yet), chord conditioning.
  """
  spec = _Spec(rep, input_depth)
  pieces, renotated = _bar_pieces(score, spec, renotate)
  starts = _window_starts(pieces, spec, usable_metre_only=True)
  total = pieces[-1].offset + pieces[-1].bars if pieces else 0
  size = spec.slice_bars
  found = {}

  def at(b):
    if b not in found:
      found[b] = _bar_window(pieces, spec, b)
    return found[b]

  def result(b, inputs, reason=None, first=None, last=None):
    usable = [s for s in starts if at(s)[1] is not None]
    if inputs is None:
      return Window(None, 0, first, last, total, usable, reason, renotated)
    return Window(inputs, len(inputs), first or b, last or b + size - 1, total, usable, None,
                  renotated)

  if bar is None:
    for b in starts:
      if at(b)[1] is not None:
        return result(b, at(b)[1])
    return _whole(score, spec, renotate, total, result)
  exists = _piece_at(pieces, spec, bar) is not None
  if exists and at(bar)[1] is not None:
    return result(bar, at(bar)[1])
  usable = [s for s in starts if s != bar and at(s)[1] is not None]
  if not usable:
    return _whole(score, spec, renotate, total, result, bar)
  of_four = ' of 4/4' if renotated else ''
  if bar < 1:
    why = 'bars are counted from 1'
  elif not exists:
    why = ('it has %d bars%s, so no %d-bar window starts at bar %d' % (
        total, of_four, size, bar) if bar + size - 1 > total else
        'bars %d-%d cross a change of tempo or metre' % (bar, bar + size - 1))
  else:
    why = 'bars %d-%d yield no %d-bar window (%s)' % (bar, bar + size - 1, size,
                                                       '; '.join(at(bar)[2]))
  return result(bar, None, '%s; usable windows start at bars %s' % (
      why, format_bars(usable)))


def _whole(score, spec, renotate, total, result, bar=None):
  """No usable bar window: the converter's own view of the whole file (mvae_tf's
  TrainedModel._whole_window)."""
  inputs, reasons = _converter_windows(score, spec, renotate)
  if not inputs:
    where = '' if bar is None else 'no window at bar %d: ' % bar
    return result(None, None, where + ('no usable %d-bar window: %s' % (
        spec.slice_bars, '; '.join(reasons) or 'no window of the required length')))
  if len(inputs) > 1:
    return result(None, None, 'the file yields %d windows of %d steps, none of them at a bar '
                  'line; give a MIDI file of exactly one window (%d bars)' % (
                      len(inputs), spec.window_steps, spec.slice_bars))
  return result(1, inputs[0], first=1, last=total)
