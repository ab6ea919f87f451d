"""mvae_tf: MusicVAE in TensorFlow 2 / Keras 3.

Importing the package is cheap; TensorFlow is imported only by the modules
that need it (models, training, the tf.data pipeline).
"""

__version__ = '0.1.0'
