"""The command line's side of the data folder: ``--store`` on train/line/plane, and
``pin``/``unpin``/``runs`` (``python -m landscape pin RUN_ID`` puts a run in the app's
Classroom list). The folder is the app's (``LANDSCAPE_DATA_DIR``), or ``--store DIR``.
"""

from __future__ import annotations

import argparse
import sys

from landscape.data.config import Config
from landscape.storage import datastore
from landscape.training import loop as training
from landscape.training.loop import Run

COMMANDS = ("pin", "unpin", "runs")


def add_store_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help="read and write the app's data folder (default: $LANDSCAPE_DATA_DIR or "
        "~/.loss-landscape-lab): a stored run of the same config is used, a new one is kept",
    )


def add_commands(sub) -> None:
    for name, text in (
        ("pin", "pin a stored run: the app lists it under Classroom"),
        ("unpin", "take a run off the Classroom list"),
    ):
        q = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        q.add_argument(
            "run_id", metavar="RUN_ID", help="the run's short id (python -m landscape runs)"
        )
        add_store_flag(q)
    q = sub.add_parser("runs", help="list the stored runs", description="List the stored runs.")
    add_store_flag(q)


def open_store(arg: str | None) -> datastore.Store:
    """The folder ``--store DIR`` names (``--store`` alone: the app's)."""
    return datastore.Store(arg or None)


def train(config: Config, progress, store_arg: str | None) -> Run:
    """Train ``config``; with ``--store``, from/into the data folder (trained once)."""
    if store_arg is None:
        return training.train(config, progress)
    store = open_store(store_arg)
    rid = datastore.run_id(config)
    if store.read_only and not store.has_run(rid):  # refuse before the training, not after
        raise datastore.StoreError(f"data folder {store.root} is read-only: cannot keep the run")
    notes: list[str] = []
    run = datastore.train_stored(config, progress, store=store, notes=notes)
    if notes:  # trained, not kept: say why, never "stored"
        print(f"warning: {notes[0]}", file=sys.stderr)  # each says "not stored" and why
    else:
        print(f"stored as run {rid} in {store.root} (open /landscape?run={rid})", file=sys.stderr)
    return run


def run(args: argparse.Namespace) -> int:
    store = open_store(args.store if args.store is not None else "")
    if args.command == "runs":
        for info in store.runs():
            print(f"{info.run_id}  {'pinned ' if info.pinned else '       '}{info.name}")
        return 0
    rid = datastore.check_run_id(args.run_id)
    if not store.pin(rid, args.command == "pin"):
        raise ValueError(f"run={rid!r} is not in {store.root}: train it with --store first")
    print(f"{args.command}ned run {rid}")
    return 0
