"""The `mvae` command line (main.py; one module per subcommand).

Parsing and one-line messages only: each module turns the library's errors
(mvae_tf.errors, and each stage's own) into a line naming the input and what
to do. The library never imports this package. This file stays empty of
imports: a package's __init__ runs before any of its modules.
"""
