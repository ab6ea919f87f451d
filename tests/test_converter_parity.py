"""The converters against tensors recorded from the reference implementation.

tests/data/reference/converters holds MIDI files, the tensors that the
original MusicVAE converters produced from them (eval mode) and the
NoteSequences its from_tensors wrote back; ours must match element for element.
"""

import glob
import json
import os

import note_seq
import numpy as np
import pytest

from conftest import REFERENCE
from mvae_tf import configs

CONVERTERS = os.path.join(REFERENCE, 'converters')
CASES = {
    'melody': ['cat-mel_2bar_small', 'hierdec-mel_16bar'],
    'drums': ['cat-drums_2bar_small'],
    'trio': ['hierdec-trio_16bar'],
}


def _cases():
  for kind, config_names in CASES.items():
    for path in sorted(glob.glob(os.path.join(CONVERTERS, kind, 'midi', '*.mid'))):
      for name in config_names:
        yield pytest.param(kind, name, path, id='%s-%s' % (name, os.path.basename(path)[:-4]))


_vectors = {}


def _reference(kind):
  if kind not in _vectors:
    _vectors[kind] = (np.load(os.path.join(CONVERTERS, kind, 'vectors.npz')),
                      json.load(open(os.path.join(CONVERTERS, kind, 'roundtrip.json'))))
  return _vectors[kind]


def test_reference_cases_are_present():
  assert len(list(_cases())) == 11 * 2 + 10 + 10


@pytest.mark.parametrize('kind,config_name,path', list(_cases()))
def test_to_tensors_matches_reference(kind, config_name, path):
  vectors, _ = _reference(kind)
  key = '%s__%s' % (config_name, os.path.basename(path)[:-4])
  converter = configs.get_config(config_name).make_converter('eval')
  tensors = converter.to_tensors(note_seq.midi_file_to_note_sequence(path))
  expected_inputs = vectors[key + '__inputs']
  expected_outputs = vectors[key + '__outputs']
  expected_lengths = vectors[key + '__lengths']
  assert len(tensors) == len(expected_inputs)
  assert list(tensors.lengths) == expected_lengths.tolist()
  for got, want in zip(tensors.inputs, expected_inputs):
    assert got.shape == want.shape and got.dtype == bool
    np.testing.assert_array_equal(got, want)
  for got, want in zip(tensors.outputs, expected_outputs):
    np.testing.assert_array_equal(got, want)
  assert all(c.shape == (n, 0) for c, n in zip(tensors.controls, tensors.lengths))
  if not len(tensors):
    assert tensors.skipped, 'a sequence with no windows must say why'


@pytest.mark.parametrize('kind,config_name,path', list(_cases()))
def test_from_tensors_matches_reference(kind, config_name, path):
  vectors, roundtrip = _reference(kind)
  key = '%s__%s' % (config_name, os.path.basename(path)[:-4])
  converter = configs.get_config(config_name).make_converter('eval')
  sequences = converter.from_tensors(vectors[key + '__outputs'])
  expected = roundtrip.get(key, [])
  assert len(sequences) == len(expected)
  for ns, want in zip(sequences, expected):
    notes = [[n.pitch, n.velocity, n.start_time, n.end_time, n.program, n.instrument,
              n.is_drum] for n in ns.notes]
    assert notes == want['notes']
    assert ns.total_time == want['total_time']
    assert [t.qpm for t in ns.tempos] == want['tempos']
