"""Every case of tests/bad_inputs.py: its exit code, one line on stderr naming
the problem (no traceback), and nothing lost or half-written on disk."""

import pytest

import bad_inputs
from mvae_tf.cli import main as cli


@pytest.fixture(scope='module')
def work(tmp_path_factory):
  work = str(tmp_path_factory.mktemp('bad_inputs'))
  bad_inputs.make_inputs(work)
  return work


@pytest.mark.parametrize('case', bad_inputs.CASES,
                         ids=['%s: %s' % (c.command, c.name) for c in bad_inputs.CASES])
def test_bad_input(case, work, capsys):
  before = bad_inputs.snapshot(case, work)
  code = cli.main(bad_inputs.argv(case, work))
  out, err = capsys.readouterr()
  assert code == case.code, (out, err)
  lines = [l for l in err.splitlines() if l.strip()]
  assert 'Traceback' not in err
  if case.code == 2:
    assert len(lines) == 1, err
    assert lines[0].startswith('mvae %s: error: ' % case.command), lines[0]
    assert case.expect in lines[0], lines[0]
  assert bad_inputs.check_left(case, work, before) == []
