"""Stage 3, training: `train.py` (the loop of `mvae train`), `strategy.py`
(tf.distribute), `runs.py` (run directories and their checkpoints).

No imports here: a package's __init__ runs before any of its modules.
"""
