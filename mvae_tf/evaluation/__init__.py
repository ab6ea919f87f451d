"""Stage 4, evaluation: `evaluate.py` (the paper's metrics and table, `mvae evaluate`).

No imports here: a package's __init__ runs before any of its modules.
"""
