"""`python -m edge_demo`: sample, interpolate, --version, and bad input (one line, exit 2)."""

import ctypes.util
import os
import re

import mido
import numpy as np
import pytest

from edge_demo import cli as cli_lib
from edge_demo import metadata, music, runtime

LEGACY = os.environ.get('MVAE_EDGE_LEGACY') == '1'  # the legacy CI job (tflite-runtime 2.14)

MELODY_MIDI = ('melody', '01_simple_4bars.mid')
RIFF_MIDI = ('melody', '08_long_repeated_riff.mid')
FORBIDDEN = ('tensorflow', 'note_seq', 'mvae_tf', 'pretty_midi', 'keras')


def midi(data_dir, kind, name):
  return os.path.join(data_dir, 'midi', kind, name)


def notes_of(path):
  """(channel, pitch, start tick) of every note-on of a MIDI file, read with mido."""
  f = mido.MidiFile(path)
  out = []
  for track in f.tracks:
    tick = 0
    for m in track:
      tick += m.time
      if m.type == 'note_on' and m.velocity:
        out.append((m.channel, m.note, tick))
  return sorted(out)


def one_error_line(err, command):
  lines = err.strip().splitlines()
  assert len(lines) == 1, err
  assert lines[0].startswith('edge_demo %s: error: ' % command), err
  assert 'Traceback' not in err
  return lines[0]


# --- --version ---

def test_version_names_edge_demo_the_runtime_numpy_and_mido(cli):
  rc, out, _ = cli('--version')
  assert rc == 0
  _, name, version = runtime.find_runtime()
  assert out.splitlines()[0] == 'edge_demo 0.1.0'
  assert 'runtime: %s %s' % (name, version) in out
  assert 'numpy %s' % np.__version__ in out
  assert re.search(r'^mido \d', out, re.M)


def test_help_lists_the_commands(run_process):
  result = run_process('--help')
  assert result.returncode == 0
  for command in ('sample', 'interpolate'):
    assert command in result.stdout
  for command in cli_lib.EXTRA_COMMANDS:
    if os.path.exists(os.path.join(os.path.dirname(cli_lib.__file__), command + '.py')):
      assert command in result.stdout


def test_a_command_module_not_written_yet_is_left_out(monkeypatch):
  monkeypatch.setattr(cli_lib, 'EXTRA_COMMANDS', ('no_such_command_module',))
  parser = cli_lib.build_parser()
  assert 'no_such_command_module' not in parser.format_help()


# --- sample ---

def test_sample_writes_melody_midi(cli, tmp_path, melody_model):
  rc, out, err = cli('sample', '--num', 3, '--temperature', 0.8, '--seed', 1, '--out', tmp_path,
                     '--model', melody_model)
  assert rc == 0, err
  files = sorted(os.listdir(str(tmp_path)))
  assert files == ['sample_1_01.mid', 'sample_1_02.mid', 'sample_1_03.mid']
  lines = out.strip().splitlines()
  assert len(lines) == 4
  assert 'folk-mel_2bar (melody' in lines[-1] and 'seed 1' in lines[-1]
  for name, line in zip(files, lines):
    path = str(tmp_path / name)
    assert line.startswith(path + ': ')
    f = mido.MidiFile(path)
    messages = [m for t in f.tracks for m in t]
    assert [m.tempo for m in messages if m.type == 'set_tempo'] == [mido.bpm2tempo(120.0)]
    assert [m.program for m in messages if m.type == 'program_change'] == [0]
    ons = notes_of(path)
    assert ons and {c for c, _, _ in ons} == {0}
    assert all(21 <= p <= 108 for _, p, _ in ons)
    assert max(t for _, _, t in ons) < 32 * 120  # 2 bars of 16 steps, 120 ticks a step
    assert '%d notes' % len(ons) in line


def test_sample_writes_drums_on_channel_10(cli, tmp_path, drums_model):
  rc, out, err = cli('sample', '--num', 2, '--seed', 5, '--out', tmp_path, '--model', drums_model)
  assert rc == 0, err
  for i in (1, 2):
    ons = notes_of(str(tmp_path / ('sample_5_%02d.mid' % i)))
    assert ons and {c for c, _, _ in ons} == {9}
    assert {p for _, p, _ in ons} <= {36, 38, 42, 46, 45, 48, 50, 49, 51}


def test_the_same_seed_gives_the_same_files(cli, tmp_path, melody_model):
  for out in ('a', 'b', 'c'):
    seed = 2 if out == 'c' else 1
    rc, _, err = cli('sample', '--num', 4, '--seed', seed, '--temperature', 1.0, '--out',
                     tmp_path / out, '--model', melody_model)
    assert rc == 0, err

  def read(out, seed):
    return [open(str(tmp_path / out / ('sample_%d_%02d.mid' % (seed, i))), 'rb').read()
            for i in range(1, 5)]
  assert read('a', 1) == read('b', 1)
  assert read('a', 1) != read('c', 2)


@pytest.mark.parametrize('which,bars', [('melody_model', 2), ('melody_16bar_model', 16),
                                        ('trio_16bar_model', 16)])
def test_sample_notes_are_the_decode_of_the_documented_draws(cli, tmp_path, request, which,
                                                             bars):
  """z then noise from default_rng(seed) (edge_demo.cli.draw): what tests/test_edge_parity.py
  decodes with mvae_tf to check the notes are mvae_tf's. The 16-bar models are hierarchical
  (conductor, then a bar at a time); the trio's notes are its three parts'."""
  path = request.getfixturevalue(which)
  rc, out, err = cli('sample', '--num', 2, '--seed', 9, '--temperature', 0.7, '--out',
                     tmp_path, '--model', path)
  assert rc == 0, err
  assert out.count(', %d bars' % bars) == 2
  model = runtime.TFLiteModel(path)
  assert model.num_steps == 16 * bars
  rng = np.random.default_rng(9)
  z = rng.standard_normal((2, model.z_size)).astype(np.float32)
  noise = rng.uniform(np.finfo(np.float32).tiny, 1.0,
                      (2, model.num_steps, sum(model.depths))).astype(np.float32)
  tokens, _ = model.decode(z, 0.7, noise)
  rep = model.metadata['representation']
  for i in range(2):
    expected = music.notes_from_indices(tokens[i], rep)
    assert expected
    got = music.read_midi(str(tmp_path / ('sample_9_%02d.mid' % (i + 1)))).notes
    step = 60.0 / 120.0 / 4
    assert sorted((n.pitch, round(n.start / step), round(n.end / step)) for n in got) == \
        sorted((n.pitch, n.start, n.end) for n in expected)


def test_sample_imports_neither_tensorflow_nor_note_seq_nor_mvae_tf(run_process, tmp_path,
                                                                    melody_model):
  result = run_process('sample', '--num', 1, '--seed', 1, '--out', tmp_path, '--model',
                       melody_model, python_options=('-X', 'importtime'))
  assert result.returncode == 0, result.stderr
  imported = set()
  for line in result.stderr.splitlines():
    if line.startswith('import time:') and '|' in line:
      imported.add(line.rsplit('|', 1)[1].strip().split('.')[0])
  assert 'edge_demo' in imported and 'mido' in imported
  assert not imported & set(FORBIDDEN), sorted(imported & set(FORBIDDEN))


# --- interpolate ---

def test_interpolate_end_points_are_the_inputs_codes(cli, tmp_path, data_dir, melody_model):
  a, b = midi(data_dir, *MELODY_MIDI), midi(data_dir, *RIFF_MIDI)
  rc, out, err = cli('interpolate', '--a', a, '--b', b, '--steps', 4, '--out', tmp_path,
                     '--model', melody_model)
  assert rc == 0, err
  lines = out.strip().splitlines()
  assert lines[0] == '--a %s: bars 1-2 of 4 (the first usable window; --bar N for another)' % a
  assert lines[1].startswith('--b %s: bars 1-2 of 20' % b)
  assert sorted(os.listdir(str(tmp_path))) == ['interpolate_%02d.mid' % i for i in range(1, 5)]
  # The end points: the greedy decodes of each input window's mu.
  model = runtime.TFLiteModel(melody_model)
  rep = model.metadata['representation']
  windows = [music.windows(music.read_midi(p), rep) for p in (a, b)]
  mu, _ = model.encode(np.stack([w.inputs for w in windows]), [32, 32])
  tokens, _ = model.decode(mu, 0.0, np.full((2, 32, 90), 0.5, np.float32))
  step = 60.0 / 120.0 / 4
  for i, name in ((0, 'interpolate_01.mid'), (1, 'interpolate_04.mid')):
    got = music.read_midi(str(tmp_path / name)).notes
    assert sorted((n.pitch, round(n.start / step)) for n in got) == \
        sorted((n.pitch, n.start) for n in music.notes_from_indices(tokens[i], rep))
  # and the simple scale comes back nearly as it went in
  assert np.mean(tokens[0, :, 0] == windows[0].inputs.argmax(-1)) > 0.85


def test_interpolate_at_a_bar(cli, tmp_path, data_dir, melody_model):
  a, b = midi(data_dir, *MELODY_MIDI), midi(data_dir, *RIFF_MIDI)
  rc, out, err = cli('interpolate', '--a', a, '--b', b, '--bar', 3, '--out', tmp_path,
                     '--model', melody_model)
  assert rc == 0, err
  assert 'bars 3-4 of 4 (--bar 3)' in out.splitlines()[0]
  assert len(os.listdir(str(tmp_path))) == 5


def test_interpolate_drums(cli, tmp_path, data_dir, drums_model):
  a = midi(data_dir, 'drums', '01_rock_4bars.mid')
  b = midi(data_dir, 'drums', '08_long_repeated_groove.mid')
  rc, _, err = cli('interpolate', '--a', a, '--b', b, '--steps', 3, '--out', tmp_path,
                   '--model', drums_model)
  assert rc == 0, err
  for name in os.listdir(str(tmp_path)):
    assert {c for c, _, _ in notes_of(str(tmp_path / name))} <= {9}


# --- Bad input: one line, exit 2. ---

def _patched_model(tmp_path, source, replacements, name='patched.tflite'):
  """A copy of a .tflite with bytes of its packed metadata replaced (same lengths)."""
  with open(source, 'rb') as f:
    data = f.read()
  for old, new in replacements:
    assert len(old) == len(new) and old in data, old
    data = data.replace(old, new, 1)
  path = str(tmp_path / name)
  with open(path, 'wb') as f:
    f.write(data)
  return path


def _bad_model(kind, tmp_path, source):
  if kind == 'missing':
    return str(tmp_path / 'nothing.tflite'), 'no such file'
  if kind == 'directory':
    return str(tmp_path), 'is a directory'
  path = str(tmp_path / ('%s.tflite' % kind))
  with open(source, 'rb') as f:
    data = f.read()
  if kind == 'garbage':
    data, words = os.urandom(4096), 'is not a TFLite model'
  elif kind == 'truncated':
    data, words = data[:5000], 'damaged or truncated'
  elif kind == 'truncated_end':
    data, words = data[:-300], 'cannot load it'
  elif kind == 'no_metadata':
    return _patched_model(tmp_path, source, [(b'mvae_tf\x00', b'mvae_tX\x00')]), \
        'has no mvae_tf metadata'
  with open(path, 'wb') as f:
    f.write(data)
  return path, words


@pytest.mark.parametrize('kind', ['missing', 'directory', 'garbage', 'truncated',
                                  'truncated_end', 'no_metadata'])
def test_a_bad_model_file_is_one_line(cli, tmp_path, melody_model, kind):
  path, words = _bad_model(kind, tmp_path, melody_model)
  rc, out, err = cli('sample', '--num', 1, '--out', tmp_path / 'out', '--model', path)
  assert rc == 2
  line = one_error_line(err, 'sample')
  assert words in line and path in line


def test_metadata_that_does_not_match_the_graphs_is_one_line(cli, tmp_path, melody_model):
  path = _patched_model(tmp_path, melody_model, [(b'"shape": [1, 64]', b'"shape": [1, 65]')])
  rc, _, err = cli('sample', '--num', 1, '--out', tmp_path / 'out', '--model', path)
  assert rc == 2
  line = one_error_line(err, 'sample')
  assert 'in its metadata: re-export it' in line


def test_a_runtime_too_old_for_the_model_names_the_export_to_use(cli, tmp_path, melody_model,
                                                                  monkeypatch):
  """tflite-runtime 2.14 and a dynamic-range export: the interpreter fails on allocate
  (simulated here; the legacy runtime's own message)."""
  path = _patched_model(tmp_path, melody_model, [
      (b'"legacy_tflite_runtime_2_14": true,', b'"legacy_tflite_runtime_2_14":false,'),
      (b'"quantization": "float16"', b'"quantization": "dynamic"')])

  def old_runtime(*args, **kwargs):
    raise RuntimeError("Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'. An "
                       "older version of this builtin might be supported. Are you using an "
                       "old TFLite binary with a newer model?\nRegistration failed.")
  monkeypatch.setattr(runtime, 'load_interpreter', old_runtime)
  monkeypatch.setattr(runtime, 'find_runtime', lambda: (None, 'tflite_runtime', '2.14.0'))
  rc, _, err = cli('sample', '--num', 1, '--out', tmp_path / 'out', '--model', path)
  assert rc == 2
  line = one_error_line(err, 'sample')
  assert 'dynamic export' in line and 'tflite-runtime 2.14.0' in line
  assert 'float16' in line and '`mvae export MODEL --quantize float16`' in line


def test_edgetpu_without_libedgetpu_says_how_to_install_it(cli, tmp_path, melody_model):
  if ctypes.util.find_library('edgetpu'):
    pytest.skip('libedgetpu is installed here')
  rc, _, err = cli('sample', '--num', 1, '--out', tmp_path, '--model', melody_model,
                   '--edgetpu')
  assert rc == 2
  line = one_error_line(err, 'sample')
  assert '--edgetpu' in line and 'apt-get install libedgetpu1-std' in line


@pytest.mark.parametrize('where', ['under_a_file', 'a_file'])
def test_an_unwritable_out_is_one_line(cli, tmp_path, melody_model, where):
  blocker = tmp_path / 'file'
  blocker.write_text('x')
  out = blocker / 'sub' if where == 'under_a_file' else blocker
  rc, _, err = cli('sample', '--num', 1, '--out', out, '--model', melody_model)
  assert rc == 2
  line = one_error_line(err, 'sample')
  assert '--out %s' % out in line


@pytest.mark.parametrize('args, words', [
    (('--num', 0), '--num must be at least 1'),
    (('--temperature', -0.5), '--temperature must be 0'),
    (('--temperature', 'nan'), '--temperature must be 0'),
    (('--numThreads', 0), '--numThreads must be at least 1'),
    (('--seed', -1), '--seed must be 0 or more'),
    (('--num', 'four'), "invalid int value: 'four'"),
])
def test_bad_sample_options_are_one_line(cli, tmp_path, melody_model, args, words):
  rc, _, err = cli('sample', '--out', tmp_path, '--model', melody_model, *args)
  assert rc == 2
  assert words in one_error_line(err, 'sample')
  assert not os.listdir(str(tmp_path))


@pytest.mark.parametrize('case', ['missing', 'garbage', 'empty', 'directory', 'metre',
                                  'drums_in_melody', 'bar_past_the_end', 'steps', 'bar_zero',
                                  'temperature'])
def test_bad_interpolate_input_is_one_line(cli, tmp_path, data_dir, melody_model, case):
  good = midi(data_dir, *MELODY_MIDI)
  a, extra, words = good, (), None
  if case == 'missing':
    a, words = str(tmp_path / 'none.mid'), 'no such file'
  elif case == 'garbage':
    a = str(tmp_path / 'garbage.mid')
    with open(a, 'wb') as f:
      f.write(b'MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x10\x00\x90')
    words = 'not a MIDI file'
  elif case == 'empty':
    a = str(tmp_path / 'empty.mid')
    open(a, 'wb').close()
    words = 'is empty'
  elif case == 'directory':
    a, words = str(tmp_path), 'is a directory'
  elif case == 'metre':
    a, words = midi(data_dir, 'melody', '10_metre_6_8.mid'), 'metre 6/8 is not 16 steps per bar'
  elif case == 'drums_in_melody':
    a, words = midi(data_dir, 'drums', '01_rock_4bars.mid'), 'drums only'
  elif case == 'bar_past_the_end':
    extra, words = ('--bar', 4), 'it has 4 bars, so no 2-bar window starts at bar 4'
  elif case == 'steps':
    extra, words = ('--steps', 1), '--steps must be at least 2'
  elif case == 'bar_zero':
    extra, words = ('--bar', 0), 'bars are counted from 1'
  elif case == 'temperature':
    extra, words = ('--temperature', -1), '--temperature must be 0'
  rc, out, err = cli('interpolate', '--a', a, '--b', good, '--out', tmp_path / 'out',
                     '--model', melody_model, *extra)
  assert rc == 2
  line = one_error_line(err, 'interpolate')
  assert words in line, line
  if case in ('missing', 'garbage', 'empty', 'directory', 'metre', 'drums_in_melody'):
    assert line.startswith('edge_demo interpolate: error: --a %s' % a)
  assert not os.path.exists(str(tmp_path / 'out')) or not os.listdir(str(tmp_path / 'out'))


def test_bad_input_in_a_new_process_is_one_line_and_exit_2(run_process, tmp_path):
  result = run_process('sample', '--out', tmp_path, '--model', tmp_path / 'none.tflite')
  assert result.returncode == 2
  one_error_line(result.stderr, 'sample')
  result = run_process('interpolate', '--a', tmp_path / 'a.mid', '--b', tmp_path / 'b.mid',
                       '--out', tmp_path)
  assert result.returncode == 2
  one_error_line(result.stderr, 'interpolate')


def test_open_model_default_and_errors(melody_model, tmp_path):
  class Args:
    model, numThreads, edgetpu = None, 1, False
  if os.path.abspath(cli_lib.DEFAULT_MODEL) == os.path.abspath(melody_model):
    model = cli_lib.open_model(Args)
    assert model.metadata['name'] == 'folk-mel_2bar' and model.z_size == 64
  Args.model = str(tmp_path / 'x.tflite')
  with pytest.raises(cli_lib.EdgeError, match='no such file'):
    cli_lib.open_model(Args)


def test_the_runtime_the_tests_run_on(melody_model):
  """Which runtime this run uses (the legacy CI job sets MVAE_EDGE_LEGACY=1)."""
  _, name, _ = runtime.find_runtime()
  assert name == ('tflite_runtime' if LEGACY else 'ai_edge_litert')
  meta = metadata.read_tflite_metadata(melody_model)
  if name == 'tflite_runtime':
    assert meta['legacy_tflite_runtime_2_14'] is True
