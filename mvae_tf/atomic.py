"""Every output of mvae_tf is written here: files and directories appear
whole under their final name or not at all.

A file is written to a temporary name beside its target (`.NAME.tmp-XXXX`,
same directory, so same file system), flushed and fsynced, given the mode a
plain `open(path, 'w')` would give it (0666 less the umask), renamed over the
target, and the directory is fsynced so that the rename survives a power cut.
A directory is filled under a temporary name and swapped with the target in
one atomic step (renameat2 RENAME_EXCHANGE) where the file system supports it,
else by two renames with the old copy put back if the second fails; an old
copy left by a killed process is put back on the next write.

A write that fails because of the machine (no space left, a read-only or
missing directory, permissions) removes its temporary file and raises
errors.WriteError, one line naming the path, the free space and the space
needed; any other failure keeps its traceback. Either way an earlier file of
the same name is unchanged.

`file_sha256` reads a file back: the digest that export metadata and
`mvae evaluate --per_window` record of the files they name.
"""

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import shutil
import tempfile

from mvae_tf.errors import WriteError

# Failures of the machine or of the user's choice of path, not of our code.
USER_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
               errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.ENOENT, errno.EFBIG}
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def file_sha256(path):
  """The hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()


def file_mode():
  """The mode of a file made by a plain open(): 0666 less the process umask."""
  umask = os.umask(0o022)
  os.umask(umask)
  return 0o666 & ~umask


def free_bytes(path):
  """Free bytes (for this user) on the file system of `path` or its nearest parent."""
  path = os.path.abspath(path)
  while path and not os.path.exists(path):
    path = os.path.dirname(path)
  try:
    st = os.statvfs(path or '/')
  except OSError:
    return None
  return st.f_bavail * st.f_frsize


def megabytes(n):
  return '%.1f MB' % (n / 1e6) if n >= 1e5 else '%d kB' % max(1, round(n / 1e3))


def is_disk_full(error):
  """True for an OSError (or TensorFlow's message of one) that means no space left."""
  if isinstance(error, OSError) and error.errno in _DISK_FULL:
    return True
  text = str(error)
  return 'No space left on device' in text or 'Disk quota exceeded' in text


def describe(path, error, needed=None):
  """One line for a failed write of `path`: what happened and what to do."""
  if is_disk_full(error):
    free = free_bytes(path)
    return ('%s: no space left on the device (%s free%s); free some space or choose another '
            'location, and run again' % (
                path, megabytes(free) if free is not None else 'unknown',
                ', about %s needed' % megabytes(needed) if needed else ''))
  reason = os.strerror(error.errno) if getattr(error, 'errno', None) else str(error)
  hint = {errno.EROFS: 'choose a writable location',
          errno.EACCES: 'choose a location you may write to',
          errno.EPERM: 'choose a location you may write to',
          errno.ENOTDIR: 'a part of the path is a file, not a directory: choose another path',
          errno.EISDIR: 'it is a directory: give a file name',
          errno.ENOENT: 'its directory does not exist and cannot be made: check the path',
          errno.ENAMETOOLONG: 'choose a shorter name'}.get(getattr(error, 'errno', None),
                                                           'check the path')
  return 'cannot write %s: %s; %s' % (path, reason, hint)


def _user_error(error, under=None):
  """An OSError of the machine or of the chosen path (not a bug): a full disk, or
  a USER_ERRNOS error about a path under `under` (any path when None)."""
  if not isinstance(error, OSError) or isinstance(error, WriteError):
    return False
  if is_disk_full(error):
    return True
  if error.errno not in USER_ERRNOS:
    return False
  name = error.filename
  return under is None or (isinstance(name, (str, bytes)) and
                           os.fsdecode(name).startswith(under))


def fsync_dir(directory):
  try:
    fd = os.open(directory, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:  # some file systems cannot fsync a directory
    pass
  finally:
    os.close(fd)


def make_dirs(directory, path=None):
  """os.makedirs(directory), or a WriteError naming `path` (default: directory)."""
  try:
    os.makedirs(directory, exist_ok=True)
  except FileExistsError:  # a file of that name
    raise WriteError(describe(path or directory, OSError(errno.ENOTDIR, 'Not a directory'))) \
        from None
  except OSError as e:
    if _user_error(e):
      raise WriteError(describe(path or directory, e)) from None
    raise


def check_writable(directory, what=None):
  """Raise WriteError now if files cannot be made in `directory` (which is not
  made): for commands that would otherwise find out after minutes of work.
  The nearest existing ancestor must be a directory this process may write to,
  on a file system that is not read-only; the writes themselves still check."""
  path = os.path.abspath(directory)
  while not os.path.exists(path):
    path = os.path.dirname(path)
  error = None
  if not os.path.isdir(path):
    error = OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
  elif not os.access(path, os.W_OK | os.X_OK):
    error = OSError(errno.EACCES, os.strerror(errno.EACCES))
  else:
    try:
      if os.statvfs(path).f_flag & os.ST_RDONLY:
        error = OSError(errno.EROFS, os.strerror(errno.EROFS))
    except OSError:
      pass
  if error is not None:
    raise WriteError(describe(what or directory, error))


def _remove(path):
  try:
    os.remove(path)
  except OSError:
    pass


@contextlib.contextmanager
def temporary(path, needed=None):
  """A temporary path beside `path`, renamed to `path` when the block ends cleanly.

  The block writes the file at the yielded name (by any means: a library's
  save(), a subprocess); it is fsynced, given a plain file's mode and renamed.
  On any error the temporary file is removed; an OSError of the machine
  (disk full, read-only, ...) becomes a one-line WriteError naming `path`.
  """
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  make_dirs(directory, path)
  name = os.path.basename(path)
  try:
    fd, tmp = tempfile.mkstemp(prefix='.%s.tmp-' % name[:64],
                               suffix=os.path.splitext(name)[1], dir=directory)
  except OSError as e:
    if _user_error(e):
      raise WriteError(describe(path, e, needed)) from None
    raise
  os.close(fd)
  try:
    yield tmp
    fd = os.open(tmp, os.O_RDONLY)
    try:
      os.fsync(fd)
    finally:
      os.close(fd)
    os.chmod(tmp, file_mode())
    os.replace(tmp, path)
  except BaseException as e:
    written = os.path.getsize(tmp) if os.path.exists(tmp) else 0
    _remove(tmp)
    if _user_error(e, under=tmp):
      raise WriteError(describe(path, e, needed or (written + 4096 if is_disk_full(e) else None))
                       ) from None
    raise
  fsync_dir(directory)


@contextlib.contextmanager
def open_file(path, mode='wb', needed=None, **kwargs):
  """An open file whose content appears under `path` only when the block ends cleanly."""
  with temporary(path, needed) as tmp:
    with open(tmp, mode, **kwargs) as f:
      yield f
      f.flush()


def write_file(path, write, needed=None):
  """write(tmp_path) (e.g. a library's save function), then in place as `path`."""
  with temporary(path, needed) as tmp:
    write(tmp)


def write_bytes(path, data):
  with open_file(path, 'wb', needed=len(data)) as f:
    f.write(data)


def write_text(path, text):
  with open_file(path, 'w', encoding='utf-8') as f:
    f.write(text)


def write_json(path, data, indent=1, sort_keys=True):
  write_text(path, json.dumps(data, indent=indent, sort_keys=sort_keys) + '\n')


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a, b):
  """Swap two paths atomically (Linux renameat2); False where not supported."""
  try:
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = libc.renameat2
  except (OSError, AttributeError):
    return False
  renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                        ctypes.c_uint]
  if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
    return True
  err = ctypes.get_errno()
  if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP if hasattr(errno, 'ENOTSUP') else -1):
    return False
  raise OSError(err, os.strerror(err), a)


def _old_copies(output_dir):
  parent, name = os.path.split(output_dir)
  prefix = '.%s.old-' % name
  try:
    return [os.path.join(parent, n) for n in os.listdir(parent) if n.startswith(prefix)]
  except OSError:
    return []


def recover_dir(output_dir):
  """Put back the old copy of `output_dir` that a killed write_dir left aside."""
  output_dir = os.path.abspath(output_dir)
  old = _old_copies(output_dir)
  if not old:
    return
  if not os.path.exists(output_dir):
    newest = max(old, key=os.path.getmtime)
    os.rename(newest, output_dir)
    old.remove(newest)
  for o in old:
    shutil.rmtree(o, ignore_errors=True)


def write_dir(output_dir, fill, mode=0o755):
  """fill(tmp_dir), then the directory takes the place of `output_dir` (replacing it).

  `output_dir` always names either the old directory or the new one, never
  nothing (where renameat2 is missing, a crash between the two renames leaves
  the old copy as `.NAME.old-PID`, which the next write_dir puts back first).
  """
  output_dir = os.path.abspath(output_dir)
  parent = os.path.dirname(output_dir)
  make_dirs(parent, output_dir)
  recover_dir(output_dir)
  try:
    tmp = tempfile.mkdtemp(prefix='.%s.tmp-' % os.path.basename(output_dir)[:64], dir=parent)
  except OSError as e:
    if _user_error(e):
      raise WriteError(describe(output_dir, e)) from None
    raise
  try:
    fill(tmp)
    for root, _, files in os.walk(tmp):
      for name in files:
        fd = os.open(os.path.join(root, name), os.O_RDONLY)
        try:
          os.fsync(fd)
        finally:
          os.close(fd)
      fsync_dir(root)
    os.chmod(tmp, mode)
    if not os.path.isdir(output_dir):
      os.rename(tmp, output_dir)
    elif _exchange(tmp, output_dir):
      shutil.rmtree(tmp, ignore_errors=True)  # now the old content
    else:
      old = os.path.join(parent, '.%s.old-%d' % (os.path.basename(output_dir), os.getpid()))
      os.rename(output_dir, old)
      try:
        os.rename(tmp, output_dir)
      except BaseException:
        os.rename(old, output_dir)
        raise
      shutil.rmtree(old, ignore_errors=True)
  except BaseException as e:
    shutil.rmtree(tmp, ignore_errors=True)
    if _user_error(e, under=tmp):
      raise WriteError(describe(output_dir, e)) from None
    raise
  fsync_dir(parent)
