"""The table of bad inputs in BUILD_NOTES.md: every case of tests/bad_inputs.py
run through `mvae` (in-process), with its exit code and the line it prints.

  .venv/bin/python benchmarks/bad_inputs_table.py > /tmp/table.md
"""

import contextlib
import io
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'tests'))

import bad_inputs  # noqa: E402
from mvae_tf.cli import main as cli  # noqa: E402


def main():
  with tempfile.TemporaryDirectory() as work:
    bad_inputs.make_inputs(work)
    print('| command | input | exit | what it says (first line) | left on disk |')
    print('|---|---|---|---|---|')
    for case in bad_inputs.CASES:
      before = bad_inputs.snapshot(case, work)
      out, err = io.StringIO(), io.StringIO()
      with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(bad_inputs.argv(case, work))
      text = err.getvalue() if code else out.getvalue()
      line = next((l for l in text.splitlines() if l.strip()), '')
      line = line.replace(work, 'W').replace(bad_inputs.REFERENCE_MODELS, 'R').replace('mvae %s: error: ' % case.command, '')
      if len(line) > 160:
        line = line[:157] + '...'
      problems = bad_inputs.check_left(case, work, before)
      left = '; '.join(problems) or ', '.join('%s %s' % kv for kv in case.left.items()) or '-'
      print('| %s | %s | %d | %s | %s |' % (case.command, case.name, code,
                                             line.replace('|', '\\|'), left))


if __name__ == '__main__':
  main()
