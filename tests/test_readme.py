"""The README's ```python blocks run as written (issue 11).

Each block is read from README.md (not copied here) and run in a fresh
namespace with an empty temporary directory as the working directory, as a
reader would paste it. A block preceded by `<!-- not-tested: REASON -->` is
only compiled, and skipped with that reason. Blocks with known content get
checks of what they leave behind (CHECKS), so a block that runs but does
nothing useful still fails.
"""

import os
import re

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, 'README.md')

NOT_TESTED = re.compile(r'^<!--\s*not-tested:\s*(.*?)\s*-->$')
# A file name in quotes: what a block writes or reads in its working directory.
FILE_NAME = re.compile(r"""['"]([\w.-]+\.(?:mid|npz|tfrecord|json|wav|png))['"]""")


def python_blocks(path=README):
  """[(line of the code's first line, code, not-tested reason or None)] in order."""
  with open(path, encoding='utf-8') as f:
    lines = f.read().splitlines()
  blocks, i = [], 0
  while i < len(lines):
    if lines[i].strip() == '```python':
      previous = next((l.strip() for l in reversed(lines[:i]) if l.strip()), '')
      match = NOT_TESTED.match(previous)
      start = i + 1
      end = start
      while end < len(lines) and lines[end].strip() != '```':
        end += 1
      if end == len(lines):
        raise AssertionError('README.md:%d: ```python block is never closed' % (start))
      blocks.append((start + 1, '\n'.join(lines[start:end]) + '\n',
                     match.group(1) if match else None))
      i = end
    i += 1
  return blocks


BLOCKS = python_blocks()


def _compile(line, code):
  # Padded so that a traceback names the README's own line numbers.
  return compile('\n' * (line - 1) + code, README, 'exec')


def run_block(line, code, cwd, monkeypatch):
  monkeypatch.chdir(cwd)
  namespace = {'__name__': '__readme__'}
  exec(_compile(line, code), namespace)  # noqa: S102 (the README's own code)
  return namespace


# --- Checks of what a block leaves behind, by a marker in its code. ---

def _names(ns, *names):
  missing = [n for n in names if n not in ns]
  assert not missing, 'the README block no longer defines %s' % ', '.join(missing)
  return [ns[n] for n in names]


def check_trained_model(ns, cwd):
  import note_seq
  from mvae_tf import TrainedModel
  from mvae_tf.generation import attributes
  model, melodies, a, b, c, d = _names(ns, 'model', 'melodies', 'a', 'b', 'c', 'd')
  assert isinstance(model, TrainedModel) and model.name == 'folk-mel_2bar'
  assert model.backend == 'litert'  # the shipped model: no TensorFlow needed
  assert len(melodies) == 4
  for x in (a, b, c, d, *melodies):
    assert isinstance(x, note_seq.NoteSequence) and len(x.notes) > 0
  # `a` was read back from the MIDI file the block wrote: the first sample's notes.
  assert (cwd / 'melody.mid').is_file(), 'the README block no longer writes melody.mid'
  assert [n.pitch for n in a.notes] == [n.pitch for n in melodies[0].notes]
  z, mu, sigma, decoded, path, variations, grid, scores, denser = _names(
      ns, 'z', 'mu', 'sigma', 'decoded', 'path', 'variations', 'grid', 'scores', 'denser')
  for t in (z, mu, sigma):
    assert t.shape == (2, model.z_size) and np.isfinite(t).all()
  assert (sigma > 0).all()
  assert len(decoded) == 2 and len(path) == 8 and len(variations) == 4 and len(denser) == 1
  assert len(grid) == 4 and all(len(row) == 4 for row in grid)
  for x in (*decoded, *path, *variations, *denser, *[s for row in grid for s in row]):
    assert isinstance(x, note_seq.NoteSequence)
  # Greedy interpolation: its ends are the decodes of a's and b's mu.
  assert path[0] == decoded[0] and path[-1] == decoded[1]
  assert scores.shape == (4,) and np.isfinite(scores).all() and (scores <= 0).all()
  vectors, meta = _names(ns, 'vectors', 'meta')
  assert set(vectors) == set(attributes.available(model.kind))
  assert all(v.shape == (model.z_size,) and np.isfinite(v).all() for v in vectors.values())
  assert (cwd / 'vectors.npz').is_file(), 'the README block no longer writes vectors.npz'
  saved, saved_meta = attributes.load_attribute_vectors(str(cwd / 'vectors.npz'))
  assert set(saved) == set(vectors) and saved_meta['windows'] == meta['windows'] >= 4
  for k in vectors:
    np.testing.assert_array_equal(saved[k], vectors[k])


def check_converter(ns, cwd):
  import note_seq
  tensors, sequences = _names(ns, 'tensors', 'sequences')
  for name in ('song.mid', 'songs.tfrecord'):
    assert (cwd / name).is_file(), 'the README block no longer writes %s' % name
  assert len(tensors.inputs) >= 1 and not tensors.skipped
  assert list(tensors.lengths) == [32] * len(tensors.inputs)
  assert len(sequences) == len(tensors.outputs)
  assert all(isinstance(s, note_seq.NoteSequence) and len(s.notes) for s in sequences)
  inputs, outputs, lengths = _names(ns, 'inputs', 'outputs', 'lengths')
  # The dataset's batch holds the same windows as the converter (eval mode).
  assert inputs.shape[0] == len(tensors.inputs) and inputs.shape[1] == 32
  np.testing.assert_array_equal(np.asarray(outputs), np.stack(tensors.outputs))
  np.testing.assert_array_equal(np.asarray(lengths), tensors.lengths)


CHECKS = [('TrainedModel.load(', check_trained_model),
          ('make_converter(', check_converter)]


# --- Tests. ---

def test_readme_has_python_blocks():
  assert BLOCKS, 'README.md has no ```python block: the Python examples are gone'
  tested = [code for _, code, reason in BLOCKS if reason is None]
  assert tested, 'every ```python block in README.md is marked not-tested'
  for marker, check in CHECKS:
    assert any(marker in code for code in tested), (
        'no tested ```python block in README.md contains %r (checked by %s)' % (
            marker, check.__name__))


def test_not_tested_blocks_say_why():
  for line, code, reason in BLOCKS:
    if reason is not None:
      assert reason, 'README.md:%d: a not-tested block needs a reason' % line


@pytest.mark.parametrize('line,code,reason', BLOCKS,
                         ids=['README.md:%d' % b[0] for b in BLOCKS])
def test_readme_python_block_runs(line, code, reason, tmp_path, monkeypatch):
  _compile(line, code)  # every block, tested or not, is valid Python
  if reason is not None:
    pytest.skip('README.md:%d not tested: %s' % (line, reason))
  ns = run_block(line, code, tmp_path, monkeypatch)
  # Files it names exist after it ran (it starts in an empty directory).
  for name in FILE_NAME.findall(code):
    assert (tmp_path / name).is_file(), 'README.md:%d: %s was not written' % (line, name)
  for marker, check in CHECKS:
    if marker in code:
      check(ns, tmp_path)
