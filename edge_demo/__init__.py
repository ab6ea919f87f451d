"""edge_demo: music from an exported MusicVAE on a Raspberry Pi or Coral-class board.

Needs only a LiteRT runtime (ai-edge-litert, or the legacy tflite-runtime),
numpy and mido: no TensorFlow, no note-seq, no mvae_tf. `python -m edge_demo
--help`. mvae_tf runs exported models through the same runtime
(edge_demo.runtime).
"""

__version__ = '0.1.0'
