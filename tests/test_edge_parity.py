"""edge_demo (LiteRT, numpy and mido only) against mvae_tf (TensorFlow, note_seq).

* MIDI -> encoder inputs: edge_demo.music reads MIDI with mido and re-implements
  the converters' window rules; its windows must equal mvae_tf's converter windows
  (`make_converter('eval').to_tensors`), the per-bar windows `mvae generate` picks
  from (TrainedModel.bar_windows) and the one it chooses (choose_window, with and
  without --input_bar), on the reference MIDI files.
* The same windows, from mvae_tf, are stored in edge_demo/tests/data/
  windows_expected.json for edge_demo's own tests (which run without mvae_tf);
  a test here checks that file is what mvae_tf gives today
  (MVAE_WRITE_EDGE_GOLDEN=1 rewrites it).
* Same z and noise, same notes: `python -m edge_demo sample` draws z and noise as
  edge_demo.cli documents; decoding those with the Keras model
  (mvae_tf.export.graphs.InferenceGraphs) and writing notes with
  mvae_tf.generation.render.notes_from_indices gives the notes of edge_demo's MIDI files.
  Likewise `interpolate` against TrainedModel.interpolate.
"""

import glob
import json
import os

import numpy as np
import pytest

from conftest import REFERENCE

note_seq = pytest.importorskip('note_seq')

from edge_demo import cli as edge_cli  # noqa: E402
from edge_demo import metadata as edge_metadata  # noqa: E402
from edge_demo import music  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRETRAINED = os.path.join(REPO, 'mvae_tf', 'pretrained')
EDGE_DATA = os.path.join(REPO, 'edge_demo', 'tests', 'data')
GOLDEN = os.path.join(EDGE_DATA, 'windows_expected.json')
MODELS = {'melody': ('folk-mel_2bar', 'cat-mel_2bar_cpu'),
          'drums': ('drums_2bar', 'cat-drums_2bar_cpu')}


def _reference_files(kind):
  return sorted(glob.glob(os.path.join(REFERENCE, 'converters', kind, 'midi', '*.mid')))


def _trio_files():
  return sorted(glob.glob(os.path.join(REFERENCE, 'converters', 'trio', 'midi', '*.mid')))


def _meta(kind):
  return edge_metadata.read_tflite_metadata(
      os.path.join(PRETRAINED, MODELS[kind][0], 'model.tflite'))


def _rows(kind, x):
  """A window's inputs as one int per step: the class (melody), the roll's bits (drums)."""
  x = np.asarray(x, np.float32)
  if kind == 'melody':
    return [int(i) for i in x.argmax(-1)]
  return [int(v) for v in (x > 0.5).astype(np.int64) @ (2 ** np.arange(x.shape[-1]))]


def _sequence(path, renotate):
  from mvae_tf.data.corpus import build as corpus_build
  ns = note_seq.midi_file_to_note_sequence(path)
  if renotate:
    corpus_build.merge_two_four(ns)
  return ns


@pytest.fixture(scope='module')
def trained():
  from mvae_tf.generation.trained_model import TrainedModel
  return {kind: TrainedModel.load(name) for kind, (name, _) in MODELS.items()}


def _mvae_view(kind, path, model):
  """What mvae_tf makes of a MIDI file: converter windows, per-bar windows, the chosen one."""
  from mvae_tf import configs
  from mvae_tf.generation.trained_model import EncodeError
  converter = configs.get_config(MODELS[kind][1]).make_converter('eval')
  view = dict(converter_windows=[_rows(kind, x) for x in
                                 converter.to_tensors(_sequence(path, False)).inputs])
  ns = _sequence(path, True)
  bars = []
  for window in model.bar_windows(ns):
    rows = None
    if window.usable:
      rows = _rows(kind, model.converter.to_tensors(window.sequence).inputs[0])
    bars.append([window.first_bar, rows])
  view['bar_windows'] = bars
  try:
    window = model.choose_window(ns)
  except EncodeError:
    view['chosen'] = None
  else:
    view['chosen'] = dict(first_bar=window.first_bar, last_bar=window.last_bar,
                          total_bars=window.total_bars,
                          rows=_rows(kind, model.converter.to_tensors(window.sequence).inputs[0]))
  return view


def _edge_view(kind, path):
  meta = _meta(kind)
  rep, depth = meta['representation'], meta['input_depth']
  score = music.read_midi(path)
  inputs, _ = music.converter_windows(score, rep, depth)
  view = dict(converter_windows=[_rows(kind, x) for x in inputs])
  view['bar_windows'] = [[bar, None if x is None else _rows(kind, x)]
                         for bar, x, _ in music.bar_windows(score, rep, depth)]
  window = music.windows(score, rep, input_depth=depth)
  view['chosen'] = None if window.inputs is None else dict(
      first_bar=window.first_bar, last_bar=window.last_bar, total_bars=window.total_bars,
      rows=_rows(kind, window.inputs))
  return view


@pytest.mark.parametrize('kind', ['melody', 'drums'])
def test_edge_windows_equal_mvae_tf_on_the_reference_midi_files(trained, kind):
  files = _reference_files(kind) + _trio_files()  # trio files: several instruments
  assert len(files) >= 20
  for path in files:
    assert _edge_view(kind, path) == _mvae_view(kind, path, trained[kind]), path


@pytest.mark.parametrize('kind', ['melody', 'drums'])
def test_edge_windows_at_a_bar_equal_mvae_generate_input_bar(trained, kind):
  """--bar N (mvae generate --input_bar N): the same window, or no window at all."""
  from mvae_tf.generation.trained_model import EncodeError
  model = trained[kind]
  meta = _meta(kind)
  checked = 0
  for path in _reference_files(kind):
    ns = _sequence(path, True)
    score = music.read_midi(path)
    total = music.windows(score, meta['representation'],
                          input_depth=meta['input_depth']).total_bars
    for bar in range(1, total + 2):
      mine = music.windows(score, meta['representation'], bar=bar,
                           input_depth=meta['input_depth'])
      try:
        window = model.choose_window(ns, bar)
      except EncodeError:
        assert mine.inputs is None, (path, bar)
        assert mine.reason
        continue
      rows = _rows(kind, model.converter.to_tensors(window.sequence).inputs[0])
      assert mine.inputs is not None, (path, bar, mine.reason)
      assert (_rows(kind, mine.inputs), mine.first_bar, mine.last_bar) == (
          rows, window.first_bar, window.last_bar), (path, bar)
      checked += 1
  assert checked > 20


def test_the_stored_windows_for_edge_tests_are_mvae_tfs(trained):
  """edge_demo/tests/data/windows_expected.json: mvae_tf's windows of the MIDI files
  edge_demo's tests read (there, without mvae_tf)."""
  files = {}
  for kind in ('melody', 'drums'):
    for path in sorted(glob.glob(os.path.join(EDGE_DATA, 'midi', kind, '*.mid'))):
      files['%s/%s' % (kind, os.path.basename(path))] = _mvae_view(kind, path, trained[kind])
  assert len(files) >= 20
  golden = dict(about='mvae_tf windows of the MIDI files in midi/ (written by '
                      'tests/test_edge_parity.py with MVAE_WRITE_EDGE_GOLDEN=1): one int per '
                      'step, the melody class or the drum roll bits (bit 9: no hit)',
                models={k: dict(model=v[0], config=v[1]) for k, v in MODELS.items()},
                files=files)
  if os.environ.get('MVAE_WRITE_EDGE_GOLDEN') == '1':
    with open(GOLDEN, 'w') as f:
      json.dump(golden, f, sort_keys=True, separators=(',', ':'))
      f.write('\n')
  with open(GOLDEN) as f:
    assert json.load(f) == json.loads(json.dumps(golden))


# --- Same z and noise, same notes. ---

@pytest.fixture(scope='module')
def keras_models():
  pytest.importorskip('tensorflow')
  from mvae_tf.generation.trained_model import TrainedModel
  return {kind: TrainedModel.load(name, backend='tf') for kind, (name, _) in MODELS.items()}


def _midi_notes(path, qpm=120.0, steps_per_quarter=4):
  """(pitch, start, end, is_drum, program) in steps of the notes of a MIDI file."""
  step = 60.0 / qpm / steps_per_quarter
  return sorted((n.pitch, int(round(n.start / step)), int(round(n.end / step)), n.is_drum,
                 0 if n.is_drum else n.program) for n in music.read_midi(path).notes)


def _render_notes(tokens, data):
  from mvae_tf.generation import render
  return sorted((n.pitch, n.start, n.end, n.is_drum, n.program)
                for n in render.notes_from_indices(tokens, data))


@pytest.mark.parametrize('kind', ['melody', 'drums'])
def test_sample_writes_the_notes_mvae_tf_decodes_from_the_same_z_and_noise(
    tmp_path, keras_models, kind, capsys):
  import tensorflow as tf
  from mvae_tf.export.graphs import InferenceGraphs
  model = keras_models[kind]
  num, seed, temperature = 12, 7, 0.8
  rc = edge_cli.main(['sample', '--num', str(num), '--seed', str(seed), '--temperature',
                      str(temperature), '--out', str(tmp_path), '--model',
                      os.path.join(PRETRAINED, MODELS[kind][0], 'model.tflite')])
  assert rc == 0, capsys.readouterr().err
  # The draw order edge_demo.cli documents, written out again here.
  rng = np.random.default_rng(seed)
  z = rng.standard_normal((num, model.z_size)).astype(np.float32)
  depth = sum(model.output_depths)
  noise = rng.uniform(np.finfo(np.float32).tiny, 1.0, (num, model.max_seq_len, depth)).astype(
      np.float32)
  graphs = InferenceGraphs(model.model)
  tokens = graphs.decode(tf.constant(z), tf.constant(np.full([num], temperature, np.float32)),
                         tf.constant(noise))['tokens'].numpy()
  for i in range(num):
    path = tmp_path / ('sample_%d_%02d.mid' % (seed, i + 1))
    assert _midi_notes(str(path)) == _render_notes(tokens[i], model.data), path


def test_interpolate_writes_the_notes_of_mvae_tf_interpolate(tmp_path, keras_models, capsys):
  model = keras_models['melody']
  a = os.path.join(REFERENCE, 'converters', 'melody', 'midi', '01_simple_4bars.mid')
  b = os.path.join(REFERENCE, 'converters', 'melody', 'midi', '08_long_repeated_riff.mid')
  rc = edge_cli.main(['interpolate', '--a', a, '--b', b, '--steps', '5', '--out',
                      str(tmp_path), '--model',
                      os.path.join(PRETRAINED, 'folk-mel_2bar', 'model.tflite')])
  assert rc == 0, capsys.readouterr().err
  seq_a = model.choose_window(_sequence(a, True)).sequence
  seq_b = model.choose_window(_sequence(b, True)).sequence
  _, _, indices = model.interpolate(seq_a, seq_b, 5, temperature=0.0, return_tensors=True)
  for i in range(5):
    path = tmp_path / ('interpolate_%02d.mid' % (i + 1))
    assert _midi_notes(str(path)) == _render_notes(indices[i], model.data), path


def test_render_uses_edge_demos_note_functions():
  from mvae_tf.generation import render
  assert render.notes_from_indices is music.notes_from_indices
  assert render.Note is music.Note
  assert render.melody_notes is music.melody_notes and render.drum_notes is music.drum_notes
