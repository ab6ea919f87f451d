"""Converter behaviour beyond reference parity: round trips, train mode,
chords, reasons for empty results."""

import glob
import os

import note_seq
import numpy as np
import pytest

from conftest import REFERENCE, make_sequence, rock_beat, scale_melody, varied_melody
from mvae_tf import configs
from mvae_tf.data import converters

MIDI = os.path.join(REFERENCE, 'converters')
ROUND_TRIP_CASES = [
    ('cat-mel_2bar_small', 'melody'), ('hierdec-mel_16bar', 'melody'),
    ('cat-drums_2bar_small', 'drums'), ('hierdec-trio_16bar', 'trio'),
]


def _drop_silent_note_offs(onehot, melody_parts):
  """A window can open with the note-off of a note begun before it; decoded,
  that note-off ends nothing and re-encodes as "no event". Apply that rule."""
  onehot = onehot.copy()
  for start in melody_parts:
    part = onehot[:, start:start + 90]
    sounding = False
    for t in range(len(part)):
      label = np.argmax(part[t])
      if label == 1 and not sounding:
        part[t] = False
        part[t, 0] = True
      sounding = label >= 2 or (sounding and label == 0)
  return onehot


@pytest.mark.parametrize('config_name,kind', ROUND_TRIP_CASES)
def test_round_trip_to_from_to_tensors_is_identical(config_name, kind):
  converter = configs.get_config(config_name).make_converter('eval')
  melody_parts = {'melody': [0], 'drums': [], 'trio': [0, 90]}[kind]
  checked = 0
  for path in sorted(glob.glob(os.path.join(MIDI, kind, 'midi', '*.mid'))):
    tensors = converter.to_tensors(note_seq.midi_file_to_note_sequence(path))
    for outputs, inputs in zip(tensors.outputs, tensors.inputs):
      again = converter.to_tensors(converter.from_tensors([outputs])[0])
      expected = _drop_silent_note_offs(outputs, melody_parts)
      # The decoded window is the whole sequence: exactly one window comes back.
      assert len(again) == 1, path
      np.testing.assert_array_equal(again.outputs[0], expected, err_msg=path)
      if kind != 'drums':
        np.testing.assert_array_equal(again.inputs[0], expected)
      else:
        np.testing.assert_array_equal(again.inputs[0], inputs)
      checked += 1
  assert checked >= 5


def test_melody_round_trip_of_a_scale():
  converter = configs.get_config('cat-mel_2bar_small').make_converter()
  tensors = converter.to_tensors(scale_melody(bars=2))
  assert len(tensors) == 1
  ns = converter.from_tensors(tensors.outputs)[0]
  assert [n.pitch for n in ns.notes] == [60, 62, 64, 65, 67, 69, 71, 72,
                                         72, 71, 69, 67, 65, 64, 62, 60]
  assert all(n.velocity == 80 for n in ns.notes)
  np.testing.assert_array_equal(converter.to_tensors(ns).outputs[0], tensors.outputs[0])


def test_drum_round_trip_of_a_rock_beat():
  converter = configs.get_config('cat-drums_2bar_small').make_converter()
  tensors = converter.to_tensors(rock_beat(bars=2))
  assert len(tensors) == 1
  inputs, outputs = tensors.inputs[0], tensors.outputs[0]
  assert inputs.shape == (32, 10) and outputs.shape == (32, 512)
  # Step 0: kick (class 0) + closed hi-hat (class 2) -> label 0b101.
  assert np.argmax(outputs[0]) == 0b101 and inputs[0].tolist()[:3] == [True, False, True]
  assert inputs[1, 9] and not inputs[1, :9].any()  # "no hit" bit on an empty step
  ns = converter.from_tensors([outputs])[0]
  assert all(n.is_drum and n.instrument == 9 for n in ns.notes)
  assert {n.pitch for n in ns.notes} == {36, 38, 42}


def test_drum_encoder_inputs_from_labels_match_the_converters():
  # One rule builds the encoder's input from labels (used where only labels are at hand,
  # such as encoding interpolated windows) and from note sequences.
  for name in ('cat-drums_2bar_small', 'hierdec-drums_16bar_cpu'):
    converter = configs.get_config(name).make_converter('eval')
    tensors = converter.to_tensors(rock_beat(bars=16 if '16bar' in name else 2))
    assert len(tensors) >= 1
    for inputs, outputs in zip(tensors.inputs, tensors.outputs):
      labels = np.argmax(outputs, axis=-1)
      got = converter.inputs_from_labels(labels)
      assert got.dtype == inputs.dtype and got.shape == inputs.shape
      np.testing.assert_array_equal(got, inputs)
  roll = converters.DrumsConverter(roll_input=True)
  # Batched: label 0 is the no-hit bit alone; 0b100000001 is kick (0) and the last class.
  got = roll.inputs_from_labels(np.array([[0, 0b100000001]]))
  assert got.shape == (1, 2, 10)
  assert got[0, 0].tolist() == [False] * 9 + [True]
  assert got[0, 1].tolist() == [True] + [False] * 7 + [True, False]
  assert converters.DrumsConverter().inputs_from_labels([3]).tolist()[0][:4] == \
      [False, False, False, True]


def test_drum_roll_output_is_the_roll_of_the_one_hot_labels():
  # roll_output (no shipped config uses it; the original supports it) and the roll input
  # come from one rule, roll_from_labels.
  one_hot = converters.DrumsConverter(slice_bars=2, max_bars=100)
  rolled = converters.DrumsConverter(slice_bars=2, max_bars=100, roll_output=True)
  assert rolled.output_depth == 9 and one_hot.output_depth == 512
  a, b = one_hot.to_tensors(rock_beat(bars=2)), rolled.to_tensors(rock_beat(bars=2))
  assert len(a) == len(b) >= 1
  for oh, roll in zip(a.outputs, b.outputs):
    labels = np.argmax(oh, axis=-1)
    assert roll.dtype == bool and roll.shape == (len(labels), 9)
    np.testing.assert_array_equal(roll, rolled.roll_from_labels(labels))
    assert rolled.events_from_tensor(roll) == one_hot.events_from_tensor(oh)
  assert rolled.roll_from_labels([0b101]).tolist() == [[True, False, True] + [False] * 6]


def test_drum_encoding_of_every_label_round_trips():
  converter = converters.DrumsConverter()
  for label in range(512):
    assert converter.encode_event(converter.decode_event(label)) == label


def test_eval_mode_is_deterministic_and_capped():
  converter = configs.get_config('cat-mel_2bar_small').make_converter('eval')
  ns = varied_melody(bars=12)
  first, second = converter.to_tensors(ns), converter.to_tensors(ns)
  assert len(first) == 5  # at most 5 windows per sequence
  for a, b in zip(first.outputs, second.outputs):
    np.testing.assert_array_equal(a, b)


def test_train_mode_samples_windows_at_random():
  converter = configs.get_config('cat-mel_2bar_small').make_converter('train', seed=0)
  converter.transpose_range = None
  ns = varied_melody(bars=12)
  # 11 distinct windows, of which 5 are drawn: the choice varies between calls.
  choices = {tuple(np.argmax(w, -1)[0] for w in converter.to_tensors(ns).outputs)
             for _ in range(20)}
  assert len(choices) > 1
  assert all(len(c) <= 5 for c in choices)


def test_train_mode_transposes_within_range_and_drops_out_of_range_notes():
  converter = configs.get_config('cat-mel_2bar_small').make_converter('train', seed=1)
  low = make_sequence([(21, 0.0, 0.5), (23, 0.5, 1.0), (60, 1.0, 1.5), (62, 1.5, 2.0),
                       (64, 2.0, 2.5), (65, 2.5, 3.0), (67, 3.0, 3.5), (69, 3.5, 4.0)])
  amounts, dropped = set(), 0
  for _ in range(60):
    t = converter.to_tensors(low)
    assert len(t) == 1
    events = converter.events_from_tensor(t.outputs[0])
    pitches = [e for e in events if e >= 0]
    amounts.add(pitches[-1] - 69)
    assert min(pitches) >= 21
    dropped += len(pitches) < 8
  assert amounts == set(range(-5, 6))
  assert dropped > 0  # transposing 21 or 23 down drops them


def test_transposition_leaves_drums_alone():
  ns = make_sequence([(36, 0.0, 0.1, 0, True), (60, 0.0, 0.5)])
  out = converters.transpose(ns, 3)
  assert sorted((n.pitch, n.is_drum) for n in out.notes) == [(36, True), (63, False)]


def test_chord_control_is_inferred_and_written_back():
  config = configs.get_config('cat-mel_2bar_med_chords')
  converter = config.make_converter('eval')
  step = 0.25
  notes = []
  # Two bars: C major arpeggio, then G major arpeggio, with sustained triads.
  for bar, triad in enumerate([(60, 64, 67), (55, 59, 62)]):
    for i in range(8):
      t = bar * 2.0 + i * step
      notes.append((triad[i % 3] + 12, t, t + step))
    for p in triad:
      notes.append((p - 12, bar * 2.0, bar * 2.0 + 2.0, 0, False, 1))
  tensors = converter.to_tensors(make_sequence(notes))
  assert len(tensors) >= 1
  control = tensors.controls[0]
  assert control.shape == (32, 49) and (control.sum(axis=1) == 1).all()
  chords = [converter.chord_encoding.decode_event(i) for i in np.argmax(control, -1)]
  assert chords[0] == 'C' and chords[-1] == 'G'
  ns = converter.from_tensors(tensors.outputs, tensors.controls)[0]
  figures = [ta.text for ta in ns.text_annotations]
  assert figures[0] == 'C' and 'G' in figures


def test_trio_round_trip_writes_three_instruments():
  converter = configs.get_config('hierdec-trio_16bar').make_converter()
  sample = np.zeros((256, 692), bool)
  sample[:, 0] = sample[:, 90] = sample[:, 180] = True
  sample[0, :] = False
  sample[0, 2 + 60 - 21] = sample[0, 90 + 2 + 36 - 21] = sample[0, 180 + 1] = True
  ns = converter.from_tensors([sample])[0]
  by_instrument = {(n.instrument, n.program, n.is_drum): n.pitch for n in ns.notes}
  assert by_instrument == {(0, 0, False): 60, (1, 33, False): 36, (9, 0, True): 36}


@pytest.mark.parametrize('config_name,ns,reason', [
    ('cat-mel_2bar_small', make_sequence([(60, 0.0, 8.0)], time_signature=(3, 4)), 'metre 3/4'),
    ('cat-mel_2bar_small', rock_beat(bars=4), 'drums only'),
    ('cat-mel_2bar_small', make_sequence([(60, 0.0, 1.0, 40)]), 'no melody instrument'),
    ('cat-mel_2bar_small', make_sequence([(110, 0.0, 1.0), (15, 1.0, 2.0)]), 'out of the pitch range'),
    ('cat-mel_2bar_small', make_sequence([(60, 0.0, 1.0)]), 'too short'),
    ('hierdec-mel_16bar', scale_melody(bars=8), 'too short'),
    ('cat-drums_2bar_small', scale_melody(bars=4), 'no drum notes'),
    ('cat-drums_2bar_small', make_sequence([(20, 0.0, 0.1, 0, True), (20, 4.0, 4.1, 0, True)]), 'mapped drum pitch'),
    ('hierdec-trio_16bar', scale_melody(bars=16), 'no bass or drums instrument'),
])
def test_empty_results_say_why(config_name, ns, reason):
  tensors = configs.get_config(config_name).make_converter().to_tensors(ns)
  assert len(tensors) == 0
  assert any(reason in r for r in tensors.skipped), tensors.skipped


def test_two_two_counts_as_sixteen_steps_but_two_four_does_not():
  melody = scale_melody(bars=2)
  converter = configs.get_config('cat-mel_2bar_small').make_converter()
  for (num, den), windows in (((2, 2), 1), ((2, 4), 0), ((6, 8), 0)):
    melody.time_signatures[0].numerator, melody.time_signatures[0].denominator = num, den
    assert len(converter.to_tensors(melody)) == windows, (num, den)


def test_unknown_config_names_the_known_ones():
  with pytest.raises(ValueError, match='did you mean cat-mel_2bar_small'):
    configs.get_config('cat-mel_2bar_smal')


@pytest.mark.parametrize('config_name', ['cat-mel_2bar_small', 'cat-drums_2bar_small',
                                         'hierdec-trio_16bar'])
def test_a_note_that_ends_before_it_starts_is_a_reason_not_a_crash(config_name):
  """Damaged data (the seeded TFRecord fuzz found one): note_seq's melody extraction
  raised BadNoteError from inside the converter."""
  ns = varied_melody(bars=4)
  ns.notes[3].end_time = ns.notes[3].start_time - 1.0
  tensors = configs.get_config(config_name).make_converter('eval').to_tensors(ns)
  assert len(tensors) == 0
  assert tensors.skipped == ['1 note ends before it starts (damaged data)']


# The original's configs (magenta/models/music_vae/configs.py): note_sequence_augmenter and
# the melody converter's valid_programs.
ORIGINAL_AUGMENTATION = {
    'cat-mel_2bar_small': ((-5, 5), True), 'cat-mel_2bar_big': ((-5, 5), True),
    'cat-mel_2bar_med_chords': ((-3, 3), False), 'cat-drums_2bar_small': (None, False),
    'flat-mel_16bar': (None, False), 'hierdec-mel_16bar': (None, False),
    'flat-drums_16bar': (None, False), 'hierdec-drums_16bar': (None, False),
    'flat-trio_16bar': (None, False), 'hierdec-trio_16bar': (None, False),
}


@pytest.mark.parametrize('name', sorted(ORIGINAL_AUGMENTATION))
def test_augmentation_and_programs_are_the_originals(name):
  data = configs.get_config(name).data
  transpose, melody_programs_only = ORIGINAL_AUGMENTATION[name]
  assert data.transpose_range == transpose
  assert ('valid_programs' in data.options) == melody_programs_only


def test_transposing_moves_the_chord_symbols_with_the_notes():
  ns = make_sequence([(60 + 4 * (i % 2), i * 0.5, i * 0.5 + 0.5) for i in range(8)])
  for time, text in ((0.0, 'C'), (1.0, 'Am7'), (3.5, note_seq.NO_CHORD)):
    ns.text_annotations.add(time=time, text=text,
                            annotation_type=note_seq.NoteSequence.TextAnnotation.CHORD_SYMBOL)
  up = converters.transpose(ns, 2)
  assert [n.pitch for n in up.notes] == [62, 66] * 4
  assert [a.text for a in up.text_annotations] == ['D', 'Bm7', note_seq.NO_CHORD]
  assert [a.text for a in ns.text_annotations] == ['C', 'Am7', note_seq.NO_CHORD]  # a copy
  chords = configs.get_config('cat-mel_2bar_med_chords').make_converter('eval')
  a, b = chords.to_tensors(ns), chords.to_tensors(up)
  assert len(a) == len(b) == 1  # the controls follow the transposition: chord classes move
  triads = note_seq.TriadChordOneHotEncoding()
  for controls, first, second in ((a.controls[0], 'C', 'Am'), (b.controls[0], 'D', 'Bm')):
    assert controls[0].argmax() == triads.encode_event(first)  # step 0: the first chord
    assert controls[8].argmax() == triads.encode_event(second)  # 1 s = 2 quarters = 8 steps


def _trio_ending_mid_bar(qpm=120.0):
  """16 bars of melody, bass and drums (4/4) whose melody's last note ends half way
  through bar 16, at the piece's end: step 248 of 256."""
  beat = 60.0 / qpm
  notes = [(60 + b % 5, b * beat, (b + 0.75) * beat, 0, False, 0) for b in range(61)]
  notes.append((67, 61 * beat, 62 * beat, 0, False, 0))  # steps 244..248
  for b in range(0, 60, 2):
    notes.append((36 + b % 3, b * beat, (b + 2) * beat, 33, False, 1))
  for b in range(60):
    notes.append((36 if b % 2 == 0 else 38, b * beat, b * beat + beat / 8, 0, True, 9))
  return make_sequence(notes, qpm=qpm)


@pytest.mark.parametrize('qpm', [120.0, 97.0])
def test_trio_pads_each_instrument_to_whole_bars_ending_its_last_note(qpm):
  """The original sets the piece's total time to its whole bars (total_bars *
  steps_per_bar at tempos[0]) before encoding each instrument, so a melody whose last
  note ends mid-bar at the piece's end is extended with a note-off at that step
  (note_seq's Melody.set_length ends a sustained note), not held to the window's end."""
  ns = _trio_ending_mid_bar(qpm)
  converter = configs.get_config('hierdec-trio_16bar').make_converter('eval')
  tensors = converter.to_tensors(ns)
  assert len(tensors) == 1
  melody = np.argmax(tensors.outputs[0][:, :90], -1)
  assert melody[244] == 67 - 21 + 2  # the last note starts at step 244 ...
  assert melody[248] == 1  # ... and a note-off ends it at 248
  assert (melody[249:] == 0).all()
  # Decoded, the last note lasts its own four steps, not eight.
  decoded = converter.from_tensors(tensors.outputs)[0]
  last = max((n for n in decoded.notes if n.instrument == 0), key=lambda n: n.start_time)
  assert last.pitch == 67
  assert last.end_time - last.start_time == pytest.approx(4 * 60.0 / 120 / 4)
