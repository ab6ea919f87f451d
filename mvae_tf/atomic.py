"""Writing files and directories atomically: a temporary name beside the target,
then a rename, so that a killed process leaves the old content (or nothing),
never a half-written file under the final name."""

import os
import shutil
import tempfile


def write_file(path, write, mode=0o644):
  """write(tmp_path) then rename to `path`; nothing is left under `path` on failure."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '-',
                             suffix=os.path.splitext(path)[1], dir=directory)
  os.close(fd)
  try:
    write(tmp)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_dir(output_dir, fill, mode=0o755):
  """fill(tmp_dir) then put the directory in place of `output_dir` (replacing it)."""
  output_dir = os.path.abspath(output_dir)
  parent = os.path.dirname(output_dir)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix='.tmp-', dir=parent)
  try:
    fill(tmp)
    os.chmod(tmp, mode)
    if os.path.isdir(output_dir):
      old = output_dir + '.old-%d' % os.getpid()
      os.rename(output_dir, old)
      os.rename(tmp, output_dir)
      shutil.rmtree(old)
    else:
      os.rename(tmp, output_dir)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
