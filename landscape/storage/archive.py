"""The hostile-safe .npz reader: ``Archive`` checks a zip of .npy members before inflating any.

Every stored file the library reads (runs, surfaces; ``landscape.storage.formats``) is opened
through ``Archive``, which treats it as hostile:

- the zip's central directory: at most MAX_MEMBERS members, unique ``*.npy`` names, no
  encryption, compression stored or deflate only (bzip2/lzma refused), and the members'
  total uncompressed size at most ``max_bytes``;
- every member's .npy header (read from its first bytes only): a whitelisted dtype (booleans,
  integers, floats; a 0-d unicode string for JSON; never object dtype), and a shape whose
  size matches the member's size in the directory, so a header claiming 10^12 floats is
  refused without allocating them;
- JSON members are capped at MAX_JSON_BYTES and a nesting depth of MAX_JSON_DEPTH, checked
  before parsing.

A member is inflated only when asked for, into a buffer of its declared size (zipfile never
yields more than the directory's size, and checks the CRC at the end). Anything wrong is ONE
``ValueError`` naming the file and what is wrong, in words meant for a person.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Sequence
from typing import IO

import numpy as np
from numpy.lib import format as npy

MAX_MEMBERS = 4096  # members of one archive (a run has ~10 + its state tensors)
MAX_JSON_BYTES = 2**20  # one JSON member
MAX_JSON_DEPTH = 32  # nesting of JSON arrays/objects

PathOrFile = str | os.PathLike | IO[bytes]

_COMPRESSIONS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
_NUMERIC = {
    np.dtype(t)
    for t in (
        "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        "float16", "float32", "float64",
    )
}  # fmt: skip
#: What a damaged archive can raise while zipfile reads it.
_READ_ERRORS = (
    zipfile.BadZipFile,
    OSError,
    EOFError,
    NotImplementedError,
    zlib.error,
    struct.error,
)


def fail(label: str, what: str) -> ValueError:
    return ValueError(f"{label}: {what}")


class Archive:
    """A .npz archive whose directory and .npy headers were checked; nothing inflated yet.

    ``shapes[name]``, ``dtypes[name]``: what each member's header declares (name without
    ``.npy``). ``array(name)`` inflates one member; ``json(name)`` parses a JSON member.
    """

    def __init__(self, file: PathOrFile, label: str, max_bytes: int, what: str = ".npz"):
        self.label = label
        try:
            self._zip = zipfile.ZipFile(file)
        except FileNotFoundError:
            raise fail(label, "cannot read it: no such file") from None
        except (PermissionError, IsADirectoryError) as e:
            raise fail(label, f"cannot read it: {e.strerror}") from None
        except (*_READ_ERRORS, ValueError) as e:
            raise fail(
                label, f"not a {what} file: it is not a complete zip archive ({e})"
            ) from None
        try:
            self._check_directory(max_bytes)
            self._read_headers()
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._zip.close()

    def _check_directory(self, max_bytes: int) -> None:
        infos = self._zip.infolist()
        if not infos:
            raise fail(self.label, "the archive is empty")
        if len(infos) > MAX_MEMBERS:
            raise fail(self.label, f"{len(infos)} members: the cap is {MAX_MEMBERS}")
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise fail(self.label, "the archive lists a member twice")
        total = 0
        for info in infos:
            if not info.filename.endswith(".npy") or len(info.filename) > 300:
                raise fail(self.label, f"member {info.filename[:80]!r} is not a .npy array")
            if info.flag_bits & 0x1:
                raise fail(self.label, "the archive is encrypted")
            if info.compress_type not in _COMPRESSIONS:
                raise fail(
                    self.label,
                    f"member {info.filename!r} uses compression method {info.compress_type}: "
                    f"only stored or deflate are read",
                )
            total += info.file_size
        if total > max_bytes:
            raise fail(
                self.label,
                f"the arrays inside take {total / 2**20:.1f} MiB uncompressed: the cap is "
                f"{max_bytes / 2**20:.0f} MiB",
            )
        self._infos = {i.filename[: -len(".npy")]: i for i in infos}

    def _read_headers(self) -> None:
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.dtypes: dict[str, np.dtype] = {}
        self._fortran: dict[str, bool] = {}
        self._offset: dict[str, int] = {}
        for name, info in self._infos.items():
            try:
                with self._zip.open(info) as fp:
                    version = npy.read_magic(fp)
                    if version == (1, 0):
                        shape, fortran, dtype = npy.read_array_header_1_0(fp)
                    elif version == (2, 0):
                        shape, fortran, dtype = npy.read_array_header_2_0(fp)
                    else:
                        raise ValueError(f"unknown .npy version {version}")
                    offset = fp.tell()
            except (ValueError, SyntaxError, RecursionError, TypeError, OverflowError) as e:
                raise fail(self.label, f"array {name!r} has a bad header ({e})") from None
            except _READ_ERRORS as e:
                raise fail(self.label, f"array {name!r} cannot be read ({e})") from None
            if dtype.hasobject or not (dtype in _NUMERIC or (dtype.kind == "U" and shape == ())):
                raise fail(
                    self.label,
                    f"array {name!r} has type {dtype}: only numbers are read (never objects)",
                )
            n = math.prod(shape) * dtype.itemsize
            if n != info.file_size - offset:
                raise fail(
                    self.label,
                    f"array {name!r} declares shape {shape} ({n} bytes) but holds "
                    f"{info.file_size - offset} bytes",
                )
            self.shapes[name], self.dtypes[name] = tuple(shape), dtype
            self._fortran[name], self._offset[name] = fortran, offset

    @property
    def names(self) -> list[str]:
        return list(self._infos)

    def require(self, name: str, dtypes: Sequence, ndim: int | None = None) -> tuple[int, ...]:
        """The declared shape of member `name`, checked to exist with one of `dtypes`."""
        if name not in self.shapes:
            raise fail(self.label, f"the array {name!r} is missing")
        dt, shape = self.dtypes[name], self.shapes[name]
        if dt not in {np.dtype(d) for d in dtypes}:
            allowed = " or ".join(str(np.dtype(d)) for d in dtypes)
            raise fail(self.label, f"the array {name!r} has type {dt}: must be {allowed}")
        if ndim is not None and len(shape) != ndim:
            raise fail(self.label, f"the array {name!r} has shape {shape}: must be {ndim}-D")
        return shape

    def array(self, name: str) -> np.ndarray:
        """Inflate one member into a buffer of its declared size (CRC checked at the end)."""
        info, shape, dtype = self._infos[name], self.shapes[name], self.dtypes[name]
        nbytes = info.file_size - self._offset[name]
        buf = bytearray(nbytes)
        try:
            with self._zip.open(info) as fp:
                fp.read(self._offset[name])
                view, got = memoryview(buf), 0
                while got < nbytes:
                    k = fp.readinto(view[got:])
                    if not k:
                        raise EOFError("the member ends early")
                    got += k
                if fp.read(1):  # also makes zipfile compare the CRC
                    raise ValueError("the member is longer than its header says")
        except (*_READ_ERRORS, ValueError) as e:
            raise fail(self.label, f"array {name!r} is damaged ({e})") from None
        order = "F" if self._fortran[name] else "C"
        return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)

    def json(self, name: str):
        """Parse a JSON member (UTF-8 bytes as uint8, or a 0-d unicode string)."""
        shape = self.shapes.get(name)
        if shape is None:
            raise fail(self.label, f"the metadata {name!r} is missing")
        nbytes = math.prod(shape) * self.dtypes[name].itemsize
        if nbytes > MAX_JSON_BYTES:
            raise fail(self.label, f"the metadata {name!r} is over {MAX_JSON_BYTES} bytes")
        if self.dtypes[name] == np.uint8 and len(shape) == 1:
            try:
                text = self.array(name).tobytes().decode("utf-8")
            except UnicodeDecodeError:
                raise fail(self.label, f"the metadata {name!r} is not UTF-8 text") from None
        elif self.dtypes[name].kind == "U":
            text = str(self.array(name)[()])
        else:
            raise fail(self.label, f"the metadata {name!r} is not text")
        if depth(text) > MAX_JSON_DEPTH:
            raise fail(self.label, f"the metadata {name!r} is nested too deeply")
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as e:
            raise fail(self.label, f"the metadata {name!r} is not valid JSON ({e})") from None


def depth(text: str) -> int:
    """Deepest bracket nesting in JSON text, strings skipped (checked before parsing, so a
    deeply nested file is refused without recursion)."""
    depth = deepest = 0
    for token in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        t = token.group()
        if t in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif t in "]}":
            depth -= 1
    return deepest


def label(name) -> str:
    return f"file {str(name)!r}" if name else "the file"


def check_version(label: str, what: str, version, current: int) -> None:
    if isinstance(version, bool) or not isinstance(version, int):
        raise fail(label, f"not a {what} file (its format version is {version!r})")
    if version > current:
        raise fail(
            label,
            f"this {what} file has format version {version}, made by a newer version of Loss "
            f"Landscape Lab; this one reads version {current}: update, or save it again with "
            f"this version",
        )
    if version < 1:
        raise fail(label, f"not a {what} file (unknown format version {version})")
