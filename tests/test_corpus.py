"""Corpus building (mvae_tf.data.corpus): split, dedupe, cache, WAD and ABC
handling, on small files made here. The real corpora need music21 and Debian
packages; the few checks that run the real tools skip without them."""

import hashlib
import json
import os
import shutil
import struct

import note_seq
import pytest

from conftest import rock_beat, scale_melody
from mvae_tf import configs
from mvae_tf.data import prepare, tfrecord
from mvae_tf.data.corpus import build as corpus_build
from mvae_tf.data.corpus import common, debian, folk, songs
from mvae_tf.data.corpus import wad as wad_file

DRUMS = ('cat-drums_2bar_small',)


def _write(ns, path):
  note_seq.sequence_proto_to_midi_file(ns, str(path))
  return str(path)


def _drum_files(folder, count=40):
  """`count` distinct 4-bar drum songs (tempo varies), a repeat of the first
  under another name, and an empty file."""
  folder.mkdir(parents=True, exist_ok=True)
  files = [_write(rock_beat(bars=4, qpm=90.0 + 2 * i), folder / ('song%02d.mid' % i))
           for i in range(count)]
  shutil.copy(files[0], folder / 'zz_repeat.mid')
  (folder / 'zz_empty.mid').write_bytes(b'')
  return sorted(files + [str(folder / 'zz_repeat.mid'), str(folder / 'zz_empty.mid')])


def _source(files, root, name='test'):
  return common.Source(name=name, package='made in the test', inputs=list(files),
                       root=str(root))


def _build(out, files, root, **kwargs):
  kwargs.setdefault('configs', DRUMS)
  return corpus_build.build_from_sources('drums', out, [_source(files, root)], workers=1,
                                   progress=False, **kwargs)


def _ids(path):
  return [ns.id for ns in tfrecord.read_note_sequences(str(path))]


@pytest.fixture
def drum_corpus(tmp_path):
  root = tmp_path / 'src'
  files = _drum_files(root)
  summary = _build(tmp_path / 'out', files, root)
  return tmp_path, root, files, summary


def test_split_is_by_sequence_and_deterministic(drum_corpus):
  tmp_path, root, files, summary = drum_corpus
  out = tmp_path / 'out'
  train, evaluation = _ids(out / 'train.tfrecord'), _ids(out / 'eval.tfrecord')
  assert len(train) == summary['sequences']['train'] and len(evaluation) == summary[
      'sequences']['eval']
  assert train and evaluation, 'the fixture should put some songs on each side'
  assert not set(train) & set(evaluation)
  assert len(set(train)) == len(train) and len(set(evaluation)) == len(evaluation)
  assert all(not corpus_build.is_eval(i) for i in train) and all(corpus_build.is_eval(i) for i in evaluation)
  # The same input gives the same files, byte for byte, wherever it is built.
  _build(tmp_path / 'again', files, root)
  for name in ('train.tfrecord', 'eval.tfrecord'):
    assert (out / name).read_bytes() == (tmp_path / 'again' / name).read_bytes()


def test_split_ids_is_stable_and_about_a_tenth():
  ids = [hashlib.sha1(b'%d' % i).hexdigest() for i in range(3000)]
  train, evaluation = corpus_build.split_ids(ids)
  assert corpus_build.split_ids(ids) == (train, evaluation)
  assert sorted(train + evaluation) == sorted(ids)
  assert 0.07 < len(evaluation) / len(ids) < 0.13
  # A sequence's side does not depend on the others.
  assert corpus_build.split_ids(ids[::7])[1] == [i for i in evaluation if i in set(ids[::7])]


def test_dedupe_by_content_and_skips_counted(drum_corpus):
  _, _, files, summary = drum_corpus
  assert summary['files_found'] == len(files) == 42
  assert summary['skipped_by_reason'] == {'empty file': 1}
  assert summary['duplicates']['content'] == 1
  assert summary['distinct_sequences'] == 40
  assert summary['sequences']['total'] == 40
  w = summary['windows']['cat-drums_2bar_small']
  assert w['total'] == w['train'] + w['eval'] > 0
  assert summary['sources'][0]['duplicates'] == 1
  assert summary['sources'][0]['train'] + summary['sources'][0]['eval'] == 40
  with open(os.path.join(summary['output_dir'], 'summary.json')) as f:
    assert json.load(f) == summary


def test_labels_are_relative_to_the_source(drum_corpus):
  tmp_path, _, _, _ = drum_corpus
  names = [ns.filename for ns in tfrecord.read_note_sequences(
      str(tmp_path / 'out' / 'train.tfrecord'))]
  assert names and all(n.startswith('test/song') for n in names)


def test_melody_dedupe_and_two_four(tmp_path):
  root = tmp_path / 'src'
  root.mkdir()
  a = _write(scale_melody(bars=4, start_pitch=60), root / 'a.mid')
  b = _write(scale_melody(bars=4, start_pitch=65), root / 'b.mid')  # same tune, transposed
  c = scale_melody(bars=8, start_pitch=62)
  c.time_signatures[0].numerator, c.time_signatures[0].denominator = 2, 4
  c.notes[3].pitch += 1  # another tune
  c = _write(c, root / 'c.mid')
  src = _source([a, b, c], root)
  summary = corpus_build.build_from_sources(
      'folk', tmp_path / 'out', [src], configs=('cat-mel_2bar_small',), workers=1,
      progress=False, transform=corpus_build.merge_two_four, melody_dedupe=True)
  assert summary['duplicates'] == {'content': 0, 'melody': 1}
  assert summary['renotated_2_4_as_4_4'] == 1
  assert summary['metres_of_distinct_sequences'] == {'4/4': 1, '2/4': 1}
  assert summary['sequences']['total'] == 2  # the 2/4 tune yields 4/4 windows
  # Without renotation, the 2/4 tune yields no window and is left out.
  summary = corpus_build.build_from_sources(
      'folk', tmp_path / 'plain', [src], configs=('cat-mel_2bar_small',), workers=1,
      progress=False)
  assert summary['duplicates'] == {'content': 0, 'melody': 0}
  assert summary['sequences']['total'] == 2
  assert sum(summary['without_cat-mel_2bar_small_window_by_reason'].values()) == 1


def test_cache_hit_force_and_change(drum_corpus, monkeypatch):
  tmp_path, root, files, summary = drum_corpus
  calls = []
  real_iter_read = prepare.iter_read

  def counting_iter_read(*args, **kwargs):
    calls.append(1)
    return real_iter_read(*args, **kwargs)

  monkeypatch.setattr(prepare, 'iter_read', counting_iter_read)
  assert _build(tmp_path / 'out', files, root) == summary
  assert not calls
  rebuilt = _build(tmp_path / 'out', files, root, force=True)
  assert len(calls) == 1 and rebuilt['fingerprint'] == summary['fingerprint']
  assert rebuilt['sequences'] == summary['sequences']
  # A changed input (new mtime) or a changed option is a rebuild.
  os.utime(files[3], ns=(0, 10**9))
  _build(tmp_path / 'out', files, root)
  assert len(calls) == 2
  _build(tmp_path / 'out', files, root, configs=DRUMS + ('hierdec-drums_16bar',))
  assert len(calls) == 3
  # A missing output is a rebuild too.
  os.remove(tmp_path / 'out' / 'eval.tfrecord')
  _build(tmp_path / 'out', files, root, configs=DRUMS + ('hierdec-drums_16bar',))
  assert len(calls) == 4 and (tmp_path / 'out' / 'eval.tfrecord').exists()


def test_window_counts_match_the_eval_converter():
  sequences = [rock_beat(bars=12), scale_melody(bars=10), rock_beat(bars=2)]
  names = ('cat-drums_2bar_small', 'cat-mel_2bar_small', 'hierdec-mel_16bar')
  results = corpus_build.count_windows([ns.SerializeToString() for ns in sequences], names,
                                 workers=1)
  for ns, result in zip(sequences, results):
    for name in names:
      expected = len(configs.get_config(name).make_converter('eval').to_tensors(ns))
      assert result[name][0] == expected
      assert (result[name][2] is None) == (expected > 0)


def _wad(lumps):
  data, directory = b'', b''
  for name, payload in lumps:
    directory += struct.pack('<ii8s', 12 + len(data), len(payload), name.encode())
    data += payload
  return b'IWAD' + struct.pack('<ii', len(lumps), 12 + len(data)) + data + directory


def test_wad_music_lumps(tmp_path):
  midi = tmp_path / 'x.mid'
  _write(rock_beat(bars=2), midi)
  mus = b'MUS\x1a' + bytes(12)
  wad = tmp_path / 'test.wad'
  wad.write_bytes(_wad([('PLAYPAL', b'\0' * 30), ('D_RUNNIN', midi.read_bytes()),
                        ('D_E1M1', mus)]))
  assert [n for n, _ in wad_file.wad_lumps(wad.read_bytes())] == ['PLAYPAL', 'D_RUNNIN', 'D_E1M1']
  out = tmp_path / 'lumps'
  out.mkdir()
  written, skipped = wad_file.wad_music(str(wad), str(out))
  assert [n for _, n in written] == ['D_RUNNIN']
  assert open(written[0][0], 'rb').read() == midi.read_bytes()
  assert skipped == [('D_E1M1', 'MUS lump (not converted)')]
  with pytest.raises(ValueError):
    wad_file.wad_lumps(b'PK\x03\x04' + bytes(20))


ABC_BOOK = b"""%abc
% a header line

X: 7
T: First
M: 4/4
L: 1/8
K: G
GABc dedB | dedB dedB | c2ec B2dB | c2A2 A2BA |
X: 7
T: Second
M: 2/4
L: 1/16
K: D
d2f2 a2f2 | d2f2 a2f2 | g2e2 c2A2 | d4 d4 |

X: 8
T: Free
M: none
L: 1/4
K: C
C D E F G2 | G F E D C2 |
"""


def test_split_and_renumber_tunebook():
  header, tunes = folk.split_tunebook(ABC_BOOK)
  assert header[0] == b'%abc'
  assert [(x, title) for x, title, _ in tunes] == [('7', 'First'), ('7', 'Second'),
                                                   ('8', 'Free')]
  book, index = folk.renumber_tunebook(ABC_BOOK)
  assert index == [('7', 'First', False), ('7', 'Second', False), ('8', 'Free', True)]
  assert [l for l in book.split(b'\n') if l.startswith(b'X:')] == [b'X:1', b'X:2', b'X:3']
  assert b'\n\nX:2' in book  # a blank line ends each tune


@pytest.mark.skipif(shutil.which('abc2midi') is None,
                    reason='needs abc2midi (Debian package abcmidi)')
def test_abc2midi_renders_one_midi_per_tune(tmp_path):
  book = tmp_path / 'books' / 'book.abc'
  book.parent.mkdir()
  book.write_bytes(ABC_BOOK)
  work = tmp_path / 'work'
  work.mkdir()
  render = folk._abc2midi_render([str(book)], str(book.parent), 'demo')
  items, failures = render(str(work), 1, False)
  assert [(label, reason) for label, reason, _ in failures] == [('demo/book.abc#8',
                                                                 'free metre')]
  assert [(label, title) for _, label, title in items] == [
      ('demo/book.abc#7', 'First'), ('demo/book.abc#7', 'Second')]
  assert all(open(p, 'rb').read(4) == b'MThd' for p, _, _ in items)


def test_mma_grooves():
  text = ('DefGroove Swing  Basic swing.\n  defgroove SwingWalk walking \\\n  bass\n'
          'Groove Swing\nDefGroove swing again\nDefGroove $Macro\n')
  assert songs.mma_grooves(text) == ['Swing', 'SwingWalk']
  assert songs.mma_source_text('/x/y.mma', 'Swing', bars=3).splitlines()[-4:] == [
      'Groove Swing', 'C', 'Am', 'Dm7']


@pytest.mark.skipif(shutil.which('mma') is None or not os.path.isfile(
    '/usr/share/mma/lib/stdlib/swing.mma'), reason='needs mma (Debian package mma)')
def test_render_one_mma_groove(tmp_path):
  out = str(tmp_path / 'swing.mid')
  assert songs.render_mma_groove('/usr/share/mma/lib/stdlib/swing.mma', 'Swing', out,
                                  str(tmp_path), bars=4) is None
  assert open(out, 'rb').read(4) == b'MThd'
  error = songs.render_mma_groove('/usr/share/mma/lib/stdlib/swing.mma', 'NoSuchGroove',
                                   str(tmp_path / 'none.mid'), str(tmp_path), bars=4)
  assert error and not os.path.exists(tmp_path / 'none.mid')


def test_errors_name_the_fix(tmp_path, monkeypatch):
  with pytest.raises(ValueError, match='folk, drums, trio'):
    corpus_build.build_corpus('rock', tmp_path)
  monkeypatch.setattr(debian.importlib.util, 'find_spec', lambda name: None)
  with pytest.raises(common.CorpusError, match='pip install music21'):
    corpus_build.build_corpus('folk', tmp_path)
  with pytest.raises(common.CorpusError, match='apt-get install -y no-such-package'):
    debian.ensure_debian_package('no-such-package', lambda: False, install_missing=False)
  monkeypatch.setattr(debian.os, 'geteuid', lambda: 1000)
  with pytest.raises(common.CorpusError, match='sudo apt-get install -y no-such-package'):
    debian.ensure_debian_package('no-such-package', lambda: False, install_missing=True)
  with pytest.raises(common.CorpusError, match='apt-get download freedoom'):
    songs._freedoom_deb(str(tmp_path / 'cache'), install_missing=False)


def test_corpora_list():
  assert set(corpus_build.CORPORA) == set(corpus_build.WINDOW_CONFIGS) == {'folk', 'drums', 'trio'}
  for names in corpus_build.WINDOW_CONFIGS.values():
    for name in names:
      configs.get_config(name)
