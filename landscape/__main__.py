"""``python -m landscape`` and the ``landscape`` console script: the command line."""

import sys

from landscape.cli.main import main, set_threads


def console() -> int:
    """The ``landscape`` command (pyproject ``[project.scripts]``)."""
    set_threads()
    return main()


if __name__ == "__main__":
    sys.exit(console())
