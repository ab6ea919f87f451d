"""The errors a user of edge_demo sees."""


class EdgeError(Exception):
  """Bad input (a model file, a MIDI file, an option, an output path), said in one line.

  The command line prints it as `edge_demo COMMAND: error: MESSAGE` on stderr
  and exits with status 2, without a traceback; anything else that goes wrong
  is a bug and keeps its traceback.
  """
