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
import datetime
import hashlib
import json
import os
import tempfile
import time

from mvae_tf import atomic
from mvae_tf.data import prepare, sources, tfrecord

from mvae_tf.data.corpus import common, folk, songs


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
  bar = common.progress_bar(progress, len(serialized), 'windows', 'seq')
  results = []
  for r in workers_lib.imap(_count_windows, serialized, workers, _init_window_worker,
                            (config_names,), chunksize=4, maxtasksperchild=2000,
                            min_items=16):
    results.append(r)
    bar and bar.update(1)
  bar and bar.close()
  return results


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
    bar = common.progress_bar(progress, len(items), 'read ' + name, 'file')
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
    sources_, notes = folk.folk_sources(install_missing)
    return build_from_sources(name, output_dir, sources_, workers=workers, force=force,
                              progress=progress, transform=merge_two_four,
                              melody_dedupe=True, notes=notes)
  song_list = songs.song_sources(cache_dir, install_missing)
  notes = ['hand-programmed General MIDI music, not performances, and small',
           'whole songs are kept; the %s converter uses only the parts it needs' % name]
  return build_from_sources(name, output_dir, song_list, workers=workers, force=force,
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
