"""`mvae prepare` and `mvae inspect` on good and bad input."""

import json
import os
import signal
import subprocess
import sys
import time

import note_seq
import pytest

from conftest import REFERENCE, rock_beat, scale_melody, varied_melody
from mvae_tf.data import prepare, sources, tfrecord

MELODY_MIDI = os.path.join(REFERENCE, 'converters', 'melody', 'midi')


def _write_midi(path, ns):
  note_seq.sequence_proto_to_midi_file(ns, str(path))
  return path


@pytest.fixture
def mixed_folder(tmp_path):
  """Two good files (one in a subfolder) and one of each kind of bad input."""
  folder = tmp_path / 'music'
  (folder / 'sub').mkdir(parents=True)
  _write_midi(folder / 'melody.mid', varied_melody(bars=4))
  _write_midi(folder / 'sub' / 'drums.midi', rock_beat(bars=4))
  good = (folder / 'melody.mid').read_bytes()
  (folder / 'empty.mid').write_bytes(b'')
  (folder / 'truncated.mid').write_bytes(good[:len(good) // 2])
  (folder / 'garbage.mid').write_bytes(b'MThd' + os.urandom(200))
  (folder / 'not_midi.mid').write_bytes(b'RIFF....WAVEfmt ')
  (folder / 'notes.txt').write_text('ignored: not a music file extension')
  _write_midi(folder / 'silent.mid', scale_melody(bars=0))
  return folder


def test_prepare_reads_good_files_and_skips_bad_ones_with_reasons(mixed_folder, tmp_path):
  out = tmp_path / 'out.tfrecord'
  summary = prepare.prepare([str(mixed_folder)], str(out), workers=2, progress=False)
  d = summary.as_dict()
  assert d['files_found'] == 7  # notes.txt is not a music file
  assert d['files_read'] == 2 and d['sequences'] == 2
  assert d['skipped_by_reason'] == {'corrupt MIDI': 2, 'empty file': 1, 'no notes': 1,
                                    'not MIDI': 1}
  assert any('truncated.mid' in ex for ex in d['skipped_examples']['corrupt MIDI'])
  sequences = list(tfrecord.read_note_sequences(str(out)))
  assert [os.path.basename(ns.filename) for ns in sequences] == ['melody.mid', 'drums.midi']
  assert d['notes'] == sum(len(ns.notes) for ns in sequences)
  assert d['total_seconds'] == pytest.approx(sum(ns.total_time for ns in sequences), abs=1e-3)


def test_prepare_is_deterministic(mixed_folder, tmp_path):
  a, b = tmp_path / 'a.tfrecord', tmp_path / 'b.tfrecord'
  prepare.prepare([str(mixed_folder)], str(a), workers=2, progress=False)
  prepare.prepare([str(mixed_folder)], str(b), workers=1, progress=False)
  assert a.read_bytes() == b.read_bytes()


def test_prepare_limits_enormous_files(tmp_path):
  big = tmp_path / 'big.mid'
  _write_midi(big, scale_melody(bars=64))
  with pytest.raises(sources.SkippedFile, match='more than the limit'):
    sources.read_file(str(big), max_bytes=100)
  with pytest.raises(sources.SkippedFile, match='raise --max_notes'):
    sources.read_file(str(big), max_notes=10)
  with pytest.raises(sources.SkippedFile, match='raise --max_seconds'):
    sources.read_file(str(big), max_seconds=10.0)


def test_prepare_dedupes_by_content(tmp_path):
  folder = tmp_path / 'dups'
  folder.mkdir()
  for name in ('a.mid', 'b.mid'):
    _write_midi(folder / name, scale_melody(bars=4))
  summary = prepare.prepare([str(folder)], str(tmp_path / 'o.tfrecord'), dedupe=True,
                            progress=False)
  assert summary.sequences == 1 and summary.skipped == {'duplicate': 1}


def test_prepare_reads_abc_tune_books(tmp_path):
  book = tmp_path / 'book.abc'
  book.write_text('X:1\nT:One\nM:4/4\nL:1/8\nK:C\nCDEF GABc|cBAG FEDC|CDEF GABc|c8|]\n\n'
                  'X:2\nT:Two\nM:4/4\nL:1/8\nK:G\nGABc defg|gfed cBAG|GABc defg|g8|]\n')
  sequences = sources.read_file(str(book))
  assert len(sequences) == 2
  assert sequences[0].filename.endswith('book.abc#1') and len(sequences[0].notes) == 25


def test_interrupted_writer_leaves_no_file(tmp_path):
  out = tmp_path / 'x.tfrecord'
  with pytest.raises(RuntimeError):
    with tfrecord.AtomicTFRecordWriter(str(out)) as writer:
      writer.write(b'one')
      raise RuntimeError('killed')
  assert not out.exists() and os.listdir(tmp_path) == []


def test_killed_prepare_leaves_no_half_written_output(tmp_path):
  folder = tmp_path / 'many'
  folder.mkdir()
  for i in range(400):
    _write_midi(folder / ('%03d.mid' % i), scale_melody(bars=8, start_pitch=40 + i % 40))
  out = tmp_path / 'out.tfrecord'
  proc = subprocess.Popen([sys.executable, '-m', 'mvae_tf', 'prepare', '--input', str(folder),
                           '--output', str(out), '--workers', '1'],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 60
  while time.time() < deadline and not any(n.startswith('.out.tfrecord.tmp')
                                           for n in os.listdir(tmp_path)):
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not out.exists(), 'a killed run must not leave output under the final name'


def test_corrupt_tfrecord_is_reported_with_its_name(tmp_path):
  good = tmp_path / 'good.tfrecord'
  with tfrecord.AtomicTFRecordWriter(str(good)) as writer:
    writer.write(scale_melody(bars=2).SerializeToString())
  data = good.read_bytes()
  bad = tmp_path / 'bad.tfrecord'
  bad.write_bytes(data[:-7])
  with pytest.raises(tfrecord.CorruptRecordError, match='bad.tfrecord: truncated'):
    list(tfrecord.read_note_sequences(str(bad)))
  flipped = tmp_path / 'flipped.tfrecord'
  flipped.write_bytes(data[:20] + bytes([data[20] ^ 0xFF]) + data[21:])
  with pytest.raises(tfrecord.CorruptRecordError, match='bad data checksum'):
    list(tfrecord.read_note_sequences(str(flipped)))


def _mvae(*args, check=True):
  proc = subprocess.run([sys.executable, '-m', 'mvae_tf', *args], capture_output=True,
                        text=True, timeout=300)
  if check:
    assert proc.returncode == 0, proc.stderr
  return proc


def test_cli_prepare_json_and_inspect(mixed_folder, tmp_path):
  out = tmp_path / 'cli.tfrecord'
  summary = json.loads(_mvae('prepare', '--input', str(mixed_folder), '--output', str(out),
                             '--json').stdout)
  assert summary['files_read'] == 2 and summary['files_skipped'] == 5
  report = json.loads(_mvae('inspect', str(out), '--config', 'cat-mel_2bar_small',
                            '--json').stdout)
  assert report['summary']['sequences'] == 2 and report['summary']['windows'] == 3
  by_name = {os.path.basename(r['name']): r for r in report['sequences']}
  assert by_name['melody.mid']['windows'] == 3
  assert by_name['drums.midi']['windows'] == 0
  assert by_name['drums.midi']['reasons'] == ['no pitched notes (drums only)']
  text = _mvae('inspect', str(out), '--config', 'cat-drums_2bar_small').stdout
  assert '1 of 2 sequences yield windows' in text and 'no drum notes' in text


def test_inspect_explains_a_midi_file_directly():
  path = os.path.join(MELODY_MIDI, '10_metre_6_8.mid')
  text = _mvae('inspect', path, '--config', 'cat-mel_2bar_small').stdout
  assert 'metre 6/8 is not 16 steps per bar' in text


def test_cli_errors_name_the_input(tmp_path):
  proc = _mvae('inspect', str(tmp_path / 'missing.tfrecord'), '--config', 'cat-mel_2bar_small',
               check=False)
  assert proc.returncode == 2 and 'missing.tfrecord: no such file' in proc.stderr
  wrong = tmp_path / 'wrong.tfrecord'
  wrong.write_bytes(b'this is not a tfrecord at all')
  proc = _mvae('inspect', str(wrong), '--config', 'cat-mel_2bar_small', check=False)
  assert proc.returncode == 2 and 'wrong.tfrecord' in proc.stderr and 'Traceback' not in proc.stderr
  proc = _mvae('inspect', str(wrong), '--config', 'nope', check=False)
  assert proc.returncode == 2 and 'unknown config' in proc.stderr
  proc = _mvae('prepare', '--input', str(tmp_path / 'nowhere'), '--output',
               str(tmp_path / 'o.tfrecord'), check=False)
  assert proc.returncode == 2 and 'nowhere' in proc.stderr


def test_mvae_help_lists_subcommands():
  text = _mvae('--help').stdout
  for command in ('prepare', 'corpus', 'inspect'):
    assert command in text


def test_data_commands_do_not_import_tensorflow():
  code = ('import sys; from mvae_tf.cli import main as cli; from mvae_tf.data import prepare, windows, '
          'corpus; cli.build_parser(); print("tensorflow" in sys.modules)')
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == 'False'


def test_an_input_error_leaves_the_output_untouched(mixed_folder, tmp_path):
  """A mistyped --input once replaced a good TFRecord with 0 bytes."""
  out = tmp_path / 'good.tfrecord'
  _mvae('prepare', '--input', str(mixed_folder), '--output', str(out))
  before = out.read_bytes()
  assert len(before) > 100
  for inputs in ([str(tmp_path / 'mistyped')], [str(mixed_folder), str(tmp_path / 'typo')]):
    proc = _mvae('prepare', '--input', *inputs, '--output', str(out), check=False)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr, proc.stderr
    assert 'no such input' in proc.stderr and 'left as it was' in proc.stderr
    assert out.read_bytes() == before
  assert not [n for n in os.listdir(tmp_path) if n.startswith('.')]  # no temp file left


def test_a_run_that_reads_nothing_writes_nothing(tmp_path):
  folder = tmp_path / 'junk'
  folder.mkdir()
  (folder / 'a.mid').write_bytes(b'MThd garbage')
  (folder / 'b.mid').write_bytes(b'')
  out = tmp_path / 'o.tfrecord'
  proc = _mvae('prepare', '--input', str(folder), '--output', str(out), check=False)
  assert proc.returncode == 2 and 'no file could be read, so' in proc.stderr
  assert not out.exists()
  out.write_bytes(b'precious')  # an existing output stays as it was
  proc = _mvae('prepare', '--input', str(folder), '--output', str(out), check=False)
  assert proc.returncode == 2 and 'left as it was' in proc.stderr
  assert out.read_bytes() == b'precious'
  assert sorted(os.listdir(tmp_path)) == ['junk', 'o.tfrecord']


def test_dedupe_drops_duplicates_within_one_input(tmp_path):
  """An ABC book holding the same tune twice: the second copy is a duplicate too."""
  tune = 'T:One\nM:4/4\nL:1/8\nK:C\nCDEF GABc|cBAG FEDC|CDEF GABc|c8|]\n'
  book = tmp_path / 'book.abc'
  book.write_text('X:1\n%s\nX:2\n%s' % (tune, tune))
  summary = prepare.prepare([str(book)], str(tmp_path / 'o.tfrecord'), dedupe=True,
                            progress=False)
  assert summary.sequences == 1
  assert len(list(tfrecord.read_note_sequences(str(tmp_path / 'o.tfrecord')))) == 1


def _many_notes_midi(path, notes):
  """A valid one-track MIDI of `notes` sixteenth notes, written directly (fast)."""
  import struct
  events = bytearray()
  for i in range(notes):
    pitch = 48 + i % 24
    events += bytes([0x00, 0x90, pitch, 80, 0x0C, 0x80, pitch, 0])  # on, 12 ticks, off
  events += b'\x00\xff\x2f\x00'
  path.write_bytes(b'MThd' + struct.pack('>IHHH', 6, 0, 1, 240) + b'MTrk' +
                   struct.pack('>I', len(events)) + bytes(events))
  return path


def test_a_file_that_parses_too_long_is_skipped_as_timed_out(tmp_path):
  folder = tmp_path / 'in'
  folder.mkdir()
  _write_midi(folder / 'a.mid', scale_melody(bars=4))
  _many_notes_midi(folder / 'slow.mid', 120_000)
  out = subprocess.run(
      [sys.executable, '-m', 'mvae_tf', 'prepare', '--input', str(folder), '--output',
       str(tmp_path / 'o.tfrecord'), '--timeout_per_file', '1', '--workers', '1', '--json'],
      capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr
  summary = json.loads(out.stdout)
  assert summary['files_read'] == 1 and summary['skipped_by_reason'] == {'timed out': 1}
  assert 'slow.mid: took more than 1 s to parse' in summary['skipped_examples'][
      'timed out'][0]
  assert '--timeout_per_file' in summary['skipped_examples']['timed out'][0]


def test_a_slow_file_is_named_while_it_parses(tmp_path, capsys):
  """Without a terminal there is no bar: a line names the file a long parse is on."""
  big = _many_notes_midi(tmp_path / 'big.mid', 60_000)
  notice = prepare._SlowFileNotice(None, [str(big)], after=0.0, line_after=0.0)
  try:
    time.sleep(1.5)
  finally:
    notice.close()
  assert 'prepare: still parsing big.mid after' in capsys.readouterr().err


NON_UTF8 = b'caf\xe9 tune.mid'


def test_a_file_name_that_is_not_utf8_is_read_and_kept_escaped(tmp_path):
  folder = os.fsencode(str(tmp_path / 'in'))
  os.mkdir(folder)
  _write_midi(os.fsdecode(os.path.join(folder, NON_UTF8)), scale_melody(bars=4))
  out = subprocess.run(
      [sys.executable, '-m', 'mvae_tf', 'prepare', '--input', os.fsdecode(folder), '--output',
       str(tmp_path / 'o.tfrecord')], capture_output=True, timeout=300)
  assert out.returncode == 0, out.stderr
  assert b'1 read, 0 skipped' in out.stdout
  (ns,) = tfrecord.read_note_sequences(str(tmp_path / 'o.tfrecord'))
  assert ns.filename.endswith('caf\\xe9 tune.mid') and ns.notes
  name = os.fsdecode(os.path.join(folder, NON_UTF8))
  inspected = subprocess.run([sys.executable, '-m', 'mvae_tf', 'inspect', name, '--config',
                              'cat-mel_2bar_small', '--all'], capture_output=True, timeout=300)
  assert inspected.returncode == 0 and b'Traceback' not in inspected.stderr
  assert b'caf\\xe9 tune.mid' in inspected.stdout
  generated = subprocess.run(
      [sys.executable, '-m', 'mvae_tf', 'generate', '--mode', 'similar', '--input_midi_1', name,
       '--num_outputs', '1', '--output_dir', str(tmp_path / 'out')], capture_output=True,
      timeout=300)
  assert generated.returncode == 0, generated.stderr
  assert b'tune.mid: bars 1-2 of 4' in generated.stderr


def test_too_large_files_say_what_to_do_in_each_command(tmp_path):
  big = tmp_path / 'big.mid'
  with open(big, 'wb') as f:
    f.write(b'MThd')
    f.truncate(16 * 2**20 + 20_000)  # sparse: 16.02 MB
  with pytest.raises(sources.SkippedFile) as e:
    sources.read_file(str(big))
  assert '16.02 MB, more than the limit of 16 MB (raise --max_file_mb' in str(e.value)
  out = subprocess.run([sys.executable, '-m', 'mvae_tf', 'generate', '--mode', 'similar',
                        '--input_midi_1', str(big), '--output_dir', str(tmp_path / 'o')],
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 2 and '--max_file_mb' not in out.stderr
  assert 'more than the limit of 16 MB (cut a shorter excerpt' in out.stderr
  out = subprocess.run([sys.executable, '-m', 'mvae_tf', 'inspect', str(big), '--config',
                        'cat-mel_2bar_small'], capture_output=True, text=True, timeout=300)
  assert out.returncode == 2 and 'mvae prepare --max_file_mb N' in out.stderr
