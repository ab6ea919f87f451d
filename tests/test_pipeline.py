"""The tf.data pipeline: shapes and dtypes per config family, modes, errors."""

import numpy as np
import pytest

from conftest import make_sequence, rock_beat, scale_melody, varied_melody
from mvae_tf.data import tfrecord


def _trio(bars=16):
  melody = varied_melody(bars=bars)
  notes = [(n.pitch + 12, n.start_time, n.end_time, 0) for n in melody.notes]
  notes += [(36 + i % 5, i * 2.0, i * 2.0 + 1.5, 33, False, 1) for i in range(bars)]
  notes += [(n.pitch, n.start_time, n.end_time, 0, True, 9) for n in rock_beat(bars=bars).notes]
  return make_sequence(notes)


@pytest.fixture(scope='module')
def examples(tmp_path_factory):
  path = tmp_path_factory.mktemp('pipeline') / 'examples.tfrecord'
  with tfrecord.AtomicTFRecordWriter(str(path)) as writer:
    for ns in (varied_melody(bars=18), scale_melody(bars=4), rock_beat(bars=4), _trio()):
      writer.write(ns.SerializeToString())
  return str(path)


@pytest.mark.parametrize('config_name,depths,length', [
    ('cat-mel_2bar_small', (90, 90, 0), 32),
    ('cat-mel_2bar_med_chords', (90, 90, 49), 32),
    ('cat-drums_2bar_small', (10, 512, 0), 32),
    ('hierdec-mel_16bar', (90, 90, 0), 256),
    ('hierdec-drums_16bar', (10, 512, 0), 256),
    ('hierdec-trio_16bar', (692, 692, 0), 256),
])
@pytest.mark.parametrize('mode', ['train', 'eval'])
def test_batches_have_the_config_shapes_and_dtypes(examples, config_name, depths, length, mode):
  import tensorflow as tf
  from mvae_tf.data import pipeline
  ds = pipeline.get_dataset(config_name, examples, batch_size=2, mode=mode, seed=3,
                            shuffle_buffer=4)
  inputs, outputs, controls, lengths = next(iter(ds))
  batch = inputs.shape[0]
  assert (batch == 2) if mode == 'train' else (1 <= batch <= 2)
  assert inputs.shape == (batch, length, depths[0]) and inputs.dtype == tf.bool
  assert outputs.shape == (batch, length, depths[1]) and outputs.dtype == tf.bool
  assert controls.shape == (batch, length, depths[2]) and controls.dtype == tf.bool
  assert lengths.dtype == tf.int32 and lengths.numpy().tolist() == [length] * batch
  # One class per step in the one-hot outputs.
  assert (outputs.numpy().sum(axis=-1) == (3 if 'trio' in config_name else 1)).all()


def test_eval_mode_yields_every_window_in_a_fixed_order(examples):
  from mvae_tf import configs
  from mvae_tf.data import pipeline
  converter = configs.get_config('cat-mel_2bar_small').make_converter('eval')
  expected = [w for ns in tfrecord.read_note_sequences(examples)
              for w in converter.to_tensors(ns).outputs]
  runs = []
  for _ in range(2):
    ds = pipeline.get_dataset('cat-mel_2bar_small', examples, batch_size=3, mode='eval')
    runs.append(np.concatenate([b[1].numpy() for b in ds]))
  np.testing.assert_array_equal(runs[0], runs[1])
  np.testing.assert_array_equal(runs[0], np.stack(expected))


def test_train_mode_transposes(examples):
  from mvae_tf.data import pipeline
  ds = pipeline.get_dataset('cat-mel_2bar_small', examples, batch_size=8, mode='train', seed=5,
                            shuffle_buffer=16)
  lowest = set()
  for batch in ds.take(12):
    labels = np.argmax(batch[1].numpy(), axis=-1)
    lowest.update(int(row[row >= 2].min()) for row in labels if (row >= 2).any())
  assert len(lowest) > 3  # windows arrive at several transpositions


def test_training_on_data_without_windows_fails_with_inspect_hint(tmp_path):
  from mvae_tf.data import pipeline
  path = tmp_path / 'drums_only.tfrecord'
  with tfrecord.AtomicTFRecordWriter(str(path)) as writer:
    writer.write(rock_beat(bars=4).SerializeToString())
  with pytest.raises(ValueError, match='mvae inspect .* --config cat-mel_2bar_small'):
    pipeline.get_dataset('cat-mel_2bar_small', str(path), batch_size=2, mode='train')


def test_missing_examples_file_is_named(tmp_path):
  from mvae_tf.data import pipeline
  with pytest.raises(FileNotFoundError, match='nothing.tfrecord: no such examples file'):
    pipeline.get_dataset('cat-mel_2bar_small', str(tmp_path / 'nothing.tfrecord'), 2)


def test_train_mode_shuffles_the_whole_file_of_sequences(tmp_path):
  # Corpora are written in source order. 200 sequences, the first half low (pitches
  # 48-52), the second high (84-88): transposed by at most 5, the halves stay apart.
  # With a sequence buffer smaller than the file (16, as the window buffer), the first
  # windows of an epoch would all come from its first stretch (the low half).
  from mvae_tf.data import pipeline
  path = tmp_path / 'ordered.tfrecord'
  with tfrecord.AtomicTFRecordWriter(str(path)) as writer:
    for i in range(200):
      base = 48 if i < 100 else 84
      notes = [(base + (i + k) % 5, k * 0.5, k * 0.5 + 0.5) for k in range(16)]
      writer.write(make_sequence(notes).SerializeToString())
  assert pipeline.sequence_shuffle_buffer([str(path)], default=7) == 7  # not checked yet
  pipeline.check_examples_path(str(path))
  assert pipeline.sequence_shuffle_buffer([str(path)]) == 200
  assert pipeline.sequence_shuffle_buffer([str(path)], shards=3) == 67
  size = path.stat().st_size  # a larger data set: as many sequences as fit, on average
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(pipeline, 'SEQUENCE_SHUFFLE_BYTES', size // 4)
    assert 40 <= pipeline.sequence_shuffle_buffer([str(path)]) <= 55
  ds = pipeline.get_dataset('cat-mel_2bar_small', str(path), batch_size=8, mode='train',
                            seed=2, shuffle_buffer=16)
  high = []
  for batch in ds.take(16):  # 128 windows, about half from each half (60-76 in six
    labels = np.argmax(batch[1].numpy(), axis=-1)  # seeds; 0 with a buffer of 16)
    high += [bool((row[row >= 2] + 19 >= 75).any()) for row in labels]
  assert 32 <= sum(high) <= 96, sum(high)
