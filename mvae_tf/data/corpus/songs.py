"""The drums and trio corpora's sources: MMA grooves (rendered with `mma`) and the
MIDI songs of OpenMSX, Planet Blupi and Freedoom (Debian)."""

import concurrent.futures
import glob
import hashlib
import os
import re
import shutil
import subprocess

from mvae_tf import atomic
from mvae_tf.data import sources

from mvae_tf.data.corpus import common, debian
from mvae_tf.data.corpus import wad as wad_file
from mvae_tf.data.corpus.common import CorpusError, Source


MMA_LIB = '/usr/share/mma/lib'


MMA_INCLUDES = '/usr/share/mma/includes'


OPENMSX_DIR = '/usr/share/games/openttd/baseset/openmsx'


BLUPI_DIR = '/usr/share/planetblupi/music'


MMA_BARS = 32


# Eight-bar phrases (A A B A): one chord line per bar.
MMA_CHORDS = (['C', 'Am', 'Dm7', 'G7', 'C', 'C7', 'F', 'G7'] * 2 +
              ['Em', 'A7', 'Dm', 'G7', 'C', 'Am', 'D7', 'G7'] +
              ['C', 'Am', 'Dm7', 'G7', 'F', 'G7', 'C', 'C'])


MMA_TEMPLATE = """// made by mvae_tf.data.corpus
RndSeed 1
Tempo 120
Use {path}
Groove {groove}
{chords}
"""


MMA_TIMEOUT = 120


_DEFGROOVE = re.compile(r'^\s*defgroove\s+([^\s$]\S*)', re.IGNORECASE)


def mma_grooves(text):
  """Groove names defined in MMA source text, in order, without case repeats."""
  names, seen = [], set()
  for line in text.splitlines():
    m = _DEFGROOVE.match(line)
    if m and m.group(1).lower() not in seen:
      seen.add(m.group(1).lower())
      names.append(m.group(1))
  return names


def mma_source_text(path, groove, bars=MMA_BARS):
  chords = [MMA_CHORDS[i % len(MMA_CHORDS)] for i in range(bars)]
  return MMA_TEMPLATE.format(path=path, groove=groove, chords='\n'.join(chords))


def render_mma_groove(path, groove, output, workdir, bars=MMA_BARS):
  """Renders one groove of the MMA library file `path` to the MIDI file
  `output`; returns None or an error message."""
  safe = re.sub(r'[^A-Za-z0-9_.-]', '_', groove)
  src = os.path.join(workdir, '%s_%s.mma' % (
      hashlib.sha1(path.encode()).hexdigest()[:8], safe))
  with open(src, 'w', encoding='utf-8') as f:
    f.write(mma_source_text(path, groove, bars))
  class _Failed(Exception):
    pass
  try:
    with atomic.temporary(output) as tmp_out:
      os.remove(tmp_out)  # mma writes it
      try:
        out = subprocess.run(['mma', '-w', '-xNOCREDIT', src, '-f', tmp_out], cwd=workdir,
                             capture_output=True, text=True, timeout=MMA_TIMEOUT)
      except subprocess.TimeoutExpired:
        raise _Failed('mma took more than %d s' % MMA_TIMEOUT) from None
      if out.returncode != 0 or not os.path.isfile(tmp_out):
        lines = [l for l in (out.stdout + out.stderr).splitlines()
                 if l.strip() and 'PLUGIN' not in l]
        raise _Failed((lines[-1] if lines else 'mma failed (exit %d)' % out.returncode)[:300])
  except _Failed as e:
    return str(e)
  finally:
    os.remove(src)
  return None


def _mma_render(files, cache_dir, version):
  def render(workdir, workers, progress):
    key = hashlib.sha1(('%s|%s|%d|%s' % (version, MMA_TEMPLATE, MMA_BARS, MMA_CHORDS)).encode()
                       ).hexdigest()[:10]
    out_dir = os.path.join(cache_dir, 'mma-' + key)
    os.makedirs(out_dir, exist_ok=True)
    jobs = []
    for path in files:
      rel = os.path.relpath(path, MMA_LIB)
      with open(path, encoding='utf-8', errors='replace') as f:
        grooves = mma_grooves(f.read())
      st = os.stat(path)
      stamp = '%d-%d' % (st.st_size, st.st_mtime_ns)
      for groove in grooves:
        safe = re.sub(r'[^A-Za-z0-9_.-]', '_', groove)
        out = os.path.join(out_dir, rel[:-4], '%s.%s.mid' % (safe, stamp))
        jobs.append((path, groove, out, 'mma/%s:%s' % (rel, groove)))

    def run(job):
      path, groove, out, _ = job
      err_file = out + '.err'
      if os.path.isfile(out):
        return None
      if os.path.isfile(err_file):
        with open(err_file, encoding='utf-8') as f:
          return f.read()
      os.makedirs(os.path.dirname(out), exist_ok=True)
      error = render_mma_groove(path, groove, out, workdir)
      if error is not None:
        atomic.write_text(err_file, error)
      return error

    bar = common.progress_bar(progress, len(jobs), 'render mma', 'groove')
    items, failures = [], []
    with concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
      for job, error in zip(jobs, pool.map(run, jobs)):
        bar and bar.update(1)
        if error is None:
          items.append((job[2], job[3], job[1]))
        else:
          failures.append((job[3], 'mma error', error))
    bar and bar.close()
    return items, failures
  return render


def _freedoom_deb(cache_dir, install_missing):
  """The cached freedoom .deb, fetched with `apt-get download` if needed."""
  deb_dir = os.path.join(cache_dir, 'freedoom')
  debs = sorted(glob.glob(os.path.join(deb_dir, 'freedoom_*.deb')))
  if debs:
    return debs[-1]
  if install_missing is None:
    install_missing = debian.default_install_missing()
  command = 'cd %s && apt-get download freedoom' % deb_dir
  if not install_missing:
    raise CorpusError('the drums and trio corpora read the music of the Debian package '
                      'freedoom (not installed, only unpacked); fetch it with: mkdir -p %s && '
                      '%s (or pass install_missing=True or set MVAE_CORPUS_APT=1)'
                      % (deb_dir, command))
  os.makedirs(deb_dir, exist_ok=True)
  ok, log = debian.run_apt_with_update(['download', 'freedoom'], cwd=deb_dir)
  debs = sorted(glob.glob(os.path.join(deb_dir, 'freedoom_*.deb')))
  if not ok or not debs:
    raise CorpusError('could not fetch the Debian package freedoom with `%s`: %s'
                      % (command, log.strip()))
  return debs[-1]


def _freedoom_render(deb):
  def render(workdir, workers, progress):
    unpacked = os.path.join(workdir, 'deb')
    try:
      subprocess.run(['dpkg-deb', '-x', deb, unpacked], check=True, capture_output=True,
                     timeout=600)
    except (OSError, subprocess.SubprocessError) as e:
      raise CorpusError('cannot unpack %s with dpkg-deb -x (%s); delete it to fetch it '
                        'again' % (deb, e)) from None
    wads = sorted(glob.glob(os.path.join(unpacked, '**', '*.wad'), recursive=True))
    items, failures = [], []
    for wad in wads:
      name = os.path.basename(wad)
      try:
        written, skipped = wad_file.wad_music(wad, workdir)
      except ValueError as e:
        failures.append(('freedoom/%s' % name, 'corrupt WAD', str(e)))
        continue
      items.extend((p, 'freedoom/%s:%s' % (name, lump), lump) for p, lump in written)
      failures.extend(('freedoom/%s:%s' % (name, lump), reason, reason)
                      for lump, reason in skipped)
    if not wads:
      failures.append(('freedoom', 'no WAD', 'no .wad file in %s' % deb))
    return items, failures
  return render


def _debian_files(package, fallback_dir, extensions=sources.MIDI_EXTENSIONS):
  """The MIDI files a Debian package installed (dpkg -L), or those in
  `fallback_dir`, sorted."""
  files = []
  try:
    out = subprocess.run(['dpkg', '-L', package], capture_output=True, text=True, timeout=60)
    if out.returncode == 0:
      files = [l for l in out.stdout.splitlines()
               if l.lower().endswith(extensions) and os.path.isfile(l)]
  except (OSError, subprocess.SubprocessError):
    pass
  if not files and os.path.isdir(fallback_dir):
    files, _ = sources.find_files([fallback_dir], extensions)
  return sorted(files)


def song_sources(cache_dir, install_missing=None):
  """The Sources of the drums and trio corpora (installing or fetching the
  Debian packages if allowed)."""
  debian.ensure_debian_package('mma', lambda: bool(shutil.which('mma')) and os.path.isdir(MMA_LIB),
                        install_missing, 'the drums and trio corpora')
  debian.ensure_debian_package('openttd-openmsx', lambda: bool(_debian_files(
      'openttd-openmsx', OPENMSX_DIR)), install_missing, 'the drums and trio corpora')
  debian.ensure_debian_package('planetblupi-music-midi', lambda: bool(_debian_files(
      'planetblupi-music-midi', BLUPI_DIR)), install_missing, 'the drums and trio corpora')
  deb = _freedoom_deb(cache_dir, install_missing)

  mma_version = debian.debian_version('mma') or debian.tool_version(['mma', '-v'])
  mma_files = sorted(glob.glob(os.path.join(MMA_LIB, '**', '*.mma'), recursive=True))
  includes = sorted(glob.glob(os.path.join(MMA_INCLUDES, '*.mma')))
  openmsx = _debian_files('openttd-openmsx', OPENMSX_DIR)
  blupi = _debian_files('planetblupi-music-midi', BLUPI_DIR)
  deb_version = os.path.basename(deb).split('_')[1] if '_' in os.path.basename(deb) else ''
  return [
      Source(name='mma', package='mma (Debian)', version=mma_version, licence='GPL-2+',
             inputs=mma_files + includes, render=_mma_render(mma_files, cache_dir, mma_version),
             tool='mma %s %s' % (mma_version, hashlib.sha1(
                 mma_source_text('P', 'G').encode()).hexdigest()[:10]),
             notes=['each groove of %s rendered with `mma` over %d bars of chords (RndSeed 1, '
                    '120 qpm); the chord track stands in for the melody' % (MMA_LIB, MMA_BARS)]),
      Source(name='openmsx', package='openttd-openmsx (Debian)',
             version=debian.debian_version('openttd-openmsx') or '', licence='GPL-2',
             inputs=openmsx, root=os.path.dirname(os.path.commonpath(openmsx)) if openmsx
             else OPENMSX_DIR, notes=['OpenMSX music set for OpenTTD (jazz, blues, ragtime)']),
      Source(name='planetblupi', package='planetblupi-music-midi (Debian)',
             version=debian.debian_version('planetblupi-music-midi') or '', licence='GPL-3+',
             inputs=blupi, root=os.path.dirname(os.path.commonpath(blupi)) if blupi
             else BLUPI_DIR, notes=['Planet Blupi game music (10 long, repetitive songs)']),
      Source(name='freedoom', package='freedoom (Debian, unpacked, not installed)',
             version=deb_version, licence='BSD-3-Clause (freedoom-license)', inputs=[deb],
             root=os.path.dirname(deb),
             render=_freedoom_render(deb), tool='wad-midi-lumps',
             notes=['MIDI lumps of the Freedoom WADs from %s' % os.path.basename(deb)]),
  ]
