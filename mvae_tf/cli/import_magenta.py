"""`mvae import-magenta`: the command line of mvae_tf.store.magenta_import."""


from mvae_tf.store.magenta_import import import_magenta


def add_import_magenta_parser(subparsers):
  """Register `mvae import-magenta` on an argparse subparsers object."""
  p = subparsers.add_parser(
      'import-magenta', help="convert a checkpoint of Magenta's MusicVAE to our format",
      description="Loads a TF1 checkpoint written by Magenta's MusicVAE (with or without "
                  'Adam slots) into the model of --config and saves it as a model directory '
                  '(DIR/weights.npz + config.json). Sizes must match: pass the --hparams the checkpoint was '
                  'trained with.')
  p.add_argument('--config', required=True, help='config name, e.g. cat-mel_2bar_small')
  p.add_argument('--checkpoint', required=True, metavar='CKPT',
                 help='checkpoint prefix (…/model.ckpt-NNN) or its directory')
  p.add_argument('--hparams', default='', metavar='KEY=VALUE,...',
                 help='hparam overrides, reference names, e.g. z_size=16,dec_rnn_size=[48,48]')
  p.add_argument('--output', required=True, metavar='DIR')
  p.set_defaults(func=run_import_magenta)
  return p


def run_import_magenta(args):
  from mvae_tf.errors import UserError
  try:
    from mvae_tf import configs
    configs.get_config(args.config)
    import_magenta(args.config, args.checkpoint, args.output, args.hparams)
  except ValueError as e:
    raise UserError(str(e)) from None
  print('wrote %s (weights.npz, config.json)' % args.output)
  return 0
