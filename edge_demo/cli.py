"""`python -m edge_demo`: music from an exported MusicVAE (.tflite) with LiteRT, numpy
and mido only.

  python -m edge_demo --version
  python -m edge_demo sample --num 4 --temperature 0.8 --seed 1 --out DIR
  python -m edge_demo interpolate --a A.mid --b B.mid --steps 5 --out DIR [--bar N]
  python -m edge_demo musicbox ...   (edge_demo/musicbox.py)
  python -m edge_demo bench ...      (edge_demo/bench.py)

Every command takes --model M.tflite (default: mvae_tf/pretrained/folk-mel_2bar/
model.tflite when edge_demo sits in the mvae_tf repository), --numThreads N and
--edgetpu. Bad input (a missing or damaged model or MIDI file, an option out of
range, an output directory that cannot be written) is one line on stderr,
`edge_demo COMMAND: error: ...`, and exit status 2.

Random draws (`draw`): numpy's default_rng(seed) gives z ~ N(0, 1) [num, z_size]
first (standard_normal, float64 cast to float32), then the sampling noise,
uniform in (tiny, 1) [num, steps, sum(output depths)] (uniform, cast to float32).
The model draws each token by Gumbel-max from that noise, so the same z and noise
give the same notes as mvae_tf (tests/test_edge_parity.py).
"""

import argparse
import importlib
import importlib.util
import math
import os
import platform
import random
import sys
import time

import numpy as np

from edge_demo import __version__
from edge_demo.errors import EdgeError

PROG = 'edge_demo'
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join(REPO, 'mvae_tf', 'pretrained', 'folk-mel_2bar', 'model.tflite')
DRUMS_MODEL = os.path.join(REPO, 'mvae_tf', 'pretrained', 'drums_2bar', 'model.tflite')
# Commands that live in modules of their own: each defines add_parser(subparsers,
# parents) and run(args).
EXTRA_COMMANDS = ('musicbox', 'bench')
MAX_OUTPUTS = 1000  # a typo (an extra zero or three) should not fill a disk
QUANTIZED = ('dynamic', 'int8')


class _Parser(argparse.ArgumentParser):
  """Usage errors in one line: `edge_demo sample: error: ...`, exit 2."""

  def error(self, message):
    self.exit(2, '%s: error: %s (see %s --help)\n' % (self.prog, message, self.prog))


def _one_line(message):
  return ' '.join(str(message).split())


# --- The model. ---

def common_parser():
  """The options of every command (an argparse parent parser)."""
  p = argparse.ArgumentParser(add_help=False)
  have = os.path.isfile(DEFAULT_MODEL)
  p.add_argument('--model', metavar='M.tflite', default=None,
                 help='an exported model (mvae export MODEL --format tflite)%s' % (
                     ' (default: %s)' % os.path.relpath(DEFAULT_MODEL) if have else
                     '; required'))
  p.add_argument('--numThreads', type=int, default=1, metavar='N',
                 help='CPU threads of the interpreter (default: 1)')
  p.add_argument('--edgetpu', action='store_true',
                 help='run on a Coral Edge TPU (a model compiled by edgetpu_compiler; '
                      'needs libedgetpu)')
  return p


def model_path(args):
  """--model, or the shipped melody model when edge_demo sits in its repository."""
  if args.model:
    return args.model
  if os.path.isfile(DEFAULT_MODEL):
    return DEFAULT_MODEL
  raise EdgeError('--model is required: give an exported .tflite file (made by '
                  '`mvae export MODEL --format tflite`)')


def open_model(args):
  """The TFLiteModel of --model, --numThreads and --edgetpu; every bad input is an
  EdgeError (no file, not a .tflite, no mvae_tf metadata, metadata that does not match
  the graphs, a runtime too old for the file, no libedgetpu)."""
  from edge_demo import metadata as metadata_lib
  from edge_demo import runtime
  path = model_path(args)
  if args.numThreads is None or args.numThreads < 1:
    raise EdgeError('--numThreads must be at least 1, got %s' % args.numThreads)
  if os.path.isdir(path):
    raise EdgeError('--model %s is a directory; give the .tflite file in it' % path)
  if not os.path.exists(path):
    raise EdgeError('--model %s: no such file' % path)
  try:
    meta = metadata_lib.read_tflite_metadata(path)
  except metadata_lib.MetadataError as e:
    if 'unreadable' in str(e):  # the flatbuffer ends early or is garbled
      raise EdgeError('--model %s is damaged or truncated (%d bytes): copy or export it '
                      'again' % (path, os.path.getsize(path))) from None
    raise EdgeError('--model %s' % e if str(e).startswith(path) else
                    '--model %s: %s' % (path, e)) from None
  except OSError as e:
    raise EdgeError('--model %s: cannot read it (%s)' % (path, e.strerror or e)) from None
  missing = [k for k in ('batch_size', 'output_depths', 'max_seq_len', 'z_size',
                         'decoder_type', 'representation', 'signatures') if k not in meta]
  if missing:
    raise EdgeError('--model %s: its mvae_tf metadata lacks %s: re-export it with '
                    '`mvae export`' % (path, ', '.join(missing)))
  try:
    model = runtime.TFLiteModel(path, num_threads=args.numThreads,
                                edgetpu=getattr(args, 'edgetpu', False))
  except runtime.RuntimeMissing as e:
    raise EdgeError(str(e)) from None
  except OSError as e:  # the Edge TPU delegate: its message says how to install it
    raise EdgeError('--edgetpu: %s' % e if getattr(args, 'edgetpu', False) else
                    '--model %s: %s' % (path, e)) from None
  except (RuntimeError, ValueError) as e:  # what the interpreter says about the file
    raise EdgeError(_load_failure(path, meta, e)) from None
  _check_signatures(model, path)
  return model


def _load_failure(path, meta, error):
  from edge_demo import runtime
  first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
  try:
    _, name, version = runtime.find_runtime()
  except ImportError:
    name, version = '?', '?'
  quantization = meta.get('quantization', '?')
  too_new = meta.get('legacy_tflite_runtime_2_14') is False or quantization in QUANTIZED
  if name == 'tflite_runtime' and too_new:
    return ('--model %s is a %s export, whose operator versions are newer than '
            'tflite-runtime %s knows (%s): use the float32 or float16 export '
            '(`mvae export MODEL --quantize float16`), or install ai-edge-litert '
            '(Python 3.10-3.13)' % (path, quantization, version, first))
  return '--model %s: %s %s cannot load it (%s): is the file complete? re-export it' % (
      path, name, version, first)


def _check_signatures(model, path):
  """The graphs the metadata describes are in the file, with the shapes it says."""
  for name, spec in sorted(model.metadata['signatures'].items()):
    if name not in model.signatures:
      raise EdgeError('--model %s: its metadata names a %r graph the file does not hold '
                      '(it has: %s): re-export it' % (path, name, ', '.join(model.signatures)))
    details = model.runner(name).get_input_details()
    for tensor, want in sorted(spec.get('inputs', {}).items()):
      have = details.get(tensor)
      if have is None or [int(s) for s in have['shape']] != list(want['shape']):
        raise EdgeError('--model %s: input %s of graph %s is %s in the file but %s in its '
                        'metadata: re-export it' % (
                            path, tensor, name, None if have is None else
                            [int(s) for s in have['shape']], want['shape']))
  if 'decode' not in model.signatures and 'step' not in model.signatures:
    raise EdgeError('--model %s has neither a decode nor a step graph' % path)
  if 'step' in model.signatures:  # the step graphs edge_demo.runtime drives
    inputs = sorted(model.runner('step').get_input_details())
    expected = {'token', 'control', 'embedding' if model.hierarchical else 'z'}
    odd = [k for k in inputs if k not in expected and not k.startswith('state_')]
    if odd or not any(k.startswith('state_') for k in inputs):
      raise EdgeError('--model %s: its step graph takes %s, not the token, %s and state_0.. '
                      'tensors this edge_demo drives (an older export?): re-export it with '
                      '`mvae export`' % (path, ', '.join(inputs),
                                         'embedding' if model.hierarchical else 'z'))


def describe(model):
  m = model.metadata
  return '%s (%s, %s, %s %s)' % (m.get('name', os.path.basename(model.path)),
                                 m['representation']['kind'], m.get('quantization', '?'),
                                 model.runtime, model.runtime_version)


# --- Drawing and decoding. ---

def draw(seed, num, z_size, num_steps, depth, latents=True):
  """(z [num, z_size] or None, noise [num, num_steps, depth]) float32 from
  default_rng(seed): z first (when `latents`), then the noise (see the module doc)."""
  rng = np.random.default_rng(seed)
  z = rng.standard_normal((num, z_size)).astype(np.float32) if latents else None
  noise = rng.uniform(np.finfo(np.float32).tiny, 1.0, (num, num_steps, depth)).astype(
      np.float32)
  return z, noise


def decode(model, z, temperature, noise):
  """Tokens [N, T, P]: the whole-sequence graph, or the step graphs when the file has
  only those (int8, Edge TPU)."""
  if 'decode' in model.signatures:
    tokens, _ = model.decode(z, temperature, noise)
  else:
    tokens, _ = model.decode_steps(z, temperature, noise)
  return tokens


def interpolate_latents(a, b, num_steps):
  """[num_steps, z] from a to b by slerp, both included (mvae_tf's interpolate_latents)."""
  a, b = np.asarray(a, np.float32).reshape(-1), np.asarray(b, np.float32).reshape(-1)
  from edge_demo.music import slerp
  z = np.asarray([slerp(a, b, t) for t in np.linspace(0.0, 1.0, num_steps)], np.float32)
  z[0], z[-1] = a, b
  return z


def write_notes(model, tokens, path):
  """Writes one decoded sequence's notes to `path` (MIDI); returns the notes."""
  from edge_demo import music
  m = model.metadata
  rep = m['representation']
  notes = music.notes_from_indices(tokens, rep)
  music.write_midi(notes, path, qpm=float(m.get('default_qpm', 120.0)),
                   velocity=int(rep.get('velocity', 80)),
                   steps_per_quarter=int(rep.get('steps_per_quarter', 4)))
  return notes


# --- Options and outputs. ---

def check_temperature(value):
  if not math.isfinite(value) or value < 0:
    raise EdgeError('--temperature must be 0 (argmax) or more, got %g' % value)


def check_seed(seed):
  if seed is not None and seed < 0:
    raise EdgeError('--seed must be 0 or more, got %d' % seed)


def output_dir(path):
  """Creates --out (and its parents); an EdgeError when that or writing in it fails."""
  if os.path.exists(path) and not os.path.isdir(path):
    raise EdgeError('--out %s is a file; give a directory' % path)
  try:
    os.makedirs(path, exist_ok=True)
    probe = os.path.join(path, '.edge_demo_write_test.%d' % os.getpid())
    with open(probe, 'wb'):
      pass
    os.unlink(probe)
  except OSError as e:
    raise EdgeError('--out %s: cannot write there (%s)' % (path, e.strerror or e)) from None
  return path


def _bars(notes, steps_per_bar):
  return max([n.end for n in notes], default=0) / float(steps_per_bar)


def _width(n):
  return max(2, len(str(n)))


# --- sample ---

def add_sample(subparsers, parents):
  p = subparsers.add_parser(
      'sample', parents=parents, help='random music from the prior, as MIDI files',
      description='Decode z drawn from the prior N(0, I) and write one MIDI file per '
                  'sample: OUT/sample_SEED_NN.mid (melody on channel 1, drums on channel '
                  '10). The same --seed gives the same files, and the same notes as mvae '
                  'generate given the same z and noise.')
  p.add_argument('--num', type=int, default=4, help='how many samples (default: 4)')
  p.add_argument('--temperature', type=float, default=0.5,
                 help='sampling temperature; 0 is argmax (default: 0.5)')
  p.add_argument('--seed', type=int, default=None,
                 help='makes the output reproducible (default: a random one, printed)')
  p.add_argument('--out', metavar='DIR', required=True, help='where the MIDI files go')
  p.set_defaults(func=run_sample)
  return p


def run_sample(args):
  if args.num < 1:
    raise EdgeError('--num must be at least 1, got %d' % args.num)
  if args.num > MAX_OUTPUTS:
    raise EdgeError('--num %d: at most %d files at a time' % (args.num, MAX_OUTPUTS))
  check_temperature(args.temperature)
  check_seed(args.seed)
  out = output_dir(args.out)
  model = open_model(args)
  seed = args.seed if args.seed is not None else random.randrange(2 ** 31)
  began = time.perf_counter()
  z, noise = draw(seed, args.num, model.z_size, model.num_steps, sum(model.depths))
  tokens = decode(model, z, args.temperature, noise)
  spent = time.perf_counter() - began
  spb = int(model.metadata['representation'].get('steps_per_bar', 16))
  width = _width(args.num)
  for i in range(args.num):
    path = os.path.join(out, 'sample_%d_%0*d.mid' % (seed, width, i + 1))
    notes = write_notes(model, tokens[i], path)
    print('%s: %d notes, %g bars' % (path, len(notes), model.num_steps / float(spb)))
  print('%s: %d sample%s, seed %d, temperature %g, %d thread%s: decoded in %.3f s' % (
      describe(model), args.num, 's' if args.num != 1 else '', seed, args.temperature,
      args.numThreads, 's' if args.numThreads != 1 else '', spent))
  return 0


# --- interpolate ---

def add_interpolate(subparsers, parents):
  p = subparsers.add_parser(
      'interpolate', parents=parents, help='morph between two MIDI files',
      description='Encode a window of each MIDI file (the first usable one, or the one '
                  'starting at --bar N; 2/4 is read as 4/4), interpolate their codes (mu) '
                  'by slerp and decode each step: OUT/interpolate_NN.mid, from A to B.')
  p.add_argument('--a', metavar='A.mid', required=True, help='the first MIDI file')
  p.add_argument('--b', metavar='B.mid', required=True, help='the last MIDI file')
  p.add_argument('--steps', type=int, default=5,
                 help='files to write, the two end points included (default: 5)')
  p.add_argument('--bar', type=int, default=None, metavar='N',
                 help='use the window starting at bar N (from 1) of both files')
  p.add_argument('--temperature', type=float, default=0.0,
                 help='sampling temperature; 0 is argmax (default: 0)')
  p.add_argument('--seed', type=int, default=1,
                 help='the noise of sampling at a temperature above 0 (default: 1)')
  p.add_argument('--out', metavar='DIR', required=True, help='where the MIDI files go')
  p.set_defaults(func=run_interpolate)
  return p


def read_window(model, flag, path, bar=None):
  """(music.Window, words saying which bars) of a MIDI file for the model's encoder."""
  from edge_demo import music
  try:
    score = music.read_midi(path)
  except EdgeError as e:
    raise EdgeError('%s %s' % (flag, e) if str(e).startswith(path) else
                    '%s %s: %s' % (flag, path, e)) from None
  m = model.metadata
  rep = m['representation']
  window = music.windows(score, rep, bar=bar, input_depth=m.get('input_depth'))
  if window.inputs is None:
    raise EdgeError('%s %s: %s%s' % (flag, path, window.reason, _kind_hint(rep, window)))
  if window.first_bar == 1 and window.last_bar >= window.total_bars:
    how = 'the whole file'
  elif bar is None:
    how = 'the first usable window; --bar N for another'
  else:
    how = '--bar %d' % bar
  words = 'bars %d-%d of %d%s (%s)' % (
      window.first_bar, window.last_bar, window.total_bars,
      ', 2/4 read as 4/4' if window.renotated else '', how)
  return window, words


def _kind_hint(rep, window):
  reason = window.reason or ''
  if rep['kind'] == 'melody' and 'drums only' in reason:
    return ('; this is a melody model: for drums use a drums model (--model %s)' %
            os.path.relpath(DRUMS_MODEL) if os.path.isfile(DRUMS_MODEL) else
            '; this is a melody model: for drums give a drums model')
  if rep['kind'] == 'drums' and 'no drum notes' in reason:
    return '; this is a drums model: give a MIDI file with drums (channel 10)'
  return ''


def run_interpolate(args):
  if args.steps < 2:
    raise EdgeError('--steps must be at least 2 (the two end points), got %d' % args.steps)
  if args.steps > MAX_OUTPUTS:
    raise EdgeError('--steps %d: at most %d files at a time' % (args.steps, MAX_OUTPUTS))
  if args.bar is not None and args.bar < 1:
    raise EdgeError('--bar %d: bars are counted from 1' % args.bar)
  check_temperature(args.temperature)
  check_seed(args.seed)
  for flag, path in (('--a', args.a), ('--b', args.b)):
    if os.path.isdir(path):
      raise EdgeError('%s %s is a directory; give a MIDI file' % (flag, path))
    if not os.path.exists(path):
      raise EdgeError('%s %s: no such file' % (flag, path))
  out = output_dir(args.out)
  model = open_model(args)
  if 'encode' not in model.signatures:
    raise EdgeError('--model %s has no encoder graph: export it with its encode '
                    'signature' % model.path)
  window_a, words_a = read_window(model, '--a', args.a, args.bar)
  window_b, words_b = read_window(model, '--b', args.b, args.bar)
  print('--a %s: %s' % (args.a, words_a))
  print('--b %s: %s' % (args.b, words_b))
  began = time.perf_counter()
  mu, _ = model.encode(np.stack([window_a.inputs, window_b.inputs]),
                       np.array([window_a.length, window_b.length], np.int32))
  z = interpolate_latents(mu[0], mu[1], args.steps)
  _, noise = draw(args.seed, args.steps, model.z_size, model.num_steps, sum(model.depths),
                  latents=False)
  tokens = decode(model, z, args.temperature, noise)
  spent = time.perf_counter() - began
  width = _width(args.steps)
  for i in range(args.steps):
    path = os.path.join(out, 'interpolate_%0*d.mid' % (width, i + 1))
    notes = write_notes(model, tokens[i], path)
    where = ' (A)' if i == 0 else ' (B)' if i == args.steps - 1 else ''
    print('%s%s: %d notes' % (path, where, len(notes)))
  print('%s: %d steps from A to B, temperature %g: encoded and decoded in %.3f s' % (
      describe(model), args.steps, args.temperature, spent))
  return 0


# --- The command line. ---

def _extra_modules():
  """The modules of EXTRA_COMMANDS that exist (one may not be written yet); an error
  inside one that exists is not hidden."""
  modules = []
  for name in EXTRA_COMMANDS:
    full = 'edge_demo.' + name
    if importlib.util.find_spec(full) is None:
      continue
    modules.append(importlib.import_module(full))
  return modules


def build_parser():
  parser = _Parser(prog=PROG, description=__doc__.split('\n\n')[0].replace('\n', ' '),
                   formatter_class=argparse.RawDescriptionHelpFormatter,
                   epilog='`%s COMMAND --help` for each command\'s options.' % PROG)
  parser.add_argument('--version', action='store_true',
                      help="print edge_demo's version, the LiteRT runtime it uses and the "
                           "versions of numpy and mido")
  subparsers = parser.add_subparsers(dest='command', metavar='COMMAND', parser_class=_Parser)
  parents = [common_parser()]
  add_sample(subparsers, parents)
  add_interpolate(subparsers, parents)
  for module in _extra_modules():
    module.add_parser(subparsers, parents)
  return parser


def _package_version(name, module=None):
  try:
    from importlib import metadata
    return metadata.version(name)
  except Exception:  # not installed as a distribution: the module's own attribute
    return str(getattr(module, '__version__', None) or getattr(module, 'version_info', '?'))


def version_lines():
  from edge_demo import runtime
  lines = ['edge_demo %s' % __version__]
  try:
    _, name, version = runtime.find_runtime()
    lines.append('runtime: %s %s' % (name, version))
  except ImportError as e:
    lines.append('runtime: none (%s)' % _one_line(e))
  lines.append('numpy %s' % np.__version__)
  try:
    import mido
    lines.append('mido %s' % _package_version('mido', mido))
  except ImportError:
    lines.append('mido: not installed (pip install mido)')
  lines.append('python %s (%s %s)' % (platform.python_version(), platform.system(),
                                      platform.machine()))
  return lines


def main(argv=None):
  parser = build_parser()
  args = parser.parse_args(argv)
  if args.version:
    print('\n'.join(version_lines()))
    return 0
  if not args.command:
    parser.print_usage(sys.stderr)
    sys.stderr.write('%s: error: give a COMMAND (%s)\n' % (
        PROG, ', '.join(sorted(parser._subparsers._group_actions[0].choices))))
    return 2
  try:
    return args.func(args) or 0
  except EdgeError as e:
    sys.stdout.flush()
    sys.stderr.write('%s %s: error: %s\n' % (PROG, args.command, _one_line(e)))
    return 2
  except KeyboardInterrupt:
    sys.stderr.write('%s %s: interrupted\n' % (PROG, args.command))
    return 130
  finally:
    _report_peak_rss()


PEAK_RSS_ENV = 'EDGE_DEMO_PEAK_RSS_FILE'


def _report_peak_rss():
  """With $EDGE_DEMO_PEAK_RSS_FILE set (by `bench`), write this process's peak RSS there
  in kB: VmHWM, which starts afresh at exec, unlike the rusage a parent reads, which
  carries over the peak of the process that forked it."""
  path = os.environ.get(PEAK_RSS_ENV)
  if not path:
    return
  try:
    with open('/proc/self/status') as f:
      peak = next(line.split()[1] for line in f if line.startswith('VmHWM'))
    with open(path, 'w') as f:
      f.write(peak)
  except (OSError, StopIteration):
    pass
