"""mvae_tf: MusicVAE in TensorFlow 2 / Keras 3.

Importing the package is cheap; TensorFlow is imported only by the modules
that need it (models, training, the tf.data pipeline).
"""

__version__ = '0.1.0'


def __getattr__(name):
  # Lazy: `import mvae_tf` stays cheap; TensorFlow loads on first use of the model API.
  if name == 'TrainedModel':
    from mvae_tf.model.trained_model import TrainedModel
    return TrainedModel
  raise AttributeError('module %r has no attribute %r' % (__name__, name))
