"""Generated steps -> notes -> MIDI files, piano-roll PNGs and WAV audio.

Light on purpose: numpy and pretty_midi only (matplotlib for plots,
fluidsynth for audio), so that `mvae generate` writes music without
importing note_seq or TensorFlow. The notes are those the converters'
`from_tensors` write (tests/test_generate.py checks it): melody class
0 = no event, 1 = note off, k >= 2 = pitch min_pitch + k - 2, a note lasting
until the next onset or note off; drums one step per hit, the first pitch of
each drum class, channel 10; trio bass on program 33.

`data` is the decoding block of a model's config.json
(mvae_tf.pretrained.decoding_info). Note, melody_notes, drum_notes and
notes_from_indices live in edge_demo.music (numpy only), which a device runs
without mvae_tf; they are re-exported here.
"""

import errno
import os
import shutil
import subprocess

from mvae_tf import atomic
# One copy of the token -> note rules, shared with the TF-free edge_demo (numpy only).
from edge_demo.music import (Note, drum_notes, melody_notes,  # noqa: F401
                             notes_from_indices)

DRUM_CLASS_NAMES = ('kick', 'snare', 'closed hi-hat', 'open hi-hat', 'low tom', 'mid tom',
                    'high tom', 'crash', 'ride')

WAV_INSTALL_HINT = (
    '--wav needs the fluidsynth program and a General MIDI soundfont. On Debian/Ubuntu: '
    'sudo apt-get install fluidsynth fluid-soundfont-gm (macOS: brew install fluid-synth, '
    'then set MVAE_SOUNDFONT=/path/to/soundfont.sf2)')


def seconds_per_step(data):
  return 60.0 / data.get('qpm', 120.0) / data.get('steps_per_quarter', 4)


def write_midi(notes, path, data):
  """A MIDI file of `notes` at the model's tempo, written atomically."""
  import pretty_midi
  step = seconds_per_step(data)
  pm = pretty_midi.PrettyMIDI(resolution=220, initial_tempo=data.get('qpm', 120.0))
  pm.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0.0))
  instruments = {}
  for n in notes:
    key = (n.instrument, n.program, n.is_drum)
    if key not in instruments:
      instruments[key] = pretty_midi.Instrument(program=n.program, is_drum=n.is_drum)
    instruments[key].notes.append(pretty_midi.Note(
        velocity=data.get('velocity', 80), pitch=n.pitch, start=n.start * step,
        end=n.end * step))
  pm.instruments.extend(instruments[k] for k in sorted(instruments))
  atomic.write_file(path, pm.write)


def notes_from_sequence(note_sequence, data=None):
  """Notes (in steps) of a NoteSequence, at its first tempo (or the model's)."""
  qpm = note_sequence.tempos[0].qpm if note_sequence.tempos else (data or {}).get('qpm', 120.0)
  spq = (data or {}).get('steps_per_quarter', 4)
  step = 60.0 / qpm / spq
  return [Note(n.pitch, int(round(n.start_time / step)), int(round(n.end_time / step)),
               n.is_drum, n.program, n.instrument) for n in note_sequence.notes]


def _pitch_name(pitch):
  return '%s%d' % (('C', 'C#', 'D', 'D#', 'E', 'F', 'F#', 'G', 'G#', 'A', 'A#', 'B')[pitch % 12],
                   pitch // 12 - 1)


def _grid(ax, num_steps, steps_per_bar, steps_per_quarter):
  for t in range(0, num_steps + 1, steps_per_quarter):
    ax.axvline(t, color='0.55' if t % steps_per_bar else '0.2',
               linewidth=0.4 if t % steps_per_bar else 1.0, zorder=0)
  ax.set_xlim(0, num_steps)
  bars = range(0, num_steps, steps_per_bar)
  ax.set_xticks(list(bars))
  ax.set_xticklabels(['bar %d' % (b // steps_per_bar + 1) for b in bars])


def _piano_roll(ax, notes, num_steps, data, color):
  if notes:
    low, high = min(n.pitch for n in notes) - 2, max(n.pitch for n in notes) + 2
  else:
    low, high = 58, 74
  for n in notes:
    ax.add_patch(_rectangle((n.start, n.pitch - 0.4), n.end - n.start, 0.8, color))
  ax.set_ylim(low - 0.5, high + 0.5)
  ticks = [p for p in range(low, high + 1) if p % 12 in (0, 7)] or [low]
  ax.set_yticks(ticks)
  ax.set_yticklabels([_pitch_name(p) for p in ticks])
  _grid(ax, num_steps, data.get('steps_per_bar', 16), data.get('steps_per_quarter', 4))


def _drum_grid(ax, notes, num_steps, data):
  rows = {p: k for k, p in enumerate(data['drum_pitches'])}
  for n in notes:
    if n.pitch in rows:
      ax.add_patch(_rectangle((n.start + 0.05, rows[n.pitch] - 0.4), 0.9, 0.8, 'tab:red'))
  ax.set_ylim(-0.5, len(rows) - 0.5)
  ax.set_yticks(range(len(rows)))
  ax.set_yticklabels(DRUM_CLASS_NAMES[:len(rows)])
  for k in range(len(rows) + 1):
    ax.axhline(k - 0.5, color='0.85', linewidth=0.4, zorder=0)
  _grid(ax, num_steps, data.get('steps_per_bar', 16), data.get('steps_per_quarter', 4))


def _rectangle(xy, width, height, color):
  from matplotlib.patches import Rectangle
  return Rectangle(xy, width, height, facecolor=color, edgecolor='black', linewidth=0.3)


def plot_notes(notes, path, num_steps, data, title=None):
  """A PNG: piano roll (melody, trio melody and bass) and drum grid (drums), atomically."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  kind = data['kind']
  panels = {'melody': ['melody'], 'drums': ['drums'], 'trio': ['melody', 'bass', 'drums']}[kind]
  width = min(max(8, 3 + num_steps / 6), 40)
  fig = Figure(figsize=(width, 2.6 * len(panels) + 0.4), dpi=100)
  FigureCanvasAgg(fig)
  axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
  for ax, panel in zip(axes, panels):
    if panel == 'drums':
      _drum_grid(ax, [n for n in notes if n.is_drum], num_steps, data)
    else:
      part = [n for n in notes if not n.is_drum and (n.instrument == 1) == (panel == 'bass')]
      _piano_roll(ax, part, num_steps, data, 'tab:blue' if panel == 'melody' else 'tab:green')
    if len(panels) > 1:
      ax.set_ylabel(panel)
  if title:
    axes[0].set_title(title)
  fig.tight_layout()
  atomic.write_file(path, lambda tmp: fig.savefig(tmp, format='png'))


def find_soundfont():
  """A General MIDI soundfont: $MVAE_SOUNDFONT, else a usual install path, else None
  (edge_demo.music.find_soundfont; a missing $MVAE_SOUNDFONT is None here)."""
  from edge_demo import music
  try:
    return music.find_soundfont()
  except FileNotFoundError:
    return None


def wav_renderer():
  """(fluidsynth path, soundfont path), or None when either is missing."""
  fluidsynth, soundfont = shutil.which('fluidsynth'), find_soundfont()
  return (fluidsynth, soundfont) if fluidsynth and soundfont else None


def wav_frames(path):
  """(frames the header declares, frames the file holds, sample rate) of a WAV file."""
  with open(path, 'rb') as f:
    data = f.read(1 << 16)
    size = os.fstat(f.fileno()).st_size
  if len(data) < 12 or data[:4] != b'RIFF' or data[8:12] != b'WAVE':
    raise ValueError('%s is not a WAV file' % path)
  pos, channels, rate, width = 12, 0, 0, 0
  while pos + 8 <= len(data):
    chunk, length = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], 'little')
    if chunk == b'fmt ':
      channels = int.from_bytes(data[pos + 10:pos + 12], 'little')
      rate = int.from_bytes(data[pos + 12:pos + 16], 'little')
      width = int.from_bytes(data[pos + 22:pos + 24], 'little') // 8
    elif chunk == b'data':
      frame = max(1, channels * width)
      return length // frame, (size - pos - 8) // frame, rate
    pos += 8 + length + (length & 1)
  raise ValueError('%s has no data chunk' % path)


def render_wav(midi_path, wav_path, renderer, seconds=None, sample_rate=44100):
  """Render a MIDI file to WAV with fluidsynth, atomically.

  fluidsynth exits 0 when the disk fills up, leaving a short file: the WAV is
  checked (its header against its size, and its length against `seconds`)
  before it takes its final name, and a short one is a WriteError.
  """
  from mvae_tf import atomic
  fluidsynth, soundfont = renderer
  needed = int((seconds or 0) * sample_rate * 4) + 4096  # 16-bit stereo

  def write(tmp):
    result = subprocess.run([fluidsynth, '-ni', '-q', '-T', 'wav', '-F', tmp,
                             '-r', str(sample_rate), soundfont, midi_path],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    output = (result.stderr or result.stdout).strip()
    if result.returncode != 0 or not os.path.getsize(tmp):
      if atomic.is_disk_full(OSError(output)) or (atomic.free_bytes(tmp) or 0) < needed:
        raise OSError(errno.ENOSPC, 'No space left on device', tmp)
      raise RuntimeError('fluidsynth failed on %s: %s' % (midi_path, output[-300:]))
    declared, held, rate = wav_frames(tmp)
    short = held < declared or (seconds and held < 0.99 * seconds * rate)
    if short:
      if (atomic.free_bytes(tmp) or 0) < needed:
        raise OSError(errno.ENOSPC, 'No space left on device', tmp)
      raise RuntimeError('fluidsynth wrote a short WAV for %s (%d of %d frames): %s' % (
          midi_path, held, max(declared, int((seconds or 0) * rate)), output[-300:]))
  atomic.write_file(wav_path, write, needed=needed)
