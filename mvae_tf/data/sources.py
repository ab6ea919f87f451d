"""Reading music files (MIDI, MusicXML, ABC) into NoteSequences.

Every failure is a `SkippedFile` with a short reason category (for summaries)
and a message that names the file and says what to do.
"""

import hashlib
import os
import warnings

MIDI_EXTENSIONS = ('.mid', '.midi', '.kar', '.smf')
MUSICXML_EXTENSIONS = ('.xml', '.musicxml', '.mxl')
ABC_EXTENSIONS = ('.abc',)
SUPPORTED_EXTENSIONS = MIDI_EXTENSIONS + MUSICXML_EXTENSIONS + ABC_EXTENSIONS

# Defaults that keep one hostile file from taking a run down.
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_NOTES = 500_000
MAX_SECONDS = 4 * 3600.0


def display_name(path):
  """A file name as text that can be printed and stored in a NoteSequence.

  Names that are not valid UTF-8 reach Python surrogate-escaped ('caf\\udce9.mid'),
  which neither protobuf nor a UTF-8 terminal accepts; their odd bytes are
  written as backslash escapes instead ('caf\\xe9.mid')."""
  path = os.fspath(path)
  if isinstance(path, bytes):
    return path.decode('utf-8', 'backslashreplace')
  try:
    path.encode('utf-8')
    return path
  except UnicodeEncodeError:
    return path.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')


class SkippedFile(Exception):
  """A file that yields no NoteSequence; `reason` is a short category."""

  def __init__(self, path, reason, detail):
    path = display_name(path)
    super().__init__('%s: %s' % (path, detail))
    self.path = path
    self.reason = reason
    self.detail = detail


def find_files(paths, extensions=SUPPORTED_EXTENSIONS):
  """Files under `paths` (files or folders, searched recursively), sorted.

  Returns (files, missing): paths that do not exist are reported, not raised.
  """
  found, missing = [], []
  for path in paths:
    path = os.fspath(path)
    if os.path.isdir(path):
      for root, dirs, names in os.walk(path):
        dirs.sort()
        found.extend(os.path.join(root, n) for n in sorted(names)
                     if n.lower().endswith(extensions))
    elif os.path.isfile(path):
      found.append(path)
    else:
      missing.append(path)
  return found, missing


def content_id(note_sequence):
  """A hash of what a sequence plays (notes, timing, metre), not of its file name."""
  h = hashlib.sha1()
  for ts in note_sequence.time_signatures:
    h.update(b'ts%.6f/%d/%d' % (ts.time, ts.numerator, ts.denominator))
  for t in note_sequence.tempos:
    h.update(b'q%.6f/%.6f' % (t.time, t.qpm))
  for n in sorted(note_sequence.notes, key=lambda n: (n.start_time, n.pitch, n.end_time,
                                                        n.instrument, n.program, n.is_drum)):
    h.update(b'n%d/%d/%d/%d/%.6f/%.6f' % (n.pitch, n.program, n.instrument, n.is_drum,
                                          n.start_time, n.end_time))
  return h.hexdigest()


def _hint(limit_hint, flag):
  return limit_hint % flag if '%s' in limit_hint else limit_hint


def _check_limits(path, ns, max_notes, max_seconds, limit_hint):
  if not ns.notes:
    raise SkippedFile(path, 'no notes', 'no notes in the file')
  if len(ns.notes) > max_notes:
    raise SkippedFile(path, 'too large', '%d notes, more than the limit of %d (%s)' % (
        len(ns.notes), max_notes, _hint(limit_hint, 'max_notes')))
  if ns.total_time > max_seconds:
    raise SkippedFile(path, 'too long', 'lasts %.0f s, more than the limit of %.0f s (%s)' % (
        ns.total_time, max_seconds, _hint(limit_hint, 'max_seconds')))


def _read_midi(path, data):
  import note_seq
  if not data.startswith(b'MThd'):
    raise SkippedFile(path, 'not MIDI', 'not a MIDI file (no MThd header)')
  try:
    with warnings.catch_warnings():
      # pretty_midi warns about meta events on non-zero tracks; they are read anyway.
      warnings.simplefilter('ignore', RuntimeWarning)
      return [note_seq.midi_to_note_sequence(data)]
  except Exception as e:  # pretty_midi/mido raise many kinds on bad bytes
    raise SkippedFile(path, 'corrupt MIDI', 'corrupt or truncated MIDI (%s: %s)' % (
        type(e).__name__, str(e)[:200])) from None


def _read_musicxml(path):
  import note_seq
  try:
    return [note_seq.musicxml_file_to_sequence_proto(path)]
  except Exception as e:
    raise SkippedFile(path, 'corrupt MusicXML', 'cannot parse MusicXML (%s: %s)' % (
        type(e).__name__, str(e)[:200])) from None


def _read_abc(path):
  from note_seq import abc_parser
  try:
    tunes, errors = abc_parser.parse_abc_tunebook_file(path)
  except Exception as e:
    raise SkippedFile(path, 'corrupt ABC', 'cannot parse ABC (%s: %s)' % (
        type(e).__name__, str(e)[:200])) from None
  sequences = []
  for index in sorted(tunes):
    ns = tunes[index]
    ns.filename = '%s#%d' % (display_name(path), index)
    sequences.append(ns)
  if not sequences:
    raise SkippedFile(path, 'corrupt ABC', 'no ABC tune could be parsed (%d errors)' %
                      len(errors))
  return sequences


def read_file(path, max_bytes=MAX_FILE_BYTES, max_notes=MAX_NOTES, max_seconds=MAX_SECONDS,
              limit_hint='raise --%s to read it'):
  """The NoteSequences in one file (ABC tune books hold several).

  Raises SkippedFile with the reason when the file yields none. `limit_hint`
  says what to do about a limit (%s: the flag of `mvae prepare` that sets it;
  commands without such flags pass their own words).
  """
  ext = os.path.splitext(path)[1].lower()
  if ext not in SUPPORTED_EXTENSIONS:
    raise SkippedFile(path, 'unsupported type', 'not a MIDI, MusicXML or ABC file '
                      '(extension %r)' % ext)
  try:
    size = os.path.getsize(path)
  except OSError as e:
    raise SkippedFile(path, 'unreadable', 'cannot read (%s)' % e.strerror) from None
  if size == 0:
    raise SkippedFile(path, 'empty file', 'the file is empty')
  if size > max_bytes:
    raise SkippedFile(path, 'too large', '%.2f MB, more than the limit of %g MB (%s)' % (
        size / 2**20, max_bytes / 2**20, _hint(limit_hint, 'max_file_mb')))
  if ext in MIDI_EXTENSIONS:
    with open(path, 'rb') as f:
      sequences = _read_midi(path, f.read())
  elif ext in MUSICXML_EXTENSIONS:
    sequences = _read_musicxml(path)
  else:
    sequences = _read_abc(path)
  kept, first_error = [], None
  for ns in sequences:
    if not ns.filename:
      ns.filename = display_name(path)
    try:
      _check_limits(ns.filename, ns, max_notes, max_seconds, limit_hint)
    except SkippedFile as e:  # one bad tune in a tune book skips that tune only
      first_error = first_error or e
      continue
    ns.id = content_id(ns)
    kept.append(ns)
  if not kept:
    raise SkippedFile(path, first_error.reason, first_error.detail)
  return kept
