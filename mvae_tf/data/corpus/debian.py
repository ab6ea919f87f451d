"""Debian and PyPI packages a corpus needs: their versions, and installing them (apt)."""

import importlib.metadata
import importlib.util
import os
import subprocess


from mvae_tf.data.corpus.common import CorpusError


def default_install_missing():
  env = os.environ.get('MVAE_CORPUS_APT', '').strip().lower()
  if env in ('0', 'false', 'no', 'off'):
    return False
  if env in ('1', 'true', 'yes', 'on'):
    return True
  return hasattr(os, 'geteuid') and os.geteuid() == 0


def debian_version(package):
  """The installed version of a Debian package, or None."""
  try:
    out = subprocess.run(['dpkg-query', '-W', '-f=${Status}\t${Version}', package],
                         capture_output=True, text=True, timeout=60)
  except (OSError, subprocess.SubprocessError):
    return None
  if out.returncode != 0 or '\t' not in out.stdout:
    return None
  status, version = out.stdout.split('\t', 1)
  return version.strip() if status.split()[-1:] == ['installed'] else None


def _apt(args, cwd=None):
  env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
  return subprocess.run(['apt-get'] + list(args), cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=1800)


def run_apt_with_update(args, cwd=None):
  """apt-get ARGS; on failure, apt-get update and once more."""
  try:
    out = _apt(args, cwd)
    if out.returncode != 0:
      _apt(['update'])
      out = _apt(args, cwd)
  except (OSError, subprocess.SubprocessError) as e:
    return False, str(e)
  return out.returncode == 0, (out.stderr or out.stdout)[-500:]


def ensure_debian_package(package, present, install_missing=None, needed_for=''):
  """Makes sure `present()` holds, installing Debian `package` with apt-get if
  allowed (as root; `install_missing` defaults to being root, or the
  MVAE_CORPUS_APT environment variable); otherwise raises CorpusError naming
  the command."""
  if present():
    return
  if install_missing is None:
    install_missing = default_install_missing()
  command = 'apt-get install -y %s' % package
  what = ' (needed for %s)' % needed_for if needed_for else ''
  if not install_missing:
    raise CorpusError('the Debian package %s is not installed%s; install it with: sudo %s '
                      '(or, as root, pass install_missing=True or set MVAE_CORPUS_APT=1)'
                      % (package, what, command))
  if not hasattr(os, 'geteuid') or os.geteuid() != 0:
    raise CorpusError('the Debian package %s is not installed%s and installing it needs root; '
                      'run: sudo %s' % (package, what, command))
  ok, log = run_apt_with_update(['install', '-y', package])
  if not ok or not present():
    raise CorpusError('could not install the Debian package %s%s with `%s`: %s'
                      % (package, what, command, log.strip()))


def tool_version(argv):
  try:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
  except (OSError, subprocess.SubprocessError):
    return ''
  text = (out.stdout + out.stderr).strip().splitlines()
  return text[-1].strip() if text else ''


def package_version(dist):
  try:
    return importlib.metadata.version(dist)
  except importlib.metadata.PackageNotFoundError:
    return ''
