"""What every source of a corpus shares: the error and the Source record."""

import dataclasses
import os
import sys


class CorpusError(RuntimeError):
  """A corpus cannot be built; the message says what to install or run."""


@dataclasses.dataclass
class Source:
  """One collection of music in a corpus.

  `inputs` are the files whose names, sizes and mtimes decide whether a build
  is still current. Without `render`, the inputs are read as music files and
  labelled by their path under `root`; `render(workdir, workers, progress)`
  instead returns ([(path, label, title)], [(label, reason, detail)]): files
  to read and items that failed.
  """
  name: str
  package: str = ''
  version: str = ''
  licence: str = ''
  inputs: list = dataclasses.field(default_factory=list)
  root: str = ''
  render: object = None
  notes: list = dataclasses.field(default_factory=list)
  tool: str = ''  # tool and settings that render it, for the fingerprint

  def items(self, workdir, workers, progress):
    if self.render is not None:
      return self.render(workdir, workers, progress)
    root = self.root or os.path.dirname(os.path.commonpath(self.inputs or ['/']))
    return [(p, '%s/%s' % (self.name, os.path.relpath(p, root)), None)
            for p in self.inputs], []

  def describe(self):
    return {'name': self.name, 'package': self.package, 'version': self.version,
            'licence': self.licence, 'input_files': len(self.inputs), 'notes': list(self.notes)}


def progress_bar(progress, total, desc, unit):
  if not progress:
    return None
  from tqdm import tqdm
  return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=None,
              dynamic_ncols=True)
