"""How a parquet ``-o`` file is written: under a temporary name beside it and renamed when whole
(a scan killed outright leaves the earlier file: tests/test_process.py), with the mode of the
file it replaces; in place where it is no regular file or no file can be made beside it; and
no temporary file left behind by a write error."""

import errno
import os
import stat
import threading

import pytest

from fakedet.cli import cli

from conftest import write_image

pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture
def images(tmp_path):
    for i in range(3):
        write_image(tmp_path / "in" / f"{i}.jpg", seed=i)
    return tmp_path / "in"


def scan(runner, weights, *args):
    return runner.invoke(cli, ["scan", "-q", "-w", str(weights), "-j", "0", "-f", "parquet", *args])


def parts(folder):
    return [p for p in os.listdir(folder) if p.startswith(".fakedet-")]


def paths_in(path):
    return sorted(os.path.basename(p) for p in pq.read_table(path).column("path").to_pylist())


def test_the_file_keeps_the_mode_of_the_one_it_replaces(runner, tiny_weights, images, tmp_path):
    """A private (0600) file came out 0644 after a rerun: readable by everyone."""
    out = tmp_path / "private.parquet"
    out.write_bytes(b"old")
    os.chmod(out, 0o600)
    r = scan(runner, tiny_weights, "-o", str(out), str(images))
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600 and paths_in(out) == ["0.jpg", "1.jpg", "2.jpg"]
    mask = os.umask(0o022)
    try:
        new = tmp_path / "new.parquet"
        assert scan(runner, tiny_weights, "-o", str(new), str(images)).exit_code == 0
        assert stat.S_IMODE(os.stat(new).st_mode) == 0o644  # as open() makes a file
    finally:
        os.umask(mask)
    assert parts(tmp_path) == []


def test_a_link_keeps_leading_to_the_file_it_named(runner, tiny_weights, images, tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "scores.parquet"
    target.write_bytes(b"old")
    link = tmp_path / "scores.parquet"
    link.symlink_to(target)
    assert scan(runner, tiny_weights, "-o", str(link), str(images)).exit_code == 0
    assert link.is_symlink() and paths_in(target) == ["0.jpg", "1.jpg", "2.jpg"]
    assert parts(tmp_path / "real") == []


def test_a_named_pipe_is_written_in_place_not_replaced(runner, tiny_weights, images, tmp_path):
    """A reviewer saw the new code replace a named pipe (and a device) with a regular file, its
    reader waiting for ever: such an -o is written in place, as before."""
    fifo = tmp_path / "out.parquet"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()), daemon=True)
    reader.start()
    r = scan(runner, tiny_weights, "-o", str(fifo), str(images))
    # (pyarrow cannot write parquet to a pipe, which it cannot seek: status 2, as before)
    assert r.exit_code == 2 and stat.S_ISFIFO(os.lstat(fifo).st_mode), r.output
    assert parts(tmp_path) == []
    import gc

    gc.collect()  # pyarrow's handle on the pipe, which the reader waits to see closed
    reader.join(5)


def test_a_folder_that_takes_no_new_file_gets_the_file_written_in_place(runner, tiny_weights, images, tmp_path,
                                                                        monkeypatch):
    """A writable file in a folder that takes no new file (read-only, immutable) was written
    before; the temporary file cannot be made there, so it is written in place, as before."""
    import fakedet._parts as parts_module

    def refused(folder, mode=0o666):
        raise PermissionError(errno.EACCES, "Permission denied", str(folder))

    monkeypatch.setattr(parts_module, "new_part", refused)
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"old")
    assert scan(runner, tiny_weights, "-o", str(out), str(images)).exit_code == 0
    assert paths_in(out) == ["0.jpg", "1.jpg", "2.jpg"]


def test_a_refused_rename_copies_the_finished_file_over(runner, tiny_weights, images, tmp_path, monkeypatch):
    """A bind-mounted -o file cannot be renamed onto (EBUSY), nor another user's file in a sticky
    folder (EPERM): the finished file is copied over it, and the temporary file goes."""
    from fakedet.data import writers

    def busy(src, dst):
        raise OSError(errno.EBUSY, "Device or resource busy", dst)

    monkeypatch.setattr(writers.os, "replace", busy)
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"old")
    before = os.stat(out).st_ino
    assert scan(runner, tiny_weights, "-o", str(out), str(images)).exit_code == 0
    assert paths_in(out) == ["0.jpg", "1.jpg", "2.jpg"] and os.stat(out).st_ino == before
    assert parts(tmp_path) == []


def test_a_write_error_leaves_no_temporary_file_and_the_earlier_file_whole(runner, tiny_weights, images,
                                                                           tmp_path, monkeypatch):
    """A full disk mid-scan left the temporary file (the large one filling the disk) behind."""
    import pyarrow.parquet

    def full(self, table, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pyarrow.parquet.ParquetWriter, "write_table", full)
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"old")
    r = scan(runner, tiny_weights, "-o", str(out), str(images))
    assert r.exit_code == 2 and "No space left on device" in r.stderr
    assert out.read_bytes() == b"old" and parts(tmp_path) == []


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), RuntimeError("a bug")])
def test_a_failure_mid_scan_leaves_no_temporary_file_and_the_earlier_file_whole(runner, tiny_weights, images,
                                                                                tmp_path, monkeypatch, error):
    """A row group written, then the disk full (or a bug) at the next: the temporary file, which
    can be the large file filling the disk, goes, and FILE keeps what it held."""
    import pyarrow.parquet

    from fakedet.data import writers

    monkeypatch.setattr(writers, "PARQUET_ROWS", 1)
    real = pyarrow.parquet.ParquetWriter.write_table
    calls = []

    def second_fails(self, table, *a, **k):
        calls.append(1)
        if len(calls) > 1:
            raise error
        return real(self, table, *a, **k)

    monkeypatch.setattr(pyarrow.parquet.ParquetWriter, "write_table", second_fails)
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"old")
    r = runner.invoke(cli, ["scan", "-q", "-w", str(tiny_weights), "-j", "0", "-b", "1", "-f", "parquet",
                            "-o", str(out), str(images)])
    assert r.exit_code != 0 and len(calls) == 2
    assert out.read_bytes() == b"old" and parts(tmp_path) == []


def test_a_copy_that_fails_keeps_the_finished_file_and_says_where(runner, tiny_weights, images, tmp_path,
                                                                  monkeypatch):
    """Where the rename is refused and the copy over FILE fails too, the finished file was
    removed: it is kept under its temporary name, which the error gives."""
    import shutil

    from fakedet.data import writers

    monkeypatch.setattr(writers.os, "replace", lambda src, dst: (_ for _ in ()).throw(
        OSError(errno.EBUSY, "Device or resource busy", dst)))

    def copy_fails(src, dst):
        dst.write(src.read(100))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfileobj", copy_fails)
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"old")
    r = scan(runner, tiny_weights, "-o", str(out), str(images))
    assert r.exit_code == 2
    (kept,) = parts(tmp_path)
    assert f"it is kept at {tmp_path / kept}" in r.stderr
    assert paths_in(tmp_path / kept) == ["0.jpg", "1.jpg", "2.jpg"]


def test_a_file_this_user_may_not_write_is_not_replaced(runner, tiny_weights, images, tmp_path, monkeypatch):
    """A read-only FILE was refused ('Permission denied') before; a rename would replace it. It is
    written in place, which fails as before (faked here: a test run as root may write it)."""
    from fakedet.data import writers

    out = tmp_path / "scores.parquet"
    out.write_bytes(b"old")
    monkeypatch.setattr(writers, "_may_write", lambda path: path != str(out))
    opened = []
    import pyarrow.parquet

    real_init = pyarrow.parquet.ParquetWriter.__init__

    def record(self, where, *a, **k):
        opened.append(where)
        return real_init(self, where, *a, **k)

    monkeypatch.setattr(pyarrow.parquet.ParquetWriter, "__init__", record)
    scan(runner, tiny_weights, "-o", str(out), str(images))
    assert opened == [str(out)] and parts(tmp_path) == []  # in place, never a temporary file
