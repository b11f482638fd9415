import io
import os
import re
import socket

import pytest

from fakedet.data.decode import MAX_FILE_BYTES, ImageError, read_bytes
from fakedet.data.preprocess import PreprocessConfig
from fakedet.data.sources import WalkFilter, expand, iter_items, read_list, walk

from conftest import fifo_watchdog, write_image


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
    filt = WalkFilter()
    got = [i.path for i in walk(str(tmp_path), filt=filt)]
    assert got == [str(tmp_path / "d" / "x.jpg")]
    assert filt.skipped_again == 2 and filt.skipped == 2  # d/loop and d/up: counted, not silent


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_a_folder_linked_twice_is_walked_once_and_the_summary_says_so(tmp_path):
    from fakedet.cli.scan import _skipped_text

    write_image(tmp_path / "basic" / "x.jpg")
    (tmp_path / "l2").mkdir()
    for name in ("bas", "bas2"):
        os.symlink(tmp_path / "basic", tmp_path / "l2" / name, target_is_directory=True)
    filt = WalkFilter()
    assert [i.path for i in walk(str(tmp_path / "l2"), filt=filt)] == [str(tmp_path / "l2" / "bas" / "x.jpg")]
    assert filt.counts() == (0, 0, 0, 1, 0, 0)
    assert _skipped_text(filt) == ("skipped 1 folder reached a second time, by a symbolic link or by its own path "
                                   "after a link to it (walked once, under the first path)")


def test_an_image_reached_through_a_folder_and_by_name_is_given_once(tmp_path):
    """`find photos | fakedet scan --files-from -` lists the folder, which is walked, and then
    each file in it: every image got two records. A file named twice by its name keeps both."""
    from fakedet.cli.scan import _skipped_text

    for name in ("a.jpg", "sub/b.jpg"):
        write_image(tmp_path / "photos" / name)
    photos = str(tmp_path / "photos")
    a, b = os.path.join(photos, "a.jpg"), os.path.join(photos, "sub", "b.jpg")
    listing = "\n".join([photos, a, os.path.join(photos, "sub"), b, ""]).encode()  # find's order
    filt = WalkFilter()
    assert [i.path for i in iter_items([], io.BytesIO(listing), filt=filt)] == [a, b]
    assert filt.skipped_twice == 3 and filt.skipped == 3
    assert _skipped_text(filt) == ("skipped 3 images reached a second time, through a folder and by name or "
                                   "through two folders (scored once, under the first path)")
    # by name first (find -depth), then the folder; a file named twice is scored twice
    filt = WalkFilter()
    assert [i.path for i in iter_items([a, a, photos], filt=filt)] == [a, a, b]
    assert filt.skipped_twice == 1
    # a folder named after the folder that holds it: nothing new, and no "no images" warning
    empty = []
    assert [i.path for i in iter_items([photos, os.path.join(photos, "sub")], on_empty=empty.append)] == [a, b]
    assert empty == []
    # two names of one file in one folder's walk (a hard link) keep their records, as before
    os.link(a, os.path.join(photos, "a-link.jpg"))
    filt = WalkFilter()
    assert [os.path.basename(i.path) for i in iter_items([photos], filt=filt)] == ["a-link.jpg", "a.jpg", "b.jpg"]
    assert filt.skipped_twice == 0
    # a file deleted in a long stream and another made on its inode later are told apart
    from fakedet.data.sources import Item, Reached

    reached = Reached()
    assert not reached.again(Item(b, source=b), walked=False, source=0)
    assert reached.again(Item(b, source=b), walked=True, source=1)  # the same file
    os.utime(b, ns=(1_000_000_000, 1_000_000_000))
    assert not reached.again(Item(b, source=b), walked=True, source=1)
    # a folder listed after its files (find -depth): each file once
    listing = "\n".join([a, os.path.join(photos, "a-link.jpg"), b, os.path.join(photos, "sub"), photos, ""])
    filt = WalkFilter()
    assert [os.path.basename(i.path) for i in iter_items([], io.BytesIO(listing.encode()), filt=filt)] == [
        "a.jpg", "a-link.jpg", "b.jpg"]
    assert filt.skipped_twice == 4  # sub's b.jpg, and photos' a-link.jpg, a.jpg and b.jpg
    # a single PATH keeps nothing (memory on a large folder)
    import unittest.mock

    with unittest.mock.patch.object(Reached, "again", side_effect=AssertionError("looked at")):
        assert len(list(iter_items([photos]))) == 3
    # a link to nothing reached through its folder and by name: one record too (a persona's two)
    gone = os.path.join(photos, "sub", "gone.jpg")
    os.symlink(os.path.join(photos, "nowhere.jpg"), gone)
    for inputs in ([photos, gone], [gone, photos]):
        assert [os.path.basename(i.path) for i in iter_items(inputs)].count("gone.jpg") == 1, inputs


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


needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")


@needs_fifo
def test_walk_gives_a_named_pipe_its_error_without_opening_it(tmp_path):
    write_image(tmp_path / "a.jpg")
    os.mkfifo(tmp_path / "b.jpg")
    write_image(tmp_path / "c.jpg")
    with fifo_watchdog(tmp_path / "b.jpg"):
        items = list(walk(str(tmp_path)))
    assert [os.path.basename(i.path) for i in items] == ["a.jpg", "b.jpg", "c.jpg"]
    assert items[1].error == "not a regular file (named pipe)" and items[1].source is None
    assert items[0].error is None and items[2].error is None


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no unix sockets")
def test_walk_gives_a_socket_its_error(tmp_path):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(tmp_path / "s.png"))
    except OSError:
        pytest.skip("cannot bind a unix socket here")
    try:
        (item,) = list(walk(str(tmp_path)))
    finally:
        s.close()
    assert item.error == "not a regular file (socket)"


@needs_fifo
def test_named_pipe_and_device_named_on_the_command_line_get_errors(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")
    with fifo_watchdog(tmp_path / "pipe.jpg"):
        (item,) = list(expand(str(tmp_path / "pipe.jpg")))
        assert item.error == "not a regular file (named pipe)" and item.source is None
        lst = io.BytesIO(f"{tmp_path / 'pipe.jpg'}\n".encode())
        (item,) = list(iter_items([], lst))
        assert item.error == "not a regular file (named pipe)"
    if os.path.exists("/dev/zero"):
        (item,) = list(expand("/dev/zero"))
        assert item.error == "not a regular file (character device)"


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_a_link_to_a_named_pipe_is_not_opened_and_a_dangling_link_is_left_to_decoding(tmp_path):
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe")
        os.symlink(tmp_path / "pipe", tmp_path / "a.jpg")
    os.symlink(tmp_path / "missing", tmp_path / "b.jpg")
    items = {os.path.basename(i.path): i for i in walk(str(tmp_path))}
    if hasattr(os, "mkfifo"):
        assert items["a.jpg"].error == "not a regular file (named pipe)"
    assert items["b.jpg"].error is None and items["b.jpg"].source == str(tmp_path / "b.jpg")


@needs_fifo
def test_read_bytes_never_opens_a_named_pipe(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")
    with fifo_watchdog(tmp_path / "pipe.jpg"):
        with pytest.raises(ImageError, match=r"^not a regular file \(named pipe\)$"):
            read_bytes(tmp_path / "pipe.jpg")


def test_read_bytes_is_bounded(tmp_path):
    p = tmp_path / "big.jpg"
    p.write_bytes(b"x" * 1000)
    assert read_bytes(p, max_bytes=1000) == b"x" * 1000
    with pytest.raises(ImageError, match="file too large"):
        read_bytes(p, max_bytes=999)
    assert MAX_FILE_BYTES >= 8 * PreprocessConfig().max_pixels  # a 16-bit RGBA TIFF at the pixel limit
    with pytest.raises(ImageError, match="is a directory"):
        read_bytes(tmp_path)
    with pytest.raises(ImageError, match="file not found"):
        read_bytes(tmp_path / "missing.jpg")
    if hasattr(os, "symlink"):
        os.symlink(tmp_path / "gone.jpg", tmp_path / "link.jpg")  # a link whose target is gone
        with pytest.raises(ImageError, match="broken symbolic link"):
            read_bytes(tmp_path / "link.jpg")
        with pytest.raises(ImageError, match="broken symbolic link"):  # as a shell completes it
            read_bytes(str(tmp_path / "link.jpg") + "/")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="empty file"):
        read_bytes(tmp_path / "empty.jpg")


def test_read_bytes_bounds_a_file_that_grows_while_read(tmp_path):
    from fakedet.data.decode import _read_bounded

    with pytest.raises(ImageError, match="file too large"):
        _read_bounded(io.BytesIO(b"x" * 5000), 10, 4000)  # fstat said 10 bytes
    assert _read_bounded(io.BytesIO(b"x" * 3000), 10, 4000) == b"x" * 3000


# The first bytes of common video files (container headers as their formats define them).
VIDEO_HEADS = {
    "clip.mp4": (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", "MP4"),
    "clip.mov": (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ", "QuickTime (MOV)"),
    "old.mov": (b"\x00\x00\x00\x08wide\x00\x10\x00\x00mdat", "QuickTime (MOV)"),
    "clip.3gp": (b"\x00\x00\x00\x18ftyp3gp5\x00\x00\x00\x00", "3GP"),
    "clip.webm": (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "WebM"),
    "clip.mkv": (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", "Matroska (MKV)"),
    "clip.avi": (b"RIFF\x00\x10\x00\x00AVI LIST", "AVI"),
    "clip.flv": (b"FLV\x01\x05\x00\x00\x00\x09", "FLV"),
    "clip.wmv": (bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"), "ASF (WMV)"),
    "clip.mpg": (b"\x00\x00\x01\xba\x44\x00\x04\x00", "MPEG program stream"),
    "clip.ts": (b"".join(b"\x47" + bytes(187) for _ in range(3)), "MPEG transport stream"),
}


@pytest.mark.parametrize("name", sorted(VIDEO_HEADS))
def test_a_video_file_is_named_as_such(tmp_path, name):
    from fakedet.data.decode import load

    head, container = VIDEO_HEADS[name]
    p = tmp_path / name
    p.write_bytes(head + bytes(4096))
    msg = f"video files are not supported ({container} container)"
    with pytest.raises(ImageError, match=re.escape(msg)):
        read_bytes(p)
    with pytest.raises(ImageError, match=re.escape(msg)):  # bytes given to the API
        load(p.read_bytes(), PreprocessConfig())


def test_a_large_video_is_refused_unread(tmp_path):
    p = tmp_path / "film.mp4"
    p.write_bytes(VIDEO_HEADS["clip.mp4"][0] + bytes(5000))
    with pytest.raises(ImageError, match=r"^video files are not supported \(MP4 container\)"):
        read_bytes(p, max_bytes=1000)  # not "file too large"


def test_images_in_iso_media_or_riff_are_not_taken_for_video(tmp_path):
    from fakedet.data.decode import video_container

    assert video_container(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic") == ""
    assert video_container(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1") == ""
    assert video_container(b"RIFF\x00\x10\x00\x00WEBPVP8 ") == ""
    assert video_container(b"\x89PNG\r\n\x1a\n") == "" and video_container(b"\xff\xd8\xff\xe0") == ""
    assert video_container(b"") == ""


def _tree(root):
    for rel in (".git/objects/x.png", ".cache/y.jpg", ".hidden.png", "a/1.png", "a/.dot.jpg",
                "thumbs/t.png", "raw/r.tif", "a/raw/r.tif", "keep.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    (root / "a" / "notes.txt").write_text("not an image: counted as a file skipped")
    (root / ".DS_Store").write_bytes(b"not an image either")


def _names(items, root):
    return [os.path.relpath(i.path, root).replace(os.sep, "/") for i in items]


def test_walk_skips_hidden_entries_and_counts_them(tmp_path):
    from fakedet.data.sources import WalkFilter

    _tree(tmp_path)
    filt = WalkFilter()
    assert _names(walk(str(tmp_path), filt=filt), tmp_path) == [
        "a/1.png", "a/raw/r.tif", "keep.jpg", "raw/r.tif", "thumbs/t.png"]
    # hidden: .cache .git .hidden.png a/.dot.jpg; other: a/notes.txt (.DS_Store is hidden, not looked at)
    assert filt.counts() == (4, 0, 1, 0, 0, 0)
    filt = WalkFilter(hidden=True)
    assert len(list(walk(str(tmp_path), filt=filt))) == 9 and filt.skipped == filt.skipped_other == 2


def test_exclude_patterns_match_names_or_paths_from_the_folder_given(tmp_path):
    from fakedet.data.sources import WalkFilter

    _tree(tmp_path)
    cases = {  # patterns: (what is walked, how many entries were skipped)
        ("thumbs",): (["a/1.png", "a/raw/r.tif", "keep.jpg", "raw/r.tif"], 1),
        ("*.tif",): (["a/1.png", "keep.jpg", "thumbs/t.png"], 2),
        ("raw/*.tif",): (["a/1.png", "a/raw/r.tif", "keep.jpg", "thumbs/t.png"], 1),  # anchored
        ("/raw/",): (["a/1.png", "a/raw/r.tif", "keep.jpg", "thumbs/t.png"], 1),
        ("raw/",): (["a/1.png", "keep.jpg", "thumbs/t.png"], 2),  # folders named raw, anywhere
        ("keep.jpg/",): (["a/1.png", "a/raw/r.tif", "keep.jpg", "raw/r.tif", "thumbs/t.png"], 0),
        ("*.png", "*.jpg"): (["a/raw/r.tif", "raw/r.tif"], 3),
        # as fd's and ripgrep's globs: * and ? stop at /, ** crosses folders
        ("a/*.tif",): (["a/1.png", "a/raw/r.tif", "keep.jpg", "raw/r.tif", "thumbs/t.png"], 0),
        ("a/**/*.tif",): (["a/1.png", "keep.jpg", "raw/r.tif", "thumbs/t.png"], 1),
        ("**/r.tif",): (["a/1.png", "keep.jpg", "thumbs/t.png"], 2),
        ("a/?/r.tif", "[!a]*/r.tif"): (["a/1.png", "a/raw/r.tif", "keep.jpg", "thumbs/t.png"], 1),
    }
    for patterns, (expected, skipped) in cases.items():
        filt = WalkFilter(exclude=patterns)
        assert _names(walk(str(tmp_path), filt=filt), tmp_path) == expected, patterns
        assert (filt.skipped_excluded, filt.skipped_hidden) == (skipped, 4), patterns


def test_named_paths_and_list_entries_are_scanned_whatever_the_filter(tmp_path):
    from fakedet.data.sources import WalkFilter

    _tree(tmp_path)
    filt = WalkFilter(exclude=("*.png",))
    named = [str(tmp_path / ".hidden.png"), str(tmp_path / ".git")]
    listed = io.BytesIO(os.fsencode(str(tmp_path / "a" / "1.png")) + b"\n")
    assert _names(iter_items(named, listed, filt=filt), tmp_path) == [".hidden.png", "a/1.png"]
    assert filt.skipped_excluded == 1  # .git/objects/x.png, found by walking the named .git


def test_read_list_drops_a_byte_order_mark_even_split_across_reads():
    assert list(read_list(io.BytesIO(b"\xef\xbb\xbfa.jpg\r\nb.jpg\r\n"))) == ["a.jpg", "b.jpg"]

    class Trickle(io.RawIOBase):  # one byte per read, as a slow pipe may give them
        def __init__(self, data):
            self.data = data

        def readable(self):
            return True

        def read1(self, n=-1):
            out, self.data = self.data[:1], self.data[1:]
            return out

    assert list(read_list(Trickle(b"\xef\xbb\xbfa.jpg\nb.jpg"))) == ["a.jpg", "b.jpg"]
    assert list(read_list(io.BytesIO(b"a\xef\xbb\xbf.jpg"))) == ["a\ufeff.jpg"]  # only at the start


def test_stdin_dash_is_bounded_like_a_file(monkeypatch):
    """``fakedet scan - < /dev/zero`` must end: no more than one image file may hold is read."""
    from fakedet.data import decode

    class Zeros(io.RawIOBase):
        def readable(self):
            return True

        def read(self, n=-1):
            assert n is not None and n >= 0, "read to the end of an endless stream"
            return b"\0" * n

    monkeypatch.setattr(decode, "MAX_FILE_BYTES", 1000)
    (item,) = list(expand("-", Zeros()))
    assert item.source is None and item.error == "input too large: more than 1000 bytes on standard input"
    (item,) = list(expand("-", io.BytesIO(b"x" * 1000)))
    assert item.source == b"x" * 1000 and item.error is None


def test_a_stdin_read_error_is_that_inputs_record_and_the_others_go_on(tmp_path):
    """``-`` next to other paths: a read error on stdin (EIO from a terminal gone) is one error
    record, not the end of the scan."""
    class Broken(io.RawIOBase):
        def readable(self):
            return True

        def read(self, n=-1):
            raise OSError(5, "Input/output error")

    (tmp_path / "a.png").write_bytes(b"x")
    items = list(iter_items(["-", str(tmp_path / "a.png")], stdin=Broken()))
    assert [i.path for i in items] == ["-", str(tmp_path / "a.png")]
    assert items[0].error == "cannot read standard input: Input/output error" and items[1].error is None


def test_a_gif_is_never_taken_for_a_transport_stream():
    """A transport stream is sniffed by its sync byte 0x47 ("G") every 188 bytes; a GIF starts
    with "G" too, and its palette may hold 0x47 at bytes 188 and 376 (here it does)."""
    from PIL import Image

    from fakedet.data.decode import load, video_container

    palette = [(i * 37 + c * 11) % 256 for i in range(256) for c in range(3)]
    palette[175] = palette[363] = 0x47  # file offsets 188 and 376: entries 58 (green), 121 (red)
    img = Image.frombytes("P", (16, 16), bytes(range(256)))
    img.putpalette(palette)
    buf = io.BytesIO()
    img.save(buf, "GIF", optimize=False)
    data = buf.getvalue()
    assert data[0] == data[188] == data[376] == 0x47
    assert video_container(data[:512]) == ""
    assert load(data, PreprocessConfig(min_size=8)).size == (16, 16)


def test_walk_goes_deeper_than_pythons_recursion_limit(tmp_path):
    import sys

    depth = sys.getrecursionlimit() + 100
    deep = tmp_path
    for _ in range(depth):
        deep = deep / "d"
    # os.makedirs itself recurses; build the tree level by level, relative to the last one
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        for _ in range(depth):
            os.mkdir("d")
            os.chdir("d")
        with open("x.jpg", "wb") as fh:
            fh.write(b"x")
    finally:
        os.chdir(cwd)
    write_image(tmp_path / "a.jpg")
    write_image(tmp_path / "z.jpg")
    try:
        got = [os.path.relpath(i.path, tmp_path) for i in walk(str(tmp_path))]
        assert got == ["a.jpg", os.path.join(*["d"] * depth, "x.jpg"), "z.jpg"]
    finally:  # bottom up, one level at a time: shutil.rmtree (pytest's clean-up) recurses
        os.remove(deep / "x.jpg")
        while deep != tmp_path:
            os.rmdir(deep)
            deep = deep.parent


def test_a_list_of_paths_piped_as_the_image_says_to_use_files_from(tmp_path, monkeypatch):
    """`find . | fakedet scan -` gives `-` a list of paths: its record says how to read one."""
    monkeypatch.chdir(tmp_path)
    write_image(tmp_path / "a.jpg")
    for listing in (b"./a.jpg\n./b.jpg\n", b"a.jpg\0", b"./a.jpg\r\n"):
        (item,) = expand("-", stdin=io.BytesIO(listing))
        assert "--files-from -" in item.error, listing
    image = (tmp_path / "a.jpg").read_bytes()
    for data in (image, b"./missing.jpg\n", b"plain text\n"):  # an image, or no such file: as before
        (item,) = expand("-", stdin=io.BytesIO(data))
        assert item.error is None and item.source == data


@pytest.mark.parametrize("pattern,path,matches", [
    ("raw/*.tif", "raw/r.tif", True), ("raw/*.tif", "raw/sub/r.tif", False),
    ("raw/**/*.tif", "raw/r.tif", True), ("raw/**/*.tif", "raw/a/b/r.tif", True),
    ("raw/**", "raw/a/b", True), ("raw/**", "raw", False), ("**/x", "x", True), ("**/x", "a/b/x", True),
    ("a/**.tif", "a/b/c.tif", False), ("a/**.tif", "a/c.tif", True),  # ** inside a segment is *
    ("a/?", "a/b", True), ("a/?", "a//", False),
    ("a/[bc]x", "a/cx", True), ("a/[a/b]c", "a//c", False),  # no class matches /
    ("a/[!b]x", "a/cx", True), ("a/[!b]x", "a/bx", False), ("a/[^b]x", "a/bx", False), ("a/[!b]x", "a//x", False),
    ("a/[]x]", "a/]", True), ("a/[!]x]/b", "a/]/b", False), ("a/[!]x]/b", "a/y/b", True),
    ("a/[z-a]", "a/b", False), ("a/[a-c-e]", "a/-", True), ("a/[", "a/[", True), ("a/[[]", "a/[", True),
    (r"a/\*.tif", "a/*.tif", True), (r"a/\*.tif", "a/x.tif", False),
])
def test_path_globs_follow_gitignore(pattern, path, matches):
    """-E patterns with /: fd's and ripgrep's (gitignore's) glob rules; any pattern compiles."""
    from fakedet.data.sources import glob_regex

    assert bool(glob_regex(pattern).fullmatch(path)) is matches


def test_a_pattern_that_is_no_valid_regex_class_is_no_crash(tmp_path):
    write_image(tmp_path / "a" / "b.jpg")
    filt = WalkFilter(exclude=("a/[z-a]", "a/[&&]", "a/[--x]"))
    assert [os.path.relpath(i.path, tmp_path) for i in walk(str(tmp_path), filt=filt)] == ["a/b.jpg"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_a_broken_link_is_named_as_one_wherever_a_path_is_given(tmp_path, tiny_weights):
    """A list of paths, a data folder or a weights file that is a link to nothing: the error
    says so, rather than "No such file or directory" or "not found"."""
    from click.testing import CliRunner

    from fakedet.cli import cli

    os.symlink(tmp_path / "gone", tmp_path / "link")
    runner = CliRunner()
    for args in (["scan", "--files-from", str(tmp_path / "link"), "-w", str(tiny_weights)],
                 ["eval", str(tmp_path / "link"), "-w", str(tiny_weights)],
                 ["eval", str(tmp_path / "link") + "/", "-w", str(tiny_weights)],
                 ["info", "-w", str(tmp_path / "link")]):
        r = runner.invoke(cli, args)
        assert r.exit_code == 2, (args, r.output)
        assert "broken symbolic link (its target does not exist)" in r.output, (args, r.output)
    os.symlink("loop", tmp_path / "loop")  # a link to itself: not called a broken one
    r = runner.invoke(cli, ["info", "-w", str(tmp_path / "loop")])
    assert r.exit_code == 2 and "weights file cannot be read (Too many levels of symbolic links)" in r.output, r.output


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_weights_path_that_is_no_file_says_what_it_is(tmp_path, tiny_weights):
    """-w naming a named pipe or a device is no "not found" (the name is there); a trailing
    slash the user typed stays in the message (Path would drop it)."""
    from click.testing import CliRunner

    from fakedet.cli import cli

    os.mkfifo(tmp_path / "fifo")
    runner = CliRunner()
    for weights, said in ((tmp_path / "fifo", "weights file is not a regular file (named pipe): "),
                          ("/dev/null", "weights file is not a regular file (character device): "),
                          (f"{tmp_path}/gone/", "weights file not found: "),
                          (f"{tiny_weights}/", "weights file cannot be read (Not a directory): "),
                          ("", "weights path is empty")):
        r = runner.invoke(cli, ["info", "-w", str(weights)])
        assert r.exit_code == 2 and f"{said}{weights}\n" in r.output, (weights, r.output)


def test_a_weights_file_behind_a_closed_folder_is_no_not_found(monkeypatch, tmp_path):
    """A weights file in a folder that may not be searched: the reason, not "not found" (as
    root, permissions cannot make it happen, so stat is made to refuse)."""
    from fakedet.data import sources

    def refuse(path, *a, **kw):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(sources.os, "stat", refuse)
    assert sources.missing_message("weights file", tmp_path / "w.safetensors") == \
        f"weights file cannot be read (Permission denied): {tmp_path / 'w.safetensors'}"


@pytest.mark.skipif(not os.path.isdir("/dev/fd"), reason="needs /dev/fd")
def test_a_pipe_named_by_its_descriptor_is_pointed_to_dash(tmp_path):
    """``fakedet scan /dev/stdin`` or ``<(cat x.jpg)`` names a pipe: refused unread, as every
    pipe is, with a pointer to ``-``; a named pipe in a folder gets no such pointer."""
    r, w = os.pipe()
    try:
        with pytest.raises(ImageError, match=r"^not a regular file \(named pipe\); to read an image piped in, "
                                             r"give - as the path$"):
            read_bytes(f"/dev/fd/{r}")
    finally:
        os.close(r)
        os.close(w)
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.jpg")
        with fifo_watchdog(tmp_path / "pipe.jpg"):
            with pytest.raises(ImageError, match=r"^not a regular file \(named pipe\)$"):
                read_bytes(tmp_path / "pipe.jpg")


def test_bytes_that_name_a_file_get_a_hint(tmp_path):
    """os.fsencode(path) is image data to the API; the error says what was meant."""
    import os

    from fakedet import Detector

    from conftest import write_image

    path = write_image(tmp_path / "a.jpg")
    det = Detector.load(workers=0)
    named, other = det.predict([os.fsencode(str(path)), b"hello"])
    assert "these bytes look like a file's name" in named.error and "str or a Path" in named.error
    assert other.error == "not an image (unrecognised format)"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_looking_at_a_files_first_bytes_never_waits_on_a_pipe(tmp_path):
    """A review: a file not named as an image, listed as a regular file and then replaced by a
    named pipe before the walk reads its first bytes, held the walk for ever (open() waits for
    a writer). It is opened without blocking and checked as opened."""
    import threading

    from fakedet.data.sources import image_by_content

    fifo = tmp_path / "IMG-20240502-WA0001"
    os.mkfifo(fifo)

    class Listed:  # what the listing said before the swap
        def is_file(self):
            return True

    got = []
    t = threading.Thread(target=lambda: got.append(image_by_content(str(fifo), Listed())), daemon=True)
    t.start()
    t.join(10)
    assert got == [False]
    jpeg = write_image(tmp_path / "IMG-20240502-WA0002")
    assert image_by_content(str(jpeg)) and not image_by_content(str(tmp_path / "missing"))
    os.rename(jpeg, tmp_path / "photo.mp4")  # named as what is never an image: not opened
    assert not image_by_content(str(tmp_path / "photo.mp4"))


@pytest.mark.skipif(os.name != "posix", reason="POSIX only: on Windows a file held open cannot be read either")
def test_an_unreadable_file_with_no_extension_in_a_folder_gets_its_record(tmp_path, monkeypatch):
    """A docs check: a phone's save (no extension) that the walk could not open to look at was
    counted among the files that are no image, with no record; one named .jpg got 'permission
    denied'. An unreadable file named as something else stays skipped."""
    write_image(tmp_path / "IMG-20240502-WA0001")
    (tmp_path / "notes.bak").write_bytes(b"x")
    (tmp_path / ".viminfo").write_bytes(b"x")  # a dotfile left by sudo: no extension, yet no photo
    real_open = os.open

    def denied(path, *a, **k):  # chmod 000 does not stop root, who runs the tests in CI
        if os.path.basename(path) in ("IMG-20240502-WA0001", "notes.bak", ".viminfo"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *a, **k)

    monkeypatch.setattr(os, "open", denied)
    filt = WalkFilter(hidden=True)
    items = list(iter_items([str(tmp_path)], filt=filt))
    assert [os.path.basename(i.path) for i in items] == ["IMG-20240502-WA0001"]
    assert filt.skipped_other == 2
