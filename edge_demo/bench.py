"""`python -m edge_demo bench`: how fast a model runs here, on the edge runtime.

For the given --model (any exported model: 2-bar, 16-bar hierarchical, trio):

  latency        per sample at batch 1 (median, p95 over --num calls after
                 --warmup): the whole-sequence `decode` graph (one call), and
                 the step graphs (`decode_steps`: one call per step, Gumbel-max
                 in numpy); the inputs (z, noise) are drawn before the clock
                 starts
  real-time factor  seconds of music per second of compute: the window
                 (window_steps / steps_per_quarter quarters at --qpm, default
                 the model's default_qpm) over the median latency
  cold start     a fresh `python -m edge_demo sample --num 1 --out DIR` process,
                 from its start to its MIDI file written (the file's mtime;
                 the kernel stamps files with a clock of a few ms) and to its
                 exit; the median of --cold_runs runs
  peak RSS       of that process (its own VmHWM, which it writes when asked by
                 $EDGE_DEMO_PEAK_RSS_FILE; rusage would include the peak of this
                 process, which forked it), and of this one

A small table, or JSON with --json.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from edge_demo.cli import PEAK_RSS_ENV
from edge_demo.errors import EdgeError


def add_parser(subparsers, parents):
  p = subparsers.add_parser(
      'bench', parents=parents, formatter_class=argparse.RawDescriptionHelpFormatter,
      help='latency, real-time factor, cold start and peak RSS of a model',
      description=__doc__.split('\n\n', 1)[1])
  p.add_argument('--num', type=int, default=50, help='timed samples per graph (default 50)')
  p.add_argument('--warmup', type=int, default=5,
                 help='untimed samples before them (default 5)')
  p.add_argument('--cold_runs', type=int, default=3,
                 help='fresh `sample` processes timed for the cold start (default 3; 0 skips)')
  p.add_argument('--qpm', type=float, default=None,
                 help='tempo of the real-time factor (default: the model\'s default_qpm)')
  p.add_argument('--temperature', type=float, default=1.0,
                 help='sampling temperature of the timed samples (default 1.0)')
  p.add_argument('--json', action='store_true', help='print JSON instead of the table')
  p.set_defaults(func=run)
  return p


def stats_ms(seconds):
  """median, p95, mean, min, max (ms) and n of a list of durations in seconds."""
  ms = np.asarray(seconds, np.float64) * 1e3
  return dict(median_ms=float(np.median(ms)), p95_ms=float(np.percentile(ms, 95)),
              mean_ms=float(ms.mean()), min_ms=float(ms.min()), max_ms=float(ms.max()),
              n=int(len(ms)))


def time_graph(fn, model, num, warmup, temperature, seed=0):
  """Durations (s) of `fn(z, temperature, noise)` at batch 1, inputs drawn beforehand."""
  rng = np.random.default_rng(seed)
  shape = (1, model.num_steps, sum(model.depths))
  t = np.float32([temperature])
  out = []
  for i in range(warmup + num):
    z = rng.standard_normal((1, model.z_size)).astype(np.float32)
    noise = rng.random(shape, np.float32)
    start = time.perf_counter()
    fn(z, t, noise)
    elapsed = time.perf_counter() - start
    if i >= warmup:
      out.append(elapsed)
  return out


def _package_parent():
  return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _first_midi(path):
  """(mtime_ns of the earliest .mid under path (a file or a folder), path) or None."""
  found = []
  if os.path.isfile(path):
    found.append(path)
  for root, _, files in os.walk(path):
    found.extend(os.path.join(root, f) for f in files if f.lower().endswith(('.mid', '.midi')))
  if not found:
    return None
  return min((os.stat(f).st_mtime_ns, f) for f in found)


def _maxrss_mb(ru_maxrss):
  return ru_maxrss / (2.0 ** 20 if sys.platform == 'darwin' else 2.0 ** 10)


def cold_start(model_path, num_threads=None, edgetpu=False, runs=3, timeout=120):
  """Times fresh `python -m edge_demo sample --num 1` processes; a dict (see run)."""
  env = dict(os.environ)
  env['PYTHONPATH'] = os.pathsep.join(
      [_package_parent()] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
  first, exits, rss, error = [], [], [], None
  for r in range(runs):
    work = tempfile.mkdtemp(prefix='edge_bench_')
    try:
      out = os.path.join(work, 'out')
      cmd = [sys.executable, '-m', 'edge_demo', 'sample', '--model', os.path.abspath(model_path),
             '--num', '1', '--seed', str(r), '--out', out]
      if num_threads is not None:
        cmd += ['--numThreads', str(num_threads)]
      if edgetpu:
        cmd.append('--edgetpu')
      rss_file = os.path.join(work, 'peak_rss_kb')
      env[PEAK_RSS_ENV] = rss_file
      with open(os.path.join(work, 'log'), 'w+b') as log:
        start_ns = time.time_ns()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env=env)
        deadline = start + timeout
        while True:  # wait4: this child's own rusage (RUSAGE_CHILDREN is a max over all)
          pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
          if pid:
            break
          if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
          time.sleep(0.002)
        exit_s = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        lines = log.read().decode('utf-8', 'replace').strip().splitlines()
      if proc.returncode != 0:
        error = '`python %s` exited with %s%s' % (
            ' '.join(cmd[1:4]), proc.returncode, ': ' + lines[-1] if lines else '')
        break
      midi = _first_midi(out)
      if midi is None:
        error = '`python %s` wrote no MIDI file at %s' % (' '.join(cmd[1:4]), out)
        break
      first.append(max(0.0, min(exit_s, (midi[0] - start_ns) / 1e9)))
      exits.append(exit_s)
      try:  # the child's own VmHWM; wait4's ru_maxrss includes this process's peak
        with open(rss_file) as f:
          rss.append(int(f.read()) / 1024.0)
      except (OSError, ValueError):
        rss.append(_maxrss_mb(usage.ru_maxrss))
    finally:
      shutil.rmtree(work, ignore_errors=True)
  return dict(runs=len(exits),
              first_midi_s=float(np.median(first)) if first else None,
              exit_s=float(np.median(exits)) if exits else None,
              peak_rss_mb=float(max(rss)) if rss else None,
              all_first_midi_s=[float(x) for x in first],
              all_exit_s=[float(x) for x in exits],
              command='python -m edge_demo sample --model M --num 1 --out DIR',
              error=error)


def bench(model, num=50, warmup=5, qpm=None, temperature=1.0, cold_runs=3, num_threads=None,
          edgetpu=False):
  """The figures of `run` as a dict."""
  meta = model.metadata
  rep = meta.get('representation') or {}
  spq = int(rep.get('steps_per_quarter', 4))
  spb = int(rep.get('steps_per_bar', 4 * spq))
  window = int(rep.get('window_steps', model.num_steps))
  qpm = float(qpm if qpm is not None else meta.get('default_qpm', 120.0))
  music_s = window / spq * 60.0 / qpm
  result = dict(
      model=model.path, name=meta.get('name'), kind=rep.get('kind'),
      decoder_type=meta.get('decoder_type'), quantization=meta.get('quantization'),
      runtime=model.runtime, runtime_version=model.runtime_version,
      num_threads=num_threads, edgetpu=bool(edgetpu), batch_size=model.batch_size,
      window_steps=window, bars=window / spb, qpm=qpm, seconds_of_music=music_s,
      temperature=temperature)
  graphs = [('decode', model.decode, 'decode' in model.signatures)]
  steps_ok = ('step' in model.signatures and
              ('conductor' in model.signatures if model.hierarchical else
               'initial_state' in model.signatures))
  graphs.append(('decode_steps', model.decode_steps, steps_ok))
  for name, fn, ok in graphs:
    if not ok:
      result[name] = None
      continue
    s = stats_ms(time_graph(fn, model, num, warmup, temperature))
    s['real_time_factor'] = music_s / (s['median_ms'] / 1e3)
    result[name] = s
  import resource
  result['process_peak_rss_mb'] = _maxrss_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
  result['cold_start'] = (cold_start(model.path, num_threads, edgetpu, cold_runs)
                          if cold_runs > 0 else None)
  return result


def _fmt(x, spec):
  return 'n/a' if x is None else spec % x


def table(r):
  """The figures of `bench` as lines of text."""
  lines = [
      'model    %s (%s, %s, %s): %g bars = %.2f s of music at %g qpm' % (
          r['name'] or os.path.basename(r['model']), r['kind'], r['decoder_type'],
          r['quantization'], r['bars'], r['seconds_of_music'], r['qpm']),
      'runtime  %s %s, %s thread%s%s, batch %d' % (
          r['runtime'], r['runtime_version'],
          r['num_threads'] if r['num_threads'] is not None else 'default',
          '' if r['num_threads'] == 1 else 's', ', Edge TPU' if r['edgetpu'] else '',
          r['batch_size']),
      '',
      '%-22s %10s %10s %16s' % ('per sample (batch 1)', 'median', 'p95', 'real-time x'),
  ]
  for name, label in (('decode', 'decode (one graph)'), ('decode_steps', 'decode_steps')):
    s = r.get(name)
    if s is None:
      lines.append('%-22s %10s' % (label, 'n/a (no such graphs)'))
    else:
      lines.append('%-22s %7.3f ms %7.3f ms %15.0fx' % (
          label, s['median_ms'], s['p95_ms'], s['real_time_factor']))
  c = r.get('cold_start')
  lines.append('')
  if c is None:
    lines.append('cold start: skipped (--cold_runs 0)')
  elif c['error']:
    lines.append('cold start: failed: %s' % c['error'])
  else:
    lines.append('cold start (sample --num 1, median of %d): %s s to the MIDI file, %s s to '
                 'exit; peak RSS %s MB' % (c['runs'], _fmt(c['first_midi_s'], '%.3f'),
                                           _fmt(c['exit_s'], '%.3f'),
                                           _fmt(c['peak_rss_mb'], '%.0f')))
  lines.append('this bench process: peak RSS %.0f MB' % r['process_peak_rss_mb'])
  return lines


def run(args):
  if args.num < 1:
    raise EdgeError('--num must be 1 or more, not %d' % args.num)
  if args.warmup < 0 or args.cold_runs < 0:
    raise EdgeError('--warmup and --cold_runs must be 0 or more')
  if args.qpm is not None and args.qpm <= 0:
    raise EdgeError('--qpm must be positive, not %g' % args.qpm)
  from edge_demo import cli
  model = cli.open_model(args)
  r = bench(model, num=args.num, warmup=args.warmup, qpm=args.qpm,
            temperature=args.temperature, cold_runs=args.cold_runs,
            num_threads=getattr(args, 'numThreads', None),
            edgetpu=getattr(args, 'edgetpu', False))
  if args.json:
    print(json.dumps(r, indent=2))
  else:
    print('\n'.join(table(r)))
  cold = r.get('cold_start')
  if cold and cold['error']:
    if args.json:
      print('cold start failed: %s' % cold['error'], file=sys.stderr)
    return 1
  return 0
