"""Export (installed as mvae_tf.export)."""
