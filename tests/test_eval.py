import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from fakedet.cli import cli
from fakedet.evaluation import metrics as metrics

from conftest import fifo_watchdog, write_image


def test_auc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = rng.normal(size=200) + y + np.round(rng.normal(size=200))  # with ties
    pos, neg = s[y == 1], s[y == 0]
    pairwise = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg))
    assert metrics.auc(y, s) == pytest.approx(pairwise)
    assert metrics.auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert np.isnan(metrics.auc([1, 1], [0.1, 0.2]))


def test_macro_threshold_weighs_each_source_equally():
    rng = np.random.default_rng(0)
    easy, hard = rng.random(2000) * 0.6, rng.random(60) * 0.5 + 0.5
    t = metrics.threshold_at_macro_fpr([easy, hard], 0.05)
    rate = lambda t: ((easy >= t).mean() + (hard >= t).mean()) / 2  # noqa: E731
    assert rate(t) <= 0.05
    below = np.nextafter(max(s for s in np.concatenate([easy, hard]) if s < t), -np.inf)
    assert rate(below) > 0.05  # the smallest such threshold
    assert (hard >= t).mean() <= 0.1  # the pooled rule would let the hard source reach 100 %
    assert (hard >= metrics.threshold_at_fpr(np.concatenate([easy, hard]), 0.05)).mean() > 0.5
    assert metrics.threshold_at_macro_fpr([easy], 0.05) == metrics.threshold_at_fpr(easy, 0.05)


def test_threshold_at_fpr_respects_the_rate():
    real = np.linspace(0, 1, 1000)
    t = metrics.threshold_at_fpr(real, 0.05)
    assert (real >= t).mean() <= 0.05 and (real >= t).mean() >= 0.04


def test_temperature_fit_recovers_known_temperature():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 3, 20000)
    y = (rng.random(20000) < metrics.sigmoid(z / 2.5)).astype(int)
    assert metrics.fit_temperature(y, z) == pytest.approx(2.5, rel=0.1)


def test_ece_and_tpr_at_fpr():
    assert metrics.expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0
    assert metrics.expected_calibration_error([0, 0], [1.0, 1.0]) == 1.0
    assert metrics.tpr_at_fpr([0, 0, 1, 1], [0.1, 0.6, 0.5, 0.9], 0.0) == 0.5


@pytest.fixture
def labelled(tmp_path):
    for i in range(4):
        write_image(tmp_path / "real" / f"r{i}.jpg", seed=i)
        write_image(tmp_path / "fake" / f"f{i}.png", "PNG", seed=10 + i)
    (tmp_path / "fake" / "broken.jpg").write_bytes(b"x")
    return tmp_path


def test_eval_folder_json(tiny_weights, labelled):
    r = CliRunner().invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights), "-j", "0", "--json"])
    assert r.exit_code == 3, r.output  # one unreadable image
    rep = json.loads(r.stdout)
    res = rep["sets"][labelled.name]
    assert res["n"] == 8 and res["n_real"] == 4 and res["n_fake"] == 4 and res["errors"] == 1
    for key in ("auc", "ap", "accuracy", "balanced_accuracy", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr", "ece"):
        assert 0.0 <= res[key] <= 1.0


def test_eval_json_names_an_undecodable_file_as_scan_does(tiny_weights, labelled):
    import base64
    import os

    os.rename(labelled / "fake" / "broken.jpg", os.path.join(os.fsencode(labelled / "fake"), b"e\xff.jpg"))
    r = CliRunner().invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights), "-j", "0", "--json"])
    assert r.exit_code == 3, r.output
    assert "\\ud" not in r.stdout and "\udcff" not in r.stdout  # no unpaired surrogate, escaped or raw
    (u,) = json.loads(r.stdout)["unreadable"]
    assert u["path"].endswith("e\\xff.jpg") and base64.b64decode(u["path_bytes"]).endswith(b"/e\xff.jpg")
    assert "e\\xff.jpg" in r.stderr and "\udcff" not in r.stderr


def test_eval_manifest_split_and_table(tiny_weights, labelled, tmp_path):
    (labelled / "fake" / "broken.jpg").unlink()
    man = labelled / "manifest.csv"
    rows = ["file,label,split"] + [f"real/r{i}.jpg,0,{'test' if i < 2 else 'train'}" for i in range(4)] + \
           [f"fake/f{i}.png,1,{'test' if i < 2 else 'train'}" for i in range(4)]
    man.write_text("\n".join(rows) + "\n")
    r = CliRunner().invoke(cli, ["eval", str(man), "--split", "test", "-w", str(tiny_weights), "-j", "0", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["sets"][labelled.name]["n"] == 4
    r = CliRunner().invoke(cli, ["eval", str(man), "-w", str(tiny_weights), "-j", "0"])
    assert r.exit_code == 0 and "AUC" in r.stdout and "TPR@5%" in r.stdout


def test_eval_plots(tiny_weights, labelled, tmp_path):
    pytest.importorskip("matplotlib")
    (labelled / "fake" / "broken.jpg").unlink()
    out = tmp_path / "plots"
    r = CliRunner().invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights), "-j", "0", "--plots", str(out)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["histogram.png", "reliability.png", "roc.png"]


def test_eval_bad_data_is_a_usage_error(tiny_weights, tmp_path):
    r = CliRunner().invoke(cli, ["eval", str(tmp_path), "-w", str(tiny_weights)])
    assert r.exit_code == 2
    assert "expected real/ and fake/ subfolders (it holds no folder)" in r.output


def test_a_folder_without_real_and_fake_names_what_it_holds(tiny_weights, tmp_path):
    """A persona's set had reals/ and fakes/: the error named only what it expected."""
    for name in ("reals", "fakes", ".cache", "a", "b", "c"):
        (tmp_path / name).mkdir()
    r = CliRunner().invoke(cli, ["eval", str(tmp_path), "-w", str(tiny_weights)])
    assert r.exit_code == 2
    assert "expected real/ and fake/ subfolders (it holds a/, b/, c/, fakes/ and 1 more)" in r.output


def test_eval_folder_with_a_manifest_needs_no_split(tiny_weights, labelled):
    (labelled / "fake" / "broken.jpg").unlink()
    (labelled / "manifest.csv").write_text("file,label\nreal/r0.jpg,real\nfake/f0.png,fake\n")
    r = CliRunner().invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights), "-j", "0", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["sets"][labelled.name]["n"] == 2  # the manifest's rows, not the folders


def test_a_folders_manifest_named_in_any_case(tiny_weights, labelled):
    """Manifest.CSV was not found on a case-sensitive system: the real/ and fake/ folders were
    scored instead, all of them, whatever the manifest said."""
    (labelled / "Manifest.CSV").write_text("file,label\nreal/r0.jpg,real\nfake/f0.png,fake\n")
    r = CliRunner().invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights), "-j", "0", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["sets"][labelled.name]["n"] == 2
    r = CliRunner().invoke(cli, ["eval", str(labelled / "Manifest.CSV"), "-w", str(tiny_weights), "--json"])
    assert r.exit_code == 0 and list(json.loads(r.stdout)["sets"]) == [labelled.name], r.output
    # the report may not overwrite it (the check looked for manifest.csv only)
    r = CliRunner().invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights), "--report",
                                 str(labelled / "Manifest.CSV")])
    assert r.exit_code == 2 and "also an input" in r.stderr, r.output
    if not (labelled / "manifest.csv").exists():  # a case-sensitive file system: two manifests
        (labelled / "MANIFEST.csv").write_text("file,label\nreal/r0.jpg,real\n")
        r = CliRunner().invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights)])
        assert r.exit_code == 2 and "MANIFEST.csv and Manifest.CSV are each a manifest: keep one" in r.stderr
        (labelled / "MANIFEST.csv").unlink()
        (labelled / "manifest.csv").write_text("file,label\nreal/r0.jpg,real\n")  # the exact name: no
        r = CliRunner().invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights)])  # better a guess
        assert r.exit_code == 2 and "Manifest.CSV and manifest.csv are each a manifest" in r.stderr


def test_eval_manifest_with_bom_and_spaces_in_the_header(tiny_weights, labelled):
    man = labelled / "m.csv"
    man.write_bytes("\ufefffile , label\nreal/r0.jpg,0\nfake/f0.png,1\n".encode("utf-8"))
    r = CliRunner().invoke(cli, ["eval", str(man), "-w", str(tiny_weights), "-j", "0", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["sets"]["m.csv"]["n"] == 2


def test_eval_manifest_row_without_a_file_is_a_usage_error(tiny_weights, labelled):
    man = labelled / "short.csv"
    man.write_text("label,file\n1\n")
    r = CliRunner().invoke(cli, ["eval", str(man), "-w", str(tiny_weights)])
    assert r.exit_code == 2 and "no file name" in r.output


def test_an_image_listed_twice_in_a_manifest_is_a_usage_error(tiny_weights, labelled):
    """Counted twice it would weigh twice in every figure."""
    man = labelled / "twice.csv"
    man.write_text("file,label\nreal/r0.jpg,0\nfake/f0.png,1\n./real/r0.jpg,0\n")
    r = CliRunner().invoke(cli, ["eval", str(man), "-w", str(tiny_weights)])
    assert r.exit_code == 2 and "twice.csv:4: ./real/r0.jpg is listed again (first on line 2)" in r.stderr
    # once in each split: counted once with --split
    man.write_text("file,label,split\nreal/r0.jpg,0,train\nfake/f0.png,1,test\nreal/r0.jpg,0,test\n")
    r = CliRunner().invoke(cli, ["eval", str(man), "-w", str(tiny_weights), "--split", "test", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["sets"]["twice.csv"]["n"] == 2, r.stderr


def test_a_hard_link_in_a_manifest_is_the_same_image(tiny_weights, labelled):
    """Only names were compared: a hard link to a listed image counted it twice."""
    import os

    os.link(labelled / "real" / "r0.jpg", labelled / "real" / "copy.jpg")
    man = labelled / "linked.csv"
    man.write_text("file,label\nreal/r0.jpg,0\nfake/f0.png,1\nreal/copy.jpg,0\n")
    r = CliRunner().invoke(cli, ["eval", str(man), "-w", str(tiny_weights)])
    assert r.exit_code == 2 and "linked.csv:4: real/copy.jpg names the same file as real/r0.jpg (line 2" in r.stderr


def test_one_image_in_real_and_fake_folders_is_a_usage_error(tiny_weights, labelled):
    """A link in fake/ to an image in real/ was scored as both a real and a fake image."""
    import os

    os.symlink(labelled / "real" / "r1.jpg", labelled / "fake" / "z.jpg")
    r = CliRunner().invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights)])
    assert r.exit_code == 2, r.output
    assert "fake/z.jpg and real/r1.jpg under" in r.stderr and "are the same file" in r.stderr
    (labelled / "fake" / "z.jpg").unlink()
    os.link(labelled / "fake" / "f1.png", labelled / "fake" / "f1-again.png")  # a hard link too
    r = CliRunner().invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights)])
    assert r.exit_code == 2 and "fake/f1.png and fake/f1-again.png under" in r.stderr, r.output


def test_a_manifests_rows_are_named_as_the_manifest_was(tiny_weights, labelled, monkeypatch):
    """A manifest named by a relative path named its rows by absolute ones, a folder's images
    by the path given: both now as given."""
    monkeypatch.chdir(labelled.parent)
    (labelled / "m.csv").write_text("file,label\nreal/r0.jpg,0\nfake/nope.jpg,1\n")
    r = CliRunner().invoke(cli, ["eval", os.path.join(labelled.name, "m.csv"), "-w", str(tiny_weights)])
    assert r.exit_code == 3, r.output
    assert f"cannot score {os.path.join(labelled.name, 'fake', 'nope.jpg')}: file not found" in r.stderr


def test_files_eval_leaves_out_are_counted_in_a_note(tiny_weights, labelled):
    """Files in real/ or fake/ not an image by name or first bytes, and hidden images, were left out of the
    figures without a word (scan's summary counts them)."""
    (labelled / "real" / "notes.txt").write_text("x")
    write_image(labelled / "fake" / ".hidden.jpg", seed=7)
    r = CliRunner().invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights), "--json"])
    assert r.exit_code == 3 and json.loads(r.stdout)["sets"][labelled.name]["n"] == 8, r.output
    assert f"note: {labelled.name}: left out 1 hidden entry and 1 file not an image by name or first bytes" in r.stderr
    (labelled / "real" / "notes.txt").unlink()
    (labelled / "fake" / ".hidden.jpg").unlink()
    r = CliRunner().invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights)])
    assert "note:" not in r.stderr


def test_broken_links_to_one_missing_file_are_unreadable_not_the_same_file(tiny_weights, labelled):
    """No file, no identity: two broken links to one missing target are two error records."""
    import os

    gone = labelled / "gone" / "x.jpg"
    os.symlink(gone, labelled / "real" / "a.jpg")
    os.symlink(gone, labelled / "fake" / "z.jpg")
    r = CliRunner().invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights), "--json"])
    assert r.exit_code == 3, r.output
    assert "same file" not in r.stderr and len(json.loads(r.stdout)["unreadable"]) == 3


def test_every_pair_of_names_for_one_file_is_counted_and_names_are_escaped(tiny_weights, labelled):
    import os

    os.symlink(labelled / "real" / "r1.jpg", labelled / "fake" / "z\x1b[2J\nq.jpg")
    os.symlink(labelled / "real" / "r2.jpg", labelled / "fake" / "z2.jpg")
    os.symlink(labelled / "real" / "r3.jpg", labelled / "fake" / "z3.jpg")
    r = CliRunner().invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights)])
    assert r.exit_code == 2, r.output
    assert "fake/z\\x1b[2J\\nq.jpg and real/r1.jpg under" in r.stderr and "(and 2 more such names)" in r.stderr
    assert "\x1b" not in r.stderr


def test_images_in_two_data_are_named_in_a_warning(tiny_weights, labelled, tmp_path):
    """Each DATA's figures are right; those over all DATA count shared images twice: say so."""
    import os

    other = tmp_path / "other"
    (other / "real").mkdir(parents=True)
    (other / "fake").mkdir()
    os.symlink(labelled / "real" / "r0.jpg", other / "real" / "a.jpg")
    os.symlink(labelled / "fake" / "f0.png", other / "fake" / "b.png")
    write_image(other / "fake" / "c.png", "PNG", seed=99)
    r = CliRunner().invoke(cli, ["eval", str(labelled), str(other), "-w", str(tiny_weights), "--json"])
    assert r.exit_code == 3, r.output  # the fixture's broken.jpg
    assert "warning: 2 images of other are also in " in r.stderr and "count them twice" in r.stderr
    assert json.loads(r.stdout)["sets"]["other"]["n"] == 3
    r = CliRunner().invoke(cli, ["eval", str(labelled), str(labelled), "-w", str(tiny_weights)])
    assert r.exit_code == 3 and "warning: 9 images of " in r.stderr, r.output
    braced = labelled.parent / "set{2024}"  # a name with braces in the message
    braced.symlink_to(labelled)
    r = CliRunner().invoke(cli, ["eval", str(braced), str(braced), "-w", str(tiny_weights)])
    assert r.exit_code == 3 and "images of set{2024}#2 are also in set{2024}" in r.stderr, r.output
    r = CliRunner().invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights)])
    assert r.exit_code == 3 and "warning" not in r.stderr


def test_eval_folders_named_in_any_case(tiny_weights, tmp_path):
    write_image(tmp_path / "set" / "Real" / "r.jpg", seed=1)
    write_image(tmp_path / "set" / "FAKE" / "f.jpg", seed=2)
    r = CliRunner().invoke(cli, ["eval", str(tmp_path / "set"), "-w", str(tiny_weights), "-j", "0", "--json"])
    assert r.exit_code == 0, r.stderr
    res = json.loads(r.stdout)["sets"]["set"]
    assert (res["n_real"], res["n_fake"]) == (1, 1)
    write_image(tmp_path / "set" / "real" / "r2.jpg", seed=3)
    if not (tmp_path / "set" / "real").samefile(tmp_path / "set" / "Real"):  # a case-sensitive file system
        r = CliRunner().invoke(cli, ["eval", str(tmp_path / "set"), "-w", str(tiny_weights)])
        assert r.exit_code == 2 and "Real/ and real/ each name the real images' folder: keep one" in r.stderr


def test_eval_set_names_never_merge_or_hide_the_overall_row(tiny_weights, tmp_path):
    for name in ("all", "other"):
        write_image(tmp_path / name / "real" / "r.jpg", seed=1)
        write_image(tmp_path / name / "fake" / "f.png", "PNG", seed=2)
    (tmp_path / "all" / "real" / "broken.jpg").write_bytes(b"x")
    a, o = str(tmp_path / "all"), str(tmp_path / "other")
    r = CliRunner().invoke(cli, ["eval", a, o, "-w", str(tiny_weights), "-j", "0", "--json"])
    assert r.exit_code == 3, r.output  # the broken image in the set called "all" still counts
    sets = json.loads(r.stdout)["sets"]
    assert set(sets) == {"all#2", "other", "all"} and sets["all#2"]["errors"] == 1
    assert sets["all"]["n"] == 4 and sets["all"]["errors"] == 1  # over both sets
    r = CliRunner().invoke(cli, ["eval", o, o, "-w", str(tiny_weights), "-j", "0", "--json"])
    assert set(json.loads(r.stdout)["sets"]) == {"other", "other#2", "all"}


def test_average_precision_does_not_depend_on_the_order_of_ties():
    assert metrics.average_precision([1, 0], [0.5, 0.5]) == metrics.average_precision([0, 1], [0.5, 0.5]) == 0.5
    assert metrics.average_precision([0, 0, 0, 1], [0.7] * 4) == pytest.approx(0.25)
    rng = np.random.default_rng(0)
    y, s = rng.integers(0, 2, 300), rng.random(300)
    order = np.argsort(-s)
    precision_at_each_positive = (np.cumsum(y[order]) / np.arange(1, 301))[y[order] == 1]
    assert metrics.average_precision(y, s) == pytest.approx(precision_at_each_positive.mean())


def test_threshold_at_fpr_limits_and_empty_curves():
    scores = [0.1, 0.2, 0.3, 0.4]
    assert metrics.threshold_at_fpr(scores, 1.0) == 0.1  # all real images may be labelled fake
    assert metrics.threshold_at_macro_fpr([[0.1, 0.2], [0.3, 0.4]], 1.0) == 0.1
    for bad in (1.5, -0.1):
        with pytest.raises(ValueError):
            metrics.threshold_at_fpr(scores, bad)
    assert metrics.tpr_at_fpr([], [], 0.05) == 0.0


def test_info_json_is_strict_json(tiny_weights, tmp_path):
    from fakedet.model import checkpoint as ckpt

    model, meta = ckpt.load(tiny_weights)
    meta.evaluation = {"test": {"real_only": {"n": 3, "auc": float("nan"), "curve": [float("nan"), 0.5]}}}
    path = tmp_path / "nan.safetensors"
    ckpt.save(model, meta, path)
    r = CliRunner().invoke(cli, ["info", "-w", str(path), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert d["evaluation"]["test"]["real_only"]["auc"] is None


def test_eval_names_the_images_it_could_not_score(runner, tiny_weights, labelled):
    r = runner.invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights), "-j", "0", "--json"])
    assert r.exit_code == 3
    broken = str(labelled / "fake" / "broken.jpg")
    assert json.loads(r.stdout)["unreadable"] == [
        {"set": labelled.name, "path": broken, "label": "fake", "error": "not an image (unrecognised format)"}]
    assert f"cannot score {broken}: not an image" in r.stderr
    # what a paper's table needs to say how it was made
    from fakedet._version import __version__
    from fakedet.model.checkpoint import sha256

    rep = json.loads(r.stdout)
    assert (rep["version"], rep["weights_sha256"]) == (__version__, sha256(tiny_weights))
    assert (rep["faces"], rep["face_expert"], rep["crop"], rep["two_way_threshold"]) == (False, None, True, False)


def test_eval_warns_of_copies_byte_for_byte_and_of_rows_with_no_split(runner, tiny_weights, labelled, tmp_path):
    """A researcher's benchmark held copies of one image (one filed as real and as fake): each
    counted, silently. Copies under other names are now named; so are manifest rows with no
    split where --split left them out."""
    import shutil

    r = runner.invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights), "-j", "0"])
    assert "copies of another" not in r.stderr and "is a copy" not in r.stderr
    shutil.copy(labelled / "real" / "r0.jpg", labelled / "fake" / "copy-of-r0.jpg")
    shutil.copy(labelled / "real" / "r1.jpg", labelled / "real" / "copy-of-r1.jpg")
    r = runner.invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights), "-j", "0"])
    warning = next(line for line in r.stderr.splitlines() if "byte for byte" in line)
    assert warning.startswith("fakedet: warning: 2 images are copies of another, byte for byte (such as ")
    assert warning.endswith("); each copy that can be scored counts in the figures, and 1 is filed both as real "
                            "and as fake")
    # empty files (failed downloads) and what is no regular file are no copies, and never opened
    (labelled / "real" / "empty.jpg").write_bytes(b"")
    (labelled / "fake" / "empty.jpg").write_bytes(b"")
    if hasattr(os, "mkfifo"):
        os.mkfifo(labelled / "fake" / "pipe.jpg")
        os.mkfifo(labelled / "real" / "pipe.jpg")
    from fakedet.cli.eval import warn_same_bytes
    from fakedet.data.labelled import read_labelled

    with fifo_watchdog(labelled / "fake" / "pipe.jpg"), fifo_watchdog(labelled / "real" / "pipe.jpg"):
        only = {"x": [im for im in read_labelled(str(labelled)) if "empty" in im.path or "pipe" in im.path]}
        warn_same_bytes(only)
    r = runner.invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights), "-j", "0"])
    assert "2 images are copies" in r.stderr  # the two copies above, not the empty files or pipes
    man = tmp_path / "m.csv"
    man.write_text(f"file,label,split\n{labelled / 'real' / 'r2.jpg'},real,test\n"
                   f"{labelled / 'fake' / 'f2.png'},fake,\n", "utf-8")
    r = runner.invoke(cli, ["eval", str(man), "--split", "test", "-w", str(tiny_weights), "-j", "0"])
    assert "note: m.csv: rows with no split left out (--split test keeps the rows that name it)" in r.stderr
    r = runner.invoke(cli, ["eval", str(man), "-w", str(tiny_weights), "-j", "0"])
    assert "the rows of every split used (no split, test)" in r.stderr


def test_manifest_values_may_be_padded_like_its_header(tiny_weights, labelled):
    (labelled / "fake" / "broken.jpg").unlink()
    man = labelled / "padded.csv"
    man.write_text("file, label, split\nreal/r0.jpg, real, test\nfake/f0.png, fake , test\nreal/r1.jpg, 0, train\n")
    r = CliRunner().invoke(cli, ["eval", str(man), "--split", "test", "-w", str(tiny_weights), "-j", "0", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["sets"]["padded.csv"]["n"] == 2


def test_figures_that_need_both_classes_are_empty_for_one(tiny_weights, labelled, tmp_path, runner):
    """A fake-only set has no AP (it would be 1 whatever the scores), and its plots say why
    there is no ROC curve instead of failing or warning."""
    import shutil

    only = tmp_path / "only"
    shutil.copytree(labelled / "fake", only / "fake", ignore=shutil.ignore_patterns("broken.jpg"))
    r = runner.invoke(cli, ["eval", str(only), "-w", str(tiny_weights), "-j", "0", "--json",
                            "--plots", str(tmp_path / "plots")])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)["sets"]["only"]
    assert res["n_fake"] == 4 and res["ap"] is None and res["auc"] is None
    assert "UserWarning" not in r.stderr and (tmp_path / "plots" / "roc.png").is_file()


def test_an_empty_class_folder_is_warned_of_a_missing_one_is_not(tiny_weights, labelled, tmp_path, runner):
    """real/ there but empty (or holding only empty folders) beside fake/ images: figures of
    the fakes alone, with a warning naming the folder; a set that has no real/ folder at all (a
    fake-only set on purpose) gets none."""
    import shutil

    only = tmp_path / "only"
    shutil.copytree(labelled / "fake", only / "fake", ignore=shutil.ignore_patterns("broken.jpg"))
    r = runner.invoke(cli, ["eval", str(only), "-w", str(tiny_weights), "-j", "0", "--json"])
    assert r.exit_code == 0 and "warning" not in r.stderr, r.stderr
    (only / "Real" / "empty").mkdir(parents=True)
    r = runner.invoke(cli, ["eval", str(only), "-w", str(tiny_weights), "-j", "0", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["sets"]["only"]["n_fake"] == 4
    assert f"warning: only: {only / 'Real'}/ holds no images: the figures are those of the fake images alone" \
        in r.stderr, r.stderr


@pytest.mark.skipif(not os.path.isdir("/dev/fd"), reason="needs /dev/fd")
def test_a_manifest_piped_in_has_its_rows_in_the_current_folder(tiny_weights, labelled, runner, monkeypatch):
    """``fakedet eval <(grep ... manifest.csv)`` names a pipe (/dev/fd/63): its rows are found
    from the current folder (a pipe has no folder of its own), and the set is called manifest."""
    monkeypatch.chdir(labelled)
    r, w = os.pipe()
    os.write(w, b"file,label\nreal/r0.jpg,0\nreal/r1.jpg,0\nfake/f0.png,1\n")
    os.close(w)
    try:
        res = runner.invoke(cli, ["eval", f"/dev/fd/{r}", "-w", str(tiny_weights), "-j", "0", "--json"])
    finally:
        os.close(r)
    assert res.exit_code == 0, res.output
    figures = json.loads(res.stdout)["sets"]
    assert list(figures) == ["manifest"] and (figures["manifest"]["n_real"], figures["manifest"]["n_fake"]) == (2, 1)
    if hasattr(os, "mkfifo"):  # a named pipe in a folder is named, and has that folder
        import threading

        os.mkfifo(labelled / "rows.fifo")
        feed = threading.Thread(target=lambda: (labelled / "rows.fifo").write_bytes(
            b"file,label\nreal/r0.jpg,0\nfake/f0.png,1\n"), daemon=True)
        feed.start()
        monkeypatch.chdir(labelled.parent)
        res = runner.invoke(cli, ["eval", str(labelled / "rows.fifo"), "-w", str(tiny_weights), "-j", "0", "--json"])
        feed.join(10)
        assert res.exit_code == 0, res.output
        named = json.loads(res.stdout)["sets"]
        assert list(named) == ["rows.fifo"] and (named["rows.fifo"]["n_real"], named["rows.fifo"]["n_fake"]) == (1, 1)


def test_plots_that_cannot_be_written_keep_the_figures(tiny_weights, labelled, tmp_path, runner):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    r = runner.invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights), "-j", "0", "--json",
                            "--plots", str(blocker / "sub")])
    assert r.exit_code == 2
    assert json.loads(r.stdout)["sets"][labelled.name]["n"] == 8  # printed before the plots
    assert "cannot write the plots" in r.stderr and "Traceback" not in r.stderr


def test_split_names_are_matched_loosely_and_a_missing_one_is_explained(tiny_weights, labelled, runner):
    (labelled / "fake" / "broken.jpg").unlink()
    man = labelled / "manifest.csv"
    man.write_text("file,label,split\n real/r0.jpg ,0, TEST\nfake/f0.png,1,test\nreal/r1.jpg,0,train\n")
    r = runner.invoke(cli, ["eval", str(man), "--split", "test", "-w", str(tiny_weights), "-j", "0", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["sets"][labelled.name]["n"] == 2
    r = runner.invoke(cli, ["eval", str(man), "--split", "val", "-w", str(tiny_weights), "-j", "0"])
    assert r.exit_code == 2 and "no labelled images found with split 'val'" in r.stderr
    assert "(the splits there: test, train)" in r.stderr


def test_a_missing_manifest_is_named_plainly(tiny_weights, tmp_path, runner):
    r = runner.invoke(cli, ["eval", str(tmp_path / "none.csv"), "-w", str(tiny_weights)])
    assert r.exit_code == 2 and "cannot read " in r.stderr and "No such file or directory" in r.stderr
    assert "[Errno" not in r.stderr


def test_cached_scores_follow_the_manifest_and_are_read_back_without_the_model(tiny_weights, tmp_path, monkeypatch):
    from fakedet.evaluation import scorecache

    data = tmp_path / "data"
    (data / "toy").mkdir(parents=True)
    rows = ["file,label,group,split"]
    for i in range(4):
        write_image(data / "toy" / f"{i}.png", seed=i)
        rows.append(f"{i}.png,{i % 2},g{i},test")
    (data / "toy" / "nope.png").write_bytes(b"not an image")
    rows.append("nope.png,1,g9,test")
    (data / "toy" / "manifest.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.setenv("FAKEDET_DATA", str(data))
    from fakedet import Detector

    y, p = scorecache.scores(tiny_weights, "toy", "test", tmp_path / "cache",
                             lambda w: Detector.load(w, provenance=False))
    assert list(y) == [0, 1, 0, 1] and len(p) == 4 and ((p >= 0) & (p <= 1)).all()
    stored = json.loads(next((tmp_path / "cache").rglob("toy.test.json")).read_text())
    assert stored["unreadable"] == 1
    # keyed by the way of scoring too: scores cached before the scan cut narrow bands out are not read
    assert [f.parent.name for f in (tmp_path / "cache").rglob("toy.test.json")] == [
        f"{scorecache.sha256(tiny_weights)[:16]}.stories"]

    def no_model(weights):
        raise AssertionError("the cache was not used")
    scorecache._loaded.clear()
    y2, p2 = scorecache.scores(tiny_weights, "toy", "test", tmp_path / "cache", no_model)
    assert list(y2) == list(y) and np.allclose(p2, p)

    # a run stopped while writing the cache leaves no half-written cache behind
    from pathlib import Path

    written = Path.write_text

    def cut_short(self, text, *a, **k):
        written(self, text[:10], *a, **k)
        raise KeyboardInterrupt
    monkeypatch.setattr(Path, "write_text", cut_short)
    with pytest.raises(KeyboardInterrupt):
        scorecache.scores(tiny_weights, "toy", "test", tmp_path / "cache2",
                          lambda w: Detector.load(w, provenance=False))
    assert not list((tmp_path / "cache2").rglob("*.json"))


def test_a_folders_manifest_is_an_input_the_report_may_not_overwrite(tiny_weights, labelled, runner):
    (labelled / "fake" / "broken.jpg").unlink()
    man = labelled / "manifest.csv"
    man.write_text("file,label\nreal/r0.jpg,real\nfake/f0.png,fake\n")
    r = runner.invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights), "-j", "0", "--report", str(man)])
    assert r.exit_code == 2 and "is also an input" in r.stderr
    assert man.read_text().startswith("file,label")


def test_a_broken_or_binary_manifest_is_a_usage_error_not_a_traceback(tiny_weights, labelled, runner):
    man = labelled / "quote.csv"
    man.write_text('file,label\n"oops.png,real\n' + "a.png,real\n" * 20000)  # an unclosed quote
    r = runner.invoke(cli, ["eval", str(man), "-w", str(tiny_weights)])
    assert r.exit_code == 2 and "not a readable CSV file" in r.stderr and "Traceback" not in r.stderr
    photo = labelled / "real" / "r0.jpg"
    r = runner.invoke(cli, ["eval", str(photo), "-w", str(tiny_weights)])
    assert r.exit_code == 2 and "not a UTF-8 text file" in r.stderr and str(photo) in r.stderr


def test_manifest_errors_give_the_line_the_row_is_on(labelled):
    from fakedet.data.labelled import read_manifest

    man = labelled / "m.csv"
    man.write_text('file,label\n\nreal/r0.jpg,real\n"fake/\nf0.png",fake\nreal/r1.jpg,bogus\n')
    with pytest.raises(ValueError, match=r"m\.csv:6: label must be"):
        read_manifest(str(man))
    # every bad label at once, not one per rerun (a researcher fixed typos one run at a time)
    rows = "".join(f"real/r{i % 4}{'x' * i}.jpg,{lab}\n" for i, lab in enumerate(
        ["real", "fkae", "fake", "reel", "1", "2", "x", "y", "z", "w"]))
    man.write_text("file,label\n" + rows)
    with pytest.raises(ValueError, match=(r"m\.csv: label must be 0/1/real/fake, not so on 7 lines: 3 \('fkae'\), "
                                          r"5 \('reel'\), 7 \('2'\), 8 \('x'\), 9 \('y'\) and 2 more$")):
        read_manifest(str(man))


def test_eval_counts_what_a_folder_walk_could_not_use(tiny_weights, labelled, runner):
    import os

    fifo = labelled / "real" / "pipe.png"
    os.mkfifo(fifo)
    r = runner.invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights), "-j", "0", "--json"])
    assert r.exit_code == 3
    rep = json.loads(r.stdout)
    assert rep["sets"][labelled.name]["errors"] == 2  # the pipe and broken.jpg
    assert {u["path"]: u["error"] for u in rep["unreadable"]}[str(fifo)].startswith("not a regular file")
    assert f"cannot score {fifo}" in r.stderr


def test_plots_show_a_set_name_with_dollars_as_typed(tiny_weights, labelled, tmp_path, runner):
    pytest.importorskip("matplotlib")
    import shutil

    (labelled / "fake" / "broken.jpg").unlink()
    named = tmp_path / "cost_$5_vs_$10"
    shutil.copytree(labelled / "real", named / "real")
    shutil.copytree(labelled / "fake", named / "fake")
    r = runner.invoke(cli, ["eval", str(named), "-w", str(tiny_weights), "-j", "0", "--plots", str(tmp_path / "p")])
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "p" / "roc.png").is_file()


def test_eval_messages_escape_control_characters_in_names(tiny_weights, labelled, runner):
    (labelled / "fake" / "broken.jpg").rename(labelled / "fake" / "e\x1b]0;pwned\x07x.jpg")
    r = runner.invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights), "-j", "0"])
    assert r.exit_code == 3 and "e\\x1b]0;pwned\\x07x.jpg" in r.stderr and "\x1b" not in r.stderr


def test_eval_faces_says_which_thresholds_label_images_without_a_face(tiny_weights, labelled, monkeypatch):
    from fakedet.model import faces as faces_mod

    (labelled / "fake" / "broken.jpg").unlink()
    monkeypatch.setattr(faces_mod, "find_faces", lambda img, detector=None: [])  # no face anywhere
    r = CliRunner().invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights), "-j", "0", "--faces"])
    assert r.exit_code == 0, r.output
    assert "images without one are labelled by the whole-image threshold 0.500000" in r.stdout
    r = CliRunner().invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights), "-j", "0"])
    assert "images without one" not in r.stdout


def test_an_unclosed_quote_in_a_manifest_is_named_as_such(tiny_weights, labelled, runner):
    man = labelled / "manifest.csv"
    man.write_text('file,label\nreal/r0.jpg,0\n"fake/f0.png,1\nreal/r1.jpg,0\n')
    r = runner.invoke(cli, ["eval", str(man), "-w", str(tiny_weights), "-j", "0"])
    assert r.exit_code == 2 and "manifest.csv:3: a quote opened on this line" in r.stderr
    # a quote closed on its own line is read as usual
    man.write_text('file,label\nreal/r0.jpg,0\n"fake/f0.png",1\n')
    r = runner.invoke(cli, ["eval", str(man), "-w", str(tiny_weights), "-j", "0", "--json"])
    assert r.exit_code == 0, r.output


def test_the_roc_plot_has_each_set_and_all_of_them(tmp_path, monkeypatch):
    """As the table's rows: a curve per set with both classes, and one for every image together."""
    pytest.importorskip("matplotlib")
    import numpy as np

    from fakedet.evaluation import report

    legends = {}
    save = report._save

    def keep(fig, folder, name):
        legend = fig.axes[0].get_legend()
        legends[name] = [t.get_text() for t in legend.get_texts()] if legend else []
        return save(fig, folder, name)

    monkeypatch.setattr(report, "_save", keep)
    rng = np.random.default_rng(0)
    two = {"a": (np.array([0, 1] * 20), rng.random(40)), "b": (np.array([0, 1] * 10), rng.random(20))}
    report.write_plots(two, 0.5, str(tmp_path / "two"))
    assert legends["roc.png"] == ["a", "b", "all"]
    report.write_plots({"a": two["a"]}, 0.5, str(tmp_path / "one"))
    assert legends["roc.png"] == ["a"]  # one set: its curve is the overall one
    report.write_plots({"r": (np.zeros(5), rng.random(5)), "f": (np.ones(5), rng.random(5))}, 0.5,
                       str(tmp_path / "split"))
    assert legends["roc.png"] == ["all"]  # one class per set: only the sets together have a curve


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
@pytest.mark.parametrize("entry, make, why", [
    ("real", lambda p: os.symlink(p.parent / "gone", p), "broken symbolic link"),
    ("Real", lambda p: os.symlink(p.name, p), "Too many levels of symbolic links"),  # a link to itself
    ("real", lambda p: p.write_bytes(b"x"), "not a folder"),
    ("manifest.csv", lambda p: os.symlink(p.parent / "gone.csv", p), "broken symbolic link"),
    ("Manifest.CSV", lambda p: p.mkdir(), "not a file"),
])
def test_a_real_fake_or_manifest_entry_that_cannot_be_used_is_an_error(tiny_weights, tmp_path, entry, make, why):
    """Left out without a word, a broken real/ took the real images out of the figures (exit 0,
    figures of the fakes alone) and a broken manifest.csv was passed over for the folders."""
    write_image(tmp_path / "fake" / "a.png")
    make(tmp_path / entry)
    r = CliRunner().invoke(cli, ["eval", "-w", str(tiny_weights), str(tmp_path)])
    assert r.exit_code == 2, r.output
    assert os.path.join(str(tmp_path), entry) in r.output and why in r.output, r.output


def test_a_stray_entry_beside_a_usable_one_of_the_same_name_is_left_alone(tiny_weights, tmp_path):
    """On a case-sensitive file system a file ``Real`` beside the folder ``real/`` (or a folder
    ``Manifest.CSV`` beside the file ``manifest.csv``) does not stop the set from being read."""
    if (tmp_path / "A").exists() or not _case_sensitive(tmp_path):
        pytest.skip("needs a case-sensitive file system")
    write_image(tmp_path / "real" / "r.png", seed=1)
    write_image(tmp_path / "fake" / "f.png", seed=2)
    (tmp_path / "Real").write_bytes(b"x")
    r = CliRunner().invoke(cli, ["eval", "--json", "-w", str(tiny_weights), str(tmp_path)])
    assert r.exit_code == 0, r.output
    figures = json.loads(r.stdout)["sets"]
    assert [(v["n_real"], v["n_fake"]) for v in figures.values()] == [(1, 1)]
    (tmp_path / "manifest.csv").write_text("file,label\nreal/r.png,0\nfake/f.png,1\n")
    (tmp_path / "Manifest.CSV").mkdir()
    r = CliRunner().invoke(cli, ["eval", "--json", "-w", str(tiny_weights), str(tmp_path)])
    assert r.exit_code == 0, r.output


def _case_sensitive(folder) -> bool:
    (folder / "case-probe").write_bytes(b"")
    sensitive = not (folder / "CASE-PROBE").exists()
    (folder / "case-probe").unlink()
    return sensitive


def test_a_set_named_with_an_escape_or_a_newline_keeps_the_table_on_its_lines(tiny_weights, labelled, tmp_path,
                                                                              runner):
    (labelled / "fake" / "broken.jpg").unlink()
    odd = tmp_path / "esc\x1b[31mred\nline"
    odd.mkdir()
    for sub in ("real", "fake"):
        (odd / sub).symlink_to(labelled / sub)
    r = runner.invoke(cli, ["eval", str(odd), "-w", str(tiny_weights), "-j", "0"])
    assert r.exit_code == 0, r.output
    assert "\x1b" not in r.stdout and r.stdout.splitlines()[1].startswith("esc\\x1b[31mred\\nline ")


def test_eval_of_dot_names_the_folder(tiny_weights, labelled, runner, monkeypatch):
    (labelled / "fake" / "broken.jpg").unlink()
    monkeypatch.chdir(labelled)
    r = runner.invoke(cli, ["eval", ".", "-w", str(tiny_weights), "-j", "0", "--json"])
    assert r.exit_code == 0, r.output
    assert list(json.loads(r.stdout)["sets"]) == [labelled.name]
    monkeypatch.chdir(labelled / "real")
    r = runner.invoke(cli, ["eval", "..", "-w", str(tiny_weights), "-j", "0", "--json"])
    assert list(json.loads(r.stdout)["sets"]) == [labelled.name]


def test_the_splits_of_a_piped_manifest_are_listed_when_none_matches(tiny_weights, labelled, runner, monkeypatch):
    """A pipe is read once: the splits to list come from that one read (it said 'none')."""
    monkeypatch.chdir(labelled)
    r, w = os.pipe()
    os.write(w, b"file,label,split\nreal/r0.jpg,0,test\nfake/f0.png,1,train\nreal/r1.jpg,0,train\n")
    os.close(w)
    try:
        res = runner.invoke(cli, ["eval", f"/dev/fd/{r}", "--split", "val", "-w", str(tiny_weights), "-j", "0"])
    finally:
        os.close(r)
    assert res.exit_code == 2 and "(the splits there: test, train)" in res.stderr


def test_eval_without_split_says_when_a_manifests_rows_span_several(tiny_weights, labelled, runner):
    man = labelled / "manifest.csv"
    man.write_text("file,label,split\nreal/r0.jpg,0,train\nfake/f0.png,1,test\nreal/r1.jpg,0,test\n")
    r = runner.invoke(cli, ["eval", str(man), "-w", str(tiny_weights), "-j", "0"])
    assert r.exit_code == 0, r.output
    assert "rows of every split used (test, train): --split test gives figures on held-out images" in r.stderr
    r = runner.invoke(cli, ["eval", str(man), "--split", "test", "-w", str(tiny_weights), "-j", "0"])
    assert r.exit_code == 0 and "every split" not in r.stderr


def test_manifest_headers_in_any_case_blank_rows_and_quote_lines(labelled):
    from fakedet.data.labelled import read_manifest

    man = labelled / "m.csv"
    man.write_text("File, Label ,SPLIT\nreal/r0.jpg,0,Test\n,,\n\nfake/f0.png,1,train\n")
    splits = set()
    got = read_manifest(str(man), "test", splits)
    assert [(os.path.basename(im.path), im.label) for im in got] == [("r0.jpg", 0)] and splits == {"test", "train"}
    man.write_text('file,label\na.jpg,0\n\n\n"b.jpg,1\nc.jpg,0\n')
    with pytest.raises(ValueError, match=r"m\.csv:5: a quote opened on this line is closed only on line 6"):
        read_manifest(str(man))


def test_the_table_says_the_all_row_pools_the_images(tiny_weights, labelled, tmp_path, runner):
    (labelled / "fake" / "broken.jpg").unlink()
    other = tmp_path / "other"
    other.mkdir()
    (other / "real").symlink_to(labelled / "real")
    r = runner.invoke(cli, ["eval", str(labelled), str(other), "-w", str(tiny_weights), "-j", "0"])
    assert r.exit_code == 0, r.output
    assert "all = every set's images pooled" in r.stdout
    r = runner.invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights), "-j", "0"])
    assert "pooled" not in r.stdout


def test_folders_and_images_beside_real_and_fake_are_named_as_not_read(tiny_weights, labelled, runner):
    """A misspelt fakes/ made a set of real images alone, its fakes not even counted as left out."""
    (labelled / "fake" / "broken.jpg").unlink()
    (labelled / "fake").rename(labelled / "fakes")
    (labelled / "loose.jpg").write_bytes((labelled / "real" / "r0.jpg").read_bytes())
    (labelled / "notes.txt").write_text("x")
    (labelled / ".cache").mkdir()
    r = runner.invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights), "-j", "0"])
    assert r.exit_code == 0, r.output
    assert f"note: {labelled.name}: not read (only real/ and fake/ are): fakes/, loose.jpg\n" in r.stderr


def test_the_histogram_marks_both_verdict_thresholds_and_reliability_uses_the_ece_bins(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from fakedet.evaluation import report

    seen = {}
    save = report._save

    def keep(fig, folder, name):
        ax = fig.axes[0]
        legend = ax.get_legend()
        seen[name] = ([t.get_text() for t in legend.get_texts()] if legend else [], ax.get_lines())
        return save(fig, folder, name)

    monkeypatch.setattr(report, "_save", keep)
    rng = np.random.default_rng(0)
    p = np.linspace(0.001, 0.999, 300)
    sets = {"a": (np.array([0, 1] * 150), rng.permutation(p))}
    report.write_plots(sets, 0.998230, str(tmp_path / "three"), real_below=1.13e-6)
    assert seen["histogram.png"][0] == ["real", "fake", "fake at >= 0.998230", "real below 1.13e-06"]
    assert len(seen["reliability.png"][1][1].get_xdata()) == metrics.ECE_BINS  # every bin holds scores
    report.write_plots(sets, 0.5, str(tmp_path / "two"))
    assert seen["histogram.png"][0] == ["real", "fake", "threshold 0.500000"]


def test_a_real_or_fake_folder_that_cannot_be_listed_is_a_usage_error(tiny_weights, labelled, runner, monkeypatch):
    """It was one error record, and the figures those of the other class alone (exit 3)."""
    from fakedet.data import labelled as lab

    real_scandir = os.scandir

    def scandir(path="."):
        if os.path.basename(os.fspath(path)) == "fake":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)
    monkeypatch.setattr(lab.os, "scandir", scandir)
    r = runner.invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights), "-j", "0"])
    assert r.exit_code == 2, r.output
    assert f"{labelled / 'fake'}: permission denied (cannot list folder); it should be the set's fake folder" \
        in r.stderr


def test_an_unreadable_manifest_is_named_not_its_folder(tiny_weights, labelled, runner, monkeypatch):
    import builtins

    (labelled / "manifest.csv").write_text("file,label\nreal/r0.jpg,0\n")
    real_open = builtins.open

    def refusing(file, *a, **kw):
        if os.fspath(file).endswith("manifest.csv"):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *a, **kw)
    monkeypatch.setattr(builtins, "open", refusing)
    r = runner.invoke(cli, ["eval", str(labelled), "-w", str(tiny_weights), "-j", "0"])
    assert r.exit_code == 2 and f"cannot read {labelled / 'manifest.csv'}: Permission denied" in r.stderr


def test_report_keeps_each_scored_images_verdict_in_order(tiny_weights, labelled):
    """A report holds the verdicts beside the scores, image for image, so that a caller can pool
    other sets than ``all`` (robustness.py's rows over the same images in every condition)."""
    import numpy as np

    from fakedet import Detector
    from fakedet.data.labelled import LabelledImage
    from fakedet.evaluation import report, verdicts

    det = Detector.load(tiny_weights, workers=0)
    sets = {"a": [LabelledImage(str(p), 0 if p.parent.name == "real" else 1)
                  for p in sorted(labelled.rglob("*.*"))]}
    rep = report.report(det, sets)
    y, p = rep.scores["a"]
    assert len(rep.verdicts["a"]) == len(p) == len(sets["a"]) - 1  # the broken file is not scored
    expected = [verdicts.verdict(x, det.threshold, det.real_below) for x in p]
    assert list(rep.verdicts["a"]) == expected
    assert np.array_equal(y, [1] * 4 + [0] * 4)


def test_threshold_at_fpr_allows_the_whole_share_despite_float_error():
    """0.29 * 100 is 28.999999999999996 in floats: 29 of 100 real scores may still be labelled fake."""
    import numpy as np

    from fakedet.evaluation.metrics import threshold_at_fpr

    s = np.arange(100) / 100
    t = threshold_at_fpr(s, 0.29)
    assert (s >= t).sum() == 29


def test_the_table_warns_where_most_verdicts_are_uncertain():
    """A persona's folder of real photos, every one `uncertain`, read acc 1.0000: the table says
    that acc counts uncertain as not fake where most images got it, and names the sets."""
    from fakedet.evaluation.report import format_table

    def row(uncertain):
        return {"n": 4, "n_real": 4, "n_fake": 0, "accuracy": 1.0, "balanced_accuracy": 1.0, "fpr": 0.0,
                "uncertain": uncertain, "errors": 0}

    rep = {"threshold": 0.99, "real_below": 1e-6, "sets": {"mine": row(1.0), "other": row(0.25), "all": row(0.6)}}
    lines = list(format_table(rep))
    warn = [x for x in lines if x.startswith("most images labelled uncertain")]
    # the pooled row too, which a paper's table quotes (a researcher persona); not 'other'
    assert warn == [next(x for x in lines if "(mine 100%, all 60%)" in x)]
    rep["sets"]["mine"]["uncertain"] = 0.5  # half is not most
    rep["sets"]["all"]["uncertain"] = 0.4
    assert not any("most images labelled uncertain" in x for x in format_table(rep))
    for share, shown in ((0.996, "99.6%"), (0.9996, "99.9%"), (0.57, "57%"), (0.501, "50.1%"), (0.58, "58%")):
        rep["sets"]["mine"]["uncertain"] = share  # never rounded up to all of them, nor down to half
        assert any(f"(mine {shown})" in x for x in format_table(rep)), share
    assert any("(alone 100%)" in x for x in format_table({"threshold": 0.99, "sets": {"alone": row(1.0)}}))


def test_a_folder_that_cannot_be_listed_or_holds_hidden_folders_only_is_said_so(tiny_weights, tmp_path):
    from fakedet.data.labelled import read_folder

    (tmp_path / "hidden" / ".cache").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"subfolders \(it holds hidden folders only\)$"):
        read_folder(str(tmp_path / "hidden"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"expected real/ and fake/ subfolders$"):
        read_folder(str(tmp_path / "file"))  # not a folder: nothing said of what it holds


def test_summarize_counts_the_fakes_labelled_real():
    """What `real proves nothing` costs on a set: the share of its fakes given `real` (a
    re-saved fake got `real` in face mode; robustness.py reports this share per condition)."""
    y = [0, 0, 1, 1, 1, 1]
    p = [0.1, 0.2, 0.05, 0.6, 0.9, 0.99]
    s = metrics.summarize(y, p, 0.5, verdicts=["real", "uncertain", "real", "uncertain", "uncertain", "fake"])
    assert s["fake_labelled_real"] == 0.25 and s["uncertain"] == 0.5
    assert s["real_labelled_uncertain"] == 0.5 and s["fake_labelled_uncertain"] == 0.5
    # of one class, balanced accuracy is undefined, as AUC is (it read 1.0000 on real photos)
    one = metrics.summarize([0, 0], [0.1, 0.2], 0.5, verdicts=["uncertain", "uncertain"])
    assert np.isnan(one["balanced_accuracy"]) and np.isnan(one["auc"]) and one["accuracy"] == 1.0
    assert np.isnan(metrics.summarize(y, p, 0.5)["fake_labelled_real"])  # no verdicts: no such share
    assert np.isnan(metrics.summarize([0, 0], [0.1, 0.2], 0.5, verdicts=["real", "real"])["fake_labelled_real"])
