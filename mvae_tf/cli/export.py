"""`mvae export`: the command line of mvae_tf.export.exporter (parsing and messages only)."""

import os
import sys
import warnings

DESCRIPTION = (
    'Exports a model for TF Serving (a SavedModel with decode, sample and encode '
    'signatures) and for devices (TFLite files with decode, encode and step-by-step '
    'graphs, in float32, float16, dynamic-range int8 and full int8), each checked '
    'against the Keras model before it is written. MODEL is anything `mvae generate` '
    'takes: a shipped model name, a model directory (weights.npz + config.json, e.g. from '
    '`mvae import-magenta`), a saved model of an earlier version (model.keras), a training '
    'run directory or a checkpoint.')


def add_export_parser(subparsers):
  """Register `mvae export` (TensorFlow is imported only when it runs)."""
  p = subparsers.add_parser('export', help='SavedModel (TF Serving) and TFLite (devices)',
                            description=DESCRIPTION)
  from mvae_tf import pretrained
  p.add_argument('model', metavar='MODEL',
                 help='a shipped model name (%s) or a model path' % ', '.join(pretrained.PRESETS))
  p.add_argument('--output', required=True, metavar='DIR', help='the export directory')
  p.add_argument('--format', choices=('saved_model', 'tflite', 'all'), default='all')
  p.add_argument('--quantize', choices=('none', 'float16', 'dynamic', 'int8', 'all'),
                 default='none',
                 help='TFLite numeric forms: none (float32), float16, dynamic (int8 weights), '
                      'int8 (full integer, step graphs only) or all (default: none)')
  p.add_argument('--batch_size', type=int, default=1, metavar='N',
                 help='the static batch of the TFLite graphs (default 1: one sample per call)')
  p.add_argument('--config', default=None,
                 help='config of a run directory that has no run.json')
  p.add_argument('--parity_samples', type=int, default=64, metavar='N',
                 help='sequences decoded by Keras and by each exported file to measure '
                      'their agreement (default 64)')
  p.add_argument('--force', action='store_true', help='replace an existing --output')
  p.add_argument('--json', action='store_true', help='print the summary as JSON')
  p.set_defaults(func=run_export)
  return p


def run_export(args):
  from mvae_tf.errors import UserError
  formats = ('saved_model', 'tflite') if args.format == 'all' else (args.format,)
  quantize = ('none', 'float16', 'dynamic', 'int8') if args.quantize == 'all' else (
      args.quantize,)
  if args.quantize == 'int8' and args.format == 'saved_model':
    raise UserError('--quantize int8 applies to TFLite: use --format tflite or all')
  # The converter's Python warnings (deprecated tf.lite.Interpreter in its calibrator) are
  # not the user's business; its errors are reported.
  warnings.filterwarnings('ignore', module='tensorflow')
  warnings.filterwarnings('ignore', category=UserWarning)
  from mvae_tf.store import resolve
  from mvae_tf.training import runs
  from mvae_tf.export import exporter, tflite
  output = args.output
  if os.path.exists(output) and not args.force:
    raise UserError('--output %s exists; pass --force to replace it, or choose another '
                        'directory' % output)
  try:
    summary = exporter.export_model(
        args.model, output, formats, quantize, batch_size=args.batch_size, force=args.force,
        progress=lambda line: print(line, file=sys.stderr, flush=True), config=args.config,
        num_parity=args.parity_samples)
  except resolve.ModelNotFound as e:
    raise UserError('MODEL %s' % e) from None
  except (resolve.ModelError, runs.RunError, exporter.ExportError) as e:
    raise UserError(str(e)) from None
  except tflite.ConversionError as e:
    raise UserError('%s (model %s); nothing was written: try another --quantize, or '
                        'report it with the model\'s config' % (e, args.model)) from None
  if args.json:
    import json
    print(json.dumps(summary, indent=1, sort_keys=True))
  else:
    print(exporter.format_summary(summary))
    print('wrote %s' % os.path.abspath(output))
  return 0
