"""`mvae corpus`: real training corpora built from packages that install here.

The paper's data (Lakh MIDI) cannot be downloaded on these machines; these
corpora are real, human-made music from PyPI and Debian packages
(shared/DATA.md):

* folk: the ABC folk tune collections that music21 ships (Essen, O'Neill's
  1850, Ryan's Mammoth), converted with abc2midi (Debian `abcmidi`; repeats
  are played) or, without it, note-seq's ABC parser;
* drums: the drum parts of General MIDI songs from Debian packages: the
  grooves of MMA (each rendered with `mma` over 32 bars of chords), OpenMSX,
  Planet Blupi and Freedoom (MIDI lumps of its WADs);
* trio: the same songs, kept when melody, bass and drums play together for
  16 bars.

This is transcribed (folk) or hand-programmed (drums, trio) music, not
performances, and it is small.

Every corpus is deduplicated by content (`sources.content_id`; the folk
corpus also by a transposition- and tempo-invariant melody key) and then split
into train and eval by tune or song, never by window: a sequence is in eval
when int(sha1(its id)) % 10 == 0, so the split does not depend on what else is
in the corpus. Sequences that yield no window for the corpus's main config are
left out (and counted by reason).

Metre: the configs use 16 steps (4 quarters) a bar. 2/2 is 16 steps a bar as
it is; 2/4 folk tunes are renotated as 4/4 (two 2/4 bars make one 4/4 bar, as
reels and polkas are often written either way); other metres (3/4, 6/8, ...)
yield no window and are left out.

Outputs in the output directory: train.tfrecord and eval.tfrecord
(NoteSequences; `filename` is a stable label such as
'oneills1850/0001-0050.abc#12', `collection_name` the source) and
summary.json. A rebuild whose inputs (file names, sizes and mtimes, tool
versions, CORPUS_VERSION) are unchanged returns the stored summary at once.

The data are derived from packages with their own licences (recorded in
summary.json): never commit them or ship them inside the package.
"""

import collections
import concurrent.futures
import dataclasses
import datetime
import glob
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

from mvae_tf import atomic
from mvae_tf.data import prepare, sources, tfrecord

# Bump when a change alters what a build writes (rendering, filtering, split).
CORPUS_VERSION = 2  # 2: trio pads instruments quantized a step short

CORPORA = {
    'folk': "folk melodies: music21's ABC collections (Essen, O'Neill's 1850, "
            "Ryan's Mammoth) via abc2midi",
    'drums': 'drum parts of MMA grooves and of the OpenMSX, Planet Blupi and '
             'Freedoom MIDI songs (Debian)',
    'trio': 'melody + bass + drums songs from the same Debian MIDI sources',
}

# Windows are counted for these configs (eval mode); the first decides which
# sequences are kept.
WINDOW_CONFIGS = {
    'folk': ('cat-mel_2bar_small', 'hierdec-mel_16bar'),
    'drums': ('cat-drums_2bar_small', 'hierdec-drums_16bar'),
    'trio': ('hierdec-trio_16bar', 'cat-mel_2bar_small', 'cat-drums_2bar_small'),
}

EVAL_MODULUS = 10
SUMMARY_NAME = 'summary.json'
TRAIN_NAME = 'train.tfrecord'
EVAL_NAME = 'eval.tfrecord'

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

MMA_LIB = '/usr/share/mma/lib'
MMA_INCLUDES = '/usr/share/mma/includes'
OPENMSX_DIR = '/usr/share/games/openttd/baseset/openmsx'
BLUPI_DIR = '/usr/share/planetblupi/music'
MMA_BARS = 32
# Eight-bar phrases (A A B A): one chord line per bar.
MMA_CHORDS = (['C', 'Am', 'Dm7', 'G7', 'C', 'C7', 'F', 'G7'] * 2 +
              ['Em', 'A7', 'Dm', 'G7', 'C', 'Am', 'D7', 'G7'] +
              ['C', 'Am', 'Dm7', 'G7', 'F', 'G7', 'C', 'C'])
MMA_TEMPLATE = """// made by mvae_tf.data.corpus
RndSeed 1
Tempo 120
Use {path}
Groove {groove}
{chords}
"""
MMA_TIMEOUT = 120


class CorpusError(RuntimeError):
  """A corpus cannot be built; the message says what to install or run."""


@dataclasses.dataclass
class Source:
  """One collection of music in a corpus.

  `inputs` are the files whose names, sizes and mtimes decide whether a build
  is still current. Without `render`, the inputs are read as music files and
  labelled by their path under `root`; `render(workdir, workers, progress)`
  instead returns ([(path, label, title)], [(label, reason, detail)]): files
  to read and items that failed.
  """
  name: str
  package: str = ''
  version: str = ''
  licence: str = ''
  inputs: list = dataclasses.field(default_factory=list)
  root: str = ''
  render: object = None
  notes: list = dataclasses.field(default_factory=list)
  tool: str = ''  # tool and settings that render it, for the fingerprint

  def items(self, workdir, workers, progress):
    if self.render is not None:
      return self.render(workdir, workers, progress)
    root = self.root or os.path.dirname(os.path.commonpath(self.inputs or ['/']))
    return [(p, '%s/%s' % (self.name, os.path.relpath(p, root)), None)
            for p in self.inputs], []

  def describe(self):
    return {'name': self.name, 'package': self.package, 'version': self.version,
            'licence': self.licence, 'input_files': len(self.inputs), 'notes': list(self.notes)}


# ----------------------------------------------------------------------------
# Split, dedupe, fingerprint.

def is_eval(sequence_id, modulus=EVAL_MODULUS):
  """Whether a sequence (by content id) belongs to eval: about 1 in `modulus`."""
  return int(hashlib.sha1(sequence_id.encode('utf-8')).hexdigest(), 16) % modulus == 0


def split_ids(ids, modulus=EVAL_MODULUS):
  """(train ids, eval ids), each in the given order."""
  train, evaluation = [], []
  for i in ids:
    (evaluation if is_eval(i, modulus) else train).append(i)
  return train, evaluation


def melody_key(ns):
  """A key of the top line of the pitched notes that ignores transposition,
  tempo and metre: the same tune in two books (same notes, other key or
  notation tempo) gets the same key. None if there is no pitched note."""
  notes = [n for n in ns.notes if not n.is_drum]
  if not notes:
    return None
  qpm = ns.tempos[0].qpm if ns.tempos else 120.0

  def ticks(t):  # 24 per quarter: sixteenths and triplets are exact
    return int(round(t * qpm / 60.0 * 24))

  tops = {}
  for n in notes:
    start = ticks(n.start_time)
    if start not in tops or n.pitch > tops[start][0]:
      tops[start] = (n.pitch, ticks(n.end_time) - start)
  starts = sorted(tops)
  first_tick, first_pitch = starts[0], tops[starts[0]][0]
  h = hashlib.sha1()
  for s in starts:
    pitch, duration = tops[s]
    h.update(b'%d,%d,%d;' % (s - first_tick, duration, pitch - first_pitch))
  return h.hexdigest()


def metre_label(ns):
  sigs = sorted({'%d/%d' % (ts.numerator, ts.denominator) for ts in ns.time_signatures})
  return '+'.join(sigs) if sigs else 'none'


def merge_two_four(ns):
  """Renotates 2/4 as 4/4 (two 2/4 bars make one 4/4 bar), in place.
  Returns whether anything changed."""
  changed = False
  for ts in ns.time_signatures:
    if ts.numerator == 2 and ts.denominator == 4:
      ts.numerator = 4
      changed = True
  return changed


def _file_stamp(path, root=''):
  name = os.path.relpath(path, root) if root else path
  try:
    st = os.stat(path)
    return [name, st.st_size, st.st_mtime_ns]
  except OSError:
    return [name, None, None]


def fingerprint(name, source_list, options=None):
  """A hash of what a build reads: the corpus version and options, each
  source's version and tool, and its input files' names (under its root, if
  it has one), sizes and mtimes."""
  h = hashlib.sha1()
  h.update(json.dumps({'corpus_version': CORPUS_VERSION, 'name': name,
                       'options': options or {}}, sort_keys=True, default=str).encode())
  for src in source_list:
    h.update(json.dumps([src.name, src.version, src.tool,
                         [_file_stamp(p, src.root) for p in sorted(src.inputs)]]).encode())
  return h.hexdigest()


def load_summary(output_dir):
  path = os.path.join(output_dir, SUMMARY_NAME)
  try:
    with open(path, encoding='utf-8') as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _cached_summary(output_dir, fp):
  summary = load_summary(output_dir)
  if not summary or summary.get('fingerprint') != fp:
    return None
  if not all(os.path.isfile(os.path.join(output_dir, n)) for n in (TRAIN_NAME, EVAL_NAME)):
    return None
  return summary


def _write_json_atomic(path, data):
  atomic.write_json(path, data, indent=2, sort_keys=False)


# ----------------------------------------------------------------------------
# Window counting (worker processes).

_window_converters = None


def _init_window_worker(config_names):
  global _window_converters
  from mvae_tf import configs
  converters = []
  for name in config_names:
    converter = configs.get_config(name).make_converter('eval')
    cap = converter.max_tensors_per_notesequence
    # Count every window: in eval mode the capped count is min(cap, all), and
    # the distinct windows of the corpus are counted over all of them.
    converter.max_tensors_per_notesequence = None
    converters.append((name, converter, cap))
  _window_converters = converters


def _window_digest(window):
  import numpy as np
  a = np.asarray(window)
  return hashlib.blake2b(np.packbits(a.astype(bool)).tobytes() + repr(a.shape).encode(),
                         digest_size=8).digest()


def _count_windows(data):
  """{config: (windows as the eval converter yields them, [digest per window of
  all windows], reason for none or None)} for one serialized NoteSequence."""
  from note_seq.protobuf import music_pb2

  from mvae_tf.data import windows
  ns = music_pb2.NoteSequence.FromString(data)
  result = {}
  for name, converter, cap in _window_converters:
    try:
      tensors = converter.to_tensors(ns)
    except Exception as e:  # one odd sequence must not end the build
      result[name] = (0, [], 'converter error (%s)' % type(e).__name__)
      continue
    count = len(tensors)
    reason = None
    if not count:
      reason = (windows.reason_category(tensors.skipped[0]) if tensors.skipped
                else 'no window of the required length')
    result[name] = (min(count, cap) if cap else count,
                    [_window_digest(w) for w in tensors.outputs], reason)
  return result


def count_windows(serialized, config_names, workers=None, progress=False):
  """Per sequence, the result of `_count_windows`, in order."""
  from mvae_tf import workers as workers_lib
  bar = _bar(progress, len(serialized), 'windows', 'seq')
  results = []
  for r in workers_lib.imap(_count_windows, serialized, workers, _init_window_worker,
                            (config_names,), chunksize=4, maxtasksperchild=2000,
                            min_items=16):
    results.append(r)
    bar and bar.update(1)
  bar and bar.close()
  return results


def _bar(progress, total, desc, unit):
  if not progress:
    return None
  from tqdm import tqdm
  return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=None,
              dynamic_ncols=True)


# ----------------------------------------------------------------------------
# The build.

def build_from_sources(name, output_dir, source_list, configs=None, workers=None,
                       force=False, progress=True, transform=None, melody_dedupe=False,
                       notes=(), options=None):
  """Builds a corpus from `source_list` (Source objects) into `output_dir`.

  Reads every file, renotates with `transform(ns)` (returns whether it
  changed), drops repeats by content (and by `melody_key` with
  `melody_dedupe`), counts windows for `configs` (the first decides which
  sequences are kept), splits by `is_eval`, writes train/eval TFRecords and
  summary.json. Returns the summary; a current summary.json is returned
  without work unless `force`.
  """
  from note_seq.protobuf import music_pb2

  start = time.perf_counter()
  output_dir = os.path.abspath(os.fspath(output_dir))
  configs = tuple(configs or WINDOW_CONFIGS[name])
  options = dict(options or {})
  options.update(configs=list(configs), melody_dedupe=melody_dedupe,
                 transform=getattr(transform, '__name__', None), eval_modulus=EVAL_MODULUS)
  fp = fingerprint(name, source_list, options)
  if not force:
    cached = _cached_summary(output_dir, fp)
    if cached is not None:
      return cached
  os.makedirs(output_dir, exist_ok=True)
  summary_path = os.path.join(output_dir, SUMMARY_NAME)
  if os.path.exists(summary_path):  # stale until this build finishes
    os.remove(summary_path)

  stages = {}
  counts = prepare.Summary()
  per_source = [collections.Counter() for _ in source_list]
  metres = collections.Counter()
  duplicates = collections.Counter()
  duplicate_examples = []
  renotated = 0
  kept = []  # (source index, NoteSequence)
  seen_ids, seen_keys = {}, {}
  with tempfile.TemporaryDirectory(prefix='mvae-corpus-') as tmp:
    # 1. Render (abc2midi, mma, WAD extraction) or list the files to read.
    t0 = time.perf_counter()
    items = []
    for index, src in enumerate(source_list):
      workdir = os.path.join(tmp, 'src%02d' % index)
      os.makedirs(workdir)
      src_items, failures = src.items(workdir, workers, progress)
      per_source[index]['files'] = len(src_items) + len(failures)
      for label, reason, detail in failures:
        counts.files_found += 1
        counts.add(label, None, (reason, detail))
        per_source[index]['skipped'] += 1
      items.extend((index, path, label, title) for path, label, title in src_items)
    stages['render'] = time.perf_counter() - t0

    # 2. Read in parallel (in order), renotate, dedupe.
    t0 = time.perf_counter()
    counts.files_found += len(items)
    bar = _bar(progress, len(items), 'read ' + name, 'file')
    for (index, path, label, title), (_, records, skip) in zip(
        items, prepare.iter_read([it[1] for it in items], workers=workers)):
      bar and bar.update(1)
      counts.add(label, records, skip)
      if skip is not None:
        per_source[index]['skipped'] += 1
        continue
      per_source[index]['read'] += 1
      for j, (data, _, _, _) in enumerate(records):
        ns = music_pb2.NoteSequence.FromString(data)
        suffix = ns.filename[len(path):] if ns.filename.startswith(path + '#') else (
            '#%d' % j if len(records) > 1 else '')
        ns.filename = label + suffix
        ns.collection_name = source_list[index].name
        if title and not ns.sequence_metadata.title:
          ns.sequence_metadata.title = title
        per_source[index]['sequences'] += 1
        metre = metre_label(ns)
        if transform is not None and transform(ns):
          ns.id = sources.content_id(ns)
          renotated += 1
        if ns.id in seen_ids:
          duplicates['content'] += 1
          per_source[index]['duplicates'] += 1
          duplicate_examples.append('%s = %s' % (ns.filename, seen_ids[ns.id]))
          continue
        seen_ids[ns.id] = ns.filename
        if melody_dedupe:
          key = melody_key(ns)
          if key is not None and key in seen_keys:
            duplicates['melody'] += 1
            per_source[index]['duplicates'] += 1
            duplicate_examples.append('%s ~ %s (same melody)' % (ns.filename, seen_keys[key]))
            continue
          if key is not None:
            seen_keys[key] = ns.filename
        metres[metre] += 1
        per_source[index]['distinct'] += 1
        kept.append((index, ns))
    bar and bar.close()
    stages['read'] = time.perf_counter() - t0

  # 3. Windows per config (eval mode); keep the sequences with a window of the first.
  t0 = time.perf_counter()
  serialized = [ns.SerializeToString() for _, ns in kept]
  window_results = count_windows(serialized, configs, workers, progress)
  stages['windows'] = time.perf_counter() - t0

  # 4. Split by sequence and write.
  t0 = time.perf_counter()
  main_config = configs[0]
  unusable = collections.Counter()
  windows = {c: {'train': 0, 'eval': 0, 'sequences_with_windows': {'train': 0, 'eval': 0}}
             for c in configs}
  distinct = {c: {'train': set(), 'eval': set()} for c in configs}
  split_counts = collections.Counter()
  with tfrecord.AtomicTFRecordWriter(os.path.join(output_dir, TRAIN_NAME)) as train_writer, \
      tfrecord.AtomicTFRecordWriter(os.path.join(output_dir, EVAL_NAME)) as eval_writer:
    for (index, ns), data, result in zip(kept, serialized, window_results):
      count, _, reason = result[main_config]
      if not count:
        unusable[reason] += 1
        continue
      split = 'eval' if is_eval(ns.id) else 'train'
      (eval_writer if split == 'eval' else train_writer).write(data)
      split_counts[split] += 1
      per_source[index][split] += 1
      for c in configs:
        n, digests, _ = result[c]
        windows[c][split] += n
        windows[c]['sequences_with_windows'][split] += bool(n)
        distinct[c][split].update(digests)
  for c in configs:
    windows[c]['total'] = windows[c]['train'] + windows[c]['eval']
    windows[c]['distinct_all_windows'] = {
        'train': len(distinct[c]['train']), 'eval': len(distinct[c]['eval']),
        'eval_also_in_train': len(distinct[c]['eval'] & distinct[c]['train'])}
  stages['write'] = time.perf_counter() - t0

  read = counts.as_dict(max_examples=5)
  source_rows = []
  for src, stats in zip(source_list, per_source):
    row = src.describe()
    row.update({k: stats.get(k, 0) for k in (
        'files', 'read', 'skipped', 'sequences', 'duplicates', 'distinct', 'train', 'eval')})
    source_rows.append(row)
  summary = {
      'corpus': name,
      'description': CORPORA.get(name, ''),
      'corpus_version': CORPUS_VERSION,
      'fingerprint': fp,
      'built': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      'output_dir': output_dir,
      'outputs': {'train': TRAIN_NAME, 'eval': EVAL_NAME},
      'options': options,
      'notes': list(notes),
      'sources': source_rows,
      'input_files': sum(len(s.inputs) for s in source_list),
      'files_found': read['files_found'],
      'files_read': read['files_read'],
      'files_skipped': read['files_skipped'],
      'skipped_by_reason': read['skipped_by_reason'],
      'skipped_examples': read['skipped_examples'],
      'sequences_read': read['sequences'],
      'renotated_2_4_as_4_4': renotated,
      'duplicates': {'content': duplicates['content'], 'melody': duplicates['melody']},
      'duplicate_examples': duplicate_examples[:5],
      'distinct_sequences': len(kept),
      'metres_of_distinct_sequences': dict(metres.most_common(20)),
      'without_%s_window_by_reason' % main_config: dict(unusable.most_common()),
      'sequences': {'train': split_counts['train'], 'eval': split_counts['eval'],
                    'total': split_counts['train'] + split_counts['eval']},
      'split_rule': 'by sequence: eval if int(sha1(content id)) %% %d == 0' % EVAL_MODULUS,
      'windows_rule': 'eval-mode windows per sequence as the converter yields them (capped '
                      'per sequence); distinct_all_windows counts distinct windows over all '
                      'windows, uncapped',
      'windows': windows,
      'stage_seconds': {k: round(v, 2) for k, v in stages.items()},
      'elapsed_seconds': round(time.perf_counter() - start, 2),
  }
  _write_json_atomic(summary_path, summary)
  return summary


# ----------------------------------------------------------------------------
# Debian packages.

def _default_install_missing():
  env = os.environ.get('MVAE_CORPUS_APT', '').strip().lower()
  if env in ('0', 'false', 'no', 'off'):
    return False
  if env in ('1', 'true', 'yes', 'on'):
    return True
  return hasattr(os, 'geteuid') and os.geteuid() == 0


def debian_version(package):
  """The installed version of a Debian package, or None."""
  try:
    out = subprocess.run(['dpkg-query', '-W', '-f=${Status}\t${Version}', package],
                         capture_output=True, text=True, timeout=60)
  except (OSError, subprocess.SubprocessError):
    return None
  if out.returncode != 0 or '\t' not in out.stdout:
    return None
  status, version = out.stdout.split('\t', 1)
  return version.strip() if status.split()[-1:] == ['installed'] else None


def _apt(args, cwd=None):
  env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
  return subprocess.run(['apt-get'] + list(args), cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=1800)


def _run_apt_with_update(args, cwd=None):
  """apt-get ARGS; on failure, apt-get update and once more."""
  try:
    out = _apt(args, cwd)
    if out.returncode != 0:
      _apt(['update'])
      out = _apt(args, cwd)
  except (OSError, subprocess.SubprocessError) as e:
    return False, str(e)
  return out.returncode == 0, (out.stderr or out.stdout)[-500:]


def ensure_debian_package(package, present, install_missing=None, needed_for=''):
  """Makes sure `present()` holds, installing Debian `package` with apt-get if
  allowed (as root; `install_missing` defaults to being root, or the
  MVAE_CORPUS_APT environment variable); otherwise raises CorpusError naming
  the command."""
  if present():
    return
  if install_missing is None:
    install_missing = _default_install_missing()
  command = 'apt-get install -y %s' % package
  what = ' (needed for %s)' % needed_for if needed_for else ''
  if not install_missing:
    raise CorpusError('the Debian package %s is not installed%s; install it with: sudo %s '
                      '(or, as root, pass install_missing=True or set MVAE_CORPUS_APT=1)'
                      % (package, what, command))
  if not hasattr(os, 'geteuid') or os.geteuid() != 0:
    raise CorpusError('the Debian package %s is not installed%s and installing it needs root; '
                      'run: sudo %s' % (package, what, command))
  ok, log = _run_apt_with_update(['install', '-y', package])
  if not ok or not present():
    raise CorpusError('could not install the Debian package %s%s with `%s`: %s'
                      % (package, what, command, log.strip()))


def _tool_version(argv):
  try:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
  except (OSError, subprocess.SubprocessError):
    return ''
  text = (out.stdout + out.stderr).strip().splitlines()
  return text[-1].strip() if text else ''


# ----------------------------------------------------------------------------
# Folk: music21's ABC collections.

def music21_corpus_dir():
  """music21's corpus folder, found without importing music21 (slow)."""
  spec = importlib.util.find_spec('music21')
  if spec is None or not spec.origin:
    raise CorpusError("the folk corpus reads the ABC collections that music21 ships, and "
                      "music21 is not installed: pip install music21 (or pip install "
                      "'mvae_tf[corpus]')")
  return os.path.join(os.path.dirname(spec.origin), 'corpus')


def _package_version(dist):
  try:
    return importlib.metadata.version(dist)
  except importlib.metadata.PackageNotFoundError:
    return ''


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
  version = _package_version('music21')
  have_abc2midi = shutil.which('abc2midi') is not None
  notes = []
  if not have_abc2midi:
    try:
      ensure_debian_package('abcmidi', lambda: shutil.which('abc2midi') is not None,
                            install_missing, 'the folk corpus')
      have_abc2midi = True
    except CorpusError as e:
      notes.append('abc2midi is missing (%s); read the ABC with note-seq\'s parser instead, '
                   'which does not play every repeat and fails on more tunes' % e)
  if have_abc2midi:
    abc_version = debian_version('abcmidi') or _tool_version(['abc2midi', '-ver'])
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
      src.tool = 'note-seq abc_parser %s' % _package_version('note-seq')
    result.append(src)
  return result, notes


# ----------------------------------------------------------------------------
# Drums and trio: MMA grooves, OpenMSX, Planet Blupi, Freedoom.

_DEFGROOVE = re.compile(r'^\s*defgroove\s+([^\s$]\S*)', re.IGNORECASE)


def mma_grooves(text):
  """Groove names defined in MMA source text, in order, without case repeats."""
  names, seen = [], set()
  for line in text.splitlines():
    m = _DEFGROOVE.match(line)
    if m and m.group(1).lower() not in seen:
      seen.add(m.group(1).lower())
      names.append(m.group(1))
  return names


def mma_source_text(path, groove, bars=MMA_BARS):
  chords = [MMA_CHORDS[i % len(MMA_CHORDS)] for i in range(bars)]
  return MMA_TEMPLATE.format(path=path, groove=groove, chords='\n'.join(chords))


def render_mma_groove(path, groove, output, workdir, bars=MMA_BARS):
  """Renders one groove of the MMA library file `path` to the MIDI file
  `output`; returns None or an error message."""
  safe = re.sub(r'[^A-Za-z0-9_.-]', '_', groove)
  src = os.path.join(workdir, '%s_%s.mma' % (
      hashlib.sha1(path.encode()).hexdigest()[:8], safe))
  with open(src, 'w', encoding='utf-8') as f:
    f.write(mma_source_text(path, groove, bars))
  class _Failed(Exception):
    pass
  try:
    with atomic.temporary(output) as tmp_out:
      os.remove(tmp_out)  # mma writes it
      try:
        out = subprocess.run(['mma', '-w', '-xNOCREDIT', src, '-f', tmp_out], cwd=workdir,
                             capture_output=True, text=True, timeout=MMA_TIMEOUT)
      except subprocess.TimeoutExpired:
        raise _Failed('mma took more than %d s' % MMA_TIMEOUT) from None
      if out.returncode != 0 or not os.path.isfile(tmp_out):
        lines = [l for l in (out.stdout + out.stderr).splitlines()
                 if l.strip() and 'PLUGIN' not in l]
        raise _Failed((lines[-1] if lines else 'mma failed (exit %d)' % out.returncode)[:300])
  except _Failed as e:
    return str(e)
  finally:
    os.remove(src)
  return None


def _mma_render(files, cache_dir, version):
  def render(workdir, workers, progress):
    key = hashlib.sha1(('%s|%s|%d|%s' % (version, MMA_TEMPLATE, MMA_BARS, MMA_CHORDS)).encode()
                       ).hexdigest()[:10]
    out_dir = os.path.join(cache_dir, 'mma-' + key)
    os.makedirs(out_dir, exist_ok=True)
    jobs = []
    for path in files:
      rel = os.path.relpath(path, MMA_LIB)
      with open(path, encoding='utf-8', errors='replace') as f:
        grooves = mma_grooves(f.read())
      st = os.stat(path)
      stamp = '%d-%d' % (st.st_size, st.st_mtime_ns)
      for groove in grooves:
        safe = re.sub(r'[^A-Za-z0-9_.-]', '_', groove)
        out = os.path.join(out_dir, rel[:-4], '%s.%s.mid' % (safe, stamp))
        jobs.append((path, groove, out, 'mma/%s:%s' % (rel, groove)))

    def run(job):
      path, groove, out, _ = job
      err_file = out + '.err'
      if os.path.isfile(out):
        return None
      if os.path.isfile(err_file):
        with open(err_file, encoding='utf-8') as f:
          return f.read()
      os.makedirs(os.path.dirname(out), exist_ok=True)
      error = render_mma_groove(path, groove, out, workdir)
      if error is not None:
        atomic.write_text(err_file, error)
      return error

    bar = _bar(progress, len(jobs), 'render mma', 'groove')
    items, failures = [], []
    with concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
      for job, error in zip(jobs, pool.map(run, jobs)):
        bar and bar.update(1)
        if error is None:
          items.append((job[2], job[3], job[1]))
        else:
          failures.append((job[3], 'mma error', error))
    bar and bar.close()
    return items, failures
  return render


def wad_lumps(data):
  """[(name, bytes)] of the lumps of a Doom WAD file, in directory order."""
  if len(data) < 12 or data[:4] not in (b'IWAD', b'PWAD'):
    raise ValueError('not a WAD file (no IWAD/PWAD header)')
  count, offset = struct.unpack('<ii', data[4:12])
  if count < 0 or offset < 12 or offset + 16 * count > len(data):
    raise ValueError('corrupt WAD directory')
  lumps = []
  for i in range(count):
    pos, size, name = struct.unpack('<ii8s', data[offset + 16 * i:offset + 16 * (i + 1)])
    if pos < 0 or size < 0 or pos + size > len(data):
      raise ValueError('lump %d lies outside the file' % i)
    lumps.append((name.split(b'\0')[0].decode('ascii', 'replace'), data[pos:pos + size]))
  return lumps


def wad_music(path, out_dir):
  """Writes the MIDI music lumps of a WAD to `out_dir`; returns
  ([(midi path, lump name)], [(lump name, reason)]). MUS lumps (Doom's own
  format) are not converted."""
  with open(path, 'rb') as f:
    lumps = wad_lumps(f.read())
  stem = os.path.splitext(os.path.basename(path))[0]
  written, skipped = [], []
  for name, data in lumps:
    if data[:4] == b'MThd':
      out = os.path.join(out_dir, '%s_%s.mid' % (stem, re.sub(r'[^A-Za-z0-9_]', '_', name)))
      atomic.write_bytes(out, data)
      written.append((out, name))
    elif data[:4] == b'MUS\x1a':
      skipped.append((name, 'MUS lump (not converted)'))
  return written, skipped


def _freedoom_deb(cache_dir, install_missing):
  """The cached freedoom .deb, fetched with `apt-get download` if needed."""
  deb_dir = os.path.join(cache_dir, 'freedoom')
  debs = sorted(glob.glob(os.path.join(deb_dir, 'freedoom_*.deb')))
  if debs:
    return debs[-1]
  if install_missing is None:
    install_missing = _default_install_missing()
  command = 'cd %s && apt-get download freedoom' % deb_dir
  if not install_missing:
    raise CorpusError('the drums and trio corpora read the music of the Debian package '
                      'freedoom (not installed, only unpacked); fetch it with: mkdir -p %s && '
                      '%s (or pass install_missing=True or set MVAE_CORPUS_APT=1)'
                      % (deb_dir, command))
  os.makedirs(deb_dir, exist_ok=True)
  ok, log = _run_apt_with_update(['download', 'freedoom'], cwd=deb_dir)
  debs = sorted(glob.glob(os.path.join(deb_dir, 'freedoom_*.deb')))
  if not ok or not debs:
    raise CorpusError('could not fetch the Debian package freedoom with `%s`: %s'
                      % (command, log.strip()))
  return debs[-1]


def _freedoom_render(deb):
  def render(workdir, workers, progress):
    unpacked = os.path.join(workdir, 'deb')
    try:
      subprocess.run(['dpkg-deb', '-x', deb, unpacked], check=True, capture_output=True,
                     timeout=600)
    except (OSError, subprocess.SubprocessError) as e:
      raise CorpusError('cannot unpack %s with dpkg-deb -x (%s); delete it to fetch it '
                        'again' % (deb, e)) from None
    wads = sorted(glob.glob(os.path.join(unpacked, '**', '*.wad'), recursive=True))
    items, failures = [], []
    for wad in wads:
      name = os.path.basename(wad)
      try:
        written, skipped = wad_music(wad, workdir)
      except ValueError as e:
        failures.append(('freedoom/%s' % name, 'corrupt WAD', str(e)))
        continue
      items.extend((p, 'freedoom/%s:%s' % (name, lump), lump) for p, lump in written)
      failures.extend(('freedoom/%s:%s' % (name, lump), reason, reason)
                      for lump, reason in skipped)
    if not wads:
      failures.append(('freedoom', 'no WAD', 'no .wad file in %s' % deb))
    return items, failures
  return render


def _debian_files(package, fallback_dir, extensions=sources.MIDI_EXTENSIONS):
  """The MIDI files a Debian package installed (dpkg -L), or those in
  `fallback_dir`, sorted."""
  files = []
  try:
    out = subprocess.run(['dpkg', '-L', package], capture_output=True, text=True, timeout=60)
    if out.returncode == 0:
      files = [l for l in out.stdout.splitlines()
               if l.lower().endswith(extensions) and os.path.isfile(l)]
  except (OSError, subprocess.SubprocessError):
    pass
  if not files and os.path.isdir(fallback_dir):
    files, _ = sources.find_files([fallback_dir], extensions)
  return sorted(files)


def song_sources(cache_dir, install_missing=None):
  """The Sources of the drums and trio corpora (installing or fetching the
  Debian packages if allowed)."""
  ensure_debian_package('mma', lambda: bool(shutil.which('mma')) and os.path.isdir(MMA_LIB),
                        install_missing, 'the drums and trio corpora')
  ensure_debian_package('openttd-openmsx', lambda: bool(_debian_files(
      'openttd-openmsx', OPENMSX_DIR)), install_missing, 'the drums and trio corpora')
  ensure_debian_package('planetblupi-music-midi', lambda: bool(_debian_files(
      'planetblupi-music-midi', BLUPI_DIR)), install_missing, 'the drums and trio corpora')
  deb = _freedoom_deb(cache_dir, install_missing)

  mma_version = debian_version('mma') or _tool_version(['mma', '-v'])
  mma_files = sorted(glob.glob(os.path.join(MMA_LIB, '**', '*.mma'), recursive=True))
  includes = sorted(glob.glob(os.path.join(MMA_INCLUDES, '*.mma')))
  openmsx = _debian_files('openttd-openmsx', OPENMSX_DIR)
  blupi = _debian_files('planetblupi-music-midi', BLUPI_DIR)
  deb_version = os.path.basename(deb).split('_')[1] if '_' in os.path.basename(deb) else ''
  return [
      Source(name='mma', package='mma (Debian)', version=mma_version, licence='GPL-2+',
             inputs=mma_files + includes, render=_mma_render(mma_files, cache_dir, mma_version),
             tool='mma %s %s' % (mma_version, hashlib.sha1(
                 mma_source_text('P', 'G').encode()).hexdigest()[:10]),
             notes=['each groove of %s rendered with `mma` over %d bars of chords (RndSeed 1, '
                    '120 qpm); the chord track stands in for the melody' % (MMA_LIB, MMA_BARS)]),
      Source(name='openmsx', package='openttd-openmsx (Debian)',
             version=debian_version('openttd-openmsx') or '', licence='GPL-2',
             inputs=openmsx, root=os.path.dirname(os.path.commonpath(openmsx)) if openmsx
             else OPENMSX_DIR, notes=['OpenMSX music set for OpenTTD (jazz, blues, ragtime)']),
      Source(name='planetblupi', package='planetblupi-music-midi (Debian)',
             version=debian_version('planetblupi-music-midi') or '', licence='GPL-3+',
             inputs=blupi, root=os.path.dirname(os.path.commonpath(blupi)) if blupi
             else BLUPI_DIR, notes=['Planet Blupi game music (10 long, repetitive songs)']),
      Source(name='freedoom', package='freedoom (Debian, unpacked, not installed)',
             version=deb_version, licence='BSD-3-Clause (freedoom-license)', inputs=[deb],
             root=os.path.dirname(deb),
             render=_freedoom_render(deb), tool='wad-midi-lumps',
             notes=['MIDI lumps of the Freedoom WADs from %s' % os.path.basename(deb)]),
  ]


# ----------------------------------------------------------------------------
# Entry point.

def build_corpus(name, output_dir, workers=None, force=False, progress=True,
                 install_missing=None, cache_dir=None):
  """Builds the corpus `name` (see CORPORA) into `output_dir`: train.tfrecord,
  eval.tfrecord, summary.json. Returns the summary (the stored one when the
  inputs have not changed, unless `force`).

  Missing Debian packages are installed with apt-get when `install_missing`
  (default: running as root, or MVAE_CORPUS_APT=1); otherwise the error
  names the command. Rendered MIDI and the freedoom .deb are kept in
  `cache_dir` (default: .cache beside output_dir, shared by drums and trio).
  """
  if name not in CORPORA:
    raise ValueError('unknown corpus %r; known corpora: %s' % (name, ', '.join(CORPORA)))
  output_dir = os.path.abspath(os.fspath(output_dir))
  # drums and trio render the same songs: by default they share one cache
  # beside their output folders (data/.cache for data/drums and data/trio).
  cache_dir = os.path.abspath(cache_dir or os.path.join(os.path.dirname(output_dir), '.cache'))
  if name == 'folk':
    folk, notes = folk_sources(install_missing)
    return build_from_sources(name, output_dir, folk, workers=workers, force=force,
                              progress=progress, transform=merge_two_four,
                              melody_dedupe=True, notes=notes)
  songs = song_sources(cache_dir, install_missing)
  notes = ['hand-programmed General MIDI music, not performances, and small',
           'whole songs are kept; the %s converter uses only the parts it needs' % name]
  return build_from_sources(name, output_dir, songs, workers=workers, force=force,
                            progress=progress, notes=notes)


def format_summary(summary):
  """A short human-readable account of a corpus summary (the JSON has it all)."""
  lines = ['%s: %s' % (summary['corpus'], summary.get('description', '')),
           'in %s: %s (train), %s (eval)' % (summary['output_dir'], summary['outputs']['train'],
                                             summary['outputs']['eval'])]
  for source in summary.get('sources', []):
    lines.append('  source %s: %s %s' % (source.get('name'), source.get('package', ''),
                                         source.get('version', '')))
  lines.append('files: %d found, %d read, %d skipped %s' % (
      summary['files_found'], summary['files_read'], summary['files_skipped'],
      json.dumps(summary.get('skipped_by_reason', {}))))
  seqs = summary['sequences']
  lines.append('%d distinct tunes/songs; kept %d train / %d eval (split by tune/song)' % (
      summary['distinct_sequences'], seqs['train'], seqs['eval']))
  for config, w in summary.get('windows', {}).items():
    lines.append('  %s windows: %d train / %d eval' % (config, w['train'], w['eval']))
  if 'elapsed_seconds' in summary:
    lines.append('built in %.0f s' % summary['elapsed_seconds'])
  return '\n'.join(lines)
