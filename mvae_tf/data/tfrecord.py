"""TFRecord files without TensorFlow: NoteSequence data sets are read and
written by commands (`prepare`, `corpus`, `inspect`) that need not pay for
importing TensorFlow. The format is TensorFlow's: per record, a little-endian
uint64 length, its masked CRC-32C, the bytes, their masked CRC-32C.
"""

import os
import struct
import sys

import google_crc32c

_MASK_DELTA = 0xA282EAD8


def _masked_crc(data):
  crc = google_crc32c.value(data)
  return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


class CorruptRecordError(ValueError):
  pass


def frame(data):
  """One record as it is stored: length, its checksum, the bytes, their checksum."""
  header = struct.pack('<Q', len(data))
  return b''.join((header, struct.pack('<I', _masked_crc(header)), data,
                   struct.pack('<I', _masked_crc(data))))


class AtomicTFRecordWriter:
  """Writes records to a file that appears under `path` only on a clean close
  (mvae_tf.atomic: a temporary file beside it, fsynced, renamed; removed on
  error, and a full disk is a one-line errors.WriteError)."""

  def __init__(self, path):
    from mvae_tf import atomic
    self.path = os.fspath(path)
    self._context = atomic.open_file(self.path, 'wb')
    self._file = self._context.__enter__()
    self.count = 0

  def write(self, data):
    try:
      self._file.write(frame(data))
    except BaseException:
      self.abort(*sys.exc_info())
      raise
    self.count += 1

  def close(self):
    if self._context is not None:
      context, self._context = self._context, None
      context.__exit__(None, None, None)

  def abort(self, *exc_info):
    """Remove the temporary file (re-raising a write error as the context does)."""
    if self._context is not None:
      context, self._context = self._context, None
      exc_info = exc_info or (KeyboardInterrupt, KeyboardInterrupt(), None)
      context.__exit__(*exc_info)

  def __enter__(self):
    return self

  def __exit__(self, exc_type, exc, tb):
    if exc_type is None:
      self.close()
    else:
      self.abort(exc_type, exc, tb)


def read_records(path):
  """Yields the records of a TFRecord file; a damaged file raises
  CorruptRecordError naming the file and the record."""
  with open(path, 'rb') as f:
    index = 0
    while True:
      header = f.read(8)
      if not header:
        return
      if len(header) < 8:
        raise CorruptRecordError('%s: truncated at record %d (a partial length '
                                 'header)' % (path, index))
      crc = f.read(4)
      if len(crc) < 4 or struct.unpack('<I', crc)[0] != _masked_crc(header):
        raise CorruptRecordError('%s: record %d has a bad length checksum (not a '
                                 'TFRecord file, or a damaged one)' % (path, index))
      (length,) = struct.unpack('<Q', header)
      data = f.read(length)
      crc = f.read(4)
      if len(data) < length or len(crc) < 4:
        raise CorruptRecordError('%s: truncated in record %d' % (path, index))
      if struct.unpack('<I', crc)[0] != _masked_crc(data):
        raise CorruptRecordError('%s: record %d has a bad data checksum (the file is '
                                 'damaged)' % (path, index))
      yield data
      index += 1


def read_note_sequences(path):
  """Yields the NoteSequences of a TFRecord file written by `mvae prepare`."""
  from google.protobuf.message import DecodeError
  from note_seq.protobuf import music_pb2
  for index, data in enumerate(read_records(path)):
    ns = music_pb2.NoteSequence()
    try:
      ns.ParseFromString(data)
    except DecodeError as e:
      raise CorruptRecordError('%s: record %d is not a NoteSequence (%s); make the file '
                               'with `mvae prepare`' % (path, index, e)) from e
    yield ns
