"""The error types a user's mistake (not a bug of ours) raises.

`mvae` prints a UserError as one line (`mvae COMMAND: error: ...`) and exits 2;
any other exception keeps its traceback, because it is ours to fix.
"""


class UserError(Exception):
  """An error caused by the user's input or machine; printed without a traceback."""


class WriteError(UserError, OSError):
  """An output could not be written (no space left, read-only, not a directory).

  Raised by mvae_tf.atomic after removing its temporary file: nothing was left
  under the output's name, and an earlier file of that name is unchanged.
  """
