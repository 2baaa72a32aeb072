"""``landscape app [STREAMLIT OPTIONS]``: serve the web app from any folder.

The server is the package's own ``landscape/ui/server/app.py`` (its settings in the
``.streamlit/config.toml`` beside it, which Streamlit reads as the script's own), so an
installed copy serves the same app a clone's ``streamlit run app.py`` does. Options after
``app`` go to ``streamlit run`` unchanged (``landscape app --server.port 8502``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# a path, not an import: the command line sits below the Streamlit layer
SERVER = Path(__file__).resolve().parents[1] / "ui" / "server" / "app.py"


def register(sub) -> None:
    # no arguments of its own: main() hands it every argument the parser does not know, in
    # order (argparse's REMAINDER refuses a first argument that looks like an option)
    a = sub.add_parser(
        "app",
        help="start the web app (options after it go to streamlit run)",
        usage="%(prog)s [STREAMLIT OPTIONS ...]",
        description=__doc__.split("\n\n")[1].replace("``", "`"),
    )
    a.set_defaults(handler=run, streamlit_args=[])


def command(streamlit_args: list[str]) -> list[str]:
    """The command `landscape app` runs."""
    return [sys.executable, "-m", "streamlit", "run", str(SERVER), *streamlit_args]


def run(args) -> int:
    if not SERVER.is_file():
        raise ValueError(f"the app is missing from this installation ({SERVER} not found)")
    cmd = command(args.streamlit_args)
    # Streamlit takes this process's place: Ctrl-C and a service manager's signals reach it
    os.execv(cmd[0], cmd)
    return 0  # not reached
