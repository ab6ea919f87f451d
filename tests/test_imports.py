"""scripts/check_imports.py: import cycles among the project's modules, lazy ones included."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'scripts'))
import check_imports  # noqa: E402

# The cycles the package has today, each a strongly connected group of modules. Issue 14
# (the house) removes them; this list only shrinks: a new cycle fails the test.
KNOWN_CYCLES = [
    # cli imports each command's module; they import cli back (lazily) for UserError.
    ['mvae_tf.cli', 'mvae_tf.evaluate', 'mvae_tf.export.command', 'mvae_tf.generate',
     'mvae_tf.model.magenta_import', 'mvae_tf.train'],
    # TrainedModel resolves names through resolve, which loads runs, which builds models
    # (pretrained and weights are on the same loop).
    ['mvae_tf.model.trained_model', 'mvae_tf.pretrained', 'mvae_tf.resolve', 'mvae_tf.runs',
     'mvae_tf.weights'],
]


def _write(root, files):
  for name, text in files.items():
    path = os.path.join(root, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
      f.write(text)


def test_a_lazy_import_closing_a_cycle_is_found(tmp_path):
  _write(str(tmp_path), {
      'pkg/__init__.py': '',
      'pkg/a.py': 'from pkg import b\n',
      'pkg/b.py': 'def f():\n  from pkg.sub import c\n',
      'pkg/sub/__init__.py': '',
      'pkg/sub/c.py': 'from .. import a  # relative, two levels\n',
      'pkg/d.py': 'import pkg.a\n',  # imports into the cycle, not part of it
      'pkg/data/notes.py': 'import pkg.d\n',  # no __init__.py: a data folder, not read
  })
  edges = check_imports.graph(str(tmp_path), {'pkg': 'pkg'})
  assert 'pkg.data.notes' not in edges
  assert edges['pkg.b'] == {'pkg.sub.c': 2, 'pkg.sub': 2}
  assert check_imports.cycles(edges) == [['pkg.a', 'pkg.b', 'pkg.sub.c']]
  path = check_imports.path_around(['pkg.a', 'pkg.b', 'pkg.sub.c'], edges)
  assert [(a, b) for a, b, _ in path] == [('pkg.a', 'pkg.b'), ('pkg.b', 'pkg.sub.c'),
                                          ('pkg.sub.c', 'pkg.a')]


def test_no_cycle_means_none(tmp_path):
  _write(str(tmp_path), {'pkg/__init__.py': '', 'pkg/a.py': 'import os\nfrom pkg import b\n',
                         'pkg/b.py': 'import numpy\n'})
  assert check_imports.cycles(check_imports.graph(str(tmp_path), {'pkg': 'pkg'})) == []


def test_the_package_has_no_new_import_cycle():
  found = check_imports.cycles(check_imports.graph())
  new = [g for g in found if g not in KNOWN_CYCLES]
  assert not new, 'new import cycles: %s (run scripts/check_imports.py)' % new


@pytest.mark.parametrize('known', KNOWN_CYCLES)
def test_each_known_cycle_is_still_there_until_removed(known):
  """When issue 14 removes a cycle, this fails until it leaves KNOWN_CYCLES."""
  assert known in check_imports.cycles(check_imports.graph())


def test_the_script_exits_1_on_a_cycle_and_names_it():
  out = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'check_imports.py')],
                       capture_output=True, text=True, timeout=60)
  assert out.returncode == (1 if KNOWN_CYCLES else 0)
  assert '%d import cycle(s)' % len(KNOWN_CYCLES) in out.stdout
