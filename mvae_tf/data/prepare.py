"""`mvae prepare`: music files -> a TFRecord of NoteSequences.

Files are parsed in parallel worker processes; records are written in the
order of the sorted file list (so a rebuild gives the same file), atomically.
"""

import collections
import os
import signal
import sys
import threading
import time

from mvae_tf.data import sources, tfrecord


# Seconds one file may take to parse (--timeout_per_file): a 16 MB MIDI takes about 40.
TIMEOUT_PER_FILE = 60.0


class _Timeout(BaseException):  # not caught by the parsers' `except Exception`
  pass


_timed_out = []  # set by the alarm: parsers re-raise it as their own error type


def _on_alarm(signum, frame):
  _timed_out.append(True)
  raise _Timeout()


def _read_one(args):
  path, limits, timeout = args
  import note_seq  # noqa: F401  (imported before the clock starts)
  alarm = bool(timeout) and threading.current_thread() is threading.main_thread()
  timed_out = (None, ('timed out', 'took more than %g s to parse (raise --timeout_per_file '
                                   'to allow more)' % (timeout or 0)))
  del _timed_out[:]
  if alarm:
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
  try:
    sequences = sources.read_file(path, **limits)
  except _Timeout:
    return (path,) + timed_out
  except sources.SkippedFile as e:
    if _timed_out:  # note_seq turns the alarm into a MIDIConversionError
      return (path,) + timed_out
    return path, None, (e.reason, e.detail)
  except Exception as e:  # a parser bug must not end the whole run
    return path, None, ('parser error', '%s: %s' % (type(e).__name__, str(e)[:200]))
  finally:
    if alarm:
      signal.setitimer(signal.ITIMER_REAL, 0)
      signal.signal(signal.SIGALRM, old)
  return path, [(ns.SerializeToString(), len(ns.notes), ns.total_time, ns.id)
                for ns in sequences], None


def iter_read(files, limits=None, workers=None, timeout=TIMEOUT_PER_FILE):
  """Yields (path, [(bytes, notes, seconds, content id)] or None, (reason, detail) or None)
  in file order. A file that takes more than `timeout` seconds to parse is skipped
  ('timed out')."""
  limits = limits or {}
  from mvae_tf import workers as workers_lib
  jobs = [(f, limits, timeout) for f in files]
  yield from workers_lib.imap(_read_one, jobs, workers, chunksize=8, maxtasksperchild=500,
                              min_items=4)


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
      self.skipped_examples.setdefault(reason, []).append(
          '%s: %s' % (sources.display_name(path), detail))
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


class _SlowFileNotice:
  """Says which file a slow parse is on (the next one in order) and for how long: on
  the progress bar, or in a line on stderr when there is no bar (not a terminal)."""

  def __init__(self, bar, files, after=3.0, line_after=10.0):
    self.bar, self.files, self.after, self.line_after = bar, files, after, line_after
    self.index, self.since, self.shown, self.said = 0, time.perf_counter(), False, False
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._watch, daemon=True)
    self._thread.start()

  def _watch(self):
    while not self._stop.wait(1.0):
      index, waited = self.index, time.perf_counter() - self.since
      if index >= len(self.files) or waited < self.after:
        continue
      name = sources.display_name(os.path.basename(self.files[index]))
      if self.bar is not None and not self.bar.disable:
        self.bar.set_postfix_str('parsing %s for %d s' % (name, waited))
        self.shown = True
      elif waited >= self.line_after and not self.said:
        print('prepare: still parsing %s after %d s (file %d of %d)' % (
            name, waited, index + 1, len(self.files)), file=sys.stderr, flush=True)
        self.said = True

  def next(self):
    self.index += 1
    self.since = time.perf_counter()
    self.said = False
    if self.shown:
      self.bar.set_postfix_str('')
      self.shown = False

  def close(self):
    self._stop.set()
    self._thread.join()


def prepare(inputs, output, workers=None, limits=None, progress=True, dedupe=False,
            timeout_per_file=TIMEOUT_PER_FILE):
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
  notice = _SlowFileNotice(bar, files) if progress else None
  try:
    for path, records, skip in iter_read(files, limits, workers, timeout_per_file):
      if notice is not None:
        notice.next()
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
    if notice is not None:
      notice.close()
    if bar is not None:
      bar.close()
  summary.written = bool(summary.sequences)
  if summary.written:
    writer.close()
  else:
    writer.abort()
  summary.elapsed = time.perf_counter() - start
  return summary
