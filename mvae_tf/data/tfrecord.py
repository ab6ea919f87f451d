"""TFRecord files without TensorFlow: NoteSequence data sets are read and
written by commands (`prepare`, `corpus`, `inspect`) that need not pay for
importing TensorFlow. The format is TensorFlow's: per record, a little-endian
uint64 length, its masked CRC-32C, the bytes, their masked CRC-32C.
"""

import os
import struct
import tempfile

import google_crc32c

_MASK_DELTA = 0xA282EAD8


def _masked_crc(data):
  crc = google_crc32c.value(data)
  return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


class CorruptRecordError(ValueError):
  pass


class AtomicTFRecordWriter:
  """Writes records to a temporary file renamed to `path` on a clean close.

  A killed or failed run leaves nothing under the final name (the temporary
  file, named `.<name>.tmp-*` beside it, is removed on error).
  """

  def __init__(self, path):
    self.path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(self.path))
    os.makedirs(directory, exist_ok=True)
    fd, self._tmp = tempfile.mkstemp(
        prefix='.%s.tmp-' % os.path.basename(self.path), dir=directory)
    self._file = os.fdopen(fd, 'wb')
    self.count = 0

  def write(self, data):
    header = struct.pack('<Q', len(data))
    self._file.write(header)
    self._file.write(struct.pack('<I', _masked_crc(header)))
    self._file.write(data)
    self._file.write(struct.pack('<I', _masked_crc(data)))
    self.count += 1

  def close(self):
    if self._file.closed:
      return
    self._file.flush()
    os.fsync(self._file.fileno())
    self._file.close()
    os.replace(self._tmp, self.path)

  def abort(self):
    if not self._file.closed:
      self._file.close()
    if os.path.exists(self._tmp):
      os.remove(self._tmp)

  def __enter__(self):
    return self

  def __exit__(self, exc_type, exc, tb):
    if exc_type is None:
      self.close()
    else:
      self.abort()


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
                                 'header); rebuild the file' % (path, index))
      crc = f.read(4)
      if len(crc) < 4 or struct.unpack('<I', crc)[0] != _masked_crc(header):
        raise CorruptRecordError('%s: record %d has a bad length checksum; this is '
                                 'not a TFRecord file or it is damaged' % (path, index))
      (length,) = struct.unpack('<Q', header)
      data = f.read(length)
      crc = f.read(4)
      if len(data) < length or len(crc) < 4:
        raise CorruptRecordError('%s: truncated in record %d; rebuild the file' % (path, index))
      if struct.unpack('<I', crc)[0] != _masked_crc(data):
        raise CorruptRecordError('%s: record %d has a bad data checksum; the file is '
                                 'damaged' % (path, index))
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
