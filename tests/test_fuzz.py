"""Mutated MIDI bytes never crash `prepare` or the converters: every outcome is
either sequences or a reported skip."""

import glob
import os

from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import REFERENCE
from mvae_tf import configs
from mvae_tf.data import prepare, sources

SEEDS = [open(p, 'rb').read() for p in sorted(glob.glob(
    os.path.join(REFERENCE, 'converters', '*', 'midi', '*.mid')))]
CONVERTERS = [configs.get_config(name).make_converter(mode) for name, mode in (
    ('cat-mel_2bar_small', 'eval'), ('hierdec-mel_16bar', 'train'),
    ('cat-drums_2bar_small', 'eval'), ('hierdec-trio_16bar', 'eval'))]


@st.composite
def mutated_midi(draw):
  data = bytearray(draw(st.sampled_from(SEEDS)))
  for _ in range(draw(st.integers(1, 8))):
    op = draw(st.sampled_from(['flip', 'set', 'cut', 'insert', 'duplicate']))
    pos = draw(st.integers(0, max(0, len(data) - 1)))
    if op == 'flip' and data:
      data[pos] ^= 1 << draw(st.integers(0, 7))
    elif op == 'set' and data:
      data[pos] = draw(st.integers(0, 255))
    elif op == 'cut':
      del data[pos:pos + draw(st.integers(1, 64))]
    elif op == 'insert':
      data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    else:
      data[pos:pos] = data[pos:pos + draw(st.integers(1, 64))]
  return bytes(data)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=mutated_midi())
def test_mutated_midi_is_read_or_skipped_and_converts_without_crashing(tmp_path, data):
  path = tmp_path / 'fuzz.mid'
  path.write_bytes(data)
  _, records, skip = prepare._read_one((str(path), {}))
  assert (records is None) != (skip is None)
  if skip is not None:
    reason, detail = skip
    assert reason != 'parser error', detail  # every failure has a known reason
    return
  for ns in sources.read_file(str(path)):
    for converter in CONVERTERS:
      tensors = converter.to_tensors(ns)
      assert len(tensors.inputs) == len(tensors.outputs) == len(tensors.lengths)
      assert len(tensors) or tensors.skipped
