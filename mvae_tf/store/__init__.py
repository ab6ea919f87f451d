"""Models on disk, between training and evaluation: `resolve.py` (the one resolver
of every name a user can give a model; the saved-model format), `attribute_vectors.py`
(their file), `magenta_import.py` (`mvae import-magenta`). The shipped models
themselves are mvae_tf/pretrained.

No imports here: a package's __init__ runs before any of its modules.
"""
