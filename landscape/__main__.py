"""``python -m landscape``: the command line (landscape.cli.main)."""

import sys

from landscape.cli.main import main, set_threads

if __name__ == "__main__":
    set_threads()
    sys.exit(main())
