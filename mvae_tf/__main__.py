from mvae_tf.cli.main import entry

entry()
