"""scripts/check_imports.py: import cycles among the project's modules, lazy ones included."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'scripts'))
import check_imports  # noqa: E402

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


def test_the_package_has_no_import_cycle():
  """Issue 14 removed the two there were (cli <-> the commands through UserError, now in
  mvae_tf.errors; trained_model -> resolve -> runs -> trained_model, now resolve alone
  loads saved models and mvae_tf.model.weights names weights)."""
  found = check_imports.cycles(check_imports.graph())
  assert found == [], 'import cycles: %s (run scripts/check_imports.py)' % found


def _script(*args):
  return subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'check_imports.py')]
                        + list(args), capture_output=True, text=True, timeout=60)


def test_the_script_exits_0_on_the_package_and_1_on_a_cycle_naming_it(tmp_path):
  out = _script()
  assert (out.returncode, out.stdout.splitlines()[-1].split(', ')[1:]) == (
      0, ['0 import cycle(s)', '0 import(s) against the stage order'])
  _write(str(tmp_path), {'pkg/__init__.py': '', 'pkg/a.py': 'from pkg import b\n',
                         'pkg/b.py': 'def f():\n  import pkg.a\n'})
  out = _script('--root', str(tmp_path), '--package', 'pkg=pkg')
  assert out.returncode == 1
  assert out.stdout.splitlines() == [
      'cycle: pkg.a (line 1) -> pkg.b (line 2) -> pkg.a',
      '3 module(s), 1 import cycle(s), 0 import(s) against the stage order']


def test_the_library_never_imports_the_command_line():
  """cli/ parses flags and prints one-line errors; nothing below it may need it (only
  `python -m mvae_tf`, mvae_tf/__main__.py, starts it)."""
  edges = check_imports.graph()
  importers = sorted(m for m, targets in edges.items()
                     if not m.startswith('mvae_tf.cli') and m != 'mvae_tf.__main__'
                     and any(t == 'mvae_tf.cli' or t.startswith('mvae_tf.cli.') for t in targets))
  assert 'mvae_tf.cli.main' in edges['mvae_tf.__main__']  # the check sees the one that may
  assert importers == []


def test_a_stage_importing_a_later_stage_is_found(tmp_path):
  _write(str(tmp_path), {
      'pkg/__init__.py': 'def f():\n  from pkg.late import b\n',  # the root: exempt
      'pkg/early/__init__.py': '', 'pkg/early/a.py': 'def f():\n  from pkg.late import b\n',
      'pkg/late/__init__.py': '', 'pkg/late/b.py': 'from pkg.early import a\nimport side\n',
      'pkg/loose.py': '',
      'side/__init__.py': '', 'side/s.py': 'import pkg.early.a\n',
  })
  edges = check_imports.graph(str(tmp_path), {'pkg': 'pkg', 'side': 'side'})
  stages = (('early', ('pkg.early',)), ('late', ('pkg.late',)))
  found = check_imports.stage_violations(edges, stages, standalone=('side',), root='pkg')
  assert found == [
      ('pkg.early.a', 'early', 'pkg.late', 'late', 2),
      ('pkg.early.a', 'early', 'pkg.late.b', 'late', 2),
      ('side.s', 'standalone', 'pkg', 'project', 1),
      ('side.s', 'standalone', 'pkg.early', 'project', 1),
      ('side.s', 'standalone', 'pkg.early.a', 'project', 1)]
  # pkg.loose is in no stage: it may be imported by none and import nothing of the project.
  edges['pkg.loose'] = {'pkg.early.a': 1}
  assert ('pkg.loose', 'no stage', 'pkg.early.a', 'early', 1) in \
      check_imports.stage_violations(edges, stages, standalone=('side',), root='pkg')


def test_the_folders_are_the_data_path():
  """Every module imports only from its own stage and the ones before it (data -> model
  -> training -> store -> evaluation -> generation -> export -> cli), and each module
  of the package is in a stage."""
  edges = check_imports.graph()
  assert check_imports.stage_violations(edges) == []
  unplaced = [m for m in edges if m.startswith('mvae_tf.') and
              check_imports._stage(m, check_imports.STAGES) is None]
  assert unplaced == []
