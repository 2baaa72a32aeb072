"""The one atomic writer (landscape.core.files): old file or whole new file, never a part."""

from __future__ import annotations

import os

import pytest

from landscape.core import files


def test_write_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    assert files.write_atomic(path, b"new") == path
    assert path.read_bytes() == b"new"
    files.write_atomic(path, lambda f: f.write("text ü"), binary=False)
    assert path.read_text(encoding="utf-8") == "text ü"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_a_failing_writer_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")

    def fail(f):
        f.write(b"half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        files.write_atomic(path, fail)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_write_together_changes_no_file_unless_every_file_is_written(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"old a")

    def interrupted(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.write_together({a: b"new a", b: interrupted})
    assert a.read_bytes() == b"old a" and not b.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["a"]
    files.write_together({a: b"new a", b: lambda f: f.write(b"new b")})
    assert (a.read_bytes(), b.read_bytes()) == (b"new a", b"new b")


def test_an_unwritable_target_is_a_write_error_naming_the_file(tmp_path):
    missing = tmp_path / "no such folder" / "x.json"
    with pytest.raises(files.WriteError, match="cannot write .*x.json") as e:
        files.write_atomic(missing, b"x")
    assert isinstance(e.value, OSError) and isinstance(e.value, ValueError)


def test_the_content_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    synced, renamed = [], []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(files.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))

    def replace(src, dst):
        assert synced, "renamed before fsync"
        renamed.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    files.write_atomic(tmp_path / "a", b"x")
    assert renamed == [tmp_path / "a"] and len(synced) == 1
