"""``fakedet scan --resume``: a stopped scan carries on in its -o file, each input with one record."""

import csv
import importlib
import io
import json
import os
import subprocess
import sys

import pytest

from fakedet.cli import cli
from fakedet.data.writers import Writer, recorded
from fakedet.inference.detector import Result

from conftest import write_image

NAMES = ["a.jpg", "b.png", "c.jpg", "d.webp", "e.jpg"]


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    for i, name in enumerate(NAMES):
        write_image(folder / name, {"png": "PNG", "webp": "WEBP"}.get(name[-3:], "JPEG"), seed=i)
    return folder


def scan(runner, tiny_weights, *args):
    return runner.invoke(cli, ["scan", "--weights", str(tiny_weights), "--workers", "0", *args])


def paths_of(text: str, fmt: str) -> list:
    if fmt == "jsonl":
        return [json.loads(line)["path"] for line in text.splitlines()]
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0] == ["path", "p_fake", "label", "error"]
        return [row[0] for row in rows[1:]]
    return [line.split("\t")[0] for line in text.splitlines()]


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl"])
def test_a_resumed_scan_adds_only_the_missing_records(runner, tiny_weights, photos, tmp_path, fmt):
    out = tmp_path / f"records.{fmt}"
    first = scan(runner, tiny_weights, "-f", fmt, "-o", str(out), str(photos / "a.jpg"), str(photos / "b.png"))
    assert first.exit_code == 0, first.stderr
    before = out.read_text()
    r = scan(runner, tiny_weights, "--resume", "-f", fmt, "-o", str(out), str(photos))
    assert r.exit_code == 0, r.stderr
    text = out.read_text()
    assert text.startswith(before)  # the earlier records stay as they were
    assert sorted(os.path.basename(p) for p in paths_of(text, fmt)) == NAMES  # one record each, one header
    assert "3 images" in r.stderr and "skipped 2 inputs with a record in the -o file already" in r.stderr

    again = scan(runner, tiny_weights, "--resume", "-f", fmt, "-o", str(out), str(photos))
    assert again.exit_code == 0, again.stderr
    assert "nothing left to scan: 5 inputs" in again.stderr
    assert out.read_text() == text


def test_an_unfinished_last_record_is_taken_off_and_its_input_scanned_again(runner, tiny_weights, photos, tmp_path):
    out = tmp_path / "records.jsonl"
    assert scan(runner, tiny_weights, "-f", "jsonl", "-o", str(out), str(photos / "a.jpg"),
                str(photos / "b.png")).exit_code == 0
    lines = out.read_text().splitlines(keepends=True)
    out.write_text(lines[0] + lines[1][:25])  # a scan killed while writing b.png's record
    r = scan(runner, tiny_weights, "--resume", "-f", "jsonl", "-o", str(out), str(photos))
    assert r.exit_code == 0, r.stderr
    assert "ends in an unfinished record" in r.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]  # every line whole
    assert sorted(os.path.basename(d["path"]) for d in records) == NAMES
    assert out.read_text().startswith(lines[0])


def test_resume_without_a_file_scans_everything(runner, tiny_weights, photos, tmp_path):
    out = tmp_path / "new.csv"
    r = scan(runner, tiny_weights, "--resume", "-f", "csv", "-o", str(out), str(photos))
    assert r.exit_code == 0, r.stderr
    assert sorted(os.path.basename(p) for p in paths_of(out.read_text(), "csv")) == NAMES


def test_records_that_name_the_inputs_otherwise_are_told(runner, tiny_weights, photos, tmp_path, monkeypatch):
    out = tmp_path / "records.tsv"
    assert scan(runner, tiny_weights, "-o", str(out), str(photos / "a.jpg")).exit_code == 0
    monkeypatch.chdir(tmp_path)
    r = scan(runner, tiny_weights, "--resume", "-o", str(out), "photos")  # relative, not as before
    assert r.exit_code == 0
    assert "--resume skipped nothing" in r.stderr


@pytest.mark.parametrize("args, words", [
    (["--resume"], "--resume needs -o FILE"),
    (["--resume", "-o", "-"], "--resume needs -o FILE"),
    (["--resume", "-f", "json", "-o", "x.json"], "tsv, csv or jsonl"),
    (["--resume", "-o", "x.tsv", "--report", "r.html"], "in a scan of its own"),
])
def test_resume_refuses_what_it_cannot_carry_on(runner, tiny_weights, photos, tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    r = scan(runner, tiny_weights, *args, str(photos))
    assert r.exit_code == 2 and words in r.stderr, r.stderr
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "x.tsv").exists()


def test_a_file_of_another_format_is_refused_untouched(runner, tiny_weights, photos, tmp_path):
    out = tmp_path / "records.jsonl"
    assert scan(runner, tiny_weights, "-f", "jsonl", "-o", str(out), str(photos / "a.jpg")).exit_code == 0
    before = out.read_bytes()
    r = scan(runner, tiny_weights, "--resume", "-f", "tsv", "-o", str(out), str(photos))
    assert r.exit_code == 2 and "line 1 is not a tsv record" in r.stderr
    assert out.read_bytes() == before


def recorded_paths(lines, fmt):
    """The paths :func:`recorded` reads, as a set, and how many bytes hold whole records."""
    outcomes, whole = recorded(lines, fmt)
    return set(outcomes), whole


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl"])
def test_every_name_a_writer_writes_is_read_back_as_the_input_named_it(fmt):
    names = ["plain.jpg", "tab\there\nnewline\r.jpg", "back\\slash\\x41\\t.jpg", "=HYPERLINK.jpg", "'quoted.jpg",
             "esc\x1b[31m\x9b2J\x7f.jpg", "x\u202egpj.exe", "bytes\udcff\udc80.jpg", "中文 😀.png", 'q"c,.jpg']
    buf = io.StringIO()
    w = Writer(buf, fmt)
    w.write([Result(n, 0.5, "uncertain") for n in names] + [Result("gone.jpg", None, None, error="x\ty")])
    w.close()
    data = buf.getvalue().encode("utf-8", "surrogateescape")
    assert recorded_paths(io.BytesIO(data), fmt) == ({*names, "gone.jpg"}, len(data))


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl"])
def test_each_record_is_read_back_with_its_outcome(fmt):
    buf = io.StringIO()
    Writer(buf, fmt).write([Result("f.jpg", 0.9999, "fake"), Result("u.jpg", 0.5, "uncertain"),
                            Result("r.jpg", 0.0, "real"), Result("e.jpg", None, None, error="truncated")])
    data = buf.getvalue().encode()
    assert recorded(io.BytesIO(data), fmt) == ({"f.jpg": "fake", "u.jpg": "uncertain", "r.jpg": "real",
                                                "e.jpg": "error"}, len(data))


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl"])
def test_the_exit_status_counts_the_records_a_resumed_scan_skipped(runner, tiny_weights, photos, tmp_path, fmt):
    """A scan stopped and carried on ends as one scan of every input would: a fake or an error
    recorded before the stop still sets its exit status."""
    out = tmp_path / f"records.{fmt}"
    with open(out, "w", newline="") as fh:
        Writer(fh, fmt).write([Result(str(photos / "a.jpg"), 0.9999, "fake")])
    # -t 1.0: no image this scan scores is labelled fake
    r = scan(runner, tiny_weights, "--resume", "--exit-code", "-t", "1.0", "-f", fmt, "-o", str(out), str(photos))
    assert r.exit_code == 1, r.stderr
    assert "0 fake" in r.stderr and "of these, 1 labelled fake, which the exit status counts" in r.stderr
    assert scan(runner, tiny_weights, "--resume", "--exit-code", "-f", fmt, "-o", str(out), str(photos)).exit_code == 1
    r = scan(runner, tiny_weights, "--resume", "-f", fmt, "-o", str(out), str(photos))
    assert r.exit_code == 0 and "1 labelled fake, which the exit status counts with --exit-code" in r.stderr, r.stderr

    with open(out, "a", newline="") as fh:  # an error record for an input named again
        Writer(fh, fmt, header=False).write([Result(str(tmp_path / "gone.jpg"), None, None, error="file not found")])
    r = scan(runner, tiny_weights, "--resume", "-f", fmt, "-o", str(out), str(photos), str(tmp_path / "gone.jpg"))
    assert r.exit_code == 3, r.stderr
    assert "nothing left to scan: 6 inputs" in r.stderr
    assert "of these, 1 labelled fake and 1 with an error record" in r.stderr


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl"])
def test_an_editors_byte_order_mark_blank_lines_and_crlf_are_read_past(fmt):
    buf = io.StringIO()
    Writer(buf, fmt).write([Result("a.jpg", 0.5, "uncertain"), Result("b.jpg", 0.5, "uncertain")])
    data = b"\xef\xbb\xbf" + buf.getvalue().replace("\n", "\r\n\n").encode()
    assert recorded_paths(io.BytesIO(data), fmt) == ({"a.jpg", "b.jpg"}, len(data))


def test_a_csv_record_cut_inside_a_quoted_newline_is_unfinished():
    buf = io.StringIO()
    Writer(buf, "csv").write([Result("a.jpg", 0.5, "uncertain"), Result("new\nline.jpg", 0.5, "uncertain")])
    data = buf.getvalue().encode()
    inside = data.index(b"line.jpg")  # just after the name's own newline
    assert recorded_paths(io.BytesIO(data[:inside]), "csv") == ({"a.jpg"}, data.index(b'"new'))
    assert recorded_paths(io.BytesIO(data[:-1]), "csv") == ({"a.jpg"}, data.index(b'"new'))


def test_inputs_reached_another_way_or_told_apart_get_no_second_record(runner, tiny_weights, photos, tmp_path,
                                                                       monkeypatch):
    """A file reached again through a link, or named ./photos/a.jpg after photos/, and an error
    record of the argument list (a name split at its spaces) are not written again."""
    os.symlink(photos, tmp_path / "link")
    write_image(tmp_path / "sp ace.jpg")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "records.tsv"
    args = ["-o", str(out), "photos", "./photos/a.jpg", "link", "sp", "ace.jpg"]
    first = scan(runner, tiny_weights, *args)
    assert first.exit_code == 3, first.stderr
    before = out.read_text()
    assert len(before.splitlines()) == len(NAMES) + 2
    for resumed in (args, ["-o", str(out), "./photos//", "photos/a.jpg", "link/", "sp", "ace.jpg"]):
        r = scan(runner, tiny_weights, "--resume", *resumed)
        assert r.exit_code == 3 and "nothing left to scan" in r.stderr, r.stderr  # the error records, as before
        assert out.read_text() == before


def test_a_resume_that_cannot_load_its_model_leaves_the_file_as_it_was(runner, photos, tmp_path):
    out = tmp_path / "records.jsonl"
    out.write_bytes(b'{"path": "x.jpg", "p_fake": 0.5, "label": "uncertain", "error": null}\n{"path": "y')
    before = out.read_bytes()
    r = runner.invoke(cli, ["scan", "-w", str(tmp_path / "missing.safetensors"), "--resume", "-f", "jsonl",
                            "-o", str(out), str(photos)])
    assert r.exit_code == 2
    assert out.read_bytes() == before


@pytest.mark.skipif(not os.path.exists("/dev/stdout"), reason="no /dev/stdout")
def test_resume_to_stdout_by_another_name_is_refused(tiny_weights, photos, tmp_path):
    """``-o /dev/stdout >> records.csv``: stdout gets no csv header again in the middle of the file."""
    out = tmp_path / "records.csv"
    out.write_text("path,p_fake,label,error\n")
    with open(out, "a") as fh:
        done = subprocess.run([sys.executable, "-m", "fakedet", "scan", "-w", str(tiny_weights), "--resume",
                               "-f", "csv", "-o", "/dev/stdout", str(photos)],
                              stdout=fh, stderr=subprocess.PIPE, timeout=120)
    assert done.returncode == 2 and b"a file, not stdout" in done.stderr
    assert out.read_text() == "path,p_fake,label,error\n"


def test_the_hint_to_resume_names_only_what_resume_can_carry_on():
    from fakedet.cli.scan import _LazyFile, _resume_hint

    assert "with --resume scans the rest into r.tsv" in _resume_hint(_LazyFile("r.tsv"), "tsv", 3)
    assert "with --resume instead of --report" in _resume_hint(_LazyFile("r.tsv"), "tsv", 3, report=True)
    assert _resume_hint(_LazyFile("r.tsv"), "tsv", 3, local=False) == ""  # the Ray engine: refused there
    assert _resume_hint(_LazyFile("r.json"), "json", 3) == "" and _resume_hint(_LazyFile("r.tsv"), "tsv", 0) == ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="open file description locks are Linux's")
def test_a_second_scan_into_a_file_another_scan_is_writing_is_refused(runner, tiny_weights, photos, tmp_path,
                                                                      monkeypatch):
    """Two scans into one -o file (two lists at once, two --resume runs) lost one's records, or
    left half a record: the file is locked while a scan writes it."""
    scan_module = importlib.import_module("fakedet.cli.scan")  # (fakedet.cli.scan is also the command)

    out = tmp_path / "records.tsv"
    out.write_text("earlier\t0.5\tuncertain\t\n")
    held = os.open(out, os.O_WRONLY)  # another scan writing the file holds this lock
    try:
        scan_module._lock(held, str(out))
        for resume in ([], ["--resume"]):
            r = scan(runner, tiny_weights, *resume, "-o", str(out), str(photos))
            assert r.exit_code == 2 and "is being written by another fakedet scan" in r.stderr, r.stderr
        # a scan that started before the other took the file: refused at its first record
        monkeypatch.setattr(scan_module, "_check_not_busy", lambda output: None)
        r = scan(runner, tiny_weights, "-o", str(out), str(photos))
        assert r.exit_code == 2 and "is being written by another fakedet scan" in r.stderr, r.stderr
        assert "cannot write the records" not in r.stderr  # (the file is named once)
        assert out.read_text() == "earlier\t0.5\tuncertain\t\n"  # not emptied
    finally:
        os.close(held)
    r = scan(runner, tiny_weights, "--resume", "-o", str(out), str(photos))  # once it is free
    assert r.exit_code == 0, r.stderr
    assert len(out.read_text().splitlines()) == 1 + len(NAMES)


def test_a_scan_run_under_flock_on_its_own_output_file_is_not_refused(runner, tiny_weights, photos, tmp_path):
    """`flock out.tsv fakedet scan -o out.tsv ...` (a cron job's guard against itself) locks the
    file with flock, which the scan's own lock does not conflict with (a review)."""
    import fcntl

    out = tmp_path / "records.tsv"
    out.write_text("")
    with open(out, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        r = scan(runner, tiny_weights, "-o", str(out), str(photos))
    assert r.exit_code == 0, r.stderr
    assert len(out.read_text().splitlines()) == len(NAMES)


def test_a_scan_into_dev_null_takes_no_lock(runner, tiny_weights, photos):
    scan_module = importlib.import_module("fakedet.cli.scan")  # (fakedet.cli.scan is also the command)

    held = os.open(os.devnull, os.O_WRONLY)
    try:
        scan_module._file_lock(held, "set", "write")
        r = scan(runner, tiny_weights, "-o", os.devnull, str(photos))
    finally:
        os.close(held)
    assert r.exit_code == 0, r.stderr


def test_records_of_another_kind_of_scan_are_not_carried_on(runner, tiny_weights, photos, tmp_path):
    """Options are the same or the file would mix records of two kinds: jsonl says which records
    are face mode's, and an uncertain label is of three verdicts, which -t does not give."""
    face = tmp_path / "faces.jsonl"
    face.write_text(json.dumps({"path": str(photos / "a.jpg"), "p_fake": 0.5, "label": "uncertain", "error": None,
                                "faces": [], "p_whole": 0.5, "note": "no face found"}) + "\n")
    whole = tmp_path / "whole.jsonl"
    whole.write_text(json.dumps({"path": str(photos / "a.jpg"), "p_fake": 0.5, "label": "uncertain",
                                 "error": None}) + "\n")
    tsv = tmp_path / "three.tsv"
    tsv.write_text(f"{photos / 'a.jpg'}\t0.5\tuncertain\t\n")
    for out, args, words in ((face, [], "were made with --faces"), (whole, ["--faces"], "were made without --faces"),
                             (tsv, ["-t", "0.5"], "have three verdicts"), (whole, ["-t", "0.5"], "three verdicts")):
        before = out.read_text()
        fmt = "tsv" if out.suffix == ".tsv" else "jsonl"
        r = scan(runner, tiny_weights, "--resume", "-f", fmt, "-o", str(out), *args, str(photos))
        assert r.exit_code == 2 and words in r.stderr, (out, args, r.stderr)
        assert out.read_text() == before
    r = scan(runner, tiny_weights, "--resume", "-f", "jsonl", "-o", str(whole), str(photos))  # the same kind
    assert r.exit_code == 0, r.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="open file description locks are Linux's")
def test_another_programs_posix_lock_on_the_file_is_not_taken_for_a_scan(runner, tiny_weights, photos, tmp_path):
    """An office suite's fcntl lock on a csv conflicts with the scan's lock, but is no scan's:
    the scan writes as it did before it took locks, and does not blame "another fakedet scan"."""
    out = tmp_path / "records.csv"
    out.write_text("")
    code = ("import fcntl, sys, time\nf = open(sys.argv[1], 'rb')\nfcntl.lockf(f, fcntl.LOCK_SH)\n"
            "print('locked', flush=True)\ntime.sleep(60)")
    other = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE)
    try:
        assert other.stdout.readline() == b"locked\n"
        r = scan(runner, tiny_weights, "-f", "csv", "-o", str(out), str(photos))
    finally:
        other.kill()
        other.wait()
    assert r.exit_code == 0, r.stderr
    assert len(out.read_text().splitlines()) == 1 + len(NAMES)


def test_a_report_that_is_a_link_to_the_records_file_not_made_yet_is_refused(runner, tiny_weights, photos, tmp_path):
    """Neither file there yet: the report was written where the records went (a review)."""
    os.symlink(tmp_path / "out.tsv", tmp_path / "report.html")
    r = scan(runner, tiny_weights, "-o", str(tmp_path / "out.tsv"), "--report", str(tmp_path / "report.html"),
             str(photos))
    assert r.exit_code == 2, r.stderr
    assert not (tmp_path / "out.tsv").exists()


def test_a_records_file_emptied_under_the_scan_gets_no_hole(runner, tiny_weights, photos, tmp_path, monkeypatch):
    """A log rotation's copytruncate empties the -o file while the scan writes it: the next
    records went at the old offset, after a hole of NULs that no reader (nor --resume) takes."""
    from fakedet.data import writers

    out = tmp_path / "records.jsonl"
    write = writers.Writer.write
    calls = []

    def write_then_rotate(self, records):
        write(self, records)
        calls.append(1)
        if len(calls) == 2:
            os.truncate(out, 0)

    monkeypatch.setattr(writers.Writer, "write", write_then_rotate)
    r = scan(runner, tiny_weights, "-b", "1", "-f", "jsonl", "-o", str(out), str(photos))
    assert r.exit_code == 0, r.stderr
    data = out.read_bytes()
    assert b"\0" not in data
    assert len([json.loads(line) for line in data.splitlines()]) == len(NAMES) - 2


def _stopped_after_the_first_record_with(runner, tiny_weights, photos, out, monkeypatch, action):
    """A scan into ``out`` stopped (Ctrl-C) after its first record, ``action`` done to the file before."""
    from fakedet.cli import common
    from fakedet.data import writers

    write = writers.Writer.write

    def write_act_stop(self, records):
        write(self, records)
        action()
        common._interrupt(KeyboardInterrupt())

    monkeypatch.setattr(writers.Writer, "write", write_act_stop)
    return scan(runner, tiny_weights, "-b", "1", "-f", "jsonl", "-o", str(out), str(photos))


@pytest.mark.parametrize("how, words", [("moved", "was moved or replaced while the scan wrote it"),
                                        ("deleted", "was deleted while the scan wrote it: its records are lost")])
def test_a_stopped_scan_whose_file_was_moved_or_deleted_says_where_its_records_are(runner, tiny_weights, photos,
                                                                                  tmp_path, monkeypatch, how, words):
    """A rotation that renames the -o file, or a file deleted: the hint to resume named the old
    path, now another file or none."""
    out = tmp_path / "records.jsonl"
    action = (lambda: os.rename(out, tmp_path / "records.jsonl.1")) if how == "moved" else (lambda: os.unlink(out))
    r = _stopped_after_the_first_record_with(runner, tiny_weights, photos, out, monkeypatch, action)
    assert r.exit_code == 130 and words in r.stderr, r.stderr
    assert "scans the rest into" not in r.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="open file description locks are Linux's")
def test_a_scan_appending_through_stdout_and_an_o_scan_into_the_same_file_refuse_each_other(tiny_weights, photos,
                                                                                           tmp_path):
    """`fakedet scan ... >> scores.jsonl` (the nightly recipe's way) while `-o scores.jsonl` runs,
    or the other way round: the -o scan emptied the other's records (a service-operator persona)."""
    import time

    scan_module = importlib.import_module("fakedet.cli.scan")
    out = tmp_path / "scores.jsonl"
    base = [sys.executable, "-m", "fakedet", "scan", "-w", str(tiny_weights), "-j", "0", "-f", "jsonl"]
    with open(out, "ab") as fh:  # A: appends through stdout, its list held open
        a = subprocess.Popen([*base, "--files-from", "-"], stdin=subprocess.PIPE, stdout=fh, stderr=subprocess.PIPE)
    try:
        a.stdin.write(f"{photos / 'a.jpg'}\n".encode())
        a.stdin.flush()
        probe = os.open(out, os.O_RDONLY)
        try:
            deadline = time.monotonic() + 60
            while not scan_module._file_lock(probe, "test", "write") and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            os.close(probe)
        b = subprocess.run([*base, "-o", str(out), str(photos / "b.png")], capture_output=True, timeout=120)
        assert b.returncode == 2 and b"is being written by another fakedet scan" in b.stderr, b.stderr
        a.stdin.close()
        assert a.wait(timeout=120) == 0, a.stderr.read()
    finally:
        if a.poll() is None:
            a.kill()
    assert [json.loads(line)["path"] for line in out.read_text().splitlines()] == [str(photos / "a.jpg")]

    held = os.open(out, os.O_WRONLY)  # an -o scan writing the file: a scan appending through stdout is refused
    try:
        scan_module._file_lock(held, "set", "write")
        with open(out, "ab") as fh:
            c = subprocess.run([*base, str(photos / "b.png")], stdout=fh, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(held)
    assert c.returncode == 2 and b"standard output's file is being written by another fakedet scan" in c.stderr
    with open(out, "ab") as fh:  # once the -o scan is gone, it writes
        d = subprocess.run([*base, str(photos / "b.png")], stdout=fh, stderr=subprocess.PIPE, timeout=120)
    assert d.returncode == 0, d.stderr

