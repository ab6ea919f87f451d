"""`mvae prepare`, `mvae corpus` and `mvae inspect`: the data commands (no TensorFlow)."""

import argparse
import json
import os

from mvae_tf.errors import UserError


def add_prepare_parser(sub):
  p = sub.add_parser(
      'prepare', help='read MIDI/MusicXML/ABC files into a TFRecord of NoteSequences',
      description='Reads MIDI (and MusicXML, ABC) files and folders, recursively, into '
                  'a TFRecord of NoteSequences. Unreadable files are skipped and '
                  'counted by reason.')
  p.add_argument('--input', nargs='+', required=True, metavar='PATH',
                 help='files or folders (searched recursively)')
  p.add_argument('--output', required=True, metavar='FILE.tfrecord')
  p.add_argument('--workers', type=int, default=None, help='processes (default: all cores)')
  p.add_argument('--dedupe', action='store_true',
                 help='drop sequences whose notes repeat an earlier one')
  p.add_argument('--max_file_mb', type=float, default=16.0)
  p.add_argument('--max_notes', type=int, default=500_000)
  p.add_argument('--max_seconds', type=float, default=4 * 3600.0)
  p.add_argument('--timeout_per_file', type=float, default=60.0, metavar='SECONDS',
                 help='skip a file that takes longer to parse (default 60; 0: no limit)')
  p.add_argument('--json', action='store_true', help='print the summary as JSON')
  p.set_defaults(func=_run_prepare)


def _run_prepare(args):
  from mvae_tf.data import prepare
  limits = dict(max_bytes=int(args.max_file_mb * 1024 * 1024), max_notes=args.max_notes,
                max_seconds=args.max_seconds)
  if not args.output.endswith(('.tfrecord', '.tfrecords')):
    raise UserError('--output %s: give a file name ending in .tfrecord' % args.output)
  try:
    summary = prepare.prepare(args.input, args.output, workers=args.workers, limits=limits,
                              progress=not args.json, dedupe=args.dedupe,
                              timeout_per_file=args.timeout_per_file)
  except prepare.InputError as e:
    raise UserError(str(e)) from None
  if args.json:
    print(json.dumps(summary.as_dict(), indent=2))
  else:
    print(summary.format())
  if not summary.written:
    raise UserError('no file could be read, so %s was not written%s' % (
        args.output, ' (left as it was)' if os.path.exists(args.output) else ''))
  return 0


def add_corpus_parser(sub):
  from mvae_tf.data.corpus import build as corpus_build
  p = sub.add_parser(
      'corpus', help='build a real training corpus from installed packages',
      description='Builds a corpus of real music from Debian and PyPI packages, '
                  'deduplicated and split into train/eval by tune or song. '
                  'Rebuilding is cached.\n\n' + '\n'.join(
                      '  %s: %s' % kv for kv in corpus_build.CORPORA.items()),
      formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('name', choices=sorted(corpus_build.CORPORA))
  p.add_argument('--output', default=None, metavar='DIR', help='default: data/NAME')
  p.add_argument('--workers', type=int, default=None)
  p.add_argument('--cache_dir', default=None, metavar='DIR',
                 help='rendered MIDI and downloaded packages (default: .cache beside --output)')
  p.add_argument('--force', action='store_true', help='rebuild even if cached')
  p.add_argument('--json', action='store_true', help='print the summary as JSON')
  p.set_defaults(func=_run_corpus)


def _run_corpus(args):
  from mvae_tf.data.corpus import build as corpus_build
  from mvae_tf.data.corpus.common import CorpusError
  output = args.output or os.path.join('data', args.name)
  try:
    summary = corpus_build.build_corpus(args.name, output, workers=args.workers,
                                        force=args.force,
                                        progress=not args.json, cache_dir=args.cache_dir)
  except CorpusError as e:
    raise UserError(str(e)) from None
  if args.json:
    print(json.dumps(summary, indent=2))
  else:
    print(corpus_build.format_summary(summary))
  return 0


def add_inspect_parser(sub):
  p = sub.add_parser(
      'inspect', help='how many windows each sequence yields for a config, and why not',
      description='Converts every sequence as training would (eval mode) and reports '
                  'how many windows each yields; for sequences that yield none, why.')
  p.add_argument('path', metavar='FILE',
                 help='a TFRecord from `mvae prepare`, or a MIDI/MusicXML/ABC file')
  p.add_argument('--config', required=True, help='config name, e.g. cat-mel_2bar_small')
  p.add_argument('--all', action='store_true', help='list sequences with windows too')
  p.add_argument('--workers', type=int, default=None)
  p.add_argument('--json', action='store_true')
  p.set_defaults(func=_run_inspect)


def _run_inspect(args):
  from mvae_tf import configs
  from mvae_tf.data import sources, tfrecord, windows
  try:
    configs.get_config(args.config)
  except ValueError as e:
    raise UserError(str(e)) from None
  if not os.path.isfile(args.path):
    raise UserError('%s: no such file' % args.path)
  try:
    sequences = windows.load_sequences(args.path)
  except tfrecord.CorruptRecordError as e:
    raise UserError('%s; rebuild it with `mvae prepare`' % e) from None
  except sources.SkippedFile as e:
    raise UserError(str(e)) from None
  reports = windows.inspect_sequences(sequences, args.config, workers=args.workers)
  summary = windows.summarize(reports, args.config)
  if args.json:
    print(json.dumps({'summary': summary, 'sequences': reports}, indent=2))
  else:
    print(windows.format_report(reports, summary, show_all=args.all))
  return 0
