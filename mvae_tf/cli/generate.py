"""`mvae generate`: MIDI files (and piano rolls, audio) from a trained MusicVAE.

  mvae generate --mode sample --num_outputs 4 --output_dir out --plot
  mvae generate --mode interpolate --input_midi_1 a.mid --input_midi_2 b.mid --output_dir out
  mvae generate --mode similar --input_midi_1 a.mid --similarity 0.8 --output_dir out
  mvae generate --mode attribute --attribute note_density --strength 1.5 --output_dir out
  mvae generate --input_midi_1 tune.mid --write_windows windows   # then --input_bar N

Without --run_dir or --checkpoint_file it uses a model that ships in the
package: folk-mel_2bar (2-bar melodies), or drums_2bar with --preset
drums_2bar, --config cat-drums_2bar_cpu, or an input MIDI that holds drums
only; --preset folk-mel_16bar writes 16-bar melodies (hierarchical decoder),
--preset folk-mel_16bar_flat the same from its flat baseline, --preset
trio_16bar 16-bar trios and --preset drums_16bar 16-bar drum grooves. A shipped model runs its exported .tflite graphs on LiteRT (the
runtime edge_demo uses on a device), and sampling imports neither TensorFlow
nor note_seq, so the command starts in well under a second. Files are named mvae_<mode>_<seed>_<NN>.mid (.png, .wav) and
written atomically; a run without --seed draws one and prints it.

An input MIDI may be a whole tune: 2/4 is read as 4/4 (two 2/4 bars make a
bar, as `mvae corpus` does), and the model reads one window of it (2 bars for
a 2-bar model): the first usable one, or the one starting at bar --input_bar
(counted from 1). A line on stderr says which bars of each input were used;
--write_windows DIR writes every usable window as a MIDI file to pick from.
In attribute mode the first output decodes the input's code (mu) plus the
vector and the others draw it from the input's posterior, so they vary.
"""

import collections
import importlib.util
import math
import os
import random
import sys

import numpy as np

from mvae_tf import atomic
from mvae_tf.errors import WriteError

MODES = ('sample', 'interpolate', 'similar', 'attribute')
# A typo (an extra zero or three) should not fill a disk with MIDI files.
MAX_OUTPUTS = 1000
# Seed stream of the posterior draws of attribute mode (trained_model uses 1 to 3).
_POSTERIOR_STREAM = 4

# An input MIDI: the flag that named it, its path, the NoteSequence (2/4 renotated as
# 4/4) and whether it was renotated.
Input = collections.namedtuple('Input', ['flag', 'path', 'ns', 'renotated'])


def add_generate_parser(subparsers):
  """Register `mvae generate` (nothing heavy is imported until it runs)."""
  from mvae_tf import pretrained
  p = subparsers.add_parser(
      'generate', help='write MIDI from a trained model (one ships in the package)',
      description=' '.join(__doc__.split('\n\n')[2:4]).replace('\n', ' '))
  model = p.add_mutually_exclusive_group()
  model.add_argument('--run_dir', metavar='DIR', help='a training run (its newest checkpoint)')
  model.add_argument('--checkpoint_file', '--checkpoint', dest='checkpoint_file', metavar='PATH',
                     help='any model: a .../checkpoints/ckpt-N prefix, a model directory '
                          '(weights.npz + config.json), a saved model of an earlier '
                          'version (model.keras) or a shipped model name')
  model.add_argument('--preset', choices=sorted(pretrained.PRESETS),
                     help='a model shipped in the package (default: %s)' %
                          pretrained.DEFAULT_PRESET)
  p.add_argument('--config', default=None,
                 help='config of the model; picks the shipped model trained with it (%s)' %
                      ', '.join('%s: %s' % (v, k) for k, v in pretrained.PRESETS.items()))
  p.add_argument('--mode', choices=MODES, default='sample',
                 help='sample: from the prior; interpolate: from --input_midi_1 to '
                      '--input_midi_2; similar: variations of --input_midi_1; attribute: '
                      'add an attribute vector (to --input_midi_1, or to samples)')
  p.add_argument('--input_midi_1', metavar='FILE',
                 help="a MIDI file of any length (2/4 is read as 4/4, as mvae corpus does); "
                      "the model reads one window of it, of its length (2 bars for 2-bar "
                      "models): the first usable one, or see --input_bar")
  p.add_argument('--input_midi_2', metavar='FILE', help='the second input (interpolate mode)')
  p.add_argument('--input_bar', type=int, default=None, metavar='N',
                 help='use the window starting at bar N of each input (bars counted from '
                      '1, as musicians count; a 2/4 tune in 4/4 bars of two 2/4 bars). '
                      'Default: the first usable window. A line on stderr says which bars '
                      'were used')
  p.add_argument('--write_windows', metavar='DIR', default=None,
                 help='write every usable window of each input to DIR as MIDI (the notes '
                      'the model reads), named INPUT_bars_NN-NN.mid, then exit: listen, '
                      'then pass --input_bar NN')
  p.add_argument('--num_outputs', type=int, default=5, metavar='N')
  p.add_argument('--max_outputs', type=int, default=MAX_OUTPUTS, metavar='N',
                 help='refuse more than N outputs (default %d; raise it to go past)'
                      % MAX_OUTPUTS)
  p.add_argument('--temperature', type=float, default=0.5,
                 help='sampling temperature; 0 is argmax (default: 0.5)')
  p.add_argument('--seed', type=int, default=None, help='makes the output reproducible')
  p.add_argument('--output_dir', metavar='DIR',
                 help='where the outputs go (required, except with --write_windows)')
  p.add_argument('--length', type=int, default=None, metavar='STEPS',
                 help="steps to decode, 16 a bar (default: the model's window, 32 for 2 bars)")
  p.add_argument('--method', choices=('slerp', 'lerp'), default='slerp',
                 help='interpolation of the latent codes (interpolate mode)')
  p.add_argument('--similarity', type=float, default=0.8,
                 help='similar mode: 1 keeps the input, 0 ignores it (default: 0.8)')
  p.add_argument('--attribute', default=None,
                 help='attribute mode: note_density, pitch_range, syncopation, '
                      "average_interval; with --input_midi_1 the first output is the input's "
                      "code plus the vector, the others vary it (drawn from the input's "
                      'posterior, reproducible with --seed)')
  p.add_argument('--strength', type=float, default=1.0,
                 help='attribute mode: multiple of the vector to add (negative lowers it)')
  p.add_argument('--attribute_vectors', metavar='FILE.npz', default=None,
                 help='attribute vectors (default: those shipped with the model)')
  p.add_argument('--plot', action='store_true',
                 help='also write a piano-roll PNG of each output (drums: a drum grid)')
  p.add_argument('--wav', action='store_true',
                 help='also render each output to WAV (needs fluidsynth and a soundfont)')
  p.add_argument('--backend', choices=('auto', 'litert', 'tf'), default='auto',
                 help='litert (the exported graphs; default for shipped and packaged models '
                      'that carry model.tflite) or tf (the Keras model)')
  p.set_defaults(func=run_generate)
  return p


def _error(message):
  from mvae_tf.errors import UserError
  return UserError(message)


def _check_args(args):
  if args.write_windows is not None:
    if not (args.input_midi_1 or args.input_midi_2):
      raise _error('--write_windows needs an input MIDI (--input_midi_1)')
    if os.path.exists(args.write_windows) and not os.path.isdir(args.write_windows):
      raise _error('--write_windows %s is a file' % args.write_windows)
    return  # it writes the inputs' windows and exits: the rest does not apply
  if not args.output_dir:
    raise _error('--output_dir DIR is required (where the outputs go)')
  if args.num_outputs < 1:
    raise _error('--num_outputs must be at least 1')
  if args.num_outputs > args.max_outputs:
    raise _error('--num_outputs %d is more than --max_outputs %d; raise --max_outputs to go '
                 'past it' % (args.num_outputs, args.max_outputs))
  if not math.isfinite(args.temperature) or args.temperature < 0:
    raise _error('--temperature %s: give a finite number >= 0 (0 is argmax; useful range '
                 '0.1 to 1.5)' % args.temperature)
  if args.length is not None and args.length < 1:
    raise _error('--length must be at least 1 step')
  if args.seed is not None and args.seed < 0:
    raise _error('--seed must be >= 0')
  if args.mode == 'interpolate':
    if not (args.input_midi_1 and args.input_midi_2):
      raise _error('--mode interpolate needs two inputs: --input_midi_1 and --input_midi_2')
    if args.num_outputs < 2:
      raise _error('--mode interpolate needs --num_outputs of at least 2 (the end points)')
  if args.mode == 'similar':
    if not args.input_midi_1:
      raise _error('--mode similar needs --input_midi_1')
    if not 0 <= args.similarity <= 1:
      raise _error('--similarity must be between 0 and 1')
  if args.mode == 'attribute' and not args.attribute:
    raise _error('--mode attribute needs --attribute NAME (note_density, pitch_range, '
                 'syncopation, average_interval) and --strength')
  if args.mode == 'sample' and (args.input_midi_1 or args.input_midi_2):
    raise _error('--mode sample takes no input MIDI; use --mode similar, interpolate or '
                 'attribute')
  if args.input_bar is not None:
    if args.input_bar < 1:
      raise _error('--input_bar %d: bars are counted from 1' % args.input_bar)
    if not (args.input_midi_1 or args.input_midi_2):
      raise _error('--input_bar needs an input MIDI (--input_midi_1)')
  if os.path.exists(args.output_dir) and not os.path.isdir(args.output_dir):
    raise _error('--output_dir %s is a file' % args.output_dir)


def _read_input(path, flag):
  """An Input; 2/4 is renotated as 4/4, as `mvae corpus` does."""
  if os.path.isdir(path):
    raise _error('%s %s is a directory; give a MIDI file' % (flag, path))
  if not os.path.isfile(path):
    raise _error('%s %s: no such file' % (flag, path))
  from mvae_tf.data import sources
  try:
    sequences = sources.read_file(
        path, limit_hint='cut a shorter excerpt: the model reads one window of it')
  except sources.SkippedFile as e:
    raise _error('%s %s: %s' % (flag, path, e.detail)) from None
  if len(sequences) > 1:
    raise _error('%s %s holds %d tunes; give a file with one' % (flag, path, len(sequences)))
  from mvae_tf.data.corpus import build as corpus_build
  ns = sequences[0]
  renotated = corpus_build.merge_two_four(ns)
  return Input(flag, path, ns, renotated)


def _drums_only(ns):
  return bool(ns.notes) and all(n.is_drum for n in ns.notes)


def _load_model(args, inputs):
  from mvae_tf import pretrained
  from mvae_tf.generation.trained_model import TrainedModel
  path = args.checkpoint_file or args.run_dir
  flag = '--checkpoint_file' if args.checkpoint_file else '--run_dir'
  if path:  # anything mvae_tf.store.resolve takes, shipped model names included
    from mvae_tf.store import resolve
    try:
      model = TrainedModel.load(path, backend=args.backend, config=args.config)
    except resolve.ModelNotFound as e:  # its message starts with the path
      raise _error('%s %s' % (flag, e)) from None
    except (OSError, ValueError) as e:  # runs.RunError is a ValueError
      message = str(e)  # most name the file already
      raise _error('%s %s' % (flag, message) if message.startswith(path) else
                   '%s %s: %s' % (flag, path, message)) from None
  else:
    name = args.preset
    if name is None and args.config:
      name = pretrained.preset_for_config(args.config)
      if name is None:
        _check_config_name(args.config)
        raise _error('no model of config %s ships with mvae_tf (shipped: %s); give your own '
                     'with --run_dir or --checkpoint_file' % (args.config, ', '.join(
                         '%s = %s' % kv for kv in pretrained.PRESETS.items())))
    if name is None:
      drums = inputs and all(_drums_only(i.ns) for i in inputs)
      name = pretrained.DRUMS_PRESET if drums else pretrained.DEFAULT_PRESET
    try:
      model = TrainedModel.load(name, backend=args.backend)
    except (OSError, ValueError) as e:
      raise _error(str(e)) from None
  if args.config and model.config_name != args.config:
    raise _error('%s is a model of config %s, not --config %s' % (
        model.describe(), model.config_name, args.config))
  if model.info.get('control_depth'):
    raise _error('%s is conditioned on chords, which mvae generate does not take yet: use '
                 'TrainedModel.decode(z, controls=...) from Python' % model.describe())
  return model


def _check_config_name(name):
  from mvae_tf import configs
  try:
    configs.get_config(name)
  except ValueError as e:
    raise _error(str(e)) from None


def _check_kind(model, inputs):
  """Wrong kind of model for an input: say which model to use instead."""
  from mvae_tf import pretrained
  for flag, _, ns, _ in inputs:
    path = ns.filename or flag
    if model.kind == 'drums' and not any(n.is_drum for n in ns.notes):
      raise _error('%s %s has no drum notes, and %s is a drums model: give a drum MIDI, or '
                   'use a melody model (--preset %s)' % (
                       flag, path, model.describe(), pretrained.DEFAULT_PRESET))
    if model.kind == 'melody' and _drums_only(ns):
      raise _error('%s %s holds drums only, and %s is a melody model: use a drums model '
                   '(--preset %s)' % (flag, path, model.describe(), pretrained.DRUMS_PRESET))


def _window(model, item, bar):
  """The BarWindow of an input to encode, or a UserError saying why there is none."""
  from mvae_tf.generation.trained_model import BarError, EncodeError, format_bars
  path = item.ns.filename or item.path
  try:
    return model.choose_window(item.ns, bar)
  except BarError as e:
    size = model.converter.slice_bars or e.total_bars
    if e.reasons:
      why = 'bars %d-%d yield no %d-bar window (%s)' % (bar, bar + size - 1, size,
                                                        '; '.join(e.reasons))
    elif bar + size - 1 > e.total_bars:
      why = 'it has %d bars%s, so no %d-bar window starts at bar %d' % (
          e.total_bars, ' of 4/4' if item.renotated else '', size, bar)
    else:
      why = 'bars %d-%d cross a change of tempo or metre' % (bar, bar + size - 1)
    raise _error('--input_bar %d: %s %s: %s; usable windows start at bars %s' % (
        bar, item.flag, path, why, format_bars(e.usable_bars))) from None
  except EncodeError as e:
    if e.windows:
      raise _error('%s %s yields %d windows of %d steps for %s, none of them at a bar line; '
                   'give a MIDI of exactly one window (%d bars)' % (
                       item.flag, path, e.windows, model.max_seq_len, model.config_name,
                       model.max_seq_len // model.data.get('steps_per_bar', 16))) from None
    raise _error('%s %s yields no window for %s: %s (see `mvae inspect %s --config %s`)' % (
        item.flag, path, model.config_name, '; '.join(e.reasons), path,
        model.config_name)) from None


def _renotated_words(item):
  return ' (2/4, read as 4/4: two 2/4 bars make a bar)' if item.renotated else ''


def _encode(model, item, bar):
  """(mu, sigma) [z_size] of an input's window; says on stderr which bars it is."""
  window = _window(model, item, bar)
  _, mu, sigma = model.encode([window.sequence], all_windows=True)
  notes = []
  if window.first_bar == 1 and window.last_bar >= window.total_bars:
    notes.append('the whole file')
  elif bar is None:
    notes.append('first usable window; --input_bar N for another')
  else:
    notes.append('--input_bar %d' % bar)
  if window.windows > 1:
    notes.append('the first of %d melodies or tracks there' % window.windows)
  print('%s %s%s: bars %d-%d of %d (%s)' % (
      item.flag, item.path, _renotated_words(item), window.first_bar, window.last_bar,
      window.total_bars, '; '.join(notes)), file=sys.stderr)
  return mu[0], sigma[0]


def _write_windows(model, inputs, directory):
  """--write_windows: every usable window of each input as MIDI (what the model reads)."""
  from mvae_tf.generation import render
  from mvae_tf.generation.trained_model import format_bars
  atomic.make_dirs(directory, '--write_windows %s' % directory)
  stems = [os.path.splitext(os.path.basename(i.path))[0] for i in inputs]
  for n, (item, stem) in enumerate(zip(inputs, stems)):
    if stems.count(stem) > 1:
      stem = '%s_input%d' % (stem, n + 1)
    usable = [w for w in model.bar_windows(item.ns) if w.usable]
    if not usable:  # says why there is none (or gives the one not on a bar line)
      usable = [_window(model, item, None)]
    width = max(2, len(str(usable[-1].total_bars)))
    names = []
    for window in usable:
      _, outputs, _, lengths, _ = model.windows([window.sequence], all_windows=True)
      parts = np.split(outputs[0][:lengths[0]], np.cumsum(model.output_depths)[:-1], -1)
      indices = np.stack([p.argmax(-1) for p in parts], -1)
      name = '%s_bars_%0*d-%0*d.mid' % (stem, width, window.first_bar, width, window.last_bar)
      render.write_midi(render.notes_from_indices(indices, model.data),
                        os.path.join(directory, name), model.data)
      names.append(name)
    print('%s %s%s: wrote its %d usable window%s (starting at bars %s of %d) to %s' % (
        item.flag, item.path, _renotated_words(item), len(names),
        '' if len(names) == 1 else 's', format_bars([w.first_bar for w in usable]),
        usable[0].total_bars, directory))
    print('  ' + '  '.join(names))
  print('pick one and pass --input_bar N (its first bar) to use it')
  return 0


def _attribute_vector(model, args):
  from mvae_tf.generation import attributes
  if not args.attribute_vectors:
    if args.attribute not in attributes.ATTRIBUTES:
      raise _error('unknown attribute %r; known: %s' % (
          args.attribute, ', '.join(attributes.ATTRIBUTES)))
    if args.attribute not in attributes.available(model.kind):
      raise _error('%s does not apply to %s, a %s model; use %s' % (
          args.attribute, model.name, model.kind,
          ' or '.join(attributes.available(model.kind))))
  if args.attribute_vectors:
    if not os.path.isfile(args.attribute_vectors):
      raise _error('--attribute_vectors %s: no such file' % args.attribute_vectors)
    try:
      vectors, _ = attributes.load_attribute_vectors(args.attribute_vectors)
    except (OSError, ValueError) as e:
      raise _error('--attribute_vectors %s: unreadable (%s)' % (args.attribute_vectors, e))
    source = args.attribute_vectors
  else:
    vectors, source = model.attribute_vectors, 'the model'
  if args.attribute not in vectors:
    hint = '' if args.attribute_vectors else (
        '; compute them with mvae_tf.generation.attributes.compute_attribute_vectors and pass '
        '--attribute_vectors FILE')
    raise _error('no vector for attribute %r in %s (has: %s)%s' % (
        args.attribute, source, ', '.join(sorted(vectors)) or 'none', hint))
  if vectors[args.attribute].shape != (model.z_size,):
    raise _error('the %s vector has %d dimensions, the model\'s z has %d: vectors of another '
                 'model' % (args.attribute, vectors[args.attribute].size, model.z_size))
  return vectors[args.attribute]


def _posterior_latents(mu, sigma, n, seed):
  """[n, z]: mu first, then n - 1 draws of the posterior N(mu, sigma^2) (seeded; draw i
  does not depend on n)."""
  z = np.repeat(np.asarray(mu, np.float32)[None], n, 0)
  noise = np.random.default_rng([int(seed), _POSTERIOR_STREAM]).standard_normal(
      (n - 1, z.shape[1]))
  z[1:] += (sigma * noise).astype(np.float32)
  return z


def _latents(model, args, inputs, seed):
  """z [num_outputs, z_size] for the mode, and the z before an attribute (or None)."""
  from mvae_tf.generation import trained_model as tm
  n = args.num_outputs
  codes = [_encode(model, item, args.input_bar) for item in inputs]
  mus = [mu for mu, _ in codes]
  if args.mode == 'sample':
    return model.random_latents(n, seed), None
  if args.mode == 'interpolate':
    return tm.interpolate_latents(mus[0], mus[1], n, args.method), None
  if args.mode == 'similar':
    return tm.similar_latents(mus[0], n, args.similarity, seed), None
  vector = _attribute_vector(model, args)
  base = _posterior_latents(*codes[0], n, seed) if codes else model.random_latents(n, seed)
  return base + np.float32(args.strength) * vector, base


def run_generate(args):
  _check_args(args)
  from mvae_tf.generation import render
  renderer = None
  if args.wav:
    renderer = render.wav_renderer()
    if renderer is None:
      raise _error(render.WAV_INSTALL_HINT)
  if args.plot and importlib.util.find_spec('matplotlib') is None:
    raise _error('--plot needs matplotlib: pip install matplotlib (or pip install '
                 'mvae_tf[plot])')
  inputs = [_read_input(path, flag) for flag, path in
            (('--input_midi_1', args.input_midi_1), ('--input_midi_2', args.input_midi_2))
            if path]
  model = _load_model(args, inputs)
  _check_kind(model, inputs)
  if args.write_windows is not None:
    return _write_windows(model, inputs, args.write_windows)
  seed = args.seed if args.seed is not None else random.randrange(2**31)
  length = args.length or model.max_seq_len
  if length > model.max_seq_len and model.info.get('decoder_type') == 'flat':
    raise _error(
        '--length %d: %s was trained on windows of %d steps, and a flat model decodes '
        'longer sequences poorly (mostly one repeated note); give at most %d, or use a '
        'hierarchical 16-bar model' % (length, model.describe(), model.max_seq_len,
                                       model.max_seq_len))
  atomic.check_writable(args.output_dir, '--output_dir %s' % args.output_dir)
  z, base = _latents(model, args, inputs, seed)
  try:
    indices, _ = model.decode_indices(z, length, args.temperature, seed)
  except ValueError as e:
    raise _error(str(e)) from None

  width = max(2, len(str(len(indices))))
  written = []
  try:
    _write_outputs(args, model, indices, length, seed, width, renderer, written)
  except WriteError as e:
    raise _error('%s; %d of %d outputs were written before it, each whole%s' % (
        e, len(written), len(indices), (' (%s to %s)' % (
            os.path.basename(written[0][0]), os.path.basename(written[-1][0])))
        if written else '')) from None

  if model.info.get('status') == 'untrained placeholder':
    print('warning: %s is an untrained placeholder (random weights): its output is random '
          'notes' % model.info.get('name', model.config_name))
  print('%s, %s mode, seed %d, temperature %g: wrote %d output%s to %s' % (
      model.describe(), args.mode, seed, args.temperature, len(written),
      '' if len(written) == 1 else 's', args.output_dir))
  for files in written:
    print('  ' + '  '.join(os.path.basename(f) for f in files))
  if base is not None:
    _report_attribute(model, args, base, indices, length, seed)
  return 0


def _write_outputs(args, model, indices, length, seed, width, renderer, written):
  """Writes each output's files, appending them to `written` as they are done."""
  from mvae_tf.generation import render
  for i, idx in enumerate(indices):
    stem = os.path.join(args.output_dir, 'mvae_%s_%d_%0*d' % (args.mode, seed, width, i + 1))
    notes = render.notes_from_indices(idx, model.data)
    render.write_midi(notes, stem + '.mid', model.data)
    files = [stem + '.mid']
    if args.plot:
      render.plot_notes(notes, stem + '.png', length, model.data,
                        title='%s  (%s)' % (os.path.basename(stem), model.name))
      files.append(stem + '.png')
    if renderer:
      seconds = max([n.end for n in notes], default=0) * render.seconds_per_step(model.data)
      render.render_wav(stem + '.mid', stem + '.wav', renderer, seconds=seconds)
      files.append(stem + '.wav')
    written.append(files)


def _report_attribute(model, args, base, indices, length, seed):
  """Mean attribute of the outputs beside that of the unchanged latents."""
  from mvae_tf.generation import attributes
  before, _ = model.decode_indices(base, length, args.temperature, seed)
  mean = [np.mean([attributes.of_indices(args.attribute, x, model.data) for x in batch])
          for batch in (before, indices)]
  print('%s: %.3f without the vector, %.3f with strength %g (mean over %d outputs)' % (
      args.attribute, mean[0], mean[1], args.strength, len(indices)))
