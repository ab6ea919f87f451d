"""`python -m edge_demo musicbox`: an endless latent walk, played bar after bar.

The walk goes from one random point of the prior (z ~ N(0, 1)) to the next by
spherical interpolation, `--steps_between` segments per leg; each latent is
decoded (the whole-sequence `decode` graph, with Gumbel noise) into one window
of the model (2 bars for the 2-bar models, 16 for a hierarchical one). A
background thread generates a few segments ahead of playback (a bounded
queue); the main thread plays them bar after bar to any of:

  --out FILE.mid   a MIDI file (format 0), grown as it plays: it is FILE.mid.part
                   until the run ends, a valid MIDI file after every bar, and
                   renamed to FILE.mid when the run stops (also on Ctrl-C or
                   SIGTERM). Its ticks are the exact schedule (no jitter).
  --port NAME      a live MIDI output port (mido with python-rtmidi)
  --audio          the fluidsynth program with a General MIDI soundfont, fed
                   through its command shell (no MIDI backend needed)

Timing: every note-on and note-off is scheduled against time.perf_counter()
from the start time and the step length (60 / qpm / steps_per_quarter), so
sleep errors never add up: each event sleeps to within 1.5 ms of its due time
and spins the rest. The lateness of every note-on send (taken after the send
returns) against its due time is the jitter reported at the end (median, p95,
max). If the generator falls behind (an underrun), playback waits for it and
the schedule moves on by the wait (counted and reported); the file keeps the
exact grid.

Ctrl-C (SIGINT) and SIGTERM stop cleanly: the generator thread stops, sounding
notes get their note-offs, live outputs get all-notes-off (CC 123 and CC 120
on every channel used), the file is closed (end of track) and renamed, and a
summary is printed. The exit code is then 128 + the signal (130 for Ctrl-C,
143 for SIGTERM), the shell convention for a run stopped by a signal; a run of
`--bars N` that plays its N bars exits 0.
"""

import argparse
import array
import collections
import math
import os
import queue
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from edge_demo.errors import EdgeError
from edge_demo import music
from edge_demo.music import slerp

TICKS_PER_BEAT = 480
SPIN_S = 0.0015  # sleep until this close to an event, then spin
MAX_SLEEP_S = 0.05  # so that a stop request is seen within 50 ms
ONSET_LOG = 100000  # note-ons whose (step, due, sent) a Summary keeps (all their lateness)
DRUM_CHANNEL = 9
RTMIDI_INSTALL = 'pip install python-rtmidi'
FLUIDSYNTH_INSTALL = ('sudo apt-get install fluidsynth fluid-soundfont-gm '
                      '(macOS: brew install fluid-synth)')


# ----------------------------------------------------------------------------
# The latent walk and the generator thread.

class LatentWalk:
  """Latents of the walk: `steps_between` per leg from one prior point to the next."""

  def __init__(self, z_size, steps_between, rng):
    if steps_between < 1:
      raise ValueError('steps_between must be at least 1')
    self.z_size, self.steps_between, self.rng = z_size, steps_between, rng
    self.leg, self.k = 0, 0
    self.a = rng.standard_normal(z_size)
    self.b = rng.standard_normal(z_size)

  def next(self):
    """(z [z_size] float32, leg, k): the next latent, on leg `leg` at k / steps_between."""
    z = slerp(self.a, self.b, self.k / self.steps_between).astype(np.float32)
    out = (z, self.leg, self.k)
    self.k += 1
    if self.k == self.steps_between:
      self.k, self.leg = 0, self.leg + 1
      self.a, self.b = self.b, self.rng.standard_normal(self.z_size)
    return out


Segment = collections.namedtuple('Segment', ['index', 'leg', 'k', 'notes', 'num_steps',
                                             'decode_s'])


class Generator(threading.Thread):
  """Decodes the walk's latents into segments of notes, `ahead` segments ahead."""

  def __init__(self, model, representation, temperature, seed, steps_between, ahead=3,
               num_steps=None):
    super().__init__(name='musicbox-generator', daemon=True)
    from edge_demo import music
    self._notes_from_indices = music.notes_from_indices
    self.model = model
    self.representation = representation
    self.temperature = float(temperature)
    self.rng = np.random.default_rng(seed)
    self.walk = LatentWalk(model.z_size, steps_between, self.rng)
    self.num_steps = int(num_steps or model.num_steps)
    self.queue = queue.Queue(maxsize=max(1, int(ahead)))
    self.stopping = threading.Event()
    self.error = None
    self.generated = 0

  def make(self, index):
    z, leg, k = self.walk.next()
    noise = self.rng.uniform(np.finfo(np.float32).tiny, 1.0, (
        1, self.model.num_steps, sum(self.model.depths))).astype(np.float32)
    start = time.perf_counter()
    tokens, _ = self.model.decode(z[None], np.float32([self.temperature]), noise)
    decode_s = time.perf_counter() - start
    notes = self._notes_from_indices(tokens[0][:self.num_steps], self.representation)
    return Segment(index, leg, k, list(notes), self.num_steps, decode_s)

  def run(self):
    try:
      index = 0
      while not self.stopping.is_set():
        segment = self.make(index)
        self.generated += 1
        index += 1
        while not self.stopping.is_set():
          try:
            self.queue.put(segment, timeout=0.1)
            break
          except queue.Full:
            pass
    except BaseException as e:  # handed to the player, which raises it
      self.error = e

  def get(self, timeout):
    """The next segment, or None after `timeout` seconds; raises the thread's error."""
    try:
      return self.queue.get(timeout=timeout) if timeout > 0 else self.queue.get_nowait()
    except queue.Empty:
      if self.error is not None:
        raise self.error
      if not self.is_alive() and self.queue.empty():
        raise RuntimeError('the musicbox generator stopped')
      return None

  def stop(self):
    self.stopping.set()
    self.join(timeout=5.0)


# ----------------------------------------------------------------------------
# Outputs.

def _varlen(n):
  out = [n & 0x7F]
  n >>= 7
  while n:
    out.append(0x80 | (n & 0x7F))
    n >>= 7
  return bytes(reversed(out))


def _meta(kind, data):
  return b'\xff' + bytes([kind]) + _varlen(len(data)) + data


class MidiFileSink:
  """A format-0 MIDI file written as it plays; valid after every `checkpoint`.

  Events are kept in memory (no file system call in the timed loop) until
  `checkpoint(tick)` (the player calls it at every bar end) writes them with the
  end of track at `tick` in one write, then the track length: the file on disk
  (`path`.part) is a valid MIDI file of the bars played, but for the few
  microseconds between those two writes, so even a killed run leaves a usable
  .part. `close(tick)` does it a last time and renames the file to `path`.
  """

  live = False

  def __init__(self, path, qpm, ticks_per_beat=TICKS_PER_BEAT, time_signature=(4, 4),
               name='mvae_tf musicbox'):
    self.path = os.fspath(path)
    self.part = self.path + '.part'
    directory = os.path.dirname(os.path.abspath(self.path))
    if not os.path.isdir(directory):
      raise EdgeError('cannot write %s: the directory %s does not exist' % (self.path,
                                                                         directory))
    try:
      self.file = open(self.part, 'w+b')
    except OSError as e:
      raise EdgeError('cannot write %s: %s' % (self.part, e.strerror or e)) from None
    self.ticks_per_beat = ticks_per_beat
    self.last_tick = 0
    self.closed = False
    self.file.write(b'MThd' + struct.pack('>IHHH', 6, 0, 1, ticks_per_beat))
    self.file.write(b'MTrk\x00\x00\x00\x00')
    self.end = self.file.tell()  # where the end of track goes
    self.pending = bytearray()  # events not yet written
    num, den = time_signature
    tempo = int(round(60e6 / qpm))
    self._raw(0, _meta(0x03, name.encode('utf-8')))
    self._raw(0, _meta(0x51, tempo.to_bytes(3, 'big')))
    self._raw(0, _meta(0x58, bytes([num, int(math.log2(den)), 24, 8])))
    self.checkpoint(0)

  def _raw(self, tick, data):
    if tick < self.last_tick:
      raise ValueError('MIDI events out of order: tick %d after %d' % (tick, self.last_tick))
    self.pending += _varlen(tick - self.last_tick) + data
    self.last_tick = tick

  def note_on(self, tick, channel, pitch, velocity):
    self._raw(tick, bytes([0x90 | channel, pitch, velocity]))

  def note_off(self, tick, channel, pitch):
    self._raw(tick, bytes([0x80 | channel, pitch, 0]))

  def program(self, tick, channel, program):
    self._raw(tick, bytes([0xC0 | channel, program]))

  def checkpoint(self, tick):
    """End of track at `tick` and the track length: a valid file up to here."""
    self.file.seek(self.end)
    self.end += len(self.pending)
    self.file.write(bytes(self.pending) + _varlen(max(0, tick - self.last_tick)) +
                    b'\xff\x2f\x00')
    del self.pending[:]
    self.file.truncate()
    size = self.file.tell() - 22  # 14 (MThd) + 8 (MTrk, length)
    self.file.seek(18)
    self.file.write(struct.pack('>I', size))
    self.file.flush()

  def close(self, tick):
    if self.closed:
      return
    self.closed = True
    try:
      self.checkpoint(max(tick, self.last_tick))
      os.fsync(self.file.fileno())
    finally:
      self.file.close()
    os.replace(self.part, self.path)


class PortSink:
  """A live MIDI output (a mido port)."""

  live = True

  def __init__(self, port, name=None):
    self.port = port
    self.name = name or getattr(port, 'name', 'MIDI port')

  @staticmethod
  def open(name):
    names = list_ports()
    if name in names:
      match = name
    else:
      found = [n for n in names if name.lower() in n.lower()]
      if len(found) != 1:
        raise EdgeError('no MIDI output port %s %r (ports: %s)' % (
            'matches' if not found else 'is uniquely named by', name,
            '; '.join(names) or 'none'))
      match = found[0]
    import mido
    try:
      return PortSink(mido.open_output(match), match)
    except Exception as e:  # rtmidi raises its own errors (SystemError, RuntimeError...)
      raise EdgeError('cannot open the MIDI port %r: %s' % (match, str(e).strip() or
                                                           type(e).__name__)) from None

  def _send(self, **kw):
    import mido
    self.port.send(mido.Message(**kw))

  def note_on(self, channel, pitch, velocity):
    self._send(type='note_on', channel=channel, note=pitch, velocity=velocity)

  def note_off(self, channel, pitch):
    self._send(type='note_off', channel=channel, note=pitch, velocity=0)

  def program(self, channel, program):
    self._send(type='program_change', channel=channel, program=program)

  def control(self, channel, control, value):
    self._send(type='control_change', channel=channel, control=control, value=value)

  def close(self):
    try:
      self.port.close()
    except Exception:  # pylint: disable=broad-except
      pass


def list_ports():
  """mido's output port names; EdgeError (pip install python-rtmidi) without a backend."""
  try:
    import mido
    return list(mido.get_output_names())
  except ImportError as e:
    raise EdgeError('live MIDI output needs a MIDI backend for mido (%s): %s' % (
        getattr(e, 'name', None) and 'no module %s' % e.name or e, RTMIDI_INSTALL)) from None
  except Exception as e:  # pylint: disable=broad-except
    raise EdgeError('cannot list MIDI ports: %s' % (str(e).strip() or type(e).__name__)) \
        from None


def find_soundfont(explicit=None):
  """A General MIDI soundfont (edge_demo.music.find_soundfont); a missing one named by
  --soundfont or $MVAE_SOUNDFONT is an EdgeError."""
  try:
    return music.find_soundfont(explicit)
  except FileNotFoundError as e:
    raise EdgeError('no soundfont at %s' % e.filename) from None


class FluidsynthSink:
  """Audio through the fluidsynth program, driven by its command shell on stdin
  (`noteon chan key vel`), so no MIDI backend is needed. It runs in its own
  session, so a Ctrl-C on the terminal reaches the musicbox only, which then
  silences it and closes it."""

  live = True
  START_S = 1.0  # how long fluidsynth gets to fail at start (no audio device...)

  def __init__(self, soundfont=None, driver=None, gain=0.6):
    exe = shutil.which('fluidsynth')
    if exe is None:
      raise EdgeError('--audio needs the fluidsynth program, which is not installed: %s'
                      % FLUIDSYNTH_INSTALL)
    sf = find_soundfont(soundfont)
    if sf is None:
      raise EdgeError('--audio needs a General MIDI soundfont and none was found: %s, or '
                      'pass --soundfont FILE.sf2 (or set MVAE_SOUNDFONT)' % FLUIDSYNTH_INSTALL)
    cmd = [exe, '-q', '-g', str(gain), '-o', 'shell.prompt=']
    if driver:
      cmd += ['-a', driver]
    cmd.append(sf)
    self.name = 'fluidsynth (%s)' % os.path.basename(sf)
    self.log = tempfile.TemporaryFile()  # its messages, for the reason it stopped
    try:
      self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=self.log, start_new_session=True)
    except OSError as e:
      raise EdgeError('cannot start fluidsynth: %s' % (e.strerror or e)) from None
    try:
      self.proc.wait(self.START_S)
    except subprocess.TimeoutExpired:
      return
    err = self._messages()
    raise EdgeError('fluidsynth exited at start (code %s)%s' % (
        self.proc.returncode, ': ' + err[-1] if err else ''))

  def _messages(self):
    self.log.seek(0)
    return self.log.read().decode('utf-8', 'replace').strip().splitlines()

  def _cmd(self, line):
    try:
      self.proc.stdin.write(line.encode('ascii') + b'\n')
      self.proc.stdin.flush()
    except (BrokenPipeError, OSError, ValueError):
      err = self._messages()
      raise EdgeError('fluidsynth stopped (code %s)%s' % (
          self.proc.poll(), ': ' + err[-1] if err else '')) from None

  def note_on(self, channel, pitch, velocity):
    self._cmd('noteon %d %d %d' % (channel, pitch, velocity))

  def note_off(self, channel, pitch):
    self._cmd('noteoff %d %d' % (channel, pitch))

  def program(self, channel, program):
    self._cmd('prog %d %d' % (channel, program))

  def control(self, channel, control, value):
    self._cmd('cc %d %d %d' % (channel, control, value))

  def close(self):
    try:
      self.proc.stdin.write(b'quit\n')
      self.proc.stdin.close()
    except (OSError, ValueError):
      pass
    try:
      self.proc.wait(2.0)
    except subprocess.TimeoutExpired:
      self.proc.terminate()
      try:
        self.proc.wait(2.0)
      except subprocess.TimeoutExpired:
        self.proc.kill()
        self.proc.wait()
    self.log.close()


# ----------------------------------------------------------------------------
# The player.

def channel_of(note):
  """MIDI channel (0-15) of a note: drums on 10 (index 9), instrument k on channel k."""
  if note.is_drum:
    return DRUM_CHANNEL
  k = int(note.instrument)
  return min(15, k if k < DRUM_CHANNEL else k + 1)


class Stop:
  """A stop request: set by SIGINT/SIGTERM (or by hand); a second signal aborts."""

  def __init__(self):
    self.signum = None

  def __bool__(self):
    return self.signum is not None

  def handler(self, signum, frame):  # pylint: disable=unused-argument
    if self.signum is not None:
      raise KeyboardInterrupt
    self.signum = signum


class Summary:
  """What a run played: bars, seconds, the jitter of note-on sends, underruns."""

  def __init__(self):
    self.bars = 0
    self.steps = 0
    self.seconds_of_music = 0.0
    self.wall_s = 0.0
    self.onsets = []  # (step, due_s, sent_s) of the first ONSET_LOG real-time note-ons
    self.late = array.array('d')  # the lateness (s) of every one: 8 bytes a note
    self.underruns = 0
    self.underrun_s = 0.0
    self.segments = 0
    self.decode_s = []
    self.signum = None
    self.realtime = True
    self.notes = 0

  def jitter_ms(self):
    """(median, p95, max) of note-on lateness in ms, or None without real-time onsets."""
    if not self.late:
      return None
    late = np.frombuffer(self.late, np.float64) * 1e3
    return float(np.median(late)), float(np.percentile(late, 95)), float(late.max())

  def as_dict(self):
    jitter = self.jitter_ms()
    return dict(bars=self.bars, seconds_of_music=self.seconds_of_music, wall_s=self.wall_s,
                notes=self.notes, segments=self.segments, underruns=self.underruns,
                underrun_s=self.underrun_s, realtime=self.realtime,
                decode_ms_median=float(np.median(self.decode_s) * 1e3) if self.decode_s
                else None,
                jitter_ms=None if jitter is None else dict(
                    zip(('median', 'p95', 'max'), jitter), n=len(self.late)),
                signal=self.signum)

  def lines(self):
    out = ['played %d bar%s (%.1f s of music) in %.1f s%s' % (
        self.bars, '' if self.bars == 1 else 's', self.seconds_of_music, self.wall_s,
        ', stopped by %s' % signal.Signals(self.signum).name if self.signum else '')]
    jitter = self.jitter_ms()
    if jitter is not None:
      out.append('note-on jitter against the beat: median %.2f ms, p95 %.2f ms, max %.2f ms '
                 '(%d notes)' % (jitter + (len(self.late),)))
    elif not self.realtime:
      out.append('rendered without real-time scheduling (--fast): no jitter to measure')
    if self.decode_s:
      out.append('generated %d segment%s (decode median %.1f ms), %d underrun%s%s' % (
          self.segments, '' if self.segments == 1 else 's',
          np.median(self.decode_s) * 1e3, self.underruns,
          '' if self.underruns == 1 else 's',
          ' (%.2f s waited)' % self.underrun_s if self.underruns else ''))
    return out


def _sleep_until(due, stop):
  """Sleeps until perf_counter() >= due (sleep, then spin the last SPIN_S);
  False as soon as `stop` is set."""
  while True:
    if stop:
      return False
    left = due - time.perf_counter()
    if left <= 0:
      return True
    if left > SPIN_S:
      time.sleep(min(left - SPIN_S, MAX_SLEEP_S))


def segment_events(segment, start_step, end_step, steps_per_bar, velocity):
  """Sorted events (step, order, kind, channel, pitch, velocity, program) of a segment
  that starts at `start_step`, cut at `end_step` (None: not cut); a bar event at
  every bar end. Order at a step: note-offs, note-ons, then the bar end."""
  events = []
  for n in segment.notes:
    start, end = start_step + int(n.start), start_step + int(n.end)
    if end_step is not None:
      if start >= end_step:
        continue
      end = min(end, end_step)
    if end <= start:
      continue
    ch = channel_of(n)
    events.append((start, 1, 'on', ch, int(n.pitch), velocity, int(n.program), n.is_drum))
    events.append((end, 0, 'off', ch, int(n.pitch), 0, 0, n.is_drum))
  seg_end = start_step + segment.num_steps
  for step in range(start_step + steps_per_bar, seg_end + 1, steps_per_bar):
    if end_step is not None and step > end_step:
      break
    events.append((step, 2, 'bar', None, None, None, None, None))
  events.sort(key=lambda e: (e[0], e[1]))
  return events


def play(model, representation, bars=0, qpm=120.0, temperature=0.5, seed=None,
         steps_between=4, file_sink=None, live_sinks=(), realtime=True, stop=None,
         ahead=3, lead_s=0.05, on_bar=None, generator=None):
  """Plays the walk (see the module docstring); a Summary. `bars` 0 plays until `stop`."""
  stop = stop if stop is not None else Stop()
  spq = int(representation.get('steps_per_quarter', 4))
  spb = int(representation.get('steps_per_bar', 4 * spq))
  window = int(representation.get('window_steps', model.num_steps))
  velocity = int(representation.get('velocity', 80))
  step_s = 60.0 / qpm / spq
  ticks_per_step = TICKS_PER_BEAT // spq if TICKS_PER_BEAT % spq == 0 else None
  if ticks_per_step is None:
    raise ValueError('steps_per_quarter %d does not divide %d ticks' % (spq, TICKS_PER_BEAT))
  end_step = bars * spb if bars else None
  gen = generator or Generator(model, representation, temperature, seed, steps_between,
                               ahead=ahead, num_steps=window)
  summary = Summary()
  summary.realtime = realtime
  sounding = collections.Counter()  # (channel, pitch) -> note-ons not yet off
  programs = {}  # channel -> program sent
  used = set()
  live = list(live_sinks)
  t0 = None
  step = 0  # the step the player is at (events up to it are sent)
  old_interval = sys.getswitchinterval()
  if realtime:  # the player wakes up on time even while the generator holds the GIL
    sys.setswitchinterval(0.0005)
  if gen.ident is None:
    gen.start()
  try:
    segment = None
    while segment is None and not stop:
      segment = gen.get(0.05)
    if segment is None:
      return summary
    t0 = started = time.perf_counter() + (lead_s if realtime else 0.0)
    start_step = 0
    next_segment = None
    while segment is not None and not stop:
      summary.segments += 1
      summary.decode_s.append(segment.decode_s)
      for ev in segment_events(segment, start_step, end_step, spb, velocity):
        ev_step, _, kind, ch, pitch, vel, program, is_drum = ev
        due = t0 + ev_step * step_s
        if realtime and not _sleep_until(due, stop):
          break
        step = ev_step
        tick = ev_step * ticks_per_step
        if kind == 'bar':
          summary.bars += 1
          summary.steps = ev_step
          if file_sink is not None:
            file_sink.checkpoint(tick)
          if on_bar is not None:
            on_bar(summary.bars)
          if next_segment is None:
            next_segment = gen.get(0)
          continue
        if kind == 'on':
          used.add(ch)
          if not is_drum and programs.get(ch) != program:
            programs[ch] = program
            for sink in live:
              sink.program(ch, program)
            if file_sink is not None:
              file_sink.program(tick, ch, program)
          for sink in live:
            sink.note_on(ch, pitch, vel)
          if file_sink is not None:
            file_sink.note_on(tick, ch, pitch, vel)
          if realtime:  # taken after the sends: what a listener gets
            sent = time.perf_counter()
            summary.late.append(sent - due)
            if len(summary.onsets) < ONSET_LOG:
              summary.onsets.append((ev_step, due, sent))
          sounding[ch, pitch] += 1
          summary.notes += 1
        else:
          if sounding[ch, pitch] <= 0:
            continue
          sounding[ch, pitch] -= 1
          for sink in live:
            sink.note_off(ch, pitch)
          if file_sink is not None:
            file_sink.note_off(tick, ch, pitch)
      if stop:
        break
      start_step += segment.num_steps
      if end_step is not None and start_step >= end_step:
        break
      segment, next_segment = next_segment, None
      if segment is None:  # not generated in time: wait, then move the schedule on
        segment = gen.get(0)
        if segment is None:
          while segment is None and not stop:
            segment = gen.get(0.05)
          if segment is None:
            break
          if realtime:
            late = time.perf_counter() - (t0 + start_step * step_s)
            if late > 0:
              summary.underruns += 1
              summary.underrun_s += late
              t0 += late
  finally:
    gen.stopping.set()
    now_step = step
    if t0 is not None and stop and realtime:
      # the tick of the moment the run stopped (at least that of the last event sent)
      now_step = max(step, (time.perf_counter() - t0) / step_s)
    end_tick = int(round(now_step * ticks_per_step))
    if end_step is not None and not stop:
      end_tick = max(end_tick, end_step * ticks_per_step)
    for (ch, pitch), count in sorted(sounding.items()):
      for _ in range(count):
        for sink in live:
          _quietly(sink.note_off, ch, pitch)
        if file_sink is not None:
          file_sink.note_off(max(end_tick, file_sink.last_tick), ch, pitch)
    for sink in live:
      for ch in sorted(used | set(programs)):
        _quietly(sink.control, ch, 123, 0)  # all notes off
        _quietly(sink.control, ch, 120, 0)  # all sound off
    if file_sink is not None:
      file_sink.close(end_tick)
    if t0 is not None:
      summary.wall_s = max(0.0, time.perf_counter() - started)
    summary.seconds_of_music = end_tick / ticks_per_step * step_s
    summary.signum = stop.signum
    sys.setswitchinterval(old_interval)
    if generator is None:
      gen.stop()
  return summary


def _quietly(fn, *args):
  try:
    fn(*args)
  except Exception:  # pylint: disable=broad-except
    pass


# ----------------------------------------------------------------------------
# The command.

def add_parser(subparsers, parents):
  p = subparsers.add_parser(
      'musicbox', parents=parents, formatter_class=argparse.RawDescriptionHelpFormatter,
      help='an endless latent walk, played bar after bar (file, MIDI port, fluidsynth)',
      description=__doc__.split('\n\n', 1)[1] if '\n\n' in __doc__ else None)
  p.add_argument('--bars', type=int, default=0, help='bars to play; 0 (default) = endless, '
                 'until Ctrl-C')
  p.add_argument('--qpm', type=float, default=None,
                 help='tempo in quarter notes per minute (default: the model\'s default_qpm)')
  p.add_argument('--temperature', type=float, default=0.5,
                 help='sampling temperature (default 0.5; 0 = argmax)')
  p.add_argument('--seed', type=int, default=None,
                 help='random seed of the walk and the noise (default: a new one, printed)')
  p.add_argument('--steps_between', type=int, default=4,
                 help='segments from one random point of the prior to the next (default 4)')
  p.add_argument('--out', default=None, metavar='FILE.mid',
                 help='record to this MIDI file (FILE.mid.part while playing)')
  p.add_argument('--port', default=None, metavar='NAME',
                 help='play to this MIDI output port (needs python-rtmidi; a unique '
                 'part of the name is enough)')
  p.add_argument('--list-ports', dest='list_ports', action='store_true',
                 help='print the MIDI output ports and exit')
  p.add_argument('--audio', action='store_true',
                 help='play through the fluidsynth program with a General MIDI soundfont')
  p.add_argument('--soundfont', default=None, metavar='FILE.sf2',
                 help='soundfont for --audio (default: $MVAE_SOUNDFONT or a usual path)')
  p.add_argument('--audio_driver', default=None, metavar='NAME',
                 help='fluidsynth audio driver for --audio (alsa, pulseaudio, jack, '
                 'coreaudio; default: fluidsynth\'s own)')
  p.add_argument('--ahead', type=int, default=3,
                 help='segments generated ahead of playback (default 3)')
  p.add_argument('--fast', action='store_true',
                 help='with --out only and --bars N: render without waiting in real time '
                 '(no jitter to measure)')
  p.set_defaults(func=run)
  return p


def _check_args(args):
  if args.bars < 0:
    raise EdgeError('--bars must be 0 (endless) or more, not %d' % args.bars)
  if args.qpm is not None and not 0 < args.qpm <= 1000:
    raise EdgeError('--qpm must be in (0, 1000], not %g' % args.qpm)
  if not math.isfinite(args.temperature) or args.temperature < 0:
    raise EdgeError('--temperature must be 0 (argmax) or more, not %g' % args.temperature)
  if args.seed is not None and args.seed < 0:
    raise EdgeError('--seed must be 0 or more, not %d' % args.seed)
  if args.steps_between < 1:
    raise EdgeError('--steps_between must be 1 or more, not %d' % args.steps_between)
  if args.ahead < 1:
    raise EdgeError('--ahead must be 1 or more, not %d' % args.ahead)
  if not (args.out or args.port or args.audio):
    raise EdgeError('say where to play: --out FILE.mid, --port NAME (--list-ports) or '
                    '--audio')
  if args.fast and (args.port or args.audio):
    raise EdgeError('--fast renders a file only; it cannot be used with --port or --audio')
  if args.fast and not args.bars:
    raise EdgeError('--fast needs --bars N (an endless render never ends)')


def run(args):
  if getattr(args, 'list_ports', False):
    names = list_ports()
    print('\n'.join(names) if names else 'no MIDI output ports')
    return 0
  _check_args(args)
  stop = Stop()
  previous = {}
  for sig in (signal.SIGINT, signal.SIGTERM):
    try:
      previous[sig] = signal.signal(sig, stop.handler)
    except ValueError:  # not the main thread (an embedding program): no handlers
      pass
  live, file_sink = [], None
  try:
    if args.port:  # before the model: a missing backend is said at once
      live.append(PortSink.open(args.port))
    from edge_demo import cli
    model = cli.open_model(args)
    rep = dict(model.metadata.get('representation') or {})
    if not rep.get('kind'):
      raise EdgeError('%s: its metadata has no representation: re-export it' % model.path)
    qpm = float(args.qpm if args.qpm is not None else model.metadata.get('default_qpm', 120.0))
    seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy
                                                       % (2 ** 31))
    spq = int(rep.get('steps_per_quarter', 4))
    spb = int(rep.get('steps_per_bar', 4 * spq))
    beats = spb / spq
    time_signature = (int(beats), 4) if beats == int(beats) else (spb, 4 * spq)
    if args.audio:
      live.append(FluidsynthSink(args.soundfont, args.audio_driver))
    if args.out:
      file_sink = MidiFileSink(args.out, qpm, time_signature=time_signature,
                               name='musicbox %s' % model.metadata.get('name', ''))
    window = int(rep.get('window_steps', model.num_steps))
    where = [s.name for s in live] + ([args.out] if args.out else [])
    print('musicbox: %s (%s, %d bars a segment) at %g qpm, temperature %g, seed %d, '
          '%s; to %s; %s' % (
              model.metadata.get('name', os.path.basename(model.path)), rep['kind'],
              window // spb, qpm, args.temperature, seed,
              '%d bars' % args.bars if args.bars else 'endless',
              ', '.join(where), 'Ctrl-C stops' if not args.fast else 'rendering'), flush=True)
    tty = not args.fast and sys.stderr.isatty()

    def on_bar(bars):  # a bar counter on a terminal
      sys.stderr.write('\rbar %d' % bars)
      sys.stderr.flush()

    summary = play(model, rep, bars=args.bars, qpm=qpm, temperature=args.temperature,
                   seed=seed, steps_between=args.steps_between, file_sink=file_sink,
                   live_sinks=live, realtime=not args.fast, stop=stop, ahead=args.ahead,
                   on_bar=on_bar if tty else None)
    file_sink = None  # closed by play
    if tty:
      sys.stderr.write('\n')
    for line in summary.lines():
      print(line)
    if args.out:
      print('wrote %s' % args.out)
    sys.stdout.flush()
    return 128 + stop.signum if stop else 0
  finally:
    if file_sink is not None:  # failed before playing: no empty recording left behind
      try:
        file_sink.file.close()
        os.remove(file_sink.part)
      except OSError:
        pass
    for sink in live:
      _quietly(sink.close)
    for sig, handler in previous.items():
      signal.signal(sig, handler)
