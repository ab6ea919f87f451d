"""mvae_tf: MusicVAE in TensorFlow 2 / Keras 3.

Importing the package is cheap; TensorFlow is imported only by the modules
that need it (models, training, the tf.data pipeline). `TrainedModel` runs
the models that ship with the package in numpy, without TensorFlow:

  from mvae_tf import TrainedModel
  model = TrainedModel.load('folk-mel_2bar')
  melodies = model.sample(4, seed=1)   # NoteSequences
"""

__version__ = '0.1.0'


def __getattr__(name):
  # Lazy, so that `import mvae_tf` stays cheap.
  if name in ('TrainedModel', 'EncodeError'):
    from mvae_tf.generation import trained_model
    return getattr(trained_model, name)
  if name == 'attributes':  # `from mvae_tf import attributes`, its place before issue 14
    from mvae_tf.generation import attributes
    return attributes
  raise AttributeError('module %r has no attribute %r' % (__name__, name))
