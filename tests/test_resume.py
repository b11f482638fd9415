"""``fakedet scan --resume``: a stopped scan carries on in its -o file, each input with one record."""

import csv
import io
import json
import os

import pytest

from fakedet.cli import cli
from fakedet.data.writers import Writer, recorded_paths
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
    assert "ended in an unfinished record" in r.stderr
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


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl"])
def test_every_name_a_writer_writes_is_read_back_as_the_input_named_it(fmt):
    names = ["plain.jpg", "tab\there\nnewline\r.jpg", "back\\slash\\x41\\t.jpg", "=HYPERLINK.jpg", "'quoted.jpg",
             "esc\x1b[31m\x9b2J\x7f.jpg", "x\u202egpj.exe", "bytes\udcff\udc80.jpg", "中文 😀.png", 'q"c,.jpg']
    buf = io.StringIO()
    w = Writer(buf, fmt)
    w.write([Result(n, 0.5, "uncertain") for n in names] + [Result("gone.jpg", None, None, error="x\ty")])
    w.close()
    assert recorded_paths(buf.getvalue().encode("utf-8", "surrogateescape"), fmt) == {*names, "gone.jpg"}
