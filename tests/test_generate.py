"""Generation: the TrainedModel NoteSequence API, attribute vectors, the light
MIDI writer, and `mvae generate` (outputs, start-up, every error)."""

import os
import re
import stat
import subprocess
import sys

import note_seq
import numpy as np
import pretty_midi
import pytest

from conftest import make_sequence, rock_beat, scale_melody, varied_melody
from mvae_tf.cli import main as cli
from mvae_tf import configs, pretrained
from mvae_tf.generation import attributes
from mvae_tf.generation import render
from mvae_tf.generation import trained_model as tm

tf = pytest.importorskip('tensorflow')

import tiny_models  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def model():
  return tiny_models.trained_model()


@pytest.fixture(scope='module')
def melodies(model):
  """Eight 2-bar melodies like the training data (densities 1 to 1/8)."""
  _, indices = tiny_models.density_batch(np.random.default_rng(3), 8)
  return model.to_note_sequences(indices[..., None])


@pytest.fixture(scope='module')
def packed(model, tmp_path_factory):
  """The tiny trained model as a packaged directory, with attribute vectors."""
  from mvae_tf.model.weights import weights_from_keras
  keras_model = tiny_models.trained_keras_model()
  _, indices = tiny_models.density_batch(np.random.default_rng(4), 96)
  vectors = attributes.compute_attribute_vectors(
      model, model.to_note_sequences(indices[..., None]), ['note_density', 'syncopation'])
  out = str(tmp_path_factory.mktemp('packed') / 'tiny')
  pretrained.write_pretrained(out, weights_from_keras(keras_model),
                              pretrained.model_info(keras_model, name='tiny'), 'float32',
                              attributes=vectors)
  return out


def note_tuples(ns):
  return sorted((n.pitch, round(n.start_time, 4), round(n.end_time, 4), n.is_drum)
                for n in ns.notes)


def midi_notes(path):
  pm = pretty_midi.PrettyMIDI(path)
  return sorted((n.pitch, round(n.start, 3), round(n.end, 3), i.is_drum)
                for i in pm.instruments for n in i.notes)


def write_midi(ns, path):
  note_seq.sequence_proto_to_midi_file(ns, str(path))
  return str(path)


# --- The NoteSequence API. ---

def test_sample_shapes_and_seeds(model):
  sequences, z, indices = model.sample(4, seed=1, return_tensors=True)
  assert len(sequences) == 4 and z.shape == (4, 8) and indices.shape == (4, 32, 1)
  assert all(ns.notes and ns.total_time <= 4.0 for ns in sequences)
  again = model.sample(4, seed=1)
  assert [note_tuples(a) for a in sequences] == [note_tuples(b) for b in again]
  assert [note_tuples(a) for a in sequences] != [note_tuples(b) for b in model.sample(4, seed=2)]
  longer = model.sample(2, length=48, temperature=0.0, seed=1, return_tensors=True)[2]
  assert longer.shape == (2, 48, 1)


def test_encode_and_decode(model, melodies):
  z, mu, sigma = model.encode(melodies, seed=3)
  assert z.shape == mu.shape == sigma.shape == (8, 8) and np.all(sigma > 0)
  np.testing.assert_array_equal(z, model.encode(melodies, seed=3)[0])
  inputs, _, _, lengths, owners = model.windows(melodies)
  np.testing.assert_allclose(mu, model.encode_tensors(inputs, lengths)[1], atol=1e-6)
  assert list(owners) == list(range(8))
  decoded = model.decode(mu, temperature=0.0)
  # The model has learnt its melodies: the reconstructions keep (nearly) the note counts.
  counts = [[len(ns.notes) for ns in x] for x in (decoded, melodies)]
  assert np.corrcoef(counts)[0, 1] > 0.9, counts


def test_encode_names_the_sequence_and_why(model, melodies):
  waltz = make_sequence([(60 + i % 5, i * 0.5, (i + 1) * 0.5) for i in range(24)],
                        time_signature=(3, 4))
  waltz.filename = 'waltz.mid'
  with pytest.raises(tm.EncodeError, match=r'sequence 1 \(waltz.mid\) yields no 2-bar window '
                                           r'for tiny-mel_2bar: metre 3/4') as e:
    model.encode([melodies[0], waltz])
  assert e.value.index == 1 and e.value.windows == 0
  long = varied_melody(bars=4)
  with pytest.raises(tm.EncodeError, match='sequence 0 yields 3 2-bar windows.*all_windows=True'):
    model.encode([long])
  z, _, _ = model.encode([long, melodies[0]], all_windows=True)
  assert z.shape == (4, 8)
  drums = tm.TrainedModel(tiny_models.random_model('tiny-drums_2bar'))
  with pytest.raises(tm.EncodeError, match='no drum notes'):
    drums.encode(melodies[:1])


def gap_tune():
  """4/4: bars 1-2 of quarter notes, bars 3-4 silent, bars 5-6 of quarter notes."""
  return make_sequence([(60 + i % 7, i * 0.5, (i + 1) * 0.5) for i in range(8)] +
                       [(64 + i % 5, 8 + i * 0.5, 8.5 + i * 0.5) for i in range(8)])


def test_bar_windows_and_choose_window():
  """Candidate windows of a longer tune, one per bar (counted from 1), and the choice."""
  model = tm.TrainedModel.load('folk-mel_2bar')
  tune = gap_tune()
  tune.filename = 'gap.mid'
  windows = model.bar_windows(tune)
  assert [(w.first_bar, w.last_bar, w.total_bars, w.usable) for w in windows] == [
      (1, 2, 6, True), (2, 3, 6, False), (3, 4, 6, False), (4, 5, 6, False), (5, 6, 6, True)]
  assert windows[2].reasons == ['no notes'] and 'too short' in windows[1].reasons[0]
  # A window is the notes of its bars, shifted to start at 0.
  assert [n.start_time for n in windows[4].sequence.notes][:2] == [0.0, 0.5]
  assert model.choose_window(tune).first_bar == 1
  assert model.choose_window(tune, 5).first_bar == 5
  # Every window the converter finds in the whole tune is one of them.
  whole = {x.tobytes() for x in model.converter.to_tensors(varied_melody(bars=6)).outputs}
  by_bar = {model.converter.to_tensors(w.sequence).outputs[0].tobytes()
            for w in model.bar_windows(varied_melody(bars=6))}
  assert len(whole) == 5 and whole == by_bar
  for bar, message in ((3, r'sequence 0 \(gap.mid\) has no usable 2-bar window at bar 3 '
                           r'\(bars 3-4 yield none: no notes\); usable ones start at bars 1, 5'),
                       (6, r'at bar 6 \(it has 6 bars\); usable ones start at bars 1, 5')):
    with pytest.raises(tm.BarError, match=message) as e:
      model.choose_window(tune, bar)
    assert e.value.usable_bars == [1, 5] and e.value.total_bars == 6
  # An input of exactly one window is encoded as it is.
  two = scale_melody(bars=2)
  assert model.choose_window(two).sequence is two
  waltz = make_sequence([(60 + i % 5, i * 0.5, (i + 1) * 0.5) for i in range(24)],
                        time_signature=(3, 4))
  with pytest.raises(tm.EncodeError, match='metre 3/4') as e:
    model.choose_window(waltz, 2)
  assert not isinstance(e.value, tm.BarError)
  assert tm.format_bars([1, 2, 3, 5, 8, 9]) == '1-3, 5, 8-9'


@pytest.mark.parametrize('method', ['slerp', 'lerp'])
def test_interpolation_end_points_are_the_reconstructions(model, melodies, method):
  a, b = melodies[0], melodies[7]
  outputs, z, _ = model.interpolate(a, b, 5, method=method, return_tensors=True)
  assert len(outputs) == 5
  mu = model.encode([a, b])[1]
  np.testing.assert_allclose(z[[0, -1]], mu, atol=1e-6)
  reconstructions = model.decode(mu, temperature=0.0)
  assert note_tuples(outputs[0]) == note_tuples(reconstructions[0])
  assert note_tuples(outputs[-1]) == note_tuples(reconstructions[1])


def test_latent_interpolation_arithmetic():
  a, b = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
  s = tm.interpolate_latents(a, b, 3, 'slerp')
  np.testing.assert_allclose(s[1], [np.sqrt(0.5), np.sqrt(0.5)], atol=1e-6)  # on the circle
  np.testing.assert_allclose(tm.interpolate_latents(a, b, 3, 'lerp')[1], [0.5, 0.5])
  grid = tm.grid_latents(a, b, -a, -b, 3, 3, 'lerp')
  np.testing.assert_allclose(grid[1, 1], [0, 0], atol=1e-6)
  np.testing.assert_allclose(grid[2, 0], -a)
  with pytest.raises(ValueError, match='at least 2'):
    tm.interpolate_latents(a, b, 1)


def test_similar_and_grid(model, melodies):
  same = model.similar(melodies[2], 3, similarity=1.0)
  reconstruction = model.decode(model.encode([melodies[2]])[1], temperature=0.0)[0]
  assert all(note_tuples(ns) == note_tuples(reconstruction) for ns in same)
  varied, z, _ = model.similar(melodies[2], 6, similarity=0.3, seed=1, return_tensors=True)
  assert len(varied) == 6 and len({tuple(v) for v in z.round(4)}) == 6
  with pytest.raises(ValueError, match='similarity'):
    model.similar(melodies[2], 2, similarity=1.5)
  corners = [melodies[i] for i in (0, 3, 5, 7)]
  grid, zs, indices = model.grid(*corners, size=(3, 4), return_tensors=True)
  assert len(grid) == 3 and all(len(row) == 4 for row in grid)
  assert zs.shape == (3, 4, 8) and indices.shape == (3, 4, 32, 1)
  recon = model.decode(model.encode(corners)[1], temperature=0.0)
  for (r, c), expected in zip([(0, 0), (0, 3), (2, 0), (2, 3)], recon):
    assert note_tuples(grid[r][c]) == note_tuples(expected)


def test_log_likelihood(model, melodies):
  scores = model.log_likelihood(melodies)
  assert scores.shape == (8,) and np.all(scores < 0)
  inputs, outputs, _, lengths, _ = model.windows(melodies[:1])
  mu = model.encode_tensors(inputs, lengths)[1]
  logits = model.teacher_forced_logits(outputs, lengths, mu)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  np.testing.assert_allclose(scores[0], (logp * outputs).sum(), rtol=1e-5, atol=1e-5)
  # Music unlike the training data (wide leaps, uneven rhythm) scores lower.
  rng = np.random.default_rng(0)
  odd = []
  for _ in range(8):
    starts = np.sort(rng.choice(32, 12, replace=False))
    notes = [(int(rng.integers(30, 100)), s * 0.125, (s + 1) * 0.125) for s in starts]
    odd.append(make_sequence([(60, 0.0, 0.125)] + notes + [(60, 3.875, 4.0)]))
  assert model.log_likelihood(odd).mean() < scores.mean() - 10
  long = varied_melody(bars=4)  # several windows: their mean
  assert model.log_likelihood([long]).shape == (1,)


# --- Attributes. ---

def test_attribute_functions():
  Note = render.Note
  notes = [Note(60, 0, 2, False, 0, 0), Note(67, 2, 4, False, 0, 0), Note(62, 5, 8, False, 0, 0),
           Note(64, 12, 16, False, 0, 0)]
  assert attributes.note_density(notes, 16) == 0.25
  assert attributes.pitch_range(notes) == 7
  assert attributes.syncopation(notes, 16, 4) == 0.5  # onsets 2 and 5 are off the beat
  assert attributes.average_interval(notes) == pytest.approx((7 + 5 + 2) / 3)
  assert attributes.pitch_range([]) == 0 and attributes.average_interval(notes[:1]) == 0
  ns = make_sequence([(n.pitch, n.start * 0.125, n.end * 0.125) for n in notes],
                     total_time=2.0)
  for name in attributes.ATTRIBUTES:
    indices = np.array([2 + 60 - 21, 0, 2 + 67 - 21, 0, 1, 2 + 62 - 21, 0, 0, 1, 0, 0, 0,
                        2 + 64 - 21, 0, 0, 0])
    data = dict(kind='melody', steps_per_quarter=4)
    assert attributes.of_sequence(name, ns) == pytest.approx(
        attributes.of_indices(name, indices[:, None], data))
  assert attributes.available('drums') == ('note_density', 'syncopation')
  with pytest.raises(ValueError, match='unknown attribute'):
    attributes.attribute('loudness', notes, 16)


def test_attribute_vector_arithmetic_and_files(tmp_path):
  values = np.arange(8.0)
  mu = np.stack([values, np.ones(8)], 1)
  vector, meta = attributes.vectors_from_latents(mu, values, quantile=0.25)
  np.testing.assert_allclose(vector, [6.0, 0.0])  # mean of 6, 7 minus mean of 0, 1
  assert meta == dict(low_mean=0.5, high_mean=6.5, count=2)
  with pytest.raises(ValueError, match='does not vary'):
    attributes.vectors_from_latents(mu, np.ones(8))
  path = str(tmp_path / 'vectors.npz')
  attributes.save_attribute_vectors(path, {'note_density': vector}, {'corpus': 'x'})
  loaded, meta = attributes.load_attribute_vectors(path)
  np.testing.assert_array_equal(loaded['note_density'], vector)
  assert meta == {'corpus': 'x'}
  np.testing.assert_allclose(attributes.apply(np.zeros((3, 2)), vector, -0.5), [[-3, 0]] * 3)
  with pytest.raises(ValueError, match='dimensions'):
    attributes.apply(np.zeros((3, 4)), vector)


def test_note_density_vector_moves_note_density(model):
  _, indices = tiny_models.density_batch(np.random.default_rng(5), 128)
  sequences = model.to_note_sequences(indices[..., None])
  vectors, meta = attributes.compute_attribute_vectors(model, sequences,
                                                       ['note_density', 'syncopation'])
  assert set(vectors) == {'note_density', 'syncopation'} and meta['windows'] == 128
  assert meta['attributes']['note_density']['high_mean'] > \
      meta['attributes']['note_density']['low_mean']
  z = model.random_latents(32, seed=0)

  def density(strength):
    _, _, out = model.apply_attribute(z, vectors['note_density'], strength, return_tensors=True)
    return np.mean([attributes.of_indices('note_density', x, model.data) for x in out])
  low, high = density(-1.0), density(1.0)
  assert high > low + 0.2, (low, high)
  with pytest.raises(ValueError, match='pitch_range: the attribute does not vary'):
    attributes.compute_attribute_vectors(model, sequences, ['pitch_range'])  # one pitch each
  # On NoteSequences: their mu moved along the vector.
  denser = model.apply_attribute(sequences[:16], vectors['note_density'], 1.0)
  sparser = model.apply_attribute(sequences[:16], vectors['note_density'], -1.0)
  assert np.mean([len(ns.notes) for ns in denser]) > np.mean([len(ns.notes) for ns in sparser])


# --- The light MIDI writer against the converters. ---

@pytest.mark.parametrize('config_name', ['cat-mel_2bar_small', 'cat-drums_2bar_small',
                                         'hierdec-trio_16bar'])
def test_render_writes_what_the_converters_write(config_name, tmp_path):
  converter = configs.get_config(config_name).make_converter('eval')
  data = pretrained.decoding_info(config_name)
  depths = getattr(converter, 'split_depths', None) or (converter.output_depth,)
  rng = np.random.default_rng(0)
  for sample in range(3):
    parts = []
    for d in depths:
      if d == 90:  # melody: holds and note-offs among pitches
        part = np.where(rng.random(64) < 0.5, rng.integers(0, 2, 64), rng.integers(2, 90, 64))
      else:
        part = rng.integers(0, 512, 64) * (rng.random(64) < 0.7)
      parts.append(part)
    indices = np.stack(parts, -1)
    onehot = np.concatenate([np.eye(d, dtype=bool)[indices[:, p]] for p, d in enumerate(depths)],
                            -1)
    ns = converter.from_tensors([onehot])[0]
    notes = render.notes_from_indices(indices, data)
    step = render.seconds_per_step(data)
    assert sorted((n.pitch, n.start, n.end, n.is_drum, n.program, n.instrument)
                  for n in notes) == sorted(
        (n.pitch, int(round(n.start_time / step)), int(round(n.end_time / step)), n.is_drum,
         n.program, n.instrument) for n in ns.notes)
    ours, theirs = str(tmp_path / 'ours.mid'), str(tmp_path / 'theirs.mid')
    render.write_midi(notes, ours, data)
    note_seq.sequence_proto_to_midi_file(ns, theirs)
    assert midi_notes(ours) == midi_notes(theirs)
  assert sorted(os.listdir(tmp_path)) == ['ours.mid', 'theirs.mid']


# --- mvae generate. ---

def run_cli(capsys, *args):
  code = cli.main(['generate'] + [str(a) for a in args])
  out, err = capsys.readouterr()
  return code, out, err


def test_generate_sample_with_the_shipped_model(tmp_path, capsys):
  out = tmp_path / 'out'
  code, text, _ = run_cli(capsys, '--num_outputs', 3, '--seed', 5, '--output_dir', out,
                          '--plot')
  assert code == 0 and 'folk-mel_2bar' in text and 'seed 5' in text
  names = sorted(os.listdir(out))
  assert names == ['mvae_sample_5_%02d.%s' % (i, ext) for i in (1, 2, 3)
                   for ext in ('mid', 'png')]
  with open(out / 'mvae_sample_5_01.png', 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  # The same music as the Python API with the same seed and temperature.
  api = tm.TrainedModel.load('folk-mel_2bar').sample(3, temperature=0.5, seed=5)
  for i, ns in enumerate(api):
    assert midi_notes(str(out / ('mvae_sample_5_%02d.mid' % (i + 1)))) == [
        (p, round(s, 3), round(e, 3), d) for p, s, e, d in note_tuples(ns)]
  first = (out / 'mvae_sample_5_01.mid').read_bytes()
  assert run_cli(capsys, '--num_outputs', 1, '--seed', 5, '--output_dir', out)[0] == 0
  assert (out / 'mvae_sample_5_01.mid').read_bytes() == first


def test_generate_drums_by_config_and_by_input(tmp_path, capsys):
  code, text, _ = run_cli(capsys, '--config', 'cat-drums_2bar_cpu', '--num_outputs', 2,
                          '--seed', 1, '--temperature', 1.0, '--output_dir', tmp_path / 'd',
                          '--plot')
  assert code == 0 and 'drums_2bar' in text
  notes = midi_notes(str(tmp_path / 'd' / 'mvae_sample_1_01.mid'))
  assert notes and all(is_drum for *_, is_drum in notes)
  beat = write_midi(rock_beat(bars=2), tmp_path / 'beat.mid')
  code, text, _ = run_cli(capsys, '--mode', 'similar', '--input_midi_1', beat,
                          '--num_outputs', 2, '--output_dir', tmp_path / 's')
  assert code == 0 and 'drums_2bar (cat-drums_2bar_cpu' in text


def test_generate_sample_imports_neither_tensorflow_nor_note_seq(tmp_path):
  code = ('import sys; from mvae_tf.cli import main as cli; '
          'code = cli.main(["generate", "--mode", "sample", "--num_outputs", "2", '
          '"--output_dir", sys.argv[1]]); '
          'heavy = sorted(m for m in sys.modules if m.split(".")[0] in '
          '("tensorflow", "keras", "note_seq", "tensorflow_probability")); '
          'print(code, heavy)')
  result = subprocess.run([sys.executable, '-c', code, str(tmp_path)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip().endswith('0 []'), result.stdout
  assert len([n for n in os.listdir(tmp_path) if n.endswith('.mid')]) == 2


def test_generate_interpolate_similar_attribute_with_a_packaged_model(
    packed, model, melodies, tmp_path, capsys):
  a = write_midi(melodies[0], tmp_path / 'a.mid')
  b = write_midi(melodies[7], tmp_path / 'b.mid')
  out = tmp_path / 'out'
  code, text, _ = run_cli(capsys, '--checkpoint_file', packed, '--mode', 'interpolate',
                          '--input_midi_1', a, '--input_midi_2', b, '--num_outputs', 4,
                          '--temperature', 0, '--seed', 0, '--output_dir', out)
  assert code == 0, text
  reconstruction = model.decode(model.encode([melodies[0]])[1], temperature=0.0)[0]
  assert midi_notes(str(out / 'mvae_interpolate_0_01.mid')) == [
      (p, round(s, 3), round(e, 3), d) for p, s, e, d in note_tuples(reconstruction)]
  assert len(os.listdir(out)) == 4
  code, text, _ = run_cli(capsys, '--checkpoint_file', packed, '--mode', 'similar',
                          '--input_midi_1', a, '--num_outputs', 3, '--output_dir', out)
  assert code == 0 and len([n for n in os.listdir(out) if 'similar' in n]) == 3
  density = {}
  for strength in ('2', '-2'):
    code, text, _ = run_cli(capsys, '--checkpoint_file', packed, '--mode', 'attribute',
                            '--attribute', 'note_density', '--strength', strength,
                            '--num_outputs', 8, '--seed', 3, '--output_dir', out)
    assert code == 0 and 'note_density: ' in text
    density['0'], density[strength] = [
        float(x.split()[0].rstrip(','))
        for x in text.split('note_density: ')[1].split('without the vector, ')]
  # The vector orders the outputs by density (the samples start near the data's sparsest
  # density, 1/8, so the negative side has little room to go down).
  assert density['2'] > density['0'] and density['2'] > density['-2'], density
  vectors = tmp_path / 'vectors.npz'
  attributes.save_attribute_vectors(str(vectors), {'syncopation': np.ones(8, np.float32)})
  code, text, _ = run_cli(capsys, '--checkpoint_file', packed, '--mode', 'attribute',
                          '--input_midi_1', a, '--attribute', 'syncopation',
                          '--attribute_vectors', vectors, '--output_dir', out)
  assert code == 0 and 'syncopation: ' in text
  code, _, err = run_cli(capsys, '--checkpoint_file', packed, '--mode', 'attribute',
                         '--attribute', 'pitch_range', '--output_dir', out)
  assert code == 2 and ("no vector for attribute 'pitch_range' in the model (has: "
                        "note_density, syncopation)") in err


def outputs_of(directory):
  return [midi_notes(str(directory / n)) for n in sorted(os.listdir(directory))]


def test_generate_takes_a_whole_tune_and_input_bar(tmp_path, capsys):
  """A 4/4 tune of 8 bars: bars 1-2 by default (as if cut to them), --input_bar 3 bars 3-4."""
  tune = write_midi(varied_melody(bars=8), tmp_path / 'tune.mid')
  first = write_midi(varied_melody(bars=2), tmp_path / 'first.mid')
  greedy = ['--mode', 'similar', '--num_outputs', 2, '--temperature', 0, '--seed', 1]
  code, _, err = run_cli(capsys, *greedy, '--input_midi_1', tune, '--output_dir', tmp_path / 'a')
  assert code == 0, err
  assert err.strip().split('\n')[-1] == ('--input_midi_1 %s: bars 1-2 of 8 (first usable '
                                         'window; --input_bar N for another)' % tune)
  code, _, err = run_cli(capsys, *greedy, '--input_midi_1', first, '--output_dir', tmp_path / 'b')
  assert code == 0 and err.strip().endswith(': bars 1-2 of 2 (the whole file)'), err
  assert outputs_of(tmp_path / 'a') == outputs_of(tmp_path / 'b')
  code, _, err = run_cli(capsys, *greedy, '--input_midi_1', tune, '--input_bar', 3,
                         '--output_dir', tmp_path / 'c')
  assert code == 0 and err.strip().endswith('tune.mid: bars 3-4 of 8 (--input_bar 3)'), err
  assert outputs_of(tmp_path / 'c') != outputs_of(tmp_path / 'a')
  # --input_bar applies to both inputs of interpolate.
  code, _, err = run_cli(capsys, '--mode', 'interpolate', '--input_midi_1', tune,
                         '--input_midi_2', tune, '--input_bar', 7, '--num_outputs', 2,
                         '--output_dir', tmp_path / 'd')
  assert code == 0 and err.count('bars 7-8 of 8 (--input_bar 7)') == 2, err
  # One line, exit 2, naming the usable bars.
  for bar in ('8', '40'):
    code, out, err = run_cli(capsys, *greedy, '--input_midi_1', tune, '--input_bar', bar,
                             '--output_dir', tmp_path / 'e')
    assert code == 2 and len(err.strip().split('\n')) == 1, err
    assert ('--input_bar %s: --input_midi_1 %s: it has 8 bars, so no 2-bar window starts at '
            'bar %s; usable windows start at bars 1-7' % (bar, tune, bar)) in err
  gap = write_midi(gap_tune(), tmp_path / 'gap.mid')
  code, _, err = run_cli(capsys, *greedy, '--input_midi_1', gap, '--input_bar', 3,
                         '--output_dir', tmp_path / 'e')
  assert code == 2 and len(err.strip().split('\n')) == 1, err
  assert ('bars 3-4 yield no 2-bar window (no notes); usable windows start at bars 1, 5'
          in err)
  assert not (tmp_path / 'e').exists()


def test_generate_reads_2_4_as_4_4(tmp_path, capsys):
  """A 2/4 tune is read as mvae corpus reads it: two 2/4 bars make a 4/4 bar."""
  notes = [(60 + (i * 5) % 12, i * 0.25, (i + 1) * 0.25) for i in range(64)]
  polka = write_midi(make_sequence(notes, time_signature=(2, 4)), tmp_path / 'polka.mid')
  common = write_midi(make_sequence(notes), tmp_path / 'common.mid')
  greedy = ['--mode', 'similar', '--num_outputs', 2, '--temperature', 0, '--seed', 1,
            '--input_bar', 3]
  code, _, err = run_cli(capsys, *greedy, '--input_midi_1', polka, '--output_dir', tmp_path / 'a')
  assert code == 0, err
  assert err.strip().endswith('polka.mid (2/4, read as 4/4: two 2/4 bars make a bar): bars '
                              '3-4 of 8 (--input_bar 3)'), err
  code, _, err = run_cli(capsys, *greedy, '--input_midi_1', common, '--output_dir', tmp_path / 'b')
  assert code == 0 and outputs_of(tmp_path / 'a') == outputs_of(tmp_path / 'b')
  code, _, err = run_cli(capsys, '--mode', 'similar', '--input_midi_1', polka,
                         '--output_dir', tmp_path / 'c')
  assert code == 0 and 'bars 1-2 of 8 (first usable window' in err


def test_generate_write_windows(tmp_path, capsys):
  """--write_windows writes each usable window, named by bars, and exits; a written window
  given back as the input is the window --input_bar takes."""
  tune = write_midi(varied_melody(bars=4), tmp_path / 'tune.mid')
  gap = write_midi(gap_tune(), tmp_path / 'gap.mid')
  windows = tmp_path / 'windows'
  code, text, _ = run_cli(capsys, '--input_midi_1', tune, '--input_midi_2', gap,
                          '--write_windows', windows)
  assert code == 0, text
  assert sorted(os.listdir(windows)) == ['gap_bars_01-02.mid', 'gap_bars_05-06.mid',
                                         'tune_bars_01-02.mid', 'tune_bars_02-03.mid',
                                         'tune_bars_03-04.mid']
  assert 'wrote its 3 usable windows (starting at bars 1-3 of 4)' in text
  assert 'wrote its 2 usable windows (starting at bars 1, 5 of 6)' in text
  assert '--input_bar N' in text
  greedy = ['--mode', 'similar', '--num_outputs', 2, '--temperature', 0, '--seed', 1]
  code, _, err = run_cli(capsys, *greedy, '--input_midi_1', tune, '--input_bar', 2,
                         '--output_dir', tmp_path / 'a')
  assert code == 0, err
  code, _, err = run_cli(capsys, *greedy, '--input_midi_1', windows / 'tune_bars_02-03.mid',
                         '--output_dir', tmp_path / 'b')
  assert code == 0 and 'bars 1-2 of 2 (the whole file)' in err
  assert outputs_of(tmp_path / 'a') == outputs_of(tmp_path / 'b')


def test_generate_attribute_outputs_vary_and_are_seeded(tmp_path, capsys):
  """Attribute mode on one input once decoded the same z five times: with a simple input
  the five files were identical. The first output keeps the input's mu; the others draw
  z from its posterior, seeded."""
  whole = write_midi(make_sequence([(60, 0, 2), (62, 2, 4)]), tmp_path / 'whole.mid')
  args = ['--mode', 'attribute', '--attribute', 'note_density', '--input_midi_1', whole]

  def run(seed, out, n=5):
    code, text, err = run_cli(capsys, *args, '--seed', seed, '--num_outputs', n,
                              '--output_dir', tmp_path / out)
    assert code == 0, err
    return [(tmp_path / out / n).read_bytes() for n in sorted(os.listdir(tmp_path / out))]

  first = run(1, 'a')
  assert len(set(first)) > 2
  assert run(1, 'b') == first  # the same seed, the same files
  assert run(2, 'c') != first
  assert run(1, 'd', n=1) == first[:1]  # output i does not depend on --num_outputs
  model = tm.TrainedModel.load('folk-mel_2bar')
  mu = model.encode([note_seq.midi_file_to_note_sequence(whole)])[1]
  z = mu + model.attribute_vectors['note_density']
  indices, _ = model.decode_indices(z, 32, 0.5, 1)
  assert midi_notes(str(tmp_path / 'a' / 'mvae_attribute_1_01.mid')) == [
      (p, round(s, 3), round(e, 3), d) for p, s, e, d in
      note_tuples(model.to_note_sequences(indices)[0])]


def test_generate_from_a_run_dir_and_a_saved_model_with_tensorflow(tmp_path, capsys):
  from mvae_tf.training import runs
  keras_model = tiny_models.trained_keras_model()
  run_dir = tmp_path / 'run'
  runs.write_run_info(str(run_dir), dict(config=tiny_models.CONFIG,
                                         hparams_overrides=tiny_models.HPARAMS))
  checkpoint = runs.make_checkpoint(keras_model)
  tf.train.CheckpointManager(checkpoint, runs.checkpoint_dir(str(run_dir)), 1).save(300)
  code, text, _ = run_cli(capsys, '--run_dir', run_dir, '--num_outputs', 2, '--seed', 2,
                          '--temperature', 0, '--output_dir', tmp_path / 'a')
  assert code == 0 and 'step 300' in text
  tm.save_model(keras_model, str(tmp_path / 'saved'))
  code, text, _ = run_cli(capsys, '--checkpoint_file', tmp_path / 'saved', '--num_outputs', 2,
                          '--seed', 2, '--temperature', 0, '--output_dir', tmp_path / 'b',
                          '--backend', 'tf')
  assert code == 0
  for name in ('mvae_sample_2_01.mid', 'mvae_sample_2_02.mid'):
    assert midi_notes(str(tmp_path / 'a' / name)) == midi_notes(str(tmp_path / 'b' / name))


def test_generate_wav(tmp_path, capsys, monkeypatch):
  out = tmp_path / 'out'
  monkeypatch.setenv('PATH', str(tmp_path / 'nothing'))
  code, _, err = run_cli(capsys, '--wav', '--output_dir', out)
  assert code == 2 and 'apt-get install fluidsynth fluid-soundfont-gm' in err
  assert not out.exists()  # checked before anything is done
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  # Writes to the -F file a silent 4 s WAV (render_wav checks its length: a 2-bar sample
  # lasts at most 4 s) holding its arguments in a chunk.
  fake = bin_dir / 'fluidsynth'
  fake.write_text(
      '#!%s\nimport struct, sys\nargs = sys.argv[1:]\nnote = " ".join(args).encode()\n'
      'note += b" " * (len(note) & 1)\n'
      'chunks = (b"note" + struct.pack("<I", len(note)) + note + b"fmt " + struct.pack('
      '"<IHHIIHH", 16, 1, 2, 44100, 176400, 4, 16) + b"data" + struct.pack("<I", 705600))\n'
      'with open(args[args.index("-F") + 1], "wb") as f:\n'
      '  f.write(b"RIFF" + struct.pack("<I", 4 + len(chunks) + 705600) + b"WAVE" + chunks)\n'
      '  f.write(bytes(705600))\n'
      % sys.executable)
  fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
  font = tmp_path / 'font.sf2'
  font.write_bytes(b'sf2')
  monkeypatch.setenv('PATH', '%s:/usr/bin:/bin' % bin_dir)
  monkeypatch.setenv('MVAE_SOUNDFONT', str(font))
  code, text, err = run_cli(capsys, '--wav', '--num_outputs', 2, '--seed', 4,
                            '--output_dir', out)
  assert code == 0, err
  wav = (out / 'mvae_sample_4_01.wav').read_bytes()
  assert str(font).encode() in wav and b'mvae_sample_4_01.mid' in wav
  assert sorted(os.listdir(out)) == ['mvae_sample_4_%02d.%s' % (i, e) for i in (1, 2)
                                     for e in ('mid', 'wav')]


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
  d = tmp_path_factory.mktemp('inputs')
  waltz = make_sequence([(60 + i % 5, i * 0.5, (i + 1) * 0.5) for i in range(24)],
                        time_signature=(3, 4))
  one_bar = make_sequence([(60 + i, i * 0.25, (i + 1) * 0.25) for i in range(8)])
  (d / 'garbage.mid').write_bytes(b'not a midi file at all')
  chords = tiny_models.random_model('tiny-mel_2bar_chords')
  from mvae_tf.model.weights import weights_from_keras
  pretrained.write_pretrained(str(d / 'chords'), weights_from_keras(chords),
                              pretrained.model_info(chords))
  return dict(chords=str(d / 'chords'),melody=write_midi(scale_melody(bars=2), d / 'melody.mid'),
              long=write_midi(varied_melody(bars=4), d / 'long.mid'),
              beat=write_midi(rock_beat(bars=2), d / 'beat.mid'),
              waltz=write_midi(waltz, d / 'waltz.mid'),
              short=write_midi(one_bar, d / 'short.mid'),
              garbage=str(d / 'garbage.mid'), missing=str(d / 'missing.mid'), dir=str(d))


ERRORS = [
    (['--mode', 'similar', '--input_midi_1', '{missing}'],
     '--input_midi_1 .*missing.mid: no such file'),
    (['--mode', 'similar', '--input_midi_1', '{garbage}'], 'not a MIDI file'),
    (['--mode', 'similar', '--input_midi_1', '{waltz}'],
     r'yields no window for cat-mel_2bar_cpu: metre 3/4 is not 16 steps per bar.*mvae inspect'),
    (['--mode', 'similar', '--input_midi_1', '{short}'], 'yields no window .*too short'),
    (['--mode', 'similar', '--input_midi_1', '{long}', '--input_bar', '4'],
     '--input_bar 4: --input_midi_1 .*long.mid: it has 4 bars, so no 2-bar window starts at '
     'bar 4; usable windows start at bars 1-3$'),
    (['--mode', 'similar', '--input_midi_1', '{long}', '--input_bar', '0'],
     '--input_bar 0: bars are counted from 1'),
    (['--mode', 'similar', '--input_midi_1', '{waltz}', '--input_bar', '2'],
     r'yields no window for cat-mel_2bar_cpu: metre 3/4 is not 16 steps per bar'),
    (['--input_bar', '2'], '--input_bar needs an input MIDI'),
    (['--write_windows', '{dir}/w'], '--write_windows needs an input MIDI'),
    (['--preset', 'drums_2bar', '--mode', 'similar', '--input_midi_1', '{melody}'],
     'has no drum notes, and drums_2bar .* is a drums model.*--preset folk-mel_2bar'),
    (['--preset', 'folk-mel_2bar', '--mode', 'similar', '--input_midi_1', '{beat}'],
     'holds drums only, and folk-mel_2bar .* is a melody model.*--preset drums_2bar'),
    (['--mode', 'interpolate', '--input_midi_1', '{melody}'], 'needs two inputs'),
    (['--mode', 'similar'], 'needs --input_midi_1'),
    (['--mode', 'sample', '--input_midi_1', '{melody}'], 'takes no input MIDI'),
    (['--mode', 'attribute'], 'needs --attribute NAME'),
    (['--mode', 'attribute', '--attribute', 'loudness'], "unknown attribute 'loudness'; known: "),
    (['--preset', 'drums_2bar', '--mode', 'attribute', '--attribute', 'pitch_range'],
     'pitch_range does not apply to drums_2bar, a drums model; use note_density or syncopation'),
    (['--checkpoint_file', '{missing}.d'], '--checkpoint_file .*: no such model'),
    (['--run_dir', '/nonexistent/run'], '--run_dir /nonexistent/run: no such model'),
    (['--config', 'cat-mel_2bar_smal'], 'unknown config .*did you mean cat-mel_2bar_small'),
    (['--config', 'cat-mel_2bar_small'], 'no model of config cat-mel_2bar_small ships'),
    (['--preset', 'drums_2bar', '--config', 'cat-mel_2bar_cpu'],
     'is a model of config cat-drums_2bar_cpu, not --config cat-mel_2bar_cpu'),
    (['--checkpoint_file', '{chords}'], 'is conditioned on chords'),
    (['--num_outputs', '0'], '--num_outputs must be at least 1'),
    (['--length', '0'], '--length must be at least 1'),
    (['--length', '10000'], '--length 10000: folk-mel_2bar .* trained on windows of 32 '
                            'steps.*hierarchical 16-bar model'),
    (['--mode', 'similar', '--input_midi_1', '{dir}'],
     '--input_midi_1 .* is a directory; give a MIDI file'),
    (['--checkpoint', '{missing}.d'], '--checkpoint_file .*: no such model'),
    (['--num_outputs', '5000'], '--num_outputs 5000 is more than --max_outputs 1000'),
    (['--temperature', 'nan'], r'--temperature nan: give a finite number >= 0 .*useful range'),
    (['--temperature', 'inf'], '--temperature inf: give a finite number'),
    (['--temperature', '-1'], '--temperature -1.0: give a finite number >= 0'),
]


@pytest.mark.parametrize('args,message', ERRORS, ids=[str(i) for i in range(len(ERRORS))])
def test_generate_errors(args, message, inputs, tmp_path, capsys):
  code, out, err = run_cli(capsys, *[a.format(**inputs) for a in args],
                           '--output_dir', tmp_path / 'out')
  assert code == 2 and err.startswith('mvae generate: error: '), (out, err)
  assert len(err.strip().split('\n')) == 1  # one line, no traceback
  assert re.search(message, err), err
  assert not (tmp_path / 'out').exists()


def test_a_packaged_model_with_non_finite_weights_is_refused(tmp_path, capsys):
  """All-NaN weights once generated empty MIDI with exit 0: now one line naming the weight."""
  import shutil
  from mvae_tf import pretrained
  damaged = tmp_path / 'damaged'
  shutil.copytree(pretrained.preset_dir('folk-mel_2bar'), damaged)
  weights = pretrained.read_weights(str(damaged))
  name = sorted(weights)[0]
  weights[name][...] = np.nan
  np.savez_compressed(damaged / pretrained.WEIGHTS_FILE,
                      **{k: v.astype(np.float16) for k, v in weights.items()})
  # The Keras model reads weights.npz (the exported graphs never do).
  code, _, err = run_cli(capsys, '--checkpoint_file', damaged, '--backend', 'tf',
                         '--output_dir', tmp_path / 'o')
  assert code == 2 and len(err.strip().split('\n')) == 1, err
  assert 'weight %s holds NaN or infinite values' % name in err
  assert not (tmp_path / 'o').exists()


def test_exported_graphs_that_give_non_finite_values_are_refused(tmp_path, capsys, monkeypatch):
  """The same for model.tflite: its decode is checked (all-NaN logits would sample one
  class everywhere)."""
  from edge_demo import runtime
  real = runtime.TFLiteModel.decode

  def poisoned(self, z, temperature, noise):
    tokens, logits = real(self, z, temperature, noise)
    return tokens, np.full_like(logits, np.nan)
  monkeypatch.setattr(runtime.TFLiteModel, 'decode', poisoned)
  code, _, err = run_cli(capsys, '--output_dir', tmp_path / 'o')
  assert code == 2 and len(err.strip().split('\n')) == 1, err
  assert 'model.tflite gives NaN or infinite values' in err and 'reinstall mvae_tf' in err


def test_checkpoint_file_takes_a_shipped_model_name(tmp_path, capsys):
  """One resolver: what --preset names, --checkpoint_file (and export, evaluate) take too."""
  code, text, _ = run_cli(capsys, '--checkpoint_file', 'drums_2bar', '--num_outputs', 1,
                          '--seed', 3, '--output_dir', tmp_path / 'o')
  assert code == 0 and 'drums_2bar (cat-drums_2bar_cpu, drums' in text
  assert 'wrote 1 output to' in text
  assert os.listdir(tmp_path / 'o') == ['mvae_sample_3_01.mid']


def test_a_packaged_model_of_an_unknown_config_is_refused(tmp_path, capsys):
  """A config.json naming a config that does not exist was accepted and printed."""
  import json
  import shutil
  from mvae_tf import configs, pretrained
  from mvae_tf.data import converters
  assert configs.MEL_PROGRAMS == tuple(converters.MEL_PROGRAMS)
  damaged = tmp_path / 'renamed'
  shutil.copytree(pretrained.preset_dir('folk-mel_2bar'), damaged)
  info = json.loads((damaged / pretrained.INFO_FILE).read_text())
  info['config'] = 'cat-mel_2bar_cpuu'
  (damaged / pretrained.INFO_FILE).write_text(json.dumps(info))
  code, _, err = run_cli(capsys, '--checkpoint_file', damaged, '--output_dir', tmp_path / 'o')
  assert code == 2 and len(err.strip().split('\n')) == 1, err
  assert "unknown config 'cat-mel_2bar_cpuu' (did you mean cat-mel_2bar_cpu?)" in err
  assert 'config.json' in err and not (tmp_path / 'o').exists()


def test_the_trio_preset_writes_16_bar_trios_with_three_lane_piano_rolls(tmp_path, capsys):
  """`mvae generate --preset trio_16bar --plot`: melody, bass and drums over 16 bars, and a
  piano roll of three lanes (melody, bass, drum grid) for each."""
  code, text, _ = run_cli(capsys, '--preset', 'trio_16bar', '--num_outputs', 2, '--seed', 3,
                          '--temperature', 0.5, '--plot', '--output_dir', tmp_path)
  assert code == 0 and 'trio_16bar' in text and 'hierdec-trio_16bar_cpu' in text
  for i in (1, 2):
    pm = pretty_midi.PrettyMIDI(str(tmp_path / ('mvae_sample_3_%02d.mid' % i)))
    drums = [inst for inst in pm.instruments if inst.is_drum]
    pitched = [inst for inst in pm.instruments if not inst.is_drum]
    assert drums and drums[0].notes, 'no drums'
    assert {inst.program for inst in pitched} >= {pretrained.decoding_info(
        'hierdec-trio_16bar_cpu')['bass_program']}, 'no bass part'
    seconds_per_bar = 4 * 60.0 / 120
    last = max(n.end for inst in pm.instruments for n in inst.notes)
    assert 8 * seconds_per_bar < last <= 16 * seconds_per_bar + 1e-6  # a 16-bar window
    import matplotlib.image
    height, width = matplotlib.image.imread(str(tmp_path / ('mvae_sample_3_%02d.png' % i))).shape[:2]
    assert height == 820  # three panels of 2.6 in (+ 0.4) at 100 dpi: melody, bass, drums


def test_the_16_bar_drum_preset_writes_16_bar_grooves_with_a_drum_grid(tmp_path, capsys):
  """`mvae generate --preset drums_16bar --plot`: drums only, over 16 bars, and one drum
  grid (the nine classes) across all 256 steps."""
  code, text, _ = run_cli(capsys, '--preset', 'drums_16bar', '--num_outputs', 2, '--seed', 3,
                          '--temperature', 0.5, '--plot', '--output_dir', tmp_path)
  assert code == 0 and 'drums_16bar' in text and 'hierdec-drums_16bar_cpu' in text
  for i in (1, 2):
    pm = pretty_midi.PrettyMIDI(str(tmp_path / ('mvae_sample_3_%02d.mid' % i)))
    assert pm.instruments and all(inst.is_drum for inst in pm.instruments)
    notes = [n for inst in pm.instruments for n in inst.notes]
    seconds_per_bar = 4 * 60.0 / 120
    assert 8 * seconds_per_bar < max(n.end for n in notes) <= 16 * seconds_per_bar + 1e-6
    bars_played = {int(n.start // seconds_per_bar) for n in notes}
    assert len(bars_played) >= 8, bars_played  # a groove across the window, not one bar
    import matplotlib.image
    height, width = matplotlib.image.imread(str(tmp_path / ('mvae_sample_3_%02d.png' % i))).shape[:2]
    assert (height, width) == (300, 4000)  # one drum grid, 256 steps at the widest figure
