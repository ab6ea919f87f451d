"""`python -m edge_demo` (see edge_demo.cli)."""

import sys

from edge_demo.cli import main

if __name__ == '__main__':
  sys.exit(main())
