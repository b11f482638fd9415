"""``fakedet explain`` and :mod:`fakedet.inference.explain`: the heatmap follows the score, and
the command writes one PNG per input, of the expected size, with the faces' boxes where they are."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from PIL import Image

from fakedet.cli import cli
from fakedet.cli.explain import FACE_COLOUR, colour, display_scale, figure_size, output_name, picture_origin
from fakedet.cli.explain import explain as explain_cmd
from fakedet.inference.detector import Detector
from fakedet.inference.explain import Occluder, cell_edges, explain_image, hottest_cells, random_cells

from conftest import SHARED_DATA, random_image, write_image


@pytest.fixture(scope="module")
def det(tiny_weights):
    return Detector.load(tiny_weights, device="cpu", workers=0, provenance=False)


def _region_scorer(det, x0, y0, x1, y1):
    """A stub for Detector.forward whose logit is the mean red level of the view inside the
    box given as fractions of the image (the view is the whole image resized): the score
    depends on that region and nothing else."""
    g = det.config.preprocess.global_size

    def forward(views, patches, busy=None):
        r = views[:, 0, round(y0 * g):round(y1 * g), round(x0 * g):round(x1 * g)].float()
        return r.mean(dim=(1, 2)) / 25.0 - 5.0

    return forward


# ----------------------------------------------------------------------------- the heatmap
def test_hottest_cells_fall_on_the_only_region_the_score_reads(det, monkeypatch):
    # A dark image whose upper half is bright red; the stub reads only a region in the upper
    # right: cols 6-8, rows 1-2 of the 10 x 10 grid (not symmetric, so a transposed or flipped
    # map fails). Hiding the region's cells (mean colour: darker) lowers the score; hiding other
    # bright cells does not change it.
    w, h = 400, 300
    arr = np.full((h, w, 3), 40, np.uint8)
    arr[: h // 2, :, 0] = 200
    arr[h // 2 :, : w // 2] = 41  # a third colour (an image of two is refused), as dark
    img = Image.fromarray(arr)
    region = (0.6, 0.1, 0.9, 0.3)  # x0, y0, x1, y1 as fractions
    monkeypatch.setattr(det, "forward", _region_scorer(det, *region))
    ex = explain_image(det, img, grid=10, faces=False)
    assert ex.heat.shape == (10, 10) and ex.grid == 10
    inside = {(r, c) for r in (1, 2) for c in (6, 7, 8)}
    hottest = ex.hottest(0.06)  # 6 cells: exactly the region's
    assert set(hottest) == inside, (hottest, ex.heat.round(2))
    outside = [ex.heat[r, c] for r in range(10) for c in range(10) if (r, c) not in inside]
    assert max(abs(v) for v in outside) < 0.05 < min(ex.heat[r, c] for r, c in inside)
    # the score is the stub's calibrated one
    z = 200 / 25.0 - 5.0
    assert ex.p_whole == pytest.approx(1 / (1 + np.exp(-z / det.temperature)), rel=1e-4)


def test_heatmap_scores_like_a_scan_and_hiding_cells_changes_the_inputs(det, tmp_path):
    path = write_image(tmp_path / "a.png", "PNG", size=(160, 120), seed=3)
    img = Image.open(path).convert("RGB")
    ex = explain_image(det, img, grid=4, faces=False)
    scanned = det.predict([str(path)])[0]
    assert ex.p_whole == pytest.approx(scanned.p_fake, abs=1e-5)
    assert ex.p_fake == pytest.approx(scanned.p_fake, abs=1e-5) and ex.label == scanned.label
    assert ex.heat.shape == (4, 4) and np.isfinite(ex.heat).all() and np.abs(ex.heat).max() > 0
    assert ex.faces is None


def _screenshot(tmp_path):
    """A picture on a phone-sized plain screen, and the picture alone, as files."""
    from PIL import ImageDraw

    pic = random_image((400, 300), seed=6)
    screen = Image.new("RGB", (540, 1170), (18, 18, 18))
    ImageDraw.Draw(screen).text((20, 20), "12:41  Family group", fill=(230, 230, 230))
    screen.paste(pic, (70, 400))
    screen.save(tmp_path / "shot.png")
    pic.save(tmp_path / "pic.png")
    return tmp_path / "shot.png", tmp_path / "pic.png"


def test_explain_and_predict_score_the_picture_inside_a_screenshot_as_the_picture_alone(tiny_weights, tmp_path):
    """Inside plain margins the picture is what a scan scores and what explain explains;
    crop=False scores the whole screenshot, and says it is framed."""
    from fakedet.inference.explain import explain

    shot, pic = _screenshot(tmp_path)
    det = Detector.load(tiny_weights, device="cpu", workers=0)
    r_shot, r_pic = det.predict([str(shot), str(pic)])
    assert r_shot.cropped == [70, 400, 470, 700] and r_pic.cropped is None
    assert r_shot.p_fake == r_pic.p_fake and not r_shot.framed
    img, ex = explain(det, str(shot), grid=2)
    assert ex.cropped == [70, 400, 470, 700] and img.size == (400, 300) and (ex.width, ex.height) == (400, 300)
    assert ex.p_whole == pytest.approx(r_pic.p_fake, abs=1e-6)
    whole = Detector.load(tiny_weights, device="cpu", workers=0, crop=False)
    r = whole.predict([str(shot)])[0]
    assert r.cropped is None and r.framed and r.to_dict()["cropped"] is None
    img, ex = explain(whole, str(shot), grid=2)
    assert ex.cropped is None and img.size == (540, 1170)
    assert ex.framed and not ex.animated  # as the scan's record: the margins noted


def test_explain_says_an_animation_and_wide_margins_scored_whole(runner, tiny_weights, tmp_path):
    """A persona test: explain of a GIF drew one frame and said nothing of the others, where the
    scan's summary names animations; wide margins scored whole (--no-crop) likewise."""
    frames = [random_image((120, 90), seed=s) for s in (1, 2, 3)]
    gif = tmp_path / "reaction.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100)
    shot, _ = _screenshot(tmp_path)
    r = runner.invoke(cli, ["explain", "--no-faces", "--grid", "2", "-w", str(tiny_weights), "-d", "cpu",
                            "-o", str(tmp_path / "out"), str(gif), str(shot)])
    assert r.exit_code == 0, r.output
    assert f"fakedet: {gif}: an animation or a file of several pages: only its first frame or page was explained" \
        in r.stderr
    assert "wide margins" not in r.stderr  # the screenshot's picture was cut out
    r = runner.invoke(cli, ["explain", "--no-faces", "--no-crop", "--grid", "2", "-w", str(tiny_weights),
                            "-d", "cpu", "-o", str(tmp_path / "out2"), str(shot)])
    assert r.exit_code == 0, r.output
    assert f"fakedet: {shot}: wide margins (an app's, or a story's blurred or gradient backdrop) explained whole" \
        in r.stderr


def test_explain_reads_a_pil_images_metadata_as_a_scan_does(tiny_weights, tmp_path):
    # a PNG with a generator's parameters, opened with PIL: the scan's verdict came from the
    # evidence, explain's from the model alone (it read no metadata of a PIL image)
    import io

    from PIL import PngImagePlugin

    from fakedet.inference.explain import explain

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a portrait\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 64x64")
    buf = io.BytesIO()
    random_image((64, 64)).save(buf, "PNG", pnginfo=info)
    det = Detector.load(tiny_weights, device="cpu", workers=0)
    for source in (Image.open(io.BytesIO(buf.getvalue())), buf.getvalue()):
        r = det.predict([source])[0]
        _, ex = explain(det, source, grid=2)
        assert (r.label, r.label_by) == ("fake", "evidence")
        assert (ex.label, ex.label_by) == ("fake", "evidence") and ex.evidence == r.evidence


def test_a_file_name_beyond_ascii_is_drawn_in_a_font_that_has_it():
    # Pillow's own font draws every letter beyond ASCII as the same box ("Group chat □n□code")
    import importlib

    from PIL import ImageFont

    cli_explain = importlib.import_module("fakedet.cli.explain")  # the module, not the command

    def loads(name):
        try:
            ImageFont.truetype(name, 14)
            return True
        except OSError:
            return False

    if not any(loads(n) for n in cli_explain._WIDE_FONTS):
        pytest.skip("no font beyond ASCII on this system")
    font = cli_explain._name_font(14, "Group chat ünïcode.jpg")
    assert isinstance(getattr(font, "path", None), str)  # a system font, not Pillow's own
    masks = {bytes(font.getmask(ch)) for ch in "üïé"}
    assert len(masks) == 3  # three letters, three glyphs
    assert not isinstance(getattr(cli_explain._name_font(14, "plain.jpg"), "path", None), str)


@pytest.mark.parametrize("name", ["Group chat ünïcode.jpg", "카카오톡 사진 1.jpg"])
def test_a_font_outside_the_list_is_found_through_fontconfig(monkeypatch, name):
    """A counsellor's Korean file names were drawn as boxes with fonts-nanum installed: no font
    of the fixed list was on the system. fontconfig names the fonts that draw the letters."""
    import importlib
    import shutil

    cli_explain = importlib.import_module("fakedet.cli.explain")
    if shutil.which("fc-list") is None:
        pytest.skip("no fontconfig on this system")
    letters = frozenset(ch for ch in name if not ch.isascii() and ch.isprintable())
    if not cli_explain._fontconfig_files(letters):
        pytest.skip("no font on this system draws these letters")
    monkeypatch.setattr(cli_explain, "_WIDE_FONTS", ())
    font = cli_explain._name_font(15, name)  # a size no other test asked for: not cached
    assert getattr(font, "path", None) in cli_explain._fontconfig_files(letters)
    missing = bytes(font.getmask("\U0010fffd"))
    assert all(bytes(font.getmask(ch)) != missing for ch in letters)


def test_a_picture_too_small_for_a_patch_is_not_cut_out(tmp_path):
    """With patches larger than the smallest input, a picture thinner than a patch inside wide
    margins is scored whole (cut out, it could not be scored: an image that scored would fail)."""
    from fakedet.inference.explain import explain

    from conftest import make_tiny_checkpoint

    weights = make_tiny_checkpoint(tmp_path / "p64.safetensors", preprocess={
        "global_size": 64, "patch_size": 64, "num_patches": 4, "min_size": 32})
    screen = Image.new("RGB", (540, 1170), (18, 18, 18))
    screen.paste(random_image((400, 48), seed=7), (70, 400))
    screen.save(tmp_path / "thin.png")
    det = Detector.load(weights, device="cpu", workers=0)
    r = det.predict([str(tmp_path / "thin.png")])[0]
    assert r.ok and r.cropped is None and r.framed, r.error
    assert explain(det, str(tmp_path / "thin.png"), grid=2)[1].cropped is None


def test_occluder_hides_exactly_its_cells_and_leaves_itself_unchanged():
    img = random_image((50, 40))
    occ = Occluder(img, 5)
    before = np.asarray(img).copy()
    out = np.asarray(occ.hidden([(1, 2)]))
    x0, y0, x1, y1 = occ.box((1, 2))
    assert (x0, y0, x1, y1) == (20, 8, 30, 16)
    mask = np.zeros(out.shape[:2], bool)
    mask[y0:y1, x0:x1] = True
    assert (out[~mask] == before[~mask]).all()
    assert (out[mask] == before.reshape(-1, 3).mean(0).round().astype(np.uint8)).all()
    assert (np.asarray(occ.hidden([])) == before).all()  # restored after each copy
    blurred = np.asarray(Occluder(img, 5, "blur").hidden([(0, 0)]))
    assert not (blurred[:8, :10] == before[:8, :10]).all() and (blurred[8:] == before[8:]).all()
    with pytest.raises(ValueError):
        Occluder(img, 5, "noise")


def test_cell_helpers():
    assert cell_edges(10, 3) == [0, 3, 7, 10]
    heat = np.arange(100, dtype=float).reshape(10, 10)
    assert hottest_cells(heat, 0.1) == [(9, 9 - i) for i in range(10)]
    cells = random_cells((10, 10), 0.1, np.random.default_rng(0))
    assert len(cells) == len(set(cells)) == 10


def test_small_images_get_no_more_cells_than_pixels(det):
    ex = explain_image(det, random_image((40, 32)), grid=32, faces=False)
    assert ex.heat.shape == (32, 32)
    assert all(b > a for a, b in zip(ex.xs, ex.xs[1:])) and all(b > a for a, b in zip(ex.ys, ex.ys[1:]))


# ----------------------------------------------------------------------------- the command
def test_explain_writes_one_png_per_input_of_the_expected_size(runner, tiny_weights, tmp_path):
    a = write_image(tmp_path / "in" / "a.jpg", size=(300, 200), seed=1)
    b = write_image(tmp_path / "in" / "sub" / "a.png", "PNG", size=(1500, 700), seed=2)  # same stem
    c = write_image(tmp_path / "in" / "c.jpg", size=(48, 64), seed=3)  # enlarged to 512 px
    bad = tmp_path / "in" / "broken.jpg"
    bad.write_bytes(b"not an image")
    out = tmp_path / "out"
    r = runner.invoke(cli, ["explain", "--no-faces", "--grid", "4", "-w", str(tiny_weights), "-d", "cpu",
                            str(a), str(bad), str(b), str(c), "-o", str(out)])
    assert r.exit_code == 3, (r.output, r.stderr)
    assert "broken.jpg" in r.stderr and "not an image" in r.stderr
    written = r.stdout.splitlines()
    assert [p.rsplit("/", 1)[1] for p in written] == ["a.explain.png", "a-2.explain.png", "c.explain.png"]
    sizes = {}
    for p in written:
        with Image.open(p) as im:
            assert im.format == "PNG" and im.mode == "RGB"
            sizes[p.rsplit("/", 1)[1]] = im.size
    assert figure_size(300, 200) == (640, 341 + 244)  # enlarged to 512 px, at least 640 wide
    assert sizes == {"a.explain.png": figure_size(300, 200), "a-2.explain.png": figure_size(1500, 700),
                     "c.explain.png": figure_size(48, 64)}
    assert figure_size(1500, 700) == (1024, 478 + 244)  # scaled down to 1024 px
    assert figure_size(48, 64) == (640, 512 + 244)  # enlarged to 512 px, at least 640 wide
    assert sorted(p.name for p in out.iterdir()) == ["a-2.explain.png", "a.explain.png", "c.explain.png"]
    # a counsellor's folder held 40 PNGs for 42 photos, and nothing at the end said so
    assert r.stderr.splitlines()[-1] == (f"fakedet: 3 PNGs written to {out}; "
                                         "1 image could not be explained (named above)")


def test_an_explain_png_says_what_made_it_and_from_what(runner, tiny_weights, tmp_path):
    """Shown later as evidence, the PNG can be tied to its image and model: its text chunks hold
    the SHA-256 of the image's bytes (read from a file or from stdin) and of the weights, the
    version, the time, the verdict and p_fake, and its legend shows them (cut to 16 digits)."""
    import hashlib

    from fakedet._version import __version__
    from fakedet.model.checkpoint import sha256

    a = write_image(tmp_path / "a.jpg", size=(300, 200), seed=1)
    digest = hashlib.sha256(a.read_bytes()).hexdigest()
    for args, kw in (([str(a)], {}), (["-"], {"input": a.read_bytes()})):
        out = tmp_path / f"out{len(kw)}"
        r = runner.invoke(cli, ["explain", "--no-faces", "--grid", "2", "-w", str(tiny_weights), "-d", "cpu",
                                *args, "-o", str(out)], **kw)
        assert r.exit_code == 0, (r.output, r.stderr)
        with Image.open(r.stdout.splitlines()[0]) as im:
            info = dict(im.info)
        assert info["Software"] == "fakedet explain" and info["fakedet:version"] == __version__
        assert info["fakedet:image-sha256"] == digest
        assert info["fakedet:weights-sha256"] == sha256(tiny_weights)
        assert info["fakedet:label"] in ("fake", "uncertain", "real") and 0 <= float(info["fakedet:p_fake"]) <= 1
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["fakedet:created"])
        assert "fakedet:face-expert-sha256" not in info
        assert info["fakedet:path"] == args[0]  # the path as given, whole
    from fakedet.cli.explain import stamp_lines

    first, second = stamp_lines(info)
    assert f"image sha256 {digest[:16]}..." in first and second == f"weights sha256 {sha256(tiny_weights)[:16]}..."


def test_the_stamp_hashes_the_bytes_explained_not_the_file_as_it_is_later(runner, tiny_weights, tmp_path,
                                                                          monkeypatch):
    """A file that changes after it was read and scored: the PNG's image SHA-256 is that of the
    bytes explained (review: it was the file read again)."""
    import hashlib

    import fakedet.inference.explain as inference_explain

    a = write_image(tmp_path / "a.jpg", size=(300, 200), seed=1)
    scored = hashlib.sha256(a.read_bytes()).hexdigest()
    real_explain = inference_explain.explain

    def explain_then_change(*args, **kwargs):
        out = real_explain(*args, **kwargs)
        with open(a, "ab") as fh:
            fh.write(b"appended later")
        return out

    monkeypatch.setattr(inference_explain, "explain", explain_then_change)
    r = runner.invoke(cli, ["explain", "--no-faces", "--grid", "2", "-w", str(tiny_weights), "-d", "cpu",
                            str(a), "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, (r.output, r.stderr)
    with Image.open(r.stdout.splitlines()[0]) as im:
        assert im.info["fakedet:image-sha256"] == scored != hashlib.sha256(a.read_bytes()).hexdigest()


def test_a_face_without_a_score_is_an_error_as_in_a_scan(tiny_weights, monkeypatch):
    """A face crop the model gives NaN: the image's error ("model produced no score (NaN)"), as
    a scan's record has it, not a label drawn from the other scores."""
    from fakedet.data.decode import ImageError
    from fakedet.inference import explain as ex
    from fakedet.model import faces

    monkeypatch.setattr(faces, "find_faces", lambda img, detector=None: [([4, 4, 40, 40], 0.99)])
    real = ex.calibrated_logits
    monkeypatch.setattr(ex, "calibrated_logits", lambda det, images: real(det, images)
                        if len(images) != 1 else np.full(1, np.nan, dtype=np.float32))
    det = Detector.load(tiny_weights, device="cpu", expert=None)
    with pytest.raises(ImageError, match=r"^model produced no score \(NaN\)$"):
        explain_image(det, random_image((64, 64)), grid=2, faces=True)


def test_explain_says_when_face_mode_and_a_plain_scan_disagree(runner, tmp_path, monkeypatch):
    """explain finds faces by default, scan does not: where their verdicts differ for one file
    (a persona put scan's 'uncertain' beside explain's 'REAL'), stderr and the PNG say both."""
    from fakedet.model import faces

    from conftest import make_tiny_checkpoint

    monkeypatch.setattr(faces, "find_faces", lambda img, detector=None: [([100, 80, 260, 250], 0.99)])
    # every whole-image score is `real`; in face mode every score is `fake`
    weights = make_tiny_checkpoint(tmp_path / "w.safetensors", verdicts={"fake": 0.99999, "real": 0.99998, "rule": "r"},
                                   face_threshold=1e-9, face_verdicts={"fake": 1e-9, "real": 1e-10, "rule": "r"})
    src = write_image(tmp_path / "face.png", "PNG", size=(600, 450), seed=4)
    r = runner.invoke(cli, ["explain", "--no-face-expert", "--grid", "2", "-w", str(weights), "-d", "cpu", str(src),
                            "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, (r.output, r.stderr)
    assert f"{src}: fake in face mode (scan --faces); a scan without --faces says real" in r.stderr
    with Image.open(r.stdout.strip()) as im:
        assert im.info["fakedet:label"] == "fake" and im.info["fakedet:whole-image-label"] == "real"
    plain = runner.invoke(cli, ["scan", "-w", str(weights), "-j", "0", str(src)])
    assert plain.stdout.split("\t")[2] == "real"
    r = runner.invoke(cli, ["explain", "--no-faces", "--grid", "2", "-w", str(weights), "-d", "cpu", str(src),
                            "-o", str(tmp_path / "out2")])
    assert r.exit_code == 0 and "a scan without --faces" not in r.stderr


def test_provenance_evidence_labels_the_whole_image_fake_too(tiny_weights, tmp_path, monkeypatch):
    """Where provenance evidence labels the image fake, a scan without --faces prints fake too:
    so says the PNG's fakedet:whole-image-label (review: it kept the model's verdict)."""
    from fakedet.data import provenance
    from fakedet.inference import explain as inference_explain
    from fakedet.model import faces

    monkeypatch.setattr(faces, "find_faces", lambda img, detector=None: [([10, 10, 60, 60], 0.99)])
    monkeypatch.setattr(provenance, "generated_evidence", lambda evidence: True)
    src = write_image(tmp_path / "g.png", "PNG", size=(120, 100), seed=2)
    det = Detector.load(tiny_weights, device="cpu", faces=True, expert=None)
    _, ex = inference_explain.explain(det, str(src), grid=2, provenance=True)
    assert ex.label == "fake" and ex.label_by == "evidence" and ex.whole_label == "fake"


def test_explain_draws_each_face_box_where_the_face_is(runner, tiny_weights, tmp_path, monkeypatch):
    from fakedet.model import faces

    box = [100, 80, 260, 250]
    monkeypatch.setattr(faces, "find_faces", lambda img, detector=None: [(list(box), 0.99)])
    w, h = 600, 450
    src = write_image(tmp_path / "face.png", "PNG", size=(w, h), seed=4)
    r = runner.invoke(cli, ["explain", "--grid", "3", "-w", str(tiny_weights), "-d", "cpu", str(src),
                            "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, (r.output, r.stderr)
    fig = np.asarray(Image.open(r.stdout.strip()))
    s = display_scale(w, h)
    ox, oy = picture_origin(w, h)
    x0, y0, x1, y1 = (round(v * s) for v in box)
    x0, y0, x1, y1 = ox + x0, oy + y0, ox + x1 - 1, oy + y1 - 1
    boxed = np.array(FACE_COLOUR)
    mid_x, mid_y = (x0 + x1) // 2, (y0 + y1) // 2
    for x, y in ((x0, mid_y), (x1, mid_y), (mid_x, y1), (x0 + 1, mid_y + 20), (x1 - 1, mid_y - 20)):
        assert (fig[y, x] == boxed).all(), (x, y, fig[y, x])
    # inside the box and well outside it: no box colour
    assert not (fig[mid_y, mid_x] == boxed).all()
    assert not (fig[mid_y, x1 + 12] == boxed).all() and not (fig[y1 + 12, mid_x] == boxed).all()


@pytest.mark.skipif(not (SHARED_DATA / "lfw_faceswap").is_dir(), reason="needs ../shared/data")
def test_explain_finds_a_real_face_and_boxes_it(runner, tiny_weights, tmp_path):
    from test_faces import pasted_face

    img, (fx0, fy0, fx1, fy1) = pasted_face(2)
    det = Detector.load(tiny_weights, device="cpu", faces=True, workers=0, provenance=False)
    ex = explain_image(det, img, grid=3)
    assert ex.faces, "no face found"
    bx0, by0, bx1, by1 = ex.faces[0].box
    assert fx0 <= (bx0 + bx1) / 2 <= fx1 and fy0 <= (by0 + by1) / 2 <= fy1
    assert ex.p_fake == pytest.approx(max([ex.p_whole] + [f.p_fake for f in ex.faces]))
    assert ex.cutoffs == det.face_cutoffs
    scanned = det.predict([img])[0]  # the same boxes and scores as scan --faces
    assert [f["box"] for f in scanned.faces] == [f.box for f in ex.faces]
    assert [f["p_fake"] for f in scanned.faces] == pytest.approx([f.p_fake for f in ex.faces], abs=1e-5)
    assert scanned.p_fake == pytest.approx(ex.p_fake, abs=1e-5) and scanned.label == ex.label


def test_a_caption_too_long_keeps_the_files_name():
    from fakedet.cli.explain import fit_from_the_end

    assert fit_from_the_end("photos/2024/a.jpg", len, 100) == "photos/2024/a.jpg"
    assert fit_from_the_end("photos/2024/a.jpg", len, 8) == "\u20264/a.jpg"
    assert fit_from_the_end("abc", len, 2) == "\u2026c" and fit_from_the_end("abc", len, 1) == ""
    calls = []
    long = "d/" * 5000 + "a.jpg"
    assert fit_from_the_end(long, lambda t: calls.append(t) or len(t), 40) == "\u2026" + long[-39:]
    assert len(calls) < 20  # a few measurements, not one per character cut


def test_a_caption_escapes_control_characters_but_not_backslashes():
    from fakedet.cli.explain import caption

    assert caption("C:\\Users\\me\\a.jpg") == "C:\\Users\\me\\a.jpg"
    assert caption("a\tb\nc\x1b[2J\rd\udcffe.jpg") == "a\\tb\\nc\\x1b[2J\\x0dd\\xffe.jpg"


def test_each_picture_is_captioned_with_the_path_given(runner, tiny_weights, tmp_path, monkeypatch):
    """Two files of one name in two folders were both captioned "a.jpg"."""
    import sys

    explain_cli = sys.modules["fakedet.cli.explain"]  # the package's attribute is the command
    names = []
    real_render = explain_cli.render
    monkeypatch.setattr(explain_cli, "render",
                        lambda img, ex, name="", stamp=(): names.append(name) or real_render(img, ex, name, stamp))
    for sub in ("x", "y"):
        write_image(tmp_path / "in" / sub / "a.jpg", seed=len(sub))
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(cli, ["explain", "-w", str(tiny_weights), "-o", str(tmp_path / "out"), "in"])
    assert r.exit_code == 0, r.output
    assert names == [os.path.join("in", "x", "a.jpg"), os.path.join("in", "y", "a.jpg")]


def test_output_names_and_colour_map():
    used: set = set()
    assert [output_name(p, used) for p in ("x/a.jpg", "y/a.png", "A.jpg", "-", "b.tar.gz")] == [
        "a.explain.png", "a-2.explain.png", "A-3.explain.png", "stdin.explain.png", "b.tar.explain.png"]
    assert colour(-1) == (59, 76, 192) and colour(1) == (180, 4, 38) and colour(0) == (221, 221, 221)
    assert colour(5) == colour(1)
    # lightness falls from the middle towards both ends: a diverging map
    light = [sum(colour(v)) for v in np.linspace(0, 1, 9)]
    assert all(a > b for a, b in zip(light, light[1:]))


def test_explain_help_has_examples_and_every_option_has_help(runner):
    import click

    out = runner.invoke(cli, ["explain", "--help"]).output
    block = out.split("Examples:")[1].split("\n\n")[0]
    examples = [line for line in block.splitlines() if line.strip()]
    assert 2 <= len(examples) <= 4 and all(line.split()[0] == "fakedet" for line in examples)
    for opt in explain_cmd.params:
        if isinstance(opt, click.Option):
            assert opt.help, f"explain {opt.opts} has no description"
    assert runner.invoke(cli, ["help", "explain"]).output == out


def test_explain_needs_an_output_folder_and_reports_unusable_weights(runner, tmp_path):
    src = write_image(tmp_path / "a.jpg")
    r = runner.invoke(cli, ["explain", str(src)])
    assert r.exit_code == 2 and "-o" in r.stderr
    r = runner.invoke(cli, ["explain", str(src), "-w", str(tmp_path / "missing.safetensors"), "-o",
                            str(tmp_path / "out")])
    assert r.exit_code == 2 and "missing.safetensors" in r.stderr


def test_explain_into_the_folder_it_explains_keeps_its_inputs_and_skips_its_own_pngs(runner, tiny_weights, tmp_path):
    folder = tmp_path / "in"
    write_image(folder / "a.jpg", size=(80, 60), seed=1)
    own = write_image(folder / "x.explain.png", "PNG", size=(80, 60), seed=2)  # a user's image of that name
    write_image(folder / "x.bmp", "BMP", size=(80, 60), seed=3)
    before = own.read_bytes()
    args = ["explain", "--no-faces", "--grid", "2", "-w", str(tiny_weights), "-d", "cpu",
            str(folder), "-o", str(folder)]
    r = runner.invoke(cli, args)
    assert r.exit_code == 0, (r.output, r.stderr)
    assert own.read_bytes() == before  # never replaced by the PNG of x.bmp
    first = sorted(p.name for p in folder.iterdir())
    assert first == ["a.explain.png", "a.jpg", "x-2.explain.png", "x.bmp", "x.explain.explain.png", "x.explain.png"]
    r = runner.invoke(cli, args)  # again: the PNGs it wrote are not inputs, and are replaced in place
    assert r.exit_code == 0, (r.output, r.stderr)
    assert "skipped 3 PNGs an earlier explain wrote" in r.stderr
    assert sorted(p.name for p in folder.iterdir()) == first and own.read_bytes() == before


def test_explain_with_nothing_to_explain_says_so_as_scan_does(runner, tiny_weights, tmp_path):
    (tmp_path / "empty").mkdir()
    base = ["explain", "--no-faces", "--grid", "2", "-w", str(tiny_weights), "-d", "cpu", "-o", str(tmp_path / "out")]
    r = runner.invoke(cli, [*base, str(tmp_path / "empty")])
    assert r.exit_code == 2 and "no images found" in r.stderr and "no image files found in" in r.stderr
    a = write_image(tmp_path / "a.jpg", size=(80, 60), seed=1)
    r = runner.invoke(cli, [*base, str(tmp_path / "empty"), str(a)])  # an empty folder beside an image: a warning
    assert r.exit_code == 0 and "warning: no image files found in" in r.stderr
    r = runner.invoke(cli, [*base, str(tmp_path / "out")])  # only PNGs an earlier run wrote
    assert r.exit_code == 2 and "skipped 1 PNG an earlier explain wrote" in r.stderr and "no images found" in r.stderr


def test_face_labels_never_cover_each_other():
    from fakedet.cli.explain import _label_row

    placed = []
    for box in [(10, 100, 60, 150), (12, 104, 62, 154), (14, 100, 70, 160), (300, 100, 350, 150)]:
        y = _label_row(box, 20, box[0], 200, placed, top=0, bottom=1000)
        placed.append((box[0], y, box[0] + 200, y + 20))
    a, b, c, far = placed
    for r, q in [(a, b), (a, c), (b, c)]:
        assert r[3] <= q[1] or q[3] <= r[1]  # one above the other
    assert far[1] == 100 - 20 - 2  # a label with nothing beside it stays just above its box
    assert _label_row((10, 5, 60, 50), 20, 10, 200, [], top=0, bottom=1000) == 53  # no room above: below
    # no free row left inside the picture: at the top of its own box, never past the bottom
    full = [(0, y, 500, y + 20) for y in range(0, 200, 20)]
    assert _label_row((10, 50, 60, 100), 20, 10, 200, full, top=0, bottom=200) == 52
    assert _label_row((10, 190, 60, 199), 20, 10, 200, full, top=0, bottom=200) == 180


def test_explain_takes_very_elongated_images_and_long_names(runner, tiny_weights, tmp_path):
    """A 70000x32 strip (its drawn picture would be 0 px high) and a name of 249 characters (its
    PNG's name 261 bytes, over the 255 a file name may have) are explained; so is the image after."""
    d = tmp_path / "in"
    strip = write_image(d / "a_strip.png", "PNG", size=(70000, 32))
    long = write_image(d / ("é" * 3 + "b" * 240 + ".png"), "PNG", size=(120, 90), seed=1)
    ok = write_image(d / "z_ok.png", "PNG", size=(120, 90), seed=2)
    out = tmp_path / "out"
    r = runner.invoke(cli, ["explain", "--no-faces", "--grid", "2", "-w", str(tiny_weights), "-d", "cpu",
                            str(strip), str(long), str(ok), "-o", str(out)])
    assert r.exit_code == 0, (r.output, r.stderr)
    written = r.stdout.splitlines()
    assert len(written) == 3 and written[2].endswith("z_ok.png".replace(".png", ".explain.png"))
    assert all(len(os.fsencode(p.rsplit("/", 1)[1])) <= 255 for p in written)
    assert written[1].rsplit("/", 1)[1].startswith("ééé" + "b" * 100)
    used: set = set()
    assert len(os.fsencode(output_name("é" * 200 + ".jpg", used))) <= 255
    assert len(os.fsencode(output_name("é" * 200 + ".jpg", used))) <= 255  # and with -2 after it


def test_occluded_copies_are_scored_in_chunks_bounded_in_bytes(det, monkeypatch):
    """A large photo's occluded copies are made a few at a time (a 24 MP photo's 32 copies took
    2.3 GB); the scores are those of one chunk."""
    from fakedet.inference import explain as ex

    img = random_image((120, 90))
    occ = Occluder(img, 3)
    sets = [[]] + [[(r, c)] for r in range(3) for c in range(3)]
    whole = ex.score_hidden(det, occ, sets)
    sizes = []
    real = ex.calibrated_logits
    monkeypatch.setattr(ex, "calibrated_logits", lambda d, ims: (sizes.append(len(ims)), real(d, ims))[1])
    monkeypatch.setattr(ex, "CHUNK_BYTES", occ.arr.nbytes * 3)
    np.testing.assert_allclose(ex.score_hidden(det, occ, sets), whole, atol=1e-6)
    assert sizes == [3, 3, 3, 1]


def test_explain_stopped_mid_write_leaves_no_cut_off_png(runner, tiny_weights, tmp_path, monkeypatch):
    """A Ctrl-C (or a full disk) while a PNG is being written leaves the PNGs written before it
    whole and nothing under the next one's name, nor a temporary file."""
    a = write_image(tmp_path / "in" / "a.jpg", size=(120, 90), seed=1)
    b = write_image(tmp_path / "in" / "b.jpg", size=(120, 90), seed=2)
    out = tmp_path / "out"
    save, calls = Image.Image.save, []

    def cut_off(self, fp, *args, **kwargs):
        calls.append(fp)
        if len(calls) == 2:  # the second PNG: half written, then the signal
            fp.write(b"\x89PNG\r\n\x1a\n" + bytes(100))
            raise KeyboardInterrupt
        return save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", cut_off)
    r = runner.invoke(cli, ["explain", "--no-faces", "--grid", "2", "-w", str(tiny_weights), "-d", "cpu",
                            str(a), str(b), "-o", str(out)])
    assert r.exit_code == 130, (r.output, r.stderr)
    assert sorted(p.name for p in out.iterdir()) == ["a.explain.png"]
    with Image.open(out / "a.explain.png") as im:
        im.load()
    assert oct((out / "a.explain.png").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


@pytest.mark.skipif(os.name == "nt", reason="no cleanup on Windows")
def test_a_killed_explains_temporary_files_are_removed_by_the_next_run(runner, tiny_weights, tmp_path):
    """SIGKILL mid-write leaves the hidden temporary file: the next run in the folder removes
    those of processes that no longer run on this machine, untouched for an hour, and nothing
    else."""
    import subprocess
    import sys
    import time

    from fakedet._parts import _part_prefix

    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    host = _part_prefix().split("-")[1]
    stale = out / f".fakedet-{host}-{dead}-0123456789ab.part"
    alive = out / f".fakedet-{host}-{os.getppid()}-0123456789ab.part"  # a process that runs
    other_host = out / f".fakedet-00000000-{dead}-0123456789ab.part"
    others = [out / ".fakedet-0123456789ab.part", out / f".fakedet-{host}-{dead}-notours.part",
              out / "photo.part"]
    recent = out / f".fakedet-{host}-{dead}-ba9876543210.part"  # the same, but from a minute ago
    group = out / f".fakedet-{host}-0-0123456789ab.part"  # pid 0 names a process group
    names = [out / f".fakedet-{host}-0{dead}-0123456789ab.part",  # names fakedet never makes
             out / f".fakedet-{host}-\u0663\u0663\u0663-0123456789ab.part"]
    others += [recent, group, *names]
    for f in [stale, alive, other_host, *others]:
        f.write_bytes(b"\x89PNG")
        if f is not recent:
            os.utime(f, (time.time() - 7200, time.time() - 7200))
    link = out / f".fakedet-{host}-{dead}-abcdefabcdef.part"  # a link of that name: not ours
    link.symlink_to(stale.name)
    os.utime(link, (time.time() - 7200, time.time() - 7200), follow_symlinks=False)
    others.append(link)
    a = write_image(tmp_path / "in" / "a.jpg", size=(120, 90), seed=1)
    r = runner.invoke(cli, ["explain", "--no-faces", "--grid", "2", "-w", str(tiny_weights), "-d", "cpu",
                            str(a), "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    left = {p.name for p in out.iterdir()}
    assert stale.name not in left
    assert {alive.name, other_host.name, *(f.name for f in others), "a.explain.png"} == left


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_explain_gives_scores_with_the_digits_of_the_records():
    """Six decimals as scan's records (0.99825 and 0.99820 are either side of 0.998230), and three
    significant digits below 0.001 (the `real` threshold is 1.13e-06)."""
    from fakedet.cli.explain import _fmt_p

    assert [_fmt_p(p) for p in (0.99825, 0.9982, 0.8215, 2.5e-07)] == ["0.998250", "0.998200", "0.821500",
                                                                        "2.5e-07"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_named_pipe_where_a_png_would_go_is_passed_over_not_opened(runner, tiny_weights, tmp_path):
    """made_by_explain opened it to read its mark, and waited for a writer for ever."""
    a = write_image(tmp_path / "a.jpg", size=(120, 90), seed=1)
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "a.explain.png")
    r = runner.invoke(cli, ["explain", "--no-faces", "--grid", "3", "-w", str(tiny_weights), "-d", "cpu", str(a),
                            "-o", str(out)])
    assert r.exit_code == 0, (r.output, r.stderr)
    assert r.stdout.strip().endswith("a-2.explain.png")


def test_an_earlier_png_named_as_an_input_is_not_replaced_before_it_is_read(runner, tiny_weights, tmp_path):
    a = write_image(tmp_path / "a" / "img.jpg", size=(120, 90), seed=1)
    b = write_image(tmp_path / "b" / "img.jpg", size=(120, 90), seed=2)
    out = tmp_path / "out"
    args = ["explain", "--no-faces", "--grid", "3", "-w", str(tiny_weights), "-d", "cpu", "-o", str(out)]
    assert runner.invoke(cli, [*args, str(b)]).exit_code == 0
    before = (out / "img.explain.png").read_bytes()
    r = runner.invoke(cli, [*args, str(a), str(out / "img.explain.png")])
    assert r.exit_code == 0, (r.output, r.stderr)
    assert (out / "img.explain.png").read_bytes() == before  # b's explanation, kept
    assert [p.rsplit("/", 1)[1] for p in r.stdout.splitlines()] == ["img-2.explain.png", "img.explain.explain.png"]


def test_the_colour_bar_gives_a_tiny_heat_its_digits():
    import importlib

    ex_cli = importlib.import_module("fakedet.cli.explain")  # (fakedet.cli's explain is the command)
    assert ex_cli.bar_label(0.0012) == "0.0012" and ex_cli.bar_label(3.417) == "3.42"
    assert ex_cli.bar_label(0.0) == "0.00"


@pytest.mark.parametrize("cropped", [None, [0, 0, 300, 400]])
def test_every_legend_line_fits_the_narrowest_png(cropped):
    """The legend's longest lines (a picture cut out of a screenshot with many faces scored with
    the face expert; a face-mode `uncertain` under the gate; both notes) end inside a PNG of
    the narrowest width: the right edge of its band stays background, no line is cut off."""
    from fakedet.cli.explain import BACKGROUND, MIN_WIDTH, render
    from fakedet.inference.explain import Explanation, Face

    w, h = 300, 400  # a portrait narrower than MIN_WIDTH when drawn
    faces = [Face(box=[10 + 20 * i, 10, 28 + 20 * i, 30], confidence=0.99, p_fake=0.5) for i in range(12)]
    ex = Explanation(width=w, height=h, heat=np.full((4, 4), 0.5), p_hidden=np.zeros((4, 4)),
                     xs=[0, 75, 150, 225, 300], ys=[0, 100, 200, 300, 400], p_whole=0.999999, p_fake=0.999999,
                     label="uncertain", cutoffs=(0.998230, 1.13e-6), faces=faces, face_expert=True,
                     cropped=cropped, animated=True, frame=0.5, grid=32)
    ex.p_fake = 1e-7  # below the real threshold, uncertain: the "not real" line is drawn
    ex.p_whole, ex.whole_fake_at = 0.5, 0.998230  # the colour bar's longer note
    fig = np.asarray(render(Image.new("RGB", (w, h), (90, 120, 150)), ex, name="x" * 300))
    assert fig.shape[1] == MIN_WIDTH
    band = fig[round(h * display_scale(w, h)):]  # below the picture
    assert (band[:, -3:] == np.array(BACKGROUND)).all()


def test_below_the_fake_threshold_red_is_said_to_stay_short_of_fake(monkeypatch):
    """An editor shown a real portrait's PNG (p_fake 0.0004, `uncertain`) read its red cells on
    the face as a sign of manipulation: below the whole-image fake threshold the colour bar says
    that red raised a score that stayed below fake; at or above it, as before."""
    from PIL import ImageDraw

    from fakedet.cli.explain import render
    from fakedet.inference.explain import Explanation

    drawn = []
    real_text = ImageDraw.ImageDraw.text
    monkeypatch.setattr(ImageDraw.ImageDraw, "text",
                        lambda self, xy, text, *a, **k: drawn.append(text) or real_text(self, xy, text, *a, **k))

    def legend(p_whole, label):
        drawn.clear()
        ex = Explanation(width=200, height=200, heat=np.full((2, 2), 1.0), p_hidden=np.zeros((2, 2)),
                         xs=[0, 100, 200], ys=[0, 100, 200], p_whole=p_whole, p_fake=p_whole, label=label,
                         cutoffs=(0.998230, 1.13e-6), whole_fake_at=0.998230, grid=2)
        render(Image.new("RGB", (200, 200), (90, 120, 150)), ex)
        return [t for t in drawn if t.startswith("red: ")]

    assert legend(0.000393, "uncertain") == ["red: raised the score (still below fake)    blue: lowered it"]
    assert legend(0.999, "fake") == ["red: raised the score    blue: lowered it"]


def test_the_legend_says_which_scan_gives_the_headline_and_which_score_the_heatmap_explains(monkeypatch):
    """An editor put explain's PNGs (face mode, by default) beside a report of a scan without
    --faces, and every portrait's score differed: the headline says it is scan --faces's, and the
    heatmap's own score has its line."""
    from PIL import ImageDraw

    from fakedet.cli.explain import render
    from fakedet.inference.explain import Explanation, Face

    drawn = []
    real_text = ImageDraw.ImageDraw.text
    monkeypatch.setattr(ImageDraw.ImageDraw, "text",
                        lambda self, xy, text, *a, **k: drawn.append(text) or real_text(self, xy, text, *a, **k))

    def legend(faces):
        drawn.clear()
        ex = Explanation(width=200, height=200, heat=np.full((2, 2), 1.0), p_hidden=np.zeros((2, 2)),
                         xs=[0, 100, 200], ys=[0, 100, 200], p_whole=0.117921, p_fake=0.900249, label="uncertain",
                         cutoffs=(0.998230, 0.094482), faces=faces, face_expert=bool(faces), grid=2)
        render(Image.new("RGB", (200, 200), (90, 120, 150)), ex)
        return drawn[:]

    lines = legend([Face(box=[20, 20, 120, 140], confidence=0.99, p_fake=0.900249)])
    assert "UNCERTAIN   p_fake 0.900249   (scan --faces)" in lines
    assert "heatmap: whole image, p_fake 0.117921; 1 face box, scored with the face expert" in lines
    lines = legend(None)
    assert not any("--faces" in t for t in lines if t.startswith("UNCERTAIN"))
    assert "heatmap: whole image, p_fake 0.117921; faces not looked for" in lines
