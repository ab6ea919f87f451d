import sys

from mvae_tf.cli.main import main

sys.exit(main())
