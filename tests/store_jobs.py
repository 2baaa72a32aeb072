"""Jobs for tests/test_datastore.py, importable by name so spawned processes can run them."""

from __future__ import annotations

import os
import time

TINY = dict(n_samples=60, epochs=2, width=4, depth=1, batch_size=32)


def counting_train(marker: str):
    """A trainer that appends one line to `marker` per real training (then trains)."""
    from landscape.training import loop as training

    def train(config, progress=None):
        with open(marker, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.3)  # long enough for the other processes to arrive meanwhile
        return training.train(config, progress)

    return train


def train_once(root: str, marker: str, seed: int) -> str:
    from landscape.data.config import Config
    from landscape.storage import datastore

    store = datastore.Store(root, max_mb=100)
    run = datastore.train_stored(
        Config(seed=seed, **TINY), store=store, train=counting_train(marker)
    )
    return datastore.run_id(run.config)


def write_many(root: str, tag: int, n: int) -> list[str]:
    """Write n small objects and read each back at once; returns their keys."""
    import numpy as np

    from landscape.storage import datastore

    store = datastore.Store(root, max_mb=100)
    keys = []
    for i in range(n):
        key = datastore.object_key("job", tag, i)
        store.put_object("comparison", key, {"tag": tag, "i": i, "a": np.arange(50.0) * i})
        got = store.get_object("comparison", key)
        assert got["i"] == i and got["a"][1] == i, got
        keys.append(key)
    return keys


def write_and_hang(root: str) -> None:
    """Write an object, then hang between writing its temporary file and renaming it (to be
    killed with SIGKILL there, as a crash mid-write)."""
    import numpy as np

    from landscape.storage import datastore, folder

    def hang(*args):
        time.sleep(600)

    folder.os.replace = hang
    store = datastore.Store(root, max_mb=100)
    store.put_object("comparison", datastore.object_key("killed"), {"a": np.zeros(1000)})
