"""The folk corpus's source: music21's ABC tune books, split and rendered with abc2midi."""

import concurrent.futures
import glob
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess


from mvae_tf.data.corpus.common import CorpusError, Source
from mvae_tf.data.corpus import debian


FOLK_COLLECTIONS = (
    ('essenFolksong', 'Essen folksong collection (ABC by Seymour Shlien)',
     'non-commercial use permitted by the EsAC editors; legal status unclear '
     '(music21/corpus/essenFolksong/license.txt)'),
    ('oneills1850', "O'Neill's Music of Ireland (1850 tunes), transcribed by Norbert Paap",
     'distributed with music21 with the encoders\' permission (music21/corpus/license.txt)'),
    ('ryansMammoth', "Ryan's Mammoth Collection (1883)",
     'distributed with music21 with the encoders\' permission (music21/corpus/license.txt)'),
)


ABC2MIDI_ARGS = ('-NGUI', '-silent')  # no guitar-chord accompaniment


def music21_corpus_dir():
  """music21's corpus folder, found without importing music21 (slow)."""
  spec = importlib.util.find_spec('music21')
  if spec is None or not spec.origin:
    raise CorpusError("the folk corpus reads the ABC collections that music21 ships, and "
                      "music21 is not installed: pip install music21 (or pip install "
                      "'mvae_tf[corpus]')")
  return os.path.join(os.path.dirname(spec.origin), 'corpus')


_X_LINE = re.compile(rb'^X:[ \t]*(\S*)')


_T_LINE = re.compile(rb'^T:[ \t]*(.*?)\s*$')


_FREE_METRE = re.compile(rb'^M:[ \t]*none\b', re.IGNORECASE)


def _decode(text):
  try:
    return text.decode('utf-8')
  except UnicodeDecodeError:
    return text.decode('latin-1')


def split_tunebook(data):
  """(header lines, [(reference number, title, lines after the X: line)]) of
  an ABC tune book (bytes)."""
  lines = data.replace(b'\r\n', b'\n').replace(b'\r', b'\n').split(b'\n')
  header, tunes = [], []
  for line in lines:
    m = _X_LINE.match(line)
    if m:
      tunes.append([_decode(m.group(1)), None, []])
    elif tunes:
      tune = tunes[-1]
      tune[2].append(line)
      if tune[1] is None:
        t = _T_LINE.match(line)
        if t:
          tune[1] = _decode(t.group(1))
    else:
      header.append(line)
  return header, [tuple(t) for t in tunes]


def renumber_tunebook(data):
  """The tune book with its tunes numbered X:1, X:2, ... (so that abc2midi
  writes one MIDI per tune, named by position even where reference numbers
  repeat), and [(original reference number, title, free metre)] in order;
  a tune in free metre (M: none) would be barred as 4/4 by abc2midi."""
  header, tunes = split_tunebook(data)
  out = list(header)
  index = []
  for i, (x, title, lines) in enumerate(tunes, 1):
    if out and out[-1].strip():
      out.append(b'')
    out.append(b'X:%d' % i)
    out.extend(lines)
    index.append((x, title, any(_FREE_METRE.match(l) for l in lines)))
  return b'\n'.join(out) + b'\n', index


def _abc2midi_render(files, root, name):
  def render(workdir, workers, progress):
    jobs = []
    for k, path in enumerate(files):
      with open(path, 'rb') as f:
        book, tunes = renumber_tunebook(f.read())
      d = os.path.join(workdir, '%05d' % k)
      os.makedirs(d)
      with open(os.path.join(d, 't.abc'), 'wb') as f:
        f.write(book)
      jobs.append((d, path, tunes))

    def run(job):
      try:
        subprocess.run(['abc2midi', 't.abc'] + list(ABC2MIDI_ARGS), cwd=job[0],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
      except subprocess.TimeoutExpired:
        pass

    with concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
      list(pool.map(run, jobs))
    items, failures = [], []
    for d, path, tunes in jobs:
      rel = os.path.relpath(path, root)
      for i, (x, title, free_metre) in enumerate(tunes, 1):
        label = '%s/%s#%s' % (name, rel, x or i)
        mid = os.path.join(d, 't%d.mid' % i)
        if free_metre:
          failures.append((label, 'free metre', 'M: none: abc2midi would bar it as 4/4'))
        elif os.path.isfile(mid):
          items.append((mid, label, title))
        else:
          failures.append((label, 'abc2midi error', 'abc2midi wrote no MIDI for this tune'))
    return items, failures
  return render


def folk_sources(install_missing=None):
  """The folk Sources, and notes on the route taken."""
  corpus_dir = music21_corpus_dir()
  version = debian.package_version('music21')
  have_abc2midi = shutil.which('abc2midi') is not None
  notes = []
  if not have_abc2midi:
    try:
      debian.ensure_debian_package('abcmidi', lambda: shutil.which('abc2midi') is not None,
                            install_missing, 'the folk corpus')
      have_abc2midi = True
    except CorpusError as e:
      notes.append('abc2midi is missing (%s); read the ABC with note-seq\'s parser instead, '
                   'which does not play every repeat and fails on more tunes' % e)
  if have_abc2midi:
    abc_version = debian.debian_version('abcmidi') or debian.tool_version(['abc2midi', '-ver'])
    notes.append('ABC converted with abc2midi %s %s (repeats played, guitar chords '
                 'ignored)' % (abc_version, ' '.join(ABC2MIDI_ARGS)))
  notes.append('metre: 2/2 is 16 steps a bar as is; 2/4 is renotated as 4/4 (two 2/4 bars '
               'make one 4/4 bar); other metres yield no 4/4 window and are left out')
  notes.append('Essen test*.abc files are dropped (they repeat other tunes); so are tunes in '
               'free metre (M: none), which abc2midi would bar as 4/4')
  result = []
  for collection, description, licence in FOLK_COLLECTIONS:
    root = os.path.join(corpus_dir, collection)
    files = sorted(glob.glob(os.path.join(root, '**', '*.abc'), recursive=True))
    if collection == 'essenFolksong':
      files = [f for f in files if not os.path.basename(f).lower().startswith('test')]
    if not files:
      raise CorpusError('music21 %s has no ABC files in %s; reinstall it: pip install '
                        '--force-reinstall music21' % (version, root))
    src = Source(name=collection, package='music21 (PyPI)', version=version, licence=licence,
                 inputs=files, root=root, notes=[description])
    if have_abc2midi:
      src.render = _abc2midi_render(files, root, collection)
      src.tool = 'abc2midi %s %s' % (abc_version, ' '.join(ABC2MIDI_ARGS))
    else:
      src.tool = 'note-seq abc_parser %s' % debian.package_version('note-seq')
    result.append(src)
  return result, notes
