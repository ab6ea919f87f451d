"""The attribute-vector file: one [z_size] float32 array per attribute in an .npz,
plus a JSON '__meta__' entry (mvae_tf.generation.attributes computes them; a
packaged model carries one as attributes.npz)."""

import json

import numpy as np

from mvae_tf import atomic

META_KEY = '__meta__'


def save_attribute_vectors(path, vectors, meta=None):
  """Write vectors (and meta) to an .npz file, atomically."""
  arrays = {k: np.asarray(v, np.float32) for k, v in vectors.items()}
  arrays[META_KEY] = np.array(json.dumps(meta or {}))

  def write(tmp):
    with open(tmp, 'wb') as f:
      np.savez(f, **arrays)
  atomic.write_file(path, write)


def load_attribute_vectors(path):
  """(vectors {name: [z_size] array}, meta dict) from an .npz file."""
  with np.load(path, allow_pickle=False) as data:
    vectors = {k: data[k].astype(np.float32) for k in data.files if k != META_KEY}
    meta = json.loads(str(data[META_KEY])) if META_KEY in data.files else {}
  return vectors, meta
