"""The MusicVAE model family (imports TensorFlow)."""
