"""The `mvae` command.

Subcommands import only what they need: `prepare`, `corpus` and `inspect`
never import TensorFlow.
"""

import argparse
import os
import sys
import warnings

from mvae_tf.errors import UserError

# note-seq imports pydub, which warns about a missing ffmpeg that we never use.
warnings.filterwarnings('ignore', message="Couldn't find ffmpeg")


def build_parser():
  parser = argparse.ArgumentParser(
      prog='mvae', description='MusicVAE in TensorFlow 2: data, training, generation, export.')
  sub = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
  # Each subcommand's module imports what it runs only when it runs.
  from mvae_tf.cli import data, evaluate, export, generate, import_magenta, train
  data.add_prepare_parser(sub)
  data.add_corpus_parser(sub)
  data.add_inspect_parser(sub)
  import_magenta.add_import_magenta_parser(sub)
  train.add_train_parser(sub)
  evaluate.add_evaluate_parser(sub)
  generate.add_generate_parser(sub)
  export.add_export_parser(sub)
  return parser


# Subcommands that always run TensorFlow: it is imported once, quietly, after the
# arguments have parsed (mvae_tf.quiet; MVAE_VERBOSE=1 shows its start-up lines).
TF_COMMANDS = ('train', 'evaluate', 'export', 'import-magenta')


def _run(argv=None):
  for stream in (sys.stdout, sys.stderr):  # file names that are not UTF-8 print escaped
    if hasattr(stream, 'reconfigure'):
      stream.reconfigure(errors='backslashreplace')
  parser = build_parser()
  args = parser.parse_args(argv)
  if args.command in TF_COMMANDS:
    from mvae_tf import quiet
    quiet.import_tensorflow()
  try:
    return args.func(args)
  except UserError as e:
    print('mvae %s: error: %s' % (args.command, e), file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print('mvae %s: interrupted; no partial output was left' % args.command, file=sys.stderr)
    return 130


def _held_pipelines():
  train_cli = sys.modules.get('mvae_tf.cli.train')
  return train_cli.HELD_PIPELINES if train_cli is not None else []


def main(argv=None):
  """Runs one mvae command in this process; returns its exit code. A training's input
  pipeline is torn down before it returns (which can take a minute: see entry)."""
  code = _run(argv)
  del _held_pipelines()[:]
  return code


def entry():
  """The `mvae` command: runs it, then exits. After `mvae train` (whose checkpoint and
  summaries are written by then) it leaves without Python's teardown of the training input
  pipeline (mvae_tf.cli.train.HELD_PIPELINES)."""
  code = _run()
  if _held_pipelines():
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
  sys.exit(code)


if __name__ == '__main__':
  entry()
