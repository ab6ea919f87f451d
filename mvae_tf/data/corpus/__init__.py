"""`mvae corpus`: real training corpora, one module per kind of source.

  build.py   the corpora (CORPORA), dedupe, the train/eval split, window counts, the
             cache and summary.json: `build_corpus(name, output_dir)`
  folk.py    music21's ABC tune books through abc2midi (the folk corpus)
  songs.py   MMA grooves and the MIDI songs of Debian packages (drums and trio)
  wad.py     MIDI lumps out of Doom WAD files (Freedoom's music)
  debian.py  the Debian and PyPI packages they need (versions, apt)
  common.py  CorpusError and Source, which every source shares

No imports here: a package's __init__ runs before any of its modules.
"""
