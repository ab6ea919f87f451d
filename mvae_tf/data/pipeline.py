"""tf.data pipelines: a TFRecord of NoteSequences -> batches of
(inputs, outputs, controls, lengths) for a config.

Train mode: sequences are shuffled, converted with random window choice and
transposition (new each epoch), windows shuffled again, batches of exactly
`batch_size`, repeated forever. Eval mode: windows in a fixed order, once.

Tensors: inputs [B, T, input_depth] bool, outputs [B, T, output_depth] bool,
controls [B, T, control_depth] bool, lengths [B] int32 (T = max_seq_len).
Bool keeps trio batches small (692 dims x 256 steps); the model casts.
"""

import os

import numpy as np
import tensorflow as tf

from mvae_tf import configs
from mvae_tf.data import tfrecord

# Memory allowed for the shuffle buffer of windows in train mode.
WINDOW_SHUFFLE_BYTES = 128 * 1024 * 1024
# Memory allowed for the shuffle buffer of serialized sequences in train mode: a data
# set up to this size is shuffled whole each epoch.
SEQUENCE_SHUFFLE_BYTES = 256 * 1024 * 1024


def _pad(arrays, length, depth):
  out = np.zeros((len(arrays), length, depth), bool)
  for i, a in enumerate(arrays):
    out[i, :min(len(a), length)] = a[:length]
  return out


def convert_fn(config, mode='train', seed=None):
  """A numpy function: serialized NoteSequence -> padded window arrays."""
  from note_seq.protobuf import music_pb2
  converter = config.make_converter(mode, seed=seed)
  length = config.max_seq_len

  def convert(serialized):
    ns = music_pb2.NoteSequence.FromString(serialized)
    t = converter.to_tensors(ns)
    return (_pad(t.inputs, length, converter.input_depth),
            _pad(t.outputs, length, converter.output_depth),
            _pad(t.controls, length, converter.control_depth),
            np.minimum(np.asarray(t.lengths, np.int32).reshape(-1), length))

  return converter, convert


_CHECKED = {}  # _file_key of files whose every record was read -> (records, bytes)


def _file_key(path):
  """(absolute path, size, mtime): a file changed since it was checked has a new key."""
  st = os.stat(path)
  return os.path.abspath(path), st.st_size, st.st_mtime_ns


def check_examples_path(path, config_name='CONFIG'):
  """Fails early, naming the file, if it is missing, not a NoteSequence TFRecord or
  damaged anywhere (every record is read and parsed, about a second a GB: a
  damaged record met by tf.data inside a distributed step would stop training
  with a DataLossError and leave its threads waiting)."""
  paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
  for p in paths:
    if not os.path.isfile(p):
      raise FileNotFoundError('%s: no such examples file (make one with `mvae prepare` or '
                              '`mvae corpus`)' % p)
    key = _file_key(p)
    if key in _CHECKED:
      continue
    records = size = 0
    try:
      for ns in tfrecord.read_note_sequences(p):  # checksums, and each parses
        records += 1
        size += ns.ByteSize()
    except tfrecord.CorruptRecordError as e:
      raise tfrecord.CorruptRecordError(
          '%s; `mvae inspect %s --config %s` checks it, `mvae prepare` rebuilds it'
          % (e, p, config_name)) from None
    _CHECKED[key] = (records, size)
  return paths


def sequence_shuffle_buffer(paths, shards=1, default=1024):
  """How many serialized sequences train mode's first shuffle holds: all of one
  input pipeline's share of `paths` (checked by check_examples_path) while they
  fit in SEQUENCE_SHUFFLE_BYTES, else as many as fit on average; `default` where a
  file's count is not known (its check was skipped, or it changed since).

  A whole-epoch shuffle matters because corpora are written in source order (the
  folk corpus: Essen's regional collections, then O'Neill's, then Ryan's): with a
  buffer of 1,024 of its 5,802 training tunes each batch came from one stretch of the file,
  and training accuracy rose and fell with each pass over it (BUILD_NOTES)."""
  records = size = 0
  for p in paths:
    counted = _CHECKED.get(_file_key(p))
    if counted is None:
      return default
    records, size = records + counted[0], size + counted[1]
  records, size = -(-records // shards), -(-size // shards)
  if size <= SEQUENCE_SHUFFLE_BYTES:
    return max(1, records)
  return max(1, records * SEQUENCE_SHUFFLE_BYTES // size)


def _require_a_window(paths, config):
  """A repeated data set with no window would wait forever: fail instead."""
  converter = config.make_converter('eval')
  for path in paths:
    for ns in tfrecord.read_note_sequences(path):
      if len(converter.to_tensors(ns)):
        return
  raise ValueError('%s: no sequence yields a %s window; run `mvae inspect %s --config %s` '
                   'to see why' % (', '.join(map(str, paths)), config.name, paths[0],
                                   config.name))


def get_dataset(config, examples_path, batch_size, mode='train', seed=None,
                shuffle_buffer=1024, drop_remainder=None, repeat=None,
                num_parallel_calls=None, shard=None):
  """The batched dataset of `config` windows from `examples_path` (one or more TFRecords).

  Train mode shuffles twice: the serialized sequences, all of them each epoch
  where they fit in SEQUENCE_SHUFFLE_BYTES (sequence_shuffle_buffer), then the
  windows, in a buffer of `shuffle_buffer` capped at WINDOW_SHUFFLE_BYTES (also the
  sequences' buffer where their count is not known). The
  first train batch waits for both buffers to fill: the sequences' is a read of
  the pipeline's share of the file (14 MB for the folk corpus); the windows' takes
  several passes over a tiny data set: keep it small there. The sequences' 256 MB
  counts serialized bytes only (tf.data adds some per string). `shard` (count, index) keeps every count-th
  sequence from the index-th (one input pipeline of several workers).
  """
  if isinstance(config, str):
    config = configs.get_config(config)
  if mode not in ('train', 'eval'):
    raise ValueError("mode must be 'train' or 'eval', got %r" % (mode,))
  training = mode == 'train'
  paths = check_examples_path(examples_path, config.name)
  converter, convert = convert_fn(config, mode, seed)
  if training:
    _require_a_window(paths, config)
  length = config.max_seq_len
  depths = (converter.input_depth, converter.output_depth, converter.control_depth)

  def to_windows(serialized):
    inputs, outputs, controls, lengths = tf.numpy_function(
        convert, [serialized], (tf.bool, tf.bool, tf.bool, tf.int32), stateful=training)
    inputs.set_shape([None, length, depths[0]])
    outputs.set_shape([None, length, depths[1]])
    controls.set_shape([None, length, depths[2]])
    lengths.set_shape([None])
    return tf.data.Dataset.from_tensor_slices((inputs, outputs, controls, lengths))

  ds = tf.data.TFRecordDataset(paths)
  if shard is not None and shard[0] > 1:
    ds = ds.shard(*shard)
  if training:
    shards = shard[0] if shard is not None and shard[0] > 1 else 1
    ds = ds.shuffle(sequence_shuffle_buffer(paths, shards, shuffle_buffer), seed=seed,
                    reshuffle_each_iteration=True)
    ds = ds.repeat() if repeat is None else ds.repeat(repeat)
  if num_parallel_calls:
    ds = ds.interleave(to_windows, cycle_length=num_parallel_calls,
                       num_parallel_calls=num_parallel_calls, deterministic=not training)
  else:
    ds = ds.flat_map(to_windows)
  if training:
    # Windows are big for 16-bar trio (177 kB each): cap the buffer's memory.
    window_bytes = length * sum(depths)
    window_buffer = max(1, min(shuffle_buffer, WINDOW_SHUFFLE_BYTES // window_bytes))
    ds = ds.shuffle(window_buffer, seed=seed, reshuffle_each_iteration=True)
  ds = ds.batch(batch_size, drop_remainder=training if drop_remainder is None
                else drop_remainder)
  return ds.prefetch(tf.data.AUTOTUNE)
