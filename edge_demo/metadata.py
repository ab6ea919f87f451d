"""Reading the `mvae_tf` metadata packed into an exported .tflite file.

Standard library only: it walks the flatbuffer itself, so a device without
TensorFlow (or the flatbuffers package) can read what a model is. The writer
is mvae_tf.export.metadata (it needs TensorFlow's flatbuffer schema).
"""

import json
import os
import struct

METADATA_NAME = 'mvae_tf'


class MetadataError(ValueError):
  """A file that is not a .tflite flatbuffer, or one without mvae_tf metadata."""


def _table(buf, pos):
  """(table position, field reader) of the flatbuffer table at `pos`."""
  vtable = pos - struct.unpack_from('<i', buf, pos)[0]
  vt_size = struct.unpack_from('<H', buf, vtable)[0]

  def field(i):
    off = 4 + 2 * i
    if off >= vt_size:
      return None
    rel = struct.unpack_from('<H', buf, vtable + off)[0]
    return pos + rel if rel else None
  return field


def _deref(buf, pos):
  return pos + struct.unpack_from('<I', buf, pos)[0]


def _vector(buf, pos):
  """(start, length) of the vector referenced at `pos`."""
  vec = _deref(buf, pos)
  return vec + 4, struct.unpack_from('<I', buf, vec)[0]


def read_tflite_metadata(path_or_bytes):
  """The dict packed by pack_tflite_metadata (standard library only).

  Raises MetadataError naming the file when it is not a TFLite model or has
  no `mvae_tf` entry.
  """
  if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
    buf, where = bytes(path_or_bytes), 'the model'
  else:
    where = os.fspath(path_or_bytes)
    with open(where, 'rb') as f:
      buf = f.read()
  if len(buf) < 8 or buf[4:8] != b'TFL3':
    raise MetadataError('%s is not a TFLite model (no TFL3 identifier)' % where)
  try:
    model = _table(buf, _deref(buf, 0))
    meta_field, buffers_field = model(6), model(4)
    if meta_field is None or buffers_field is None:
      raise MetadataError('%s has no mvae_tf metadata: export it with `mvae export`' % where)
    start, count = _vector(buf, meta_field)
    for i in range(count):
      entry_pos = _deref(buf, start + 4 * i)
      entry = _table(buf, entry_pos)
      name_pos = entry(0)
      if name_pos is None:
        continue
      s, n = _vector(buf, name_pos)
      if buf[s:s + n].decode('utf-8', 'replace') != METADATA_NAME:
        continue
      index = struct.unpack_from('<I', buf, entry(1))[0] if entry(1) else 0
      bstart, bcount = _vector(buf, buffers_field)
      buffer = _table(buf, _deref(buf, bstart + 4 * index))
      data_pos = buffer(0)
      if data_pos is not None:
        ds, dn = _vector(buf, data_pos)
        payload = buf[ds:ds + dn]
      else:  # stored after the flatbuffer (models over 2 GB): offset and size
        offset = struct.unpack_from('<Q', buf, buffer(1))[0]
        size = struct.unpack_from('<Q', buf, buffer(2))[0]
        payload = buf[offset:offset + size]
      return json.loads(payload.decode('utf-8'))
  except (struct.error, IndexError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as e:
    raise MetadataError('%s: unreadable TFLite metadata (%s): re-export it' % (where, e)) \
        from None
  raise MetadataError('%s has no mvae_tf metadata: export it with `mvae export`' % where)
