"""Outputs appear whole or not at all: one writer (mvae_tf.atomic) for every
output; a full disk (a real small tmpfs where user namespaces allow mounting
one, else an injected ENOSPC) is one line naming the path, with the temporary
file removed and earlier outputs intact."""

import errno
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import textwrap

import pytest

from mvae_tf import atomic
from mvae_tf.data import tfrecord
from mvae_tf.errors import UserError, WriteError

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _plain_mode(tmp_path):
  plain = tmp_path / 'plain'
  plain.write_text('x')
  return stat.S_IMODE(os.stat(plain).st_mode)


def _leftovers(directory):
  return [n for n in os.listdir(directory) if '.tmp-' in n or '.old-' in n]


def test_every_writer_gives_the_mode_of_a_plain_write(tmp_path):
  expected = _plain_mode(tmp_path)
  atomic.write_json(str(tmp_path / 'a.json'), {'a': 1})
  atomic.write_bytes(str(tmp_path / 'b.bin'), b'123')
  with tfrecord.AtomicTFRecordWriter(str(tmp_path / 'c.tfrecord')) as w:
    w.write(b'record')
  for name in ('a.json', 'b.bin', 'c.tfrecord'):
    assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == expected, name
  assert list(tfrecord.read_records(str(tmp_path / 'c.tfrecord'))) == [b'record']


def _injected_enospc(monkeypatch):
  def fsync(fd):
    raise OSError(errno.ENOSPC, 'No space left on device')
  monkeypatch.setattr(atomic.os, 'fsync', fsync)


def test_a_full_disk_leaves_the_earlier_file_and_no_temporary(tmp_path, monkeypatch):
  path = tmp_path / 'out.json'
  atomic.write_json(str(path), {'old': True})
  _injected_enospc(monkeypatch)
  with pytest.raises(WriteError) as e:
    atomic.write_json(str(path), {'new': True})
  message = str(e.value)
  assert str(path) in message and 'no space left' in message and 'free' in message
  assert '\n' not in message
  assert isinstance(e.value, UserError)
  assert path.read_text() == atomic.json.dumps({'old': True}, indent=1) + '\n'
  assert _leftovers(tmp_path) == []


def test_a_full_disk_during_a_tfrecord_removes_its_temporary(tmp_path, monkeypatch):
  path = tmp_path / 'data.tfrecord'
  with tfrecord.AtomicTFRecordWriter(str(path)) as w:
    w.write(b'good')
  _injected_enospc(monkeypatch)
  with pytest.raises(WriteError, match='no space left'):
    with tfrecord.AtomicTFRecordWriter(str(path)) as w:
      w.write(b'new')
  assert list(tfrecord.read_records(str(path))) == [b'good']
  assert _leftovers(tmp_path) == []


def test_an_internal_error_keeps_its_traceback_and_the_old_file(tmp_path):
  path = tmp_path / 'x.txt'
  atomic.write_text(str(path), 'old')

  def broken(tmp):
    with open(tmp, 'w') as f:
      f.write('half')
    raise KeyError('a bug')
  with pytest.raises(KeyError):
    atomic.write_file(str(path), broken)
  assert path.read_text() == 'old' and _leftovers(tmp_path) == []


@pytest.mark.parametrize('where', ['under_a_file', 'read_only', 'proc'])
def test_an_unwritable_place_is_one_line_naming_it(tmp_path, where):
  if where == 'under_a_file':
    (tmp_path / 'f').write_text('x')
    target = str(tmp_path / 'f' / 'out.mid')
  elif where == 'read_only':
    if os.geteuid() == 0:
      pytest.skip('root may write to a read-only directory')
    ro = tmp_path / 'ro'
    ro.mkdir()
    ro.chmod(0o555)
    target = str(ro / 'out.mid')
  else:
    target = '/proc/mvae-test/out.mid'
  with pytest.raises(WriteError) as e:
    atomic.write_bytes(target, b'x')
  assert target in str(e.value) and '\n' not in str(e.value)


def test_write_dir_replaces_whole_and_restores_an_old_copy(tmp_path):
  target = tmp_path / 'model'

  def fill(text):
    def f(d):
      with open(os.path.join(d, 'a.txt'), 'w') as fh:
        fh.write(text)
    return f
  atomic.write_dir(str(target), fill('one'))
  atomic.write_dir(str(target), fill('two'))
  assert (target / 'a.txt').read_text() == 'two'

  def broken(d):
    fill('half')(d)
    raise RuntimeError('killed while filling')
  with pytest.raises(RuntimeError):
    atomic.write_dir(str(target), broken)
  assert (target / 'a.txt').read_text() == 'two'
  assert _leftovers(tmp_path) == []
  # A process killed between the two renames of the fallback leaves only the old copy.
  os.rename(target, tmp_path / '.model.old-12345')
  atomic.write_dir(str(target), fill('three'))
  assert (target / 'a.txt').read_text() == 'three' and _leftovers(tmp_path) == []
  os.rename(target, tmp_path / '.model.old-12345')
  atomic.recover_dir(str(target))
  assert (target / 'a.txt').read_text() == 'three'


def test_write_dir_without_renameat2_falls_back_and_puts_the_old_copy_back(
    tmp_path, monkeypatch):
  target = tmp_path / 'model'
  target.mkdir()
  (target / 'a.txt').write_text('old')
  monkeypatch.setattr(atomic, '_exchange', lambda a, b: False)
  real_rename = os.rename

  def rename(src, dst):
    if os.path.basename(str(src)).startswith('.model.tmp-'):
      raise OSError(errno.EIO, 'Input/output error')  # the second rename fails
    return real_rename(src, dst)
  monkeypatch.setattr(atomic.os, 'rename', rename)
  with pytest.raises(OSError):
    atomic.write_dir(str(target), lambda d: open(os.path.join(d, 'a.txt'), 'w').close())
  assert (target / 'a.txt').read_text() == 'old' and _leftovers(tmp_path) == []


# --- a real full disk: a small tmpfs in a user and mount namespace -------------------

def _can_mount_tmpfs():
  if not shutil.which('unshare'):
    return False
  try:
    return subprocess.run(
        ['unshare', '--user', '--map-root-user', '--mount', 'sh', '-c',
         'mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || '
         'mount -t tmpfs -o size=64k tmpfs /tmp'], capture_output=True,
        timeout=30).returncode == 0
  except (OSError, subprocess.TimeoutExpired):
    return False


small_disk = pytest.mark.skipif(not _can_mount_tmpfs(),
                                reason='cannot mount a tmpfs here (no user namespaces)')


def _on_small_disk(tmp_path, size, script, timeout=300):
  """Runs bash `script` with $DISK a fresh tmpfs of `size` and $PY our Python."""
  disk = tmp_path / 'disk'
  disk.mkdir()
  wrapper = 'set -u\nmount -t tmpfs -o size=%s tmpfs "$DISK"\n%s' % (size, script)
  env = dict(os.environ, DISK=str(disk), PY=sys.executable, TF_CPP_MIN_LOG_LEVEL='2',
             PYTHONPATH=ROOT + os.pathsep + HERE, WORK=str(tmp_path))
  return subprocess.run(['unshare', '--user', '--map-root-user', '--mount', 'bash', '-c',
                         wrapper], env=env, cwd=ROOT, capture_output=True, text=True,
                        timeout=timeout)


FILL = textwrap.dedent('''
  fill() {  # leave about $1 kB free on $DISK
    avail=$(df -k --output=avail "$DISK" | tail -1)
    dd if=/dev/zero of="$DISK/filler" bs=1k count=$((avail - $1)) 2>/dev/null || true
  }
''')

MAKE_MIDI = textwrap.dedent('''
  $PY - <<'PY'
  import os
  from conftest import scale_melody
  import note_seq
  for i in range(3):
    note_seq.sequence_proto_to_midi_file(scale_melody(bars=8, start_pitch=55 + i),
                                         os.path.join(os.environ['WORK'], 'in%d.mid' % i))
  PY
''')


@small_disk
def test_prepare_on_a_full_disk_keeps_the_earlier_tfrecord(tmp_path):
  result = _on_small_disk(tmp_path, '256k', MAKE_MIDI + FILL + textwrap.dedent('''
    $PY -m mvae_tf prepare --input "$WORK/in0.mid" --output "$DISK/data.tfrecord" --json \
      > /dev/null || exit 10
    cp "$DISK/data.tfrecord" "$WORK/before.tfrecord"
    fill 2
    $PY -m mvae_tf prepare --input "$WORK" --output "$DISK/data.tfrecord" --workers 1 --json \
      > /dev/null 2> "$WORK/err"
    echo "rc=$?"
    cmp "$DISK/data.tfrecord" "$WORK/before.tfrecord" && echo same
    ls -a "$DISK"
  '''))
  assert 'rc=2' in result.stdout, result.stdout + result.stderr
  err = (tmp_path / 'err').read_text().strip()
  assert err.count('\n') == 0 and 'data.tfrecord' in err and 'no space left' in err, err
  assert 'same' in result.stdout
  assert '.tmp-' not in result.stdout


@small_disk
def test_train_on_a_full_disk_keeps_its_checkpoints_and_resumes(tmp_path):
  script = textwrap.dedent('''
    $PY - <<'PY'
    import os
    from conftest import scale_melody
    from mvae_tf.data import tfrecord
    with tfrecord.AtomicTFRecordWriter(os.path.join(os.environ['WORK'], 'ex.tfrecord')) as w:
      for i in range(4):
        w.write(scale_melody(bars=6, start_pitch=55 + i).SerializeToString())
    PY
    train() {
      $PY -m mvae_tf train --config tiny-mel_2bar --run_dir "$DISK/run" \
        --examples_path "$WORK/ex.tfrecord" --num_steps $1 --checkpoint_every 1 --no_progress
    }
    train 2 2> /dev/null || exit 10
  ''') + FILL + textwrap.dedent('''
    fill 40
    train 4 2> "$WORK/err"
    echo "rc=$?"
    ls -a "$DISK/run" "$DISK/run/checkpoints"
    rm "$DISK/filler"
    train 3 2> /dev/null && echo resumed
    ls "$DISK/run/checkpoints"
  ''')
  result = _on_small_disk(tmp_path, '4m', script)
  out = result.stdout
  assert 'rc=2' in out, out + result.stderr
  err = [l for l in (tmp_path / 'err').read_text().splitlines() if not l.startswith('resuming')]
  assert len(err) == 1 and 'no space left' in err[0] and 'checkpoints' in err[0], err
  before_resume = out.split('resumed')[0] if 'resumed' in out else out
  assert '_temp' not in before_resume and '.run-' not in before_resume
  assert 'ckpt-2.index' in before_resume and 'ckpt-3' not in before_resume.split('rc=2')[1]
  assert 'run.json' in before_resume
  assert 'resumed' in out and 'ckpt-3.index' in out.split('resumed')[1]


FAKE_FLUIDSYNTH = textwrap.dedent('''\
  #!%s
  # Like fluidsynth on a full disk: writes what fits, declares the whole length, exits 0.
  import struct, sys
  path = sys.argv[sys.argv.index('-F') + 1]
  frames, PER_WRITE = 44100 * 4, 441
  header = (b'RIFF' + struct.pack('<I', 36 + frames * 4) + b'WAVEfmt ' +
            struct.pack('<IHHIIHH', 16, 1, 2, 44100, 44100 * 4, 4, 16) + b'data' +
            struct.pack('<I', frames * 4))
  with open(path, 'wb', buffering=0) as f:
    try:
      f.write(header)
      for _ in range(frames // PER_WRITE):
        f.write(b'\\0' * (4 * PER_WRITE))
    except OSError:
      pass
''')


def _fake_fluidsynth(tmp_path):
  fake = tmp_path / 'fluidsynth'
  fake.write_text(FAKE_FLUIDSYNTH % sys.executable)
  fake.chmod(0o755)
  return str(fake)


@small_disk
def test_a_wav_cut_short_by_a_full_disk_is_not_left_under_its_name(tmp_path):
  fake = _fake_fluidsynth(tmp_path)
  script = textwrap.dedent('''
    $PY - <<'PY'
    import os
    from mvae_tf.generation import render
    from mvae_tf.errors import WriteError
    disk = os.environ['DISK']
    renderer = (os.environ['FAKE'], '/dev/null')
    try:
      render.render_wav('/dev/null', os.path.join(disk, 'out.wav'), renderer, seconds=4.0)
      print('no error')
    except WriteError as e:
      print('WriteError:', e)
    print(sorted(os.listdir(disk)))
    PY
  ''')
  os.environ['FAKE'] = fake
  try:
    result = _on_small_disk(tmp_path, '300k', script)
  finally:
    del os.environ['FAKE']
  assert 'WriteError:' in result.stdout and 'out.wav' in result.stdout, \
      result.stdout + result.stderr
  assert 'no space left' in result.stdout
  assert result.stdout.strip().splitlines()[-1] == '[]'


def test_a_wav_whose_header_promises_more_than_it_holds_is_refused(tmp_path):
  """The same check without a small disk: a short WAV never takes its name."""
  from mvae_tf.generation import render
  fake = tmp_path / 'short'
  fake.write_text(FAKE_FLUIDSYNTH.replace('frames // PER_WRITE', 'frames // PER_WRITE // 4')
                  % sys.executable)
  fake.chmod(0o755)
  with pytest.raises((RuntimeError, WriteError)):
    render.render_wav('/dev/null', str(tmp_path / 'o.wav'), (str(fake), '/dev/null'),
                      seconds=4.0)
  assert not (tmp_path / 'o.wav').exists() and _leftovers(tmp_path) == []
  good = tmp_path / 'good'
  good.write_text(FAKE_FLUIDSYNTH % sys.executable)
  good.chmod(0o755)
  render.render_wav('/dev/null', str(tmp_path / 'o.wav'), (str(good), '/dev/null'), seconds=4.0)
  assert render.wav_frames(str(tmp_path / 'o.wav'))[:2] == (44100 * 4, 44100 * 4)


# --- generate: unwritable places and a disk that fills up part-way ------------------

def _generate(tmp_path, capsys, *args):
  from mvae_tf.cli import main as cli
  code = cli.main(['generate', '--mode', 'sample', '--seed', '1', *args])
  out, err = capsys.readouterr()
  return code, out, err


@pytest.mark.parametrize('where', ['under_a_file', 'proc'])
def test_generate_into_an_unwritable_place_is_one_line(tmp_path, capsys, where):
  if where == 'under_a_file':
    (tmp_path / 'f').write_text('x')
    out_dir = str(tmp_path / 'f' / 'out')
  else:
    out_dir = '/proc/mvae-test'
  code, _, err = _generate(tmp_path, capsys, '--output_dir', out_dir)
  assert code == 2 and err.count('\n') == 1 and out_dir in err, err


def test_generate_on_a_disk_that_fills_up_says_what_it_wrote(tmp_path, capsys, monkeypatch):
  real_fsync, calls = os.fsync, []

  def fsync(fd):
    if stat.S_ISREG(os.fstat(fd).st_mode):  # the fourth file fails
      calls.append(fd)
    if len(calls) > 3:
      raise OSError(errno.ENOSPC, 'No space left on device')
    return real_fsync(fd)
  monkeypatch.setattr(atomic.os, 'fsync', fsync)
  out_dir = tmp_path / 'out'
  code, out, err = _generate(tmp_path, capsys, '--num_outputs', '10', '--output_dir',
                             str(out_dir))
  assert code == 2 and err.count('\n') == 1, err
  assert 'no space left' in err and '3 of 10 outputs were written' in err, err
  assert 'mvae_sample_1_01.mid to mvae_sample_1_03.mid' in err
  assert sorted(os.listdir(out_dir)) == ['mvae_sample_1_%02d.mid' % i for i in (1, 2, 3)]


def test_file_sha256_reads_the_whole_file_across_blocks(tmp_path):
  empty = tmp_path / 'empty'
  empty.write_bytes(b'')
  assert atomic.file_sha256(str(empty)) == (
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')  # SHA-256 of nothing
  data = bytes(range(256)) * 9000  # 2.2 MiB: three 1 MiB blocks, the last one partial
  path = tmp_path / 'big'
  path.write_bytes(data)
  assert atomic.file_sha256(str(path)) == hashlib.sha256(data).hexdigest()
  path.write_bytes(data[:-1] + b'\x00')
  assert atomic.file_sha256(str(path)) != hashlib.sha256(data).hexdigest()
