import io
import os

import pytest

from fakedet.data.sources import expand, iter_items, read_list, walk

from conftest import write_image


def test_walk_is_recursive_sorted_and_skips_non_images(tmp_path):
    for rel in ["b.jpg", "a.png", "sub/c.webp", "sub/deeper/d.JPG", "notes.txt", "z/readme.md",
                "phone/IMG_0001.HEIC", "web/e.avif"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    got = [os.path.relpath(i.path, tmp_path) for i in walk(str(tmp_path))]
    assert got == ["a.png", "b.jpg", os.path.join("phone", "IMG_0001.HEIC"), os.path.join("sub", "c.webp"),
                   os.path.join("sub", "deeper", "d.JPG"), os.path.join("web", "e.avif")]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_walk_survives_symlink_loops(tmp_path):
    write_image(tmp_path / "d" / "x.jpg")
    os.symlink(tmp_path / "d", tmp_path / "d" / "loop")
    os.symlink(tmp_path, tmp_path / "d" / "up")
    got = [i.path for i in walk(str(tmp_path))]
    assert got == [str(tmp_path / "d" / "x.jpg")]


def test_named_file_is_kept_whatever_its_extension(tmp_path):
    p = tmp_path / "photo.data"
    p.write_bytes(b"x")
    assert [i.path for i in expand(str(p))] == [str(p)]


def test_missing_path_becomes_an_item(tmp_path):
    items = list(expand(str(tmp_path / "missing.jpg")))
    assert len(items) == 1 and items[0].source == str(tmp_path / "missing.jpg")


def test_stdin_dash_reads_bytes():
    (item,) = list(expand("-", io.BytesIO(b"abc")))
    assert item.path == "-" and item.source == b"abc"


def test_read_list_lines_and_nul():
    assert list(read_list(io.BytesIO(b"a.jpg\nb c.jpg\r\n\nd.jpg"))) == ["a.jpg", "b c.jpg", "d.jpg"]
    assert list(read_list(io.BytesIO(b"a\nb.jpg\0c.jpg\0"), null=True)) == ["a\nb.jpg", "c.jpg"]


def test_read_list_is_lazy_across_chunks():
    data = b"\n".join(f"{i:06d}.jpg".encode() for i in range(30000))
    names = list(read_list(io.BytesIO(data)))
    assert len(names) == 30000 and names[12345] == "012345.jpg"


def test_iter_items_order(tmp_path):
    write_image(tmp_path / "dir" / "2.jpg")
    write_image(tmp_path / "dir" / "1.jpg")
    lst = io.BytesIO(f"{tmp_path / 'z.jpg'}\n-\n".encode())
    items = list(iter_items([str(tmp_path / "dir"), "nope.jpg"], lst))
    assert [os.path.basename(i.path) for i in items] == ["1.jpg", "2.jpg", "nope.jpg", "z.jpg", "-"]
    assert items[-1].error is not None
