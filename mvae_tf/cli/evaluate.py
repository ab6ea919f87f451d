"""`mvae evaluate`: the command line of mvae_tf.evaluation.evaluate (parsing and messages only)."""

import json

from mvae_tf.evaluation.evaluate import EmptyDatasetError, evaluate, format_report


def add_evaluate_parser(subparsers):
  """Register `mvae evaluate` on an argparse subparsers object (TensorFlow is not imported)."""
  from mvae_tf import pretrained
  p = subparsers.add_parser(
      'evaluate', help="reconstruction accuracy beside the paper's table",
      description='Encodes every window of --examples_path (z drawn from q(z|x)) and '
                  'reports the accuracy of the teacher-forced and the free-running '
                  '(sampled, argmax) reconstructions over the real steps, per part and '
                  "per bar, beside the paper's numbers; also mean-per-class accuracy, "
                  'the reconstruction loss and the KL in bits.')
  p.add_argument('--config', default=None,
                 help="config name, e.g. hierdec-mel_16bar (default: the model's own)")
  source = p.add_mutually_exclusive_group(required=True)
  source.add_argument('--run_dir', metavar='DIR', help='a training run (its newest checkpoint)')
  source.add_argument('--checkpoint', '--checkpoint_file', dest='checkpoint', metavar='PATH',
                      help='any model: a .../checkpoints/ckpt-N prefix, a saved model '
                           'directory, a packaged model directory or a shipped model name')
  source.add_argument('--preset', metavar='NAME',
                      help='a model that ships with mvae_tf (%s), as `mvae generate --preset`'
                           % ', '.join(pretrained.PRESETS))
  p.add_argument('--examples_path', required=True, metavar='FILE.tfrecord',
                 help='held-out NoteSequences (from `mvae prepare` or `mvae corpus`)')
  p.add_argument('--num_batches', type=int, default=None, metavar='N',
                 help='evaluate the first N batches only (default: all)')
  p.add_argument('--batch_size', type=int, default=None, metavar='N',
                 help="default: the config's batch_size, at most 64")
  p.add_argument('--hparams', default='', metavar='KEY=VALUE,...',
                 help="the run's overrides (default: those in RUN_DIR/run.json)")
  p.add_argument('--seed', type=int, default=0, help='seed of the draws of z')
  p.add_argument('--json', action='store_true', help='print the results as JSON')
  p.add_argument('--per_window', action='store_true',
                 help="with --json: also each window's correct and scored steps, for a "
                      'paired comparison of two models on the same windows '
                      '(benchmarks/paired_gap.py)')
  p.set_defaults(func=run_evaluate)
  return p


def _check_model(model, config):
  input_depth, parts, control_depth, _ = config.depths()
  theirs = (model.input_depth, tuple(model.output_depths), model.control_depth,
            model.hparams.max_seq_len)
  if theirs != (input_depth, tuple(parts), control_depth, config.max_seq_len):
    raise ValueError('the model (config %s) does not read the windows of --config %s: pass '
                     'the --config it was trained with' % (model.config_name, config.name))


def run_evaluate(args):
  from mvae_tf import configs
  from mvae_tf.store import resolve
  from mvae_tf.training import runs
  from mvae_tf.errors import UserError
  if args.num_batches is not None and args.num_batches < 1:
    raise UserError('--num_batches must be positive')
  if args.batch_size is not None and args.batch_size < 1:
    raise UserError('--batch_size must be positive')
  if args.per_window and not args.json:
    raise UserError('--per_window adds to the JSON output: pass --json too')
  if args.config:  # a typo costs nothing: checked before the model or the data is read
    try:
      configs.get_config(args.config).with_hparams(args.hparams)
    except ValueError as e:
      raise UserError(str(e)) from None
  from mvae_tf.data import pipeline
  try:
    pipeline.check_examples_path(args.examples_path, args.config or 'CONFIG')
  except (OSError, ValueError) as e:
    raise UserError(str(e)) from None
  try:
    if args.run_dir:
      model, step = runs.restore_model(run_dir=args.run_dir, config=args.config,
                                       hparams=args.hparams or None)
    else:  # anything the resolver takes; --preset as `mvae generate --preset`
      model, _, step, _ = resolve.load_keras(args.checkpoint or args.preset,
                                             config=args.config, hparams=args.hparams or None)
    # The model's own config unless --config names another (which must read the same
    # windows); its hparams, so that the batch size is the run's.
    config = configs.get_config(args.config or model.config_name).with_hparams(
        args.hparams)
    _check_model(model, config)
  except (runs.RunError, ValueError, OSError) as e:
    raise UserError(str(e)) from None
  batch_size = args.batch_size or min(config.hparams.batch_size, 64)
  import tensorflow as tf
  try:
    dataset = pipeline.get_dataset(config, args.examples_path, batch_size, mode='eval')
    results = evaluate(model, dataset, args.num_batches, args.seed, args.per_window)
  except EmptyDatasetError:
    raise UserError('%s: no sequence yields a %s window; run `mvae inspect %s --config %s` '
                        'to see why' % (args.examples_path, config.name, args.examples_path,
                                        config.name)) from None
  except (ValueError, OSError, tf.errors.OpError) as e:
    raise UserError('evaluating on %s failed: %s' % (
        args.examples_path, str(e).split('\n')[0])) from None
  results.update(step=step, examples_path=args.examples_path,
                 model=args.run_dir or args.checkpoint or args.preset)
  if args.per_window:  # what a paired comparison checks: the same file, the same windows
    from mvae_tf import atomic
    results.update(windows_config=config.name,
                   examples_sha256=atomic.file_sha256(args.examples_path))
  print(json.dumps(results, indent=2) if args.json else format_report(results))
  return 0
