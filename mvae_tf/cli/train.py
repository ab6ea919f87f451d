"""`mvae train`: the command line of mvae_tf.training.train (parsing and messages only)."""

from mvae_tf.training import runs
from mvae_tf.errors import UserError
from mvae_tf.training.train import TrainingError, train

# The input pipelines of the trainings this process ran, kept alive (see train()'s
# keep_alive): the console entry point (mvae_tf.cli.main.entry) then exits without
# destroying them, which could take a minute after the checkpoint was written.
HELD_PIPELINES = []


def add_train_parser(subparsers):
  p = subparsers.add_parser(
      'train', help='train a model (resumes when RUN_DIR has checkpoints)',
      description='Trains --config on NoteSequence TFRecords (from `mvae prepare` or `mvae '
                  'corpus`) up to --num_steps, with tf.distribute over the local devices '
                  '(or the workers of TF_CONFIG). Re-running the same command resumes.')
  p.add_argument('--config', required=True, help='config name, e.g. cat-mel_2bar_small')
  p.add_argument('--run_dir', required=True, metavar='DIR',
                 help='checkpoints, run.json and TensorBoard summaries go here')
  p.add_argument('--examples_path', required=True, metavar='FILE.tfrecord', nargs='+')
  p.add_argument('--eval_examples_path', metavar='FILE.tfrecord', default=None,
                 help='evaluated at each checkpoint (TensorBoard: RUN_DIR/eval)')
  p.add_argument('--num_steps', type=int, required=True, help='train up to this global step')
  p.add_argument('--hparams', default='', metavar='KEY=VALUE,...',
                 help='overrides with the reference names, e.g. batch_size=64,z_size=128')
  p.add_argument('--checkpoint_every', type=int, default=500, metavar='STEPS')
  p.add_argument('--keep_checkpoints', type=int, default=5, metavar='N')
  p.add_argument('--summary_every', type=int, default=50, metavar='STEPS')
  p.add_argument('--eval_batches', type=int, default=8, metavar='N')
  p.add_argument('--cpu_replicas', type=int, default=None, metavar='N',
                 help='split the CPU into N replicas (testing multi-replica training)')
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--max_bad_steps', type=int, default=20, metavar='N',
                 help='stop after N steps in a row with a non-finite loss or huge gradient')
  p.add_argument('--init_from', metavar='MODEL', default=None,
                 help='start a new run from the weights of MODEL (a shipped model name, a '
                      'model directory, a run or a checkpoint of the same config and weight '
                      'shapes) at its training step; Adam starts afresh. Not loaded when '
                      'RUN_DIR has checkpoints (it resumes)')
  p.add_argument('--no_progress', action='store_true', help='no progress bar')
  p.add_argument('--mixed_precision', action='store_true',
                 help='bfloat16 matrix products in the LSTMs (float32 weights and loss): '
                      'faster on GPUs and on CPUs with AMX-BF16, not on others')
  p.set_defaults(func=run_train)
  return p


def run_train(args):
  if args.num_steps <= 0 or args.checkpoint_every <= 0 or args.summary_every <= 0:
    raise UserError('--num_steps, --checkpoint_every and --summary_every must be positive')
  def init_from():  # called by train only for a run without checkpoints
    from mvae_tf.store import resolve
    try:
      model, _, step, _ = resolve.load_keras(args.init_from)
    except (resolve.ModelNotFound, resolve.ModelError, runs.RunError) as e:
      raise UserError('--init_from %s' % e) from None
    return model, step, args.init_from
  try:
    result = train(args.config, args.run_dir, args.examples_path, args.num_steps,
                   args.hparams, args.eval_examples_path, args.checkpoint_every,
                   args.keep_checkpoints, args.summary_every, args.eval_batches,
                   args.cpu_replicas, args.seed, args.max_bad_steps,
                   progress=not args.no_progress, mixed_precision=args.mixed_precision,
                   init_from=init_from if args.init_from else None,
                   keep_alive=HELD_PIPELINES)
  except (TrainingError, ValueError, OSError) as e:
    raise UserError(str(e)) from None
  if result['interrupted'] is not None:
    return 128 + result['interrupted']
  print('trained %s to step %d (%.1f steps/s); checkpoints in %s' % (
      args.run_dir, result['step'], result['steps_per_sec'], runs.checkpoint_dir(args.run_dir)))
  return 0
