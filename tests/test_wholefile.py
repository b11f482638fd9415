"""fakedet.cli.wholefile: after a write that failed half-way, only the failed batch's own piece
of a record is taken off the end of the file (a review found the first version cutting another
writer's lines and stderr's warnings, and leaving a hole of zeros after a plain `>`)."""

import os

import pytest

from fakedet.cli.wholefile import RecordEnds

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads the file back through /proc")

EARLIER = '{"path": "earlier.jpg"}\n'
BATCH = ['{"path": "a.jpg"}\n', '{"path": "b.jpg"}\n']


def _failed_batch(path, after_mark: bytes, mode="a"):
    """A file holding EARLIER, one whole batch marked, then ``after_mark`` as what a failed
    write (or another writer) left; the RecordEnds for it, with the failed batch pending."""
    path.write_text(EARLIER)
    fh = open(path, mode + "b" if mode != "a" else "ab", buffering=0)
    if mode == "r+":
        fh.seek(0, os.SEEK_END)
    ends = RecordEnds()

    class Stream:  # what the scan's records go through: text, on this descriptor
        encoding, errors = "utf-8", "surrogateescape"

        def fileno(self):
            return fh.fileno()

        def write(self, text):
            fh.write(text.encode())
            return len(text)

    stream = ends.tee(Stream())
    ends.start(stream.stream, "jsonl")
    for t in BATCH:
        stream.write(t)
    ends.mark()
    for t in BATCH:  # the next batch: its text pending, its bytes as given
        ends.pending.append(t)
    fh.write(after_mark)
    return ends, fh


def test_a_piece_of_the_failed_batch_is_taken_off_and_its_whole_records_stay(tmp_path):
    path = tmp_path / "s.jsonl"
    ends, fh = _failed_batch(path, (BATCH[0] + BATCH[1][:7]).encode())
    assert ends.cut()
    os.write(fh.fileno(), b'{"path": "next.jpg"}\n')  # the next writer of the same descriptor
    ends.close()
    fh.close()
    assert path.read_text() == EARLIER + "".join(BATCH) + BATCH[0] + '{"path": "next.jpg"}\n'


def test_a_plain_redirect_goes_on_at_the_new_end_not_past_a_hole(tmp_path):
    path = tmp_path / "s.jsonl"
    ends, fh = _failed_batch(path, BATCH[0][:5].encode(), mode="r+")
    assert ends.cut()
    os.write(fh.fileno(), b'{"path": "next.jpg"}\n')
    ends.close()
    fh.close()
    assert path.read_bytes() == (EARLIER + "".join(BATCH) + '{"path": "next.jpg"}\n').encode()


@pytest.mark.parametrize("foreign", [
    b'{"path": "other-process.jpg"}\n{"pa',  # another process appending to the same file
    b"fakedet: warning: no image files found in x\n" + BATCH[0][:5].encode(),  # stderr sent there too
    b"\0" * 8,  # a hole
    (BATCH[0] + BATCH[1] + "more").encode(),  # more than the batch
])
def test_bytes_that_are_not_all_the_failed_batchs_own_are_left_as_they_are(tmp_path, foreign):
    path = tmp_path / "s.jsonl"
    ends, fh = _failed_batch(path, foreign)
    before = path.read_bytes()
    assert not ends.cut()
    ends.close()
    fh.close()
    assert path.read_bytes() == before


def test_a_json_array_or_a_pipe_is_never_cut(tmp_path):
    ends = RecordEnds()
    with open(tmp_path / "s.json", "w") as fh:
        ends.start(fh, "json")
    assert ends.fd is None
    r, w = os.pipe()
    with os.fdopen(w, "w") as fh:
        ends.start(fh, "jsonl")
    os.close(r)
    assert ends.fd is None and not ends.cut()


def test_a_batch_that_went_out_in_part_without_an_error_stays_pending(tmp_path):
    """An unbuffered stdout (python -u) drops the rest of a short write without an error: the
    batch 'succeeded' with half its last record in the file. The mark stays before it, so that
    the next batch's failure cuts that half record (a review)."""
    path = tmp_path / "s.jsonl"
    ends, fh = _failed_batch(path, b"")
    fh.write((BATCH[0] + BATCH[1][:6]).encode())  # the failed batch, cut short silently
    ends.mark()
    assert ends.pending == BATCH  # held back
    ends.pending.append('{"path": "c.jpg"}\n')  # the next batch fails before writing a byte
    assert ends.cut()
    ends.close()
    fh.close()
    assert path.read_text() == EARLIER + "".join(BATCH) + BATCH[0]


def test_a_file_emptied_under_the_scan_still_gets_a_half_record_cut(tmp_path):
    """A copytruncate rotation empties the file between two batches: the next batch lands at its
    start (appending), and the mark must follow it there, or a later half record stays (a review)."""
    path = tmp_path / "s.jsonl"
    ends, fh = _failed_batch(path, b"")
    ends.pending = []
    os.truncate(path, 0)
    ends.pending = list(BATCH)  # a batch written whole after the rotation
    fh.write("".join(BATCH).encode())
    ends.mark()
    ends.pending = list(BATCH)  # then a batch that fails half-way
    fh.write(BATCH[0][:7].encode())
    assert ends.cut()
    ends.close()
    fh.close()
    assert path.read_text() == "".join(BATCH)
