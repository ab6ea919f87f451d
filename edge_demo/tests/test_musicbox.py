"""The musicbox: real-time scheduling checked against the beat grid, the MIDI
file it grows, Ctrl-C / SIGTERM, and live outputs (a fake port, a fake
fluidsynth, no MIDI backend).

Needs only edge_demo's requirements (a LiteRT runtime, numpy, mido) and the
shipped 2-bar exports (mvae_tf/pretrained/*/model.tflite, found from the repo
root); no TensorFlow, no mvae_tf import.

Timing tolerance: every note-on must be sent within EDGE_JITTER_TOL_MS
(default 25 ms: under one 16th note at 480 qpm, 31.25 ms, so each note is
still unambiguously on its own grid step on a loaded machine) after its due
time, never before, and the median within 5 ms.
"""

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

mido = pytest.importorskip('mido')

REPO = Path(__file__).resolve().parents[2]
MELODY = REPO / 'mvae_tf' / 'pretrained' / 'folk-mel_2bar' / 'model.tflite'
DRUMS = REPO / 'mvae_tf' / 'pretrained' / 'drums_2bar' / 'model.tflite'
TOL_MS = float(os.environ.get('EDGE_JITTER_TOL_MS', 25))
TICKS_PER_STEP = 120  # 480 ticks a quarter, 4 steps a quarter

pytestmark = pytest.mark.skipif(not (MELODY.is_file() and DRUMS.is_file()),
                                reason='the shipped 2-bar .tflite exports are missing')


def edge_env(**extra):
  env = dict(os.environ)
  env['PYTHONPATH'] = os.pathsep.join([str(REPO)] + [
      p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
  env.update(extra)
  return env


def edge(*args, cwd, env=None, timeout=120):
  return subprocess.run([sys.executable, '-m', 'edge_demo'] + [str(a) for a in args],
                        cwd=str(cwd), env=env or edge_env(), capture_output=True, text=True,
                        timeout=timeout)


def events(path):
  """(absolute tick, message) of a MIDI file, read by mido (which checks the format)."""
  f = mido.MidiFile(str(path))
  assert f.ticks_per_beat == 480 and len(f.tracks) == 1
  out, tick = [], 0
  for msg in f.tracks[0]:
    tick += msg.time
    out.append((tick, msg))
  assert out[-1][1].type == 'end_of_track'
  return out


def read_growing(path):
  """events() of a file being written, or None when it is not there yet or was caught
  in the microseconds between two writes of a checkpoint (a reader racing the writer)."""
  for _ in range(5):
    try:
      return events(path)
    except FileNotFoundError:
      return None
    except (EOFError, OSError, ValueError, KeyError, IndexError):
      time.sleep(0.01)
  return events(path)


def onsets(evs):
  return [(t, m) for t, m in evs if m.type == 'note_on' and m.velocity > 0]


def check_balanced(evs):
  """Every note-on ends with a note-off on the same channel and pitch; nothing after
  the end of track."""
  on = {}
  for _, m in evs:
    if m.type == 'note_on' and m.velocity > 0:
      key = (m.channel, m.note)
      assert key not in on, 'note on twice without an off: %s' % (key,)
      on[key] = True
    elif m.type == 'note_off' or (m.type == 'note_on' and m.velocity == 0):
      on.pop((m.channel, m.note), None)
  assert not on, 'notes left sounding: %s' % sorted(on)


def load(path):
  from edge_demo import runtime
  return runtime.TFLiteModel(path, num_threads=1)


# ----------------------------------------------------------------------------
# Pieces.

def test_slerp_and_walk():
  from edge_demo import musicbox
  rng = np.random.default_rng(0)
  a, b = rng.standard_normal(8), rng.standard_normal(8)
  np.testing.assert_allclose(musicbox.slerp(a, b, 0.0), a, rtol=1e-6)
  np.testing.assert_allclose(musicbox.slerp(a, b, 1.0), b, rtol=1e-5, atol=1e-6)
  mid = musicbox.slerp(a, b, 0.5)
  assert min(np.linalg.norm(a), np.linalg.norm(b)) * 0.7 < np.linalg.norm(mid)
  walk = musicbox.LatentWalk(8, 3, np.random.default_rng(1))
  steps = [walk.next() for _ in range(7)]
  assert [(leg, k) for _, leg, k in steps] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2),
                                               (2, 0)]
  # a leg ends where the next begins: the walk is continuous
  np.testing.assert_allclose(musicbox.slerp(walk.a, walk.b, 0.0), steps[6][0], rtol=1e-6)


def test_midi_file_sink_is_valid_after_every_checkpoint(tmp_path):
  from edge_demo import musicbox
  path = tmp_path / 'g.mid'
  sink = musicbox.MidiFileSink(path, qpm=100)
  sink.program(0, 0, 5)
  sink.note_on(0, 0, 60, 80)
  sink.note_off(240, 0, 60)
  sink.checkpoint(480)
  evs = events(str(path) + '.part')  # a valid file while it grows
  assert evs[-1][0] == 480
  sink.note_on(300000, 9, 36, 90)  # a delta of three bytes
  sink.note_off(300120, 9, 36)
  sink.close(300480)
  assert not os.path.exists(str(path) + '.part')
  evs = events(path)
  assert [t for t, m in onsets(evs)] == [0, 300000]
  assert evs[-1][0] == 300480
  tempo = [m.tempo for _, m in evs if m.type == 'set_tempo']
  assert tempo == [600000]


# ----------------------------------------------------------------------------
# Real-time scheduling against the beat grid.

def test_four_bars_in_real_time_on_the_grid(tmp_path):
  """4 bars at 480 qpm with the real scheduler: every note-on sent within the tolerance
  of its grid time (due times are exactly t0 + step * step length, no drift), and the
  file's onsets exactly on the 16th-note grid, the same notes at the same steps."""
  from edge_demo import musicbox
  model = load(MELODY)
  rep = model.metadata['representation']
  path = tmp_path / 'rt.mid'
  sink = musicbox.MidiFileSink(path, qpm=480)
  start = time.perf_counter()
  summary = musicbox.play(model, rep, bars=4, qpm=480, temperature=0.5, seed=1,
                          file_sink=sink, realtime=True)
  wall = time.perf_counter() - start
  step_s = 60.0 / 480 / 4
  assert summary.bars == 4 and summary.seconds_of_music == pytest.approx(2.0)
  assert 2.0 <= wall < 10.0  # it did wait in real time
  assert len(summary.onsets) >= 4
  steps = [s for s, _, _ in summary.onsets]
  due0 = summary.onsets[0][1] - steps[0] * step_s
  late_ms = []
  for s, due, sent in summary.onsets:
    assert due == pytest.approx(due0 + s * step_s, abs=1e-9)  # the grid, not a sum of sleeps
    late_ms.append((sent - due) * 1e3)
  assert min(late_ms) >= 0, 'a note-on was sent before its time'
  assert max(late_ms) < TOL_MS, late_ms
  assert np.median(late_ms) < 5.0, late_ms
  median, p95, worst = summary.jitter_ms()
  assert 0 <= median <= p95 <= worst < TOL_MS
  evs = events(path)
  ons = onsets(evs)
  assert all(t % TICKS_PER_STEP == 0 for t, _ in ons)
  assert [t // TICKS_PER_STEP for t, _ in ons] == steps
  assert evs[-1][0] == 4 * 16 * TICKS_PER_STEP
  assert all(t <= evs[-1][0] for t, _ in evs)
  check_balanced(evs)


def test_underrun_moves_the_schedule_on(tmp_path):
  """A generator late for its second segment: playback waits (one underrun), the
  schedule moves on by the wait (the jitter stays small), the file keeps the grid."""
  from edge_demo import musicbox

  class Slow(musicbox.Generator):
    def make(self, index):
      segment = super().make(index)
      if index == 1:
        time.sleep(1.5)  # the first segment (2 bars at 480 qpm) lasts 1 s
      return segment

  model = load(MELODY)
  rep = model.metadata['representation']
  gen = Slow(model, rep, 0.5, 1, 4, ahead=1)
  path = tmp_path / 'late.mid'
  try:
    summary = musicbox.play(model, rep, bars=6, qpm=480, file_sink=musicbox.MidiFileSink(
        path, qpm=480), generator=gen)
  finally:
    gen.stop()
  assert summary.bars == 6
  assert summary.underruns == 1 and 0.2 < summary.underrun_s < 1.5
  assert summary.wall_s > 3.0 + 0.2
  assert summary.jitter_ms()[2] < TOL_MS
  evs = events(path)
  assert evs[-1][0] == 6 * 16 * TICKS_PER_STEP
  assert all(t % TICKS_PER_STEP == 0 for t, _ in onsets(evs))
  check_balanced(evs)


def test_cli_drums_bars_to_file(tmp_path):
  out = tmp_path / 'drums.mid'
  r = edge('musicbox', '--model', DRUMS, '--numThreads', 1, '--bars', 4, '--qpm', 480,
           '--seed', 2, '--out', out, cwd=tmp_path)
  assert r.returncode == 0, r.stderr
  assert 'Traceback' not in r.stderr
  assert 'played 4 bars' in r.stdout and 'jitter' in r.stdout, r.stdout
  assert not (tmp_path / 'drums.mid.part').exists()
  evs = events(out)
  ons = onsets(evs)
  assert ons and all(m.channel == 9 for _, m in ons)  # drums on channel 10
  assert all(t % TICKS_PER_STEP == 0 for t, _ in ons)
  assert evs[-1][0] == 4 * 16 * TICKS_PER_STEP
  check_balanced(evs)


def test_fast_render_is_reproducible_and_cut_at_the_bar(tmp_path):
  a, b = tmp_path / 'a.mid', tmp_path / 'b.mid'
  for path in (a, b):
    r = edge('musicbox', '--model', MELODY, '--bars', 3, '--fast', '--seed', 7,
             '--steps_between', 2, '--out', path, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'no jitter' in r.stdout
  assert a.read_bytes() == b.read_bytes()
  evs = events(a)
  assert evs[-1][0] == 3 * 16 * TICKS_PER_STEP  # 3 bars: the second segment cut
  assert all(t <= evs[-1][0] for t, _ in evs)
  check_balanced(evs)


# ----------------------------------------------------------------------------
# Stopping.

@pytest.mark.parametrize('sig,code', [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_cleanly(tmp_path, sig, code):
  """An endless run stopped by SIGINT (Ctrl-C) or SIGTERM: exit 128 + the signal, no
  traceback, a summary, and a valid MIDI file (its .part was valid while playing)."""
  out = tmp_path / 'walk.mid'
  proc = subprocess.Popen(
      [sys.executable, '-m', 'edge_demo', 'musicbox', '--model', str(MELODY), '--qpm', '240',
       '--seed', '3', '--out', str(out)], cwd=str(tmp_path), env=edge_env(),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    first = proc.stdout.readline()
    assert first.startswith('musicbox:'), first + proc.stderr.read()
    part = Path(str(out) + '.part')
    deadline = time.time() + 20
    while time.time() < deadline:  # one bar at 240 qpm is 1 s
      evs = read_growing(part)
      if evs and onsets(evs) and evs[-1][0] >= 16 * TICKS_PER_STEP:
        break
      time.sleep(0.1)
    else:
      pytest.fail('no bar recorded in %s' % part)
    time.sleep(0.3)  # stop in the middle of a bar
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=20)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  assert proc.returncode == code, (stdout, stderr)
  assert 'Traceback' not in stderr, stderr
  assert 'stopped by %s' % signal.Signals(sig).name in stdout, stdout
  assert 'jitter' in stdout
  assert not part.exists()
  evs = events(out)
  assert evs[-1][0] > 16 * TICKS_PER_STEP
  assert all(t % TICKS_PER_STEP == 0 for t, _ in onsets(evs))
  check_balanced(evs)


class FakePort:
  name = 'fake port'

  def __init__(self):
    self.sent = []

  def send(self, msg):
    self.sent.append((time.perf_counter(), msg))

  def close(self):
    pass


def test_live_port_gets_all_notes_off_on_stop(tmp_path):
  """A live port (a fake mido port) stopped after one bar: every note-on got its
  note-off, then CC 123 and CC 120 on every channel used; the jitter is measured
  at the port's sends."""
  from edge_demo import musicbox
  model = load(DRUMS)
  rep = model.metadata['representation']
  port = FakePort()
  stop = musicbox.Stop()

  def on_bar(bars):
    if bars == 1:
      stop.signum = signal.SIGINT

  summary = musicbox.play(model, rep, bars=0, qpm=480, seed=5, stop=stop,
                          live_sinks=[musicbox.PortSink(port)], on_bar=on_bar)
  assert summary.signum == signal.SIGINT and summary.bars == 1
  msgs = [m for _, m in port.sent]
  ons = [m for m in msgs if m.type == 'note_on' and m.velocity > 0]
  assert ons and all(m.channel == 9 for m in ons)
  assert len(ons) == len(summary.onsets)
  sounding = set()
  for m in msgs:
    if m.type == 'note_on':
      sounding.add(m.note)
    elif m.type == 'note_off':
      sounding.discard(m.note)
  assert not sounding
  tail = [(m.channel, m.control) for m in msgs if m.type == 'control_change']
  assert tail == [(9, 123), (9, 120)]
  assert msgs[-2:] == [mido.Message('control_change', channel=9, control=123, value=0),
                       mido.Message('control_change', channel=9, control=120, value=0)]
  assert max(sent - due for _, due, sent in summary.onsets) * 1e3 < TOL_MS


def test_port_without_midi_backend(tmp_path):
  if importlib.util.find_spec('rtmidi') is not None:
    pytest.skip('python-rtmidi is installed here')
  for args in (['--port', 'Synth', '--bars', 1], ['--list-ports']):
    r = edge('musicbox', '--model', MELODY, *args, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pip install python-rtmidi' in lines[0], r.stderr


def test_audio_through_a_fake_fluidsynth(tmp_path):
  """--audio drives fluidsynth's command shell; here a fake fluidsynth logs it."""
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  fake = bin_dir / 'fluidsynth'
  fake.write_text('#!/bin/sh\necho "$@" > "$FAKE_FLUID_LOG.args"\ncat > "$FAKE_FLUID_LOG"\n')
  fake.chmod(0o755)
  sf2 = tmp_path / 'gm.sf2'
  sf2.write_bytes(b'RIFF')
  log = tmp_path / 'fluid.log'
  env = edge_env(PATH=str(bin_dir) + os.pathsep + os.environ.get('PATH', ''),
                 FAKE_FLUID_LOG=str(log))
  r = edge('musicbox', '--model', MELODY, '--bars', 2, '--qpm', 480, '--seed', 4, '--audio',
           '--soundfont', sf2, cwd=tmp_path, env=env)
  assert r.returncode == 0, r.stderr
  assert 'jitter' in r.stdout
  lines = log.read_text().splitlines()
  assert any(line.startswith('noteon 0 ') for line in lines), lines
  assert sum(line.startswith('noteon') for line in lines) == \
      sum(line.startswith('noteoff') for line in lines)
  assert lines[-3:] == ['cc 0 123 0', 'cc 0 120 0', 'quit']
  assert str(sf2) in (tmp_path / 'fluid.log.args').read_text()


def test_audio_when_fluidsynth_fails_at_start(tmp_path):
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  fake = bin_dir / 'fluidsynth'
  fake.write_text('#!/bin/sh\necho "fluidsynth: error: Unknown audio driver" >&2\nexit 1\n')
  fake.chmod(0o755)
  sf2 = tmp_path / 'gm.sf2'
  sf2.write_bytes(b'RIFF')
  out = tmp_path / 'x.mid'
  r = edge('musicbox', '--model', MELODY, '--bars', 1, '--audio', '--soundfont', sf2,
           '--out', out, cwd=tmp_path,
           env=edge_env(PATH=str(bin_dir) + os.pathsep + os.environ.get('PATH', '')))
  assert r.returncode == 2
  lines = r.stderr.strip().splitlines()
  assert len(lines) == 1 and 'Unknown audio driver' in lines[0], r.stderr
  assert not out.exists() and not Path(str(out) + '.part').exists()


def test_audio_without_fluidsynth(tmp_path):
  empty = tmp_path / 'empty'
  empty.mkdir()
  r = edge('musicbox', '--model', MELODY, '--bars', 1, '--audio', cwd=tmp_path,
           env=edge_env(PATH=str(empty)))
  assert r.returncode == 2
  lines = r.stderr.strip().splitlines()
  assert len(lines) == 1 and 'fluidsynth' in lines[0] and 'apt-get install' in lines[0]


@pytest.mark.parametrize('args,words', [
    ([], '--out FILE.mid'),
    (['--fast', '--out', 'x.mid'], '--bars'),
    (['--bars', '-1', '--out', 'x.mid'], '--bars'),
    (['--bars', '1', '--out', 'no/such/dir/x.mid'], 'does not exist'),
])
def test_bad_arguments_are_one_line(tmp_path, args, words):
  r = edge('musicbox', '--model', MELODY, *args, cwd=tmp_path)
  assert r.returncode == 2, (r.stdout, r.stderr)
  lines = r.stderr.strip().splitlines()
  assert len(lines) == 1 and words in lines[0], r.stderr
