"""Your own data: a CSV file (features + one target column) turned into a `Dataset`.

The file comes from a browser, so everything about it is untrusted: it may be empty, huge,
binary, semicolon-separated, have text in a numeric column or holes. Every such case is a
`ValueError` whose message says what is wrong and where (column, row, count, cap), so the page
can show it as is. Nothing here imports Streamlit; `landscape.ui.upload` is the widget.

Reading is in two steps so that the widget can offer the column names before the target is
chosen: `read_table(bytes) -> DataFrame of strings` (format checks: size, delimiter, header,
caps), then `to_dataset(table, target, task) -> Dataset` (content checks: numbers, missing
values, classes; the split and the standardisation). `parse_csv` does both.

Conventions match `landscape.data.datasets`: a seeded train/test split (stratified for
classification), features standardised with the training split's mean and standard deviation
(never the test split's), float32 features, long class indices or a float32 target. A
regression target is standardised the same way, so that losses are in units of its spread
whatever the file's units (a house price in dollars would otherwise give losses of 1e10).

Uploaded sets are named "upload:<12 hex of sha256 of the content>" and kept in a bounded
process-wide LRU of ``landscape.data.datasets`` (`register`, `lookup`), so a frozen training Config can name one by a short
string, and the same file uploaded twice is the same set.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re

import numpy as np
import pandas as pd
import torch

from landscape.core import checks
from landscape.data import datasets as data

# Caps that keep one upload from starving a shared server (and match what training accepts).
MAX_BYTES = 5 * 2**20  # file size in bytes: 5 MiB
MAX_ROWS = data.MAX_SAMPLES  # data rows (header excluded): 5000, the training cap
MAX_COLS = 101  # columns, target included: up to 100 features
MIN_ROWS = 10  # fewer rows than this cannot be split into train and test meaningfully
MAX_CLASSES = 50  # classification targets with more distinct values are refused
AUTO_MAX_CLASSES = 20  # "auto": an integer target with at most this many values is classes
TASKS = ("auto", "classification", "regression")
PREFIX = "upload:"
REGISTRY_SIZE = data.REGISTRY_SIZE  # uploaded sets kept per server process

FLOAT32_MAX = float(np.finfo(np.float32).max)  # larger finite values become inf as float32
_OTHER_DELIMITERS = {";": "';' (semicolon)", "\t": "a tab", "|": "'|' (pipe)"}


# ----------------------------------------------------------------------------- reading


def read_table(
    raw: bytes, max_bytes: int = MAX_BYTES, max_rows: int = MAX_ROWS, max_cols: int = MAX_COLS
) -> pd.DataFrame:
    """Parse CSV bytes into a DataFrame of stripped strings (NaN where a cell is missing).

    Checks the format only: size, text, delimiter, header, row and column caps. Values are
    checked by `to_dataset`, which knows which column is the target.
    """
    text = _decode(raw, max_bytes)
    table = _parse(text, max_rows)
    _check_shape(table, text, max_rows, max_cols)
    return table


def _decode(raw: bytes, max_bytes: int) -> str:
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise ValueError(f"the upload must be bytes, got {type(raw).__name__}")
    if len(raw) > max_bytes:
        raise ValueError(
            f"the file is {_size(len(raw))}: the cap is {_size(max_bytes)}; "
            f"upload a smaller sample of your data"
        )
    raw = bytes(raw)
    if not raw.strip():
        raise ValueError("the file is empty: upload a CSV with a header row and data rows")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with a byte-order mark: decode it
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            raise ValueError(
                "the file starts like UTF-16 text but is not valid UTF-16: save it as "
                "'CSV UTF-8 (comma delimited)' and upload that"
            ) from None
    if _looks_utf16(raw[:4096]):
        raise ValueError(
            "the file is UTF-16 text without a byte-order mark, which cannot be read reliably: "
            "save it as 'CSV UTF-8 (comma delimited)' and upload that"
        )
    if raw.startswith(b"PK\x03\x04") or b"\x00" in raw[:4096]:
        raise ValueError(
            "the file is not a text CSV (it looks like a binary or Excel file): "
            "save it as 'CSV (comma delimited)' and upload that"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # every byte is a character: a file from an old Excel


def _looks_utf16(head: bytes) -> bool:
    """Text of ASCII characters in UTF-16: every other byte is zero (and only those)."""
    if len(head) < 4:
        return False
    even, odd = head[0::2], head[1::2]
    return (odd.count(0) == len(odd) and 0 not in even) or (
        even.count(0) == len(even) and 0 not in odd
    )


def _parse(text: str, max_rows: int) -> pd.DataFrame:
    lines = _check_field_counts(text, max_rows)
    try:
        table = pd.read_csv(
            io.StringIO(text),
            sep=",",
            dtype=str,
            skipinitialspace=True,
            index_col=False,  # never take a first column as the index silently
            nrows=max_rows + 1,  # one more than the cap, to know the cap was exceeded
        )
    except pd.errors.EmptyDataError:
        raise ValueError(
            "the file is empty: upload a CSV with a header row and data rows"
        ) from None
    except pd.errors.ParserError as e:
        raise ValueError(f"the file is not a well-formed CSV: {_parser_message(e)}") from None
    if len(lines) >= len(table):  # the line in the file of each data row, for messages
        table.attrs["lines"] = lines[: len(table)]
    return table


def _check_field_counts(text: str, max_rows: int) -> list[int]:
    """Every non-blank line must have as many fields as the header (pandas would otherwise
    shift a longer row into an index, or pad a shorter one with missing values).

    Returns the line number (1-based, in the file) where each data row ends."""
    rows = csv.reader(io.StringIO(text), skipinitialspace=True)
    header, lines = None, []
    try:
        for i, row in enumerate(rows):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if header is None:
                header = len(row)
                continue
            lines.append(rows.line_num)
            if len(row) != header:
                raise ValueError(
                    f"the file is not a well-formed CSV: line {rows.line_num} has {len(row)} "
                    f"fields but the header has {header}"
                )
            if i > max_rows + 1:
                break
    except csv.Error as e:
        raise ValueError(f"the file is not a well-formed CSV: {e}") from None
    return lines


def _check_shape(table: pd.DataFrame, text: str, max_rows: int, max_cols: int) -> None:
    header = text.lstrip().splitlines()[0]
    if table.shape[1] == 1:
        for sep, name in _OTHER_DELIMITERS.items():
            if sep in header:
                raise ValueError(
                    f"the file seems to use {name} as its delimiter, not a comma: save it as "
                    f"comma-separated values (CSV) and upload it again"
                )
        raise ValueError(
            f"the file has a single column ({str(table.columns[0])!r}): a CSV for training "
            f"needs at least one feature column and a target column, separated by commas"
        )
    if table.shape[1] > max_cols:
        raise ValueError(f"the file has {table.shape[1]} columns: the cap is {max_cols} columns")
    if len(table) > max_rows:
        raise ValueError(
            f"the file has more than {max_rows} data rows: the cap is {max_rows} rows; "
            f"upload a sample of your data"
        )
    if all(_is_number(c) for c in table.columns):
        raise ValueError(
            "the first line looks like data, not column names: add a header row "
            "(e.g. x1,x2,label) as the first line"
        )
    names = next(csv.reader([header]))
    dupes = sorted({n.strip() for n in names if [m.strip() for m in names].count(n.strip()) > 1})
    if dupes:
        raise ValueError(f"column names must be unique: the header repeats {dupes}")
    if len(table) < MIN_ROWS:
        raise ValueError(f"the file has {len(table)} data rows: at least {MIN_ROWS} are needed")


# ----------------------------------------------------------------------------- to a Dataset


def to_dataset(
    table: pd.DataFrame,
    target: str | None = None,
    task: str = "auto",
    test_fraction: float = 0.2,
    seed: int = 0,
) -> data.Dataset:
    """Turn a table from `read_table` into a split, standardised Dataset.

    target: the column to predict (default: the last one). task: "auto" (classification when
    the target is text or has at most AUTO_MAX_CLASSES integer values, else regression),
    "classification" or "regression".
    """
    columns = [str(c) for c in table.columns]
    target = columns[-1] if target is None else target
    if target not in columns:
        raise ValueError(f"target column {target!r} is not in the file: columns are {columns}")
    if task not in TASKS:
        raise ValueError(f"task={task!r} is not allowed: must be one of {list(TASKS)}")
    checks.number_in("test_fraction", test_fraction, data.MIN_TEST_FRACTION, data.MAX_TEST_FRACTION)
    checks.number_in("seed", seed, 0, 2**31 - 1)
    lines = table.attrs.get("lines")
    table = table.set_axis(columns, axis=1)
    _check_missing(table)
    features = [c for c in columns if c != target]
    X = np.stack([_numeric(table[c], c, "feature", lines) for c in features], 1)  # (N, D)
    y_raw = table[target]
    task = _infer_task(y_raw) if task == "auto" else task
    if task == "classification":
        y, classes = _classes(y_raw, target)
        return _split_classification(X, y, classes, features, target, test_fraction, seed)
    y = _numeric(y_raw, target, "regression target", lines)
    return _split_regression(X, y, features, target, test_fraction, seed)


def parse_csv(
    raw: bytes,
    target: str | None = None,
    task: str = "auto",
    max_bytes: int = MAX_BYTES,
    max_rows: int = MAX_ROWS,
    max_cols: int = MAX_COLS,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> data.Dataset:
    """CSV bytes -> Dataset named "upload:<hash>"; ValueError with a clear message if malformed."""
    table = read_table(raw, max_bytes=max_bytes, max_rows=max_rows, max_cols=max_cols)
    return to_dataset(table, target=target, task=task, test_fraction=test_fraction, seed=seed)


def to_arrays(table: pd.DataFrame, target: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A table from `read_table` as numbers, unsplit and unstandardised: (X (N, D), y (N,)).

    For a model trained elsewhere (`landscape.engine.own`): its inputs are used as they are. Every
    cell must be a finite number (the same messages as `to_dataset`); target: default last.
    """
    columns = [str(c) for c in table.columns]
    target = columns[-1] if target is None else target
    if target not in columns:
        raise ValueError(f"target column {target!r} is not in the file: columns are {columns}")
    lines = table.attrs.get("lines")
    table = table.set_axis(columns, axis=1)
    _check_missing(table)
    features = [c for c in columns if c != target]
    if not features:
        raise ValueError(f"the file has only the target column {target!r}: no features")
    X = np.stack([_numeric(table[c], c, "feature", lines) for c in features], 1)  # (N, D)
    return X, _numeric(table[target], target, "target", lines)


def _check_missing(table: pd.DataFrame) -> None:
    counts = table.isna().sum()
    bad = {c: int(n) for c, n in counts.items() if n}
    if bad:
        parts = ", ".join(
            f"column {c!r} has {n} missing value{'s' * (n > 1)}" for c, n in bad.items()
        )
        raise ValueError(f"{parts}: fill in the empty cells or drop those rows, then upload again")


def _numeric(col: pd.Series, name: str, role: str, lines=None) -> np.ndarray:
    """The column as float64; ValueError naming the first cell that is not a finite number."""
    values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
    huge = np.isfinite(values) & (np.abs(values) > FLOAT32_MAX)
    if huge.any():  # finite here, but inf once the tensors are float32
        row = int(np.argmax(huge))
        raise ValueError(
            f"{role} column {name!r} has {col.iloc[row]!r} in data row {row + 1}"
            f"{f' (line {lines[row]} of the file)' if lines else ''}: it is too large for "
            f"training, which uses 32-bit floats (at most about {FLOAT32_MAX:.3g} in size); "
            f"rescale the column (e.g. to thousands or millions)"
        )
    bad = ~np.isfinite(values)
    if bad.any():
        hint = (
            "drop the column or encode it as numbers"
            if role == "feature"
            else "choose task 'classification' for labels, or fix the cell"
        )
        row = int(np.argmax(bad))
        raise ValueError(
            f"{role} column {name!r} has {col.iloc[row]!r} in data row {row + 1}"
            f"{f' (line {lines[row]} of the file)' if lines else ''}: it must be a finite number "
            f"({hint})"
            f"{'; ' + str(int(bad.sum())) + ' such cells in all' if bad.sum() > 1 else ''}"
        )
    return values


def _infer_task(y: pd.Series) -> str:
    values = pd.to_numeric(y, errors="coerce")
    if values.isna().any():
        return "classification"  # text labels
    v = values.to_numpy(dtype=np.float64)
    if np.isfinite(v).all() and (v == np.round(v)).all() and len(np.unique(v)) <= AUTO_MAX_CLASSES:
        return "classification"
    return "regression"


def _classes(y: pd.Series, name: str) -> tuple[np.ndarray, list[str]]:
    """Class indices 0..K-1 in sorted label order (numerically when every label is a number)."""
    numbers = pd.to_numeric(y, errors="coerce")
    keys = numbers if not numbers.isna().any() else y
    labels = sorted(keys.unique().tolist())
    if len(labels) < 2:
        raise ValueError(
            f"target column {name!r} has only one class ({_label(labels[0])!r}): classification "
            f"needs at least 2 classes"
        )
    if len(labels) > MAX_CLASSES:
        raise ValueError(
            f"target column {name!r} has {len(labels)} distinct values: the cap is "
            f"{MAX_CLASSES} classes; if it is a quantity, choose task 'regression'"
        )
    index = {v: i for i, v in enumerate(labels)}
    return keys.map(index).to_numpy(dtype=np.int64), [_label(v) for v in labels]


def _split_classification(X, y, classes, features, target, test_fraction, seed) -> data.Dataset:
    counts = np.bincount(y, minlength=len(classes))
    if counts.min() < 2:
        lonely = classes[int(np.argmin(counts))]
        raise ValueError(
            f"class {lonely!r} of target column {target!r} has only {counts.min()} row: every "
            f"class needs at least 2 rows (one to train on, one to test on)"
        )
    n_test = math.ceil(test_fraction * len(y))
    if n_test < len(classes) or len(y) - n_test < len(classes):
        raise ValueError(
            f"{len(y)} rows are too few to split {len(classes)} classes into train and test "
            f"with test_fraction={test_fraction}: upload more rows"
        )
    Xtr, Xte, ytr, yte = data.train_test_split(
        X, y, test_size=test_fraction, stratify=y, random_state=seed
    )
    Xtr, Xte = data._standardise(Xtr, Xte)
    desc = (
        f"Uploaded CSV: {len(y)} rows, {len(features)} features, target {target!r} "
        f"with {len(classes)} classes ({', '.join(classes[:10])}{', ...' if len(classes) > 10 else ''})."
    )
    return _dataset("classification", Xtr, Xte, ytr, yte, len(classes), features, desc)


def _split_regression(X, y, features, target, test_fraction, seed) -> data.Dataset:
    Xtr, Xte, ytr, yte = data.train_test_split(X, y, test_size=test_fraction, random_state=seed)
    mu, sd = ytr.mean(), ytr.std()
    if not sd > 1e-12:
        raise ValueError(
            f"regression target column {target!r} has the same value in every training row: "
            f"there is nothing to learn"
        )
    Xtr, Xte = data._standardise(Xtr, Xte)
    ytr, yte = (ytr - mu) / sd, (yte - mu) / sd
    desc = (
        f"Uploaded CSV: {len(y)} rows, {len(features)} features, regression target {target!r} "
        f"(standardised: mean {mu:.4g}, sd {sd:.4g} of the training split)."
    )
    return _dataset("regression", Xtr, Xte, ytr, yte, 0, features, desc)


def _dataset(task, Xtr, Xte, ytr, yte, n_classes, features, desc) -> data.Dataset:
    ydtype = torch.long if task == "classification" else torch.float32
    X_train = torch.as_tensor(np.ascontiguousarray(Xtr), dtype=torch.float32)
    ds = data.Dataset(
        name="",
        task=task,
        X_train=X_train,
        y_train=torch.as_tensor(ytr, dtype=ydtype),
        X_test=torch.as_tensor(np.ascontiguousarray(Xte), dtype=torch.float32),
        y_test=torch.as_tensor(yte, dtype=ydtype),
        n_classes=n_classes,
        input_shape=tuple(X_train.shape[1:]),
        feature_names=tuple(features),
        description=desc,
    )
    return _renamed(ds, PREFIX + content_hash(ds))


def content_hash(ds: data.Dataset) -> str:
    """12 hex digits of sha256 over everything a model sees: task, names and the tensors."""
    h = hashlib.sha256()
    h.update(f"{ds.task}|{ds.n_classes}|{ds.feature_names}|{ds.input_shape}".encode())
    for t in (ds.X_train, ds.y_train, ds.X_test, ds.y_test):
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def summary(ds: data.Dataset) -> str:
    """One line for the UI: what was understood from the file."""
    kind = (
        f"classification, {ds.n_classes} classes" if ds.task == "classification" else "regression"
    )
    return (
        f"{ds.n_train + ds.n_test} rows ({ds.n_train} train / {ds.n_test} test), "
        f"{len(ds.feature_names)} feature{'s' * (len(ds.feature_names) != 1)}, {kind}"
    )


# ----------------------------------------------------------------------------- registry


def register(ds: data.Dataset) -> str:
    """Register ``ds`` with ``landscape.data.datasets`` as "upload:<content hash>"; returns the name.

    Idempotent: the same content is the same name. The registry is data's (bounded LRU).
    """
    name = PREFIX + content_hash(ds)
    if ds.name != name:
        ds = _renamed(ds, name)
    info = data.DatasetInfo(
        display=f"Uploaded CSV ({name[len(PREFIX) :]})",
        task=ds.task,
        kind="tabular",
        n_classes=ds.n_classes,
        description=ds.description,
        input_shape=tuple(ds.input_shape),
        size=ds.n_train + ds.n_test,
    )
    return data.register(ds, info)


def lookup(name: str) -> data.Dataset:
    """The registered upload called `name`; ValueError when it was evicted (or never uploaded)."""
    if not is_upload(name):
        raise ValueError(f"dataset={name!r} is not an uploaded set: names start with {PREFIX!r}")
    try:
        return data.registered_set(name)
    except ValueError:
        raise ValueError("uploaded data is no longer on the server; upload it again") from None


def is_upload(name) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def info(name: str) -> data.DatasetInfo:
    """The DatasetInfo of a registered upload."""
    lookup(name)
    return data.info(name)


def registered() -> list[str]:
    """Uploads currently kept, least recently used first."""
    return [n for n in data.registered() if is_upload(n)]


def clear() -> None:
    """Forget every registered set (tests)."""
    data.forget_registered()


def _renamed(ds: data.Dataset, name: str) -> data.Dataset:
    fields = {k: getattr(ds, k) for k in data.Dataset.__dataclass_fields__}
    return data.Dataset(**{**fields, "name": name})


# ----------------------------------------------------------------------------- helpers


def _is_number(s) -> bool:
    try:
        float(str(s))
    except ValueError:
        return False
    return True


def _label(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _size(n: int) -> str:
    if n >= 2**20:
        return f"{n / 2**20:.1f} MiB ({n} bytes)"
    if n >= 2**10:
        return f"{n / 2**10:.1f} KiB ({n} bytes)"
    return f"{n} bytes"


def _parser_message(e: Exception) -> str:
    """pandas' tokenizer error in plain words ("Expected 3 fields in line 5, saw 4")."""
    msg = str(e).strip()
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", msg)
    if m:
        want, line, got = m.groups()
        return f"line {line} has {got} fields but the header has {want}"
    return msg.splitlines()[0] if msg else e.__class__.__name__
