"""Reading the MIDI lumps out of a Doom WAD file (Freedoom's music)."""

import os
import re
import struct

from mvae_tf import atomic


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
