import base64
import csv
import io
import json

import pytest

from fakedet.data.writers import Writer
from fakedet.inference.detector import Result

RECORDS = [
    Result("a.jpg", 0.1234564, "real"),
    Result("b\tc.jpg", 0.9, "fake"),
    Result("bad, \"x\".png", None, None, "not an image (unrecognised format)"),
]


def render(fmt):
    buf = io.StringIO()
    w = Writer(buf, fmt)
    w.write(RECORDS[:2])
    w.write(RECORDS[2:])
    w.close()
    return buf.getvalue()


def test_tsv_has_no_header_and_four_columns():
    lines = render("tsv").splitlines()
    assert lines[0] == "a.jpg\t0.123456\treal\t"
    assert lines[1] == "b\\tc.jpg\t0.900000\tfake\t"
    assert lines[2].split("\t") == ['bad, "x".png', "", "", "not an image (unrecognised format)"]


def test_csv_has_header_and_quotes():
    rows = list(csv.reader(io.StringIO(render("csv"))))
    assert rows[0] == ["path", "p_fake", "label", "error"]
    assert rows[1] == ["a.jpg", "0.123456", "real", ""]
    assert rows[3] == ['bad, "x".png', "", "", "not an image (unrecognised format)"]


def test_csv_paths_that_a_spreadsheet_would_run_as_formulas_are_text():
    """A file named `=HYPERLINK(...).jpg`, `+cmd.jpg` or `@SUM(A1).jpg` in an uploads folder ran
    as a formula where the csv was opened in a spreadsheet (code review): csv writes such a path
    after a `'`; jsonl keeps the name exactly."""
    names = ['=HYPERLINK("http://x").jpg', "+cmd.jpg", "-2+3.jpg", "@SUM(A1).jpg", "\t=1.jpg", "'=1.jpg",
             "dir/=1.jpg"]
    buf = io.StringIO()
    w = Writer(buf, "csv")
    w.write([Result(n, 0.5, "uncertain") for n in names])
    w.close()
    rows = list(csv.reader(io.StringIO(buf.getvalue())))[1:]
    assert [r[0] for r in rows] == ["'" + n for n in names[:6]] + ["dir/=1.jpg"]
    assert [r[0][1:] if r[0].startswith("'") else r[0] for r in rows] == names  # every name read back
    buf = io.StringIO()
    w = Writer(buf, "jsonl")
    w.write([Result(n, 0.5, "uncertain") for n in names])
    assert [json.loads(line)["path"] for line in buf.getvalue().splitlines()] == names


def test_scores_either_side_of_a_threshold_print_apart():
    """Six decimals, as many as the verdict thresholds have (0.998230): with four, a score just
    above and one just below the `fake` threshold would both print as 0.9982."""
    buf = io.StringIO()
    w = Writer(buf, "tsv")
    w.write([Result("x.jpg", 0.99824, "fake"), Result("y.jpg", 0.99822, "uncertain")])
    w.close()
    assert [line.split("\t")[1] for line in buf.getvalue().splitlines()] == ["0.998240", "0.998220"]


def test_jsonl_one_object_per_line_with_exact_keys():
    objs = [json.loads(line) for line in render("jsonl").splitlines()]
    assert [sorted(o) for o in objs] == [["animated", "cropped", "error", "framed", "label", "p_fake", "path"]] * 3
    assert objs[2]["p_fake"] is None and objs[2]["label"] is None and objs[2]["error"]
    assert objs[0]["error"] is None


def test_json_is_one_valid_array():
    objs = json.loads(render("json"))
    assert len(objs) == 3 and objs[1]["path"] == "b\tc.jpg"
    buf = io.StringIO()
    Writer(buf, "json").close()
    assert json.loads(buf.getvalue()) == []


def test_json_rounding_leaves_the_result_untouched():
    r = Result("a.jpg", 0.123456789, "real", faces=[{"box": [0, 0, 5, 5], "p_fake": 0.987654321}], p_whole=0.1)
    buf = io.StringIO()
    Writer(buf, "jsonl").write([r])
    assert json.loads(buf.getvalue())["faces"][0]["p_fake"] == 0.987654
    assert r.faces[0]["p_fake"] == 0.987654321


def test_json_stays_valid_utf8_with_undecodable_file_names():
    name = b"x\xff\xc3\xa9.png".decode("utf-8", "surrogateescape")  # as os.listdir returns it
    for fmt in ("jsonl", "json"):
        raw = io.BytesIO()
        stream = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")
        w = Writer(stream, fmt)
        w.write([Result(name, 0.5, "fake"), Result("é.png", 0.1, "real")])
        w.close()
        text = raw.getvalue().decode("utf-8")  # strict: raises on a raw 0xff byte
        assert "\\ud" not in text  # no unpaired surrogate escape, which strict parsers reject
        recs = [json.loads(line) for line in text.splitlines()] if fmt == "jsonl" else json.loads(text)
        assert recs[0]["path"] == "x\\xffé.png" and recs[1]["path"] == "é.png"
        assert base64.b64decode(recs[0]["path_bytes"]) == b"x\xff\xc3\xa9.png"  # the exact name
        assert "path_bytes" not in recs[1]


def test_json_writes_lone_surrogates_in_metadata_as_text():
    ev = [{"kind": "parameters", "says": "generated", "detail": "sampler \ud800x"}]
    buf = io.StringIO()
    Writer(buf, "jsonl").write([Result("a.png", 0.5, "fake", evidence=ev, label_by="evidence")])
    buf.getvalue().encode("utf-8")  # strict
    assert json.loads(buf.getvalue())["evidence"][0]["detail"] == "sampler \\ud800x"


def test_csv_quotes_carriage_returns_and_newlines_in_names():
    records = [Result("a\rb.jpg", 0.5, "real"), Result("c\nd.jpg", 0.5, "real"), Result("e.jpg", 0.5, "real")]
    buf = io.StringIO()
    w = Writer(buf, "csv")
    w.write(records)
    text = buf.getvalue()
    assert [row[0] for row in csv.reader(io.StringIO(text, newline=""))][1:] == ["a\rb.jpg", "c\nd.jpg", "e.jpg"]
    assert text.endswith("e.jpg,0.500000,real,\n") and "\r\n" not in text  # rows end in \n


def test_tsv_escapes_every_control_character_so_a_name_cannot_drive_the_terminal():
    buf = io.StringIO()
    w = Writer(buf, "tsv")
    w.write([Result("red\x1b[31m\x9b2J\x07.jpg", None, None, "bad\x00")])
    w.close()
    assert buf.getvalue() == "red\\x1b[31m\\x9b2J\\x07.jpg\t\t\tbad\\x00\n"


def test_small_scores_print_with_the_digits_that_place_them_against_the_real_threshold():
    """Below 0.001 a score prints with three significant digits, as the `real` threshold
    (1.13e-06) does: with six decimals 1.05e-06 (`real`) and 1.2e-06 (`uncertain`) both showed
    as 0.000001. At 0.001 and above, six decimals, as the `fake` threshold (0.998230)."""
    records = [Result("a.jpg", 1.0512e-6, "real"), Result("b.jpg", 1.2049e-6, "uncertain"),
               Result("c.jpg", 0.00039312, "uncertain"), Result("d.jpg", 0.99823025, "uncertain"),
               Result("e.jpg", 0.0, "real")]
    shown = {}
    for fmt in ("tsv", "csv", "jsonl", "json"):
        buf = io.StringIO()
        w = Writer(buf, fmt)
        w.write(records)
        w.close()
        text = buf.getvalue()
        if fmt == "tsv":
            shown[fmt] = [line.split("\t")[1] for line in text.splitlines()]
        elif fmt == "csv":
            shown[fmt] = [row[1] for row in csv.reader(io.StringIO(text))][1:]
        else:
            recs = [json.loads(line) for line in text.splitlines()] if fmt == "jsonl" else json.loads(text)
            shown[fmt] = [r["p_fake"] for r in recs]
    assert shown["tsv"] == shown["csv"] == ["1.05e-06", "1.2e-06", "0.000393", "0.998230", "0.000000"]
    assert shown["jsonl"] == shown["json"] == [1.05e-06, 1.2e-06, 0.000393, 0.99823, 0.0]
    from fakedet.data.writers import score_text

    assert score_text(0.0009996) == "0.0009996" and score_text(0.001) == "0.001000"  # not "0.001" below it
    assert score_text(0.00099996) == "0.00099996" and score_text(0.000999951) == "0.00099995"


def test_names_that_would_show_in_another_order_on_a_terminal_are_escaped():
    """A right-to-left override shows ``x\u202egpj.exe`` as ``xexe.jpg``: tsv, the summary and
    error messages write it as ``\\u202e``; json and jsonl as a JSON escape, so that the name
    reads back the same."""
    from fakedet.data.writers import control_escape, tsv_escape

    name = "x\u202egpj.exe\u2066.\u2028.\u200f.\u061c.\u200b.\ufeff.\u00ad.png"
    shown = "x\\u202egpj.exe\\u2066.\\u2028.\\u200f.\\u061c.\\u200b.\\ufeff.\\xad.png"
    assert tsv_escape(name) == control_escape(name) == shown
    letters = "na\u00efve \u05e9\u05dc\u05d5\u05dd \U0001f469\u200d\U0001f4bb.jpg"  # Hebrew; an emoji's joiner
    assert tsv_escape(letters) == letters
    for fmt in ("tsv", "jsonl", "json"):
        buf = io.StringIO()
        w = Writer(buf, fmt)
        w.write([Result(name, 0.5, "uncertain")])
        w.close()
        text = buf.getvalue()
        assert not any(c in text for c in "\u202e\u2066\u2028\u200f\u061c\u200b\ufeff\u00ad"), fmt
        if fmt == "tsv":
            assert text.startswith(shown + "\t")
        else:
            rec = json.loads(text.splitlines()[0]) if fmt == "jsonl" else json.loads(text)[0]
            assert rec["path"] == name


def test_parquet_holds_evidence_text_with_a_lone_surrogate(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    from fakedet.data.writers import _Parquet

    ev = [{"kind": "parameters", "says": "generated", "detail": "sampler \ud800x"}]
    out = _Parquet(str(tmp_path / "r.parquet"))
    out.add(Result("a\udcff.png", 0.5, "uncertain", evidence=ev, label_by="model"))
    out.close()
    row = pq.read_table(tmp_path / "r.parquet").to_pylist()[0]
    assert json.loads(row["evidence"])[0]["detail"] == "sampler \\ud800x" and row["path"] == "a\\xff.png"


def test_the_ray_engine_stores_evidence_and_names_with_lone_surrogates_as_valid_utf8():
    from fakedet.ray import _evidence_json

    text = _evidence_json([{"kind": "parameters", "says": "generated", "detail": "sampler \ud800x"}])
    text.encode("utf-8")  # strict: Arrow refuses a lone surrogate
    assert json.loads(text)[0]["detail"] == "sampler \\ud800x"
    assert _evidence_json(None) is None


def test_every_command_prints_names_that_are_not_utf8_on_a_strict_utf8_stdout(tiny_weights, tmp_path):
    """explain's PNG paths, eval's table (a set folder's name) and stderr lines: a stdout that
    refuses lone surrogates (a UTF-8 locale) must not crash a command after its work is done."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from conftest import write_image

    bad = os.fsencode(tmp_path) + b"/set\xff"
    os.makedirs(bad + b"/real")
    os.makedirs(bad + b"/fake")
    for i, kind in enumerate((b"real", b"fake", b"real", b"fake")):
        name = (bad + b"/" + kind + b"/i%d\xfe.png" % i).decode("utf-8", "surrogateescape")
        write_image(Path(name), "PNG", size=(64, 48), seed=i)
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "OMP_NUM_THREADS": "1"}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "fakedet", *args], capture_output=True, env=env, timeout=300)

    r = run("explain", "--no-faces", "--grid", "2", "-w", str(tiny_weights), "-d", "cpu",
            "-o", str(tmp_path / "out"), bad.decode("utf-8", "surrogateescape") + "/real")
    assert r.returncode == 0 and b"Traceback" not in r.stderr, r.stderr[-2000:]
    assert sorted(r.stdout.splitlines()) == sorted(os.fsencode(tmp_path / "out") + b"/i%d\xfe.explain.png" % i
                                                   for i in (0, 2))  # the name's own bytes, as tsv writes it
    r = run("eval", "-w", str(tiny_weights), "-j", "0", bad.decode("utf-8", "surrogateescape"))
    assert r.returncode == 0 and b"Traceback" not in r.stderr and b"set\xff" in r.stdout, r.stderr[-2000:]


def test_info_json_and_explain_dash_twice(tiny_weights, tmp_path):
    import os
    import shutil

    from click.testing import CliRunner

    from fakedet.cli import cli

    odd = (os.fsencode(tmp_path) + b"/w\xff.safetensors").decode("utf-8", "surrogateescape")
    shutil.copy(tiny_weights, odd)
    r = CliRunner().invoke(cli, ["info", "--json", "-w", odd])
    assert r.exit_code == 0, r.output
    r.stdout.encode("utf-8")  # strict: no lone surrogate
    assert json.loads(r.stdout)["weights"].endswith("w\\xff.safetensors")
    r = CliRunner().invoke(cli, ["explain", "-o", str(tmp_path / "out"), "-", "-"], input=b"")
    assert r.exit_code == 2 and "only once" in r.stderr


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_json_escapes_c1_controls_too_so_a_name_cannot_drive_the_terminal(fmt):
    buf = io.StringIO()
    w = Writer(buf, fmt)
    w.write([Result("red\x1b[31m\x9b2J\x7f.jpg", 0.5, "uncertain")])
    w.close()
    text = buf.getvalue()
    assert not any(c in text for c in "\x1b\x9b\x7f")
    rec = json.loads(text) if fmt == "json" else json.loads(text.splitlines()[0])
    rec = rec[0] if fmt == "json" else rec
    assert rec["path"] == "red\x1b[31m\x9b2J\x7f.jpg"


def test_a_stdout_in_another_encoding_writes_bad_bytes_as_bytes_and_the_rest_escaped():
    import fakedet.cli.common  # noqa: F401  (registers the handler)

    for enc in ("ascii", "latin-1", "cp1252"):
        assert "\u4e2d\udcff.jpg".encode(enc, "fakedet-bytes-or-escape") == b"\\u4e2d\xff.jpg"
        assert "a\udcff\U0001f600".encode(enc, "fakedet-bytes-or-escape") == b"a\xff\\ud83d\\ude00"
    assert "caf\u00e9\udce9".encode("ascii", "fakedet-bytes-or-escape") == b"caf\\u00e9\xe9"


@pytest.mark.parametrize("enc", ["utf-16", "utf-16-be", "utf-32"])
def test_a_utf16_or_utf32_stdout_writes_a_file_names_bad_bytes_as_escapes(enc):
    """UTF-16 and UTF-32 write no lone byte (PYTHONIOENCODING=utf-16 ended a tsv scan with a
    traceback, status 70): the byte is written as the text \\xHH, the rest as itself."""
    import fakedet.cli.common  # noqa: F401  (registers the handler)

    text = "\u4e2d\udcff\udcfe.jpg\ud800"
    assert text.encode(enc, "fakedet-bytes-or-escape").decode(enc) == "\u4e2d\\xff\\xfe.jpg\\ud800"
