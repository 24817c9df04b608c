"""`python -m riemann`, the same as the `riemann` command."""

import sys

from riemann.cli.main import main

if __name__ == "__main__":  # worker processes are spawned and import this module again
    sys.exit(main())
