import csv
import io
import json
import os
import re

import pytest

from fakedet.cli import cli

from conftest import fifo_watchdog, image_bytes, write_image


@pytest.fixture
def folder(tmp_path):
    write_image(tmp_path / "b.jpg", seed=1)
    write_image(tmp_path / "a.png", "PNG", seed=2)
    write_image(tmp_path / "sub" / "c.webp", "WEBP", seed=3)
    (tmp_path / "sub" / "notes.txt").write_text("not an image")
    (tmp_path / "sub" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return tmp_path


def run(runner, tiny_weights, args, **kw):
    return runner.invoke(cli, ["scan", "--weights", str(tiny_weights), "--workers", "0", *args], **kw)


def rel(paths, root):
    return [os.path.relpath(p, root) for p in paths]


def test_version_and_help(runner):
    r = runner.invoke(cli, ["--version"])
    assert r.exit_code == 0 and "fakedet" in r.output
    r = runner.invoke(cli, ["scan", "--help"])
    assert r.exit_code == 0 and "Exit status" in r.output and "--files-from" in r.output


def test_folder_is_recursive_sorted_one_record_per_image(runner, tiny_weights, folder):
    r = run(runner, tiny_weights, [str(folder)])
    assert r.exit_code == 3, r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert rel([row[0] for row in rows], folder) == ["a.png", "b.jpg", os.path.join("sub", "broken.jpg"),
                                                     os.path.join("sub", "c.webp")]
    assert all(len(row) == 4 for row in rows)
    broken = rows[2]
    assert broken[1] == "" and broken[2] == "" and broken[3]
    for row in (rows[0], rows[1], rows[3]):
        assert 0.0 <= float(row[1]) <= 1.0 and row[2] in ("fake", "real") and row[3] == ""
        assert len(row[1].split(".")[1]) == 6
    assert "4 images" in r.stderr  # the summary goes to stderr, never into the records


def test_shorthand_without_scan(runner, tiny_weights, folder):
    a = runner.invoke(cli, ["--weights", str(tiny_weights), "-j", "0", str(folder / "a.png")])
    b = run(runner, tiny_weights, [str(folder / "a.png")])
    assert a.exit_code == 0 and a.stdout == b.stdout


def test_a_quoted_wildcard_is_told_that_fakedet_expands_none(runner, tiny_weights, folder):
    r = run(runner, tiny_weights, ["-f", "jsonl", str(folder / "*.jpg"), str(folder / "[ab].png"),
                                   str(folder / "missing.jpg")])
    assert r.exit_code == 3
    errors = [json.loads(line)["error"] for line in r.stdout.splitlines()]
    assert errors[:2] == [errors[0]] * 2 and "expands no wildcards" in errors[0]
    assert errors[2] == "file not found"
    from fakedet.data.sources import not_found_error

    assert not_found_error("s3://bucket/photos/*.jpg") == "file not found"  # no shell expands that


def test_a_listed_name_padded_with_spaces_is_told_so(runner, tiny_weights, folder, tmp_path):
    """A list exported from a spreadsheet had 'name.jpg  ': its record said 'file not found', with
    the spaces invisible in tsv; it now says the name exists without them."""
    listing = tmp_path / "list.txt"
    listing.write_text(f"{folder / 'a.png'}  \n\t{folder / 'b.jpg'}\n{folder / 'missing.jpg'} \n", "utf-8")
    r = run(runner, tiny_weights, ["-f", "jsonl", "--files-from", str(listing)])
    assert r.exit_code == 3
    errors = [json.loads(line)["error"] for line in r.stdout.splitlines()]
    padded = ("file not found (the name has spaces or tabs at its start or end; without them it names a file: "
              "names are read as they are)")
    assert errors == [padded, padded, "file not found"]


def test_face_mode_writes_its_records_eight_at_a_time_by_default(runner, tiny_weights, folder, monkeypatch):
    """A persona's Ctrl-C in `scan --faces` kept no record for its first 8 s: records are written
    a batch at a time, and 32 images take seconds in face mode. Without -b, face mode (scan and
    eval) runs batches of 8, the default scan 32; -b still decides where given."""
    import fakedet.inference.stream as stream
    from fakedet import Detector

    seen = []
    real_load = Detector.load.__func__

    def load(cls, *a, **kw):
        seen.append(kw.get("batch_size"))
        return real_load(cls, *a, **kw)

    monkeypatch.setattr(Detector, "load", classmethod(load))
    monkeypatch.setattr(stream, "Detector", Detector, raising=False)
    for args, want in ((["--faces"], 8), ([], 32), (["--faces", "-b", "3"], 3), (["-b", "5"], 5)):
        seen.clear()
        r = run(runner, tiny_weights, [*args, str(folder / "a.png")])
        assert r.exit_code == 0, r.stderr
        assert seen == [want], (args, seen)


def test_a_name_with_a_space_typed_without_quotes_is_told_to_quote_it(runner, tiny_weights, folder):
    """A persona typed `fakedet imgs/from chats` and got 'file not found' twice, with no hint that
    the folder's name holds a space: each part's record says which name they make, and to quote
    it; the records stay one per argument, and a name that is missing alone says only not found."""
    (folder / "from chats").mkdir()
    write_image(folder / "from chats" / "x.png", "PNG", seed=9)
    r = run(runner, tiny_weights, ["-f", "jsonl", str(folder / "from"), "chats", str(folder / "missing.jpg")])
    assert r.exit_code == 3
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["path"] for x in recs] == [str(folder / "from"), "chats", str(folder / "missing.jpg")]
    hint = f"file not found (the names beside it make {str(folder / 'from chats')!r}, which exists: " \
        "quote a name that holds spaces)"
    assert recs[0]["error"] == recs[1]["error"] == hint
    assert recs[2]["error"] == "file not found"
    # with the records going to a file, the terminal is told too, once (a second persona)
    warning = f"warning: '{folder / 'from chats'}' exists, given without quotes as separate names"
    assert r.stderr.count(warning) == 1, r.stderr
    from fakedet.data.sources import spaced_names

    names = [str(folder / "from"), "chats", str(folder / "a.png"), "x", "y"]
    assert spaced_names(names) == {0: str(folder / "from chats"), 1: str(folder / "from chats")}
    assert spaced_names([str(folder / "a.png"), "chats"]) == {}  # 'a.png chats' names nothing


def test_a_spaced_name_whose_first_part_exists_is_told_too(runner, tiny_weights, folder):
    """`fakedet scan photos/from chats` where a folder `photos/from` exists beside `photos/from
    chats`: the first part is scanned as given (it names a folder), and the missing part's record
    says which name the two make, where it said only 'file not found'."""
    (folder / "from").mkdir()
    write_image(folder / "from" / "y.png", "PNG", seed=3)
    (folder / "from chats").mkdir()
    write_image(folder / "from chats" / "x.png", "PNG", seed=9)
    r = run(runner, tiny_weights, ["-f", "jsonl", str(folder / "from"), "chats"])
    assert r.exit_code == 3
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["path"] for x in recs] == [str(folder / "from" / "y.png"), "chats"]
    assert recs[0]["error"] is None
    assert recs[1]["error"] == (f"file not found (the names beside it make {str(folder / 'from chats')!r}, "
                                "which exists: quote a name that holds spaces)")
    assert f"warning: '{folder / 'from chats'}' exists, given without quotes" in r.stderr
    from fakedet.data.sources import spaced_names

    # the missing part may come first, too, and an existing name is never given the hint
    assert spaced_names(["chats", str(folder / "from")]) == {}
    assert spaced_names([str(folder / "from"), "chats", "x"]) == {1: str(folder / "from chats")}
    (folder / "a b c").mkdir()
    assert spaced_names([str(folder / "a"), "b", "c"]) == {0: str(folder / "a b c"), 1: str(folder / "a b c"),
                                                           2: str(folder / "a b c")}


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl", "json"])
def test_every_format_has_one_record_per_input(runner, tiny_weights, folder, fmt):
    inputs = [str(folder / "a.png"), str(folder / "missing.jpg"), str(folder / "b.jpg")]
    r = run(runner, tiny_weights, ["--format", fmt, *inputs])
    assert r.exit_code == 3
    if fmt == "tsv":
        recs = [dict(zip(["path", "p_fake", "label", "error"], line.split("\t"))) for line in r.stdout.splitlines()]
    elif fmt == "csv":
        recs = list(csv.DictReader(io.StringIO(r.stdout)))
    elif fmt == "jsonl":
        recs = [json.loads(line) for line in r.stdout.splitlines()]
    else:
        recs = json.loads(r.stdout)
    assert [x["path"] for x in recs] == inputs
    keys = {"path", "p_fake", "label", "error"}
    if fmt in ("jsonl", "json"):  # the picture scored, and the provenance evidence with what decided the label
        keys |= {"cropped", "framed", "animated", "evidence", "label_by", "model_label"}
    assert all(set(x) == keys for x in recs)
    assert recs[1]["error"] == "file not found"
    if fmt in ("jsonl", "json"):
        assert recs[1]["p_fake"] is None and recs[1]["label"] is None and recs[0]["error"] is None
        assert recs[0]["evidence"] == [] and recs[0]["label_by"] == "model"
        assert recs[1]["evidence"] == [] and recs[1]["label_by"] is None


def test_mix_of_good_and_broken_files_keeps_order(runner, tiny_weights, tmp_path):
    paths = []
    for i in range(9):
        p = tmp_path / f"{i}.jpg"
        if i % 3 == 1:
            p.write_bytes(b"" if i == 1 else b"garbage")
        else:
            write_image(p, seed=i)
        paths.append(str(p))
    r = run(runner, tiny_weights, ["--batch-size", "2", *reversed(paths)])
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert [row[0] for row in rows] == list(reversed(paths))
    errors = {row[0]: row[3] for row in rows if row[3]}
    assert set(errors) == {paths[1], paths[4], paths[7]}
    assert errors[paths[1]] == "empty file"
    assert r.exit_code == 3


def test_stdin_dash(runner, tiny_weights):
    r = run(runner, tiny_weights, ["-", "--format", "jsonl"], input=image_bytes("PNG"))
    assert r.exit_code == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["path"] == "-" and rec["error"] is None
    r = run(runner, tiny_weights, ["-"], input=b"")
    assert r.exit_code == 3 and "empty" in r.stdout


@pytest.mark.skipif(os.name != "posix", reason="closes file descriptor 0 in the child")
def test_a_closed_stdin_is_said_to_be_closed(tiny_weights):
    """Started with stdin closed (``<&-``): ``-`` gets a record saying so (not "empty input"),
    and ``--files-from -`` is a usage error, not an empty list ("no images found")."""
    import subprocess
    import sys

    def scan(*args):
        return subprocess.run([sys.executable, "-m", "fakedet", "scan", "-w", str(tiny_weights), *args],
                              capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.close(0))

    r = scan("-")
    assert r.returncode == 3 and r.stdout == "-\t\t\tstandard input is closed: nothing to read\n", (r.stdout, r.stderr)
    r = scan("--files-from", "-")
    assert r.returncode == 2 and "Invalid value for --files-from: cannot read -: standard input is closed" \
        in r.stderr, r.stderr


def test_files_from_lines_and_nul(runner, tiny_weights, folder, tmp_path):
    names = [str(folder / "b.jpg"), str(folder / "a.png")]
    lst = tmp_path / "list.txt"
    lst.write_text("\n".join(names) + "\n")
    r = run(runner, tiny_weights, ["--files-from", str(lst)])
    assert [line.split("\t")[0] for line in r.stdout.splitlines()] == names
    r = run(runner, tiny_weights, ["--files-from", "-", "-0"], input=("\0".join(names) + "\0").encode())
    assert r.exit_code == 0, r.stderr
    assert [line.split("\t")[0] for line in r.stdout.splitlines()] == names
    # a NUL-separated list read without -0: one record, whose error says what -0 is for, and
    # status 2, a usage error (3, "some inputs could not be read", is what a nightly job accepts)
    r = run(runner, tiny_weights, ["--files-from", "-"], input=("\0".join(names) + "\0").encode())
    assert r.exit_code == 2 and r.stdout.count("\n") == 1, r.stdout
    assert "usage error: 1 input given the wrong way" in r.stderr, r.stderr  # why 2
    assert r.stdout.endswith("\tinvalid file name (it contains a NUL byte); a list of NUL-separated names "
                             "needs -0\n"), r.stdout
    # and the other way round (a persona test: a bare "file not found" for the whole list)
    r = run(runner, tiny_weights, ["--files-from", "-", "-0"], input=("\n".join(names) + "\n").encode())
    assert r.exit_code == 2 and r.stdout.count("\t") == 3, r.stdout
    assert r.stdout.endswith("\tfile not found (the name holds newlines: a list of one name per line is read "
                             "without -0)\n"), r.stdout
    # a list piped as the image (`find | fakedet scan -`), and `-` inside a list: the same
    r = run(runner, tiny_weights, ["-", names[0]], input=("\n".join(names) + "\n").encode())
    assert r.exit_code == 2 and r.stdout.count("\n") == 2 and "read it with --files-from -" in r.stdout, r.stdout
    r = run(runner, tiny_weights, ["--files-from", "-"], input=(names[0] + "\n-\n").encode())
    assert r.exit_code == 2 and "cannot be named inside a list of paths" in r.stdout, r.stdout
    # -0 without a list to separate: a usage error, not a silent no-op
    r = run(runner, tiny_weights, ["-0", names[0]])
    assert r.exit_code == 2 and "-0/--null separates the paths of a --files-from list" in r.stderr, r.stderr


def test_files_from_twice_and_empty_output_names_are_usage_errors(runner, tiny_weights, folder, tmp_path):
    """A second --files-from replaced the first (its paths got no record); an empty -o, --report,
    --plots or explain -o was taken for no option (no report, no plots, no word) or failed late."""
    lst = tmp_path / "list.txt"
    lst.write_text(str(folder / "b.jpg") + "\n")
    r = run(runner, tiny_weights, ["--files-from", str(lst), "--files-from", str(lst)])
    assert r.exit_code == 2 and "--files-from can be given once" in r.stderr and r.stdout == ""
    r = run(runner, tiny_weights, [str(folder / "b.jpg"), "--files-from", ""])  # was dropped silently
    assert r.exit_code == 2 and "needs a file name ('-' for stdin)" in r.stderr and r.stdout == ""
    for opt, what in (("-o", "needs a file name"), ("--report", "needs a file name")):
        r = run(runner, tiny_weights, [opt, "", str(folder / "b.jpg")])
        assert r.exit_code == 2 and what in r.stderr and r.stdout == "", (opt, r.output)
    data = tmp_path / "data"
    write_image(data / "real" / "a.jpg")
    for opt in ("--report", "--plots"):
        r = runner.invoke(cli, ["eval", "-w", str(tiny_weights), opt, "", str(data)])
        assert r.exit_code == 2 and "needs a f" in r.stderr and r.stdout == "", (opt, r.output)
    r = runner.invoke(cli, ["explain", "-w", str(tiny_weights), "-o", "", str(folder / "b.jpg")])
    assert r.exit_code == 2 and "needs a folder name" in r.stderr


def test_files_from_warns_about_a_folder_without_images_and_keeps_dash_errors(runner, tiny_weights, folder, tmp_path):
    (tmp_path / "empty").mkdir()
    lst = tmp_path / "list.txt"
    lst.write_text(f"{folder / 'b.jpg'}\n{tmp_path / 'empty'}\n-\n")
    r = run(runner, tiny_weights, ["--files-from", str(lst)])
    assert r.exit_code == 2  # '-' inside a list: an input given the wrong way, a usage error
    assert [line.split("\t")[0] for line in r.stdout.splitlines()] == [str(folder / "b.jpg"), "-"]
    assert f"no image files found in {tmp_path / 'empty'}" in r.stderr


def test_threshold_and_exit_code(runner, tiny_weights, folder):
    img = str(folder / "a.png")
    r = run(runner, tiny_weights, ["--threshold", "0", "--exit-code", img])
    assert r.exit_code == 1 and r.stdout.split("\t")[2] == "fake"
    r = run(runner, tiny_weights, ["--threshold", "1", "--exit-code", img])
    p = float(r.stdout.split("\t")[1])
    assert r.stdout.split("\t")[2] == ("fake" if p >= 1.0 else "real")
    assert r.exit_code == (1 if p >= 1.0 else 0)
    r = run(runner, tiny_weights, ["--threshold", "0", img])
    assert r.exit_code == 0  # fakes alone do not change the status without --exit-code
    r = run(runner, tiny_weights, ["--threshold", "1.5", img])
    assert r.exit_code == 2


def test_output_file_and_quiet(runner, tiny_weights, folder, tmp_path):
    out = tmp_path / "out.csv"
    r = run(runner, tiny_weights, ["-q", "-f", "csv", "-o", str(out), str(folder / "a.png")])
    assert r.exit_code == 0 and r.stdout == "" and r.stderr == ""
    assert out.read_text().splitlines()[0] == "path,p_fake,label,error"


def test_usage_errors_exit_2(runner, tiny_weights, tmp_path):
    assert run(runner, tiny_weights, []).exit_code == 2  # no input
    assert run(runner, tiny_weights, ["--format", "xml", "x.jpg"]).exit_code == 2
    assert run(runner, tiny_weights, ["--device", "tpu", "x.jpg"]).exit_code == 2
    assert run(runner, tiny_weights, ["-", "-"]).exit_code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run(runner, tiny_weights, [str(empty)])
    assert r.exit_code == 2 and r.stdout == "" and "no image" in r.stderr


def test_unreadable_weights_exit_2(runner, tmp_path):
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"junk")
    r = runner.invoke(cli, ["scan", "--weights", str(bad), "x.jpg"])
    assert r.exit_code == 2 and r.stdout == "" and "safetensors" in r.stderr
    r = runner.invoke(cli, ["scan", "--weights", str(tmp_path / "none.safetensors"), "x.jpg"])
    assert r.exit_code == 2 and "not found" in r.stderr


def test_unavailable_device_exit_2(runner, tiny_weights, folder):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    r = runner.invoke(cli, ["scan", "--weights", str(tiny_weights), "--device", "cuda", str(folder / "a.png")])
    assert r.exit_code == 2 and "CUDA" in r.stderr and r.stdout == ""


def test_workers_give_the_same_records(runner, tiny_weights, folder):
    a = runner.invoke(cli, ["scan", "-w", str(tiny_weights), "-j", "0", "-b", "1", str(folder)])
    b = runner.invoke(cli, ["scan", "-w", str(tiny_weights), "-j", "2", "-b", "1", str(folder)])
    assert a.stdout == b.stdout and a.exit_code == b.exit_code == 3


def test_info(runner, tiny_weights):
    r = runner.invoke(cli, ["info", "--weights", str(tiny_weights), "--json"])
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["backbone"] == "test_efficientnet" and len(d["sha256"]) == 64
    assert d["backbone_built_by"] == "timm"  # a timm test model: only timm builds it
    assert d["threshold"] == 0.5 and d["temperature"] == 1.0
    r = runner.invoke(cli, ["info", "--weights", str(tiny_weights)])
    assert "test_efficientnet" in r.stdout and "sha256" in r.stdout
    assert "built by timm: pip install 'fakedet[timm]'" in r.stdout


def test_info_says_the_shipped_backbone_needs_no_timm(runner):
    r = runner.invoke(cli, ["info", "--json"])
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["backbone"] == "tf_efficientnet_lite0" and d["backbone_built_by"] == "fakedet"
    assert "built by fakedet without timm" in runner.invoke(cli, ["info"]).stdout


def test_info_json_face_mode_holds_the_thresholds_scan_faces_uses(runner, tiny_weights):
    """The top-level face_verdicts are the network's own (--faces --no-face-expert); plain
    --faces uses the expert's: a script reading face_verdicts.fake got the wrong threshold."""
    from fakedet import Detector

    d = json.loads(runner.invoke(cli, ["info", "--json"]).stdout)
    for expert in (True, False):
        det = Detector.load(device="cpu", faces=True, expert="auto" if expert else None)
        fm = d["face_mode"] if expert else d["face_mode"]["no_face_expert"]
        assert (fm["fake"], fm["real"]) == pytest.approx(det.face_cutoffs, abs=0)
    assert d["face_mode"]["with_face_expert"] is True
    assert d["face_mode"]["no_face_expert"] == {k: d["face_verdicts"][k] for k in ("fake", "real")}
    tiny = json.loads(runner.invoke(cli, ["info", "-w", str(tiny_weights), "--json"]).stdout)
    det = Detector.load(tiny_weights, device="cpu", faces=True)  # no verdicts: its threshold
    assert tiny["face_expert"] is None and tiny["face_mode"]["with_face_expert"] is False
    assert (tiny["face_mode"]["fake"], tiny["face_mode"]["real"]) == pytest.approx(det.face_cutoffs, abs=0)


def test_backbone_builder_names_match_the_native_builders():
    from fakedet.model.backbones import LITE_VARIANTS
    from fakedet.model.config import NATIVE_BACKBONES, backbone_builder

    assert tuple(LITE_VARIANTS) == NATIVE_BACKBONES
    assert backbone_builder("tf_efficientnet_lite0") == "fakedet"
    assert backbone_builder("tf_efficientnet_lite0", {"drop_rate": 0.1}) == "timm"
    assert backbone_builder("resnet18") == "timm"


def test_weights_that_fail_to_load_after_decoding_started(runner, tiny_weights, folder, tmp_path):
    """The CLI starts decoding while the model loads in the background; when the load then
    fails (a readable header whose config does not match the tensors), it still exits 2 with
    the reason, prints no record and leaves no output file."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from fakedet.model.checkpoint import META_KEY

    with safe_open(str(tiny_weights), framework="pt") as fh:
        meta = dict(fh.metadata())
    doc = json.loads(meta[META_KEY])
    doc["model"]["colour_dim"] += 1
    meta[META_KEY] = json.dumps(doc)
    bad = tmp_path / "mismatch.safetensors"
    save_file(load_file(str(tiny_weights)), str(bad), metadata=meta)
    out = tmp_path / "scores.tsv"
    r = runner.invoke(cli, ["scan", "--weights", str(bad), "--workers", "2", "-b", "1",
                            "-o", str(out), str(folder)])
    assert r.exit_code == 2 and r.stdout == "" and r.stderr.startswith("fakedet: ")
    assert not out.exists()


def test_output_file_is_never_an_input_and_is_kept_when_nothing_is_scored(runner, tiny_weights, folder, tmp_path):
    photo = folder / "a.png"
    before = photo.read_bytes()
    r = run(runner, tiny_weights, ["-o", str(photo), str(photo)])
    assert r.exit_code == 2 and "also an input" in r.stderr and photo.read_bytes() == before
    keep = tmp_path / "keep.tsv"
    keep.write_text("PRECIOUS\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    for fmt in ("tsv", "csv", "json"):
        r = run(runner, tiny_weights, ["-f", fmt, "-o", str(keep), str(empty)])
        assert r.exit_code == 2 and keep.read_text() == "PRECIOUS\n"
    assert run(runner, tiny_weights, ["-o", str(keep), str(photo)]).exit_code == 0
    assert keep.read_text().startswith(str(photo))


@pytest.mark.parametrize("option", ["-o", "--report"])
@pytest.mark.parametrize("how", ["folder", "files-from"])
def test_records_and_reports_never_go_over_an_image_of_a_folder_or_list(runner, tiny_weights, folder, tmp_path,
                                                                         option, how):
    """An image found in a scanned folder, or named in a --files-from list, is an input too: the
    check of the paths typed cannot see it, so no output goes over an existing image."""
    photo = folder / "b.jpg"
    before = photo.read_bytes()
    if how == "folder":
        inputs = [str(folder)]
    else:
        listing = tmp_path.parent / f"{tmp_path.name}-list.txt"
        listing.write_text(f"{photo}\n")
        inputs = ["--files-from", str(listing)]
    r = run(runner, tiny_weights, [option, str(photo), *inputs])
    assert r.exit_code == 2, r.stderr
    assert "is an image (JPEG)" in r.stderr and "overwrite" in r.stderr
    assert photo.read_bytes() == before


def test_records_may_replace_a_file_that_is_no_image(runner, tiny_weights, folder, tmp_path):
    for name, text in (("old.tsv", "x\t0.5\tfake\t\n"), ("notes.jpg", "not an image at all\n")):
        target = tmp_path.parent / f"{tmp_path.name}-{name}"
        target.write_text(text)
        assert run(runner, tiny_weights, ["-o", str(target), str(folder / "a.png")]).exit_code == 0
        assert target.read_text().startswith(str(folder / "a.png"))


def test_a_storys_picture_is_scored_alone_and_named_and_under_no_crop_named_as_scored_whole(runner, tiny_weights,
                                                                                              tmp_path):
    """A story's screenshot (the picture on a blurred copy of itself, an app's controls above
    and below): the scan scores the picture found as the picture alone is scored, gives its box
    and names it with the pictures cut out; --no-crop scores the screen whole and asks to crop it."""
    from conftest import random_image, story_screen

    pic = random_image((540, 400), seed=7)
    screen, truth = story_screen(pic)
    screen.save(tmp_path / "story.png")
    pic.save(tmp_path / "alone.png")
    r = run(runner, tiny_weights, ["-f", "jsonl", str(tmp_path)])
    assert r.exit_code == 0, r.output
    recs = {os.path.basename(d["path"]): d for d in map(json.loads, r.stdout.splitlines())}
    assert all(abs(a - b) <= 12 for a, b in zip(recs["story.png"]["cropped"], truth)), recs["story.png"]
    assert recs["story.png"]["framed"] is False
    assert recs["story.png"]["p_fake"] == pytest.approx(recs["alone.png"]["p_fake"], abs=0.05)
    assert f"1 image ({tmp_path / 'story.png'}) has margins around the picture" in r.stderr
    assert "scan again" not in r.stderr
    r = run(runner, tiny_weights, ["--no-crop", "-f", "jsonl", str(tmp_path / "story.png")])
    rec = json.loads(r.stdout)
    assert rec["cropped"] is None and rec["framed"] is True
    assert f"1 image ({tmp_path / 'story.png'}) has wide margins around the picture" in r.stderr


@pytest.mark.parametrize("fmt", ["tsv", "json"])
def test_a_scan_that_makes_no_record_says_an_earlier_o_file_is_not_its_own(runner, tiny_weights, tmp_path, fmt):
    """An -o file is opened at the first record, so a scan that finds no image leaves an earlier
    scan's file as it was: the last message says so, lest it be read as this scan's records."""
    empty = tmp_path / "empty"
    empty.mkdir()
    old = tmp_path / "records.txt"
    old.write_text("x.jpg\t0.99\tfake\t\n")
    r = run(runner, tiny_weights, ["-f", fmt, "-o", str(old), str(empty)])
    assert r.exit_code == 2 and old.read_text() == "x.jpg\t0.99\tfake\t\n"
    assert f"no images found; {old} was not written: what it holds is from before this scan" in r.stderr
    new = tmp_path / "new.txt"  # no file there: nothing to say about one
    r = run(runner, tiny_weights, ["-f", fmt, "-o", str(new), str(empty)])
    assert r.exit_code == 2 and "was not written" not in r.stderr and not new.exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
@pytest.mark.parametrize("how", ["folder", "named", "files-from"])
def test_named_pipe_gets_an_error_record_and_the_rest_are_scored(runner, tiny_weights, tmp_path, how):
    d = tmp_path / "d"
    write_image(d / "a.jpg")
    os.mkfifo(d / "pipe.jpg")
    args = {"folder": [str(d)], "named": [str(d / "pipe.jpg"), str(d / "a.jpg")],
            "files-from": ["--files-from", "-"]}[how]
    stdin = f"{d / 'pipe.jpg'}\n{d / 'a.jpg'}\n" if how == "files-from" else None
    with fifo_watchdog(d / "pipe.jpg"):  # a scan that opens the pipe fails here instead of hanging
        r = run(runner, tiny_weights, ["-f", "jsonl", *args], input=stdin)
    recs = {os.path.basename(x["path"]): x for x in map(json.loads, r.stdout.splitlines())}
    assert r.exit_code == 3, r.stderr
    assert recs["pipe.jpg"]["error"] == "not a regular file (named pipe)" and recs["pipe.jpg"]["p_fake"] is None
    assert recs["a.jpg"]["error"] is None and 0.0 <= recs["a.jpg"]["p_fake"] <= 1.0


def test_help_command_shows_the_help(runner):
    r = runner.invoke(cli, ["help"])
    assert r.exit_code == 0 and "[OPTIONS] COMMAND [ARGS]" in r.output and "Exit status" in r.output
    assert r.output == runner.invoke(cli, ["--help"]).output
    for command in ("scan", "info", "eval"):
        r = runner.invoke(cli, ["help", command])
        assert r.exit_code == 0 and f" {command} [OPTIONS]" in r.output
        assert r.output == runner.invoke(cli, [command, "--help"]).output
    r = runner.invoke(cli, ["help", "photo.jpg"])
    assert r.exit_code == 2 and "fakedet scan help" in r.stderr
    assert "no command 'photo.jpg'; the commands: eval, explain, info, scan" in r.stderr, r.stderr
    r = runner.invoke(cli, ["help", "evl"])
    assert r.exit_code == 2 and "no command 'evl'; did you mean: fakedet help eval?" in r.stderr, r.stderr
    r = runner.invoke(cli, ["help", "scan", "eval"])
    assert r.exit_code == 2 and "help takes one command name" in r.stderr, r.stderr
    for asked in ("help", "-h", "--help"):  # as git's `help help`: the program's own help
        r = runner.invoke(cli, ["help", asked])
        assert r.exit_code == 0 and r.output == runner.invoke(cli, ["--help"]).output, asked


def test_a_file_named_help_is_scanned_with_the_explicit_form(runner, tiny_weights, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_image(tmp_path / "help")
    r = run(runner, tiny_weights, ["help"])
    assert r.exit_code == 0, r.stderr
    path, p_fake, label, error = r.stdout.rstrip("\n").split("\t")
    assert path == "help" and 0.0 <= float(p_fake) <= 1.0 and error == ""


def test_an_interruption_while_records_are_written_waits_for_the_batch_end():
    from fakedet.cli import common

    done = []
    with pytest.raises(common.Terminated):
        with common.uninterrupted():
            common._interrupt(common.Terminated())  # what the SIGTERM handler does
            done.append("rest of the batch")
    assert done == ["rest of the batch"]
    with pytest.raises(KeyboardInterrupt):
        common._interrupt(KeyboardInterrupt())  # outside a block: at once
    assert common.interrupt_status(common.Terminated()) == 143
    assert common.interrupt_status(KeyboardInterrupt()) == 130
    assert common.interrupt_status(common.HungUp()) == 129
    assert common.interrupt_word(common.HungUp()) == "hung up"
    assert "143" in common.EXIT_STATUS_HELP and "129" in common.EXIT_STATUS_HELP


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGHUP"), reason="no SIGHUP")
def test_a_hang_up_raises_once_and_the_second_is_ignored():
    """A closing terminal sends SIGHUP twice (the kernel's, then the shell's): the second must
    not end the process while the first one's clean-up runs."""
    import signal

    from fakedet.cli import common

    if signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL:
        pytest.skip("SIGHUP is not at its default action here (nohup?): fakedet leaves it alone")
    with common.handle_signals():
        with pytest.raises(common.HungUp):
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(1000):  # the handler runs between bytecodes
                pass
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL


def test_signal_handlers_are_restored():
    import signal

    from fakedet.cli import common

    # from the defaults, which handle_signals replaces (a test before this one may have left
    # another library's handler, as Ray's start does for SIGTERM: that one is left alone)
    saved = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
        with common.handle_signals():
            assert signal.getsignal(signal.SIGINT) is not before[0]
            assert signal.getsignal(signal.SIGTERM) is not before[1]
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    finally:
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])


# --- issue 19, items 3, 5, 6: the summary line, the help texts, the progress bar's total ---

def test_summary_counts_a_folder_that_cannot_be_listed_apart_from_the_images(runner, tiny_weights, tmp_path,
                                                                              monkeypatch):
    import fakedet.data.sources as sources

    (tmp_path / "secret.jpg").write_bytes(b"not an image")
    (tmp_path / "lockeddir").mkdir()
    write_image(tmp_path / "ok.jpg", seed=1)
    scandir = os.scandir

    def no_listing(path):
        if os.path.basename(os.fspath(path)) == "lockeddir":
            raise PermissionError(13, "Permission denied")
        return scandir(path)

    monkeypatch.setattr(sources.os, "scandir", no_listing)
    r = run(runner, tiny_weights, [str(tmp_path / n) for n in ("secret.jpg", "lockeddir", "ok.jpg")])
    assert r.exit_code == 3, r.stderr
    recs = [line.split("\t") for line in r.stdout.splitlines()]
    assert [os.path.basename(x[0]) for x in recs] == ["secret.jpg", "lockeddir", "ok.jpg"]
    assert "cannot list folder" in recs[1][3]  # the folder keeps its own error record
    summary = _summary_line(r.stderr)
    assert "2 images:" in summary and ", 1 error;" in summary, summary
    assert "1 folder could not be read" in summary, summary
    assert "img/s" in summary
    assert "not scored: 1 not an image (" in r.stderr  # the image's reason; the folder apart


def _summary_line(stderr: str) -> str:
    """The summary's first line (lines after it name images, reasons, notes)."""
    return next(line for line in stderr.splitlines() if re.search(r"\d+ images?: \d+ fake", line))


def _skipped_line(stderr: str) -> str:
    """The summary's line on what the folder walk skipped: its own, right after the first (a
    persona missed a skipped hidden folder in the middle of the first line)."""
    lines = stderr.splitlines()
    first = lines.index(_summary_line(stderr))
    assert "skipped" not in lines[first] and lines[first + 1].startswith("fakedet: skipped "), stderr
    return lines[first + 1]


def test_summary_has_no_rate_when_nothing_was_scored(runner, tiny_weights, tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    r = run(runner, tiny_weights, [str(tmp_path / "bad.jpg")])
    assert r.exit_code == 3
    summary = _summary_line(r.stderr)
    assert "1 image: 0 fake" in summary and "1 error" in summary, summary
    assert "img/s" not in summary and "with start-up" in summary


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="process start time from /proc (Linux)")
def test_start_up_time_counts_from_the_process_start_not_the_cli_import():
    import subprocess
    import sys

    code = ("import time; time.sleep(1.0)\n"
            "from fakedet.cli.common import STARTED\n"
            "print(time.perf_counter() - STARTED)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert 1.0 <= float(out) < 30.0


def _options(command):
    return [p for p in command.params if isinstance(p, __import__("click").Option)]


def test_every_option_of_scan_and_eval_has_help_and_workers_shows_its_default(runner):
    from fakedet.cli.eval import eval_
    from fakedet.cli.explain import explain
    from fakedet.cli.scan import scan

    for command in (scan, eval_, explain):
        for opt in _options(command):
            assert opt.help, f"{command.name} {opt.opts} has no description"
    r = runner.invoke(cli, ["eval", "--help"])
    assert "default: CPU count" in " ".join(r.output.split())


def test_top_level_help_lists_each_command_once_and_no_exit_status_table(runner):
    out = runner.invoke(cli, ["--help"]).output
    assert out.count("fakedet info") <= 1 and out.count("describe the loaded model") == 0
    commands = out.split("Commands:")[1].split("\n\n")[0]
    assert [line.split()[0] for line in commands.strip().splitlines()] == ["eval", "explain", "info", "scan"]
    assert "130 interrupted" not in out and "When several apply" not in out
    assert "fakedet scan --help" in out  # where the table is
    assert "When several apply" in runner.invoke(cli, ["scan", "--help"]).output


@pytest.mark.parametrize("command", [[], ["scan"], ["eval"], ["info"], ["explain"]])
def test_each_help_shows_two_to_four_examples(runner, command):
    out = runner.invoke(cli, [*command, "--help"]).output
    assert "Examples:" in out
    block = out.split("Examples:")[1].split("\n\n")[0]
    examples = [line for line in block.splitlines() if line.strip()]
    assert 2 <= len(examples) <= 4, examples
    assert all(line.split()[0] in ("fakedet", "find", "curl") for line in examples)


def test_folder_scan_progress_bar_gets_a_total(runner, tiny_weights, folder, tmp_path):
    r = run(runner, tiny_weights, ["--progress", "-b", "1", str(folder)])
    assert r.exit_code == 3
    assert "4/4" in r.stderr, r.stderr
    lst = tmp_path / "list.txt"
    lst.write_text(f"{folder / 'b.jpg'}\n{folder / 'sub'}\n")
    r = run(runner, tiny_weights, ["--progress", "-b", "1", "--files-from", str(lst)])
    assert "3/3" in r.stderr, r.stderr
    r = run(runner, tiny_weights, ["--progress", "--files-from", "-"], input=f"{folder / 'b.jpg'}\n".encode())
    assert r.exit_code == 0 and "1/1" not in r.stderr  # a list on stdin is read once: no total
    r = run(runner, tiny_weights, [str(folder)])
    assert "4/4" not in r.stderr and "img/s]" not in r.stderr  # no bar when stderr is no terminal


def test_count_items_matches_iter_items_without_reading_stdin(folder, tmp_path):
    from fakedet.data.sources import count_items, iter_items

    lst = tmp_path / "list.txt"
    lst.write_text(f"{folder / 'a.png'}\n{folder / 'sub'}\n-\n")
    with open(lst, "rb") as fh:
        expected = len(list(iter_items([str(folder), "-"], fh, False, io.BytesIO(b"x"))))
    # the folder's 4, stdin, the list's '-'; a.png and sub's 2 were reached through the folder already
    assert count_items([str(folder), "-"], str(lst)) == expected == 4 + 1 + 1
    assert count_items([str(folder)], stop=lambda: True) is None
    assert count_items([], str(tmp_path / "missing.txt")) is None
    if hasattr(os, "mkfifo"):  # a list on a named pipe is not opened a second time
        os.mkfifo(tmp_path / "list.fifo")
        assert count_items([], str(tmp_path / "list.fifo")) is None


def test_hidden_and_excluded_entries_are_skipped_and_counted_in_the_summary(runner, tiny_weights, folder, tmp_path):
    write_image(folder / ".git" / "objects" / "x.png", "PNG", seed=4)
    write_image(folder / ".thumb.jpg", seed=5)
    r = run(runner, tiny_weights, [str(folder)])
    assert rel([line.split("\t")[0] for line in r.stdout.splitlines()], folder) == [
        "a.png", "b.jpg", os.path.join("sub", "broken.jpg"), os.path.join("sub", "c.webp")]
    hidden = f"{folder / '.git'}, {folder / '.thumb.jpg'}"  # named, so that none goes unseen
    assert "4 images" in r.stderr
    assert f"skipped 2 hidden entries ({hidden}; --hidden scans them)" in _skipped_line(r.stderr)
    r = run(runner, tiny_weights, ["--hidden", "-E", "sub", "--exclude", "*.png", str(folder)])
    assert rel([line.split("\t")[0] for line in r.stdout.splitlines()], folder) == [".thumb.jpg", "b.jpg"]
    assert r.exit_code == 0 and "2 images" in r.stderr and "skipped 3 excluded entries" in r.stderr
    assert "hidden" not in _skipped_line(r.stderr)
    r = run(runner, tiny_weights, ["--progress", "-b", "1", str(folder)])  # the total uses the same rules
    assert "4/4" in r.stderr, r.stderr
    r = run(runner, tiny_weights, [str(folder / ".thumb.jpg")])  # a named file is scanned
    assert r.exit_code == 0 and r.stdout.startswith(str(folder / ".thumb.jpg")) and "skipped" not in r.stderr
    r = run(runner, tiny_weights, ["-E", "*", str(folder)])
    assert (r.exit_code == 2 and "no image files found" in r.stderr
            and f"2 hidden entries ({hidden}; --hidden scans them), 3 excluded entries" in r.stderr)


def test_an_exclude_pattern_that_matches_nothing_is_named(runner, tiny_weights, folder):
    # '*.PNG' is a case away from the folder's a.png: the scan skips nothing and says which
    # pattern skipped nothing, so that a typo does not pass for an exclusion
    r = run(runner, tiny_weights, ["-E", "*.PNG", "-E", "sub", "-E", "*.PNG", str(folder)])
    assert r.exit_code == 0 and "2 images" in r.stderr and "skipped 1 excluded entry" in r.stderr
    warnings = [line for line in r.stderr.splitlines() if "matched nothing" in line]
    assert warnings == ["fakedet: warning: -E/--exclude '*.PNG' matched nothing in the folders walked "
                        "(patterns are case-sensitive; one without '/' matches names, one with '/' paths "
                        "from the folder given)"], r.stderr
    r = run(runner, tiny_weights, ["-E", "sub", "-E", "*.png", str(folder)])
    assert "matched nothing" not in r.stderr
    r = run(runner, tiny_weights, ["-q", "-E", "*.PNG", str(folder)])  # -q: nothing on stderr
    assert r.stderr == ""
    r = run(runner, tiny_weights, ["-E", "*.PNG", str(folder / "a.png")])  # no folder walked
    assert "matched nothing" not in r.stderr
    # a review: a hidden entry is skipped as hidden before any pattern, but a pattern naming it
    # did match; a newline in a pattern is written as \n, not as a line of its own
    (folder / ".git").mkdir()
    r = run(runner, tiny_weights, ["-E", ".git", "-E", "a\nb", "-E", "*.png", "-E", "a.png", str(folder)])
    assert "-E/--exclude 'a\\nb' matched nothing" in r.stderr and "'.git'" not in r.stderr
    assert "'a.png'" not in r.stderr  # a second pattern matching the same file matched too


def test_info_reads_the_header_without_importing_torch(tiny_weights):
    import subprocess
    import sys

    code = ("import sys\nfrom fakedet.cli import main\nsys.argv = ['fakedet', 'info', '-w', sys.argv[1]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    r = subprocess.run([sys.executable, "-c", code, str(tiny_weights)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "test_efficientnet" in r.stdout and "parameters:" in r.stdout


def test_info_names_the_run_a_warm_restart_began_from_and_any_interpolation(runner, tmp_path):
    """Weights continued from another run (``train.init_from``) say so, with the parent's
    file, sha256, length and sets: what they learnt first is part of what they are."""
    from fakedet.model import checkpoint as ckpt

    from conftest import make_tiny_checkpoint

    path = make_tiny_checkpoint(tmp_path / "child.safetensors")
    model, meta = ckpt.load(path)
    meta.training["continued_from"] = {"path": "weights/parent.safetensors", "sha256": "ab" * 32,
                                       "steps": 4000, "train_sets": ["dfdc_faceswap", "sd15_finetunes"]}
    meta.training["interpolated_with"] = {"path": "weights/parent.safetensors", "sha256": "cd" * 32, "weight": 0.25}
    ckpt.save(model, meta, path)
    out = runner.invoke(cli, ["info", "--weights", str(path)]).stdout
    assert ("continued:    from weights/parent.safetensors (sha256 abababababab, 4000 steps on dfdc_faceswap, "
            "sd15_finetunes)") in out
    assert "interpolated: 0.75 of the trained weights + 0.25 of weights/parent.safetensors (sha256 cdcdcdcdcdcd)" in out
    plain = runner.invoke(cli, ["info", "--weights", str(make_tiny_checkpoint(tmp_path / "plain.safetensors"))]).stdout
    assert "continued:" not in plain and "interpolated:" not in plain


@pytest.mark.parametrize("field, value", [
    ("evaluation.test", {"setA": {"auc": 0.9}, "setB": 3}),
    ("training.continued_from", "x"),
    ("evaluation.verdicts_test", {"a": [1, 2]}),
    ("training.train_seconds", "x"),
    ("training.train_sets", 5),
    ("evaluation.test_ece_uncalibrated", "x"),
])
def test_info_shows_a_malformed_metadata_field_as_missing_not_a_traceback(runner, tmp_path, field, value):
    from fakedet.model import checkpoint as ckpt

    from conftest import make_tiny_checkpoint

    path = make_tiny_checkpoint(tmp_path / "odd.safetensors")
    model, meta = ckpt.load(path)
    meta.training.setdefault("steps", 10)
    section, key = field.split(".")
    getattr(meta, section)[key] = value
    ckpt.save(model, meta, path)
    r = runner.invoke(cli, ["info", "--weights", str(path)])
    assert r.exit_code == 0, r.output
    assert "sha256:" in r.stdout and r.exception is None


def test_interruptions_are_found_through_causes_and_contexts():
    from fakedet.cli import common

    ki, term = KeyboardInterrupt(), common.Terminated()
    try:
        try:
            raise term
        except KeyboardInterrupt as inner:
            raise RuntimeError("Error calling __set_name__") from inner
    except RuntimeError as exc:
        wrapped = exc
    assert common.interruption_in(wrapped) is term and common.interruption_in(ki) is ki
    plain = ValueError("no")
    plain.__context__ = OSError("nor this")
    assert common.interruption_in(plain) is None and common.interruption_in(None) is None
    loop = RuntimeError("a")
    loop.__context__ = RuntimeError("b")
    loop.__context__.__context__ = loop  # a cycle ends the walk
    assert common.interruption_in(loop) is None


@pytest.mark.parametrize("signal_name, status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_interruption_wrapped_in_another_error_at_model_load_is_still_an_interruption(
        runner, tmp_path, monkeypatch, signal_name, status):
    """Ctrl-C during ``import torch`` (the model loads in the main thread in face mode) comes
    out as a RuntimeError caused by the KeyboardInterrupt; it was a traceback and status 1,
    which means "labelled fake"."""
    from fakedet.cli import common
    from fakedet.inference import detector

    def interrupted_load(*a, **k):
        try:
            raise KeyboardInterrupt() if signal_name == "SIGINT" else common.Terminated()
        except KeyboardInterrupt as exc:
            raise RuntimeError("Error calling __set_name__ on 'Field' instance") from exc

    monkeypatch.setattr(detector.Detector, "load", classmethod(lambda cls, *a, **k: interrupted_load()))
    img = write_image(tmp_path / "a.jpg")
    res = runner.invoke(cli, ["scan", "--faces", str(img)])
    assert res.exit_code == status, (res.output, res.stderr)
    assert ("interrupted" if status == 130 else "terminated") in res.stderr


def test_the_entry_point_turns_a_wrapped_interruption_into_its_status(monkeypatch, capsys):
    import fakedet.cli as cli_module

    def wrapped(*a, **k):
        try:
            raise KeyboardInterrupt()
        except KeyboardInterrupt as exc:
            raise RuntimeError("while importing") from exc

    monkeypatch.setattr(cli_module.cli, "main", wrapped)
    assert cli_module._main() == 130
    assert "interrupted" in capsys.readouterr().err

    def bug(*a, **k):
        raise RuntimeError("a bug")
    monkeypatch.setattr(cli_module.cli, "main", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        cli_module._main()


def test_face_mode_without_a_usable_torchvision_is_a_clear_error_not_a_crash(runner, tiny_weights, tmp_path,
                                                                              monkeypatch):
    """A torchvision built for another torch fails at import ('operator torchvision::nms does not
    exist'); face mode then says so, with status 2, instead of a traceback and status 1."""
    import sys

    img = write_image(tmp_path / "a.jpg")
    monkeypatch.setitem(sys.modules, "fakedet.model.faces", None)  # its import now fails
    r = runner.invoke(cli, ["scan", "--faces", "--exit-code", "-w", str(tiny_weights), "-j", "0", str(img)])
    assert r.exit_code == 2, r.output
    assert "face mode needs torchvision, which cannot be imported here" in r.stderr
    assert "Traceback" not in r.stderr and "--no-faces" not in r.stderr
    # explain searches for faces by default: its message names the way round
    r = runner.invoke(cli, ["explain", "-w", str(tiny_weights), "-o", str(tmp_path / "out"), str(img)])
    assert r.exit_code == 2 and "fakedet explain --no-faces explains without face mode" in r.stderr, r.output
    r = runner.invoke(cli, ["explain", "--no-faces", "--grid", "2", "-w", str(tiny_weights), "-o",
                            str(tmp_path / "out"), str(img)])
    assert r.exit_code == 0, r.output


def test_a_bug_ends_with_its_own_status_never_the_fake_one(monkeypatch, capsys):
    import fakedet.cli as cli_module

    def bug():
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(cli_module, "_main", bug)
    with pytest.raises(SystemExit) as stop:
        cli_module.main()
    assert stop.value.code == 70 and "ZeroDivisionError: a bug" in capsys.readouterr().err


@pytest.mark.parametrize("fmt, doc", [("json", "[]\n"), ("csv", "path,p_fake,label,error\n")])
def test_an_interruption_while_the_scan_imports_still_leaves_a_whole_document(runner, tiny_weights, tmp_path,
                                                                                monkeypatch, fmt, doc):
    """Ctrl-C in the tenth of a second the scan spends importing its pipeline: stdout gets
    json's [] or csv's header, as after a later interruption, not nothing."""
    import sys
    import types

    img = write_image(tmp_path / "a.jpg")
    slow = types.ModuleType("fakedet.inference.stream")

    def interrupted(name):
        raise KeyboardInterrupt
    slow.__getattr__ = interrupted
    monkeypatch.setitem(sys.modules, "fakedet.inference.stream", slow)
    r = runner.invoke(cli, ["scan", "-f", fmt, "-w", str(tiny_weights), str(img)])
    assert r.exit_code != 0 and r.stdout == doc  # (the runner reports the Ctrl-C as click's Abort)


def test_an_option_before_the_command_name_is_a_usage_error_not_a_file(runner, tiny_weights, tmp_path):
    img = write_image(tmp_path / "a.jpg")
    r = runner.invoke(cli, ["-q", "scan", "-w", str(tiny_weights), str(img)])
    assert r.exit_code == 2 and "options go after the command's name: fakedet scan" in r.stderr
    r = runner.invoke(cli, ["-t", "0.5", "eval", str(tmp_path)])
    assert r.exit_code == 2 and "fakedet eval [OPTIONS]" in r.stderr
    r = runner.invoke(cli, ["-q", "-w", str(tiny_weights), "-j", "0", str(img)])  # no command: a scan
    assert r.exit_code == 0, r.stderr


@pytest.mark.parametrize("command", ["scan", "eval"])
def test_a_nan_threshold_is_a_usage_error(runner, tiny_weights, tmp_path, command):
    img = write_image(tmp_path / "real" / "a.jpg")
    r = runner.invoke(cli, [command, "-t", "nan", "-w", str(tiny_weights), str(img if command == "scan" else tmp_path)])
    assert r.exit_code == 2 and "nan is not a threshold" in r.stderr


def test_a_signal_while_the_json_array_is_closed_still_closes_it(runner, tiny_weights, folder, monkeypatch):
    """Ctrl-C landing inside the writer's close (after it marks itself closed, before the ``]``)
    takes effect once the array is closed: the output parses and the status says interrupted."""
    from fakedet.cli import common
    from fakedet.data import writers

    close = writers.Writer.close

    def close_with_a_signal(self):
        if not self._closed and self.fmt == "json":
            self._closed = True
            common._interrupt(KeyboardInterrupt())  # what the SIGINT handler does, just then
            self._closed = False
        close(self)

    monkeypatch.setattr(writers.Writer, "close", close_with_a_signal)
    r = runner.invoke(cli, ["scan", "-w", str(tiny_weights), "-j", "0", "-f", "json", str(folder)])
    assert r.exit_code == 130
    assert len(json.loads(r.stdout)) == 4  # a.png, b.jpg, sub/broken.jpg, sub/c.webp


def test_a_stop_after_one_record_says_record(runner, tiny_weights, tmp_path, monkeypatch):
    from fakedet.cli import common
    from fakedet.data import writers

    write_image(tmp_path / "a.png", "PNG", seed=1)
    write = writers.Writer.write

    def write_then_stop(self, records):
        write(self, records)
        common._interrupt(KeyboardInterrupt())

    monkeypatch.setattr(writers.Writer, "write", write_then_stop)
    r = run(runner, tiny_weights, [str(tmp_path / "a.png")])
    assert r.exit_code == 130 and "interrupted after 1 record\n" in r.stderr
    # a stopped scan gives no summary: its last message counts the fakes and errors so far
    r = run(runner, tiny_weights, ["-t", "0", str(tmp_path / "a.png"), str(tmp_path / "gone.png")])
    assert r.exit_code == 130 and "interrupted after 2 records (1 labelled fake, 1 error)\n" in r.stderr


def test_the_summary_gives_a_threshold_with_the_digits_the_records_have(runner, tiny_weights, tmp_path):
    """-t 0.99995 was summarised as "threshold 1.0000", beside records of 0.999977 labelled fake."""
    write_image(tmp_path / "a.jpg")
    r = run(runner, tiny_weights, ["-t", "0.99995", str(tmp_path / "a.jpg")])
    assert "threshold 0.999950" in _summary_line(r.stderr), r.stderr


def test_files_in_a_folder_that_are_no_image_by_name_or_content_are_counted_and_named_in_the_summary(
        runner, tiny_weights, tmp_path):
    """The first three are named, then a count; an image by its first bytes is scored whatever its
    name (a phone's save without an extension, a browser's .jpg_large), and a video, a text or a
    camera RAW file (TIFF's bytes) is not."""
    write_image(tmp_path / "a.jpg")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    r = run(runner, tiny_weights, [str(tmp_path)])
    assert r.exit_code == 0 and r.stdout.count("\n") == 1
    assert (f"skipped 2 files not an image by name or first bytes ({tmp_path / 'clip.mp4'}, {tmp_path / 'notes.txt'}; "
            "name one on the command line to get its record)") in _skipped_line(r.stderr)
    write_image(tmp_path / "IMG-20240502-WA0001")  # a JPEG
    write_image(tmp_path / "photo.jpg_large", "PNG")
    write_image(tmp_path / "sticker.download", "WEBP")
    write_image(tmp_path / "raw.CR2", "TIFF")
    write_image(tmp_path / "half.jpg.part", seed=3)  # a download under way: not opened
    (tmp_path / "x.doc").write_text("x")
    r = run(runner, tiny_weights, [str(tmp_path)])
    assert [line.split("\t")[0] for line in r.stdout.splitlines()] == [
        str(tmp_path / n) for n in ("IMG-20240502-WA0001", "a.jpg", "photo.jpg_large", "sticker.download")]
    assert r.exit_code == 0 and all(line.split("\t")[3] == "" for line in r.stdout.splitlines())  # scored
    assert (f"skipped 5 files not an image by name or first bytes ({tmp_path / 'clip.mp4'}, "
            f"{tmp_path / 'half.jpg.part'}, {tmp_path / 'notes.txt'} and 2 more; name one") \
        in _skipped_line(r.stderr)


def test_a_mistyped_command_is_a_usage_error_that_names_the_command(runner, tiny_weights, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(cli, ["evl", "x"])
    assert r.exit_code == 2 and "did you mean: fakedet eval?" in r.stderr
    write_image(tmp_path / "evl")  # a file of that name is scanned, as before
    r = runner.invoke(cli, ["-w", str(tiny_weights), "evl"])
    assert r.exit_code == 0 and r.stdout.startswith("evl\t")
    r = runner.invoke(cli, ["-w", str(tiny_weights), "missing.jpg"])  # a missing photo is no typo
    assert r.exit_code == 3 and "file not found" in r.stdout


def test_a_folder_without_images_is_warned_about_with_its_own_skipped_files(runner, tiny_weights, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_image(a / "x.jpg")
    for n in ("1.txt", "2.txt", "3.txt"):
        (a / n).write_text("x")
    b.mkdir()
    (b / "only.txt").write_text("x")
    r = run(runner, tiny_weights, [str(a), str(b)])
    assert (f"no image files found in {b} (skipped 1 file not an image by name or first bytes ({b / 'only.txt'}; "
            "name one") in r.stderr, r.stderr  # named: the folder's own, not the first folder's
    assert "skipped 4 files not an image by name" in _skipped_line(r.stderr)
    r = run(runner, tiny_weights, ["-E", "*.txt", str(a)])  # excluded by the user: counted so
    assert "skipped 3 excluded entries" in r.stderr and "not an image by name or first bytes" not in r.stderr, r.stderr


def test_control_characters_in_messages_are_escaped(tmp_path, monkeypatch, capsys):
    r"""A file name or a manifest's cell in an error message reaches the terminal as \xHH, not
    as an escape sequence (a usage error is shown by the program's own main, as installed)."""
    import sys

    from fakedet.cli import _main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["fakedet", "scan", "--files-from", "list\x1b]0;TITLE\x07x"])
    assert _main() == 2
    err = capsys.readouterr().err
    assert "list\\x1b]0;TITLE\\x07x" in err and "\x1b" not in err and "\x07" not in err
    # a carriage return, and bytes that are not UTF-8, as \xHH too
    monkeypatch.setattr(sys, "argv", ["fakedet", "scan", "--files-from", "over\rwrite\udcff"])
    assert _main() == 2
    err = capsys.readouterr().err
    assert "over\\x0dwrite\\xff" in err and "\r" not in err
    # click's own messages quote a value with repr(): its byte 0xff is \xff there too
    for args in (["-f", "\udcff"], ["--bogus\udcff"], ["-b", "x\udcfe"]):
        monkeypatch.setattr(sys, "argv", ["fakedet", "scan", *args, "a.jpg"])
        assert _main() == 2
        err = capsys.readouterr().err
        assert "\\xf" in err and "\\udc" not in err, err

    (tmp_path / "m.csv").write_text("file,label,split\nx.jpg,1,\x1b[2Jtrain\n")
    monkeypatch.setattr(sys, "argv", ["fakedet", "eval", "m.csv", "--split", "test"])
    _main()
    err = capsys.readouterr().err
    assert "\\x1b[2jtrain" in err and "\x1b" not in err  # (split names are compared lower-cased)


def test_a_file_name_read_as_options_gets_a_hint(tiny_weights, tmp_path):
    """``fakedet -q -dash.jpg`` parses as ``-q -d ash.jpg``: the error says how to name the file."""
    import subprocess
    import sys

    write_image(tmp_path / "-dash.jpg")
    p = subprocess.run([sys.executable, "-m", "fakedet", "-q", "-w", str(tiny_weights), "-dash.jpg"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert "(a file named -dash.jpg? a name that starts with - is read as options: write ./-dash.jpg" in p.stderr
    p = subprocess.run([sys.executable, "-m", "fakedet", "-q", "--nosuch"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and "a file named" not in p.stderr


@pytest.mark.skipif(os.name != "posix", reason="needs a pseudo-terminal")
@pytest.mark.parametrize("args, says", [(["--files-from", "-"], "reading paths from the terminal, one per line"),
                                        (["-"], "reading an image's bytes from the terminal")])
def test_stdin_on_a_terminal_says_what_the_scan_waits_for(tiny_weights, args, says):
    import pty
    import subprocess
    import sys

    main, sub = pty.openpty()
    try:
        p = subprocess.Popen([sys.executable, "-m", "fakedet", "scan", "-w", str(tiny_weights), *args], stdin=sub,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        os.close(sub)
        sub = None
        import time

        time.sleep(3)  # started, and waiting for the terminal
        os.write(main, b"\x04")  # Ctrl-D: the end of the input
        out, errs = p.communicate(timeout=120)
    finally:
        os.close(main)
        if sub is not None:
            os.close(sub)
    assert says in errs and "Ctrl-D ends" in errs


@pytest.mark.parametrize("edit", [
    lambda m: m["training"].__setitem__("train_seconds", 10 ** 400),
    lambda m: m["training"].__setitem__("interpolated_with", {"weight": 10 ** 400, "path": "x", "sha256": "y"}),
    lambda m: m["model"].__setitem__("name", "\ud800x"),
    lambda m: m["evaluation"].__setitem__("deep", json.loads("[" * 600 + "]" * 600)),
])
def test_info_shows_odd_free_form_metadata_without_a_traceback(tmp_path, edit):
    """A 400-digit number (OverflowError), a lone surrogate (UnicodeEncodeError on the text
    output) or 600 levels of nesting (RecursionError in --json) ended info with status 70."""
    import subprocess
    import sys

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from conftest import make_tiny_checkpoint

    path = tmp_path / "w.safetensors"
    make_tiny_checkpoint(path)
    with safe_open(str(path), "pt") as fh:
        meta = json.loads(fh.metadata()["fakedet"])
    meta.setdefault("training", {})
    meta.setdefault("evaluation", {})
    edit(meta)
    save_file(load_file(str(path)), str(path), metadata={"fakedet": json.dumps(meta)})
    for extra in ([], ["--json"]):
        p = subprocess.run([sys.executable, "-m", "fakedet", "info", "-w", str(path), *extra], capture_output=True,
                           timeout=120, env={**os.environ, "PYTHONIOENCODING": "utf-8:strict"})
        assert p.returncode == 0 and b"Traceback" not in p.stderr, p.stderr[-1500:]


def test_info_describes_face_mode_as_scan_faces_runs_it(runner, tmp_path, monkeypatch):
    """An expert without face verdicts is left out by --faces, and was described as fused; a file
    with face_threshold and no face verdicts has --faces label by it, and info called it only 'the
    earlier face-mode threshold'."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from fakedet.model import expert as fx

    from conftest import make_tiny_checkpoint

    path = tmp_path / "w.safetensors"
    make_tiny_checkpoint(path)
    with safe_open(str(path), "pt") as fh:
        meta = json.loads(fh.metadata()["fakedet"])
    meta.update(verdicts={"fake": 0.9, "real": 0.1, "rule": "r"}, face_verdicts=None, face_threshold=0.8)
    save_file(load_file(str(path)), str(path), metadata={"fakedet": json.dumps(meta)})
    from test_face_expert import make_expert

    expert = make_expert(tmp_path / "e.safetensors", path, face_verdicts=None)
    monkeypatch.setattr(fx, "default_expert_path", lambda: expert)
    r = runner.invoke(cli, ["info", "-w", str(path)])
    assert r.exit_code == 0, r.output
    assert "face mode:    threshold 0.800000 for --faces" in r.stdout
    assert "face expert:" not in r.stdout and "fused faces:" not in r.stdout


def test_info_says_in_short_how_many_test_images_got_each_verdict(runner, tmp_path):
    """The plain-words lines count images from the per-set shares and image counts, pooled; a
    share that is not one (a value above 1) leaves them out rather than printing a wrong count."""
    from fakedet.model import checkpoint as ckpt

    from conftest import make_tiny_checkpoint

    path = make_tiny_checkpoint(tmp_path / "counted.safetensors")
    model, meta = ckpt.load(path)
    meta.evaluation["verdicts_test"] = {
        "setA": {"n_real": 100, "n_fake": 50, "real": {"fake": 0.01, "uncertain": 0.99, "real": 0.0},
                 "fake": {"fake": 0.2, "uncertain": 0.76, "real": 0.04}},
        "setB": {"n_real": 0, "n_fake": 200, "real": None, "fake": {"fake": 0.5, "uncertain": 0.5, "real": 0.0}},
        "setC": {"n_real": 300, "n_fake": 0, "real": {"fake": 0.0, "uncertain": 0.9, "real": 0.1}, "fake": None},
    }
    ckpt.save(model, meta, path)
    out = runner.invoke(cli, ["info", "--weights", str(path)]).stdout
    assert out.startswith("in short:")
    assert "real photos labelled fake: 1 of 400\n" in out
    assert "fakes labelled fake:       110 of 250, the rest missed\n" in out
    assert "by set from 20.0% (setA)" in out and "to 50.0% (setB)" in out
    assert "labelled uncertain:        507 of 650," in out
    assert "labelled real:             32 images, of which 2 fakes: real proves nothing" in out
    assert "3 sets listed below, 0 of them trained on" in out  # the tiny checkpoint's train_sets: ["none"]
    # each side's three shares, real->real too (a persona test: a real-only set's row added up to 0.9)
    assert "  setC                       0.0000     0.9000     0.1000          -          -          -\n" in out
    meta.evaluation["verdicts_test"]["setA"]["fake"] = {"fake": 0.24, "uncertain": 0.76, "real": 0.0}
    meta.evaluation["verdicts_test"]["setC"]["real"] = {"fake": 0.0, "uncertain": 0.1, "real": 0.9}
    ckpt.save(model, meta, path)
    out = runner.invoke(cli, ["info", "--weights", str(path)]).stdout
    assert "of which 0 fakes\n" in out and "proves nothing" not in out  # said only where borne out
    assert "usual verdict" not in out  # 267 of 650 uncertain
    meta.evaluation["verdicts_test"]["setB"]["fake"]["fake"] = 5.0
    ckpt.save(model, meta, path)
    r = runner.invoke(cli, ["info", "--weights", str(path)])
    assert r.exit_code == 0 and "in short:" not in r.stdout and r.stdout.startswith("model:")


def test_scan_scores_the_picture_inside_a_screenshot_and_says_which_animations_were_cut_to_one_frame(
        runner, tiny_weights, tmp_path):
    """A picture inside a phone screenshot is scored as the picture alone is, its box in the
    record, and the summary says so; with --no-crop the screenshot is scored whole and the summary
    asks to crop it. Only an animation's first frame is scored; the summary says so."""
    import re

    from PIL import Image, ImageDraw

    from conftest import random_image

    pic = random_image((400, 300))
    screen = Image.new("RGB", (540, 1170), (255, 255, 255))
    ImageDraw.Draw(screen).text((20, 20), "12:41  Family group", fill=(0, 0, 0))
    screen.paste(pic, (70, 400))
    screen.save(tmp_path / "shot.png")
    alone = tmp_path.parent / f"{tmp_path.name}-alone.png"
    pic.save(alone)
    random_image((400, 300), seed=2).save(tmp_path / "photo.png")
    frames = [random_image((96, 96), seed=s) for s in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    r = runner.invoke(cli, ["scan", "-w", str(tiny_weights), "-j", "0", "-f", "jsonl", str(tmp_path), str(alone)])
    assert r.exit_code == 0, r.output
    recs = {os.path.basename(d["path"]): d for d in map(json.loads, r.stdout.splitlines())}
    assert recs["shot.png"]["cropped"] == [70, 400, 470, 700]
    assert recs["shot.png"]["p_fake"] == recs[alone.name]["p_fake"]
    assert recs["photo.png"]["cropped"] is None and recs["anim.gif"]["cropped"] is None
    assert (f"1 image ({tmp_path / 'shot.png'}) has margins around the picture, as a screenshot, a border, "
            "a letterbox, a meme's caption bands or a story's backdrop give (or a plain backdrop): the picture "
            "inside it was scored") \
        in r.stderr
    assert "scan again" not in r.stderr
    assert f"1 animation or file of several pages ({tmp_path / 'anim.gif'}): only its first frame or page was " \
        "scored" in r.stderr
    whole = runner.invoke(cli, ["scan", "--no-crop", "-w", str(tiny_weights), "-j", "0", "-f", "jsonl", str(tmp_path)])
    recs = {os.path.basename(d["path"]): d for d in map(json.loads, whole.stdout.splitlines())}
    assert recs["shot.png"]["cropped"] is None and recs["shot.png"]["framed"] is True  # in the record too
    assert not recs["photo.png"]["framed"] and not recs["anim.gif"]["framed"]
    assert (f"1 image ({tmp_path / 'shot.png'}) has wide margins around the picture, as a screenshot, a border or "
            "a story's blurred or gradient backdrop gives, and was scored whole: crop it to the picture and scan "
            "again") in whole.stderr
    plain = runner.invoke(cli, ["scan", "-w", str(tiny_weights), "-j", "0", str(tmp_path / "photo.png")])
    assert "margins" not in plain.stderr and "animation" not in plain.stderr
    for flag, shot in (("--crop", (None, None, [70, 400, 470, 700])), ("--no-crop", (True, None, None))):
        report = tmp_path.parent / f"{tmp_path.name}-report{flag}.html"
        runner.invoke(cli, ["scan", "-q", flag, "-w", str(tiny_weights), "-j", "0", "--report", str(report),
                            str(tmp_path)])
        html = report.read_text()
        assert "margins around the picture" in html and "only its first frame or page was scored" in html
        rows = [r for b in re.findall(r'class="fakedet-batch">(.*?)</script>', html) for r in json.loads(b)]
        marked = {r["path"].rsplit("/", 1)[1]: (r.get("framed"), r.get("animated"), r.get("cropped")) for r in rows}
        assert marked == {"shot.png": shot, "anim.gif": (None, True, None), "photo.png": (None, None, None)}


def test_a_two_way_scan_reminds_that_its_verdicts_are_for_measuring(runner, tmp_path):
    from conftest import make_tiny_checkpoint, write_image

    weights = make_tiny_checkpoint(tmp_path / "three.safetensors", verdicts={"fake": 0.9, "real": 0.1, "rule": "r"})
    path = write_image(tmp_path / "a.jpg")
    r = runner.invoke(cli, ["scan", "-t", "0.5", "-w", str(weights), "-j", "0", str(path)])
    assert "threshold 0.500000: two verdicts, for measuring the model" in r.stderr
    assert "for measuring" not in runner.invoke(cli, ["scan", "-w", str(weights), "-j", "0", str(path)]).stderr


def test_the_summary_counts_the_images_not_scored_by_reason(runner, tiny_weights, folder, tmp_path):
    """'3 errors' said nothing of why: the summary (and the report's) counts them by reason, the
    commonest first (a fact-checker's folder of stickers and broken downloads)."""
    from PIL import Image

    for i in range(2):
        Image.new("RGB", (64, 64), (255, 255, 255 - i)).save(folder / f"blank{i}.png")
    report = tmp_path / "r.html"
    r = run(runner, tiny_weights, ["-o", str(tmp_path / "out.jsonl"), "--report", str(report), str(folder)])
    assert r.exit_code == 3, r.stderr
    line = "not scored: 2 one colour only; 1 "
    assert line in r.stderr and "(each record's 'error' says why)" in r.stderr, r.stderr
    assert line in report.read_text("utf-8")
    from fakedet.cli.scan import error_kind

    assert error_kind("video files are not supported (MP4 container); extract frames") == \
        "video files are not supported"
    assert error_kind("image too large: 9500x9500 = 90250000 pixels") == "image too large"
    assert error_kind("HEIC/HEIF image: reading it needs pillow-heif (pip install pillow-heif)") == \
        "HEIC/HEIF image: reading it needs pillow-heif"  # what to do, after a format's name (review)
    assert error_kind("'-' (stdin) cannot be named inside a list of paths") == \
        "'-' cannot be named inside a list of paths"


def test_the_summary_names_the_first_images_labelled_fake(runner, tiny_weights, folder):
    """'1 fake' among 72 images left the user to find which (persona, a fact-checker): the summary
    names the first three labelled fake and counts the rest."""
    write_image(folder / "d.png", "PNG", seed=4)
    r = run(runner, tiny_weights, ["-t", "0", str(folder)])
    fakes = [line.split("\t")[0] for line in r.stdout.splitlines() if line.split("\t")[2] == "fake"]
    assert len(fakes) == 4
    assert f"labelled fake ({', '.join(fakes[:3])} and 1 more): a reason to look closer, not proof" in r.stderr
    r = run(runner, tiny_weights, ["-t", "1.0", str(folder)])
    assert "labelled fake" not in r.stderr and "labelled real" not in r.stderr  # two-way: real is a score below


def test_the_summary_says_what_uncertain_means(runner, folder, tmp_path):
    """A persona (a woman checking photos of herself) found a caveat in the summary for fake and
    for real but none for uncertain, her commonest verdict: the summary counts the images
    labelled uncertain and says what that verdict does not say; under -t there is none."""
    from conftest import make_tiny_checkpoint

    weights = make_tiny_checkpoint(tmp_path / "w.safetensors", verdicts={"fake": 0.99999, "real": 1e-9, "rule": "r"})
    r = runner.invoke(cli, ["scan", "-w", str(weights), "-j", "0", str(folder)])
    n = sum(line.split("\t")[2] == "uncertain" for line in r.stdout.splitlines())
    assert n >= 2, r.stdout
    assert (f"labelled uncertain ({n} images): the score lies where real photos of some sources also fall, and "
            "most fakes get this verdict too: it says little either way") in r.stderr
    r = runner.invoke(cli, ["scan", "-w", str(weights), "-j", "0", "-t", "0.5", str(folder)])
    assert "labelled uncertain" not in r.stderr


def test_the_summary_names_the_first_images_labelled_real_with_what_that_does_not_say(runner, folder, tmp_path):
    """A persona (a helpline's worker with victims' face swaps) found no caveat on 'real' where a
    victim's helper would look: with three verdicts, the summary names those labelled real and
    says that it is no proof that an image is genuine."""
    from conftest import make_tiny_checkpoint

    write_image(folder / "d.png", "PNG", seed=4)
    weights = make_tiny_checkpoint(tmp_path / "w.safetensors", verdicts={"fake": 0.99999, "real": 0.99998, "rule": "r"})
    r = runner.invoke(cli, ["scan", "-w", str(weights), "-j", "0", str(folder)])
    reals = [line.split("\t")[0] for line in r.stdout.splitlines() if line.split("\t")[2] == "real"]
    assert len(reals) == 4, r.stdout
    assert (f"labelled real ({', '.join(reals[:3])} and 1 more): no evidence of manipulation found, which is not "
            "proof that an image is genuine") in r.stderr


@pytest.mark.parametrize("faces", [[], ["--faces"]])
@pytest.mark.parametrize("kept", [False, True])
def test_a_scan_stopped_while_its_model_loads_says_no_record_was_written_and_that_o_was_kept(
        runner, tmp_path, monkeypatch, kept, faces):
    """The exit-status table says stderr tells how many records were written, and -o's row that a
    scan that made none says its earlier file was kept; stopped during start-up it said only
    'terminated'."""
    from fakedet.cli import common
    from fakedet.inference import detector

    def terminated(cls, *a, **k):
        raise common.Terminated()

    monkeypatch.setattr(detector.Detector, "load", classmethod(terminated))
    img = write_image(tmp_path / "a.jpg")
    out = tmp_path / "keep.tsv"
    if kept:
        out.write_text("old\n")
    res = runner.invoke(cli, ["scan", *faces, "-o", str(out), str(img)])
    assert res.exit_code == 143, (res.output, res.stderr)
    assert "terminated after 0 records" in res.stderr
    assert (f"{out} was not written: what it holds is from before this scan" in res.stderr) == kept
    assert (out.read_text() == "old\n") if kept else not out.exists()


@pytest.mark.parametrize("stored", [None, 0.75284, 0.5])
def test_info_names_the_threshold_its_test_figures_were_counted_at(runner, tmp_path, stored):
    """A figures audit: info said the stored test table's acc and FPR were at today's two-way
    threshold, where the table holds the threshold it was counted at (before a recalibration)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from conftest import make_tiny_checkpoint

    path = tmp_path / "w.safetensors"
    make_tiny_checkpoint(path)
    with safe_open(str(path), "pt") as fh:
        meta = json.loads(fh.metadata()["fakedet"])
    two_way = meta["threshold"]
    row = {"n": 10, "auc": 0.9, "accuracy": 0.8, "fpr": 0.1}
    if stored is not None:
        row["threshold"] = two_way if stored == 0.5 else stored
    meta.setdefault("evaluation", {})["test"] = {"all": row}
    save_file(load_file(str(path)), str(path), metadata={"fakedet": json.dumps(meta)})
    res = runner.invoke(cli, ["info", "-w", str(path)])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("evaluation ("))
    if stored == 0.75284:
        assert "0.752840, that of the time" in line
    else:
        assert "that of the time" not in line and f"{two_way:.6f}" in line


def test_an_output_folder_this_user_cannot_write_is_refused_before_the_model_loads(runner, tmp_path, monkeypatch):
    """A read-only folder (a persona ran as another user) was found at the first record, after the
    model loaded and a batch was scored, and the message did not name the file."""
    write_image(tmp_path / "a.png", "PNG")
    folder = tmp_path / "ro"
    folder.mkdir()
    access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if os.fspath(p) == str(folder) else access(p, mode))
    r = runner.invoke(cli, ["scan", "--weights", str(tmp_path / "missing.safetensors"), "-o", str(folder / "out.tsv"),
                            str(tmp_path / "a.png")])
    assert r.exit_code == 2 and "Permission denied (its folder" in r.stderr and "out.tsv" in r.stderr, r.stderr
    assert not (folder / "out.tsv").exists()


def test_parquet_into_a_pipe_by_another_name_is_refused_before_scoring(tiny_weights, tmp_path):
    """`-f parquet -o /dev/stdout | ...` scored every image, then failed with "lseek failed"."""
    import subprocess
    import sys

    write_image(tmp_path / "a.png", "PNG")
    r = subprocess.run([sys.executable, "-m", "fakedet", "scan", "-w", str(tmp_path / "missing.safetensors"),
                        "-f", "parquet", "-o", "/dev/stdout", str(tmp_path / "a.png")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    assert r.returncode == 2 and b"a file it can seek in, and /dev/stdout is a pipe" in r.stderr, r.stderr


def test_explain_into_a_device_says_it_is_no_folder(runner, tiny_weights, tmp_path):
    write_image(tmp_path / "a.png", "PNG")
    r = runner.invoke(cli, ["explain", "-w", str(tiny_weights), "-o", os.devnull, str(tmp_path / "a.png")])
    assert r.exit_code == 2 and "it is not a folder" in r.stderr, r.stderr


def test_an_output_path_under_a_file_is_refused_as_such(runner, tmp_path):
    write_image(tmp_path / "a.png", "PNG")
    r = runner.invoke(cli, ["scan", "--weights", str(tmp_path / "missing.safetensors"), "-o",
                            str(tmp_path / "a.png" / "out.tsv"), str(tmp_path / "a.png")])
    assert r.exit_code == 2 and "is a file, not a folder" in r.stderr, r.stderr
