import os

DATA = os.path.join(os.path.dirname(__file__), 'data')
REFERENCE = os.path.join(DATA, 'reference')


def make_sequence(notes, qpm=120.0, time_signature=(4, 4), total_time=None):
  """A NoteSequence from (pitch, start, end[, program[, is_drum[, instrument]]]) tuples."""
  from note_seq.protobuf import music_pb2
  ns = music_pb2.NoteSequence()
  ns.ticks_per_quarter = 220
  ns.tempos.add(qpm=qpm)
  ts = ns.time_signatures.add()
  ts.numerator, ts.denominator = time_signature
  for n in notes:
    pitch, start, end = n[:3]
    program = n[3] if len(n) > 3 else 0
    is_drum = n[4] if len(n) > 4 else False
    instrument = n[5] if len(n) > 5 else (9 if is_drum else 0)
    ns.notes.add(pitch=pitch, start_time=start, end_time=end, velocity=100,
                 program=program, is_drum=is_drum, instrument=instrument)
  ns.total_time = total_time if total_time is not None else max(
      [n.end_time for n in ns.notes], default=0.0)
  return ns


def scale_melody(bars=4, start_pitch=60, program=0, qpm=120.0):
  """Eighth notes up and down a scale for `bars` bars (4/4)."""
  step = 60.0 / qpm / 2
  pitches = [start_pitch + p for p in (0, 2, 4, 5, 7, 9, 11, 12)]
  notes = []
  for i in range(bars * 8):
    pitch = pitches[i % 8] if (i // 8) % 2 == 0 else pitches[7 - i % 8]
    notes.append((pitch, i * step, (i + 1) * step, program))
  return make_sequence(notes, qpm=qpm)


def varied_melody(bars=12, qpm=120.0):
  """Quarter notes whose pitches never repeat a bar: every 2-bar window differs."""
  step = 60.0 / qpm
  notes = [(48 + (i * 7) % 29, i * step, (i + 1) * step) for i in range(bars * 4)]
  return make_sequence(notes, qpm=qpm)


def rock_beat(bars=4, qpm=120.0):
  """Kick on 1 and 3, snare on 2 and 4, closed hi-hat on eighths."""
  step = 60.0 / qpm / 2
  notes = []
  for i in range(bars * 8):
    t = i * step
    notes.append((42, t, t + step / 2, 0, True))
    if i % 4 == 0:
      notes.append((36, t, t + step / 2, 0, True))
    if i % 4 == 2:
      notes.append((38, t, t + step / 2, 0, True))
  return make_sequence(notes, qpm=qpm)
