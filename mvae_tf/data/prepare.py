"""`mvae prepare`: music files -> a TFRecord of NoteSequences.

Files are parsed in parallel worker processes; records are written in the
order of the sorted file list (so a rebuild gives the same file), atomically.
"""

import collections
import multiprocessing
import os
import sys
import time

from mvae_tf.data import sources, tfrecord


def _read_one(args):
  path, limits = args
  try:
    sequences = sources.read_file(path, **limits)
  except sources.SkippedFile as e:
    return path, None, (e.reason, e.detail)
  except Exception as e:  # a parser bug must not end the whole run
    return path, None, ('parser error', '%s: %s' % (type(e).__name__, str(e)[:200]))
  return path, [(ns.SerializeToString(), len(ns.notes), ns.total_time, ns.id)
                for ns in sequences], None


def iter_read(files, limits=None, workers=None):
  """Yields (path, [(bytes, notes, seconds, content id)] or None, (reason, detail) or None) in file order."""
  limits = limits or {}
  workers = workers or os.cpu_count() or 1
  jobs = [(f, limits) for f in files]
  if workers <= 1 or len(files) < 4:
    yield from map(_read_one, jobs)
    return
  ctx = multiprocessing.get_context('fork' if sys.platform.startswith('linux') else 'spawn')
  with ctx.Pool(workers, maxtasksperchild=500) as pool:
    yield from pool.imap(_read_one, jobs, chunksize=8)


class Summary:
  """What a `prepare` run read, skipped and wrote."""

  def __init__(self):
    self.files_found = 0
    self.files_read = 0
    self.sequences = 0
    self.notes = 0
    self.seconds = 0.0
    self.skipped = collections.Counter()
    self.skipped_examples = {}
    self.missing_inputs = []
    self.written = False
    self.elapsed = 0.0
    self.output = None

  def add(self, path, records, skip):
    if skip is not None:
      reason, detail = skip
      self.skipped[reason] += 1
      self.skipped_examples.setdefault(reason, []).append('%s: %s' % (path, detail))
      return
    self.files_read += 1
    for _, notes, seconds, _ in records:
      self.sequences += 1
      self.notes += notes
      self.seconds += seconds

  def as_dict(self, max_examples=5):
    return {
        'output': self.output,
        'files_found': self.files_found,
        'files_read': self.files_read,
        'files_skipped': sum(self.skipped.values()),
        'skipped_by_reason': dict(sorted(self.skipped.items())),
        'skipped_examples': {k: v[:max_examples] for k, v in sorted(self.skipped_examples.items())},
        'missing_inputs': self.missing_inputs,
        'sequences': self.sequences,
        'notes': self.notes,
        'total_seconds': round(self.seconds, 3),
        'elapsed_seconds': round(self.elapsed, 3),
        'files_per_second': round(self.files_found / self.elapsed, 2) if self.elapsed else None,
    }

  def format(self):
    d = self.as_dict(max_examples=3)
    lines = ['wrote %d NoteSequences to %s' % (d['sequences'], d['output']),
             'files: %d found, %d read, %d skipped (%.1f files/s)' % (
                 d['files_found'], d['files_read'], d['files_skipped'],
                 d['files_per_second'] or 0.0),
             'notes: %d, total duration %.1f h' % (d['notes'], d['total_seconds'] / 3600)]
    for reason, count in d['skipped_by_reason'].items():
      lines.append('  skipped %d: %s' % (count, reason))
      lines.extend('    e.g. ' + ex for ex in d['skipped_examples'][reason])
    for path in d['missing_inputs']:
      lines.append('  input not found: %s' % path)
    return '\n'.join(lines)


class InputError(ValueError):
  """Inputs that do not exist: nothing is read and the output is left as it was."""


def prepare(inputs, output, workers=None, limits=None, progress=True, dedupe=False):
  """Reads every supported file under `inputs` into the TFRecord `output`.

  With `dedupe`, sequences whose content (notes, timing, metre) repeats an
  earlier one (in the same file or another) are dropped. Returns a Summary.

  An input path that does not exist raises InputError before anything is
  read or written. A run that reads no sequence writes nothing (an existing
  `output` is left as it was; summary.written is False).
  """
  start = time.perf_counter()
  files, missing = sources.find_files(inputs)
  if missing:
    raise InputError('no such input: %s; nothing was read, and %s was left as it was' % (
        ', '.join(missing), os.fspath(output)))
  summary = Summary()
  summary.files_found = len(files)
  summary.missing_inputs = missing
  summary.output = os.fspath(output)
  seen = set()
  bar = None
  if progress:
    from tqdm import tqdm
    bar = tqdm(total=len(files), unit='file', desc='prepare', file=sys.stderr,
               disable=None, dynamic_ncols=True)
  writer = tfrecord.AtomicTFRecordWriter(output)
  try:
    for path, records, skip in iter_read(files, limits, workers):
      if records and dedupe:
        fresh = []
        for r in records:  # checked one by one: duplicates within one file count too
          if r[3] not in seen:
            seen.add(r[3])
            fresh.append(r)
        records = fresh
        if not records:
          skip = ('duplicate', 'same notes as an earlier file')
      summary.add(path, records, skip)
      for data, *_ in records or ():
        writer.write(data)
      if bar is not None:
        bar.update(1)
  except BaseException:
    writer.abort()
    raise
  finally:
    if bar is not None:
      bar.close()
  summary.written = bool(summary.sequences)
  if summary.written:
    writer.close()
  else:
    writer.abort()
  summary.elapsed = time.perf_counter() - start
  return summary
