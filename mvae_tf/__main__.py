import sys

from mvae_tf.cli import main

sys.exit(main())
