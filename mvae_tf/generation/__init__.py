"""Stage 5, generation: `trained_model.py` (TrainedModel), `attributes.py`
(attribute vectors), `render.py` (MIDI, piano rolls, WAV).

No imports here: a package's __init__ runs before any of its modules.
"""
