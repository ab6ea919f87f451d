"""edge_demo.music: tokens -> notes -> MIDI, and MIDI -> encoder windows (numpy and mido)."""

import glob
import json
import os

import mido
import numpy as np
import pytest

from edge_demo import metadata, music
from edge_demo.errors import EdgeError

MELODY_REP = dict(kind='melody', classes=[90], part_offsets=[0], min_pitch=21,
                  num_special_events=2, steps_per_quarter=4, steps_per_bar=16,
                  window_steps=32, velocity=80, programs=dict(melody=0))
DRUM_PITCHES = [36, 38, 42, 46, 45, 48, 50, 49, 51]
DRUMS_REP = dict(kind='drums', classes=[512], part_offsets=[0], drum_pitches=DRUM_PITCHES,
                 steps_per_quarter=4, steps_per_bar=16, window_steps=32, velocity=80)
TRIO_REP = dict(kind='trio', classes=[90, 90, 512], part_offsets=[0, 90, 180], min_pitch=21,
                num_special_events=2, drum_pitches=DRUM_PITCHES, steps_per_quarter=4,
                steps_per_bar=16, window_steps=256, velocity=80,
                programs=dict(melody=0, bass=33, drums='channel 10'))


def write_file(path, notes, numerator=4, denominator=4, bpm=120.0, tpb=480, extra=()):
  """A type-1 MIDI file of notes (pitch, start beat, end beat[, channel[, program]])."""
  f = mido.MidiFile(type=1, ticks_per_beat=tpb)
  meta = mido.MidiTrack([mido.MetaMessage('set_tempo', tempo=mido.bpm2tempo(bpm)),
                         mido.MetaMessage('time_signature', numerator=numerator,
                                          denominator=denominator)])
  f.tracks.append(meta)
  events = []
  for n in notes:
    pitch, start, end = n[:3]
    channel = n[3] if len(n) > 3 else 0
    events.append((int(round(start * tpb)), 1, pitch, channel))
    events.append((int(round(end * tpb)), 0, pitch, channel))
  track = mido.MidiTrack(list(extra))
  now = 0
  for tick, on, pitch, channel in sorted(events):
    track.append(mido.Message('note_on' if on else 'note_off', note=pitch, velocity=90 if on
                              else 0, channel=channel, time=tick - now))
    now = tick
  f.tracks.append(track)
  f.save(str(path))
  return str(path)


def scale(bars, start=0.0):
  """Eighth notes up a C major scale, `bars` bars of 4/4 from beat `start`."""
  pitches = [60, 62, 64, 65, 67, 69, 71, 72]
  return [(pitches[i % 8], start + i * 0.5, start + (i + 1) * 0.5) for i in range(bars * 8)]


# --- Tokens -> notes. ---

def test_melody_notes_follow_the_melody_classes():
  # 0 no event, 1 note off, k >= 2 pitch 21 + k - 2
  classes = [0, 41, 0, 1, 43, 45, 0, 0]
  assert music.melody_notes(classes) == [
      music.Note(60, 1, 3, False, 0, 0), music.Note(62, 4, 5, False, 0, 0),
      music.Note(64, 5, 8, False, 0, 0)]


def test_drum_notes_are_one_step_per_hit_on_the_first_pitch_of_each_class():
  labels = [0b101, 0, 0b10]
  assert music.drum_notes(labels, DRUM_PITCHES) == [
      music.Note(36, 0, 1, True, 0, 9), music.Note(42, 0, 1, True, 0, 9),
      music.Note(38, 2, 3, True, 0, 9)]


def test_notes_from_indices_takes_the_representation_or_the_config_data():
  tokens = np.array([[41], [0], [1], [0]])
  data = dict(kind='melody', min_pitch=21, num_special_events=2)
  assert music.notes_from_indices(tokens, MELODY_REP) == music.notes_from_indices(tokens, data)
  trio = np.array([[41, 30, 1], [0, 0, 0]])
  notes = music.notes_from_indices(trio, TRIO_REP)
  assert sorted((n.pitch, n.program, n.instrument, n.is_drum) for n in notes) == [
      (36, 0, 9, True), (49, 33, 1, False), (60, 0, 0, False)]
  assert music.data_from_representation(TRIO_REP)['bass_program'] == 33


def test_the_shipped_models_carry_a_representation_music_reads(melody_model, drums_model):
  for path, kind in ((melody_model, 'melody'), (drums_model, 'drums')):
    rep = metadata.read_tflite_metadata(path)['representation']
    data = music.data_from_representation(rep)
    assert data['kind'] == kind
    tokens = np.zeros((32, 1), np.int64)
    assert music.notes_from_indices(tokens, rep) == []


# --- Notes -> MIDI -> notes. ---

def test_write_midi_puts_melody_bass_and_drums_on_their_channels(tmp_path):
  notes = [music.Note(60, 0, 4, False, 0, 0), music.Note(64, 4, 8, False, 0, 0),
           music.Note(40, 0, 8, False, 33, 1), music.Note(36, 0, 1, True, 0, 9),
           music.Note(42, 2, 3, True, 0, 9)]
  path = music.write_midi(notes, str(tmp_path / 'trio.mid'), qpm=100.0, velocity=70)
  f = mido.MidiFile(path)
  messages = [m for t in f.tracks for m in t]
  assert [m.tempo for m in messages if m.type == 'set_tempo'] == [mido.bpm2tempo(100.0)]
  assert [(m.numerator, m.denominator) for m in messages
          if m.type == 'time_signature'] == [(4, 4)]
  programs = {m.channel: m.program for m in messages if m.type == 'program_change'}
  assert programs == {0: 0, 1: 33}
  ons = [m for m in messages if m.type == 'note_on' and m.velocity]
  assert sorted((m.channel, m.note) for m in ons) == [(0, 60), (0, 64), (1, 40), (9, 36),
                                                       (9, 42)]
  assert {m.velocity for m in ons} == {70}
  score = music.read_midi(path)
  step = 60.0 / 100.0 / 4
  assert sorted((n.pitch, round(n.start / step), round(n.end / step), n.channel, n.program,
                 n.is_drum) for n in score.notes) == [
      (36, 0, 1, 9, 0, True), (40, 0, 8, 1, 33, False), (42, 2, 3, 9, 0, True),
      (60, 0, 4, 0, 0, False), (64, 4, 8, 0, 0, False)]
  assert score.tempos == [(0.0, pytest.approx(100.0))]
  assert score.time_signatures == [(0.0, 4, 4)]
  assert not [p for p in os.listdir(str(tmp_path)) if p != 'trio.mid']  # no temp files


def test_repeated_notes_of_one_pitch_survive_the_round_trip(tmp_path):
  notes = [music.Note(60, t, t + 1, False, 0, 0) for t in range(8)]
  score = music.read_midi(music.write_midi(notes, str(tmp_path / 'r.mid')))
  assert len(score.notes) == 8


def test_write_midi_to_a_missing_directory_is_one_line(tmp_path):
  with pytest.raises(EdgeError) as e:
    music.write_midi([music.Note(60, 0, 1, False, 0, 0)], str(tmp_path / 'no' / 'x.mid'))
  assert 'cannot write' in str(e.value) and '\n' not in str(e.value)
  assert not os.path.exists(str(tmp_path / 'no'))


def test_a_failed_write_leaves_no_file(tmp_path):
  def fail(tmp):
    with open(tmp, 'w') as f:
      f.write('half')
    raise OSError(28, 'No space left on device')
  with pytest.raises(EdgeError, match='No space left'):
    music.atomic_write(str(tmp_path / 'x.mid'), fail)
  assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize('content, words', [
    (None, 'no such file'), (b'', 'is empty'), (b'not a midi file at all', 'not a MIDI file'),
    (b'MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x10\x00\x90', 'not a MIDI'),
])
def test_read_midi_says_what_is_wrong_in_one_line(tmp_path, content, words):
  path = str(tmp_path / 'in.mid')
  if content is not None:
    with open(path, 'wb') as f:
      f.write(content)
  with pytest.raises(EdgeError) as e:
    music.read_midi(path)
  assert words in str(e.value) and path in str(e.value) and '\n' not in str(e.value)


def test_read_midi_of_a_directory(tmp_path):
  with pytest.raises(EdgeError, match='is a directory'):
    music.read_midi(str(tmp_path))


def test_read_midi_follows_tempo_changes(tmp_path):
  path = str(tmp_path / 't.mid')
  f = mido.MidiFile(type=0, ticks_per_beat=100)
  f.tracks.append(mido.MidiTrack([
      mido.MetaMessage('set_tempo', tempo=500000),
      mido.Message('note_on', note=60, velocity=80, time=0),
      mido.Message('note_off', note=60, velocity=0, time=200),
      mido.MetaMessage('set_tempo', tempo=1000000, time=0),
      mido.Message('note_on', note=62, velocity=80, time=0),
      mido.Message('note_off', note=62, velocity=0, time=100)]))
  f.save(path)
  score = music.read_midi(path)
  assert [(n.pitch, n.start, n.end) for n in score.notes] == [(60, 0.0, 1.0), (62, 1.0, 2.0)]
  assert [(t, round(q, 6)) for t, q in score.tempos] == [(0.0, 120.0), (1.0, 60.0)]
  assert score.total_time == 2.0


# --- MIDI -> encoder windows: what mvae_tf gives (tests/test_edge_parity.py made the file). ---

def _golden(data_dir):
  with open(os.path.join(data_dir, 'windows_expected.json')) as f:
    return json.load(f)


def _rows(kind, x):
  x = np.asarray(x, np.float32)
  if kind == 'melody':
    return [int(i) for i in x.argmax(-1)]
  return [int(v) for v in (x > 0.5).astype(np.int64) @ (2 ** np.arange(x.shape[-1]))]


def _reps(melody_model, drums_model):
  out = {}
  for kind, path in (('melody', melody_model), ('drums', drums_model)):
    meta = metadata.read_tflite_metadata(path)
    out[kind] = (meta['representation'], meta['input_depth'])
  return out


def test_windows_are_mvae_tfs_on_the_reference_files(data_dir, melody_model, drums_model):
  golden = _golden(data_dir)['files']
  reps = _reps(melody_model, drums_model)
  assert len(golden) >= 20
  for name, expected in sorted(golden.items()):
    kind = name.split('/')[0]
    rep, depth = reps[kind]
    score = music.read_midi(os.path.join(data_dir, 'midi', name))
    inputs, _ = music.converter_windows(score, rep, depth)
    assert [_rows(kind, x) for x in inputs] == expected['converter_windows'], name
    bars = [[b, None if x is None else _rows(kind, x)]
            for b, x, _ in music.bar_windows(score, rep, depth)]
    assert bars == expected['bar_windows'], name
    window = music.windows(score, rep, input_depth=depth)
    if expected['chosen'] is None:
      assert window.inputs is None and window.reason, name
    else:
      assert window.inputs.shape == (32, depth) and window.inputs.dtype == np.float32
      assert dict(first_bar=window.first_bar, last_bar=window.last_bar,
                  total_bars=window.total_bars, rows=_rows(kind, window.inputs)) == \
          expected['chosen'], name
      usable = [b for b, rows in expected['bar_windows'] if rows is not None]
      assert window.usable_bars == usable, name


def test_a_window_at_a_bar_and_why_not(data_dir, melody_model):
  meta = metadata.read_tflite_metadata(melody_model)
  rep = meta['representation']
  score = music.read_midi(os.path.join(data_dir, 'midi', 'melody',
                                       '04_leading_empty_and_gap.mid'))
  first = music.windows(score, rep)
  assert first.first_bar == 4 and first.usable_bars == [4, 5, 6, 7, 10, 11]
  at = music.windows(score, rep, bar=10)
  assert (at.first_bar, at.last_bar) == (10, 11) and at.inputs is not None
  none = music.windows(score, rep, bar=2)
  assert none.inputs is None
  assert none.reason == ('bars 2-3 yield no 2-bar window (no notes); usable windows start at '
                         'bars 4-7, 10-11')
  past = music.windows(score, rep, bar=50)
  assert 'so no 2-bar window starts at bar 50' in past.reason


def test_other_metres_say_why(tmp_path):
  three = write_file(tmp_path / 'w.mid', [(60 + i % 5, i, i + 1) for i in range(24)], 3, 4)
  window = music.windows(music.read_midi(three), MELODY_REP)
  assert window.inputs is None
  assert 'metre 3/4 is not 16 steps per bar' in window.reason
  assert window.total_bars == 8


def test_two_four_is_read_as_four_four(tmp_path):
  path = write_file(tmp_path / 'two.mid', scale(4), 2, 4)
  score = music.read_midi(path)
  window = music.windows(score, MELODY_REP)
  assert window.renotated and window.inputs is not None
  assert (window.first_bar, window.total_bars) == (1, 4)  # 8 bars of 2/4: 4 of 4/4
  four = music.windows(music.read_midi(write_file(tmp_path / 'four.mid', scale(4))),
                       MELODY_REP)
  np.testing.assert_array_equal(window.inputs, four.inputs)
  strict = music.windows(score, MELODY_REP, renotate=False)
  assert strict.inputs is None and 'metre 2/4 is not 16 steps per bar' in strict.reason


def test_the_highest_of_simultaneous_onsets_is_the_melody(tmp_path):
  chords = []
  for i in range(8):
    chords += [(60 + i, i, i + 1), (48 + i, i, i + 1), (55 + i, i, i + 1)]
  window = music.windows(music.read_midi(write_file(tmp_path / 'c.mid', chords)), MELODY_REP)
  classes = window.inputs.argmax(-1)
  assert [int(c) for c in classes[::4]] == [60 + i - 21 + 2 for i in range(8)]


def test_melody_encoding_is_the_converters(tmp_path):
  path = write_file(tmp_path / 'm.mid', [(60, 0, 1), (62, 1.5, 2), (64, 4, 8)])
  window = music.windows(music.read_midi(path), MELODY_REP)
  classes = [int(c) for c in window.inputs.argmax(-1)]
  assert window.inputs.sum() == 32  # one-hot
  assert classes[:8] == [41, 0, 0, 0, 1, 0, 43, 0]  # note, held, off, rest, note
  assert classes[8:10] == [1, 0] and classes[16] == 45 and classes[31] == 0


def test_drum_inputs_are_the_roll_plus_a_no_hit_bit(tmp_path):
  hits = [(36, i, i + 0.25, 9) for i in range(8)] + [(44, i + 0.5, i + 0.75, 9)
                                                    for i in range(8)]
  window = music.windows(music.read_midi(write_file(tmp_path / 'd.mid', hits)), DRUMS_REP,
                         input_depth=10)
  x = window.inputs
  assert x.shape == (32, 10)
  assert x[0].tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]  # kick
  assert x[2].tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]  # pedal hi-hat 44 -> closed hi-hat
  assert x[1].tolist() == [0] * 9 + [1]  # no hit
  onehot = music.windows(music.read_midi(write_file(tmp_path / 'd.mid', hits)), DRUMS_REP,
                         input_depth=512)
  assert onehot.inputs.shape == (32, 512) and onehot.inputs[0, 1] == 1 and \
      onehot.inputs[2, 4] == 1 and onehot.inputs[1, 0] == 1


def test_drums_into_a_melody_model_and_back(tmp_path, data_dir):
  drums = music.read_midi(os.path.join(data_dir, 'midi', 'drums', '01_rock_4bars.mid'))
  assert 'drums only' in music.windows(drums, MELODY_REP).reason
  melody = music.read_midi(os.path.join(data_dir, 'midi', 'melody', '01_simple_4bars.mid'))
  assert 'no drum notes' in music.windows(melody, DRUMS_REP, input_depth=10).reason


def test_trio_input_is_not_supported_yet(tmp_path):
  score = music.read_midi(write_file(tmp_path / 'm.mid', scale(2)))
  with pytest.raises(EdgeError, match='not supported yet'):
    music.windows(score, TRIO_REP)


def test_format_bars():
  assert music.format_bars([1, 2, 3, 5, 8, 9]) == '1-3, 5, 8-9'
  assert music.format_bars([]) == ''


def test_every_copied_reference_file_is_in_the_expected_windows(data_dir):
  names = {'%s/%s' % (os.path.basename(os.path.dirname(p)), os.path.basename(p))
           for p in glob.glob(os.path.join(data_dir, 'midi', '*', '*.mid'))}
  assert names == set(_golden(data_dir)['files'])


def test_a_damaged_time_signature_or_tempo_is_refused_not_a_memory_bomb(tmp_path):
  path = write_file(tmp_path / 'ts.mid', scale(2), 4, 128)
  with pytest.raises(EdgeError, match='time signature 4/128: the file is damaged'):
    music.read_midi(path)
  # A file of one tick a beat at 60000 beats a minute: 10^6 beats (4 * 10^6 steps) in 1000 s.
  fast = str(tmp_path / 'fast.mid')
  f = mido.MidiFile(type=0, ticks_per_beat=1)
  f.tracks.append(mido.MidiTrack([
      mido.MetaMessage('set_tempo', tempo=1000),
      mido.Message('note_on', note=60, velocity=80, time=10 ** 6),
      mido.Message('note_off', note=60, velocity=0, time=1)]))
  f.save(fast)
  with pytest.raises(EdgeError, match='more than the 1000000 an input may have'):
    music.windows(music.read_midi(fast), MELODY_REP)
