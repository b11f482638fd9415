"""Inputs that arrive slowly (paths from a pipe): each is scored when it comes, not when a batch
fills up or the stream ends."""

import os
import select
import subprocess
import sys
import threading
import time

import pytest

from fakedet.data.sources import Item, read_list
from fakedet.inference.pipeline import Batches, LiveItems, ready

from conftest import write_image


def _gated(items, gates, late=None):
    """``items`` in order; before item i (i >= 1) waits for ``gates[i - 1]``, at most 10 s,
    noting in ``late`` each item that had to go without its gate."""
    for i, item in enumerate(items):
        if i and not gates[i - 1].wait(10) and late is not None:
            late.append(i)
        yield item


def test_read_list_gives_a_path_as_soon_as_its_line_is_complete():
    r, w = os.pipe()
    os.write(w, b"a.jpg\nb.j")
    got = []
    with os.fdopen(r, "rb") as stream:
        t = threading.Thread(target=lambda: got.append(next(read_list(stream))), daemon=True)
        try:
            t.start()
            t.join(10)
            before_the_end = list(got)
        finally:
            os.close(w)  # the end of the list: a reader still waiting returns
            t.join(10)
    assert before_the_end == ["a.jpg"], "read_list waited for more of the stream than one line"


def test_batches_of_live_items_end_when_the_next_input_is_late():
    gates = [threading.Event(), threading.Event()]  # hold "b" and "c" back
    batches = Batches(LiveItems(_gated([Item("a"), Item("b"), Item("c")], gates)), size=32, linger=0.05)
    assert [i.path for i in next(batches)] == ["a"]
    assert not ready(batches)  # nothing waiting: the next batch would wait for input
    for gate in gates:
        gate.set()
    assert [i.path for b in batches for i in b] == ["b", "c"]
    assert ready(batches)  # the end has come


def test_a_live_batch_is_scored_soon_after_its_first_input_however_steadily_more_come():
    """Inputs each 0.03 s after the last never leave a 0.1 s gap: without a deadline the first
    batch would wait for all 32."""
    import time as _time

    def steady():
        for i in range(40):
            _time.sleep(0.03)
            yield Item(str(i))

    batches = Batches(LiveItems(steady()), size=32, linger=0.1, wait=0.2)
    assert len(next(batches)) < 20


def test_batches_of_a_list_are_full_and_always_ready():
    batches = Batches([Item(str(i)) for i in range(5)], size=2)
    assert ready(batches)
    assert [len(b) for b in batches] == [2, 2, 1]


def test_live_items_raise_a_reading_error_in_order():
    def broken():
        yield Item("a")
        raise OSError("list file gone")

    items = LiveItems(broken())
    assert next(items).path == "a"
    with pytest.raises(OSError, match="list file gone"):
        next(items)


def test_live_items_whose_source_exits_raise_that_instead_of_waiting():
    """A source that raises SystemExit (no Exception) ended the reading thread with no end
    sent: the consumer waited for the next input for ever."""
    def exits():
        yield Item("a")
        raise SystemExit(3)

    items = LiveItems(exits())
    assert next(items).path == "a"
    assert items.poll(5)  # the end (its error) is there, not awaited
    with pytest.raises(SystemExit):
        next(items)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_scan_of_live_inputs_scores_each_before_the_next_arrives(tiny_weights, tmp_path, workers):
    """The next input is released only once the previous one's record has come out: a scan that
    waited for a full batch (or read ahead for the decoding threads) would stall here."""
    from fakedet import Detector

    paths = [write_image(tmp_path / f"{i}.jpg", size=(64, 64), seed=i) for i in range(4)]
    gates = [threading.Event() for _ in paths]
    det = Detector.load(tiny_weights, device="cpu", workers=workers, batch_size=32)
    seen, late = [], []
    done = threading.Event()

    def consume():
        for batch in det.iter_batches(LiveItems(_gated([str(p) for p in paths], gates, late))):
            seen.extend(r.path for r in batch)
            gates[len(seen) - 1].set()
        done.set()

    threading.Thread(target=consume, daemon=True).start()
    assert done.wait(60), f"stalled after {len(seen)} records"
    assert seen == [str(p) for p in paths]
    assert not late, f"inputs {late} came only because the scan waited for them before scoring"


def _broken_after(n, exc):
    for i in range(n):
        yield Item(str(i))
    raise exc


def test_an_error_of_the_inputs_ends_the_batches_after_the_batch_begun():
    batches = Batches(_broken_after(3, OSError("gone")), size=2)
    assert [[i.path for i in b] for b in batches] == [["0", "1"], ["2"]]
    with pytest.raises(OSError, match="gone"):
        batches.check()


def test_live_items_keep_raising_their_error():
    items = LiveItems(_broken_after(1, OSError("gone")))
    assert next(items).path == "0"
    for _ in range(2):  # raised again, never a wait for an item that cannot come
        with pytest.raises(OSError, match="gone"):
            next(items)


@pytest.mark.parametrize("workers", [0, 2])
def test_the_records_before_an_error_of_the_inputs_are_scored_before_it_is_raised(tiny_weights, tmp_path,
                                                                                  workers):
    from fakedet import Detector

    paths = [str(write_image(tmp_path / f"{i}.jpg", size=(64, 64), seed=i)) for i in range(5)]

    def inputs():
        yield from paths
        raise OSError("the list broke off")

    det = Detector.load(tiny_weights, device="cpu", workers=workers, batch_size=2)
    seen = []
    with pytest.raises(OSError, match="broke off"):
        for batch in det.iter_batches(inputs()):
            seen.extend(r.path for r in batch)
    assert seen == paths


def test_scan_keeps_the_records_made_when_the_list_breaks_off(runner, tiny_weights, tmp_path, monkeypatch):
    import json

    from fakedet.cli import cli
    from fakedet.data import sources

    a, b = (str(write_image(tmp_path / f"{n}.jpg", size=(64, 64), seed=i)) for i, n in enumerate("ab"))

    def broken_list(stream, null=False):
        yield b
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(sources, "read_list", broken_list)
    (tmp_path / "list.txt").write_text(b + "\n")
    res = runner.invoke(cli, ["scan", "-w", str(tiny_weights), "-f", "json", a, "--files-from",
                              str(tmp_path / "list.txt"), "--report", str(tmp_path / "r.html")])
    assert res.exit_code == 2, res.stderr
    assert [r["path"] for r in json.loads(res.stdout)] == [a, b]
    reason = f"cannot read --files-from {tmp_path / 'list.txt'}: Input/output error"
    assert reason in res.stderr
    assert reason in (tmp_path / "r.html").read_text()  # the report says why it ends early


@pytest.mark.slow
def test_scan_files_from_a_pipe_writes_each_record_before_the_next_path(tiny_weights, tmp_path):
    paths = [write_image(tmp_path / f"{i}.jpg", size=(64, 64), seed=i) for i in range(3)]
    p = subprocess.Popen([sys.executable, "-m", "fakedet", "scan", "-w", str(tiny_weights),
                          "--files-from", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, bufsize=0, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        for path in paths:
            p.stdin.write(f"{path}\n".encode())
            p.stdin.flush()
            deadline = time.monotonic() + 60
            line = b""
            while not line.endswith(b"\n") and time.monotonic() < deadline:
                if select.select([p.stdout], [], [], 1)[0]:
                    line += p.stdout.read(1)
            assert line.startswith(str(path).encode()), f"no record for {path} while the list stayed open"
        out, err = p.communicate(timeout=60)  # closes the list: the scan ends
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert out == b""


@pytest.mark.slow
def test_the_progress_bar_shows_the_first_record_before_the_next_path(tiny_weights, tmp_path):
    paths = [write_image(tmp_path / f"{i}.jpg", size=(64, 64), seed=i) for i in range(2)]
    err = open(tmp_path / "err.txt", "wb")
    out = tmp_path / "out.tsv"
    p = subprocess.Popen([sys.executable, "-m", "fakedet", "scan", "-w", str(tiny_weights), "--progress",
                          "-o", str(out), "--files-from", "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=err, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        p.stdin.write(f"{paths[0]}\n".encode())
        p.stdin.flush()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (out.exists() and out.read_text()):
            time.sleep(0.05)
        time.sleep(0.5)
        shown = (tmp_path / "err.txt").read_text()
        p.communicate(input=f"{paths[1]}\n".encode(), timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
        err.close()
    assert "\r1img" in shown or "\n1img" in shown or shown.startswith("1img"), shown


def _on_a_terminal(tiny_weights, folder, *args):
    """What a terminal shows of ``fakedet scan`` with stdout and stderr both on it (a pty)."""
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a bar needs a width
    p = subprocess.Popen([sys.executable, "-m", "fakedet", "scan", "-w", str(tiny_weights), "-b", "4", *args,
                          str(folder)], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    shown = b""
    try:
        while True:
            if not select.select([master], [], [], 120)[0]:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            shown += chunk
        p.wait(60)
    finally:
        if p.poll() is None:
            p.kill()
        os.close(master)
    text = shown.decode("utf-8", "replace")
    assert p.returncode == 0, text
    return text


@pytest.fixture
def twenty(tmp_path):
    folder = tmp_path / "imgs"
    for i in range(20):
        write_image(folder / f"{i:02d}.jpg", size=(64, 64), seed=i)
    return folder


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_records_and_the_progress_bar_on_one_terminal_keep_their_own_lines(tiny_weights, twenty):
    """`fakedet scan DIR` typed at a terminal: stdout and stderr are the same terminal, and no
    record may start on the line where the progress bar was drawn."""
    text = _on_a_terminal(tiny_weights, twenty)
    assert "img/s]" in text, text  # the bar was drawn
    starts = [i for i in range(len(text)) if text.startswith(str(twenty), i)]
    assert len(starts) == 20, text
    for i in starts:  # each record begins a line (after the bar was wiped with \r)
        assert i == 0 or text[i - 1] in "\r\n", text[max(0, i - 120):i + 40]


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_json_records_on_the_bars_terminal_stay_whole(tiny_weights, twenty):
    """A json array's last record of a batch waits on its line for the next comma: a bar drawn
    there would be wiped over the record. json on the bar's terminal gets no bar."""
    import json

    text = _on_a_terminal(tiny_weights, twenty, "-f", "json")
    records, _, summary = text.replace("\r\n", "\n").partition("\nfakedet: ")
    assert "img/s]" not in records, text
    assert len(json.loads(records)) == 20, text
    assert summary.startswith("20 images"), text
